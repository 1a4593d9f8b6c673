"""Decision backtests: the plan's policy against the textbook and an empirical baseline.

:func:`evaluate_plan` replays a demand history: every policy is set on the first part of the
history (``split``, default two thirds) and simulated on what followed
(:func:`sparecast.inventory.simulate.simulate_policy`: (s, nQ) or (R, s, S), backorders, lead
times drawn from each item's samples), for each fill-rate target. Policies:

- ``sparecast``: the plan's policy per item, computed by
  :func:`sparecast.inventory.decide.plan_policy` (what :func:`sparecast.inventory.plan.
  compute_plan` calls) on the training part: lead-time demand distribution, level shift,
  calibrated targets, sparse rule and obsolescence of the settings;
- ``aggregate``: the same function in the multi-item mode (``service_mode = "aggregate"``,
  ``aggregate_target`` = the target);
- ``textbook``: normal lead-time demand on SBA (``inventory.policy.normal_policy``);
- ``empirical``: ``s`` = the target quantile of the item's past sums of demand over its
  protection interval (``round(mean lead time) + 1`` periods for sQ, ``+ R`` for RsS), rounded up.

All use the same order quantity ``Q`` (``inventory.order_cover_days`` of mean training demand,
rounded to MOQ and lot size), lead-time samples, random draws and start: items without demand in
the training part are not stocked by any policy (they start at 0 and never order), nor are the
items the plan flags obsolete in the plan's lines; the others start with ``S`` on hand; each
item's first protection interval (lead time + review, rounded up) is a warm-up that is not
measured.

Results: one row per policy, target and item (``per_item``), aggregates per policy, target and
group (``summary``: all items, items with history, and the demand-frequency groups of the
training part), the trade-off curve (``curve``: achieved fill rate and average stock value of
each policy per target, plus the textbook and the uncalibrated per-item plan over ladders of
nominal targets) and the goal check (``goals``: the plan's fill rate on items with history
against the target, its stock value against the textbook's at the same achieved fill rate,
interpolated on the textbook ladder, and the aggregate mode's fill and stockout rates and stock
value against the per-item mode's at the same fill rate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from sparecast.config import Settings, load_settings
from sparecast.errors import ConfigError
from sparecast.inventory.decide import PolicyDecision, plan_policy
from sparecast.inventory.policy import (
    normal_policy,
    order_quantity,
    protection_review_periods,
    sba_one_step,
)
from sparecast.inventory.simulate import (
    GROUP_NAMES,
    frequency_groups,
    protection_warmup,
    simulate_policy,
)
from sparecast.methods.distributions import lead_time_demand, lead_time_matrix

__all__ = [
    "ITEM_LADDER",
    "POLICIES",
    "TEXTBOOK_LADDER",
    "TRENDS",
    "DecisionBacktest",
    "demand_trend",
    "empirical_reorder_points",
    "evaluate_plan",
    "value_at_fill",
]

POLICIES = ("sparecast", "aggregate", "textbook", "empirical")
TRENDS = ("growing", "decaying")
"""Items whose mean demand in the replayed part more than doubled / halved against the part the
policies were set on (reported as groups beside the frequency groups)."""
TEXTBOOK_LADDER: tuple[float, ...] = (
    0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9999,
)  # fmt: skip
"""Nominal targets of the textbook's trade-off curve (the reference at the same fill rate)."""
ITEM_LADDER: tuple[float, ...] = (
    0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9999,
)  # fmt: skip
"""Nominal targets of the per-item mode's curve without calibration (the reference of the
aggregate mode at the same fill rate)."""


def _line(d: PolicyDecision) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(reorder points, policy targets, replenished, stocking rule) of a plan decision."""
    return d.policy.reorder_point, d.policy.target, d.replenished, d.rule


@dataclass(frozen=True)
class DecisionBacktest:
    """What :func:`evaluate_plan` measured (see the module docstring)."""

    per_item: pl.DataFrame
    summary: pl.DataFrame
    curve: pl.DataFrame
    goals: pl.DataFrame
    split: int
    n_periods: int
    notes: list[str] = field(default_factory=list)


def empirical_reorder_points(
    train: np.ndarray, window: np.ndarray, targets: np.ndarray | float
) -> np.ndarray:
    """``s`` per item: the ``targets`` quantile (linear interpolation) of the sums of ``train``
    over ``window[i]`` consecutive periods, rounded up; an item with a window longer than its
    history gets its whole history's sum scaled to the window. float64[items]."""
    h = np.maximum(np.asarray(train, dtype=np.float64), 0.0)
    n, n_t = h.shape
    w = np.maximum(np.asarray(window, dtype=np.int64), 1)
    tgt = np.broadcast_to(np.asarray(targets, dtype=np.float64), (n,))
    cs = np.concatenate([np.zeros((n, 1)), np.cumsum(h, axis=1)], axis=1)
    s = np.zeros(n)
    for width in np.unique(w):
        rows = np.flatnonzero(w == width)
        if width >= n_t:
            s[rows] = cs[rows, -1] * width / n_t
            continue
        sums = cs[rows, width:] - cs[rows, :-width]
        for t in np.unique(tgt[rows]):
            sub = tgt[rows] == t
            s[rows[sub]] = np.quantile(sums[sub], t, axis=1)
    return np.ceil(s - 1e-9)


def demand_trend(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """str[items]: ``growing`` when the item's mean demand per period in ``test`` is more than
    twice its mean in ``train``, ``decaying`` when under half of it, else ``stable``; items
    without demand in ``train`` are ``no history`` (their growth has no base)."""
    tr = np.maximum(np.asarray(train, dtype=np.float64), 0.0).mean(axis=1)
    te = np.maximum(np.asarray(test, dtype=np.float64), 0.0).mean(axis=1)
    out = np.full(tr.size, "stable", dtype=object)
    out[te > 2.0 * tr] = "growing"
    out[te < 0.5 * tr] = "decaying"
    out[tr <= 0] = "no history"
    return out.astype(str)


def value_at_fill(fills: np.ndarray, values: np.ndarray, fill: float) -> float:
    """The stock value at an achieved ``fill`` on a curve (``fills`` made non-decreasing, in
    ladder order), interpolated linearly; NaN when the curve never reaches it."""
    f = np.maximum.accumulate(np.asarray(fills, dtype=np.float64))
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(fill) or fill > f[-1]:
        return float("nan")
    if fill <= f[0]:
        return float(v[0])
    j = int(np.argmax(f >= fill))
    w = (fill - f[j - 1]) / max(f[j] - f[j - 1], 1e-12)
    return float(v[j - 1] + w * (v[j] - v[j - 1]))


def evaluate_plan(
    y: np.ndarray,
    lead_times: Sequence[np.ndarray] | np.ndarray,
    *,
    targets: Sequence[float] = (0.9, 0.95, 0.98),
    settings: Settings | None = None,
    split: int | None = None,
    period_days: float = 1.0,
    unit_cost: np.ndarray | float = 1.0,
    moq: np.ndarray | float = 1.0,
    lot_size: np.ndarray | float = 1.0,
    item_ids: Sequence[str] | None = None,
    textbook_ladder: Sequence[float] = TEXTBOOK_LADDER,
    item_ladder: Sequence[float] = ITEM_LADDER,
    tiers: Sequence[str] | None = None,
    aggregate: bool = True,
) -> DecisionBacktest:
    """Decision backtest of ``y`` (items x periods, the history) with per-item ``lead_times``
    samples in periods; ``period_days`` converts the day-based inventory settings
    (``order_cover_days``, ``review_period_days``). Every target is given to every item.
    ``split``: periods the policies are set on (default two thirds of the history). ``tiers``:
    per-item tier for the aggregate mode's ``inventory.min_fill_rates`` (default none).
    ``aggregate=False`` leaves out the aggregate mode and the per-item ladder it is compared
    with (its goal columns are then NaN): a quicker run when only the per-item plan is looked at."""
    settings = settings or load_settings()
    inv = settings.inventory
    h = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    n, n_t = h.shape
    split = n_t * 2 // 3 if split is None else split
    if not 0 < split < n_t:
        raise ConfigError(f"split must be inside the history (1..{n_t - 1}), got {split}")
    tgts = [float(t) for t in targets]
    if not tgts or any(not 0 < t < 1 for t in tgts):
        raise ConfigError(f"targets must be in (0, 1), got {tgts}")
    ids = [str(i) for i in range(n)] if item_ids is None else [str(i) for i in item_ids]
    lts = [np.atleast_1d(np.asarray(lead_times[i], dtype=np.float64)) for i in range(n)]
    train, test = h[:, :split], h[:, split:]
    cost = np.broadcast_to(np.asarray(unit_cost, dtype=np.float64), (n,))
    moq_a = np.broadcast_to(np.asarray(moq, dtype=np.float64), (n,))
    lot_a = np.broadcast_to(np.asarray(lot_size, dtype=np.float64), (n,))
    review = max(1, round(inv.review_period_days / period_days))
    rp = protection_review_periods(inv.policy, review)
    q = order_quantity(train.mean(axis=1), inv.order_cover_days / period_days, moq_a, lot_a)
    stocked = train.sum(axis=1) > 0
    groups = frequency_groups(train)
    trend = demand_trend(train, test)
    warm = protection_warmup(lts, inv.policy, review)
    lt, counts = lead_time_matrix(lts, n)
    lt_mean = np.nansum(lt, axis=1) / np.maximum(counts, 1)
    lt_std = np.where(
        counts > 1, np.sqrt(np.nansum((lt - lt_mean[:, None]) ** 2, axis=1) / counts), 0.0
    )
    notes: list[str] = []
    unmeasured = int((warm >= test.shape[1]).sum())
    if unmeasured:
        notes.append(
            f"{unmeasured} item(s) have a protection interval (their warm-up) as long as the "
            f"{test.shape[1]} test periods: simulated but not measured"
        )
    ltd = lead_time_demand(
        train,
        lts,
        review_period=rp,
        method=inv.distribution,
        n_samples=inv.n_samples,
        seed=inv.seed,
        chunk_size=inv.chunk_size,
    )
    sba_rate, sba_rmse = sba_one_step(train)
    window = np.rint(lt_mean).astype(np.int64) + int(round(rp))

    def simulate(s: np.ndarray, replenish: np.ndarray = stocked) -> pl.DataFrame:
        sim = simulate_policy(
            test,
            s,
            q,
            lts,
            policy=inv.policy,
            review_period=review,
            moq=moq_a,
            lot_size=lot_a,
            unit_cost=cost,
            warmup=np.minimum(warm, test.shape[1]),
            seed=inv.seed + 1,
            item_ids=ids,
            replenish=replenish,
        )
        return sim.per_item

    def textbook(t: float) -> np.ndarray:
        return normal_policy(
            sba_rate, sba_rmse, lt_mean, lt_std, np.full(n, t), q, review_period=rp,
            policy=inv.policy,
        ).reorder_point  # fmt: skip

    frames: list[pl.DataFrame] = []
    item_settings = _with_inventory(settings, service_mode="item")
    for t in tgts:
        # the plan's own code path (calibration, sparse and obsolescence rules, level shift),
        # per item and in the aggregate mode at an aggregate target of t
        spare = plan_policy(
            train, lts, t, q, item_settings, period_days=period_days, unit_cost=cost,
            moq=moq_a, lot_size=lot_a, ltd=ltd, tiers=tiers,
        )  # fmt: skip
        notes.extend(f"target {t:.0%}, sparecast: {x}" for x in spare.notes)
        base_rule = np.where(stocked, "target", "no_demand")
        plans = {"sparecast": _line(spare)}
        if aggregate:
            agg = plan_policy(
                train, lts, t, q, _with_inventory(settings, service_mode="aggregate",
                aggregate_target=t), period_days=period_days, unit_cost=cost, moq=moq_a,
                lot_size=lot_a, ltd=ltd, tiers=tiers,
            )  # fmt: skip
            notes.extend(f"target {t:.0%}, aggregate: {x}" for x in agg.notes)
            plans["aggregate"] = _line(agg)
        plans |= {
            "textbook": (textbook(t), np.full(n, t), stocked, base_rule),
            "empirical": (
                empirical_reorder_points(train, window, t),
                np.full(n, t),
                stocked,
                base_rule,
            ),
        }
        for name, (s, nominal, replenish, rule) in plans.items():
            frames.append(
                simulate(s, replenish).with_columns(
                    pl.lit(name).alias("policy"),
                    pl.lit(t).alias("target"),
                    pl.Series("policy_target", nominal),
                    pl.Series("stocking_rule", rule.astype(str), dtype=pl.String),
                    pl.Series("reorder_point", s),
                    pl.Series("order_quantity", q),
                    pl.Series("group", [GROUP_NAMES[g] for g in groups], dtype=pl.String),
                    pl.Series("has_history", stocked),
                    pl.Series("trend", trend, dtype=pl.String),
                    pl.Series("lead_time_periods", lt_mean),
                )
            )
    per_item = (
        pl.concat(frames)
        .rename({"item_id": "unique_id"})
        .select(
            "policy",
            "target",
            "unique_id",
            "group",
            "has_history",
            "trend",
            "lead_time_periods",
            "policy_target",
            "stocking_rule",
            "reorder_point",
            "order_quantity",
            "demand",
            "filled",
            "fill_rate",
            "demand_days",
            "stockout_demand_days",
            "avg_on_hand",
            "avg_on_hand_value",
            "n_orders",
            "measured_periods",
        )  # fmt: skip
    )
    summary = _summary(per_item)
    ladder_rows = []
    for t in textbook_ladder:
        sim = simulate(textbook(t))
        row = _aggregate(sim.with_columns(pl.Series("has_history", stocked)))
        ladder_rows.append({"policy": "textbook ladder", "target": float(t), **row})
    # the per-item mode over nominal targets (not calibrated: the calibration only picks a
    # nominal target per group): the reference of the aggregate mode at the same fill rate
    item_rows = []
    uncal = _with_inventory(item_settings, calibrate=False)
    for t in item_ladder if aggregate else ():
        d = plan_policy(
            train, lts, t, q, uncal, period_days=period_days, unit_cost=cost, moq=moq_a,
            lot_size=lot_a, ltd=ltd,
        )  # fmt: skip
        sim = simulate(d.policy.reorder_point, d.replenished)
        row = _aggregate(sim.with_columns(pl.Series("has_history", stocked)))
        item_rows.append({"policy": "sparecast ladder", "target": float(t), **row})
    points = summary.filter(pl.col("group") == "all").select(
        "policy", "target", "fill_rate", "fill_rate_with_history", "avg_stock_value"
    )
    curve = pl.concat(
        [
            points,
            pl.DataFrame(ladder_rows + item_rows).select(
                "policy", "target", "fill_rate", "fill_rate_with_history", "avg_stock_value"
            ),
        ]
    )
    # the per-item curve: its ladder and its calibrated points, in order of stock value
    item_curve = pl.concat(
        [
            pl.DataFrame(item_rows).select("fill_rate_with_history", "avg_stock_value")
            if item_rows
            else pl.DataFrame(
                schema={"fill_rate_with_history": pl.Float64, "avg_stock_value": pl.Float64}
            ),
            points.filter(pl.col("policy") == "sparecast").select(
                "fill_rate_with_history", "avg_stock_value"
            ),
        ]
    ).sort("avg_stock_value")
    ladder = pl.DataFrame(ladder_rows)
    goal_rows = []
    for t in tgts:
        got = {r["policy"]: r for r in points.filter(pl.col("target") == t).iter_rows(named=True)}
        nan = {"fill_rate_with_history": float("nan"), "avg_stock_value": float("nan")}
        sc, tb, ag = got["sparecast"], got["textbook"], got.get("aggregate", nan)
        stockouts = summary.filter(
            (pl.col("group") == "with history") & (pl.col("target") == t)
        ).select("policy", "stockout_rate")
        short = dict(stockouts.iter_rows())
        ag_at = value_at_fill(
            item_curve["fill_rate_with_history"].to_numpy(),
            item_curve["avg_stock_value"].to_numpy(),
            ag["fill_rate_with_history"],
        )
        ag_vs = ag["avg_stock_value"] / ag_at - 1.0 if ag_at and np.isfinite(ag_at) else np.nan
        at = value_at_fill(
            ladder["fill_rate_with_history"].to_numpy(),
            ladder["avg_stock_value"].to_numpy(),
            sc["fill_rate_with_history"],
        )
        vs = sc["avg_stock_value"] / at - 1.0 if at and np.isfinite(at) else float("nan")
        goal_rows.append(
            {
                "target": t,
                "sparecast_fill_with_history": sc["fill_rate_with_history"],
                "within_1_point": abs(sc["fill_rate_with_history"] - t) <= 0.01,
                "textbook_fill_with_history": tb["fill_rate_with_history"],
                "empirical_fill_with_history": got["empirical"]["fill_rate_with_history"],
                "sparecast_stock_value": sc["avg_stock_value"],
                "textbook_stock_value": tb["avg_stock_value"],
                "textbook_value_at_same_fill": at,
                "value_vs_textbook_same_fill": vs,
                "saves_15_percent": bool(np.isfinite(vs) and vs <= -0.15),
                "aggregate_fill_with_history": ag["fill_rate_with_history"],
                "aggregate_within_1_point": abs(ag["fill_rate_with_history"] - t) <= 0.01,
                "aggregate_stockout_rate": short.get("aggregate", float("nan")),
                "sparecast_stockout_rate": short.get("sparecast", float("nan")),
                "aggregate_stock_value": ag["avg_stock_value"],
                "per_item_value_at_same_fill": ag_at,
                "aggregate_vs_per_item_same_fill": ag_vs,
                "aggregate_saves_20_percent": bool(np.isfinite(ag_vs) and ag_vs <= -0.20),
            }
        )
    return DecisionBacktest(per_item, summary, curve, pl.DataFrame(goal_rows), split, n_t, notes)


def _with_inventory(settings: Settings, **changes: object) -> Settings:
    """``settings`` with some inventory settings changed (validated like any settings)."""
    inv = settings.inventory.model_validate({**settings.inventory.model_dump(), **changes})
    return settings.model_copy(update={"inventory": inv})


def _aggregate(frame: pl.DataFrame) -> dict[str, float]:
    """Totals of a per-item simulation frame (``has_history`` column included)."""
    dem = frame["demand"].to_numpy()
    fil = frame["filled"].to_numpy()
    hist = frame["has_history"].to_numpy()
    fill = frame["fill_rate"].to_numpy()
    measured = frame["measured_periods"].to_numpy() > 0
    dd = float(frame["demand_days"].to_numpy().sum())
    short = float(frame["stockout_demand_days"].to_numpy().sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "items": float(frame.height),
            "items_measured": float(measured.sum()),
            "demand": float(dem.sum()),
            "filled": float(fil.sum()),
            "fill_rate": float(fil.sum() / dem.sum()) if dem.sum() else float("nan"),
            "fill_rate_with_history": float(fil[hist].sum() / dem[hist].sum())
            if dem[hist].sum()
            else float("nan"),
            "mean_item_fill_rate": float(np.nanmean(fill)) if np.isfinite(fill).any() else
            float("nan"),
            "stockout_rate": short / dd if dd else float("nan"),
            "avg_stock_value": float(frame["avg_on_hand_value"].sum()),
            "orders": float(frame["n_orders"].sum()),
        }  # fmt: skip


def _summary(per_item: pl.DataFrame) -> pl.DataFrame:
    rows = []
    for (policy, target), part in per_item.group_by(["policy", "target"], maintain_order=True):
        part = part.with_columns(pl.col("fill_rate").fill_null(np.nan))
        subsets = [("all", part), ("with history", part.filter(pl.col("has_history")))]
        subsets += [(g, part.filter(pl.col("group") == g)) for g in GROUP_NAMES]
        subsets += [(g, part.filter(pl.col("trend") == g)) for g in TRENDS]
        for name, sub in subsets:
            if sub.height:
                rows.append({"policy": policy, "target": target, "group": name, **_aggregate(sub)})
    order = {p: i for i, p in enumerate(POLICIES)}
    return (
        pl.DataFrame(rows)
        .with_columns(pl.col("policy").replace_strict(order, return_dtype=pl.Int64).alias("_o"))
        .sort("target", "_o", maintain_order=True)
        .drop("_o")
    )
