"""Forecast reads: ``GET /forecast/item/{item_id}`` and ``POST /forecast/items``.

The hot path: the answer for (model version, item, horizon, quantiles) is cached as its final
JSON bytes and returned in a raw ``Response``, so a cache hit costs a dict/Redis lookup and no
serialisation or validation (``cached_reads.ItemForecastFastPath`` answers most hits of the item
read before routing). Misses are read from the store in a worker thread, serialised once
with orjson (in the ``ItemForecastOut`` shape) and cached.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, TypeVar

import orjson
import polars as pl
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from sparecast.errors import StoreUnavailable
from sparecast.inventory.overrides import Override, apply_forecast_overrides
from sparecast.service.deps import API_KEY_RESPONSES, ApiKeyDep, StateDep
from sparecast.service.errors import NotFound, StoreDown, short
from sparecast.service.forecast_query import (
    FAST_PATH_MISS,
    checked_horizon,
    checked_levels,
    served_run,
    single_valued,
    unprocessable,
)
from sparecast.service.models import ErrorOut, ForecastBatchIn, ForecastBatchOut, ItemForecastOut
from sparecast.service.state import ServiceState
from sparecast.store import ItemForecast, RunInfo

__all__ = ["router", "forecast_json", "item_forecast", "items_forecasts"]

router = APIRouter(prefix="/forecast", tags=["forecast"])

log = logging.getLogger("sparecast.service")

_T = TypeVar("_T")

# The answers are raw JSON bytes (cached as they are sent), not validated against a
# response_model: the models are declared for the OpenAPI schema only, and the tests check
# real answers against them.
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "unknown item"},
    503: {"model": ErrorOut, "description": "no forecast run, or the store is unreachable"},
}


def forecast_json(fc: ItemForecast, override: Override | None = None) -> bytes:
    """The ``ItemForecastOut`` JSON of one item forecast (NaN becomes null); with a planner
    override whose forecast level or multiplier applies, the overridden forecast and quantiles
    (``apply_forecast_overrides`` over the dates answered), the model's forecast in
    ``forecast_model`` and the override in ``override``."""
    answer: dict[str, Any] = {
        "item_id": fc.item_id,
        "model_version": fc.model_version,
        "run_id": fc.run_id,
        "method": fc.method,
        "dates": fc.dates,
        "forecast": fc.forecast,
        "quantiles": fc.quantiles,
        "override": None,
        "forecast_model": None,
    }
    if override is not None:
        if {"forecast_level", "forecast_multiplier"} & set(override.kinds) and fc.dates:
            frame = pl.DataFrame(
                {
                    "unique_id": [fc.item_id] * len(fc.dates),
                    "ds": fc.dates,
                    "forecast": fc.forecast,
                    **{label: values for label, values in fc.quantiles.items()},
                },
                schema_overrides={label: pl.Float64 for label in fc.quantiles},
            )
            changed = apply_forecast_overrides(frame, {fc.item_id: override}, date.today())
            answer["forecast"] = changed["forecast"].to_list()
            answer["quantiles"] = {label: changed[label].to_list() for label in fc.quantiles}
            answer["forecast_model"] = fc.forecast
        answer["override"] = override.summary()
    return orjson.dumps(answer)


def _unknown(run: RunInfo, item_ids: list[str]) -> NotFound:
    shown = ", ".join(short(i) for i in item_ids[:20])
    more = f" and {len(item_ids) - 20} more" if len(item_ids) > 20 else ""
    noun = "item" if len(item_ids) == 1 else f"{len(item_ids)} items"
    return NotFound(
        f"unknown {noun} {shown}{more}: not in forecast run {run.run_id} "
        f"(model version {run.model_version})"
    )


async def _from_store(
    state: ServiceState,
    read: Callable[..., _T],
    *args: Any,
    uncached: int,
    total: int,
    **kwargs: Any,
) -> _T:
    """``read(*args, **kwargs)`` of the store in a worker thread, within the store deadline
    (``ServiceState.store_call``). An unreachable or too slow store is re-raised saying how many
    of the requested items are not cached (503; the store's URL and driver text go to the log,
    not the answer); other store errors go to their handler unchanged."""
    try:
        return await state.store_call(read, *args, **kwargs)
    except StoreUnavailable as exc:
        log.warning("forecast store: %s", exc)
        verb = "is" if uncached == 1 else "are"
        what = "the item is" if total == 1 else f"{uncached} of the {total} items {verb}"
        raise StoreDown(
            f"the forecast store is unreachable and {what} not cached; "
            "cached forecasts are still served, retry later"
        ) from exc


@router.get(
    "/item/{item_id:path}",
    responses={200: {"model": ItemForecastOut, "description": "Successful Response"}, **_ERRORS},
    summary="Forecast of one item",
)
async def item_forecast(
    item_id: str,
    state: StateDep,
    request: Request,
    horizon: Annotated[
        str | None,
        Query(
            max_length=32,
            description="periods to return (14), or a duration (90d, 13w, 6mo, 1y) converted "
            "to the run's periods, rounded up; at most max_horizon (default: "
            "service.default_horizon, else all the run has)",
            examples=["14", "13w", "6mo"],
        ),
    ] = None,
    quantiles: Annotated[
        list[float] | None,
        Query(description="quantile levels in percent, repeated: ?quantiles=90&quantiles=97.5"),
    ] = None,
) -> Response:
    """Point and quantile forecast of ``item_id`` by the current model version."""
    single_valued(request, "horizon")
    run = served_run(state)
    h = checked_horizon(state, run, horizon, ["query", "horizon"])
    levels = checked_levels(run, quantiles, ["query", "quantiles"])
    key = state.item_cache_key(run, item_id, h, levels)
    if request.scope.get(FAST_PATH_MISS) == key:  # the fast path looked it up already
        state.metrics.cache_lookups(0, 1)
        body = None
    else:
        body = state.cache_get(key)
    if body is None:
        if item_id not in state.items:
            raise _unknown(run, [item_id])
        fc = await _from_store(
            state,
            state.store.item_forecast,
            item_id,
            run_id=run.run_id,
            horizon=h,
            quantiles=levels,
            uncached=1,
            total=1,
        )
        if fc is None:
            raise _unknown(run, [item_id])
        body = forecast_json(fc, state.active_override(item_id))
        state.cache_set_many({key: body})
    return Response(body, media_type="application/json")


@router.post(
    "/items",
    responses={
        200: {"model": ForecastBatchOut, "description": "Successful Response"},
        **_ERRORS,
        **API_KEY_RESPONSES,
    },
    dependencies=[ApiKeyDep],
    summary="Forecasts of many items",
)
async def items_forecasts(body: ForecastBatchIn, state: StateDep) -> Response:
    """Forecasts of up to ``service.max_batch_items`` items in one request, in request order."""
    limit = state.settings.service.max_batch_items
    if len(body.item_ids) > limit:
        raise unprocessable(
            ["body", "item_ids"],
            f"{len(body.item_ids)} items requested; at most {limit} per request "
            "(service.max_batch_items): split the batch",
        )
    run = served_run(state)
    h = checked_horizon(state, run, body.horizon, ["body", "horizon"])
    levels = checked_levels(run, body.quantiles, ["body", "quantiles"])
    ids = list(dict.fromkeys(body.item_ids))
    unknown = [i for i in ids if i not in state.items]
    if unknown:
        raise _unknown(run, unknown)
    keys = [state.item_cache_key(run, i, h, levels) for i in ids]
    found = dict(zip(ids, state.cache_get_many(keys), strict=True))
    missing = [i for i, v in found.items() if v is None]
    if missing:
        fetched = await _from_store(
            state,
            state.store.items_forecasts,
            missing,
            run_id=run.run_id,
            horizon=h,
            quantiles=levels,
            uncached=len(missing),
            total=len(ids),
        )
        gone = [i for i in missing if i not in fetched]
        if gone:
            raise _unknown(run, gone)
        new = {}
        for item, key in zip(ids, keys, strict=True):
            if found[item] is None:
                found[item] = new[key] = forecast_json(fetched[item], state.active_override(item))
        state.cache_set_many(new)
    parts = [found[i] for i in body.item_ids]
    head = orjson.dumps({"model_version": run.model_version, "run_id": run.run_id})[:-1]
    payload = b"".join((head, b',"items":[', b",".join(parts), b"]}"))  # type: ignore[arg-type]
    return Response(payload, media_type="application/json")
