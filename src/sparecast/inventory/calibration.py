"""The plan's calibration of fill-rate targets: one code path for ``plan`` and ``evaluate-plan``.

:func:`calibrated_targets` is what :func:`sparecast.inventory.plan.compute_plan` calls when
``inventory.calibrate`` is on (fill-rate targets) and what the decision backtest
(:func:`sparecast.inventory.decisions.evaluate_plan`) calls on its training cut, so the backtest
measures the plan as it is computed.

Recipe (numeric, on the items x periods history ``y``):

- the last third of the history is the holdout: policies are set on the first two thirds at
  nominal targets ``1 - (1 - target) * f`` and replayed on it by
  :func:`sparecast.inventory.simulate.calibrate_targets`, per calibration group (the frequency
  group, items without demand in the fit part their own, split into value classes by unit
  cost x Q / mean demand, ``inventory.calibration_value_classes``, :func:`calibration_groups`)
  and target;
- each item's warm-up is its protection interval (lead time + review, rounded up,
  :func:`~sparecast.inventory.simulate.protection_warmup`); an item is measured only when the
  holdout also holds one more protection interval after the warm-up (two in all), otherwise it is
  simulated but does not count; when under a quarter of the items are measured that way (long
  lead times against the history), an item is measured after its warm-up over at least half
  a protection interval (:data:`SHORT_SPAN_SHARE`) instead;
- minimum history: with ``inventory.calibration_min_periods = 0`` (the default) the calibration
  runs when at least a quarter of the (sampled) items are measured and the history has at least
  12 periods, so the minimum follows the data's frequency and lead times (a monthly history of 56
  months with lead times of a few months calibrates; 2 years of daily data with 30-day lead times
  do too); a positive value is a fixed minimum number of periods on top of that;
- above ``inventory.calibration_max_items`` items a random sample (``inventory.seed``) measures
  the factors (the class boundaries then come from the sample's fit part, the items' classes
  from the whole history: an item near a boundary may take a neighbour class's factor); the
  nominal target is a function of (calibration group, target), carried to every item by its
  group on the whole history (the history its policy is set on);
- ``inventory.calibration_mode = "cost"``: the factors of a target's groups are
  the ones that reach the target's fill rate over all items with history at the least stock value
  in the backtest (:func:`sparecast.inventory.simulate.cost_aware_factors`: marginal analysis
  over the groups' fill and stock value curves, the items valued at ``unit_cost``), no
  frequency group planned below ``target - inventory.calibration_floor_gap`` (its value
  classes share that floor);
- ``inventory.calibration_margin`` (default 0.5, cost mode): the groups aim at the target plus
  that share of the shortfall out of sample of the same calibration one window earlier
  (:func:`shortfall_margin`: run on the history without its holdout, its factors replayed on
  the holdout's curves; not negative, at most half of ``1 - target``);
- ``"auto"`` (the default): per target, ``"cost"`` or ``"group"``, with factors chosen one
  window earlier (the margin's earlier calibration) and read on the holdout: ``"cost"`` unless
  it misses the target there and ``"group"`` fills at least :data:`MODE_MIN_GAIN` more
  (:func:`pick_mode`);
- ``"group"``: the factor of a (group, target) is solved on its achieved-fill error, shrunk
  towards the pooled one for small groups and monotone in the target
  (:func:`sparecast.inventory.simulate.solve_factors`);
- factors above 1 lower the nominal target of groups that overshoot; the sparse rule is applied
  at the nominal targets, so sparse items follow the calibration too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from sparecast.config import Settings
from sparecast.inventory.policy import PolicyResult
from sparecast.inventory.simulate import (
    CalibrationCurves,
    calibrated_outcome,
    calibration_curves,
    cost_aware_factors,
    frequency_groups,
    nominal_targets,
    protection_warmup,
    solve_factors,
)
from sparecast.methods.distributions import LeadTimeDemand

__all__ = [
    "CLASS_STRIDE",
    "MAX_MARGIN_SHARE",
    "MODE_MIN_GAIN",
    "MIN_MEASURED_SHARE",
    "Calibration",
    "CalibrationWindow",
    "calibrated_targets",
    "calibration_groups",
    "calibration_window",
    "group_factors",
    "pooled_curves",
    "pick_level_sigma",
    "pick_mode",
    "replayed_outcome",
    "shortfall_margin",
    "targets_reached",
    "value_classes",
]

MIN_MEASURED_SHARE = 0.25
"""Share of items the holdout must measure (a warm-up and the span of
:data:`SHORT_SPAN_SHARE`) for the automatic minimum."""
SHORT_SPAN_SHARE = 0.5
"""Long lead times (:func:`calibration_window`): an item is measured after its warm-up (its
protection interval) over at least this share of its protection interval (and one period).
Until 2026-12-07 (fifth stop) only when under :data:`MIN_MEASURED_SHARE` of the items fit two
protection intervals; else the items that did not were left out, and on weekly sets with lead
times of 7 or 16 weeks the 16-week items, unmeasured, filled 7 points less than the 7-week
ones at the same nominal target (docs/results.md)."""
_MIN_PERIODS = 12
CLASS_STRIDE = 10
"""An item's calibration group (:func:`calibration_groups`) is its frequency group plus its
value class (:func:`value_classes`, under this) divided by this: 3.2 is class 2 of group 3,
and the whole part of a key is its frequency group (plain frequency groups are keys too)."""


@dataclass(frozen=True)
class Calibration:
    """``nominal``: the targets to plan at (float64[items], ``targets`` when not calibrated);
    ``calibrated``: whether the backtest ran; ``note``: one line for the plan's notes; ``holdout``
    periods and ``measured`` items of the calibration backtest, its ``curves`` (factor ->
    achieved fill rate per group and target) and the ``factors`` chosen per key of the curves;
    ``outcome``: per target, the fill rate over items with history and the stock value the
    backtest predicts at these factors (``simulate.calibrated_outcome``)."""

    nominal: np.ndarray
    calibrated: bool
    note: str
    holdout: int = 0
    measured: int = 0
    curves: CalibrationCurves | None = None
    factors: np.ndarray | None = None
    outcome: dict[float, tuple[float, float]] = field(default_factory=dict)


LEVEL_TOLERANCE = 1e-4
"""How far under a target the calibration backtest's fill may be and still count as reaching it
(:func:`pick_level_sigma`, :func:`targets_reached`)."""


def pick_level_sigma(
    outcomes: dict[float, tuple[float, float]], target: float, tolerance: float = LEVEL_TOLERANCE
) -> float:
    """The level sigma to plan a target at, from what the calibration backtest predicts at each
    sigma tried (``outcomes``: sigma -> (fill rate over items with history, stock value)): of
    the sigmas whose fill reaches ``target - tolerance``, the one with the least stock value;
    when none does, the one with the highest fill; ties to the smaller sigma. Why: a stable
    history needs no level uncertainty (it only adds stock), while growth or decay after the
    history leaves the stationary samples short of high targets at any nominal one (every
    group at its cap); a wider level distribution reaches them."""
    if not outcomes:
        raise ValueError("no level sigma to pick from")
    reached = [s for s, (f, _) in outcomes.items() if f >= target - tolerance]
    if reached:
        return min(reached, key=lambda s: (outcomes[s][1], s))
    return min(outcomes, key=lambda s: (-outcomes[s][0], s))


def targets_reached(
    outcomes: Sequence[dict[float, tuple[float, float]]],
    targets: Sequence[float],
    tolerance: float = LEVEL_TOLERANCE,
) -> bool:
    """Whether each of ``targets`` is reached (fill >= target - tolerance) in at least one of
    the calibration backtests ``outcomes`` (:attr:`Calibration.outcome` per level sigma tried:
    target -> (fill, stock value)); a target none of them measured (no item with history and
    holdout demand) counts as reached. The per-item calibration tries its level sigmas in
    ascending order and stops once this holds (each sigma costs one calibration backtest): a
    wider level distribution mostly only adds stock where a narrower one reaches the target
    already, so a larger sigma that would reach it more cheaply is not looked for."""
    for t in targets:
        fills = [o[t][0] for o in outcomes if t in o]
        if fills and max(fills) < t - tolerance:
            return False
    return True


def factors_by_group(
    keys: np.ndarray, factors: np.ndarray, groups: np.ndarray, targets: np.ndarray
) -> np.ndarray:
    """float64[items]: the factor of each item's (calibration group, target) key; a group the
    calibration did not see takes the factor of a key with demand for its target: of the
    nearest frequency group (its own when seen; the lower one on a tie, so a whole group
    follows one neighbour), its nearest class there (1 when the target was not calibrated)."""
    out = np.ones(groups.size)
    for t in np.unique(targets):
        rows = np.flatnonzero((keys[:, 1] == t) & (keys[:, 0] > 0))
        if rows.size == 0:
            continue
        k = keys[rows, 0]
        for g in np.unique(groups[targets == t]):
            apart = np.abs(np.floor(k) - np.floor(g))
            freq = np.floor(k[np.flatnonzero(apart == apart.min())[0]])
            same = np.flatnonzero(np.floor(k) == freq)
            near = rows[same[np.argmin(np.abs((k[same] - freq) - (g - np.floor(g))))]]
            exact = np.flatnonzero((keys[:, 1] == t) & (keys[:, 0] == g))
            out[(groups == g) & (targets == t)] = factors[exact[0] if exact.size else near]
    return out


def value_classes(
    groups: np.ndarray,
    mean_demand: np.ndarray,
    unit_cost: np.ndarray | float,
    order_quantity: np.ndarray,
    n_classes: int,
) -> np.ndarray:
    """int64[items]: each item's class (0 .. ``n_classes - 1``) within its frequency group by
    its cycle value ``unit_cost x order_quantity / mean_demand`` (NaN cost: 1): equal-count
    classes, 0 the lowest; 0 for items without demand and when ``n_classes`` is 1.

    Why: a point of aggregate fill costs an item about ``unit cost x Q / demand`` per unit of
    safety factor (the optimal per-cycle stockout probability of an (s, Q) policy with a cost
    per unit short is proportional to it: the "B2" shortage cost rule of Silver, Pyke &
    Thomas 2017): the cost-aware calibration
    (:func:`~sparecast.inventory.simulate.cost_aware_factors`) can only buy the aggregate fill
    where it is cheap when such items are keys of their own."""
    g = np.asarray(groups, dtype=np.int64)
    out = np.zeros(g.size, dtype=np.int64)
    if n_classes <= 1:
        return out
    mean = np.asarray(mean_demand, dtype=np.float64)
    cost = np.nan_to_num(np.broadcast_to(np.asarray(unit_cost, dtype=np.float64), g.shape), nan=1.0)
    q = np.broadcast_to(np.asarray(order_quantity, dtype=np.float64), g.shape)
    value = np.where(mean > 0, cost * q / np.where(mean > 0, mean, 1.0), np.inf)
    for grp in np.unique(g[g > 0]):
        rows = np.flatnonzero((g == grp) & np.isfinite(value))
        if rows.size == 0:
            continue
        # ranks, ties by value (a group of equal values stays one class)
        edges = np.quantile(value[rows], np.arange(1, n_classes) / n_classes)
        out[rows] = np.searchsorted(edges, value[rows], side="left")
    return out


def calibration_groups(
    y: np.ndarray | None,
    unit_cost: np.ndarray | float,
    order_quantity: np.ndarray,
    n_classes: int,
    groups: np.ndarray | None = None,
    mean_demand: np.ndarray | None = None,
) -> np.ndarray:
    """float64[items]: the calibration group of each item of the history ``y`` (items x
    periods): ``frequency group + value class / CLASS_STRIDE`` (:func:`frequency_groups`,
    :func:`value_classes`; the frequency group itself with one class); items without demand
    are 0. ``groups`` / ``mean_demand``: the frequency groups and mean demand per period when
    already known (``y`` then unused, e.g. a Dask client that got them from its workers)."""
    if groups is None or mean_demand is None:
        if y is None:
            raise ValueError("calibration_groups needs the history or its groups and mean demand")
        h = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
        groups = frequency_groups(h) if groups is None else groups
        mean_demand = h.mean(axis=1) if mean_demand is None else mean_demand
    g = np.asarray(groups, dtype=np.int64)
    mean = np.asarray(mean_demand, dtype=np.float64)
    classes = value_classes(g, mean, unit_cost, order_quantity, n_classes)
    return g + classes / float(CLASS_STRIDE)


def pooled_curves(curves: CalibrationCurves) -> tuple[CalibrationCurves, np.ndarray]:
    """The curves of the frequency groups (the whole parts of the keys): the value classes of
    a group summed, its fill the demand-weighted one of its classes, exactly as if measured
    together; and for each key of ``curves`` the row of its pooled key. Curves keyed by
    frequency groups already (one class) are returned as they are."""
    freq = np.floor(curves.keys[:, 0])
    if np.array_equal(freq, curves.keys[:, 0]):
        return curves, np.arange(len(curves.keys))
    pooled_keys, back = np.unique(
        np.stack([freq, curves.keys[:, 1]], axis=1), axis=0, return_inverse=True
    )
    back = np.asarray(back).reshape(-1)
    k = len(pooled_keys)
    dem = np.nan_to_num(curves.demand.astype(np.float64))
    demand = np.zeros(k)
    served = np.zeros((k, curves.factors.size))
    np.add.at(demand, back, dem)
    np.add.at(served, back, np.nan_to_num(curves.achieved) * dem[:, None])
    achieved = np.where(
        demand[:, None] > 0, served / np.where(demand > 0, demand, 1.0)[:, None], np.nan
    )
    items = np.zeros(k, dtype=np.int64)
    np.add.at(items, back, curves.items.astype(np.int64))
    members = np.zeros((k, curves.members.shape[1]), dtype=bool)
    for j in range(len(back)):
        members[back[j]] |= curves.members[j]
    stock = None
    if curves.stock is not None:
        stock = np.zeros((k, curves.factors.size))
        np.add.at(stock, back, np.nan_to_num(curves.stock))
    pooled = CalibrationCurves(pooled_keys, curves.factors, achieved, items, demand, members, stock)
    return pooled, back


def group_factors(curves: CalibrationCurves) -> np.ndarray:
    """The ``"group"`` mode's factors per key of ``curves`` (float64[k]):
    :func:`~sparecast.inventory.simulate.solve_factors` on the :func:`pooled_curves` of the
    frequency groups, each key taking its group's factor. Solving every value class to the
    target on its own buys nothing and measures on fewer items."""
    pooled, back = pooled_curves(curves)
    return solve_factors(pooled)[back]


@dataclass(frozen=True)
class CalibrationWindow:
    """Where the calibration backtest measures: the ``holdout`` (last third of the history),
    each item's ``warmup`` (its protection interval), the ``measured`` items (a warm-up and
    :data:`SHORT_SPAN_SHARE` of a protection interval fit in the holdout; ``short_span``: some
    are measured over less than a whole one), the item ``sample`` and, when the history cannot
    be calibrated, ``why`` (else "")."""

    holdout: int
    warmup: np.ndarray
    measured: np.ndarray
    sample: np.ndarray
    why: str
    short_span: bool = False


def calibration_window(
    n_periods: int,
    lead_times: Sequence[np.ndarray] | np.ndarray,
    settings: Settings,
    *,
    period_days: float = 1.0,
) -> CalibrationWindow:
    """The holdout, warm-ups, measured items and item sample of the calibration backtest and
    whether the history is long enough (the automatic minimum of the module docstring, with
    ``inventory.calibration_min_periods`` on top). One rule for the per-item calibration and
    the aggregate one."""
    inv = settings.inventory
    n = len(lead_times)
    review = max(1, round(inv.review_period_days / period_days))
    holdout = n_periods // 3
    warm = protection_warmup(lead_times, inv.policy, review)
    # an item is measured after its warm-up over at least SHORT_SPAN_SHARE of a protection
    # interval: long lead times against the history (a 16-week lead time in 100 weeks, 1-33
    # months in 56) are measured as the decision backtest itself measures them, rather than
    # left out (their items fill less at the same nominal target than the short ones)
    span = np.maximum(np.ceil(warm * SHORT_SPAN_SHARE), 1).astype(np.int64)
    measured = warm + span <= holdout
    short_span = n > 0 and bool((measured & (warm * 2 > holdout)).any())
    floor = max(_MIN_PERIODS, inv.calibration_min_periods)
    why = ""
    if n_periods < floor:
        why = f"{n_periods} periods of history, fewer than {floor}"
    elif n == 0:
        why = "no items"
    elif measured.mean() < MIN_MEASURED_SHARE:
        why = (
            f"its last third ({holdout} periods) holds a protection interval (warm-up) and "
            f"{SHORT_SPAN_SHARE:g} of one (measure) for {measured.mean():.0%} of the items, "
            f"under {MIN_MEASURED_SHARE:.0%}"
        )
    sample = np.arange(n)
    if sample.size > inv.calibration_max_items:
        rng = np.random.default_rng(inv.seed)
        sample = np.sort(rng.choice(sample, inv.calibration_max_items, replace=False))
    return CalibrationWindow(holdout, warm, measured, sample, why, bool(short_span))


MODE_MIN_GAIN = 0.01
""":func:`pick_mode`: the group mode (dearer by construction) is chosen only when the
cost-aware mix misses the target one window earlier and the group mode fills at least this
much more there (one point). Measured (issue 12): chosen for 0.3 points on a weekly demo at
98%, the group mode held 57% more stock for 0.05 points more fill in the test; chosen for 0.6
points on another weekly set, it held 28% more stock and filled 2.6 points less. One earlier
window measures each mode's fill with an error of about a point (docs/results.md); carparts'
gains at 90/95% were 2.6-3.4 points."""

MAX_MARGIN_SHARE = 0.5
""":func:`shortfall_margin`: the margin of a target is at most this share of ``1 - target`` (5
points at 90%, 1 at 98%), so one noisy earlier window cannot push every group to its cap."""


def replayed_outcome(
    curves: CalibrationCurves, early: CalibrationCurves, factors: np.ndarray
) -> dict[float, tuple[float, float]]:
    """What ``factors`` chosen on the ``early`` window's curves (one per key of ``early``) get
    on the holdout's ``curves``: the same factor per (calibration group, target), the nearest
    group's when one is missing (:func:`factors_by_group`), read by :func:`calibrated_outcome`.
    How :func:`shortfall_margin` and :func:`pick_mode` replay an earlier calibration."""
    keys = curves.keys
    per_key = factors_by_group(
        early.keys, factors, keys[:, 0].astype(np.float64), keys[:, 1].astype(np.float64)
    )
    return calibrated_outcome(curves, per_key)


def shortfall_margin(
    curves: CalibrationCurves,
    early: CalibrationCurves | None,
    floor_gap: float,
    weight: float = 1.0,
    why: str = "",
) -> tuple[dict[float, float], str]:
    """Per target: how far the cost-aware calibration falls short of its own prediction one
    window out of sample, times ``weight`` (``inventory.calibration_margin``), and a note.

    The calibration is run once more on the history without its holdout (``early``: its
    curves in the last third of that shorter history), its factors
    (:func:`~sparecast.inventory.simulate.cost_aware_factors`) read on the holdout's
    ``curves`` (the same factor per calibration group, the nearest group when one is missing):
    the shortfall is the earlier calibration's predicted fill minus the fill its factors get on
    the holdout, both over items with history (:func:`calibrated_outcome`); not negative and
    at most :data:`MAX_MARGIN_SHARE` of ``1 - target``. The holdout's factors then aim at
    ``target + margin`` (``cost_aware_factors(margin=...)``).

    Why (issue 12, ``benchmarks/calibration_shift.py``): the factors reach the target on the
    one holdout they are chosen on (the mix that just reaches it, in the groups where a point
    of fill is cheapest), and out of sample they fall short: demand moves between groups and
    items grow or decay. Measured on carparts and oil, the shortfall of the earlier window has
    the sign and the order of the decision backtest's. No earlier window (history too short):
    no margin (``early`` None, ``why`` the reason)."""
    if early is None:
        return {}, f"; no out-of-sample margin ({why} in the earlier window)"
    f_early = cost_aware_factors(early, floor_gap)
    predicted = calibrated_outcome(early, f_early)
    got = replayed_outcome(curves, early, f_early)
    margin: dict[float, float] = {}
    for t, (fill, _) in got.items():
        if t not in predicted:
            continue
        short = max(predicted[t][0] - fill, 0.0) * weight
        margin[t] = float(min(short, MAX_MARGIN_SHARE * (1.0 - t)))
    parts = ", ".join(
        f"{t:.4g}: {predicted[t][0]:.4f} -> {got[t][0]:.4f}, +{m:.4f}" for t, m in margin.items()
    )
    return margin, f"; out-of-sample margin from an earlier window ({parts})"


def pick_mode(
    curves: CalibrationCurves,
    early: CalibrationCurves,
    floor_gap: float,
    tolerance: float = LEVEL_TOLERANCE,
    min_gain: float = MODE_MIN_GAIN,
) -> tuple[dict[float, str], str]:
    """Per target: the calibration mode (``"cost"`` or ``"group"``) of factors chosen on the
    ``early`` window's curves (the calibration run on the history without its holdout) and
    replayed on the holdout's ``curves`` (:func:`replayed_outcome`): ``cost`` (it holds less
    stock by construction) unless its fill there misses the target and the group mode's is at
    least ``min_gain`` higher. And a note.

    Why (issue 12, ``benchmarks/decision_origins.py``): the cost-aware mix is the cheapest on
    the holdout it is chosen on but can be optimistic out of sample (carparts at earlier
    origins fell 3-5 points short at 90/95% where each group solved to the target did not),
    while on other histories (oil) it reaches the target with a third less stock. Which one
    transfers is measured one window earlier, on the history itself."""
    pooled, pooled_early = pooled_curves(curves)[0], pooled_curves(early)[0]
    got = {
        "cost": replayed_outcome(curves, early, cost_aware_factors(early, floor_gap)),
        # the group mode read on the frequency groups' curves, as it is chosen
        "group": replayed_outcome(pooled, pooled_early, solve_factors(pooled_early)),
    }
    chosen: dict[float, str] = {}
    for t in got["cost"]:
        fills = {m: got[m][t][0] for m in got if t in got[m]}
        # the group mode's dearer mix only for a real gain where the cost-aware one misses
        gain = fills.get("group", -np.inf) - fills.get("cost", -np.inf)
        missed = fills.get("cost", -np.inf) < t - tolerance
        chosen[t] = "group" if missed and gain >= min_gain - 1e-12 else "cost"
    parts = ", ".join(
        f"{t:.4g}: {chosen[t]} (cost {got['cost'][t][0]:.4f}, group "
        f"{got['group'].get(t, (float('nan'), 0.0))[0]:.4f})"
        for t in chosen
    )
    return chosen, f"; mode per target by an earlier window ({parts})"


def calibrated_targets(
    y: np.ndarray,
    lead_times: Sequence[np.ndarray] | np.ndarray,
    targets: np.ndarray,
    order_quantity: np.ndarray,
    settings: Settings,
    *,
    period_days: float = 1.0,
    moq: np.ndarray | float = 1.0,
    lot_size: np.ndarray | float = 1.0,
    adjust_ltd: Callable[[np.ndarray, LeadTimeDemand], LeadTimeDemand] | None = None,
    adjust_policy: Callable[
        [np.ndarray, LeadTimeDemand, PolicyResult, np.ndarray, np.ndarray],
        tuple[PolicyResult, np.ndarray],
    ]
    | None = None,
    unit_cost: np.ndarray | float = 1.0,
    groups: np.ndarray | None = None,
) -> Calibration:
    """The nominal fill-rate targets that reached ``targets`` in a backtest on the history ``y``
    (items x periods; ``lead_times`` per-item samples in periods; ``order_quantity`` Q per item),
    with ``settings.inventory``'s policy, review period (``review_period_days / period_days``),
    distribution, samples, seed and calibration settings. ``adjust_ltd`` / ``adjust_policy``:
    the plan's rules applied in the calibration backtest (see
    :func:`sparecast.inventory.simulate.calibrate_targets`; ``plan_policy`` passes them). See
    the module docstring. ``unit_cost`` (NaN: 1) values the stock of the cost-aware mode
    (``inventory.calibration_mode = "cost"``). ``groups``: the :func:`calibration_groups` of
    every item's whole history, ``y`` then holding only the rows of the items of
    :func:`calibration_window`'s sample, in its order (what a client that does not hold the
    whole history computes on; the same result)."""
    inv = settings.inventory
    h = np.asarray(y, dtype=np.float64)
    n = len(lead_times) if groups is not None else h.shape[0]
    n_periods = h.shape[1]
    tgt = np.broadcast_to(np.asarray(targets, dtype=np.float64), (n,)).copy()
    review = max(1, round(inv.review_period_days / period_days))
    win = calibration_window(n_periods, lead_times, settings, period_days=period_days)
    if win.why:
        return Calibration(tgt, False, f"targets not calibrated: {win.why}")
    holdout, measured, sample = win.holdout, win.measured, win.sample
    h_s = h if groups is not None else h[sample]
    if h_s.shape[0] != sample.size:
        raise ValueError(f"{h_s.shape[0]} rows given for a sample of {sample.size} items")
    # per item: the groups of the sample's rows are those of the whole history's rows
    lts = [np.atleast_1d(np.asarray(lead_times[int(i)], dtype=np.float64)) for i in sample]
    q_s = np.broadcast_to(np.asarray(order_quantity, dtype=np.float64), (n,))[sample]
    moq_s = np.broadcast_to(np.asarray(moq, dtype=np.float64), (n,))[sample]
    lot_s = np.broadcast_to(np.asarray(lot_size, dtype=np.float64), (n,))[sample]
    cost_s = np.nan_to_num(
        np.broadcast_to(np.asarray(unit_cost, dtype=np.float64), (n,))[sample], nan=1.0
    )

    def measure(hist: np.ndarray, w: CalibrationWindow) -> CalibrationCurves:
        """The calibration backtest on ``hist`` (the sample's rows) in the window ``w``."""
        m_periods = hist.shape[1]
        # items without room for a measured protection interval: warmed up over the holdout
        return calibration_curves(
            hist,
            lts,
            tgt[sample],
            q_s,
            holdout=w.holdout,
            warmup=np.where(w.measured[sample], w.warmup[sample], w.holdout),
            policy=inv.policy,
            review_period=review,
            distribution=inv.distribution,
            n_samples=inv.n_samples,
            groups=calibration_groups(
                hist[:, : m_periods - w.holdout], cost_s, q_s, inv.calibration_value_classes
            ),
            moq=moq_s,
            lot_size=lot_s,
            seed=inv.seed,
            adjust_ltd=adjust_ltd,
            adjust_policy=adjust_policy,
            unit_cost=cost_s,
        )

    curves = measure(h_s, win)
    margin: dict[float, float] = {}
    margin_note = ""
    modes: dict[float, str] = {}
    # the same calibration one window earlier (on the history without its holdout), for the
    # out-of-sample margin and the auto mode's choice
    with_margin = inv.calibration_mode != "group" and inv.calibration_margin > 0
    earlier = calibration_window(n_periods - holdout, lead_times, settings, period_days=period_days)
    early = None
    if not earlier.why and (with_margin or inv.calibration_mode == "auto"):
        early = measure(h_s[:, : n_periods - holdout], earlier)
    if inv.calibration_mode == "auto" and early is not None:
        modes, margin_note = pick_mode(curves, early, inv.calibration_floor_gap)
    if with_margin:
        margin, note_m = shortfall_margin(
            curves, early, inv.calibration_floor_gap, inv.calibration_margin, earlier.why
        )
        margin_note += note_m
    # the factors of (group, target), carried to the items by their group on the whole history:
    # the history the plan sets their policy on (an item without demand in the fit part but
    # with some later is planned as the group it is in now, not at the no-demand group's cap)
    # the group mode solves the frequency groups (the value classes pooled), once
    group_targets = (
        set(curves.keys[:, 1].tolist())
        if inv.calibration_mode == "group"
        else {t for t, m in modes.items() if m == "group"}
    )
    if group_targets or inv.calibration_mode == "group":
        pooled, back = pooled_curves(curves)
        pooled_factors = solve_factors(pooled)
    if inv.calibration_mode == "group":
        factors = pooled_factors[back]
        how = "per group"
    else:
        factors = cost_aware_factors(curves, inv.calibration_floor_gap, margin=margin)
        if group_targets:
            by_group = np.isin(curves.keys[:, 1], list(group_targets))
            factors = np.where(by_group, pooled_factors[back], factors)
        how = (
            f"cost-aware: aggregate fill at least stock value, no frequency group under the target "
            f"- {inv.calibration_floor_gap:g}{margin_note}"
            if not modes
            else f"auto: cost-aware or per group{margin_note}"
        )
    span_note = (
        f", over at least {SHORT_SPAN_SHARE:g} of it (long lead times)" if win.short_span else ""
    )
    outcome = calibrated_outcome(curves, factors)
    if group_targets:  # what the group mode predicts, read as it solves: per frequency group
        outcome |= {
            t: v
            for t, v in calibrated_outcome(pooled, pooled_factors).items()
            if t in group_targets
        }
    all_groups = (
        groups
        if groups is not None
        else calibration_groups(
            h,
            np.broadcast_to(np.asarray(unit_cost, dtype=np.float64), (n,)),
            np.broadcast_to(np.asarray(order_quantity, dtype=np.float64), (n,)),
            inv.calibration_value_classes,
        )
    )
    per_item = factors_by_group(curves.keys, factors, all_groups, tgt)
    nominal = nominal_targets(tgt, per_item)
    raised = nominal > tgt + 1e-12
    lowered = nominal < tgt - 1e-12
    note = (
        f"targets calibrated on the last {holdout} periods of {sample.size} item(s) "
        f"({int(measured[sample].sum())} measured after a warm-up of their protection interval"
        f"{span_note}): "
        f"{int(raised.sum())} item(s) planned at a higher nominal fill rate, {int(lowered.sum())} "
        f"at a lower one (policy_target, mean {float(nominal.mean()):.4f}) to reach "
        f"service_target (mean {float(tgt.mean()):.4f}) out of sample ({how})"
    )
    return Calibration(
        nominal,
        True,
        note,
        holdout,
        int(measured[sample].sum()),
        curves,
        factors,
        outcome,
    )
