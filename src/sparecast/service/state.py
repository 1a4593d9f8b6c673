"""Runtime state of one server process: the store, the cache, the served run, the inventory plan.

The served run (its model version) is read from the store at start and then re-checked every
``service.version_refresh_s`` seconds by a background task, so the hot path never asks the
store which version is current: a cache hit touches neither the store nor a thread. While the
store is unreachable the last known run stays current and cached answers keep being served.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import polars as pl
from starlette.concurrency import run_in_threadpool

from sparecast.config import Settings
from sparecast.errors import CacheUnavailable, SparecastError, StoreError, StoreUnavailable
from sparecast.inventory.overrides import Override
from sparecast.pipeline.monitor import period_end
from sparecast.pipeline.outputs import POLICY_FILE, REPORT_FILE
from sparecast.pipeline.staging import recover_output_dir
from sparecast.service.errors import NoPlan
from sparecast.service.jobs import JobManager
from sparecast.service.metrics import MonitoringCollector, OverrideFvaCollector, ServiceMetrics
from sparecast.service.models import (
    AlertOut,
    DependencyOut,
    FreshnessOut,
    HealthOut,
    MonitoringOut,
    OverrideFvaOut,
)
from sparecast.store import (
    ForecastCache,
    ForecastStore,
    RunInfo,
    cache_key,
    default_store_url,
    make_cache,
)
from sparecast.store.monitoring import MonitorPass, StoredAlert
from sparecast.urls import redact_url

__all__ = ["ServiceState", "PolicyTable", "plan_hint"]

log = logging.getLogger("sparecast.service")

_T = TypeVar("_T")


def plan_hint(data_dir: Path) -> str:
    """The fix when the inventory plan files are missing (names no path: answers never show
    the server's files)."""
    return (
        "no inventory plan in the served data directory; run `sparecast plan --output DIR` into it"
    )


class PolicyTable:
    """``DIR/policy.parquet`` as a dict item -> row, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._signature: tuple[int, int] | None = None
        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _load(self) -> dict[str, dict[str, Any]]:
        frame = pl.read_parquet(self.path)
        if "unique_id" not in frame.columns:
            raise SparecastError(
                f"{self.path.name} has no unique_id column (columns: {', '.join(frame.columns)}); "
                "re-run `sparecast plan`"
            )
        frame = frame.with_columns(pl.col("unique_id").cast(pl.String))
        temporal = [n for n, t in frame.schema.items() if t.is_temporal()]
        if temporal:
            frame = frame.with_columns(pl.col(temporal).cast(pl.String))
        return {row["unique_id"]: row for row in frame.to_dicts()}

    async def row(self, item_id: str) -> dict[str, Any] | None:
        """The item's plan row (None: item not in the plan); raises NoPlan without a file."""
        signature = self._stat()
        if signature is None:
            raise NoPlan(plan_hint(self.path.parent))
        if signature != self._signature:
            async with self._lock:
                if signature != self._signature:
                    self._rows = await run_in_threadpool(self._load)
                    self._signature = signature
        return self._rows.get(item_id)


def _store_kind(url: str) -> str:
    return url.split(":", 1)[0].split("+", 1)[0]


class ServiceState:
    """Everything a request handler needs; one per app (process)."""

    def __init__(
        self,
        settings: Settings,
        data_dir: Path,
        *,
        metrics_multiprocess_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.store_url = settings.store.url or default_store_url(data_dir)
        self.store = ForecastStore(
            self.store_url, statement_timeout_s=settings.store.statement_timeout_s
        )
        self.cache: ForecastCache = make_cache(settings.store)
        self.cache_ttl_s = settings.store.cache_ttl_s
        self.run: RunInfo | None = None
        self.items: frozenset[str] = frozenset()  # item ids of the served run
        # planner overrides: every current one (filtered by date when used) and the store's
        # override revision they were read at (re-read when it changes)
        self.overrides: dict[str, Override] = {}
        self.overrides_revision = -1
        self.store_error: str | None = None  # last reason the store was unreachable
        self.cache_error: str | None = None
        self.metrics = ServiceMetrics(self._run_created_at, metrics_multiprocess_dir)
        # accuracy monitoring as last read from the store (None: not read yet)
        self.monitoring: tuple[list[StoredAlert], MonitorPass | None] | None = None
        self.metrics.add_collector(MonitoringCollector(self._monitoring_gauges))
        # the overrides' FVA on the served run at the last monitoring pass: (what it was
        # computed for: run id, pass time, override revision; the FvaResult summary)
        self.override_fva: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self.metrics.add_collector(OverrideFvaCollector(self._override_fva_summary))
        self.policy = PolicyTable(data_dir / POLICY_FILE)
        self.report_path = data_dir / REPORT_FILE
        self.jobs = JobManager(
            settings, data_dir, lambda: self.run.model_version if self.run else None, self._sync
        )
        self._refresher: asyncio.Task[None] | None = None
        self._lifespans = 0
        self._migrated = False
        self._store_calls = 0  # store calls in progress (timed-out ones until they end)
        self._store_calls_lock = threading.Lock()

    # -- served run -------------------------------------------------------------------------
    def _run_created_at(self) -> float | None:
        return self.run.created_at.timestamp() if self.run else None

    def _monitoring_gauges(self) -> tuple[list[StoredAlert], float | None] | None:
        if self.monitoring is None:
            return None
        alerts, last = self.monitoring
        return alerts, last.ran_at.timestamp() if last is not None else None

    def refresh_monitoring(self) -> None:
        """Read the open accuracy alerts of the served model version and the last monitoring
        pass (blocking); kept as they were when the store cannot answer. Alerts of a version
        no longer served (rolled back, replaced) are not the served model's state."""
        served = self.run.model_version if self.run is not None else None
        try:
            alerts = self.store.open_alerts(served) if served is not None else []
            last = self.store.last_monitor_pass()
            self.monitoring = (alerts, last)
            self._refresh_override_fva(last)
        except StoreError as exc:  # StoreUnavailable too: the next refresh tries again
            log.debug("reading accuracy alerts: %s", exc)

    def _override_fva_summary(self) -> dict[str, Any] | None:
        return self.override_fva[1] if self.override_fva is not None else None

    def _refresh_override_fva(self, last: MonitorPass | None) -> None:
        """The planner overrides' FVA on the served run's periods that ended by the last
        monitoring pass (what ``sparecast monitor`` reported), recomputed only when the served
        run, the pass or the overrides changed (blocking)."""
        run = self.run
        if run is None or last is None:
            self.override_fva = None
            return
        key = (run.run_id, last.ran_at, last.as_of, self.store.overrides_revision())
        if self.override_fva is not None and self.override_fva[0] == key:
            return
        due = [d for d in run.forecast_dates if period_end(d, run.freq) <= last.as_of]
        runs = [run.run_id] if due else []
        result = self.store.override_fva(runs, until=due[-1] if due else None)
        self.override_fva = (key, result.summary)

    def monitoring_out(self) -> MonitoringOut | None:
        """The /health detail of accuracy monitoring (None: not read yet)."""
        if self.monitoring is None:
            return None
        alerts, last = self.monitoring
        summary = self._override_fva_summary()
        return MonitoringOut(
            last_run_at=last.ran_at if last else None,
            last_model_version=last.model_version if last else None,
            degraded=bool(alerts),
            open_alerts=[
                AlertOut(
                    alert_id=a.alert_id,
                    model_version=a.model_version,
                    grouping=a.grouping,
                    group=a.group,
                    metric=a.metric,
                    value=a.value,
                    expected=a.expected,
                    periods=a.periods,
                    opened_at=a.opened_at,
                    reason=a.reason,
                )
                for a in alerts
            ],
            override_fva=OverrideFvaOut(**summary) if summary else None,
        )

    def _sync(self) -> tuple[str | None, int | None]:
        """Re-read the latest run now (blocking; after a retraining job)."""
        self.refresh_run()
        return (self.run.model_version, self.run.run_id) if self.run else (None, None)

    def refresh_run(self) -> None:
        """Read the latest run from the store (blocking); remember why when unreachable."""
        try:
            if not self._migrated and self.store.ping():
                if not self.store.is_migrated():
                    self.store.migrate()
                self._migrated = True
            run = self.store.served_run()
            if run is not None and (self.run is None or run.run_id != self.run.run_id):
                items = frozenset(self.store.known_items(run.run_id))
            else:
                items = self.items
        except StoreUnavailable as exc:
            self.store_error = str(exc)
            return
        except StoreError as exc:
            self.store_error = str(exc)
            log.warning("forecast store: %s", exc)
            return
        self.store_error = None
        self.items = items  # before the run: a request never sees the new run with old items
        self.run = run
        self.refresh_monitoring()
        self.refresh_overrides()

    def refresh_overrides(self, *, force: bool = False) -> None:
        """Re-read the planner overrides when the store's override revision changed (blocking;
        after this process wrote one, ``force``). A store without the overrides table (an
        older schema) has none."""
        try:
            revision = self.store.overrides_revision()
            if force or revision != self.overrides_revision:
                self.overrides = self.store.overrides()
                self.overrides_revision = revision
        except StoreUnavailable as exc:
            self.store_error = str(exc)
        except StoreError as exc:
            log.warning("planner overrides: %s", exc)

    def active_override(self, item_id: str, today: date | None = None) -> Override | None:
        """The item's planner override when it applies today (not expired), else None."""
        found = self.overrides.get(item_id)
        if found is None or not found.is_active(today or date.today()):
            return None
        return found

    def item_cache_key(
        self, run: RunInfo, item_id: str, horizon: int | None, levels: list[float] | None
    ) -> str:
        """The cache key of an item's forecast answer, with its override's revision when one
        applies (``cache_key``)."""
        found = self.active_override(item_id)
        return cache_key(
            run.model_version, item_id, horizon, levels, found.revision if found else None
        )

    async def start(self) -> None:
        """Read the served run and start the periodic re-check (nested lifespans, e.g. a test
        client inside another, share the first one's)."""
        self._lifespans += 1
        if self._lifespans > 1:
            return
        await run_in_threadpool(self.refresh_run)
        self._refresher = asyncio.create_task(self._refresh_loop())
        # Everything loaded so far (modules, the run's item set) lives as long as the process:
        # keep it out of the collector's full passes, which otherwise stall requests.
        gc.freeze()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.service.version_refresh_s)
            await self._recover_staging()
            await self._refresh_within_deadline()

    async def _recover_staging(self) -> None:
        """Finish a commit that a command killed while moving its files left behind, without
        waiting for the next command or a restart (the directory would otherwise serve the new
        forecasts beside the old plan). Skipped while a command writes into the directory."""
        try:
            for line in await run_in_threadpool(recover_output_dir, self.data_dir, self.settings):
                log.info("recovery: %s", line)
        except Exception:  # noqa: BLE001 - the next round tries again
            log.exception("recovering the data directory failed")

    async def _refresh_within_deadline(self) -> None:
        """``refresh_run`` bounded by the store deadline (without one while the schema may
        still need its migration, which can take longer)."""
        timeout = -1.0 if self._migrated else None
        try:
            await self.store_call(self.refresh_run, timeout=timeout)
        except StoreUnavailable as exc:
            self.store_error = str(exc)
        except Exception:  # noqa: BLE001 - the next round tries again
            log.exception("re-reading the served run failed")

    async def stop(self) -> None:
        """Stop the re-check and release connections (when the last lifespan ends)."""
        self._lifespans -= 1
        if self._lifespans > 0:
            return
        task, self._refresher = self._refresher, None
        if task is not None:
            if task.get_loop() is asyncio.get_running_loop():
                task.cancel()
                # bounded: a re-check cancelled inside a store call must not hold the shutdown
                done, _ = await asyncio.wait({task}, timeout=5.0)
                if not done:
                    log.warning("the run re-check did not stop within 5 s; shutting down anyway")
            elif not task.get_loop().is_closed():  # a closed loop has dropped the task
                task.get_loop().call_soon_threadsafe(task.cancel)
        self.store.dispose()

    # -- store calls with a deadline ---------------------------------------------------------
    def _release_store_call(self) -> None:
        with self._store_calls_lock:
            self._store_calls -= 1

    async def store_call(
        self, fn: Callable[..., _T], *args: Any, timeout: float | None = -1.0, **kwargs: Any
    ) -> _T:
        """``fn(*args, **kwargs)`` (a blocking store call) in a worker thread, awaited at most
        ``timeout`` seconds (default ``service.store_timeout_s``; None: no deadline).

        A frozen database still accepts TCP, so only this client-side deadline bounds a request:
        past it the call's connection is broken (``ForecastStore.abort``: the thread returns and
        the connection is discarded, never pooled half-read) and ``StoreUnavailable`` is raised,
        which answers 503 as an unreachable store does. At most ``service.store_max_calls`` calls
        run at once, timed-out ones included until their thread ends, so repeated timeouts cannot
        take every worker thread; a call waits for a free slot within its deadline."""
        service = self.settings.service
        if timeout is not None and timeout < 0:
            timeout = service.store_timeout_s
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            with self._store_calls_lock:
                if self._store_calls < service.store_max_calls:
                    self._store_calls += 1
                    break
            if deadline is not None and loop.time() >= deadline:
                raise StoreUnavailable(
                    f"the forecast store did not answer within {timeout:g} s "
                    f"({service.store_max_calls} calls are still waiting for it)"
                )
            await asyncio.sleep(0.01)

        handoff = threading.Lock()
        thread: list[int] = []  # the worker thread's id, once it started
        abandoned = False

        def work() -> _T:
            with handoff:
                if abandoned:  # timed out before it started: the slot is released already
                    raise StoreUnavailable("store call abandoned before it started")
                thread.append(threading.get_ident())
            try:
                return fn(*args, **kwargs)
            finally:
                self._release_store_call()

        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            return await asyncio.wait_for(
                anyio.to_thread.run_sync(work, abandon_on_cancel=True), remaining
            )
        except TimeoutError:
            with handoff:
                abandoned = True
                started = bool(thread)
            if started:
                self.store.abort(thread[0])
            else:
                self._release_store_call()
            raise StoreUnavailable(
                f"the forecast store did not answer within {timeout:g} s"
            ) from None

    # -- cache --------------------------------------------------------------------------------
    def cache_get(self, key: str) -> bytes | None:
        """The cached bytes, or None (miss, or the cache is unreachable: then counted as error).

        Called on the event loop: the LRU is in memory, Redis answers a GET on loopback in about
        0.1 ms and RedisCache fails fast while Redis is down, so a thread hop would cost more
        than it saves."""
        try:
            value = self.cache.get(key)
        except CacheUnavailable as exc:
            self.cache_error = str(exc)
            self.metrics.cache_lookups(0, 0, 1)
            return None
        self.metrics.cache_lookups(value is not None, value is None)
        return value

    def cache_get_many(self, keys: list[str]) -> list[bytes | None]:
        """Cached bytes per key (None: miss); everything a miss when the cache is unreachable."""
        try:
            values = self.cache.get_many(keys)
        except CacheUnavailable as exc:
            self.cache_error = str(exc)
            self.metrics.cache_lookups(0, 0, len(keys))
            return [None] * len(keys)
        hits = sum(v is not None for v in values)
        self.metrics.cache_lookups(hits, len(keys) - hits)
        return values

    def cache_set_many(self, values: dict[str, bytes]) -> None:
        """Store answers; an unreachable cache is noted, not an error."""
        if not values:
            return
        try:
            if len(values) == 1:
                key, value = next(iter(values.items()))
                self.cache.set(key, value, self.cache_ttl_s)
            else:
                self.cache.set_many(values, self.cache_ttl_s)
        except CacheUnavailable as exc:
            self.cache_error = str(exc)

    # -- health -------------------------------------------------------------------------------
    async def health(self) -> HealthOut:
        """State of the store and the cache, the served version and its freshness (pings both;
        the store within the store deadline: a frozen database is "down")."""
        try:
            store_ok = await self.store_call(self.store.ping)
        except StoreUnavailable as exc:
            self.store_error = str(exc)
            store_ok = False
        if store_ok and self.store_error is not None and self._migrated:
            await self._refresh_within_deadline()
        store_kind = _store_kind(self.store_url)
        if store_ok:
            store = DependencyOut(state="ok", kind=store_kind)
        else:
            store = DependencyOut(
                state="down",
                kind=store_kind,
                detail=f"{redact_url(self.store_url)} unreachable"
                + (f" ({self.store_error})" if self.store_error else "")
                + "; cached forecasts are still served, uncached ones answer 503",
            )
        cache_ok = await run_in_threadpool(self.cache.ping)
        if cache_ok:
            self.cache_error = None
            cache = DependencyOut(state="ok", kind=self.cache.kind)
        else:
            cache = DependencyOut(
                state="down",
                kind=self.cache.kind,
                detail="cache unreachable"
                + (f" ({self.cache_error})" if self.cache_error else "")
                + "; forecasts are answered from the store",
            )
        run = self.run
        if not store_ok and not cache_ok:
            status = "down"
        elif not store_ok or not cache_ok or run is None:
            status = "degraded"
        else:
            status = "ok"
        now = datetime.now(UTC)
        freshness = FreshnessOut(
            run_created_at=run.created_at if run else None,
            run_age_s=round((now - run.created_at).total_seconds(), 3) if run else None,
            data_window_start=run.data_start if run else None,
            data_window_end=run.data_end if run else None,
            data_age_days=(date.today() - run.data_end).days if run else None,
        )
        return HealthOut(
            status=status,
            model_version=run.model_version if run else None,
            run_id=run.run_id if run else None,
            freshness=freshness,
            dependencies={"store": store, "cache": cache},
            monitoring=self.monitoring_out(),
        )

    def no_run_message(self) -> str:
        """Why there is nothing to serve yet, and the fix (no URL, path or driver text: the
        details are in the server log and the authenticated /health)."""
        if self.store_error is not None:
            return (
                "the forecast store is unreachable and no forecast is cached; retry when it is back"
            )
        return (
            "the forecast store holds no run yet; run `sparecast run --output DIR` into the "
            "served directory (or `sparecast demo`) or POST /retrain"
        )
