"""Choosing methods from a backtest: per demand class, frequency tier or item, the method (or the
mean of the ``top_k`` best) with the lowest backtest score, or a robust default unless the
evidence against it is significant.

Why the robust default: with a few backtest windows the lowest mean score of a group is often
luck (on a 24-month history one or two windows fit). With ``default`` given, a group departs from
it only when its best method is at least ``margin`` better on the group's mean score *and* a
one-sided paired t-test over the group's items (each item's score averaged over the windows) says
the improvement is significant at level ``alpha``; otherwise the reason says the default was kept
and why.

The backtest (:mod:`sparecast.evaluate.backtest`) measures and summarises; this module decides.
Aggregation rule: the mean over items of the per-item metric, ignoring items where it is
undefined (null), as in :meth:`BacktestResult.class_means`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl
from scipy import stats

from sparecast.errors import ConfigError
from sparecast.evaluate.backtest import BacktestResult, check_score_metric
from sparecast.methods import get_method
from sparecast.methods.combine import combination_members

__all__ = [
    "BALANCED",
    "BIAS_TOLERANCE",
    "DEFAULT_MARGIN",
    "DEFAULT_ALPHA",
    "paired_test",
    "select",
]

BALANCED = "mase+asym"
"""Selection metric: MASE and asym, each divided by the group's best value, added."""
DEFAULT_MARGIN = 0.02
"""Relative improvement of the group's mean score a method needs to replace the robust default."""
DEFAULT_ALPHA = 0.05
"""Significance level of the paired test against the robust default."""
BIAS_TOLERANCE = 0.10
"""A method replaces the robust default only if its relative bias over the group is within
this, or within the default's own: RMSSE rewards forecasts that run low on intermittent items,
and a plan built on them runs short."""


def paired_test(default: np.ndarray, other: np.ndarray) -> tuple[float, int]:
    """One-sided paired t-test that ``other`` scores lower than ``default`` (per-item scores,
    NaN pairs left out): the p-value and the number of pairs. Fewer than 3 pairs give p = 1;
    identical differences give p = 0 when they favour ``other`` and 1 otherwise."""
    d = np.asarray(default, dtype=np.float64) - np.asarray(other, dtype=np.float64)
    d = d[~np.isnan(d)]
    n = int(d.size)
    if n < 3:
        return 1.0, n
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        return (0.0 if mean > 0 else 1.0), n
    t = mean / (sd / np.sqrt(n))
    return float(stats.t.sf(t, df=n - 1)), n


def _best_k(frame: pl.DataFrame, key: str, metric: str, top_k: int) -> pl.DataFrame:
    """Per ``key``: the ``top_k`` methods with the lowest ``metric`` (ties: earlier method),
    as ``key, best`` (the method, or ``mean(a,b)`` of several) and ``score`` (the best
    member's metric). Rows where the metric is undefined are ignored."""
    if metric == BALANCED:
        # each score relative to the group's best, MASE and asym added: a method must be
        # good on both the typical error and the stockout-weighted one
        # (a perfect method, e.g. zero forecasts of a dead item, has a best score of 0: the
        # floor keeps its ratio 0 instead of NaN, and the others' finite)
        rel = [
            pl.col(m) / pl.max_horizontal(pl.col(m).min().over(key), pl.lit(1e-12))
            for m in ("mase", "asym")
        ]
        frame = frame.with_columns((rel[0] + rel[1]).alias(BALANCED))
    ranked = (
        frame.filter(pl.col(metric).is_not_null() & pl.col(metric).is_not_nan())
        .sort(key, metric, "method_order")
        .group_by(key, maintain_order=True)
        .head(top_k)
    )
    return (
        ranked.group_by(key, maintain_order=True)
        .agg(pl.col("method").alias("members"), pl.col(metric).first().alias("score"))
        .select(
            key,
            pl.when(pl.col("members").list.len() == 1)
            .then(pl.col("members").list.first())
            .otherwise(pl.format("mean({})", pl.col("members").list.join(",")))
            .alias("best"),
            "score",
        )
    )


def select(
    result: BacktestResult,
    classification: pl.DataFrame | None = None,
    *,
    by: Literal["class", "tier", "item"] = "class",
    metric: str = "rmsse",
    fallback: str = "ma",
    top_k: int = 1,
    min_history: int = 0,
    default: str | None = None,
    margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
) -> pl.DataFrame:
    """The method to use per item of a backtest ``result``: unique_id, method, reason.

    ``by="class"`` (default, robust): the method with the lowest mean ``metric`` over the items
    of the item's Syntetos-Boylan class (classification computed from the panel when not
    given); ``by="tier"`` the same over the item's frequency tier. ``by="item"``: the item's
    own lowest ``metric`` (noisy for intermittent items), for items with at least
    ``min_history`` periods with demand before the last origin; the others get their class's
    choice, except items without any demand before it (the fallback). Where the metric is
    undefined for every method (e.g. no demand before the origins), the ``fallback`` method
    is chosen and the reason says why.
    ``metric="mase+asym"`` ranks by MASE / the group's lowest MASE + asym / the group's
    lowest asym (both matter: MASE favours low forecasts of intermittent demand, the
    stockout-weighted asym high ones).
    ``top_k > 1`` serves the mean of the ``top_k`` best methods, named ``mean(a,b,...)``
    (members best first); the score in the reason is the best member's.
    ``default`` (a backtested method, e.g. the robust combination): a group (class or tier)
    keeps it unless its best entry is ``margin`` better on the mean ``metric`` and the paired
    test (:func:`paired_test` on the per-item scores of the default and of the best entry's first
    member; with ``mase+asym`` on RMSSE) has a p-value below ``alpha``, and its relative bias
    over the group (sum of errors / sum of actuals) is within ``BIAS_TOLERANCE`` or within the
    default's; the reason says which.
    """
    if metric != BALANCED:
        check_score_metric(metric)
    get_method(fallback)  # fails with the list of valid names
    if by not in ("class", "tier", "item"):
        raise ConfigError(f"by must be 'class', 'tier' or 'item', got {by!r}")
    if not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ConfigError(f"top_k must be an integer >= 1, got {top_k!r}")
    if not isinstance(min_history, (int, np.integer)) or min_history < 0:
        raise ConfigError(f"min_history must be an integer >= 0, got {min_history!r}")
    result = result.without_references()  # the zero forecast etc. are not candidates
    if default is not None and default not in result.methods:
        raise ConfigError(
            f"the robust default {default!r} was not backtested; backtested: {result.methods}"
        )
    if not 0 <= margin < 1:
        raise ConfigError(f"margin must be in [0, 1), got {margin!r}")
    if not 0 < alpha <= 1:
        raise ConfigError(f"alpha must be in (0, 1], got {alpha!r}")
    ids = result.item_ids()
    scored = result.scores.join(result.method_order(), on="method", how="left")
    group = "tier" if by == "tier" else "sb_class"
    classes = result.item_groups(classification, group)
    what = "tier" if by == "tier" else "class"
    means = result.class_means(classes, with_all=False)
    best = _best_k(means, "sb_class", metric, top_k).select(
        "sb_class",
        pl.col("best").alias("class_best"),
        pl.format(
            f"best {metric} in {what} {{}} ({{}})", pl.col("sb_class"), pl.col("score").round(3)
        ).alias("class_why"),
    )
    if default is not None:
        best = _keep_default(best, means, scored, classes, what, metric, default, margin, alpha)
    hist = scored.filter(pl.col("method") == result.methods[0]).select(
        "unique_id", "n_train_demands"
    )
    out = (
        ids.join(classes, on="unique_id", how="left")
        .with_columns(pl.col("sb_class").fill_null("unclassified"))
        .join(best, on="sb_class", how="left")
        .join(hist, on="unique_id", how="left")
    )
    if by == "item":
        own = _best_k(scored, "unique_id", metric, top_k).select(
            "unique_id",
            pl.col("best").alias("item_best"),
            pl.format(f"best {metric} of the item ({{}})", pl.col("score").round(3)).alias(
                "item_why"
            ),
        )
        out = out.join(own, on="unique_id", how="left")
        enough = pl.col("n_train_demands") >= min_history
        if min_history == 0:
            # the item's own choice or the fallback, as before min_history existed
            out = out.with_columns(
                pl.col("item_best").alias("class_best"), pl.col("item_why").alias("class_why")
            )
        else:
            short = pl.format(
                f"{{}}; the item has {{}} demand periods < min_history {min_history}",
                pl.col("class_why"),
                pl.col("n_train_demands"),
            )
            # no demand at all before the last origin: nothing to judge the item on
            none = pl.col("n_train_demands") == 0
            out = out.with_columns(
                pl.when(none)
                .then(pl.lit(None, dtype=pl.Utf8))
                .when(enough & pl.col("item_best").is_not_null())
                .then(pl.col("item_best"))
                .otherwise(pl.col("class_best"))
                .alias("class_best"),
                pl.when(enough & pl.col("item_best").is_not_null())
                .then(pl.col("item_why"))
                .when(~enough)
                .then(short)
                .otherwise(pl.col("class_why"))
                .alias("class_why"),
            )
    no_best = pl.col("class_best").is_null()
    no_history = (pl.col("sb_class") == "no_demand") | (pl.col("n_train_demands") == 0)
    undefined = (
        pl.lit(f"fallback {fallback}: {metric} undefined for every method")
        if by == "item" and min_history == 0
        else pl.format(
            f"fallback {fallback}: {metric} undefined in {'tier' if by == 'tier' else 'class'}"
            " {}",
            "sb_class",
        )
    )
    return out.select(
        "unique_id",
        pl.when(no_best).then(pl.lit(fallback)).otherwise(pl.col("class_best")).alias("method"),
        pl.when(no_best & no_history)
        .then(pl.lit(f"fallback {fallback}: no history"))
        .when(no_best)
        .then(undefined)
        .otherwise(pl.col("class_why"))
        .alias("reason"),
    )


def _rel_bias(frame: pl.DataFrame, method: str) -> float:
    """Relative bias of ``method`` over the items of ``frame``: sum of forecast - actual over
    the sum of actuals (0 where nothing was sold)."""
    rows = frame.filter(pl.col("method") == method)
    actual = float(rows["actual_sum"].sum())
    return float(rows["error_sum"].sum()) / actual if actual > 0 else 0.0


def _keep_default(
    best: pl.DataFrame,
    means: pl.DataFrame,
    scored: pl.DataFrame,
    classes: pl.DataFrame,
    what: str,
    metric: str,
    default: str,
    margin: float,
    alpha: float,
) -> pl.DataFrame:
    """``best`` (sb_class, class_best, class_why) with each group's choice replaced by
    ``default`` unless the evidence against the default is significant (see :func:`select`)."""
    column = "rmsse" if metric == BALANCED else metric
    per_item = scored.join(classes, on="unique_id", how="left").with_columns(
        pl.col("sb_class").fill_null("unclassified")
    )
    rows = []
    for group, chosen, why in best.iter_rows():
        first = combination_members(chosen)[0]
        if chosen == default:
            rows.append((group, chosen, f"robust default {default}: also the {why}"))
            continue
        in_group = per_item.filter(pl.col("sb_class") == group)

        def scores(name: str, frame: pl.DataFrame = in_group) -> np.ndarray:
            return (
                frame.filter(pl.col("method") == name)
                .sort("unique_id")[column]
                .fill_null(np.nan)
                .to_numpy()
                .astype(np.float64)
            )

        d_scores, b_scores = scores(default), scores(first)
        group_means = means.filter(pl.col("sb_class") == group)
        d_mean = group_means.filter(pl.col("method") == default)[column].item()
        b_mean = group_means.filter(pl.col("method") == first)[column].item()
        if d_mean is None or b_mean is None or d_scores.size != b_scores.size:
            rows.append((group, chosen, why))  # the default cannot be scored here
            continue
        p_value, n = paired_test(d_scores, b_scores)
        gain = 1.0 - b_mean / d_mean if d_mean > 0 else 0.0
        d_bias, b_bias = _rel_bias(in_group, default), _rel_bias(in_group, first)
        evidence = (
            f"{first} {column} {b_mean:.3f} vs {d_mean:.3f} in {what} {group} "
            f"({gain:+.1%}, p={p_value:.3f}, {n} items)"
        )
        biased = abs(b_bias) > max(BIAS_TOLERANCE, abs(d_bias))
        if gain >= margin and p_value < alpha and not biased:
            rows.append((group, chosen, f"{why}; beats robust default {default}: {evidence}"))
        else:
            short = (
                f"less than {margin:.0%} better"
                if gain < margin
                else "not significant"
                if p_value >= alpha
                else f"but biased {b_bias:+.0%} (robust default {d_bias:+.0%})"
            )
            rows.append((group, default, f"robust default {default} kept: {evidence}, {short}"))
    schema = {"sb_class": pl.Utf8, "class_best": pl.Utf8, "class_why": pl.Utf8}
    return pl.DataFrame(rows, schema=schema, orient="row")
