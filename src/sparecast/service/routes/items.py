"""``GET /items/{item_id}/policy``: the item's row of the inventory plan, with the planner
override that applies today."""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
import polars as pl
from fastapi import APIRouter
from fastapi.responses import Response

from sparecast.inventory.overrides import Override, apply_policy_overrides
from sparecast.service.deps import StateDep
from sparecast.service.errors import NotFound, short
from sparecast.service.models import ErrorOut, ItemPolicyOut

__all__ = ["router", "policy_with_override"]

router = APIRouter(prefix="/items", tags=["inventory"])


def policy_with_override(
    row: dict[str, Any], override: Override | None, today: date
) -> dict[str, Any]:
    """The plan row with the override that applies ``today`` (``apply_policy_overrides``; a
    row planned with an override since removed gets the model's values back); ``override``
    becomes the override's data (null when none applies)."""
    if override is None and "reorder_point_model" not in row:
        return row
    frame = pl.DataFrame([row], infer_schema_length=None)
    applied = apply_policy_overrides(frame, {override.item_id: override} if override else {}, today)
    out = applied.row(0, named=True)
    out["override"] = override.summary() if override is not None and out["override"] else None
    return out


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
    every column ``DIR/policy.parquet`` has (written by ``sparecast plan``). A planner override
    that applies today is applied to the reorder point, order-up-to and suggested order (the
    plan's values in ``*_model``) and named in ``override``."""
    row = await state.policy.row(item_id)  # NoPlan (404) without a plan file
    if row is None:
        raise NotFound(f"unknown item {short(item_id)}: not in the inventory plan (policy.parquet)")
    row = policy_with_override(row, state.active_override(item_id), date.today())
    return Response(orjson.dumps(row), media_type="application/json")
