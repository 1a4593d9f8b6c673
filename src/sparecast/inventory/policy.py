"""Inventory policy: reorder point, order-up-to level, safety stock, suggested orders, risk.

Two replenishment policies, both with backorders:

- ``sQ`` (continuous review, reviewed every period): when the inventory position ``IP`` is at or
  below the reorder point ``s``, order the smallest multiple of ``Q`` that lifts ``IP`` above
  ``s`` (the ``(s, nQ)`` rule, so that ``IP`` after ordering stays in ``(s, s + Q]`` even after a
  lumpy demand). Protection interval: lead time + 1 period (an order placed at the end of a
  period arrives at the end of the period ``L`` later; demand is served before the receipts of
  its period, so the stock on hand in the period after the review covers ``L + 1`` periods of
  demand; the simulation in :mod:`sparecast.inventory.simulate` confirms the one-period offset).
- ``RsS`` (periodic review every ``R`` periods): at a review, when ``IP <= s``, order up to
  ``S = s + Q`` (rounded up to the lot size, at least the MOQ). Protection interval: lead time
  plus ``R``.

Service targets:

- cycle service level ``alpha``: ``P(D <= s) >= alpha`` for the demand ``D`` over the protection
  interval; ``s`` is the ``alpha`` quantile (the smallest integer that reaches it).
- fill rate ``beta`` (share of demand served from stock): the classical expected shortage per
  replenishment cycle, ``ESC(s) = E[(D - s)+] - E[(D - s - Q)+]``, over the demand per cycle
  ``Q`` (``RsS``: ``max(Q, mean demand over R)``); ``s`` is the smallest integer with
  ``1 - ESC(s) / Q >= beta``, found by a bisection vectorised over items.
  Measured against the simulation on Poisson demand (L = 6, Q = 10 periods of demand):
  (s, Q) predicted 91.0/95.9/98.5% and achieved 91.2/96.1/98.5% at targets 90/95/98; for
  (R, s, S) with R = 7 the uniform position is conservative (predicted 90.7/95.4/98.3%,
  achieved 92.9/96.6/98.7%), because after an order the position is S, not uniform.
- cost: a stockout weight ``w`` (cost of a unit short relative to holding it a cycle) gives the
  newsvendor critical ratio ``w / (w + 1)``, used as the cycle service level.

``distribution_policy`` evaluates these on the Monte-Carlo lead-time demand of
:mod:`sparecast.methods.distributions`; ``normal_policy`` is the textbook comparison: normal
lead-time demand with mean ``d (L + R)`` and ``sigma = sqrt((L + R) sigma_d^2 + d^2 sigma_L^2)``
from an SBA forecast ``d`` and its one-step error ``sigma_d``, and the normal loss function
``G(k) = phi(k) - k (1 - Phi(k))`` for fill rates (``sigma G(k) = (1 - beta) Q``).
Reorder points are integers and at least 0 in both, so they are compared on equal terms.

Sparse, dying and shifting demand: ``sparse_reorder_point`` (one typical lump or nothing,
``s >= -1``, for items with demand in very few periods), ``obsolete_items`` (no demand for k
mean intervals: stop replenishing), ``level_factor`` / ``rescale_samples`` (move the lead-time
demand to the recent level or the forecast's) and ``with_reorder_points`` (replace some items'
reorder points and recompute what depends on them). The aggregate service mode is in
:mod:`sparecast.inventory.optimize`. docs/guides/inventory.md has the measured effects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import polars as pl
from scipy import special, stats

from sparecast.config import InventorySettings
from sparecast.errors import ConfigError, DataValidationError
from sparecast.methods.distributions import LeadTimeDemand
from sparecast.methods.robust import demand_recency

__all__ = [
    "PolicyResult",
    "critical_ratio",
    "service_targets",
    "order_quantity",
    "round_order_quantity",
    "inventory_position",
    "expected_shortage",
    "fill_rate_from_samples",
    "cycle_service_point",
    "fill_rate_sorted",
    "item_chunks",
    "reorder_point_from_samples",
    "reorder_point_sorted",
    "SortedSamples",
    "distribution_policies",
    "distribution_policy",
    "normal_loss",
    "normal_policy",
    "sba_one_step",
    "suggested_order",
    "stockout_probability",
    "protection_review_periods",
    "resolve_item_column",
    "obsolete_items",
    "sparse_reorder_point",
    "level_factor",
    "level_mixture",
    "rescale_samples",
    "with_reorder_points",
    "sparse_items",
    "apply_sparse_rule",
]

_CHUNK = 2000


@dataclass(frozen=True)
class PolicyResult:
    """Per-item policy (float64[items] each).

    ``reorder_point`` s, ``order_up_to`` S = s + Q, ``order_quantity`` Q, ``safety_stock`` =
    s - mean demand over the protection interval, ``target`` and the ``expected_fill_rate`` and
    ``cycle_service_level`` the model predicts at ``s``.
    """

    policy: str
    reorder_point: np.ndarray
    order_up_to: np.ndarray
    order_quantity: np.ndarray
    safety_stock: np.ndarray
    mean_demand: np.ndarray
    target: np.ndarray
    expected_fill_rate: np.ndarray
    cycle_service_level: np.ndarray
    method: np.ndarray

    def to_frame(self, item_ids: Sequence[str] | pl.Series) -> pl.DataFrame:
        """One row per item with the policy columns (see docs/interfaces/inventory.md)."""
        ids = pl.Series("item_id", item_ids, dtype=pl.String)
        if ids.len() != self.reorder_point.size:
            raise DataValidationError(
                f"{ids.len()} item ids for a policy of {self.reorder_point.size} items"
            )
        return pl.DataFrame(
            {
                "item_id": ids,
                "reorder_point": self.reorder_point,
                "order_up_to": self.order_up_to,
                "order_quantity": self.order_quantity,
                "safety_stock": self.safety_stock,
                "mean_lead_time_demand": self.mean_demand,
                "target": self.target,
                "expected_fill_rate": self.expected_fill_rate,
                "cycle_service_level": self.cycle_service_level,
                "method": pl.Series(self.method.astype(str), dtype=pl.String),
            }
        )


# --------------------------------------------------------------------------------------------
# Targets and quantities
# --------------------------------------------------------------------------------------------


def critical_ratio(stockout_weight: float | np.ndarray) -> np.ndarray:
    """Newsvendor critical ratio ``w / (w + 1)`` of a stockout weight ``w > 0``."""
    w = np.asarray(stockout_weight, dtype=np.float64)
    if (w <= 0).any() or not np.isfinite(w).all():
        raise ConfigError(f"stockout_weight must be a positive number, got {stockout_weight}")
    return w / (w + 1.0)


def service_targets(
    tiers: Sequence[str] | np.ndarray | pl.Series,
    settings: InventorySettings,
    *,
    item_ids: Sequence[str] | np.ndarray | pl.Series | None = None,
    item_override: np.ndarray | None = None,
) -> np.ndarray:
    """Target per item: the tier's target, over it ``settings.item_targets[item_id]``, over it
    ``item_override`` (e.g. the items table's target column; NaN = no override).

    With ``target_type = "cost"`` every item gets the critical ratio of ``stockout_weight``
    unless an item target overrides it.
    """
    tier_arr = np.asarray(list(tiers), dtype=object)
    if settings.target_type == "cost":
        out = np.full(tier_arr.size, float(critical_ratio(settings.stockout_weight)))
    else:
        out = np.array(
            [settings.targets.get(str(t), settings.default_target) for t in tier_arr],
            dtype=np.float64,
        )
    if settings.item_targets:
        if item_ids is None:
            raise ConfigError("inventory.item_targets is set: pass item_ids to service_targets")
        ids = list(item_ids)
        for i, item in enumerate(ids):
            if item in settings.item_targets:
                out[i] = settings.item_targets[item]
    if item_override is not None:
        ov = np.asarray(item_override, dtype=np.float64)
        if ov.shape != out.shape:
            raise DataValidationError(
                f"item_override has {ov.size} values for {out.size} items; pass one per item"
            )
        given = np.isfinite(ov)
        if ((ov[given] <= 0) | (ov[given] >= 1)).any():
            raise DataValidationError(
                f"items.{settings.item_target_column} must be in (0, 1); fix the items table"
            )
        out = np.where(given, ov, out)
    return out


def round_order_quantity(
    quantity: np.ndarray | float, moq: np.ndarray | float = 1.0, lot_size: np.ndarray | float = 1.0
) -> np.ndarray:
    """Order quantity rounded up to a multiple of ``lot_size`` and at least ``moq`` (itself
    rounded up to the lot); 0 stays 0 (no order)."""
    q = np.asarray(quantity, dtype=np.float64)
    moq_a = np.asarray(moq, dtype=np.float64)
    lot = np.asarray(lot_size, dtype=np.float64)
    if (lot <= 0).any() or (moq_a < 0).any():
        raise ConfigError(f"lot_size must be > 0 and moq >= 0, got lot {lot_size}, moq {moq}")
    need = np.maximum(q, moq_a)
    rounded = np.ceil(np.round(need / lot, 9)) * lot
    return np.where(q > 0, rounded, 0.0)


def order_quantity(
    mean_demand_per_period: np.ndarray,
    cover_periods: float,
    moq: np.ndarray | float = 1.0,
    lot_size: np.ndarray | float = 1.0,
) -> np.ndarray:
    """The lot ``Q`` ordered per cycle: mean demand over ``cover_periods``, at least 1, rounded
    to MOQ and lot size. Both compared policies use the same ``Q``."""
    base = np.maximum(np.asarray(mean_demand_per_period, dtype=np.float64) * cover_periods, 1.0)
    return round_order_quantity(base, moq, lot_size)


def inventory_position(
    on_hand: np.ndarray, open_quantity: np.ndarray, backorders: np.ndarray | float = 0.0
) -> np.ndarray:
    """Inventory position = on hand + open purchase-order quantity - backorders."""
    return (
        np.asarray(on_hand, dtype=np.float64)
        + np.asarray(open_quantity, dtype=np.float64)
        - np.asarray(backorders, dtype=np.float64)
    )


# --------------------------------------------------------------------------------------------
# Sample-based quantities
# --------------------------------------------------------------------------------------------


def item_chunks(n: int) -> list[slice]:
    """Slices of at most ``_CHUNK`` items: what the sample-wise functions work on at a time."""
    return [slice(i, min(n, i + _CHUNK)) for i in range(0, n, _CHUNK)] or [slice(0, 0)]


def expected_shortage(samples: np.ndarray, level: np.ndarray) -> np.ndarray:
    """``E[(D - level)+]`` per item from samples ``[items, n]``; ``level`` float[items]."""
    lv = np.asarray(level, dtype=np.float64)
    out = np.empty(samples.shape[0])
    for sl in item_chunks(samples.shape[0]):
        d = samples[sl].astype(np.float64)
        out[sl] = np.maximum(d - lv[sl, None], 0.0).mean(axis=1)
    return out


def _shortage_sum(d: np.ndarray, low: np.ndarray, q: np.ndarray, integer: np.ndarray) -> np.ndarray:
    """``sum_{y=low+1}^{low+q} E[(D - y)+]`` per row (integer items; the integral of
    ``E[(D - x)+]`` over ``(low, low + q]`` for the others), from samples ``d[rows, n]``."""
    a = np.maximum(d - low[:, None], 0.0)
    b = np.maximum(d - (low + q)[:, None], 0.0)
    disc = (a * (a - 1.0) - b * (b - 1.0)).mean(axis=1) / 2.0
    cont = (a * a - b * b).mean(axis=1) / 2.0
    return np.where(integer, disc, cont)


class SortedSamples:
    """Rows of samples sorted once, with suffix sums: ``sum((d - t)+)`` and ``sum((d - t)+^2)``
    per row for any threshold ``t`` in O(log n) (a vectorised binary search), where
    :func:`_shortage_sum` reads every sample. What makes the bisection of
    :func:`reorder_point_from_samples` cheap: about 2 log2(max) evaluations per item on the
    same samples (docs/results.md, "Speed of the plan").

    The samples are centred on ``floor`` of each row's median before summing, so the sums stay
    near the spread of the row rather than its level. For integer samples every sum is an
    integer and exact while the sums of squared centred values stay under 2^53 (a spread of
    about 4 million units at 500 samples); beyond that, and for continuous samples, the results
    agree with :func:`fill_rate_from_samples` to float rounding. ``n``: samples per row."""

    def __init__(self, d: np.ndarray) -> None:
        d = np.asarray(d, dtype=np.float64)
        self.n = d.shape[1]
        self.centre = np.floor(np.median(d, axis=1)) if self.n else np.zeros(d.shape[0])
        self.sorted = np.sort(d - self.centre[:, None], axis=1)
        zero = np.zeros((d.shape[0], 1))
        # suffix sums: [:, j] = sum over the sorted samples j.. n-1 (0 at j = n)
        self.s1 = np.concatenate([np.cumsum(self.sorted[:, ::-1], axis=1)[:, ::-1], zero], 1)
        self.s2 = np.concatenate(
            [np.cumsum((self.sorted * self.sorted)[:, ::-1], axis=1)[:, ::-1], zero], 1
        )
        self.mean = d.mean(axis=1)  # as fill_rate_from_samples reads it, to the last bit

    def _at_most(self, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
        """How many centred samples of each row are ``<= u`` (binary search on the row)."""
        lo = np.zeros(rows.size, dtype=np.int64)
        hi = np.full(rows.size, self.n, dtype=np.int64)
        while True:
            act = np.flatnonzero(lo < hi)
            if act.size == 0:
                return lo
            mid = (lo[act] + hi[act]) // 2
            le = self.sorted[rows[act], mid] <= u[act]
            lo[act] = np.where(le, mid + 1, lo[act])
            hi[act] = np.where(le, hi[act], mid)

    def above(self, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
        """How many samples of each of ``rows`` exceed ``t``."""
        u = np.asarray(t, dtype=np.float64) - self.centre[rows]
        return self.n - self._at_most(rows, u)

    def sums(self, rows: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(sum((d - t)+), sum((d - t)+^2))`` of the given ``rows`` at thresholds ``t``."""
        u = np.asarray(t, dtype=np.float64) - self.centre[rows]
        j = self._at_most(rows, u)
        cnt = self.n - j
        c1 = self.s1[rows, j]
        c2 = self.s2[rows, j]
        return c1 - u * cnt, c2 - 2.0 * u * c1 + u * u * cnt

    def shortage_sum(
        self, rows: np.ndarray, low: np.ndarray, q: np.ndarray, integer: np.ndarray
    ) -> np.ndarray:
        """:func:`_shortage_sum` of ``rows`` from the sorted samples."""
        a1, a2 = self.sums(rows, low)
        b1, b2 = self.sums(rows, low + q)
        n = max(self.n, 1)
        disc = ((a2 - a1) - (b2 - b1)) / (2.0 * n)
        cont = (a2 - b2) / (2.0 * n)
        return np.where(integer, disc, cont)


def fill_rate_from_samples(
    samples: np.ndarray,
    reorder_point: np.ndarray,
    order_quantity: np.ndarray,
    *,
    lead_samples: np.ndarray | None = None,
    integer: np.ndarray | None = None,
) -> np.ndarray:
    """Expected fill rate of an (s, nQ) / (R, s, S) policy with backorders, float64[items].

    With ``lead_samples`` (demand over the lead time L; ``samples`` over L + R): the inventory
    position after a review is taken uniform on ``s+1 .. s+Q`` (exact for (s, nQ)), the
    shortage per review period is ``E[(D_{L+R} - IP)+] - E[(D_L - IP)+]`` averaged over it,
    and the fill rate is one minus that over the mean demand per review period. Without
    ``lead_samples``: the classical ``1 - (E[(D-s)+] - E[(D-s-Q)+]) / Q``.
    """
    s_arr = np.asarray(reorder_point, dtype=np.float64)
    q = np.asarray(order_quantity, dtype=np.float64)
    n_items = samples.shape[0]
    ints = np.ones(n_items, bool) if integer is None else np.asarray(integer, dtype=bool)
    out = np.empty(n_items)
    for sl in item_chunks(n_items):
        d = samples[sl].astype(np.float64)
        if lead_samples is None:
            a = np.maximum(d - s_arr[sl, None], 0.0).mean(axis=1)
            b = np.maximum(d - (s_arr[sl] + q[sl])[:, None], 0.0).mean(axis=1)
            out[sl] = 1.0 - (a - b) / np.maximum(q[sl], 1e-12)
            continue
        dl = lead_samples[sl].astype(np.float64)
        per_review = d.mean(axis=1) - dl.mean(axis=1)
        short = (
            _shortage_sum(d, s_arr[sl], q[sl], ints[sl])
            - _shortage_sum(dl, s_arr[sl], q[sl], ints[sl])
        ) / np.maximum(q[sl], 1e-12)
        out[sl] = np.where(per_review > 0, 1.0 - short / np.maximum(per_review, 1e-300), 1.0)
    return np.clip(out, 0.0, 1.0)


def stockout_probability(
    ltd: LeadTimeDemand | np.ndarray, inventory_position: np.ndarray
) -> np.ndarray:
    """Probability that demand before the next receipt exceeds the inventory position:
    ``P(D > IP)`` over lead time + review period, float64[items]."""
    samples = ltd.samples if isinstance(ltd, LeadTimeDemand) else np.asarray(ltd)
    ip = np.asarray(inventory_position, dtype=np.float64)
    out = np.empty(samples.shape[0])
    for sl in item_chunks(samples.shape[0]):
        out[sl] = (samples[sl] > ip[sl, None]).mean(axis=1)
    return out


def reorder_point_from_samples(
    samples: np.ndarray,
    target: np.ndarray,
    order_quantity: np.ndarray,
    target_type: str = "fill_rate",
    *,
    lead_samples: np.ndarray | None = None,
    integer: np.ndarray | None = None,
) -> np.ndarray:
    """Smallest integer ``s >= 0`` reaching the target on the protection-interval samples.

    ``cycle_service``: ``P(D <= s) >= target``; ``fill_rate``: :func:`fill_rate_from_samples`
    ``>= target``. Vectorised bisection over items.
    """
    tgt = np.asarray(target, dtype=np.float64)
    n_items = samples.shape[0]
    if tgt.shape != (n_items,):
        raise ConfigError(f"target must have one value per item ({n_items}), got {tgt.shape}")
    if target_type == "cycle_service":
        out = np.empty(n_items)
        for sl in item_chunks(n_items):
            out[sl] = cycle_service_point(np.sort(samples[sl], axis=1), tgt[sl])
        return out
    if target_type != "fill_rate":
        raise ConfigError(f"target_type must be fill_rate or cycle_service, got {target_type!r}")
    q = np.asarray(order_quantity, dtype=np.float64)
    ints = np.ones(n_items, bool) if integer is None else np.asarray(integer, dtype=bool)
    out = np.empty(n_items)
    for sl in item_chunks(n_items):
        d = SortedSamples(samples[sl])
        dl = None if lead_samples is None else SortedSamples(lead_samples[sl])
        out[sl] = reorder_point_sorted(d, dl, tgt[sl], q[sl], ints[sl])
    return out


def cycle_service_point(
    srt: np.ndarray, target: np.ndarray, offset: np.ndarray | float = 0.0
) -> np.ndarray:
    """Cycle-service reorder point per row of sorted samples ``srt`` (plus ``offset``, the
    centre of :class:`SortedSamples`): the smallest integer ``s >= 0`` with ``P(D <= s) >=
    target``, the sample at the target's rank rounded up. One rule for
    :func:`reorder_point_from_samples` and :func:`distribution_policies`."""
    n = srt.shape[1]
    k = np.clip(np.ceil(target * n - 1e-9).astype(np.int64) - 1, 0, max(n - 1, 0))
    value = srt[np.arange(srt.shape[0]), k] + offset
    return np.maximum(np.ceil(value - 1e-9), 0.0)


def fill_rate_sorted(
    d: SortedSamples,
    dl: SortedSamples | None,
    idx: np.ndarray,
    s: np.ndarray,
    q: np.ndarray,
    ints: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`fill_rate_from_samples` of the rows ``idx`` of ``d`` (``dl``: the lead-time
    samples, or None) at reorder points ``s`` (``q`` and ``ints`` of those rows; ``ints``
    None: all integer, as there), read from the sorted samples: the same formula, to the last
    bit on integer samples."""
    ints = np.ones(np.size(idx), dtype=bool) if ints is None else np.asarray(ints, dtype=bool)
    qq = np.maximum(q, 1e-12)
    if dl is None:
        a, _ = d.sums(idx, s)
        b, _ = d.sums(idx, s + q)
        n = max(d.n, 1)
        out = 1.0 - (a / n - b / n) / qq
    else:
        per_review = d.mean[idx] - dl.mean[idx]
        short = (d.shortage_sum(idx, s, q, ints) - dl.shortage_sum(idx, s, q, ints)) / qq
        out = np.where(per_review > 0, 1.0 - short / np.maximum(per_review, 1e-300), 1.0)
    return np.clip(out, 0.0, 1.0)


def reorder_point_sorted(
    d: SortedSamples,
    dl: SortedSamples | None,
    tgt: np.ndarray,
    q: np.ndarray,
    ints: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`reorder_point_from_samples` (fill rate) from sorted samples: the smallest integer
    ``s >= 0`` whose fill rate reaches ``tgt``, by bisection, for the ``rows`` of ``d`` (all by
    default; ``tgt``, ``q`` and ``ints`` one per row asked for; ``ints`` None: all integer)."""
    rows = np.arange(d.sorted.shape[0]) if rows is None else np.asarray(rows)
    n_items = rows.size
    ints = np.ones(n_items, dtype=bool) if ints is None else np.asarray(ints, dtype=bool)
    if not np.size(tgt) == np.size(q) == n_items:
        raise ConfigError(f"need one target and one Q per row asked for ({n_items})")
    ok0 = fill_rate_sorted(d, dl, rows, np.zeros(n_items), q, ints) >= tgt
    top = d.sorted[rows, -1] + d.centre[rows] if d.n else np.zeros(n_items)
    hi = np.where(ok0, 0.0, np.maximum(np.ceil(top), 1.0))
    lo = np.where(ok0, -1.0, 0.0)  # fill(lo) < target, fill(hi) >= target (1 at the maximum)
    while True:
        idx = np.flatnonzero(hi - lo > 1)
        if idx.size == 0:
            return hi
        mid = np.floor((lo[idx] + hi[idx]) / 2.0)
        ok = fill_rate_sorted(d, dl, rows[idx], mid, q[idx], ints[idx]) >= tgt[idx]
        hi[idx] = np.where(ok, mid, hi[idx])
        lo[idx] = np.where(ok, lo[idx], mid)


def protection_review_periods(policy: str, review_period: float) -> float:
    """Periods to add to the lead time for the protection interval of ``policy``: 1 for ``sQ``
    (reviewed every period, see the module docstring), ``review_period`` for ``RsS``. Pass it
    as ``review_period`` to ``lead_time_demand``."""
    if policy == "sQ":
        return 1.0
    if policy == "RsS":
        if review_period < 1:
            raise ConfigError(f"review_period must be >= 1 period for RsS, got {review_period}")
        return float(review_period)
    raise ConfigError(f"policy must be 'sQ' or 'RsS', got {policy!r}")


def _cycle_demand(ltd_mean_per_period: np.ndarray, q: np.ndarray, policy: str, review: float):
    if policy == "RsS":
        return np.maximum(q, ltd_mean_per_period * review)
    return q


def distribution_policy(
    ltd: LeadTimeDemand,
    targets: np.ndarray,
    order_quantity: np.ndarray,
    *,
    target_type: str = "fill_rate",
    policy: str = "sQ",
) -> PolicyResult:
    """Policy from Monte-Carlo lead-time demand (``ltd`` built with the protection interval:
    ``review_period`` 1 for ``sQ`` reviewed every period, R for ``RsS``)."""
    return distribution_policies(
        ltd, [targets], order_quantity, target_type=target_type, policy=policy
    )[0]


def distribution_policies(
    ltd: LeadTimeDemand,
    targets: Sequence[np.ndarray],
    order_quantity: np.ndarray,
    *,
    target_type: str = "fill_rate",
    policy: str = "sQ",
) -> list[PolicyResult]:
    """:func:`distribution_policy` for each of several target vectors on the same lead-time
    demand. The samples are sorted once per chunk of items for all of them: the calibration
    backtest asks for 25 nominal targets on one ``ltd``, and sorting dominated when each call
    sorted again (docs/results.md, "Speed of the plan")."""
    if policy not in ("sQ", "RsS"):
        raise ConfigError(f"policy must be 'sQ' or 'RsS', got {policy!r}")
    if target_type == "cost":
        target_type = "cycle_service"
    if target_type not in ("fill_rate", "cycle_service"):
        raise ConfigError(f"target_type must be fill_rate or cycle_service, got {target_type!r}")
    n = ltd.n_items
    q = np.asarray(order_quantity, dtype=np.float64)
    if q.shape != (n,):
        raise DataValidationError(f"order_quantity needs {n} values, got {q.shape}")
    tgts = [np.asarray(t, dtype=np.float64) for t in targets]
    for t in tgts:
        if t.shape != (n,):
            raise ConfigError(f"target must have one value per item ({n}), got {t.shape}")
    lead = ltd.lead_samples if ltd.review_period > 0 else None
    ints = np.asarray(ltd.params.integer, dtype=bool)
    s = [np.empty(n) for _ in tgts]
    fill = [np.empty(n) for _ in tgts]
    above = [np.empty(n) for _ in tgts]
    for sl in item_chunks(n):
        d = SortedSamples(ltd.samples[sl])
        dl = None if lead is None else SortedSamples(lead[sl])
        rows = np.arange(d.sorted.shape[0])
        for j, t in enumerate(tgts):
            if target_type == "fill_rate":
                s_j = reorder_point_sorted(d, dl, t[sl], q[sl], ints[sl])
            else:
                s_j = cycle_service_point(d.sorted, t[sl], d.centre)
            s[j][sl] = s_j
            fill[j][sl] = fill_rate_sorted(d, dl, rows, s_j, q[sl], ints[sl])
            above[j][sl] = d.above(rows, s_j) / max(d.n, 1)
    mean = ltd.mean
    return [
        PolicyResult(
            policy=policy,
            reorder_point=s[j],
            order_up_to=s[j] + q,
            order_quantity=q,
            safety_stock=s[j] - mean,
            mean_demand=mean,
            target=tgts[j],
            expected_fill_rate=fill[j],
            cycle_service_level=1.0 - above[j],
            method=ltd.method,
        )
        for j in range(len(tgts))
    ]


# --------------------------------------------------------------------------------------------
# Sparse, dying and shifting demand
# --------------------------------------------------------------------------------------------


def obsolete_items(y: np.ndarray, intervals: float) -> tuple[np.ndarray, np.ndarray]:
    """Items to stop replenishing: (obsolete bool[items], reason str[items], "" when not).

    ``no_demand``: no demand in the history at all. ``no_demand_for_k_intervals``: the periods
    since the last demand exceed ``intervals`` mean intervals between demands (the decay factor
    ``exp(-decay * max(0, s/p - 1))`` of the forecasting layer below ``exp(-decay (k - 1))``).
    ``intervals = 0`` flags only the items without demand.
    """
    has, since, interval = demand_recency(y)
    dying = np.zeros(has.size, dtype=bool)
    if intervals > 0:
        with np.errstate(invalid="ignore"):
            dying = has & (since > intervals * np.nan_to_num(interval, nan=np.inf))
    reason = np.where(~has, "no_demand", np.where(dying, "no_demand_for_k_intervals", ""))
    return ~has | dying, reason.astype(object)


def sparse_reorder_point(
    samples: np.ndarray, target: np.ndarray, reorder_point: np.ndarray
) -> np.ndarray:
    """Reorder point of a sparse item: one typical lump when a demand in the protection
    interval is likely enough for the target, nothing otherwise, float64[items] >= -1.

    A fill rate over a handful of demands asks for whole lumps (and their tails) held for
    years. The sparse rule is a cycle service on the protection interval instead: the stock
    ``s + 1`` (the least the position holds after a review) covers demand up to the ``target``
    quantile of the lead-time demand, so ``s = quantile - 1``: -1 (hold nothing; order when a
    demand comes) when ``P(no demand over the protection interval) >= target``, else the size
    of one typical lump minus one. Never above ``reorder_point`` (the fill-rate one).
    """
    tgt = np.asarray(target, dtype=np.float64)
    cyc = reorder_point_from_samples(samples, tgt, np.ones(tgt.size), "cycle_service")
    return np.minimum(np.maximum(cyc - 1.0, -1.0), np.asarray(reorder_point, dtype=np.float64))


def sparse_items(y: np.ndarray, threshold: float) -> np.ndarray:
    """bool[items]: demand in some but fewer than ``threshold`` of the periods of ``y`` (none
    for ``threshold <= 0``: the sparse rule off)."""
    arr = np.asarray(y, dtype=np.float64)
    share = (arr > 0).mean(axis=1) if arr.shape[1] else np.zeros(arr.shape[0])
    return np.asarray((share > 0) & (share < threshold), dtype=bool)


def apply_sparse_rule(
    pol: PolicyResult,
    ltd: LeadTimeDemand,
    y: np.ndarray,
    targets: np.ndarray,
    threshold: float,
) -> tuple[PolicyResult, np.ndarray]:
    """``pol`` with the sparse items of ``y`` (:func:`sparse_items`) at their
    :func:`sparse_reorder_point` for ``targets`` (the service targets, not calibrated ones),
    and the mask of those items. ``threshold <= 0``: unchanged. The one code path of the plan,
    for backtests that replay the plan's policy."""
    sparse = sparse_items(y, threshold)  # none for threshold <= 0
    if not sparse.any():
        return pol, sparse
    n = ltd.n_items
    idx = np.flatnonzero(sparse)
    s_new = np.full(n, np.nan)
    tgt = np.broadcast_to(np.asarray(targets, dtype=np.float64), (n,))
    s_new[idx] = sparse_reorder_point(ltd.samples[idx], tgt[idx], pol.reorder_point[idx])
    return with_reorder_points(pol, ltd, sparse, s_new), sparse


def level_factor(
    y: np.ndarray,
    current_rate: np.ndarray,
    window: int,
    *,
    min_demands: int = 3,
    bounds: tuple[float, float] = (0.25, 4.0),
) -> np.ndarray:
    """Factor per item that moves the lead-time demand to the recent level: the mean demand of
    the last ``window`` periods over ``current_rate`` (the distribution's mean per period),
    clipped to ``bounds``; 1 where the window has fewer than ``min_demands`` periods with
    demand (too few to tell a shift from noise) or ``current_rate`` is 0."""
    arr = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    if window < 1:
        raise ConfigError(f"level window must be >= 1 period, got {window}")
    recent = arr[:, -window:]
    rate = recent.mean(axis=1)
    cur = np.asarray(current_rate, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(cur > 0, rate / np.where(cur > 0, cur, 1.0), 1.0)
    enough = (recent > 0).sum(axis=1) >= min_demands
    return np.where(enough & (cur > 0), np.clip(f, *bounds), 1.0)


LEVEL_WEIGHT_SHARE = 1 / 3
""":func:`level_weight_sums`: the share of the history held out to measure which level
predicted it (the calibration's holdout share, and what the decision backtest replays: a third
of the history after two thirds)."""


def level_weight_sums(
    y: np.ndarray,
    window: int,
    *,
    min_demands: int = 3,
    bounds: tuple[float, float] = (0.25, 4.0),
) -> tuple[float, float]:
    """The two sums :func:`level_weight` divides, over the items of ``y`` (items x periods):
    the history is cut before its last third; per item with demand before the cut, ``h`` its
    mean demand there, ``r`` the mean of the last ``window`` periods before the cut (at most
    half of them; ``h`` where they hold under ``min_demands`` demands, clipped to ``bounds``
    times ``h``, as :func:`level_factor`) and ``f`` the mean after the cut:
    ``sum((f - h) (r - h) / h)`` and ``sum((r - h)^2 / h)`` (a least-squares fit of
    ``f - h = w (r - h)``, each item weighted as a Poisson count). Sums, so chunks of items
    add up to the whole panel's. (0, 0) when the history is too short to cut."""
    arr = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    n_t = arr.shape[1] if arr.ndim == 2 else 0
    held = int(n_t * LEVEL_WEIGHT_SHARE)
    fit_t = n_t - held
    win = min(window, fit_t // 2)
    if held < 1 or win < 1 or arr.shape[0] == 0:
        return 0.0, 0.0
    h = arr[:, :fit_t].mean(axis=1)
    # the recent level of level_factor itself (1 where too few demands or no history)
    r = h * level_factor(arr[:, :fit_t], h, win, min_demands=min_demands, bounds=bounds)
    f = arr[:, fit_t:].mean(axis=1)
    ok = h > 0
    h, r, f = h[ok], r[ok], f[ok]
    return float(((f - h) * (r - h) / h).sum()), float(((r - h) ** 2 / h).sum())


def level_weight(sums: tuple[float, float]) -> float:
    """How far the level moves from the history's towards the recent one (``inventory.level
    = "adaptive"``): the least-squares weight of :func:`level_weight_sums`, clipped to [0, 1]
    and rounded to 3 decimals; 0 (the history's level) when it cannot be measured.

    Why (issue 12): whether a recent level predicts the next periods depends on the data.
    Measured with policies set on two thirds of the history (the weight estimated here on
    that training part; the least-squares weight on the test after it): carparts, demand
    dying out item by item, 0.722 (0.942 on the test); oil 0 (-0.044); the demo 0 (0.120);
    weekly demo sets 0-0.117 (-0.211-0.171): there the items whose last year fell by half
    came back at 1.8-2.2 times it (docs/results.md)."""
    num, den = sums
    if not (np.isfinite(num) and np.isfinite(den) and den > 0):
        return 0.0
    # rounded: chunks of items summed in another order give the same weight (short of a sum
    # that falls within 1e-12 of a rounding boundary)
    return round(float(np.clip(num / den, 0.0, 1.0)), 3)


def rescale_samples(
    samples: np.ndarray, factor: np.ndarray, integer: np.ndarray, seed: int = 0
) -> np.ndarray:
    """Samples ``[items, n]`` times ``factor[items]``; integer items are rounded stochastically
    (``floor(x f + u)``, ``u`` uniform) so the mean is kept and the samples stay integers.
    The uniforms are one per sample path, shared by all items (as :func:`level_mixture`'s):
    an item's result depends on its own samples, factor and the seed only, so a chunk of items
    gets exactly what the whole panel gets (the Dask planner plans per chunk)."""
    f = np.asarray(factor, dtype=np.float64)
    ints = np.asarray(integer, dtype=bool)
    out = samples.astype(np.float64) * f[:, None]
    rows = np.flatnonzero(ints & (f != 1.0))
    if rows.size:
        u = np.random.default_rng(seed).random((samples.shape[1],))
        out[rows] = np.floor(out[rows] + u[None, :])
    return out.astype(samples.dtype)


def stratified_uniforms(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniforms in [0, 1), one in each stratum ``[k / n, (k + 1) / n)`` in random order
    (Latin hypercube in one dimension): ``(pi_k + v_k) / n`` with ``pi`` a random permutation of
    ``0..n-1`` and ``v`` iid uniform in [0, 1), both from ``rng``. Each value is uniform on [0,
    1); the sorted values stay within ``1 / n`` of the uniform's quantiles."""
    perm = rng.permutation(n)
    # (n - 1 + v) / n can round up to 1.0 in float64
    return np.minimum((perm + rng.random(n)) / n, np.nextafter(1.0, 0.0))


def level_mixture(
    samples: np.ndarray, sigma: float | np.ndarray, integer: np.ndarray, seed: int = 0
) -> np.ndarray:
    """Samples ``[items, n]`` each times a level factor ``exp(sigma z - sigma^2 / 2)`` (mean 1):
    the uncertainty of the demand level between the history and the lead time ahead (growth,
    decay) that the stationary model leaves out, a heavier tail than the history shows.
    ``sigma``: one for all items or one per item (items at 0 are unchanged).

    ``z`` is one standard normal per sample path (``n`` of them, from ``seed``) shared by all
    items, and so are the uniforms of the stochastic rounding of integer items (``floor(x +
    u)``, as :func:`rescale_samples`): an item's result depends on its own samples, its sigma
    and the seed only, not on the other items, so a chunk of items gets exactly what the whole
    panel gets (the Dask planner plans per chunk). Both are stratified (Latin hypercube,
    :func:`stratified_uniforms`): path ``k`` gets ``z = Phi^-1((pi_k + v_k) / n)`` with ``pi`` a
    random permutation of ``0..n-1`` and ``v_k`` uniform in [0, 1), so exactly one path falls in
    each of the ``n`` equal-probability strata of the normal (and of the rounding uniform). Each
    path's factor keeps the lognormal marginal of mean 1, but the ``n`` factors' sample mean and
    quantiles follow the lognormal's closely: shared by all items, a plain random draw's error
    in them (about ``sigma / sqrt(n)`` in the mean) would move every item's plan the same way
    at once (one run's fills moved by up to 2 points). Only the correlation between items
    changes against draws per item, which nothing uses (the per-item policies read one item's
    samples, the aggregate mode sums per-item expectations). The same ``seed`` gives the same
    factors, so the lead-time and protection-interval samples of one path move together."""
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (samples.shape[0],))
    if (sig < 0).any():
        raise ConfigError(f"level sigma must be >= 0, got {float(sig.min())}")
    if not (sig > 0).any() or samples.size == 0:
        return samples
    rng = np.random.default_rng(seed)
    n = samples.shape[1]
    # p in (0, 1): p = 0 would give z = -inf, and 0 * -inf = nan for the items at sigma 0
    p = np.maximum(stratified_uniforms(rng, n), np.finfo(np.float64).tiny)
    z = special.ndtri(p)
    u = stratified_uniforms(rng, n)
    s = sig[:, None]
    out = samples.astype(np.float64) * np.exp(s * z[None, :] - 0.5 * s * s)
    rows = np.flatnonzero(np.asarray(integer, dtype=bool) & (sig > 0))
    if rows.size:
        out[rows] = np.floor(out[rows] + u[None, :])
    return out.astype(samples.dtype)


def with_reorder_points(
    pol: PolicyResult, ltd: LeadTimeDemand, rows: np.ndarray, reorder_point: np.ndarray
) -> PolicyResult:
    """``pol`` with the reorder points of ``rows`` (bool mask) replaced by ``reorder_point``
    (float64[items], read where ``rows``), and their S, safety stock, expected fill rate and
    cycle service recomputed on ``ltd``."""
    mask = np.asarray(rows, dtype=bool)
    if not mask.any():
        return pol
    s = np.where(mask, np.asarray(reorder_point, dtype=np.float64), pol.reorder_point)
    idx = np.flatnonzero(mask)
    lead = ltd.lead_samples[idx] if ltd.review_period > 0 else None
    fill = pol.expected_fill_rate.copy()
    fill[idx] = fill_rate_from_samples(
        ltd.samples[idx],
        s[idx],
        pol.order_quantity[idx],
        lead_samples=lead,
        integer=ltd.params.integer[idx],
    )
    csl = pol.cycle_service_level.copy()
    csl[idx] = 1.0 - stockout_probability(ltd.samples[idx], s[idx])
    return replace(
        pol,
        reorder_point=s,
        order_up_to=s + pol.order_quantity,
        safety_stock=s - pol.mean_demand,
        expected_fill_rate=fill,
        cycle_service_level=csl,
    )


# --------------------------------------------------------------------------------------------
# Textbook normal approximation
# --------------------------------------------------------------------------------------------


def normal_loss(k: np.ndarray) -> np.ndarray:
    """Standard normal loss function ``G(k) = phi(k) - k (1 - Phi(k))``."""
    k = np.asarray(k, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = stats.norm.pdf(k) - k * stats.norm.sf(k)
    return np.where(np.isposinf(k), 0.0, np.where(np.isneginf(k), np.inf, out))


def _k_for_loss(target_loss: np.ndarray) -> np.ndarray:
    """k with ``G(k) = target_loss`` (G decreasing), by bisection on [-6, 8]."""
    lo = np.full(target_loss.shape, -6.0)
    hi = np.full(target_loss.shape, 8.0)
    for _ in range(60):
        mid = (lo + hi) / 2.0
        above = normal_loss(mid) > target_loss
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return hi


def sba_one_step(y: np.ndarray, alpha: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """SBA forecast per period and the RMSE of its one-step-ahead in-sample errors.

    Croston's recursion (sizes and intervals smoothed with ``alpha`` at each demand, initialised
    with the first demand and its interval), times ``1 - alpha/2``; errors from the period after
    the first demand. Vectorised over items, one pass over periods. Returns float64[items] each.
    """
    h = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    n_items, n_t = h.shape
    z = np.zeros(n_items)
    p = np.zeros(n_items)
    since = np.zeros(n_items)
    started = np.zeros(n_items, dtype=bool)
    sse = np.zeros(n_items)
    n_err = np.zeros(n_items)
    factor = 1.0 - alpha / 2.0
    for t in range(n_t):
        x = h[:, t]
        fc = np.where(started, factor * z / np.maximum(p, 1e-12), 0.0)
        err = np.where(started, x - fc, 0.0)
        sse += err * err
        n_err += started
        since += 1.0
        dem = x > 0
        first = dem & ~started
        upd = dem & started
        z = np.where(first, x, np.where(upd, z + alpha * (x - z), z))
        p = np.where(first, since, np.where(upd, p + alpha * (since - p), p))
        since = np.where(dem, 0.0, since)
        started |= dem
    forecast = np.where(started, factor * z / np.maximum(p, 1e-12), 0.0)
    rmse = np.sqrt(sse / np.maximum(n_err, 1.0))
    return forecast, rmse


def normal_policy(
    demand_per_period: np.ndarray,
    sigma_per_period: np.ndarray,
    lead_time_mean: np.ndarray,
    lead_time_std: np.ndarray,
    targets: np.ndarray,
    order_quantity: np.ndarray,
    *,
    review_period: float = 0.0,
    target_type: str = "fill_rate",
    policy: str = "sQ",
) -> PolicyResult:
    """Textbook policy: normal lead-time demand, ``s = ceil(mu + k sigma)`` (at least 0).

    ``mu = d (L + R)``, ``sigma = sqrt((L + R) sigma_d^2 + d^2 sigma_L^2)``; cycle service
    ``k = Phi^-1(alpha)``, fill rate ``sigma G(k) = (1 - beta) Q`` (Q the cycle demand).
    """
    if policy not in ("sQ", "RsS"):
        raise ConfigError(f"policy must be 'sQ' or 'RsS', got {policy!r}")
    if target_type == "cost":
        target_type = "cycle_service"
    d = np.asarray(demand_per_period, dtype=np.float64)
    sd = np.asarray(sigma_per_period, dtype=np.float64)
    lm = np.asarray(lead_time_mean, dtype=np.float64) + review_period
    ls = np.asarray(lead_time_std, dtype=np.float64)
    tgt = np.asarray(targets, dtype=np.float64)
    q = np.asarray(order_quantity, dtype=np.float64)
    mu = d * lm
    sigma = np.sqrt(lm * sd**2 + d**2 * ls**2)
    cyc = _cycle_demand(d, q, policy, review_period)
    if target_type == "cycle_service":
        k = stats.norm.ppf(tgt)
    elif target_type == "fill_rate":
        k = _k_for_loss((1.0 - tgt) * cyc / np.maximum(sigma, 1e-12))
    else:
        raise ConfigError(f"target_type must be fill_rate or cycle_service, got {target_type!r}")
    s = np.maximum(np.ceil(mu + k * sigma - 1e-9), 0.0)
    s = np.where(sigma > 0, s, np.maximum(np.ceil(mu - 1e-9), 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        kk = np.where(sigma > 0, (s - mu) / sigma, np.inf)
    esc = sigma * (normal_loss(kk) - normal_loss(kk + q / np.maximum(sigma, 1e-12)))
    fill = np.where(sigma > 0, 1.0 - np.nan_to_num(esc) / np.maximum(cyc, 1e-12), 1.0)
    return PolicyResult(
        policy=policy,
        reorder_point=s,
        order_up_to=s + q,
        order_quantity=q,
        safety_stock=s - mu,
        mean_demand=mu,
        target=tgt,
        expected_fill_rate=np.clip(fill, 0.0, 1.0),
        cycle_service_level=np.where(sigma > 0, stats.norm.cdf(kk), 1.0),
        method=np.full(s.size, "normal", dtype=object),
    )


# --------------------------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------------------------


def suggested_order(
    policy: PolicyResult,
    inventory_position: np.ndarray,
    moq: np.ndarray | float = 1.0,
    lot_size: np.ndarray | float = 1.0,
) -> np.ndarray:
    """Quantity to order now, float64[items] (0: no order).

    ``sQ``: when ``IP <= s``, the smallest multiple of Q lifting IP above s. ``RsS``: when
    ``IP <= s``, ``S - IP``. Both rounded up to the lot size and at least the MOQ. The rule
    alone: an item without any demand in its history (``mean_demand == 0``, ``s = 0``) at
    ``IP = 0`` gets one lot; ``pipeline.plan`` drops those orders and says so in a note.
    """
    ip = np.asarray(inventory_position, dtype=np.float64)
    s, q = policy.reorder_point, policy.order_quantity
    below = ip <= s
    if policy.policy == "sQ":
        n = np.floor((s - ip) / np.maximum(q, 1e-12)) + 1.0
        raw = np.where(below, n * q, 0.0)
    else:
        raw = np.where(below, policy.order_up_to - ip, 0.0)
    return round_order_quantity(raw, moq, lot_size)


def resolve_item_column(
    items: pl.DataFrame | None,
    item_ids: Sequence[str],
    column: str,
    default: float,
) -> np.ndarray:
    """Per-item values of an optional items-table column (MOQ, lot size, target), in
    ``item_ids`` order; ``default`` where the column or the value is missing."""
    out = np.full(len(item_ids), default, dtype=np.float64)
    if items is None or column not in items.columns:
        return out
    lookup: Mapping[str, float | None] = dict(
        zip(items["item_id"].to_list(), items[column].cast(pl.Float64).to_list(), strict=True)
    )
    for i, item in enumerate(item_ids):
        v = lookup.get(item)
        if v is not None and np.isfinite(v):
            out[i] = v
    return out
