"""The core run: classify, backtest, route every item to a method (the hybrid router) and
forecast the horizon. Numeric only; ``sparecast.pipeline.outputs`` writes the result.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from sparecast.classify import REGULAR_TIERS
from sparecast.config import Settings
from sparecast.core import forecasts_to_frame, horizon_text
from sparecast.data.panel import DemandPanel
from sparecast.evaluate.backtest import BacktestResult, backtest, windows_that_fit
from sparecast.methods import get_method
from sparecast.pipeline.engine import LOCAL, Engine
from sparecast.pipeline.progress import Progress, no_progress
from sparecast.selection.combinations import with_combinations
from sparecast.selection.router import HybridRouter

__all__ = ["CoreResult", "make_router", "reported_methods", "run_core"]


@dataclass
class CoreResult:
    """Everything the forecasting core computed for one panel."""

    classification: pl.DataFrame
    backtest: BacktestResult | None
    selection: pl.DataFrame
    forecasts: pl.DataFrame | None
    summary: pl.DataFrame | None
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    horizon: int | None = None
    """Periods forecast (and backtested): ``settings.horizon_for(panel)``."""


def make_router(settings: Settings) -> HybridRouter:
    """The HybridRouter the settings describe ([router], [backtest], [tiers], method_params);
    the top-level ``methods`` (or ``--methods``) are the auto mode's candidates when
    ``router.candidates`` is not set."""
    r = settings.router
    return HybridRouter(
        r.mode,
        candidates=r.candidates if r.candidates is not None else settings.methods,
        rules=r.rules,
        metric=r.metric,
        select_by=r.select_by,
        min_history=r.min_history,
        top_k=r.top_k,
        fallback=r.fallback,
        default=r.default,
        margin=r.margin,
        alpha=r.alpha,
        n_windows=settings.backtest.n_windows,
        step=settings.backtest.step,
        seasonality=settings.backtest.seasonality,
        params=settings.method_params,
        tiers=settings.tiers.thresholds(),
        stockout_weight=settings.backtest.stockout_weight,
    )


def reported_methods(router: HybridRouter) -> list[str]:
    """Methods the pipeline backtests and forecasts (one column each): the auto mode's
    candidates and fallback; in rules mode the rules' methods, the fallback and the naive and
    moving-average baselines the summary compares with."""
    if router.mode == "auto":
        return router.backtest_methods()
    names = [*router.rule_map().values(), router.fallback, "naive", "ma"]
    return [get_method(n).name for n in dict.fromkeys(names)]


def run_core(
    panel: DemandPanel,
    settings: Settings,
    *,
    with_forecast: bool = True,
    progress: Progress = no_progress,
    engine: Engine = LOCAL,
) -> CoreResult:
    """Classify, backtest, route every item to a method (the hybrid router: rules or the best
    backtest score per class/item) and forecast the horizon. ``engine``: where classification,
    backtest and forecasts run (this process, or per chunk on a Dask cluster:
    ``sparecast.pipeline.distributed``)."""
    timings: dict[str, float] = {}
    h = settings.horizon_for(panel)  # None or a duration: in the panel's periods now
    h_text = horizon_text(h, panel.freq)
    router = make_router(settings)
    router.validate_params()
    names = reported_methods(router)
    t0 = time.perf_counter()
    classification = engine.classify(panel, router.tiers)
    timings["classify_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    notes: list[str] = []
    b = settings.backtest
    n_windows = windows_that_fit(panel.n_periods, h, b.n_windows, b.step, b.seasonality)
    bt: BacktestResult | None = None
    summary: pl.DataFrame | None = None
    fallback = settings.router.fallback
    metric = settings.router.metric
    if n_windows == 0:
        if not with_forecast:  # a backtest was asked for: say why there is none
            backtest(
                panel, h=h, methods=names, n_windows=1, seasonality=settings.backtest.seasonality
            )
        if router.mode == "auto":
            notes.append(
                f"backtest skipped: fallback {fallback}: history of {panel.n_periods} periods "
                f"too short to backtest a horizon of {h_text}; every item uses {fallback}"
            )
        else:
            notes.append(
                f"backtest skipped: history of {panel.n_periods} periods too short to backtest "
                f"a horizon of {h_text}; the rules choose without it"
            )
        router.fit(panel, h, classification=classification)
        # the router's own notes only repeat the line above: they are not added below
    else:
        if n_windows < settings.backtest.n_windows:
            notes.append(
                f"backtest on {n_windows} window(s) instead of {settings.backtest.n_windows}: "
                f"the history has {panel.n_periods} periods for a horizon of {h_text}"
            )
        bt = engine.backtest(
            panel,
            h=h,
            methods=names,
            n_windows=n_windows,
            step=settings.backtest.step,
            params={k: v for k, v in settings.method_params.items() if k in names},
            seasonality=settings.backtest.seasonality,
            progress=lambda done, total, label: progress(f"backtest {label}", done, total),
            percentage_items=classification["tier"].is_in(REGULAR_TIERS).to_numpy(),
            keep_errors=settings.router.top_k > 1,
            stockout_weight=settings.backtest.stockout_weight,
        )
        router.fit(panel, h, classification=classification, backtest_result=bt)
        # combinations (top_k > 1) are scored like methods, so that the outputs show them
        bt = with_combinations(bt, router.selection_["method"].unique(maintain_order=True))
        # the per-window errors are not needed any more; they are the largest part of the result
        bt = dataclasses.replace(bt, errors=None)
        # the summary's ``chosen``: the best method of each group by the router's own metric
        summary = pl.concat(
            [
                bt.summary(classification, metric=metric)
                .rename({"sb_class": "group"})
                .with_columns(pl.lit("class").alias("grouping")),
                bt.summary(classification, metric=metric, by="tier")
                .rename({"tier": "group"})
                .filter(pl.col("group") != "all")
                .with_columns(pl.lit("tier").alias("grouping")),
            ]
        ).select("grouping", pl.exclude("grouping"))
        notes += router.notes_
    selection = router.selection_.join(
        classification.select("unique_id", "sb_class", "tier"), on="unique_id", how="left"
    ).select("unique_id", "method", "reason", "sb_class", "tier")
    timings["backtest_s"] = time.perf_counter() - t0

    forecasts = None
    if with_forecast:
        t0 = time.perf_counter()
        done = [0]

        def step(name: str) -> None:
            done[0] += 1
            progress(f"forecast {name}", done[0], len(names))

        # a method that cannot run on this panel (e.g. LightGBM on a single period) is left
        # out of the columns with a note, and the items it would serve get the fallback
        values, failed = engine.forecast_all(panel, h, names, settings.method_params, step)
        notes += [f"{name} not forecast: {why}" for name, why in failed.items()]
        if failed and router.reroute(failed):
            notes.append(router.notes_[-1])
            selection = router.selection_.join(
                classification.select("unique_id", "sb_class", "tier"),
                on="unique_id",
                how="left",
                maintain_order="left",
            ).select("unique_id", "method", "reason", "sb_class", "tier")
        chosen = router.predict(panel, h, forecasts=values)
        forecasts = forecasts_to_frame(panel, values, h, consume=True)
        forecasts = forecasts.with_columns(
            pl.Series("forecast", chosen.reshape(-1)),
            _selection_column(panel, selection, h),
        )
        del chosen
        timings["forecast_s"] = time.perf_counter() - t0
    return CoreResult(classification, bt, selection, forecasts, summary, timings, notes, h)


def _selection_column(panel: DemandPanel, selection: pl.DataFrame, h: int) -> pl.Series:
    """The chosen method of each item of ``panel``, in panel order, each ``h`` times (taken in
    polars, not as an array of ``items x h`` Python strings)."""
    order = pl.DataFrame({"unique_id": panel.item_ids.astype(str)})
    method = order.join(selection, on="unique_id", how="left", maintain_order="left")["method"]
    rows = np.repeat(np.arange(panel.n_items, dtype=np.int64), h)
    return method.cast(pl.String).gather(rows)
