"""Planner overrides of one item: ``GET``, ``PUT`` and ``DELETE /items/{item_id}/override``.

Writes need the API key (as ``POST /retrain``). After a write this process re-reads the
overrides at once; other processes within ``service.version_refresh_s`` (their periodic
re-check). A cached forecast answer is keyed by the override's revision, so no answer cached
before a change is served after it.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, status

from sparecast.inventory.overrides import Override, OverrideError, UnknownOverrideItem
from sparecast.service.deps import API_KEY_RESPONSES, ApiKeyDep, StateDep
from sparecast.service.errors import NotFound, short
from sparecast.service.forecast_query import served_run, unprocessable
from sparecast.service.models import ErrorOut, ItemOverrideOut, OverrideIn, OverrideOut
from sparecast.service.state import ServiceState

__all__ = ["router"]

router = APIRouter(prefix="/items", tags=["overrides"])


def _known(state: ServiceState, item_id: str) -> None:
    run = served_run(state)  # 503 without a run
    if item_id not in state.items:
        raise NotFound(
            f"unknown item {short(item_id)}: not in forecast run {run.run_id} "
            f"(model version {run.model_version})"
        )


def _item_override(state: ServiceState, item_id: str) -> ItemOverrideOut:
    current = state.store.overrides(as_of=date.today(), item_ids=[item_id]).get(item_id)
    history = state.store.override_history(item_id)
    return ItemOverrideOut.model_validate(
        {
            "item_id": item_id,
            "override": current.summary() if current else None,
            "history": [e.summary() for e in history],
        }
    )


@router.get(
    "/{item_id:path}/override",
    response_model=ItemOverrideOut,
    responses={404: {"model": ErrorOut, "description": "unknown item"}},
    summary="Planner override of one item, with its history",
)
async def get_override(item_id: str, state: StateDep) -> ItemOverrideOut:
    """The item's override that applies today (null: none) and every change to it (set,
    changed, deleted, expired), oldest first."""
    _known(state, item_id)
    return await state.store_call(_item_override, state, item_id)


def _set(state: ServiceState, override: Override) -> Override:
    state.store.expire_overrides(date.today())
    stored = state.store.set_override(override)
    state.refresh_overrides(force=True)
    return stored


@router.put(
    "/{item_id:path}/override",
    response_model=OverrideOut,
    responses={
        **API_KEY_RESPONSES,
        404: {"model": ErrorOut, "description": "unknown item"},
    },
    dependencies=[ApiKeyDep],
    summary="Set the planner override of one item",
)
async def put_override(item_id: str, body: OverrideIn, state: StateDep) -> OverrideOut:
    """Make ``body`` the item's override (replacing its previous one, which stays in the
    history). 422 names the invalid field (multiplier <= 0, reorder point above order-up-to,
    expiry not in the future, nothing to override)."""
    _known(state, item_id)
    override = Override(item_id=item_id, **body.model_dump())
    try:
        stored = await state.store_call(_set, state, override)
    except UnknownOverrideItem as exc:
        raise NotFound(str(exc)) from None
    except OverrideError as exc:
        raise unprocessable(["body"], str(exc)) from None
    return OverrideOut.model_validate(stored.summary())


def _delete(state: ServiceState, item_id: str, by: str, reason: str) -> Override:
    state.store.expire_overrides(date.today())
    removed = state.store.delete_override(item_id, by=by, note=reason)
    state.refresh_overrides(force=True)
    return removed


@router.delete(
    "/{item_id:path}/override",
    response_model=OverrideOut,
    status_code=status.HTTP_200_OK,
    responses={
        **API_KEY_RESPONSES,
        404: {"model": ErrorOut, "description": "unknown item, or it has no override"},
    },
    dependencies=[ApiKeyDep],
    summary="Remove the planner override of one item",
)
async def delete_override(
    item_id: str,
    state: StateDep,
    by: Annotated[str, Query(min_length=1, max_length=200, description="who removes it")],
    reason: Annotated[str, Query(max_length=2000, description="why")] = "",
) -> OverrideOut:
    """Remove the item's override (a ``deleted`` event in its history); answers the removed
    override. The forecasts and the policy answer the model's values again."""
    _known(state, item_id)
    try:
        removed = await state.store_call(_delete, state, item_id, by, reason)
    except OverrideError as exc:
        raise NotFound(str(exc)) from None
    return OverrideOut.model_validate(removed.summary())
