"""Accuracy monitoring of served forecasts, on arrays: rolling scores per group of items, the
backtest expectation of the same groups, and the degradation rule that raises alerts.

Pure numbers (no I/O): ``sparecast.pipeline.monitor`` reads the store, calls these and writes
the alerts. The per-item metrics are the registry's (:data:`sparecast.evaluate.metrics.METRICS`);
MASE and RMSSE use the in-sample scales stored with the run (the training part the served
forecast was fitted on), so a monitored MASE means what the backtest's MASE means.

Scores of a period ``j`` (a forecast date with actuals) are computed over a rolling window: the
forecast dates with actuals up to ``j``, the last ``window`` of them (all when None). An item is
scored in a window only when every date of the window has its actual. Group values are means
over the scored items (MAE, MASE, RMSSE, MAPE: MAPE over regular items only) and, for the
relative bias, the ratio of sums ``sum(forecast - actual) / sum(actual)`` (positive =
over-forecast), as the backtest summary's ``rel_bias``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import numpy as np
import polars as pl

from sparecast.errors import DataValidationError
from sparecast.evaluate.metrics import METRICS, ratio_of_sums

__all__ = [
    "MONITOR_METRICS",
    "watch_problem",
    "MONITOR_GROUPINGS",
    "EXPECTATION_COLUMNS",
    "EXPECTED_SCHEMA",
    "group_codes",
    "rolling_scores",
    "expected_scores",
    "mark_periods",
    "streaks",
    "degradations",
]

MONITOR_METRICS: tuple[str, ...] = ("mae", "mase", "rmsse", "rel_bias", "mape")
"""Metrics of the monitoring scores (``rel_bias`` is compared by its absolute value, with an
additive threshold: see :func:`degradations`)."""
MONITOR_GROUPINGS: tuple[str, ...] = ("all", "tier", "class", "category")
"""Groupings of the monitoring scores: every item, frequency tier, demand class, item category."""
EXPECTATION_COLUMNS: tuple[str, ...] = (
    "expected_mae",
    "expected_mase",
    "expected_rmsse",
    "expected_mape",
    "expected_error_sum",
    "expected_actual_sum",
)
"""Per-item backtest expectation of the served method, as stored with a run."""

_SCORE_SCHEMA = {
    "period": pl.Int32,
    "ds": pl.Date,
    "grouping": pl.Utf8,
    "group": pl.Utf8,
    "n_items": pl.Int64,
    "mae": pl.Float64,
    "mase": pl.Float64,
    "rmsse": pl.Float64,
    "rel_bias": pl.Float64,
    "mape": pl.Float64,
    "error_sum": pl.Float64,
    "actual_sum": pl.Float64,
    "std_error_sum": pl.Float64,
    "std_actual_sum": pl.Float64,
    "std_items": pl.Int64,
    "mae_se": pl.Float64,
    "mase_se": pl.Float64,
    "rmsse_se": pl.Float64,
    "mape_se": pl.Float64,
}
_NOISE_COLUMNS = (
    "error_sum",
    "actual_sum",
    "std_error_sum",
    "std_actual_sum",
    "std_items",
    "mae_se",
    "mase_se",
    "rmsse_se",
    "mape_se",
)
"""Columns of :func:`rolling_scores` that :func:`mark_periods` tests significance with."""
EXPECTED_SCHEMA = {
    k: v for k, v in _SCORE_SCHEMA.items() if k not in ("period", "ds", *_NOISE_COLUMNS)
}
"""Columns of a backtest expectation per group (:func:`expected_scores`): grouping, group,
n_items, mae, mase, rmsse, rel_bias, mape."""


def group_codes(labels: Sequence[str | None]) -> tuple[np.ndarray, list[str]]:
    """Integer codes of item labels (None -> ``"unknown"``) and the label of each code, in
    first-seen order."""
    series = pl.Series("label", list(labels), dtype=pl.Utf8).fill_null("unknown")
    names = series.unique(maintain_order=True).to_list()
    codes = series.replace_strict(names, list(range(len(names))), return_dtype=pl.Int64)
    return codes.to_numpy(), names


Codes = dict[str, tuple[np.ndarray, list[str]]]


def _codes(groups: Mapping[str, Sequence[str | None]], n: int) -> Codes:
    """Integer codes and labels of every grouping (``all``: one group of every item)."""
    return {
        g: (np.zeros(n, np.int64), ["all"]) if g == "all" else group_codes(labels)
        for g, labels in groups.items()
    }


def _group_rows(
    values: Mapping[str, np.ndarray],
    error_sum: np.ndarray,
    actual_sum: np.ndarray,
    scored: np.ndarray,
    groups: Codes,
    noise_sd: np.ndarray | None = None,
) -> list[dict[str, object]]:
    """One row per (grouping, group): n_items (scored items), the mean of each per-item value
    over the items where it is defined and its standard error (``<metric>_se``: the standard
    deviation over those items / sqrt(count); NaN below two items), rel_bias as a ratio of sums
    over the scored items with its parts error_sum and actual_sum, and the same parts with each
    item's error and actual divided by ``noise_sd`` (per item: the standard deviation of its
    error sum from the demand's noise): std_error_sum, std_actual_sum over the std_items scored
    items with a positive, finite ``noise_sd``."""
    rows: list[dict[str, object]] = []
    sd = np.zeros(len(scored)) if noise_sd is None else np.nan_to_num(noise_sd)
    with np.errstate(divide="ignore"):
        weight = np.where(scored & (sd > 0) & np.isfinite(sd), 1.0 / sd, 0.0)
    weight = np.where(np.isfinite(weight), weight, 0.0)
    for grouping, (codes, names) in groups.items():
        size = len(names)
        count = np.bincount(codes, weights=scored, minlength=size)
        means, ses = {}, {}
        for name, v in values.items():
            ok = scored & ~np.isnan(v)
            m = np.bincount(codes, weights=ok, minlength=size)
            total = np.bincount(codes, weights=np.where(ok, v, 0.0), minlength=size)
            squares = np.bincount(codes, weights=np.where(ok, v * v, 0.0), minlength=size)
            means[name] = ratio_of_sums(total, m)
            spread = np.maximum(squares - total * means[name], 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                ses[name] = np.where(m >= 2, np.sqrt(spread / np.maximum(m - 1, 1) / m), np.nan)
        err = np.bincount(codes, weights=np.where(scored, error_sum, 0.0), minlength=size)
        act = np.bincount(codes, weights=np.where(scored, actual_sum, 0.0), minlength=size)
        std_err = np.bincount(codes, weights=weight * np.nan_to_num(error_sum), minlength=size)
        std_act = np.bincount(codes, weights=weight * np.nan_to_num(actual_sum), minlength=size)
        std_n = np.bincount(codes, weights=weight > 0, minlength=size)
        bias = ratio_of_sums(err, act)
        for k, group in enumerate(names):
            row: dict[str, object] = {
                "grouping": grouping,
                "group": group,
                "n_items": int(count[k]),
            }
            for name in ("mae", "mase", "rmsse", "mape"):
                row[name] = float(means[name][k]) if name in means else float("nan")
            row["rel_bias"] = float(bias[k])
            row["error_sum"] = float(err[k])
            row["actual_sum"] = float(act[k])
            row["std_error_sum"] = float(std_err[k])
            row["std_actual_sum"] = float(std_act[k])
            row["std_items"] = int(std_n[k])
            for name in ("mae", "mase", "rmsse", "mape"):
                row[f"{name}_se"] = float(ses[name][k]) if name in ses else float("nan")
            rows.append(row)
    return rows


def _check_items(n: int, **arrays: np.ndarray | Sequence[object]) -> None:
    for name, a in arrays.items():
        if len(a) != n:
            raise DataValidationError(
                f"{name} has {len(a)} values for {n} items; give one per item"
            )


def rolling_scores(
    forecast: np.ndarray,
    actual: np.ndarray,
    dates: Sequence[date],
    *,
    scale_mase: np.ndarray,
    scale_rmsse: np.ndarray,
    regular: np.ndarray,
    groups: Mapping[str, Sequence[str | None]],
    window: int | None = None,
) -> pl.DataFrame:
    """Rolling accuracy of one run's forecasts per group and period.

    ``forecast``, ``actual``: float ``[items, h]`` over the run's forecast ``dates``, actual NaN
    where not known (yet); ``scale_mase``/``scale_rmsse``: the in-sample scales per item (mean
    absolute / squared seasonal difference of the training part; NaN or 0: MASE/RMSSE
    undefined); ``regular``: bool per item, where MAPE is meaningful; ``groups``: grouping name
    -> a label per item (``"all"`` needs no labels: pass any sequence). Returns one row per
    (period, grouping, group) for every date with at least one actual: period (1-based among
    those dates), ds, grouping, group, n_items, mae, mase, rmsse, rel_bias, mape (NaN where
    undefined), and what :func:`mark_periods` judges their noise by: error_sum and actual_sum
    (the parts of rel_bias), the same parts with every item's error and actual divided by the
    standard deviation of its error sum from the demand's noise (std_error_sum,
    std_actual_sum, over std_items items; the variance per item and cell is ``scale_rmsse /
    2``, the mean squared one-step difference being twice the variance of uncorrelated
    demand), and ``<metric>_se`` (the standard error of each mean over the group's items)."""
    fc = np.asarray(forecast, dtype=np.float64)
    act = np.asarray(actual, dtype=np.float64)
    if fc.ndim != 2 or fc.shape != act.shape:
        raise DataValidationError(
            f"forecast {fc.shape} and actual {act.shape} must both be [items, h]"
        )
    n, h = fc.shape
    if len(dates) != h:
        raise DataValidationError(f"{len(dates)} dates for {h} forecast periods")
    if window is not None and window < 1:
        raise DataValidationError(f"window must be >= 1 period, got {window}")
    _check_items(n, scale_mase=scale_mase, scale_rmsse=scale_rmsse, regular=regular)
    for grouping, labels in groups.items():
        if grouping != "all":
            _check_items(n, **{f"groups[{grouping!r}]": labels})
    regular = np.asarray(regular, dtype=bool)
    codes = _codes(groups, n)
    variance = np.asarray(scale_rmsse, dtype=np.float64) / 2.0
    known = np.flatnonzero(~np.isnan(act).all(axis=0))
    rows: list[dict[str, object]] = []
    for period, j in enumerate(known, start=1):
        lo = 0 if window is None else max(0, period - window)
        cols = known[lo:period]
        yt, yp = act[:, cols], fc[:, cols]
        scored = np.asarray(~np.isnan(yt).any(axis=1), dtype=bool)
        yt0 = np.where(scored[:, None], yt, 0.0)  # unscored items: any number, masked below
        values = {
            "mae": METRICS["mae"](yt0, yp),
            "mase": METRICS["mase"](yt0, yp, scale=np.asarray(scale_mase, dtype=np.float64)),
            "rmsse": METRICS["rmsse"](yt0, yp, scale=np.asarray(scale_rmsse, dtype=np.float64)),
            "mape": np.where(regular, METRICS["mape"](yt0, yp), np.nan),
        }
        error_sum = (yp - yt0).sum(axis=1)
        actual_sum = yt0.sum(axis=1)
        noise_sd = np.sqrt(variance * len(cols))  # of error_sum, the demand's noise alone
        for row in _group_rows(values, error_sum, actual_sum, scored, codes, noise_sd):
            rows.append({"period": period, "ds": dates[int(j)], **row})
    return pl.DataFrame(rows, schema=_SCORE_SCHEMA, orient="row").with_columns(
        pl.col(c).fill_nan(None) for c in MONITOR_METRICS
    )


def expected_scores(
    expected: Mapping[str, np.ndarray],
    *,
    regular: np.ndarray,
    groups: Mapping[str, Sequence[str | None]],
) -> pl.DataFrame:
    """The backtest expectation per group, aggregated as :func:`rolling_scores` aggregates the
    monitored scores: ``expected`` maps each of :data:`EXPECTATION_COLUMNS` to a float per item
    (the backtest scores of the method the run serves the item with; NaN: unknown). Returns
    grouping, group, n_items (items with an expectation), mae, mase, rmsse, rel_bias, mape."""
    missing = [c for c in EXPECTATION_COLUMNS if c not in expected]
    if missing:
        raise DataValidationError(f"expected lacks {missing}; give {list(EXPECTATION_COLUMNS)}")
    arrays = {c: np.asarray(expected[c], dtype=np.float64) for c in EXPECTATION_COLUMNS}
    n = len(arrays["expected_mae"])
    _check_items(n, regular=regular, **arrays)
    regular = np.asarray(regular, dtype=bool)
    values = {
        "mae": arrays["expected_mae"],
        "mase": arrays["expected_mase"],
        "rmsse": arrays["expected_rmsse"],
        "mape": np.where(regular, arrays["expected_mape"], np.nan),
    }
    scored = ~np.isnan(arrays["expected_mae"])
    err = np.nan_to_num(arrays["expected_error_sum"])
    act = np.nan_to_num(arrays["expected_actual_sum"])
    rows = _group_rows(values, err, act, scored, _codes(groups, n))
    rows = [{k: row[k] for k in EXPECTED_SCHEMA} for row in rows]
    return pl.DataFrame(rows, schema=EXPECTED_SCHEMA, orient="row").with_columns(
        pl.col(c).fill_nan(None) for c in MONITOR_METRICS
    )


_STATE_SCHEMA = {
    "grouping": pl.Utf8,
    "group": pl.Utf8,
    "metric": pl.Utf8,
    "ds": pl.Date,
    "period": pl.Int32,
    "n_items": pl.Int64,
    "value": pl.Float64,
    "expected": pl.Float64,
    "threshold": pl.Float64,
    "limit": pl.Float64,
    "z": pl.Float64,
    "streak": pl.Int64,
    "alert": pl.Boolean,
}
_MARK_SCHEMA = {k: v for k, v in _STATE_SCHEMA.items() if k not in ("period", "streak", "alert")}
_MARK_SCHEMA["worse"] = pl.Boolean


def watch_problem(watch: Mapping[str, float]) -> str | None:
    """Why ``watch`` (metric -> threshold) cannot be monitored, or None: the one check of the
    ``[monitoring] watch`` setting and of :func:`mark_periods`'s argument."""
    if not watch:
        return "watch must name at least one metric"
    for metric, threshold in watch.items():
        if metric not in MONITOR_METRICS:
            return f"unknown metric {metric!r}; known: {', '.join(MONITOR_METRICS)}"
        if not threshold > 0:
            return f"the threshold of {metric} must be > 0, got {threshold}"
    return None


def mark_periods(
    scores: pl.DataFrame,
    expected: pl.DataFrame,
    *,
    watch: Mapping[str, float],
    min_items: int,
    groupings: Sequence[str] = MONITOR_GROUPINGS,
    exclude: Sequence[str] = (),
    z: float = 0.0,
) -> pl.DataFrame:
    """Whether each scored (period, group) is degraded on each watched metric.

    ``watch``: metric -> threshold. A group is degraded on a metric in a period when it has at
    least ``min_items`` scored items and the metric is worse than ``expected x (1 +
    threshold)``; for ``rel_bias``, a ratio near zero where a multiple means nothing, when its
    absolute value exceeds the expectation's absolute value + threshold (0.5: fifty points of
    bias more than the backtest had). Groups labelled in ``exclude`` (e.g. ``no_demand``) and
    groups without an expectation of the metric are left out.

    ``z`` > 0 also asks the deviation to be significant given the group-period's sampling
    noise: a small group over a short window misses a fixed relative threshold by chance
    most periods. The score ``z`` is, for rel_bias, ``(|std_error_sum| - |expected| x
    std_actual_sum) / sqrt(std_items)``: the excess error over the expected bias, each item's
    part in standard deviations of its own demand noise, so that under no change the sum has
    a variance of about one per item and every item counts alike (pooled, a few lumpy items'
    noise would hide a shift of all the others); for the other metrics ``(value - expected) /
    <metric>_se`` (in standard errors of the mean over the group's items); a period is
    degraded only when it is also >= ``z`` (an undefined score, e.g. one item, is not
    significant). ``z = 0`` skips the test (the relative threshold alone). Returns grouping,
    group, metric, ds, n_items, value, expected, threshold, limit, z (the score; null where
    undefined), worse."""
    problem = watch_problem(watch)
    if problem is not None:
        raise DataValidationError(problem)
    if min_items < 1:
        raise DataValidationError(f"min_items must be >= 1, got {min_items}")
    if not z >= 0:
        raise DataValidationError(f"z must be >= 0 (0: no significance test), got {z}")
    lacking = [c for c in _NOISE_COLUMNS if c not in scores.columns]
    if z > 0 and scores.height and lacking:
        raise DataValidationError(f"scores lack {lacking} (rolling_scores gives them) for z > 0")
    if scores.height == 0 or expected.height == 0:
        return pl.DataFrame(schema=_MARK_SCHEMA)
    watched = scores.filter(
        pl.col("grouping").is_in(list(groupings)) & ~pl.col("group").is_in(list(exclude))
    )
    parts = []
    for metric, threshold in watch.items():
        exp = expected.select("grouping", "group", pl.col(metric).alias("expected")).filter(
            pl.col("expected").is_not_null() & pl.col("expected").is_finite()
        )
        value = pl.col(metric).abs() if metric == "rel_bias" else pl.col(metric)
        if metric == "rel_bias":
            limit = pl.col("expected").abs() + threshold
        else:
            limit = pl.col("expected") * (1.0 + threshold)
        if lacking:
            score = pl.lit(None, dtype=pl.Float64)
        elif metric == "rel_bias":
            excess = pl.col("std_error_sum").abs() - pl.col("expected").abs() * pl.col(
                "std_actual_sum"
            )
            score = excess / pl.col("std_items").cast(pl.Float64).sqrt()
        else:
            score = (pl.col(metric) - pl.col("expected")) / pl.col(f"{metric}_se")
        score = pl.when(score.is_nan()).then(None).otherwise(score)
        significant = pl.lit(True) if z == 0 else (score >= z)
        parts.append(
            watched.join(exp, on=["grouping", "group"], how="inner").select(
                "grouping",
                "group",
                pl.lit(metric).alias("metric"),
                "ds",
                "n_items",
                pl.col(metric).alias("value"),
                "expected",
                pl.lit(float(threshold)).alias("threshold"),
                limit.alias("limit"),
                score.alias("z"),
                (
                    (pl.col("n_items") >= min_items)
                    & value.is_not_null()
                    & (value > limit)
                    & significant
                )
                .fill_null(False)
                .alias("worse"),
            )
        )
    return pl.concat(parts).cast(_MARK_SCHEMA)  # type: ignore[arg-type]


def streaks(marked: pl.DataFrame, dates: Sequence[date], *, periods: int) -> pl.DataFrame:
    """The degradation state of every watched (group, metric) at the last of ``dates``.

    ``marked``: rows of :func:`mark_periods`, possibly from several runs (each period marked
    by the run that served it); ``dates``: the periods in serving order. ``streak`` counts the
    degraded periods in a row up to the last date (a date where a group has no row breaks
    it); ``alert`` is True when it reaches ``periods``. Returns grouping, group, metric, ds,
    period (the number of dates), n_items, value, expected, threshold, limit, streak, alert;
    (group, metric) pairs without a row at the last date are left out."""
    if periods < 1:
        raise DataValidationError(f"periods must be >= 1, got {periods}")
    if marked.height == 0 or not dates:
        return pl.DataFrame(schema=_STATE_SCHEMA)
    last = dates[-1]
    order = list(dates)
    rows = []
    for _, part in marked.sort("ds").group_by(["grouping", "group", "metric"], maintain_order=True):
        flags = dict(zip(part["ds"].to_list(), part["worse"].to_list(), strict=True))
        if last not in flags:
            continue
        streak = 0
        for day in reversed(order):
            if not flags.get(day, False):
                break
            streak += 1
        row = part.filter(pl.col("ds") == last).row(0, named=True)
        row.pop("worse")
        rows.append({**row, "period": len(order), "streak": streak, "alert": streak >= periods})
    return pl.DataFrame(rows, schema=_STATE_SCHEMA, orient="row").select(list(_STATE_SCHEMA))


def degradations(
    scores: pl.DataFrame,
    expected: pl.DataFrame,
    *,
    watch: Mapping[str, float],
    periods: int,
    min_items: int,
    groupings: Sequence[str] = MONITOR_GROUPINGS,
    exclude: Sequence[str] = (),
    z: float = 0.0,
) -> pl.DataFrame:
    """The degradation state of every watched (group, metric) of one run's scores at its last
    scored period: :func:`mark_periods` then :func:`streaks` over the run's scored dates."""
    marked = mark_periods(
        scores,
        expected,
        watch=watch,
        min_items=min_items,
        groupings=groupings,
        exclude=exclude,
        z=z,
    )
    dates = scores.select("ds").unique().sort("ds")["ds"].to_list() if scores.height else []
    return streaks(marked, dates, periods=periods)
