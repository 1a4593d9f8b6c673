"""Demand classification: Syntetos-Boylan classes (ADI / CV²) and demand-frequency tiers.

Definitions (per item, over the panel ``y[items, T]``; a period "has demand" when ``y > 0``, so
net returns never count as demand):

- ``n_periods``: periods from the first demand to the end of the panel (the history that counts;
  leading zeros are before the item existed or was stocked). 0 when the item has no demand.
- ``n_demands``: number of periods with demand.
- ``demand_frequency``: ``n_demands / T``, the share of *all* panel periods with demand.
- ``adi``: average demand interval, ``n_periods / n_demands``: periods per demand since the item's
  first demand. For stationary demand this equals the mean interval between consecutive demands
  (Syntetos & Boylan 2005); unlike that mean it counts the time since the *last* demand, so an item
  with two demands on consecutive days a year ago is not "smooth" (the mean-interval definition
  gives it ADI 1). An item with a single demand gets ``adi = T`` (one demand seen in the whole
  panel), so it is never "smooth"; an item with no demand gets null.
- ``cv2``: squared coefficient of variation of the non-zero demand sizes, population std
  (``var / mean²``). 0 for a single demand, null for none.
- ``sb_class``: smooth (ADI < 1.32, CV² < 0.49), erratic (ADI < 1.32, CV² >= 0.49), intermittent
  (ADI >= 1.32, CV² < 0.49), lumpy (both high), or "no_demand".
- ``tier``: from ``demand_frequency`` with :class:`TierThresholds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from sparecast.data.panel import DemandPanel
from sparecast.errors import ConfigError

__all__ = [
    "TierThresholds",
    "classify",
    "SB_CLASSES",
    "TIERS",
    "REGULAR_TIERS",
    "ADI_CUTOFF",
    "CV2_CUTOFF",
    "as_thresholds",
]

SB_CLASSES: tuple[str, ...] = ("smooth", "erratic", "intermittent", "lumpy", "no_demand")
TIERS: tuple[str, ...] = ("high_volume", "regular", "intermittent", "very_intermittent")
REGULAR_TIERS: tuple[str, ...] = ("high_volume", "regular")
"""The tiers of regular demand: where percentage errors mean something and XGBoost trains."""
ADI_CUTOFF = 1.32
"""Syntetos-Boylan cutoff of the average demand interval (intermittent at or above it)."""
CV2_CUTOFF = 0.49
"""Syntetos-Boylan cutoff of the squared coefficient of variation (erratic at or above it)."""


@dataclass(frozen=True)
class TierThresholds:
    """Lower bounds of ``demand_frequency`` for each tier: ``>= high_volume`` is high_volume,
    ``>= regular`` regular, ``>= intermittent`` intermittent, anything lower very_intermittent."""

    high_volume: float = 0.5
    regular: float = 0.1
    intermittent: float = 0.02

    def __post_init__(self) -> None:
        values = (self.high_volume, self.regular, self.intermittent)
        if not all(0.0 < v <= 1.0 for v in values):
            raise ConfigError(
                f"tier thresholds must be in (0, 1], got high_volume={self.high_volume}, "
                f"regular={self.regular}, intermittent={self.intermittent}"
            )
        if not self.high_volume > self.regular > self.intermittent:
            raise ConfigError(
                "tier thresholds must be strictly descending (high_volume > regular > "
                f"intermittent), got {self.high_volume}, {self.regular}, {self.intermittent}"
            )


def as_thresholds(value: TierThresholds | Mapping[str, float] | None) -> TierThresholds:
    """Tier thresholds given as a TierThresholds, a mapping of its fields (e.g. from a TOML
    table) or None (the defaults)."""
    if value is None:
        return TierThresholds()
    if isinstance(value, TierThresholds):
        return value
    return TierThresholds(**value)


def _item_stats(y: np.ndarray, chunk_items: int = 16384) -> dict[str, np.ndarray]:
    """Per-item counts, first demand index, mean and population variance of positive sizes."""
    n_items = y.shape[0]
    n = np.zeros(n_items, dtype=np.int64)
    first = np.zeros(n_items, dtype=np.int64)
    mean = np.full(n_items, np.nan)
    var = np.full(n_items, np.nan)
    for lo in range(0, n_items, chunk_items):
        sl = slice(lo, lo + chunk_items)
        block = y[sl]
        pos = block > 0
        cnt = pos.sum(axis=1)
        has = cnt > 0
        n[sl] = cnt
        first[sl] = np.where(has, pos.argmax(axis=1), 0)
        sizes = block.astype(np.float64)
        np.maximum(sizes, 0.0, out=sizes)  # only positive periods are demand sizes
        total = sizes.sum(axis=1)
        total_sq = np.einsum("ij,ij->i", sizes, sizes)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = total / cnt
            # One pass in float64 is exact enough here: the error of cv2 = E[x²]/mean² - 1 is
            # about 1e-16 x (1 + cv2), since cancellation is relative to mean², not to var.
            v = total_sq / cnt - np.square(m)
        mean[sl] = np.where(has, m, np.nan)
        var[sl] = np.where(has, v, np.nan)
    return {"n": n, "first": first, "mean": mean, "var": var}


def classify(
    panel: DemandPanel,
    *,
    thresholds: TierThresholds | None = None,
    adi_cutoff: float = ADI_CUTOFF,
    cv2_cutoff: float = CV2_CUTOFF,
) -> pl.DataFrame:
    """Per-item classification: unique_id, n_periods, n_demands, demand_frequency, adi, cv2,
    sb_class, tier (one row per item, in panel order).

    See the module docstring for the exact definitions. Vectorised over items (chunked, so memory
    stays bounded on 100,000+ items).
    """
    if adi_cutoff <= 0 or cv2_cutoff <= 0:
        raise ConfigError(f"adi_cutoff and cv2_cutoff must be > 0, got {adi_cutoff}, {cv2_cutoff}")
    th = thresholds or TierThresholds()
    y = panel.y
    n_t = panel.n_periods
    st = _item_stats(y)
    n, first = st["n"], st["first"]
    has = n > 0

    n_periods = np.where(has, n_t - first, 0)
    freq = n / n_t if n_t else np.zeros(n.size)
    adi = np.full(n.size, np.nan)
    many = n >= 2
    adi[many] = n_periods[many] / n[many]
    adi[n == 1] = float(n_t)
    with np.errstate(invalid="ignore", divide="ignore"):
        cv2 = st["var"] / np.square(st["mean"])
    cv2 = np.where(has, np.maximum(cv2, 0.0), np.nan)

    high_adi = adi >= adi_cutoff
    high_cv2 = cv2 >= cv2_cutoff
    sb = np.select(
        [~has, ~high_adi & ~high_cv2, ~high_adi & high_cv2, high_adi & ~high_cv2],
        ["no_demand", "smooth", "erratic", "intermittent"],
        default="lumpy",
    )
    tier = np.select(
        [freq >= th.high_volume, freq >= th.regular, freq >= th.intermittent],
        ["high_volume", "regular", "intermittent"],
        default="very_intermittent",
    )
    return pl.DataFrame(
        {
            "unique_id": pl.Series(np.asarray(panel.item_ids).astype(str), dtype=pl.Utf8),
            "n_periods": pl.Series(n_periods, dtype=pl.Int64),
            "n_demands": pl.Series(n, dtype=pl.Int64),
            "demand_frequency": pl.Series(freq, dtype=pl.Float64),
            "adi": pl.Series(adi, dtype=pl.Float64, nan_to_null=True),
            "cv2": pl.Series(cv2, dtype=pl.Float64, nan_to_null=True),
            "sb_class": pl.Series(sb, dtype=pl.Utf8),
            "tier": pl.Series(tier, dtype=pl.Utf8),
        }
    )
