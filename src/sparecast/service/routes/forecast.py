"""Forecast reads: ``GET /forecast/item/{item_id}`` and ``POST /forecast/items``.

The hot path: the answer for (model version, item, horizon, quantiles) is cached as its final
JSON bytes and returned in a raw ``Response``, so a cache hit costs a dict/Redis lookup and no
serialisation or validation. Misses are read from the store in a worker thread, serialised once
with orjson (in the ``ItemForecastOut`` shape) and cached.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from sparecast.errors import CacheUnavailable, StoreUnavailable
from sparecast.service.deps import ApiKeyDep, StateDep
from sparecast.service.errors import NoRun, NotFound
from sparecast.service.models import ErrorOut, ForecastBatchIn, ForecastBatchOut, ItemForecastOut
from sparecast.service.state import ServiceState
from sparecast.store.cache import cache_key
from sparecast.store.history import ItemForecast, RunInfo

__all__ = ["router", "forecast_json", "ItemForecastFastPath"]

router = APIRouter(tags=["forecast"])

_ITEM_PREFIX = "/forecast/item/"
ITEM_ROUTE = _ITEM_PREFIX + "{item_id:path}"
_FAST_PATH_MISS = "sparecast.fast_path_miss"
_T = TypeVar("_T")
_PLAIN_NUMBER = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "unknown item"},
    503: {"model": ErrorOut, "description": "no forecast run, or the store is unreachable"},
}


def unprocessable(loc: list[str | int], message: str) -> HTTPException:
    """A 422 in FastAPI's own validation-error shape, naming the field."""
    return HTTPException(
        422,
        detail=[{"loc": loc, "msg": message, "type": "value_error"}],
    )


def forecast_json(fc: ItemForecast) -> bytes:
    """The ``ItemForecastOut`` JSON of one item forecast (NaN becomes null)."""
    return orjson.dumps(
        {
            "item_id": fc.item_id,
            "model_version": fc.model_version,
            "run_id": fc.run_id,
            "method": fc.method,
            "dates": fc.dates,
            "forecast": fc.forecast,
            "quantiles": fc.quantiles,
        }
    )


def _served_run(state: ServiceState) -> RunInfo:
    run = state.run
    if run is None:
        raise NoRun(state.no_run_message())
    return run


def _horizon(
    state: ServiceState, run: RunInfo, horizon: int | None, loc: list[str | int]
) -> int | None:
    """The requested horizon, None meaning all the run's periods (shares the cache entry)."""
    if horizon is None:  # the configured default, capped at what the run has
        default = state.settings.service.default_horizon
        return None if default is None or default >= run.horizon else default
    h = horizon
    if h > run.horizon:
        raise unprocessable(
            loc, f"horizon {h} is longer than the {run.horizon} periods run {run.run_id} forecast"
        )
    return None if h == run.horizon else h


def _levels(
    run: RunInfo, quantiles: list[float] | None, loc: list[str | int]
) -> list[float] | None:
    """Requested quantile levels (percent), sorted and unique; checked against the run's."""
    if quantiles is None:
        return None
    levels = sorted(set(quantiles))
    for q in levels:
        if not math.isfinite(q) or not 0 < q < 100:
            raise unprocessable(loc, f"quantile level {q} is not a percent in (0, 100)")
    have = set(run.quantile_levels)
    absent = [q for q in levels if q not in have]
    if absent:
        available = ", ".join(f"{q:g}" for q in run.quantile_levels) or "none"
        raise unprocessable(
            loc,
            f"quantile level(s) {', '.join(f'{q:g}' for q in absent)} not in run "
            f"{run.run_id}; available: {available}",
        )
    return levels


def _unknown(run: RunInfo, item_ids: list[str]) -> NotFound:
    shown = ", ".join(repr(i) for i in item_ids[:20])
    more = f" and {len(item_ids) - 20} more" if len(item_ids) > 20 else ""
    noun = "item" if len(item_ids) == 1 else f"{len(item_ids)} items"
    return NotFound(
        f"unknown {noun} {shown}{more}: not in forecast run {run.run_id} "
        f"(model version {run.model_version})"
    )


async def _from_store(
    read: Callable[..., _T], *args: Any, uncached: int, total: int, **kwargs: Any
) -> _T:
    """``read(*args, **kwargs)`` of the store in a worker thread. An unreachable store is
    re-raised saying how many of the requested items are not cached (the handler answers 503);
    other store errors go to their handler unchanged."""
    try:
        return await run_in_threadpool(read, *args, **kwargs)
    except StoreUnavailable as exc:
        verb = "is" if uncached == 1 else "are"
        what = "the item is" if total == 1 else f"{uncached} of the {total} items {verb}"
        raise StoreUnavailable(
            f"the forecast store is unreachable ({exc}) and {what} not cached; "
            "cached forecasts are still served, retry later"
        ) from exc


@router.get(
    ITEM_ROUTE,
    response_model=ItemForecastOut,
    responses=_ERRORS,
    summary="Forecast of one item",
)
async def item_forecast(
    item_id: str,
    state: StateDep,
    request: Request,
    horizon: Annotated[
        int | None,
        Query(ge=1, le=100_000, description="periods to return (default: all the run has)"),
    ] = None,
    quantiles: Annotated[
        list[float] | None,
        Query(description="quantile levels in percent, repeated: ?quantiles=90&quantiles=97.5"),
    ] = None,
) -> Response:
    """Point and quantile forecast of ``item_id`` by the current model version."""
    run = _served_run(state)
    h = _horizon(state, run, horizon, ["query", "horizon"])
    levels = _levels(run, quantiles, ["query", "quantiles"])
    key = cache_key(run.model_version, item_id, h, levels)
    if request.scope.get(_FAST_PATH_MISS) == key:  # the fast path looked it up already
        state.metrics.cache_lookups(0, 1)
        body = None
    else:
        body = state.cache_get(key)
    if body is None:
        if item_id not in state.items:
            raise _unknown(run, [item_id])
        fc = await _from_store(
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
        body = forecast_json(fc)
        state.cache_set_many({key: body})
    return Response(body, media_type="application/json")


@router.post(
    "/forecast/items",
    response_model=ForecastBatchOut,
    responses={**_ERRORS, 401: {"model": ErrorOut, "description": "missing or wrong API key"}},
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
    run = _served_run(state)
    h = _horizon(state, run, body.horizon, ["body", "horizon"])
    levels = _levels(run, body.quantiles, ["body", "quantiles"])
    ids = list(dict.fromkeys(body.item_ids))
    unknown = [i for i in ids if i not in state.items]
    if unknown:
        raise _unknown(run, unknown)
    keys = [cache_key(run.model_version, i, h, levels) for i in ids]
    found = dict(zip(ids, state.cache_get_many(keys), strict=True))
    missing = [i for i, v in found.items() if v is None]
    if missing:
        fetched = await _from_store(
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
                found[item] = new[key] = forecast_json(fetched[item])
        state.cache_set_many(new)
    parts = [found[i] for i in body.item_ids]
    head = orjson.dumps({"model_version": run.model_version, "run_id": run.run_id})[:-1]
    payload = b"".join((head, b',"items":[', b",".join(parts), b"]}"))  # type: ignore[arg-type]
    return Response(payload, media_type="application/json")


class ItemForecastFastPath:
    """ASGI middleware answering cache hits of ``GET /forecast/item/{item_id}`` before routing.

    FastAPI's dependency and parameter machinery costs several times more than a cache lookup;
    this answers the common case (a cached item, plain ``horizon``/``quantiles`` values) with
    the same bytes the route would send, using the route's own checks. Anything else (a miss,
    an unusual or invalid parameter, no run yet) goes on to the route unchanged, which then
    validates, answers errors and fills the cache: the answers are the same either way.
    """

    def __init__(self, app: ASGIApp, state: ServiceState, route: BaseRoute) -> None:
        self.app = app
        self.state = state
        self.route = route

    def _lookup(self, scope: Scope) -> bytes | None:
        run = self.state.run
        item_id: str = scope["path"][len(_ITEM_PREFIX) :]
        if run is None or not item_id:
            return None
        horizon: int | None = None
        quantiles: list[float] | None = None
        query: bytes = scope["query_string"]
        if query:
            for part in query.decode("latin-1").split("&"):
                name, _, value = part.partition("=")
                if not _PLAIN_NUMBER.fullmatch(value):
                    return None
                if name == "horizon" and horizon is None and "." not in value:
                    horizon = int(value)
                elif name == "quantiles":
                    quantiles = [*(quantiles or []), float(value)]
                else:
                    return None
            if horizon is not None and horizon < 1:
                return None
        try:
            h = _horizon(self.state, run, horizon, ["query", "horizon"])
            levels = _levels(run, quantiles, ["query", "quantiles"])
        except HTTPException:
            return None
        key = cache_key(run.model_version, item_id, h, levels)
        try:
            body = self.state.cache.get(key)
        except CacheUnavailable:
            return None  # the route tries again, fails fast and counts the error
        if body is None:
            scope[_FAST_PATH_MISS] = key
        else:
            self.state.metrics.cache_lookups(1, 0)
        return body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith(_ITEM_PREFIX)
        ):
            body = self._lookup(scope)
            if body is not None:
                scope["route"] = self.route  # the latency histogram's label
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
