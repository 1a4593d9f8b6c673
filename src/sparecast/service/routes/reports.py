"""``GET /reports/inventory``: the HTML inventory report of the data directory."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter
from fastapi.responses import FileResponse

from sparecast.service.deps import StateDep
from sparecast.service.errors import NoPlan
from sparecast.service.models import ErrorOut
from sparecast.service.state import plan_hint

__all__ = ["router"]

router = APIRouter(prefix="/reports", tags=["inventory"])


@router.get(
    "/inventory",
    response_class=FileResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "DIR/inventory_report.html"},
        404: {"model": ErrorOut, "description": "no inventory plan in the data directory"},
    },
    summary="Inventory report (HTML)",
)
async def inventory_report(state: StateDep) -> FileResponse:
    """``DIR/inventory_report.html`` as written by ``sparecast plan``: it shows the planner
    overrides that applied when the plan ran; the ``X-Sparecast-Overrides`` header counts those
    that apply now (``GET /items/{item_id}/policy`` applies them per item)."""
    if not state.report_path.is_file():
        raise NoPlan(plan_hint(state.data_dir))
    today = date.today()
    active = sum(o.is_active(today) for o in state.overrides.values())
    return FileResponse(
        state.report_path,
        media_type="text/html; charset=utf-8",
        headers={"X-Sparecast-Overrides": f"{active} active now; the report shows the plan's"},
    )
