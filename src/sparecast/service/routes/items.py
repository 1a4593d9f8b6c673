"""``GET /items/{item_id}/policy``: the item's row of the inventory plan."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, HTTPException, status
from fastapi.responses import Response

from sparecast.service.deps import StateDep
from sparecast.service.models import ErrorOut, ItemPolicyOut
from sparecast.service.state import NoPlan

__all__ = ["router"]

router = APIRouter(tags=["inventory"])


@router.get(
    "/items/{item_id:path}/policy",
    response_model=ItemPolicyOut,
    responses={404: {"model": ErrorOut, "description": "no plan, or the item is not in it"}},
    summary="Inventory policy of one item",
)
async def item_policy(item_id: str, state: StateDep) -> Response:
    """Safety stock, reorder point, order-up-to level, suggested order, risk... of ``item_id``:
    every column ``DIR/policy.parquet`` has (written by ``sparecast plan``)."""
    try:
        row = await state.policy.row(item_id)
    except NoPlan as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    if row is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"unknown item {item_id!r}: not in the inventory plan {state.policy.path}",
        )
    return Response(orjson.dumps(row), media_type="application/json")
