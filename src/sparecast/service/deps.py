"""Dependencies of the route handlers, as ``Annotated`` aliases (FastAPI template style)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status

from sparecast.service.models import ErrorOut
from sparecast.service.state import ServiceState

__all__ = [
    "StateDep",
    "ApiKeyDep",
    "API_KEY_RESPONSES",
    "get_state",
    "require_api_key",
    "key_matches",
]


async def get_state(request: Request) -> ServiceState:
    """The process's ServiceState (set by ``create_app``); async: no thread hop per request."""
    state: ServiceState = request.app.state.sparecast
    return state


StateDep = Annotated[ServiceState, Depends(get_state)]


def key_matches(key: str, hashes: list[str]) -> bool:
    """Whether sha256(key) is one of ``hashes`` (hex); every hash is compared in constant time,
    so the answer's timing tells nothing about how much of a hash matched."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest().encode()
    found = False
    for expected in hashes:
        found |= hmac.compare_digest(digest, expected.encode())
    return found


async def require_api_key(request: Request, state: StateDep) -> None:
    """Refuse the request with 401 unless its API-key header holds a configured key."""
    header = state.settings.service.api_key_header
    key = request.headers.get(header)
    if not key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"missing API key: send it in the {header} header",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    if not state.settings.service.api_key_hashes:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="no API key is configured, so POST endpoints are closed; set "
            "service.api_key_hashes (SPARECAST_SERVICE__API_KEY_HASHES) to sha256 digests of keys",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    if not key_matches(key, state.settings.service.api_key_hashes):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"invalid API key in the {header} header",
            headers={"WWW-Authenticate": "ApiKey"},
        )


ApiKeyDep = Depends(require_api_key)

# The OpenAPI ``responses`` entry of every route that depends on ``ApiKeyDep``.
API_KEY_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "missing or wrong API key"},
}
