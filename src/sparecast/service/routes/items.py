"""``GET /items/{item_id}/policy``: the item's row of the inventory plan."""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from fastapi.responses import Response

from sparecast.service.deps import StateDep
from sparecast.service.errors import NotFound, short
from sparecast.service.models import ErrorOut, ItemPolicyOut

__all__ = ["router"]

router = APIRouter(prefix="/items", tags=["inventory"])


@router.get(
    "/{item_id:path}/policy",
    # the plan row as it is (every column the file has, none added): documented, not validated
    responses={
        200: {"model": ItemPolicyOut, "description": "Successful Response"},
        404: {"model": ErrorOut, "description": "no plan, or the item is not in it"},
    },
    summary="Inventory policy of one item",
)
async def item_policy(item_id: str, state: StateDep) -> Response:
    """Safety stock, reorder point, order-up-to level, suggested order, risk... of ``item_id``:
    every column ``DIR/policy.parquet`` has (written by ``sparecast plan``)."""
    row = await state.policy.row(item_id)  # NoPlan (404) without a plan file
    if row is None:
        raise NotFound(f"unknown item {short(item_id)}: not in the inventory plan (policy.parquet)")
    return Response(orjson.dumps(row), media_type="application/json")
