"""Rolling-origin backtest of the registered methods: scores per item and method, class summaries.

Windows: with ``T`` panel periods, window ``w`` (0-based, ``n_windows`` of them) has its origin at
``T - h - (n_windows - 1 - w) * step``; the last window ends at the panel end. The kernel sees only
``y[:, :origin]``; the actuals are ``y[:, origin:origin + h]``.

One fit for all windows: a method with a ``backtest_kernel`` (the global LightGBM and XGBoost
models, :class:`sparecast.methods.Method`) is fitted once, on the periods before the earliest
origin, and forecasts every window from that window's own history (features of
``y[:, :origin]``), instead of one fit per window (``reuse_fits=False``). Nothing after an origin
reaches its forecast, and the first window's forecast is the per-window one; at the later
windows the model is ``step``, ``2 x step``.. periods older than a refit would be, so its
scores there are slightly pessimistic (the final forecast is fitted on the whole history).

Scores are per item and method, averaged over the windows (NaN-aware): mae, rmse, mase, rmsse, me,
pis as defined in :mod:`sparecast.evaluate.metrics`; MASE/RMSSE are scaled with the training part of
each window. ``abs_error_sum``, ``error_sum`` and ``actual_sum`` (over all windows) let a class's
WAPE and relative bias be ratios of sums, which stay defined for intermittent items where per-item
scaled errors are not.

Reference methods (``references``, default the ``zero`` forecast) are scored beside the methods
asked for, so that every accuracy table shows whether a method beats forecasting nothing; they
come last, are never a summary's ``chosen`` method, and selection ignores them
(:meth:`BacktestResult.without_references`).

Choosing methods from these scores is :mod:`sparecast.selection`'s job.

Aggregation rule (class_means, summary): the mean over items of the per-item metric, ignoring items
where it is undefined (null), with the count of items used reported beside it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from sparecast.classify import REGULAR_TIERS, SB_CLASSES, TIERS, classify
from sparecast.data.panel import DemandPanel
from sparecast.errors import ConfigError, DataValidationError, MethodError
from sparecast.evaluate.metrics import (
    METRICS,
    TrainScales,
    metric_names,
    ratio_of_sums,
    seasonal_naive_scales,
)
from sparecast.methods import (
    Method,
    backtest_forecasts,
    forecast_panel,
    get_method,
    params_for,
    resolve_methods,
    shared_levels,
)

__all__ = [
    "REFERENCES",
    "BacktestResult",
    "PanelTooShortError",
    "SCORE_METRICS",
    "backtest",
    "backtest_origins",
    "windows_that_fit",
    "window_scores",
    "check_score_metric",
    "method_label",
]

# the backtest's per-item scores: the metrics registered with scored=True
SCORE_METRICS: tuple[str, ...] = metric_names(scored=True)
_SIGNED: tuple[str, ...] = metric_names(signed=True)
ProgressCallback = Callable[[int, int, str], None]
_ALL = "all"
REFERENCES: tuple[str, ...] = ("zero",)
"""Methods every backtest scores as references (the floor a method must beat)."""
# references the summary reports improvements against: ``{metric}_vs_{ref}_pct``
_SUMMARY_REFS: tuple[str, ...] = ("zero", "naive", "ma")


class PanelTooShortError(DataValidationError):
    """The panel has fewer periods than the backtest windows and horizon need."""


def check_score_metric(metric: str) -> None:
    """A ConfigError unless ``metric`` is a backtest score a method can be ranked on."""
    if metric not in SCORE_METRICS:
        raise ConfigError(f"metric must be one of {SCORE_METRICS}, got {metric!r}")
    if metric in _SIGNED:
        usable = ", ".join(m for m in SCORE_METRICS if m not in _SIGNED)
        raise ConfigError(f"metric {metric!r} is signed (bias); select on one of {usable}")


def windows_that_fit(
    n_periods: int, h: int, n_windows: int, step: int | None = None, seasonality: int = 1
) -> int:
    """How many of ``n_windows`` backtest windows fit in ``n_periods`` (0: none): each window
    needs ``h`` forecast periods and the first one ``seasonality + 1`` training periods before
    it (for the MASE/RMSSE scale); origins are ``step`` (default ``h``) apart."""
    step = step or h
    spare = n_periods - h - seasonality - 1
    return 0 if spare < 0 else min(n_windows, spare // step + 1)


def backtest_origins(n_periods: int, h: int, n_windows: int, step: int) -> list[int]:
    """Origin (first forecast period) of each window; the last window ends at ``n_periods``."""
    return [n_periods - h - (n_windows - 1 - w) * step for w in range(n_windows)]


_LABELS = {
    "zero": "zero",
    "naive": "naive",
    "seasonal_naive": "seasonal naive",
    "ses": "SES",
    "croston": "Croston",
    "sba": "SBA",
    "croston_optimized": "Croston (optimised)",
    "tsb": "TSB",
    "adida": "ADIDA",
    "imapa": "IMAPA",
}


def method_label(name: str, params: dict[str, Any] | None = None) -> str:
    """Human name of a method with its key parameter, e.g. ``MA(28)``, ``SBA``, ``naive``."""
    try:
        kwargs = {**get_method(name).defaults, **(params or {})}
    except MethodError:
        kwargs = dict(params or {})
    # the registry's defaults give ma and ma_nonzero their window
    if name == "ma":
        return f"MA({kwargs['window']})"
    if name == "ma_nonzero":
        return f"MA non-zero({kwargs['window']})"
    if name == "seasonal_naive" and "season_length" in kwargs:
        return f"seasonal naive({kwargs['season_length']})"
    return _LABELS.get(name, name)


@dataclass
class BacktestResult:
    """What a backtest measured.

    Attributes:
        scores: one row per (unique_id, method): mae, rmse, mase, rmsse, me, pis (means over the
            windows, null where undefined), n_windows_scaled (windows with a defined MASE scale),
            abs_error_sum, error_sum (forecast minus actual) and actual_sum (over all windows, for
            WAPE and relative bias), n_train_demands (periods with demand in the last window's
            training part).
        methods: method names in the order they ran (ties in selection go to the earlier one),
            the references last.
        references: the methods of ``methods`` scored only as references (not asked for).
        labels: method name -> human label (``MA(28)``).
        origins: first forecast period of each window; cutoffs: date of each window's last
            training period.
        errors: method -> float32 ``[n_windows, items, h]`` forecast minus actual, if kept.
        timings: seconds: ``kernels`` per method, ``scoring`` and ``total``.
        panel: the panel backtested (used to classify when no classification is given).
    """

    scores: pl.DataFrame
    methods: list[str]
    labels: dict[str, str]
    h: int
    seasonality: int
    origins: list[int]
    cutoffs: list[np.datetime64]
    errors: dict[str, np.ndarray] | None = None
    references: tuple[str, ...] = ()
    timings: dict[str, Any] = field(default_factory=dict)
    panel: DemandPanel | None = field(default=None, repr=False)
    stockout_weight: float = 3.0
    train_scales: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    """The MASE and RMSSE scales of each window's training part (``[windows, items]``, as
    ``seasonal_naive_scales``) when ``panel`` has no matrix at hand (a panel read per chunk on
    a cluster): what scoring combinations needs of the history."""
    _classification: pl.DataFrame | None = field(
        default=None, init=False, repr=False, compare=False
    )

    # ------------------------------------------------------------------ helpers
    def without_references(self) -> BacktestResult:
        """The result without its reference rows (what selection chooses among)."""
        if not self.references:
            return self
        refs = set(self.references)
        return dataclasses.replace(
            self,
            scores=self.scores.filter(~pl.col("method").is_in(list(refs))),
            methods=[m for m in self.methods if m not in refs],
            labels={k: v for k, v in self.labels.items() if k not in refs},
            errors=None
            if self.errors is None
            else {k: v for k, v in self.errors.items() if k not in refs},
            references=(),
        )

    def item_groups(
        self, classification: pl.DataFrame | None, group: str = "sb_class"
    ) -> pl.DataFrame:
        """unique_id and the grouping column (``sb_class`` or ``tier``), the latter under the
        internal name ``sb_class``."""
        if classification is None:
            if self.panel is None:
                raise DataValidationError(
                    "no classification given and the result has no panel; pass "
                    "classification=sparecast.classify.classify(panel)"
                )
            if self._classification is None:
                self._classification = classify(self.panel)
            classification = self._classification
        if "unique_id" not in classification.columns or group not in classification.columns:
            raise DataValidationError(
                f"classification needs columns unique_id and {group}, "
                f"it has {classification.columns}"
            )
        return classification.select(
            pl.col("unique_id").cast(pl.Utf8), pl.col(group).alias("sb_class")
        )

    def item_ids(self) -> pl.DataFrame:
        """unique_id of every item, in panel order."""
        return self.scores.filter(pl.col("method") == self.methods[0]).select("unique_id")

    def class_means(
        self, classes: pl.DataFrame, with_all: bool, group_order: tuple[str, ...] = SB_CLASSES
    ) -> pl.DataFrame:
        """Mean of every metric per (sb_class, method) over items, nulls ignored, with counts."""
        joined = self.scores.join(classes, on="unique_id", how="left").with_columns(
            pl.col("sb_class").fill_null("unclassified")
        )
        order = self.method_order()
        aggs = [
            pl.len().alias("n_items"),
            pl.col("mase").count().alias("n_scored"),
            *[pl.col(m).mean() for m in SCORE_METRICS],
            pl.col("rmsse").median().alias("rmsse_median"),
            pl.col("abs_error_sum").sum(),
            pl.col("error_sum").sum(),
            pl.col("actual_sum").sum(),
        ]
        parts = [joined.group_by("sb_class", "method").agg(aggs)]
        if with_all:
            parts.append(
                joined.group_by("method").agg(aggs).with_columns(pl.lit(_ALL).alias("sb_class"))
            )
        out = pl.concat([p.select(parts[0].columns) for p in parts])
        known = list(dict.fromkeys([*group_order, *SB_CLASSES, *TIERS, "unclassified", _ALL]))
        return (
            out.join(order, on="method", how="left")
            .with_columns(
                pl.col("sb_class")
                .replace_strict(
                    known, list(range(len(known))), default=len(known), return_dtype=pl.Int64
                )
                .alias("class_order"),
                pl.when(pl.col("actual_sum") > 0)
                .then(pl.col("abs_error_sum") / pl.col("actual_sum"))
                .otherwise(None)
                .alias("wape"),
                pl.when(pl.col("actual_sum") > 0)
                .then(pl.col("error_sum") / pl.col("actual_sum"))
                .otherwise(None)
                .alias("rel_bias"),
            )
            .sort("class_order", "method_order")
        )

    @staticmethod
    def _best_per_class(means: pl.DataFrame, metric: str) -> pl.DataFrame:
        """The row with the lowest ``metric`` per class (ties: earlier method); classes where it is
        undefined for every method are absent."""
        return (
            means.filter(pl.col(metric).is_not_null() & pl.col(metric).is_not_nan())
            .sort("class_order", metric, "method_order")
            .group_by("sb_class", maintain_order=True)
            .first()
        )

    def method_order(self) -> pl.DataFrame:
        """method and method_order (its position in ``methods``, the references last: ties go
        to the earlier one)."""
        order = [m for m in self.methods if m not in self.references]
        order += [m for m in self.methods if m in self.references]
        return pl.DataFrame(
            {"method": order, "method_order": np.arange(len(order), dtype=np.int64)}
        )

    # ------------------------------------------------------------------ summary
    def summary(
        self,
        classification: pl.DataFrame | None = None,
        *,
        metric: str = "rmsse",
        by: Literal["class", "tier"] = "class",
    ) -> pl.DataFrame:
        """Per class (or per frequency tier with ``by="tier"``; plus ``"all"``) and method:
        n_items, n_scored, mean of each metric, rmsse_median (the median over items: the mean is
        dominated by a few items), wape and rel_bias (ratios of sums over the group: sum of
        absolute errors, resp. of forecast minus actual, over the sum of actuals; null when
        nothing was sold; rel_bias -1 is the zero forecast's), improvement of MASE/RMSSE in % vs
        zero, naive and ma (positive = better; null when that reference was not backtested),
        ``chosen`` (the best method of the group by ``metric``, references excluded; in "all"
        the best overall; ``"mase+asym"`` ranks by the sum of each metric over the group's best,
        like the router) and ``label``. The first column is ``sb_class`` or ``tier``."""
        parts = metric.split("+")
        for part in parts:
            check_score_metric(part)
        group = {"class": "sb_class", "tier": "tier"}.get(by)
        if group is None:
            raise ConfigError(f"summary by must be 'class' or 'tier', got {by!r}")
        means = self.class_means(
            self.item_groups(classification, group),
            with_all=True,
            group_order=TIERS if by == "tier" else SB_CLASSES,
        )
        ref_cols = []
        for ref in _SUMMARY_REFS:
            ref_means = means.filter(pl.col("method") == ref).select(
                "sb_class", *[pl.col(m).alias(f"_{ref}_{m}") for m in ("mase", "rmsse")]
            )
            means = means.join(ref_means, on="sb_class", how="left")
            for m in ("mase", "rmsse"):
                ref_col = pl.col(f"_{ref}_{m}")
                ref_cols.append(
                    pl.when(ref_col > 0)
                    .then((ref_col - pl.col(m)) / ref_col * 100.0)
                    .otherwise(None)
                    .alias(f"{m}_vs_{ref}_pct")
                )
        candidates = means.filter(~pl.col("method").is_in(list(self.references)))
        if len(parts) > 1:
            # a sum of metrics (the router's "mase+asym"): each divided by the group's best
            # candidate, as sparecast.selection.choose ranks them (the floor keeps a perfect
            # method's ratio 0 instead of NaN)
            candidates = candidates.with_columns(
                pl.sum_horizontal(
                    [
                        pl.col(p) / pl.max_horizontal(pl.col(p).min().over("sb_class"), 1e-12)
                        for p in parts
                    ],
                    ignore_nulls=False,
                ).alias(metric)
            )
        best = self._best_per_class(candidates, metric).select(
            "sb_class", pl.col("method").alias("_chosen")
        )
        labels = pl.DataFrame({"method": list(self.labels), "label": list(self.labels.values())})
        return (
            means.with_columns(ref_cols)
            .join(best, on="sb_class", how="left")
            .join(labels, on="method", how="left")
            .with_columns((pl.col("method") == pl.col("_chosen")).fill_null(False).alias("chosen"))
            .sort("class_order", "method_order")
            .select(
                "sb_class",
                "method",
                "label",
                "n_items",
                "n_scored",
                *SCORE_METRICS,
                "rmsse_median",
                "wape",
                "rel_bias",
                "mase_vs_zero_pct",
                "rmsse_vs_zero_pct",
                "mase_vs_naive_pct",
                "rmsse_vs_naive_pct",
                "mase_vs_ma_pct",
                "rmsse_vs_ma_pct",
                "chosen",
            )
            .rename({"sb_class": group})
        )


# ---------------------------------------------------------------------------- the backtest
def _validate(panel: DemandPanel, h: int, n_windows: int, step: int, seasonality: int) -> None:
    for name, value in (
        ("h", h),
        ("n_windows", n_windows),
        ("step", step),
        ("seasonality", seasonality),
    ):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"backtest parameter {name} must be an integer >= 1, got {value!r}")
    if panel.n_items == 0:
        raise DataValidationError("cannot backtest a panel with no items")
    if windows_that_fit(panel.n_periods, h, n_windows, step, seasonality) < n_windows:
        needed = h + (n_windows - 1) * step + seasonality + 1
        raise PanelTooShortError(
            f"the panel has {panel.n_periods} periods but a backtest with h={h}, "
            f"n_windows={n_windows}, step={step} needs at least {needed} "
            f"(h + (n_windows - 1) x step forecast periods plus seasonality + 1 = "
            f"{seasonality + 1} training periods for the scaled errors); lower h or n_windows, "
            "or load a longer history"
        )


def window_scores(
    y_true: np.ndarray, y_pred: np.ndarray, scales: TrainScales, stockout_weight: float
) -> dict[str, np.ndarray]:
    """Per-item scores (SCORE_METRICS, from the metric registry) of one window's forecasts
    ``y_pred[items, h]`` of ``y_true``, with the MASE/RMSSE scales of its training part (NaN
    where a scale is 0)."""
    options = {"stockout_weight": stockout_weight}
    out = {}
    for k in SCORE_METRICS:
        metric = METRICS[k]
        out[k] = metric(y_true, y_pred, scale=scales, **{o: options[o] for o in metric.options})
    return out


def backtest(
    panel: DemandPanel,
    *,
    h: int = 28,
    methods: Iterable[str] | None = None,
    n_windows: int = 3,
    step: int | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    seasonality: int = 1,
    progress: ProgressCallback | None = None,
    keep_errors: bool = False,
    percentage_items: np.ndarray | None = None,
    stockout_weight: float = 3.0,
    references: Iterable[str] = REFERENCES,
    reuse_fits: bool = True,
    window_forecasts: dict[str, list[np.ndarray]] | None = None,
) -> BacktestResult:
    """Rolling-origin backtest of ``methods`` (all defaults when None) over ``n_windows`` windows.

    ``references`` (default: the ``zero`` forecast) are scored too, after the methods, and
    recorded as ``BacktestResult.references`` unless they are among ``methods``: the floor every
    accuracy table shows; selection ignores them (``()`` scores only ``methods``).

    ``step`` (default ``h``) is the distance between origins; ``params`` maps a method name to
    kernel parameters (over the frequency's defaults, ``sparecast.methods.FREQ_DEFAULTS``);
    ``seasonality`` is the lag of the seasonal naive scale of MASE/RMSSE;
    ``progress(done, total, label)`` is called after each (window, method).
    ``percentage_items`` (boolean per item) marks where MAPE and WAPE are meaningful: regular
    demand. Default: the high_volume and regular tiers of :func:`sparecast.classify.classify`.
    For the other items the ``mape`` and ``wape`` columns are null (a percentage error of an
    intermittent item divides by zeros or by single units and means nothing).
    ``asym`` is the asymmetric (stockout-weighted) loss: squared errors with under-forecasts
    weighted ``stockout_weight`` times over-forecasts, divided by the same in-sample scale as
    RMSSE so that items of any volume count alike (lower is better).
    ``reuse_fits`` (default True): methods with a ``backtest_kernel`` (the global ML models) are
    fitted once before the earliest origin and forecast every window from it (module
    docstring); False fits them once per window.
    ``window_forecasts`` (method -> one ``[items, h]`` forecast per window): forecasts of
    methods that the caller computed (a model trained on a Dask cluster,
    ``sparecast.pipeline.dask_ml``); they are scored, not run again.
    """
    if stockout_weight <= 0:
        raise ConfigError(f"stockout_weight must be > 0, got {stockout_weight}")
    t_start = time.perf_counter()
    step = h if step is None else step
    _validate(panel, h, n_windows, step, seasonality)
    resolved: list[Method] = resolve_methods(methods)
    asked = [m.name for m in resolved]
    refs = tuple(get_method(r).name for r in dict.fromkeys(references) if r not in asked)
    resolved += [get_method(r) for r in refs]
    names = [m.name for m in resolved]
    params = dict(params or {})
    unknown = sorted(set(params) - set(asked))
    if unknown:
        raise MethodError(f"params given for method(s) {unknown} that are not backtested ({asked})")
    params = params_for(panel.freq, names, params)

    y = panel.y
    n_items = panel.n_items
    origins = backtest_origins(panel.n_periods, h, n_windows, step)
    n_m = len(resolved)
    sums = {k: np.zeros((n_m, n_items)) for k in SCORE_METRICS}
    counts = {k: np.zeros((n_m, n_items), dtype=np.int64) for k in SCORE_METRICS}
    abs_error_sum = np.zeros((n_m, n_items))
    error_sum = np.zeros((n_m, n_items))
    actual_sum = np.zeros(n_items)
    errors = (
        {n: np.empty((n_windows, n_items, h), dtype=np.float32) for n in names}
        if keep_errors
        else None
    )
    kernel_time = dict.fromkeys(names, 0.0)
    total = n_windows * n_m
    done = 0
    if percentage_items is None:
        tiers = classify(panel)["tier"].to_numpy()
        percentage_items = np.isin(tiers, REGULAR_TIERS)
    pct_rows = np.flatnonzero(np.asarray(percentage_items, dtype=bool))
    if np.asarray(percentage_items).shape != (n_items,):
        raise DataValidationError(
            f"percentage_items must have one boolean per item ({n_items}), "
            f"got shape {np.asarray(percentage_items).shape}"
        )
    ape_sum = np.zeros((n_m, pct_rows.size))
    ape_count = np.zeros((n_m, pct_rows.size), dtype=np.int64)
    # MAPE and WAPE pool over the windows: the registry's parts (sums) of each window add up
    mape_parts, wape_parts = METRICS["mape"].parts, METRICS["wape"].parts
    assert mape_parts is not None and wape_parts is not None
    # MASE / RMSSE scales of every window's training part, in one pass over the panel.
    scales_abs, scales_sq = seasonal_naive_scales(y, seasonality, origins)
    # methods that forecast every window from one fit (Method.backtest_kernel)
    shared: dict[str, list[np.ndarray]] = {}
    for name, fcs in (window_forecasts or {}).items():
        if name not in asked or len(fcs) != n_windows:
            raise MethodError(
                f"window_forecasts[{name!r}]: {len(fcs)} forecast(s) for {n_windows} window(s) "
                f"of a backtested method ({asked}); give one per window of a method in methods"
            )
        shared[name] = [np.maximum(np.asarray(fc, dtype=np.float64), 0.0) for fc in fcs]
    for m in resolved:
        if m.name in shared or m.backtest_kernel is None or not reuse_fits:
            continue
        t0 = time.perf_counter()
        try:
            shared[m.name] = backtest_forecasts(panel, h, origins, m, params.get(m.name))
        except MethodError:
            raise
        except Exception as exc:  # a kernel bug: say where it happened
            raise MethodError(
                f"method {m.name!r} failed in the backtest (one fit on training periods "
                f"0..{origins[0] - 1} for all {n_windows} windows): {type(exc).__name__}: {exc}"
            ) from exc
        kernel_time[m.name] += time.perf_counter() - t0

    for w, origin in enumerate(origins):
        train_panel = panel.slice_periods(origin)
        actual = y[:, origin : origin + h].astype(np.float64)
        actual_sum += np.abs(actual).sum(axis=1)  # the WAPE denominator (wape_parts)
        scales = TrainScales(scales_abs[w], scales_sq[w])
        pct_actual = actual[pct_rows]
        # the classical methods of this window share their levels (Croston for SBA, ...)
        with shared_levels(train_panel.y, names):
            for i, m in enumerate(resolved):
                t0 = time.perf_counter()
                try:
                    fc = (
                        shared[m.name][w]
                        if m.name in shared
                        else forecast_panel(train_panel, h, m, params.get(m.name))
                    )
                except MethodError:
                    raise  # already names the method and the fix
                except Exception as exc:  # a kernel bug: say where it happened
                    raise MethodError(
                        f"method {m.name!r} failed in backtest window {w + 1}/{n_windows} "
                        f"(training periods 0..{origin - 1}): {type(exc).__name__}: {exc}"
                    ) from exc
                kernel_time[m.name] += time.perf_counter() - t0
                if fc.shape != (n_items, h):
                    raise MethodError(
                        f"method {m.name!r} returned shape {fc.shape}, expected {(n_items, h)}"
                    )
                if errors is not None:
                    errors[m.name][w] = fc - actual
                scored = window_scores(actual, fc, scales, stockout_weight)
                abs_error_sum[i] += wape_parts(actual, fc)[0]
                error_sum[i] += (fc - actual).sum(axis=1)
                ape, n_nonzero = mape_parts(pct_actual, fc[pct_rows])
                ape_sum[i] += ape
                ape_count[i] += n_nonzero
                for k, v in scored.items():
                    ok = ~np.isnan(v)
                    sums[k][i] += np.where(ok, v, 0.0)
                    counts[k][i] += ok
                done += 1
                if progress is not None:
                    progress(done, total, f"{m.name} window {w + 1}/{n_windows}")

    t_score = time.perf_counter()
    n_train_demands = (y[:, : origins[-1]] > 0).sum(axis=1)
    ids = pl.Series("unique_id", np.asarray(panel.item_ids).astype(str), dtype=pl.Utf8)
    columns: dict[str, Any] = {
        "unique_id": pl.concat([ids] * n_m),
        "method": pl.concat([pl.repeat(n, n_items, eager=True, dtype=pl.Utf8) for n in names]),
    }
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in SCORE_METRICS:
            mean = np.where(counts[k] > 0, sums[k] / np.maximum(counts[k], 1), np.nan)
            columns[k] = pl.Series(k, mean.ravel(), dtype=pl.Float64, nan_to_null=True)
    mape = np.full((n_m, n_items), np.nan)
    wape = np.full((n_m, n_items), np.nan)
    mape[:, pct_rows] = ratio_of_sums(ape_sum, ape_count)
    wape[:, pct_rows] = ratio_of_sums(abs_error_sum[:, pct_rows], actual_sum[pct_rows])
    columns["mape"] = pl.Series("mape", mape.ravel(), dtype=pl.Float64, nan_to_null=True)
    columns["wape"] = pl.Series("wape", wape.ravel(), dtype=pl.Float64, nan_to_null=True)
    columns["n_windows_scaled"] = pl.Series(counts["mase"].ravel(), dtype=pl.Int64)
    columns["abs_error_sum"] = pl.Series(abs_error_sum.ravel(), dtype=pl.Float64, nan_to_null=True)
    columns["error_sum"] = pl.Series(error_sum.ravel(), dtype=pl.Float64, nan_to_null=True)
    columns["actual_sum"] = pl.Series(np.tile(actual_sum, n_m), dtype=pl.Float64)
    columns["n_train_demands"] = pl.Series(np.tile(n_train_demands, n_m), dtype=pl.Int64)
    scores = pl.DataFrame(columns)
    dates = panel.dates
    return BacktestResult(
        scores=scores,
        methods=names,
        labels={n: method_label(n, params.get(n)) for n in names},
        h=h,
        seasonality=seasonality,
        origins=origins,
        cutoffs=[dates[o - 1] for o in origins],
        errors=errors,
        references=refs,
        timings={
            "kernels": kernel_time,
            "frame": time.perf_counter() - t_score,
            "scoring": time.perf_counter() - t_start - sum(kernel_time.values()),
            "total": time.perf_counter() - t_start,
        },
        panel=panel,
        stockout_weight=stockout_weight,
    )
