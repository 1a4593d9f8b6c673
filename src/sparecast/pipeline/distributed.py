"""The forecasting core on a Dask cluster (``sparecast run --workers N | --cluster ADDRESS``,
``[compute]`` settings; needs ``pip install 'sparecast[dask]'``).

The items are cut into chunks of ``compute.chunk_items`` rows, in panel order. Per chunk, on the
workers: the classification, the rolling-origin backtest of the classical (per-item) methods and
their forecasts. The scores are gathered on the client, where the router chooses per class (or
tier, or item) on all of them, exactly as in one process. Global methods (``needs_panel``, which
learn across items) run on the client over the whole panel while the workers compute the
chunks, so that they see every item as in one process, except the global LightGBM, which trains
on the cluster from rows built per chunk (``sparecast.pipeline.dask_ml``). The results are
therefore the same as the single-process run's (tests/pipeline/test_distributed.py checks it),
LightGBM's close to them (tests/pipeline/test_dask_ml.py).

A long Parquet file can be read per chunk on the workers (:meth:`DaskEngine.load_file`: a
:class:`ChunkedPanel`, the client holds no demand matrix): every step then maps over the file
ranges, LightGBM included; the other global methods are refused on it.

The plan's lead-time demand distributions, per-item policies and stockout risks run per chunk
on the workers too (:meth:`DaskEngine.plan_items`), with the calibration and the parameters
shared by all items computed on the client; the aggregate service mode stays on the client.

Memory: at most two chunks per worker are in flight (each chunk is sent when its task is
submitted and released when its result is back); the client holds the panel and the gathered
results, as in one process (the forecasts are copied into the whole panel's arrays as each
chunk comes back, not held per chunk as well).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, get_args

import numpy as np
import polars as pl

from sparecast.classify import REGULAR_TIERS, TierThresholds, classify
from sparecast.config import ComputeSettings, Settings
from sparecast.data.outliers import DEFAULT_OUTLIER_ACTION, DEFAULT_OUTLIER_FACTOR, outlier_pool
from sparecast.data.panel import DemandPanel, Freq, infer_freq, period_index, period_starts
from sparecast.data.schema import ValidationReport
from sparecast.errors import ConfigError, DataValidationError, MethodError
from sparecast.evaluate.backtest import BacktestResult, backtest, backtest_origins
from sparecast.evaluate.metrics import seasonal_naive_scale, seasonal_naive_scales
from sparecast.inventory.calibration import calibration_groups, calibration_window
from sparecast.inventory.decide import calibrated_item_targets, level_window
from sparecast.inventory.plan import ItemPlan, plan_items
from sparecast.inventory.policy import level_weight, level_weight_sums, protection_review_periods
from sparecast.inventory.simulate import frequency_groups
from sparecast.methods import get_method, resolve_methods
from sparecast.methods.distributions import (
    lead_time_demand,
    lead_time_matrix,
    ltd_level_alpha,
    pooled_of,
    pooled_size_cv2,
    size_cv2_values,
)
from sparecast.methods.level_alpha import (
    level_alpha_rows,
    select_level_alpha,
    select_level_alpha_on,
)
from sparecast.methods.ml import GlobalLightGBM
from sparecast.pipeline.chunks import (
    ChunkCheck,
    ChunkedPanel,
    FileRange,
    ReadSpec,
    as_panel,
    check_range,
    distinct_ids,
    medians_of_range,
    merge_reports,
    why_not_chunked,
)
from sparecast.pipeline.dask_ml import dask_model, fit_on_cluster, predict_chunk
from sparecast.pipeline.engine import LOCAL, Engine
from sparecast.pipeline.progress import Progress, no_progress

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "DaskEngine",
    "FileLoad",
    "NotChunkable",
    "chunk_bounds",
    "compute_engine",
    "memory_limit",
    "merge_notes",
    "uses_cluster",
]

INSTALL_HINT = "pip install 'sparecast[dask]'"


def chunk_bounds(n_items: int, chunk_items: int) -> list[tuple[int, int]]:
    """``[start, stop)`` rows of each chunk of at most ``chunk_items`` items (the last one may be
    shorter); one empty chunk for an empty panel."""
    if chunk_items < 1:
        raise ConfigError(f"compute.chunk_items must be >= 1, got {chunk_items}")
    if n_items == 0:
        return [(0, 0)]
    return [(a, min(a + chunk_items, n_items)) for a in range(0, n_items, chunk_items)]


def _chunk(panel: DemandPanel, a: int, b: int) -> DemandPanel:
    attrs = panel.attributes.slice(a, b - a) if panel.attributes is not None else None
    return DemandPanel(panel.y[a:b], panel.item_ids[a:b], panel.start, panel.freq, attrs)


def _source(panel: DemandPanel, a: int, b: int) -> FileRange:
    """The file range of the rows ``[a, b)`` of a :class:`ChunkedPanel` (one of its chunks)."""
    assert isinstance(panel, ChunkedPanel)
    return panel.source(a, b)


def _refuse_global(panel: DemandPanel, names: list[str], on_cluster: Iterable[str] = ()) -> None:
    """A global method (learning across items) needs the whole panel; a ChunkedPanel has none,
    unless the method trains on the cluster (``on_cluster``: from the chunks' rows)."""
    if not isinstance(panel, ChunkedPanel):
        return
    glob = [n for n in names if get_method(n).needs_panel and n not in set(on_cluster)]
    if glob:
        raise ConfigError(
            f"{glob} learn across items and need the whole panel on the client; a panel read "
            "per chunk on the workers (DaskEngine.load_file) runs the per-item methods and "
            "the global methods that train on the cluster (LightGBM with a built-in "
            "objective) only"
        )


class NotChunkable(ConfigError):
    """The file cannot be read per chunk with the one-process result (the reason); load it in
    one piece."""


@dataclass
class FileLoad:
    """A long Parquet file loaded per chunk on the workers (:meth:`DaskEngine.load_file`): the
    panel without its matrix, the demand validation report and rejected rows of all chunks
    (as the one-process load gives them; rejected rows in chunk order)."""

    panel: ChunkedPanel
    report: ValidationReport
    rejected: pl.DataFrame
    timings: dict[str, float]


# ---------------------------------------------------------------- tasks (run on the workers)
def _classify_task(
    source: DemandPanel | FileRange, thresholds: TierThresholds | None
) -> pl.DataFrame:
    return classify(as_panel(source), thresholds=thresholds)


def _backtest_task(
    source: DemandPanel | FileRange,
    percentage_items: np.ndarray,
    kwargs: dict[str, Any],
    models: dict[str, GlobalLightGBM] | None = None,
    origins: list[int] | None = None,
) -> BacktestResult:
    """The chunk's backtest; ``models`` (trained on the cluster) forecast every window from
    ``origins`` here and are scored with the others."""
    chunk = as_panel(source)
    window = {n: predict_chunk(m, chunk, kwargs["h"], origins) for n, m in (models or {}).items()}
    result = backtest(chunk, percentage_items=percentage_items, window_forecasts=window, **kwargs)
    scales = None
    if isinstance(source, FileRange) and result.errors is not None:
        # the client has no matrix to score combinations on: each chunk's training scales
        scales = seasonal_naive_scales(chunk.y, result.seasonality, result.origins)
    return dataclasses.replace(result, panel=None, train_scales=scales)  # the client: the panel


def _forecast_task(
    source: DemandPanel | FileRange,
    h: int,
    names: list[str],
    params: dict[str, dict[str, Any]],
    models: dict[str, GlobalLightGBM] | None = None,
) -> dict[str, np.ndarray | str]:
    """Forecasts of every method of ``names`` (``models``: trained on the cluster); the message
    of a method that cannot run."""
    chunk = as_panel(source)
    classical = [n for n in names if n not in (models or {})]
    values, failed = LOCAL.forecast_all(chunk, h, classical, params, lambda _: None)
    for name, model in (models or {}).items():
        values[name] = predict_chunk(model, chunk, h)[0]
    return {**values, **failed}


class DaskEngine:
    """The core's steps per chunk of ``chunk_items`` items on the cluster of ``client``; global
    methods on the client (see the module docstring). ``progress(label, done, total)`` is called
    as each chunk's result comes back."""

    def __init__(
        self,
        client: Client,
        chunk_items: int,
        *,
        progress: Progress = no_progress,
        lightgbm_on_dask: bool = True,
    ) -> None:
        self.client = client
        self.chunk_items = chunk_items
        self.progress = progress
        self.lightgbm_on_dask = lightgbm_on_dask
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------ models trained on the cluster
    def _cluster_models(
        self, panel: DemandPanel, names: list[str], params: dict[str, dict[str, Any]]
    ) -> dict[str, GlobalLightGBM]:
        """The unfitted models of ``names`` that train on the cluster (lightgbm.dask)."""
        if not self.lightgbm_on_dask:
            return {}
        models = {n: dask_model(n, panel.freq, params) for n in names}
        return {n: m for n, m in models.items() if m is not None}

    def trains_on_cluster(self, name: str, params: dict[str, dict[str, Any]] | None) -> bool:
        """Whether method ``name`` with the run's ``params`` trains on the cluster whatever the
        panel's frequency (so that a panel read per chunk can serve it)."""
        if not self.lightgbm_on_dask:
            return False
        try:
            return all(dask_model(name, freq, params) is not None for freq in get_args(Freq))
        except MethodError:  # bad parameters: the run reports them where it checks them
            return False

    def _fit_models(
        self, models: dict[str, GlobalLightGBM], panel: DemandPanel, h: int, label: str
    ) -> dict[str, Any]:
        """Fit each model on ``panel`` on the cluster; their futures, sent to every worker. A
        :class:`ChunkedPanel`'s chunks are its file ranges (each worker reads its rows)."""
        fitted: dict[str, Any] = {}
        bounds = chunk_bounds(panel.n_items, self.chunk_items)
        chunk_of: Callable[[DemandPanel, int, int], DemandPanel | FileRange] = _chunk
        if isinstance(panel, ChunkedPanel):
            bounds, chunk_of = panel.bounds, _source
        for name, model in models.items():
            t0 = time.perf_counter()
            model, parts = fit_on_cluster(
                self.client,
                model,
                panel,
                h,
                bounds,
                chunk_of,
                label=f"{label} {name}",
                progress=self.progress,
            )
            for k, v in parts.items():
                self.timings[f"{label}_{name}_{k}"] = self.timings.get(f"{label}_{name}_{k}", 0) + v
            self.timings[f"{label}_{name}_fit_s"] = time.perf_counter() - t0
            fitted[name] = self.client.scatter(model, broadcast=True, hash=False)
        return fitted

    # ------------------------------------------------------------ mapping over the chunks
    def _map(
        self,
        panel: DemandPanel,
        label: str,
        task: Callable[..., Any],
        *args: Any,
        per_chunk: Callable[[int, int], tuple[Any, ...]] = lambda a, b: (),
        meanwhile: Callable[[], Any] | None = None,
        keep: Callable[[int, int, Any], Any] = lambda a, b, result: result,
    ) -> tuple[list[Any], Any]:
        """``task(chunk, *per_chunk(a, b), *args)`` for every chunk, in panel order, with at most
        two chunks per worker in flight (each chunk is sent with its task and released with
        its result); ``meanwhile()`` runs here while the workers compute. Returns what
        ``keep(a, b, result)`` keeps of each chunk's result (default all of it; e.g. None once
        copied into a whole-panel array, so that the chunks' results are not all held), in chunk
        order, and what ``meanwhile`` returned. A :class:`ChunkedPanel`'s chunks are its
        file ranges (each worker reads its own rows), any other panel's are slices of it."""
        if isinstance(panel, ChunkedPanel):
            return self._map_chunks(
                panel.bounds,
                panel.source,
                label,
                task,
                *args,
                per_chunk=per_chunk,
                meanwhile=meanwhile,
                keep=keep,
            )
        return self._map_chunks(
            chunk_bounds(panel.n_items, self.chunk_items),
            lambda a, b: _chunk(panel, a, b),
            label,
            task,
            *args,
            per_chunk=per_chunk,
            meanwhile=meanwhile,
            keep=keep,
        )

    def _map_chunks(
        self,
        bounds: list[tuple[int, int]],
        make_chunk: Callable[[int, int], Any],
        label: str,
        task: Callable[..., Any],
        *args: Any,
        per_chunk: Callable[[int, int], tuple[Any, ...]] = lambda a, b: (),
        meanwhile: Callable[[], Any] | None = None,
        keep: Callable[[int, int, Any], Any] = lambda a, b, result: result,
    ) -> tuple[list[Any], Any]:
        """:meth:`_map` over the rows ``bounds`` of any data: ``make_chunk(a, b)`` is sent
        with each task."""
        from distributed import as_completed

        n_workers = max(1, len(self.client.nthreads()))
        limit = 2 * n_workers
        results: list[Any] = [None] * len(bounds)
        t0 = time.perf_counter()

        def submit(i: int) -> Any:
            a, b = bounds[i]
            chunk = self.client.scatter(make_chunk(a, b), hash=False)
            future = self.client.submit(task, chunk, *per_chunk(a, b), *args, pure=False)
            future.chunk_index = i  # type: ignore[attr-defined]
            return future

        queue = as_completed([submit(i) for i in range(min(limit, len(bounds)))])
        nxt = min(limit, len(bounds))
        other = meanwhile() if meanwhile is not None else None
        done = 0
        for future in queue:
            i = future.chunk_index
            a, b = bounds[i]
            # a task's exception is raised here, as it was
            results[i] = keep(a, b, future.result())
            future.release()
            done += 1
            self.progress(
                f"{label} chunk {i + 1}/{len(bounds)} (items {a + 1}-{b})", done, len(bounds)
            )
            if nxt < len(bounds):
                queue.add(submit(nxt))
                nxt += 1
        self.timings[f"{label}_s"] = self.timings.get(f"{label}_s", 0.0) + (
            time.perf_counter() - t0
        )
        return results, other

    # ------------------------------------------------------------ loading per chunk
    def load_file(self, path: str, settings: Settings) -> FileLoad:
        """A long-format Parquet file (``unique_id, ds, y``) loaded per chunk on the workers, as
        ``sparecast.pipeline.load.load_panel`` loads it in one process (same rules, same
        calendar, same rows): the client reads the distinct ids (one column) and cuts them
        into ranges of ``chunk_items``; the workers read and validate their ranges, in two
        rounds (the items' medians, from which the client computes the extreme-quantity rule's
        typical sizes of all items, then the validation), and each step later reads its range
        again (:func:`sparecast.pipeline.chunks.as_panel`). NotChunkable (a ConfigError) says
        why a file cannot be read so (it is then loaded in one piece)."""
        why = why_not_chunked(path)
        if why is None:
            ids, why = distinct_ids(path)
        if why is not None:
            raise NotChunkable(f"{path} is loaded in one piece: {why}")
        t0 = time.perf_counter()
        d = settings.data
        today = d.today or date.today()
        end = d.end_date
        bounds = chunk_bounds(len(ids), self.chunk_items)
        base = ReadSpec(str(path), today=today, window_end=end)

        def validated(spec: ReadSpec, label: str) -> tuple[list[ChunkCheck], ReadSpec]:
            """The two rounds over the ranges: the items' medians, then the checks with the
            typical sizes of all items (returned in the spec)."""
            medians, _ = self._map_chunks(
                live, lambda a, b: FileRange(spec, ids[a], ids[b - 1]), label, medians_of_range
            )
            spec = dataclasses.replace(spec, pool=outlier_pool(pl.concat(medians)))
            checks, _ = self._map_chunks(
                live, lambda a, b: FileRange(spec, ids[a], ids[b - 1]), label, check_range
            )
            return checks, spec

        if not ids:
            raise DataValidationError(f"no demand rows in {path}")
        live = [(a, b) for a, b in bounds if b > a]
        start = None
        if d.window_days is not None:
            last = end
            if last is None:  # as load_panel's probe: the default rules, no window
                probe = dataclasses.replace(
                    base,
                    window_end=None,
                    outlier_factor=DEFAULT_OUTLIER_FACTOR,
                    outlier_action=DEFAULT_OUTLIER_ACTION,
                )
                maxs = [
                    c.report.date_max
                    for c in validated(probe, "load probe")[0]
                    if c.report.date_max is not None
                ]
                last = max(maxs) if maxs else None
            if last is not None:
                start = last - timedelta(days=d.window_days - 1)
        spec = dataclasses.replace(
            base,
            window_start=start,
            outlier_factor=d.outlier_factor,
            outlier_action=d.outlier_action,
        )
        checks, spec = validated(spec, "load")
        report = merge_reports([c.report for c in checks])
        if d.strict:
            report.raise_if_rejected()
        if report.rows_kept == 0:
            raise DataValidationError(
                f"no valid demand rows in {path}: " + "; ".join(report.summary_lines())
            )
        # the calendar as DemandPanel.from_long makes it of all valid rows
        days = np.unique(np.concatenate([c.days for c in checks])).astype("datetime64[D]")
        freq = d.freq or infer_freq(days)
        first = np.datetime64(start, "D") if start is not None else days[0]
        last_day = np.datetime64(end, "D") if end is not None else days[-1]
        if last_day < first:
            raise DataValidationError(f"panel end {last_day} is before its start {first}")
        first = period_starts(first, 1, freq)[0]
        n_periods = int(period_index(np.array([last_day]), first, freq)[0]) + 1
        spec = dataclasses.replace(spec, freq=freq, start=first.item(), end=last_day.item())
        sources: list[tuple[int, int, FileRange]] = []
        row = 0
        for (a, b), check in zip(live, checks, strict=True):
            if check.item_ids:  # a range whose rows were all rejected has no items
                n = len(check.item_ids)
                sources.append(
                    (row, row + n, FileRange(spec, ids[a], ids[b - 1], tuple(check.item_ids)))
                )
                row += n
        item_ids = np.array([i for c in checks for i in c.item_ids], dtype=object)
        panel = ChunkedPanel(
            np.empty((item_ids.size, 0), dtype=np.float32),
            item_ids,
            first,
            freq,  # type: ignore[arg-type]
            periods=n_periods,
            sources=tuple(sources),
        )
        rejected = pl.concat([c.rejected for c in checks], how="diagonal_relaxed")
        return FileLoad(panel, report, rejected, {"load_s": time.perf_counter() - t0})

    def with_history(self, panel: ChunkedPanel, n_tail: int, seasonality: int) -> ChunkedPanel:
        """``panel`` with what the store and monitoring take of the whole history, computed per
        chunk on the workers: the last ``n_tail`` periods of every item (the actuals) and its
        MASE and RMSSE scales (``seasonality``)."""
        parts, _ = self._map(panel, "history", _history_task, n_tail, seasonality)
        tail = np.concatenate([p[0] for p in parts], axis=0)
        scales = {
            "mase": np.concatenate([p[1] for p in parts]),
            "rmsse": np.concatenate([p[2] for p in parts]),
        }
        means = np.concatenate([p[3] for p in parts])
        return dataclasses.replace(panel, tail=tail, scales=scales, means=means)

    # ------------------------------------------------------------ the Engine steps
    def classify(self, panel: DemandPanel, thresholds: TierThresholds | None) -> pl.DataFrame:
        parts, _ = self._map(panel, "classify", _classify_task, thresholds)
        return pl.concat(parts, how="vertical")

    def backtest(self, panel: DemandPanel, **kwargs: Any) -> BacktestResult:
        t0 = time.perf_counter()
        asked = [m.name for m in resolve_methods(kwargs.pop("methods", None))]
        classical = [n for n in asked if not get_method(n).needs_panel]
        params: dict[str, dict[str, Any]] = kwargs.pop("params", None) or {}
        cluster = (
            self._cluster_models(panel, asked, params) if kwargs.get("reuse_fits", True) else {}
        )
        _refuse_global(panel, asked, cluster)
        global_ = [n for n in asked if get_method(n).needs_panel and n not in cluster]
        if not classical and not cluster:  # nothing to cut into chunks
            return LOCAL.backtest(panel, methods=asked, params=params, **kwargs)
        pct = kwargs.pop("percentage_items", None)
        if pct is None:
            pct = np.isin(self.classify(panel, TierThresholds())["tier"].to_numpy(), REGULAR_TIERS)
        pct = np.asarray(pct, dtype=bool)
        kwargs.pop("progress", None)  # progress is shown per chunk (self.progress)
        per_chunk = [n for n in asked if n in classical or n in cluster]
        chunk_kwargs = {
            **kwargs,
            "methods": per_chunk,
            "params": {k: v for k, v in params.items() if k in per_chunk},
        }
        origins = backtest_origins(
            panel.n_periods, kwargs["h"], kwargs["n_windows"], kwargs.get("step") or kwargs["h"]
        )
        models: dict[str, Any] = {}
        if cluster:  # one fit before the earliest origin, as the backtest_kernel in one process
            models = self._fit_models(
                cluster, panel.slice_periods(origins[0]), kwargs["h"], "backtest"
            )

        def global_backtest() -> BacktestResult | None:
            if not global_:
                return None
            return backtest(
                panel,
                methods=global_,
                params={k: v for k, v in params.items() if k in global_},
                percentage_items=pct,
                references=(),
                **kwargs,
            )

        parts, glob = self._map(
            panel,
            "backtest",
            _backtest_task,
            chunk_kwargs,
            models,
            origins,
            per_chunk=lambda a, b: (pct[a:b],),
            meanwhile=global_backtest,
        )
        return _merge_backtests(panel, asked, parts, glob, time.perf_counter() - t0)

    def forecast_all(
        self,
        panel: DemandPanel,
        h: int,
        names: list[str],
        params: dict[str, dict[str, Any]],
        step: Callable[[str], None],
    ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        cluster = self._cluster_models(panel, names, params)
        _refuse_global(panel, names, cluster)
        classical = [n for n in names if not get_method(n).needs_panel]
        glob_failed: dict[str, str] = {}
        models: dict[str, Any] = {}
        for name, model in cluster.items():
            try:
                models.update(self._fit_models({name: model}, panel, h, "forecast"))
            except MethodError as exc:  # e.g. too short a history: the fallback serves
                glob_failed[name] = str(exc)
        global_ = [
            n
            for n in names
            if get_method(n).needs_panel and n not in models and n not in glob_failed
        ]
        glob_values: dict[str, np.ndarray] = {}

        def global_forecasts() -> None:
            values, failed = LOCAL.forecast_all(panel, h, global_, params, step)
            glob_values.update(values)
            glob_failed.update(failed)

        # each chunk's forecasts are copied into the whole panel's arrays as they come back and
        # released at once: the client holds the forecasts once, not the chunks' too
        gathered: dict[str, np.ndarray] = {}
        chunk_failed: dict[str, tuple[int, str]] = {}  # the message of the earliest chunk

        def keep(a: int, b: int, part: dict[str, np.ndarray | str]) -> None:
            for name, v in part.items():
                if isinstance(v, str):
                    if name not in chunk_failed or a < chunk_failed[name][0]:
                        chunk_failed[name] = (a, v)
                    continue
                if name not in gathered:  # every chunk's forecasts of a method share a dtype
                    gathered[name] = np.empty((panel.n_items, h), dtype=v.dtype)
                gathered[name][a:b] = v

        if classical or models:
            self._map(
                panel,
                "forecast",
                _forecast_task,
                h,
                [*classical, *models],
                params,
                models,
                meanwhile=global_forecasts,
                keep=keep,
            )
        else:
            global_forecasts()
        values: dict[str, np.ndarray] = {}
        failed: dict[str, str] = {}
        for name in names:
            if name in glob_failed:
                failed[name] = glob_failed[name]
            elif name in glob_values:
                values[name] = glob_values[name]
            else:
                if name in chunk_failed:
                    failed[name] = chunk_failed[name][1]
                else:
                    values[name] = gathered[name]
                gathered.pop(name, None)
                step(name)
        return values, failed

    def forecast_quantiles(
        self, panel: DemandPanel, point: np.ndarray, levels: list[float]
    ) -> np.ndarray:
        """Per chunk on the workers (a quantile of an item needs only its history)."""
        parts, _ = self._map(
            panel,
            "quantiles",
            _quantiles_task,
            list(levels),
            per_chunk=lambda a, b: (point[a:b],),
        )
        return np.concatenate(parts, axis=0)

    def plan_items(
        self,
        y: np.ndarray,
        lead_times: list[np.ndarray],
        targets: np.ndarray,
        order_quantity: np.ndarray,
        position: np.ndarray,
        settings: Settings,
        *,
        panel: ChunkedPanel | None = None,
        **kwargs: Any,
    ) -> ItemPlan:
        """The plan's distributions and policies per chunk of items on the workers, as
        :func:`sparecast.inventory.plan.plan_items` computes them in one process (the per-item
        service mode; any ``inventory.level``: an item's level shift reads its own history and
        rate only, ``policy.rescale_samples``, and the adaptive level's one weight, of the
        whole panel, is computed here). Here, on the client: the fill-rate
        calibration on its sample of items (``inventory.calibration_max_items``: the nominal
        targets and the level sigma per target of ``inventory.item_level_sigmas``) and the level
        weight of the distributions (one value for all items); on the workers: each chunk's
        lead-time demand (its blocks of ``inventory.chunk_size`` items draw as in the whole, so
        the chunks are cut at multiples of it), policy, rules and stockout risk. The
        aggregate service mode (one optimisation over all items) and the sparse items' value
        rule (``inventory.sparse_policy = value``: one pool) run on the client.

        ``panel``: the history is a :class:`ChunkedPanel` read per chunk on the workers (``y``
        is then unused): the client gathers each item's largest demand, frequency group and
        mean, then the rows of the calibration's sample and of the level weight's items only, and
        the pooled size CV from the chunks' values; each plan chunk reads its own rows."""
        inv = settings.inventory
        n = panel.n_items if panel is not None else int(np.asarray(y).shape[0])
        pooled = inv.service_mode == "aggregate" or inv.sparse_policy == "value"
        if pooled or n == 0:
            if panel is not None:
                raise ConfigError(
                    "the aggregate service mode and inventory.sparse_policy = value plan all "
                    "items at once: load the history in one piece"
                )
            return plan_items(y, lead_times, targets, order_quantity, position, settings, **kwargs)
        t_start = time.perf_counter()
        kwargs.pop("progress", None)  # progress is shown per chunk (self.progress)
        period_days = float(kwargs.get("period_days", 1.0))
        lts = [np.atleast_1d(np.asarray(lead_times[i], dtype=np.float64)) for i in range(n)]
        nominal = np.broadcast_to(np.asarray(targets, dtype=np.float64), (n,)).copy()
        q = np.broadcast_to(np.asarray(order_quantity, dtype=np.float64), (n,))
        notes: list[str] = []
        timings: dict[str, float] = {}
        chunk_settings = settings
        review = protection_review_periods(inv.policy, inv.review_period_days / period_days)
        block = inv.chunk_size
        size = max(1, round(self.chunk_items / block)) * block
        bounds = chunk_bounds(n, size)
        calibrate = inv.calibrate and inv.target_type == "fill_rate"
        history: np.ndarray = np.asarray(y)
        sample_y: np.ndarray | None = None
        groups: np.ndarray | None = None
        alpha_y: np.ndarray | None = None
        alpha_all = False
        if panel is not None:
            t0 = time.perf_counter()
            sample_y, freq, mean, alpha_y, alpha_all, weight = self._plan_rows(
                panel, bounds, lts, settings, period_days, calibrate
            )
            # the calibration groups of the whole history (value classes by the plan's Q)
            groups = calibration_groups(
                None,
                np.asarray(kwargs.get("unit_cost", np.nan), dtype=np.float64),
                q,
                inv.calibration_value_classes,
                groups=freq,
                mean_demand=mean,
            )
            history = np.empty((0, panel.n_periods), dtype=np.float32)
            timings["plan_rows_s"] = time.perf_counter() - t0
        if inv.level == "adaptive" and kwargs.get("level_weight") is None:
            # one weight for all items, of the whole panel
            if panel is None:
                weight = level_weight(
                    level_weight_sums(history, level_window(settings, period_days))
                )
            kwargs["level_weight"] = weight
        if calibrate:  # as plan_policy, on the client: nominal targets and level sigmas
            t0 = time.perf_counter()
            nominal, sigma, allocate = calibrated_item_targets(
                history if sample_y is None else sample_y,
                lts,
                nominal,
                q,
                settings,
                period_days,
                np.broadcast_to(np.asarray(kwargs.get("moq", 1.0), dtype=np.float64), (n,)),
                np.broadcast_to(np.asarray(kwargs.get("lot_size", 1.0), dtype=np.float64), (n,)),
                # the cost-aware calibration values the stock as plan_policy does (NaN: 1)
                np.broadcast_to(
                    np.asarray(kwargs.get("unit_cost", np.nan), dtype=np.float64), (n,)
                ),
                notes,
                groups=groups,
            )
            timings["calibration_s"] = time.perf_counter() - t0
            if allocate:
                # the model's allocation (decide.allocated_item_targets) weighs every item
                # against the others: planned in one piece on the client, as the pooled modes
                if panel is None:
                    return plan_items(
                        y, lead_times, targets, order_quantity, position, settings, **kwargs
                    )
                notes.append(
                    "targets planned as given: the model's allocation that replaces the "
                    "calibration needs the history in one piece (a chunked panel was given)"
                )
            # the workers plan at the calibrated nominal targets and level sigmas (the level
            # factors of an item do not depend on the other items: policy.level_mixture)
            kwargs["level_sigma"] = sigma
            chunk_settings = settings.model_copy(
                update={"inventory": inv.model_copy(update={"calibrate": False})}
            )
        if panel is None:
            alpha = ltd_level_alpha(history, lts, review)
            shared = {"level_alpha": alpha, "pooled_cv2": pooled_size_cv2(history, alpha)}

            def make_chunk(a: int, b: int) -> Any:
                return history[a:b]
        else:
            assert alpha_y is not None
            horizon = int(round(float(np.nanmedian(lead_time_matrix(lts, n)[0])) + review))
            if alpha_all:  # up to 5,000 items: all of them, those with demand kept
                alpha = select_level_alpha(alpha_y, horizon)
            else:
                alpha = select_level_alpha_on(alpha_y, horizon)
            values, _ = self._map_chunks(
                bounds, panel.range_of, "plan size cv", _size_cv2_task, alpha
            )
            shared = {"level_alpha": alpha, "pooled_cv2": pooled_of(np.concatenate(values))}
            make_chunk = panel.range_of

        def rows(a: int, b: int) -> tuple[Any, ...]:
            per_item = {
                k: (v[a:b] if isinstance(v, list) or np.ndim(v) == 1 else v)
                for k, v in kwargs.items()
            }
            return (lts[a:b], nominal[a:b], q[a:b], position[a:b], per_item, a // block)

        parts, _ = self._map_chunks(
            bounds,
            make_chunk,
            "plan",
            _plan_task,
            shared,
            chunk_settings,
            per_chunk=rows,
        )
        for part in parts:
            for k, v in part.timings.items():
                timings[k] = timings.get(k, 0.0) + v
        timings["plan_chunks_s"] = time.perf_counter() - t_start
        return _merge_item_plans(parts, notes, timings)

    def _plan_rows(
        self,
        panel: ChunkedPanel,
        bounds: list[tuple[int, int]],
        lts: list[np.ndarray],
        settings: Settings,
        period_days: float,
        calibrate: bool,
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray, bool, float]:
        """What the client of a plan on a :class:`ChunkedPanel` needs of the history: the rows
        of the calibration's sample (None: not calibrated), every item's frequency group and
        mean demand per period, the rows the level weight is chosen on and whether they are
        all items, and the adaptive level's weight of the whole panel
        (:func:`~sparecast.inventory.policy.level_weight`); read on the workers (the items'
        largest demands, groups, means and level-weight sums first, then the rows of those
        items)."""
        n, n_periods = panel.n_items, panel.n_periods
        window = level_window(settings, period_days)
        stats, _ = self._map_chunks(bounds, panel.range_of, "plan stats", _plan_stats_task, window)
        row_max = np.concatenate([s[0] for s in stats])
        groups = np.concatenate([s[1] for s in stats])
        mean = np.concatenate([s[2] for s in stats])
        weight = level_weight((sum(s[3][0] for s in stats), sum(s[3][1] for s in stats)))
        sample: np.ndarray | None = None
        if calibrate:
            win = calibration_window(n_periods, lts, settings, period_days=period_days)
            sample = win.sample if not win.why else np.empty(0, dtype=np.int64)
        chosen = level_alpha_rows(row_max)
        alpha_rows = np.arange(n) if chosen is None else chosen
        need = np.union1d(alpha_rows, sample if sample is not None else np.empty(0, np.int64))
        need = need.astype(np.int64)
        live = []
        for a, b in bounds:
            local = need[(need >= a) & (need < b)]
            if local.size:
                live.append((a, b, local))
        by_bounds = {(a, b): local for a, b, local in live}
        got, _ = self._map_chunks(
            [(a, b) for a, b, _ in live],
            lambda a, b: panel.range_of(a, b, by_bounds[(a, b)]),
            "plan sample",
            _rows_task,
        )
        matrix = np.concatenate(got, axis=0) if got else np.empty((0, n_periods), dtype=np.float32)
        sample_y = None if sample is None else matrix[np.searchsorted(need, sample)]
        alpha_y = matrix[np.searchsorted(need, alpha_rows)]
        return sample_y, groups, mean, alpha_y, chosen is None, weight


def _plan_stats_task(
    source: FileRange, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]:
    """Each item's largest demand, :func:`frequency_groups` and mean demand per period over
    its whole history, and the chunk's :func:`level_weight_sums` (``window``: the recent
    level's, in periods)."""
    y = as_panel(source).y
    empty = np.zeros(y.shape[0])
    mean = np.maximum(np.asarray(y, dtype=np.float64), 0.0).mean(axis=1) if y.shape[1] else empty
    maxima = y.max(axis=1) if y.shape[1] else empty
    return maxima, frequency_groups(y), mean, level_weight_sums(y, window)


def _rows_task(source: FileRange) -> np.ndarray:
    """The history rows of the items of ``source`` (a range read for some items only)."""
    return as_panel(source).y


def _size_cv2_task(source: FileRange, alpha: float) -> np.ndarray:
    """The chunk's items' squared size CVs of the pooled one (:func:`size_cv2_values`)."""
    return size_cv2_values(as_panel(source).y, alpha)


def _plan_task(
    y: np.ndarray | FileRange,
    lead_times: list[np.ndarray],
    targets: np.ndarray,
    order_quantity: np.ndarray,
    position: np.ndarray,
    per_item: dict[str, Any],
    first_block: int,
    shared: dict[str, float],
    settings: Settings,
) -> ItemPlan:
    """One chunk's lead-time demand (the blocks it holds of the whole panel's draws; the
    parameters ``shared`` by all items, from the whole panel) and its :func:`plan_items`."""
    inv = settings.inventory
    if isinstance(y, FileRange):  # the chunk reads its own rows
        y = as_panel(y).y
    period_days = float(per_item.get("period_days", 1.0))
    t0 = time.perf_counter()
    ltd = lead_time_demand(
        np.asarray(y),
        lead_times,
        review_period=protection_review_periods(inv.policy, inv.review_period_days / period_days),
        method=inv.distribution,
        n_samples=inv.n_samples,
        seed=inv.seed,
        chunk_size=inv.chunk_size,
        first_block=first_block,
        **shared,  # type: ignore[arg-type]
    )
    seconds = time.perf_counter() - t0
    part = plan_items(
        y, lead_times, targets, order_quantity, position, settings, ltd=ltd, **per_item
    )
    return dataclasses.replace(part, timings={**part.timings, "lead_time_demand_s": seconds})


# an integer count in a note (not a part of a decimal, a percentage or a negative number)
_COUNT = re.compile(r"(?<![\d.\-])\d+(?![\d.%])")


def merge_notes(parts: list[list[str]]) -> list[str]:
    """The notes of the chunks as one run over all their items writes them: the notes that
    differ only in their counts are one, with the counts summed, in the order they come."""
    order: list[str] = []
    counts: dict[str, list[int]] = {}
    for notes in parts:
        after = -1
        for note in notes:
            template = _COUNT.sub("{}", note.replace("{", "{{").replace("}", "}}"))
            values = [int(v) for v in _COUNT.findall(note)]
            if template not in counts:
                order.insert(after + 1, template)
                counts[template] = values
            else:
                counts[template] = [a + b for a, b in zip(counts[template], values, strict=True)]
            after = order.index(template)
    return [t.format(*counts[t]) for t in order]


def _merge_item_plans(
    parts: list[ItemPlan], notes: list[str], timings: dict[str, float]
) -> ItemPlan:
    """The chunks' ItemPlans as one, items in chunk order; ``notes`` (the client's) first."""
    first = parts[0]
    columns: dict[str, Any] = {
        f.name: np.concatenate([getattr(p.policy, f.name) for p in parts])
        for f in dataclasses.fields(first.policy)
        if isinstance(getattr(first.policy, f.name), np.ndarray)
    }
    policy = dataclasses.replace(first.policy, **columns)
    arrays = {
        name: np.concatenate([getattr(p, name) for p in parts])
        for name in (
            "rule",
            "obsolete",
            "obsolete_reason",
            "level_factor",
            "stockout_risk",
            "mean_lead_time",
        )
    }
    return ItemPlan(
        policy, **arrays, notes=[*notes, *merge_notes([p.notes for p in parts])], timings=timings
    )


def _history_task(
    source: DemandPanel | FileRange, n_tail: int, seasonality: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    chunk = as_panel(source)
    n = max(0, min(n_tail, chunk.n_periods))
    return (
        chunk.y[:, chunk.n_periods - n :].copy(),
        seasonal_naive_scale(chunk.y, seasonality, power=1),
        seasonal_naive_scale(chunk.y, seasonality, power=2),
        np.maximum(chunk.y, 0).mean(axis=1, dtype=np.float64),
    )


def _quantiles_task(
    source: DemandPanel | FileRange, point: np.ndarray, levels: list[float]
) -> np.ndarray:
    return LOCAL.forecast_quantiles(as_panel(source), point, levels)


def _merge_backtests(
    panel: DemandPanel,
    asked: list[str],
    parts: list[BacktestResult],
    glob: BacktestResult | None,
    seconds: float,
) -> BacktestResult:
    """One BacktestResult as ``backtest`` over the whole panel returns it: the methods in the
    order asked, then the references; the scores method-major, items in panel order."""
    first = parts[0]
    order = [*asked, *first.references]
    # each chunk's scores split by method, and the chunk's own frame released at once (in
    # ``parts`` itself): the client holds the scores about once, not four times
    by_method: dict[str, list[pl.DataFrame]] = {name: [] for name in order}
    for i, p in enumerate(parts):
        for (name,), frame in p.scores.partition_by(
            "method", as_dict=True, maintain_order=True
        ).items():
            by_method.setdefault(str(name), []).append(frame)
        parts[i] = dataclasses.replace(p, scores=p.scores.clear())
    first = parts[0]
    frames = []
    for name in order:
        if glob is not None and name in glob.methods:
            frames.append(glob.scores.filter(pl.col("method") == name))
        elif by_method[name]:
            frames.append(pl.concat(by_method.pop(name), how="vertical", rechunk=False))
        else:
            frames.append(first.scores.clear())
    errors = None
    if first.errors is not None:
        errors = {
            name: (
                glob.errors[name]
                if glob is not None and glob.errors is not None and name in glob.methods
                else np.concatenate([p.errors[name] for p in parts if p.errors], axis=1)
            )
            for name in order
        }
    kernels: dict[str, float] = {}
    for p in [*parts, *([glob] if glob is not None else [])]:
        for k, v in p.timings.get("kernels", {}).items():
            kernels[k] = kernels.get(k, 0.0) + v
    labels = {**first.labels, **(glob.labels if glob is not None else {})}
    scales = None
    if all(p.train_scales is not None for p in parts):
        scales = (
            np.concatenate([p.train_scales[0] for p in parts if p.train_scales], axis=1),
            np.concatenate([p.train_scales[1] for p in parts if p.train_scales], axis=1),
        )
    return dataclasses.replace(
        first,
        scores=pl.concat(frames, how="vertical", rechunk=False),
        methods=order,
        labels={n: labels[n] for n in order},
        errors=errors,
        timings={"kernels": kernels, "total": seconds, "chunks": len(parts)},
        panel=panel,
        train_scales=scales,
    )


def memory_limit(value: str) -> str | float:
    """``compute.memory_limit`` as Dask takes it: a fraction of the machine's memory (``0.5``)
    as a float, anything else (``2GiB``, ``auto``, ``0`` = no limit) as given."""
    try:
        fraction = float(value)
    except ValueError:
        return value
    return fraction if 0 < fraction <= 1 else value


def uses_cluster(compute: ComputeSettings) -> bool:
    """Whether the settings ask for Dask (a scheduler address or a number of local workers)."""
    return compute.scheduler is not None or compute.workers is not None


@contextmanager
def compute_engine(settings: Settings, *, progress: Progress = no_progress) -> Iterator[Engine]:
    """The engine ``settings.compute`` asks for, open for the ``with`` block: this process
    (``LOCAL``) without a scheduler or workers; a client of the scheduler at
    ``compute.scheduler``; or a LocalCluster of ``compute.workers`` single-threaded worker
    processes (``compute.memory_limit`` each), closed at the end. ConfigError when Dask is not
    installed or the scheduler cannot be reached (naming its address)."""
    c = settings.compute
    if not uses_cluster(c):
        yield LOCAL
        return
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            "running on Dask (--workers, --cluster, [compute]) needs dask and distributed: "
            + INSTALL_HINT
        ) from None
    cluster = None
    if c.scheduler is not None:
        try:
            client = distributed.Client(c.scheduler, timeout=c.connect_timeout_s)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(
                f"cannot reach the Dask scheduler at {c.scheduler} within "
                f"{c.connect_timeout_s:g} s ({type(exc).__name__}: {exc}); start it "
                "(dask scheduler) or fix --cluster / compute.scheduler"
            ) from None
    else:
        cluster = distributed.LocalCluster(
            n_workers=c.workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=memory_limit(c.memory_limit),
            dashboard_address=":0",  # any free port: never fight over 8787
        )
        client = distributed.Client(cluster)
    try:
        yield DaskEngine(
            client, c.chunk_items, progress=progress, lightgbm_on_dask=c.lightgbm_on_dask
        )
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
