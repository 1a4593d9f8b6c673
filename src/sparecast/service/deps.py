"""Dependencies of the route handlers, as ``Annotated`` aliases (FastAPI template style)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status

from sparecast.config import ServiceSettings
from sparecast.service.models import ErrorOut
from sparecast.service.state import ServiceState

__all__ = [
    "StateDep",
    "ApiKeyDep",
    "API_KEY_RESPONSES",
    "get_state",
    "require_api_key",
    "key_matches",
    "api_key_error",
    "has_valid_key",
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


def api_key_error(service: ServiceSettings, key: str | None) -> str | None:
    """Why ``key`` (the API-key header's value, None: absent) is refused, or None when it is
    one of the configured keys. Shared by the route dependency and ``limits.RequestLimits``,
    which checks it before the body is read."""
    header = service.api_key_header
    if not key:
        return f"missing API key: send it in the {header} header"
    if not service.api_key_hashes:
        return (
            "no API key is configured, so POST endpoints are closed; set "
            "service.api_key_hashes (SPARECAST_SERVICE__API_KEY_HASHES) to sha256 digests of keys"
        )
    if not key_matches(key, service.api_key_hashes):
        return f"invalid API key in the {header} header"
    return None


def has_valid_key(request: Request, state: ServiceState) -> bool:
    """Whether the request carries a valid API key (``/health`` shows details only then)."""
    service = state.settings.service
    return api_key_error(service, request.headers.get(service.api_key_header)) is None


async def require_api_key(request: Request, state: StateDep) -> None:
    """Refuse the request with 401 unless its API-key header holds a configured key."""
    service = state.settings.service
    error = api_key_error(service, request.headers.get(service.api_key_header))
    if error is not None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail=error, headers={"WWW-Authenticate": "ApiKey"}
        )


ApiKeyDep = Depends(require_api_key)

# The OpenAPI ``responses`` entry of every route that depends on ``ApiKeyDep``.
API_KEY_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "missing or wrong API key"},
}
