"""``GET /metrics``: Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from sparecast.service.deps import StateDep
from sparecast.service.metrics import CONTENT_TYPE

__all__ = ["router"]

router = APIRouter(prefix="/metrics", tags=["operations"])


@router.get(
    "",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus metrics"}},
    summary="Prometheus metrics",
)
async def metrics(state: StateDep) -> Response:
    """Request latency histograms per route, cache lookups and hit ratio, forecast age."""
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE)
