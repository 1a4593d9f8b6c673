"""``GET /health``: served model version, data freshness, state of the store and the cache."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from sparecast.service.deps import StateDep
from sparecast.service.models import HealthOut

__all__ = ["router"]

router = APIRouter(prefix="/health", tags=["operations"])


@router.get(
    "",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "down: neither store nor cache answers"}},
    summary="Health and freshness",
)
async def health(state: StateDep, response: Response) -> HealthOut:
    """``ok``; ``degraded`` (the store or the cache is unreachable, or no run yet: answers still
    come from the other one); ``down`` (both unreachable, status 503)."""
    out = await run_in_threadpool(state.health)
    if out.status == "down":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return out
