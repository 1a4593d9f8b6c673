"""``GET``/``HEAD /health``: the service's state; with a valid API key also the served model
version, data freshness and the state of the store and the cache."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, status
from fastapi.responses import Response

from sparecast.service.deps import StateDep, has_valid_key
from sparecast.service.models import HealthOut, HealthStatusOut

__all__ = ["router"]

router = APIRouter(prefix="/health", tags=["operations"])


@router.get(
    "",
    response_model=HealthOut,
    responses={
        200: {
            "description": "with a valid API key: HealthOut; without one only "
            '{"status": ...} (HealthStatusOut): no hosts, users, paths or driver messages',
        },
        503: {"model": HealthOut, "description": "down: neither store nor cache answers"},
    },
    summary="Health and freshness",
)
async def health(state: StateDep, request: Request, response: Response) -> Any:
    """``ok``; ``degraded`` (the store or the cache is unreachable, or no run yet: answers still
    come from the other one); ``down`` (both unreachable, status 503). Only callers with a valid
    API key (``service.api_key_header``) get the details; the others get the status alone."""
    out = await state.health()
    code = status.HTTP_503_SERVICE_UNAVAILABLE if out.status == "down" else status.HTTP_200_OK
    if not has_valid_key(request, state):
        body = orjson.dumps(HealthStatusOut(status=out.status).model_dump())
        return Response(body, status_code=code, media_type="application/json")
    response.status_code = code
    return out


@router.head("", include_in_schema=False)
async def health_head(state: StateDep) -> Response:
    """``HEAD /health``: the status code of ``GET /health`` (200, or 503 when down), no body."""
    out = await state.health()
    code = status.HTTP_503_SERVICE_UNAVAILABLE if out.status == "down" else status.HTTP_200_OK
    return Response(status_code=code)
