"""Features of the global ML models, built from a DemandPanel without leakage.

A row describes item ``i`` at cutoff ``t`` (``t`` periods observed: ``y[i, :t]``) and a target
period ``p = t + k - 1`` (``k`` = 1..h steps ahead). Every value of the row is computed from
``y[i, :t]``, the calendar of period ``p`` and the item's static attributes, never from
``y[i, t:]`` (tested). Features, in :func:`feature_names` order:

- ``lag_l``: ``y[t - l]`` for each lag (NaN before the series start);
- ``mean_w``, ``max_w``, ``nzrate_w``: mean, maximum and share of periods with demand over the
  last ``w`` periods (fewer at the series start; NaN when ``t = 0``);
- ``season_mean``: mean of the last ``n_seasons`` observed values one, two, ... seasons before the
  target period (daily: the same weekday; monthly: the same month); no season for weekly data;
- non-zero demand statistics: ``n_demands``, ``mean_size``, ``mean_interval`` (periods since the
  first demand / demands, as :mod:`sparecast.classify`), ``since_last`` and ``since_first``
  (periods), ``demand_rate`` (demands / t), ``cv2`` of the sizes;
- obsolescence (NaN where undefined): ``last_interval_ratio``, the interval between the last two
  demands over the mean interval between demands (``(last - first) / (n_demands - 1)``; above 1:
  demands are thinning out), ``overdue``, ``since_last`` over that mean interval (above 1: the
  next demand is later than usual), and per window ``w`` ``nzrate_ratio_w``, the share of the
  last ``w`` periods with demand over the share since the first demand (``n_demands /
  since_first``; below 1: fewer demands lately than over the item's life);
- ``sb_class`` and ``tier`` codes (the order of ``classify.SB_CLASSES`` / ``TIERS``), computed
  at the cutoff with the same definitions as :func:`sparecast.classify.classify`;
- calendar of the target period: daily ``dow`` (Monday 0), ``dom``, ``month``; weekly ``week``,
  ``month``; monthly ``month``;
- ``step`` (``k``, direct strategy only);
- ``category`` (integer code, a categorical feature; NaN when unknown) and ``unit_cost`` when the
  panel has these attributes.

Why cumulative sums: one pass per chunk of items gives every cutoff's statistics in O(1), and the
recursive strategy extends them one period at a time. Items are processed in chunks so that the
temporary arrays stay bounded (about ``chunk_items x n_periods x 40`` bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from sparecast.classify import ADI_CUTOFF, CV2_CUTOFF, TierThresholds
from sparecast.data.panel import DemandPanel, Freq, period_starts
from sparecast.errors import MethodError

__all__ = [
    "FeatureSpec",
    "History",
    "StaticFeatures",
    "default_spec",
    "feature_names",
    "cutoff_features",
    "target_calendar",
]


@dataclass(frozen=True)
class FeatureSpec:
    """Which features to build: lags, rolling windows, the season (0 = none) and whether the
    obsolescence features are included."""

    lags: tuple[int, ...]
    windows: tuple[int, ...]
    season: int
    n_seasons: int = 4
    obsolescence: bool = True
    thresholds: TierThresholds = TierThresholds()
    adi_cutoff: float = ADI_CUTOFF
    cv2_cutoff: float = CV2_CUTOFF

    def __post_init__(self) -> None:
        if not self.lags or min(self.lags) < 1:
            raise MethodError(f"lags must be positive integers, got {self.lags}")
        if not self.windows or min(self.windows) < 1:
            raise MethodError(f"windows must be positive integers, got {self.windows}")
        if self.season < 0 or self.n_seasons < 1:
            raise MethodError(
                f"season must be >= 0 and n_seasons >= 1, got {self.season}, {self.n_seasons}"
            )

    @property
    def max_lookback(self) -> int:
        """Longest look-back of a lag or window (periods)."""
        return max(max(self.lags), max(self.windows))


_DEFAULTS: dict[str, tuple[tuple[int, ...], tuple[int, ...], int]] = {
    "D": (tuple(range(1, 22)), (7, 28, 91), 7),
    "W": (tuple(range(1, 14)), (4, 13, 52), 0),
    "M": (tuple(range(1, 13)), (3, 6, 12), 12),
}


def default_spec(
    freq: Freq,
    lags: tuple[int, ...] | list[int] | None = None,
    windows: tuple[int, ...] | None = None,
    *,
    obsolescence: bool = True,
) -> FeatureSpec:
    """Default features of a frequency: daily lags 1..21, windows 7/28/91 days, weekday season;
    weekly lags 1..13, windows 4/13/52 weeks; monthly lags 1..12, windows 3/6/12, yearly season.
    ``lags`` / ``windows`` override the defaults; ``obsolescence=False`` leaves the obsolescence
    features out."""
    d_lags, d_windows, season = _DEFAULTS[freq]
    return FeatureSpec(
        lags=tuple(int(v) for v in lags) if lags is not None else d_lags,
        windows=tuple(int(v) for v in windows) if windows is not None else d_windows,
        season=season,
        obsolescence=obsolescence,
    )


def _calendar_names(freq: Freq) -> list[str]:
    return {"D": ["dow", "dom", "month"], "W": ["week", "month"], "M": ["month"]}[freq]


_STATS = [
    "n_demands",
    "mean_size",
    "mean_interval",
    "since_last",
    "since_first",
    "demand_rate",
    "cv2",
    "sb_class",
    "tier",
]


def _stat_names(spec: FeatureSpec) -> list[str]:
    if not spec.obsolescence:
        return list(_STATS)
    obsolescence = ["last_interval_ratio", "overdue"]
    obsolescence += [f"nzrate_ratio_{w}" for w in spec.windows]
    return _STATS[:7] + obsolescence + _STATS[7:]


def feature_names(
    spec: FeatureSpec, freq: Freq, *, with_step: bool, static: list[str] | None = None
) -> list[str]:
    """Column names of the feature matrix, in order (see the module docstring)."""
    names = [f"lag_{lag}" for lag in spec.lags]
    for w in spec.windows:
        names += [f"mean_{w}", f"max_{w}", f"nzrate_{w}"]
    if spec.season:
        names.append("season_mean")
    names += _stat_names(spec)
    names += _calendar_names(freq)
    if with_step:
        names.append("step")
    return names + list(static or [])


def target_calendar(start: np.datetime64, n_periods: int, freq: Freq) -> np.ndarray:
    """Calendar features ``float32[n_periods, n_calendar]`` of the periods ``0..n_periods-1`` of a
    panel starting on ``start`` (columns as :func:`feature_names`)."""
    days = period_starts(start, n_periods, freq)
    month = (days.astype("datetime64[M]").astype(np.int64) % 12 + 1).astype(np.float32)
    if freq == "D":
        dow = ((days.astype(np.int64) + 3) % 7).astype(np.float32)  # 1970-01-01 was a Thursday
        dom = (days - days.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
        return np.stack([dow, dom.astype(np.float32), month], axis=1)
    if freq == "W":
        doy = (days - days.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64)
        return np.stack([(doy // 7 + 1).astype(np.float32), month], axis=1)
    return month[:, None]


class History:
    """Cumulative statistics of a chunk of items, extendable by one period at a time.

    Holds ``y`` and prefix sums over periods so that every feature at any cutoff ``t`` costs
    O(items x max window). Arrays have room for ``extra`` appended periods (recursive forecasts).
    """

    def __init__(self, y: np.ndarray, extra: int = 0) -> None:
        n, t_len = y.shape
        size = t_len + extra
        self.n_items = n
        self.length = t_len
        self.y = np.zeros((n, size), dtype=np.float32)
        self.y[:, :t_len] = y
        pos = self.y[:, :t_len] > 0
        sizes = np.where(pos, self.y[:, :t_len], 0.0).astype(np.float64)
        self.c_y = np.zeros((n, size + 1))
        np.cumsum(self.y[:, :t_len], axis=1, dtype=np.float64, out=self.c_y[:, 1 : t_len + 1])
        self.c_n = np.zeros((n, size + 1), dtype=np.int32)
        np.cumsum(pos, axis=1, dtype=np.int32, out=self.c_n[:, 1 : t_len + 1])
        self.c_s = np.zeros((n, size + 1))
        np.cumsum(sizes, axis=1, out=self.c_s[:, 1 : t_len + 1])
        self.c_q = np.zeros((n, size + 1))
        np.cumsum(np.square(sizes), axis=1, out=self.c_q[:, 1 : t_len + 1])
        # c_d[:, t]: sum of squared one-step differences within y[:, :t] (the RMSSE scale)
        self.c_d = np.zeros((n, size + 1))
        if t_len > 1:
            diff2 = np.square(np.diff(self.y[:, :t_len], axis=1, prepend=self.y[:, :1]))
            np.cumsum(diff2, axis=1, dtype=np.float64, out=self.c_d[:, 1 : t_len + 1])
        # last[:, t]: index of the last demand before t (-1: none yet)
        self.last = np.full((n, size + 1), -1, dtype=np.int32)
        idx = np.where(pos, np.arange(t_len, dtype=np.int32), -1)
        np.maximum.accumulate(idx, axis=1, out=idx)
        self.last[:, 1 : t_len + 1] = idx
        has = pos.any(axis=1)
        self.first = np.where(has, pos.argmax(axis=1), np.iinfo(np.int32).max).astype(np.int64)

    def append(self, values: np.ndarray) -> None:
        """Add one period (e.g. a recursive forecast) at the end."""
        t = self.length
        v = np.asarray(values, dtype=np.float32)
        self.y[:, t] = v
        pos = v > 0
        size = np.where(pos, v, 0.0).astype(np.float64)
        self.c_y[:, t + 1] = self.c_y[:, t] + v
        self.c_n[:, t + 1] = self.c_n[:, t] + pos
        self.c_s[:, t + 1] = self.c_s[:, t] + size
        self.c_q[:, t + 1] = self.c_q[:, t] + size * size
        prev = self.y[:, t - 1] if t > 0 else v
        self.c_d[:, t + 1] = self.c_d[:, t] + np.square(v.astype(np.float64) - prev)
        self.last[:, t + 1] = np.where(pos, t, self.last[:, t])
        self.first = np.where(pos & (self.first > t), t, self.first)
        self.length = t + 1

    def scale(self, t: int, rows: np.ndarray) -> np.ndarray:
        """Mean squared one-step difference of ``y[rows, :t]`` (RMSSE's in-sample scale);
        0 before two periods."""
        return self.c_d[rows, t] / max(t - 1, 1)


def _item_stats(hist: History, t: int, spec: FeatureSpec) -> np.ndarray:
    """Non-zero demand statistics, obsolescence features and class/tier codes at cutoff ``t``:
    ``[items, len(_stat_names(spec))]``."""
    n = hist.c_n[:, t].astype(np.float64)
    has = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = hist.c_s[:, t] / n
        var = hist.c_q[:, t] / n - np.square(mean)
        cv2 = np.where(has, np.maximum(var / np.square(mean), 0.0), np.nan)
        first = np.where(hist.first < t, hist.first, t).astype(np.float64)
        n_periods = np.where(has, t - first, 0.0)
        adi = np.where(n >= 2, n_periods / n, np.where(n == 1, float(t), np.nan))
        rate = n / t if t > 0 else np.full(n.size, np.nan)
    last = hist.last[:, t].astype(np.float64)
    since_last = np.where(last >= 0, t - last, np.nan)
    since_first = np.where(has, t - first, np.nan)
    high_adi = adi >= spec.adi_cutoff
    high_cv2 = cv2 >= spec.cv2_cutoff
    sb = np.select(
        [~has, ~high_adi & ~high_cv2, ~high_adi & high_cv2, high_adi & ~high_cv2],
        [4.0, 0.0, 1.0, 2.0],
        default=3.0,
    )
    th = spec.thresholds
    freq = n / t if t > 0 else np.zeros(n.size)
    tier = np.select(
        [freq >= th.high_volume, freq >= th.regular, freq >= th.intermittent],
        [0.0, 1.0, 2.0],
        default=3.0,
    )
    mean_size = np.where(has, mean, np.nan)
    if not spec.obsolescence:
        return np.stack([n, mean_size, adi, since_last, since_first, rate, cv2, sb, tier], axis=1)
    # obsolescence: the previous demand is the last one before the last demand
    last_i = hist.last[:, t]
    prev = np.where(last_i >= 0, hist.last[np.arange(hist.n_items), np.maximum(last_i, 0)], -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.where(n >= 2, (last - first) / (n - 1), np.nan)  # mean interval between demands
        interval_ratio = np.where(n >= 2, (last - prev) / gap, np.nan)
        overdue = since_last / gap
        life_rate = np.where(has, n / np.maximum(t - first, 1.0), np.nan)
        ratios = []
        for w in spec.windows:
            lo = max(0, t - w)
            recent = (hist.c_n[:, t] - hist.c_n[:, lo]) / max(t - lo, 1)
            ratios.append(recent / life_rate)
    return np.stack(
        [n, mean_size, adi, since_last, since_first, rate, cv2, interval_ratio, overdue]
        + ratios
        + [sb, tier],
        axis=1,
    )


def cutoff_features(
    hist: History,
    t: int,
    spec: FeatureSpec,
    calendar: np.ndarray,
    steps: np.ndarray,
    *,
    with_step: bool,
    static: np.ndarray | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Feature rows ``float32[len(steps), n_features]`` of the items ``rows`` (default: all items
    of the chunk, then ``steps`` has one value per item) at cutoff ``t`` for target periods
    ``t + steps - 1``. ``calendar`` covers every target period (:func:`target_calendar`);
    ``static`` holds the chunk's static features (category, unit cost)."""
    if t > hist.length:
        raise ValueError(f"cutoff {t} is after the history's {hist.length} periods")
    idx = np.arange(hist.n_items) if rows is None else rows
    steps = np.asarray(steps, dtype=np.int64)
    cols: list[np.ndarray] = []
    y = hist.y
    for lag in spec.lags:
        cols.append(y[idx, t - lag] if t - lag >= 0 else np.full(idx.size, np.nan, np.float32))
    for w in spec.windows:
        lo = max(0, t - w)
        if t == 0:
            cols += [np.full(idx.size, np.nan, np.float32)] * 3
            continue
        cols.append((hist.c_y[idx, t] - hist.c_y[idx, lo]) / (t - lo))
        cols.append(y[idx, lo:t].max(axis=1))
        cols.append((hist.c_n[idx, t] - hist.c_n[idx, lo]) / (t - lo))
    target = t + steps - 1
    if spec.season:
        s = spec.season
        j0 = (steps - 1) // s + 1  # first whole season back that is observed
        total = np.zeros(idx.size)
        count = np.zeros(idx.size)
        for j in range(spec.n_seasons):
            p = target - s * (j0 + j)
            ok = p >= 0
            total += np.where(ok, y[idx, np.maximum(p, 0)], 0.0)
            count += ok
        with np.errstate(invalid="ignore", divide="ignore"):
            cols.append(np.where(count > 0, total / np.maximum(count, 1), np.nan))
    stats = _item_stats(hist, t, spec)
    stats = stats if rows is None else stats[idx]
    parts = [np.stack(cols, axis=1).astype(np.float32), stats.astype(np.float32)]
    parts.append(calendar[target])
    if with_step:
        parts.append(steps.astype(np.float32)[:, None])
    if static is not None and static.shape[1]:
        parts.append(static[idx])
    return np.concatenate(parts, axis=1)


@dataclass(frozen=True)
class StaticFeatures:
    """Encoding of the item attributes learned at fit: category codes and whether unit_cost is
    used. Categories unseen at fit get NaN."""

    categories: tuple[str, ...] | None
    unit_cost: bool

    @classmethod
    def learn(cls, attributes: pl.DataFrame | None) -> StaticFeatures:
        """Which attributes exist: ``category`` (any type, as text) and numeric ``unit_cost``."""
        if attributes is None:
            return cls(None, False)
        cats = None
        if "category" in attributes.columns:
            values = attributes["category"].cast(pl.Utf8).drop_nulls().unique().sort().to_list()
            cats = tuple(values)
        cost = "unit_cost" in attributes.columns and attributes["unit_cost"].dtype.is_numeric()
        return cls(cats, bool(cost))

    @property
    def names(self) -> list[str]:
        return (["category"] if self.categories is not None else []) + (
            ["unit_cost"] if self.unit_cost else []
        )

    def matrix(self, panel: DemandPanel) -> np.ndarray:
        """``float32[items, len(names)]`` for the panel's items (NaN where unknown)."""
        out = np.full((panel.n_items, len(self.names)), np.nan, dtype=np.float32)
        attrs = panel.attributes
        col = 0
        if self.categories is not None:
            if attrs is not None and "category" in attrs.columns:
                lookup = {c: i for i, c in enumerate(self.categories)}
                values = attrs["category"].cast(pl.Utf8).to_list()
                out[:, col] = [lookup.get(v, np.nan) if v is not None else np.nan for v in values]
            col += 1
        if self.unit_cost and attrs is not None and "unit_cost" in attrs.columns:
            out[:, col] = attrs["unit_cost"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        return out
