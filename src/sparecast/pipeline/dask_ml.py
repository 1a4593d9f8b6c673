"""The global LightGBM on a Dask cluster: training rows built per chunk of items on the workers,
one model trained with ``lightgbm.dask`` (``DaskLGBMRegressor``) on them, forecasts per chunk on
the workers (``sparecast.pipeline.distributed.DaskEngine`` calls it; one process keeps
``GlobalLightGBM.fit``).

What is the same as in one process: the parameters, the feature layout (the categories of the
whole panel), the training cutoffs (from the whole panel, so ``max_rows`` bounds the rows of all
chunks together), the level calibration (from the model's forecasts of all its training rows) and
the forecast of an item from its own history. What differs: each chunk draws its own horizon
steps and kept quiet rows (``seed + chunk index``), and lightgbm.dask trains data-parallel, one
part of the rows per worker (histogram bins found per worker and merged, bagging per worker), so
the trees are not those of one process's fit; nor are two cluster fits alike when the chunks
land on other workers (which rows each worker trains on follows the scheduling).
tests/pipeline/test_dask_ml.py bounds the difference; benchmarks/dask_lightgbm.py measures it
against the difference between two single-process fits with other seeds.

A panel read per chunk on the workers (:class:`sparecast.pipeline.chunks.ChunkedPanel`: the
client holds the ids and the calendar, no demand) trains the same way: each chunk is its file
range (cut before the backtest's earliest origin for the backtest's fit), the workers first
count each chunk's items with demand in the last periods, from which the client computes the
cutoffs of the whole panel, then build the rows; the feature layout comes from the panel's
attributes (those of an items file, each range carrying its items').
"""

from __future__ import annotations

import operator
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from sparecast.data.panel import DemandPanel
from sparecast.errors import ConfigError, MethodError
from sparecast.methods import get_method, params_for
from sparecast.methods.ml import GlobalLightGBM
from sparecast.pipeline.chunks import ChunkedPanel, FileRange, as_panel
from sparecast.pipeline.progress import Progress, no_progress

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["DASK_MODELS", "dask_model", "fit_on_cluster", "predict_chunk"]

DASK_MODELS: dict[str, type[GlobalLightGBM]] = {"lightgbm": GlobalLightGBM}
"""Registered methods that train on the cluster (name -> estimator class)."""


def dask_model(
    name: str, freq: str, params: dict[str, dict[str, Any]] | None
) -> GlobalLightGBM | None:
    """The unfitted estimator of method ``name`` with the run's parameters (its defaults, the
    frequency's, then ``params[name]``) when it trains on the cluster; None otherwise (the
    method runs as in one process)."""
    cls = DASK_MODELS.get(name)
    if cls is None:
        return None
    m = get_method(name)
    kwargs = {**m.defaults, **params_for(freq, [name], params).get(name, {})}
    try:
        model = cls(**kwargs)
    except TypeError as exc:
        raise MethodError(f"bad parameters {kwargs} for method {name!r}: {exc}") from exc
    return model if model.trains_on_dask else None


# ---------------------------------------------------------------- tasks (run on the workers)
def _rows_task(
    chunk: DemandPanel | FileRange, model: GlobalLightGBM, cutoffs: list[int], h: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return model.chunk_rows(as_panel(chunk), cutoffs, h, seed)


def _active_task(chunk: DemandPanel | FileRange, window: int) -> int:
    """The number of the chunk's items with demand in its last ``window`` periods."""
    y = as_panel(chunk).y
    return int((y[:, max(0, y.shape[1] - window) :] > 0).any(axis=1).sum())


def _n_rows(rows: tuple[np.ndarray, np.ndarray, np.ndarray]) -> int:
    return int(rows[1].size)


def _predict_rows(booster: Any, rows: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    return np.asarray(booster.predict(rows[0], num_threads=1), dtype=np.float64)


def predict_chunk(
    model: GlobalLightGBM, chunk: DemandPanel, h: int, origins: list[int] | None = None
) -> list[np.ndarray]:
    """Forecasts ``float64[items, h]`` of ``model`` for ``chunk``: from its end (``origins``
    None, one array) or from every backtest origin (``chunk.slice_periods(o)``), clipped at 0;
    one thread (a worker runs one task per thread)."""
    model.n_jobs = 1  # prediction only: the fitted trees do not depend on it
    panels = [chunk] if origins is None else [chunk.slice_periods(o) for o in origins]
    return [np.maximum(model.predict(p, h), 0.0) for p in panels]


# ---------------------------------------------------------------- the fit (on the client)
def fit_on_cluster(
    client: Client,
    model: GlobalLightGBM,
    panel: DemandPanel,
    h: int,
    bounds: list[tuple[int, int]],
    chunk_of: Callable[[DemandPanel, int, int], DemandPanel | FileRange],
    *,
    label: str = "lightgbm",
    progress: Progress = no_progress,
) -> tuple[GlobalLightGBM, dict[str, float]]:
    """``model`` fitted on ``panel`` for horizons up to ``h`` on the cluster of ``client``: the
    cutoffs and feature layout here, the rows of each chunk ``bounds`` on a worker (at most two
    chunks per worker in flight; the rows stay on the worker), one ``DaskLGBMRegressor`` fit on
    them, its level calibration here from the forecasts of the rows. Returns the fitted model
    (its booster, no panel) and the seconds of the rows, the training and the calibration.

    ``chunk_of(panel, a, b)``: the chunk of rows ``[a, b)``, a slice of the panel or a
    :class:`FileRange` the worker reads (a :class:`ChunkedPanel`'s sources: the client holds
    no demand). For a ChunkedPanel the workers also count each chunk's items with demand in
    the last periods first, so that the cutoffs are those of the whole panel."""
    try:
        import dask.array as da
        import lightgbm
        from distributed import as_completed
    except ImportError:  # pragma: no cover - the [dask] and [ml] extras
        raise ConfigError(
            "training LightGBM on Dask needs dask[array], distributed and lightgbm: "
            "pip install 'sparecast[dask,ml]'"
        ) from None
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def active(window: int) -> int:
        """The items with demand in the last ``window`` periods, counted per chunk."""
        counts = [
            client.submit(_active_task, chunk_of(panel, a, b), window, pure=False)
            for a, b in bounds
            if b > a
        ]
        return sum(client.gather(counts))

    chunked = isinstance(panel, ChunkedPanel)
    cutoffs = model.plan_rows(panel, h, active if chunked else None)
    if chunked:
        timings["active_s"] = time.perf_counter() - t0
    limit = 2 * max(1, len(client.nthreads()))
    rows: list[Future | None] = [None] * len(bounds)
    sizes: list[Future | None] = [None] * len(bounds)

    def submit(i: int) -> Future:
        a, b = bounds[i]
        chunk = client.scatter(chunk_of(panel, a, b), hash=False)
        rows[i] = client.submit(
            _rows_task,
            chunk,
            model,
            cutoffs,
            h,
            model.seed + i,
            pure=False,
            key=f"{label}-rows-{i}",
        )
        size = client.submit(_n_rows, rows[i], pure=False)
        size.chunk_index = i  # type: ignore[attr-defined]
        sizes[i] = size
        return size

    queue = as_completed([submit(i) for i in range(min(limit, len(bounds)))])
    nxt = min(limit, len(bounds))
    n_rows = [0] * len(bounds)
    done = 0
    for future in queue:
        i = future.chunk_index
        n_rows[i] = future.result()  # a task's exception is raised here
        done += 1
        a, b = bounds[i]
        progress(f"{label} rows chunk {i + 1}/{len(bounds)} (items {a + 1}-{b})", done, len(bounds))
        if nxt < len(bounds):
            queue.add(submit(nxt))
            nxt += 1
    timings["rows_s"] = time.perf_counter() - t0
    total = sum(n_rows)
    width = len(model.feature_names_)
    keep = [i for i in range(len(bounds)) if n_rows[i] > 0]
    if not keep:
        return model.adopt(None, 0), timings
    parts = {
        k: [client.submit(operator.getitem, rows[i], k, pure=False) for i in keep]
        for k in (0, 1, 2)
    }
    X = da.concatenate(
        [
            da.from_delayed(f, shape=(n_rows[i], width), dtype=np.float32)
            for f, i in zip(parts[0], keep, strict=True)
        ]
    )
    target, weight = (
        da.concatenate(
            [
                da.from_delayed(f, shape=(n_rows[i],), dtype=np.float64)
                for f, i in zip(parts[k], keep, strict=True)
            ]
        )
        for k in (1, 2)
    )
    target_np = np.concatenate(client.gather(parts[1]))
    if total == 0 or target_np.max() <= 0:
        return model.adopt(None, total), timings
    t1 = time.perf_counter()
    names = model.feature_names_
    cat = [names.index("category")] if model.static_.categories else "auto"
    reg = lightgbm.DaskLGBMRegressor(client=client, **model.dask_params())
    with warnings.catch_warnings():  # "n_jobs will be ignored": each worker's threads are used
        warnings.filterwarnings("ignore", "Parameter n_jobs", UserWarning)
        reg.fit(X, target, sample_weight=weight, feature_name=names, categorical_feature=cat)
    timings["train_s"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    fitted = None
    booster = reg.booster_
    if model.calibrate:  # the booster's forecasts of its rows, on the workers that hold them
        remote = client.scatter(booster, broadcast=True, hash=False)
        preds = [client.submit(_predict_rows, remote, rows[i], pure=False) for i in keep]
        fitted = np.concatenate(client.gather(preds))
        del preds, remote
    weight_np = np.concatenate(client.gather(parts[2]))
    model.adopt(booster, total, fitted, target_np, weight_np)
    timings["calibrate_s"] = time.perf_counter() - t1
    held: list[Any] = [*rows, *sizes, *parts[0], *parts[1], *parts[2]]
    for f in held:
        if f is not None:
            f.release()
    return model, timings
