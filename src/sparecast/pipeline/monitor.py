"""Pipeline step ``monitor``: score the served forecasts on the actuals that arrived after the
run, compare them with the run's backtest expectation and raise or close accuracy alerts.

``monitor(settings, data_dir)`` is a plain, idempotent function (the daily flow and
``sparecast monitor`` call it): a second pass on the same day opens no second alert and posts
no second webhook. An alert is a row of the store's ``alerts`` table (which the API shows in
``/health`` and ``/metrics``), a log line and, when ``monitoring.webhook_url`` is set, a JSON
POST (retried; a failing webhook is logged, never fatal).

``record_actuals(store, panel, as_of)`` loads the demand of the periods that ended by
``as_of`` into the store's ``observed_demand`` (incremental: unchanged values are not written
again, corrections win). ``run_items_frame`` is what a run stores per item so that monitoring
can group and scale its scores (``store_run`` writes it with every run).
"""

from __future__ import annotations

import calendar
import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sparecast.classify import REGULAR_TIERS
from sparecast.config import MonitoringSettings, Settings
from sparecast.data.panel import DemandPanel
from sparecast.errors import StoreError
from sparecast.evaluate.backtest import BacktestResult
from sparecast.evaluate.fva import FvaResult
from sparecast.evaluate.metrics import seasonal_naive_scale
from sparecast.evaluate.monitoring import (
    EXPECTATION_COLUMNS,
    EXPECTED_SCHEMA,
    expected_scores,
    mark_periods,
    rolling_scores,
    streaks,
)
from sparecast.pipeline.chunks import ChunkedPanel
from sparecast.pipeline.store_step import store_url_for
from sparecast.store.aliases import CHAMPION, served_lineage
from sparecast.store.history import ForecastStore
from sparecast.store.models import RunInfo
from sparecast.store.monitoring import AlertChange, MonitorPass, ObservedLoad, StoredAlert
from sparecast.urls import redact_url

__all__ = [
    "Alert",
    "MonitorReport",
    "monitor",
    "record_actuals",
    "run_items_frame",
    "score_run",
    "period_end",
    "send_webhook",
    "fva_line",
]

log = logging.getLogger("sparecast.monitor")

_RUNS_FOR_ACTUALS = 50  # newest runs whose forecast dates record_actuals covers by default


@dataclass(frozen=True)
class Alert(StoredAlert):
    """An accuracy alert of one group of a model version: a row of the store's ``alerts``
    (``StoredAlert``) and whether this monitoring pass opened it.

    ``value``: the group's rolling ``metric`` at the last scored period; ``expected``: the
    run's backtest expectation of it; ``periods``: degraded periods in a row; ``new``: opened
    by this monitoring pass."""

    new: bool = False

    @classmethod
    def from_stored(cls, stored: StoredAlert, *, new: bool = False) -> Alert:
        """The alert of a stored row."""
        return cls(**{f.name: getattr(stored, f.name) for f in fields(stored)}, new=new)


@dataclass
class MonitorReport:
    """What a monitoring pass found.

    ``degraded``: the model version has open alerts after the pass (the daily flow rolls back
    on it); ``alerts``: those open alerts (``new`` marks the ones this pass opened);
    ``closed``: alerts this pass closed (the group recovered, or its model no longer serves);
    ``scores``: the rolling scores of every served period of the lineage, each period scored
    by the run that served it (period along the lineage, ds, grouping, group, n_items, mae,
    mase, rmsse, rel_bias, mape, the noise columns of ``rolling_scores`` (error_sum,
    actual_sum, std_error_sum, std_actual_sum, std_items, ``<metric>_se``), model_version,
    then ``expected_<metric>`` of each
    watched metric, from the monitored run); ``expected``: the monitored run's backtest
    expectation per group; ``states``: the degradation state of every watched (group, metric)
    at the last period, with its significance score ``z``
    (``sparecast.evaluate.monitoring.streaks``); ``lineage``: the model versions whose
    served periods were scored, oldest first (the monitored one and the refreshes of its
    configuration it follows); ``override_fva``: the forecast value added of the planner
    overrides against this model on the same scored periods (``ForecastStore.override_fva``;
    None when there is no run)."""

    model_version: str | None
    run_id: int | None
    as_of: date
    degraded: bool
    alerts: list[Alert]
    reason: str
    scores: pl.DataFrame
    closed: list[Alert] = field(default_factory=list)
    expected: pl.DataFrame = field(default_factory=pl.DataFrame)
    states: pl.DataFrame = field(default_factory=pl.DataFrame)
    periods_scored: int = 0
    expectation: str = "none"
    webhook: str | None = None
    override_fva: FvaResult | None = None
    lineage: list[str] = field(default_factory=list)

    @property
    def new_alerts(self) -> list[Alert]:
        """The alerts this pass opened."""
        return [a for a in self.alerts if a.new]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the score tables)."""
        return {
            "model_version": self.model_version,
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "degraded": self.degraded,
            "reason": self.reason,
            "periods_scored": self.periods_scored,
            "expectation": self.expectation,
            "alerts": [a.to_dict() for a in self.alerts],
            "closed": [a.to_dict() for a in self.closed],
            "webhook": self.webhook,
            "override_fva": self.override_fva.summary if self.override_fva else None,
        }

    def override_fva_text(self) -> str:
        """One line on the forecast value added of the overrides (for the console and logs)."""
        return fva_line(self.override_fva.summary if self.override_fva else None)


def fva_line(summary: dict[str, Any] | None) -> str:
    """A FVA summary (``sparecast.evaluate.fva.FvaResult.summary``) in one line."""
    if not summary or not summary.get("n_items"):
        return "overrides: no overridden forecast period of this model has actuals yet"
    rmsse = (
        f"; RMSSE {_fmt(summary['rmsse_model'])} -> {_fmt(summary['rmsse_override'])} "
        f"(FVA {_fmt(summary['rmsse_fva'])})"
        if summary.get("rmsse_fva") is not None
        else ""
    )
    return (
        f"overrides: {summary['n_items']} item(s), {summary['n_periods']} period(s) scored: "
        f"MAE model {_fmt(summary['mae_model'])} -> overridden {_fmt(summary['mae_override'])} "
        f"(FVA {_fmt(summary['mae_fva'])}, > 0: the overrides helped){rmsse}; helped "
        f"{summary['share_helped']:.0%} of the items, hurt {summary['share_hurt']:.0%}"
    )


# ------------------------------------------------------------------------------ periods


def period_end(start: date, freq: str) -> date:
    """Last day of the period of ``freq`` (D, W, M) that starts on ``start``."""
    if freq == "D":
        return start
    if freq == "W":
        return start + timedelta(days=6)
    if freq == "M":
        return date(start.year, start.month, calendar.monthrange(start.year, start.month)[1])
    raise StoreError(f"unknown frequency {freq!r}; expected D, W or M")


# ------------------------------------------------------------------------- run time: items


def run_items_frame(
    panel: DemandPanel,
    classification: pl.DataFrame | None,
    selection: pl.DataFrame | None,
    backtest: BacktestResult | None,
    *,
    seasonality: int = 1,
) -> pl.DataFrame:
    """What monitoring needs per item of a run, stored with it (``run_items``): unique_id,
    sb_class, tier, category (from the panel's attributes, when it has them), the MASE and
    RMSSE scales of the whole history (what the served forecast was fitted on) and the
    backtest scores of the method the item is served with (expected_mae, expected_mase,
    expected_rmsse, expected_mape, expected_error_sum, expected_actual_sum; null when the item's
    method was not backtested)."""
    ids = panel.item_ids.astype(str)
    if isinstance(panel, ChunkedPanel):  # computed per chunk on the workers
        if panel.scales is None:
            raise ValueError("the chunked panel has no scales (DaskEngine.with_history)")
        mase, rmsse = panel.scales["mase"], panel.scales["rmsse"]
    else:
        mase = seasonal_naive_scale(panel.y, seasonality, power=1)
        rmsse = seasonal_naive_scale(panel.y, seasonality, power=2)
    frame = pl.DataFrame(
        {"unique_id": ids, "scale_mase": mase, "scale_rmsse": rmsse},
        schema={"unique_id": pl.Utf8, "scale_mase": pl.Float64, "scale_rmsse": pl.Float64},
    )
    if panel.attributes is not None and "category" in panel.attributes.columns:
        frame = frame.with_columns(panel.attributes["category"].cast(pl.Utf8).alias("category"))
    else:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias("category"))
    if classification is not None:
        frame = frame.join(
            classification.select(
                pl.col("unique_id").cast(pl.Utf8),
                pl.col("sb_class").cast(pl.Utf8),
                pl.col("tier").cast(pl.Utf8),
            ),
            on="unique_id",
            how="left",
            maintain_order="left",
        )
    else:
        frame = frame.with_columns(
            pl.lit(None, dtype=pl.Utf8).alias("sb_class"), pl.lit(None, dtype=pl.Utf8).alias("tier")
        )
    expected_cols = {
        "expected_mae": "mae",
        "expected_mase": "mase",
        "expected_rmsse": "rmsse",
        "expected_mape": "mape",
        "expected_error_sum": "error_sum",
        "expected_actual_sum": "actual_sum",
    }
    if selection is not None and backtest is not None:
        served = (
            selection.select(pl.col("unique_id").cast(pl.Utf8), "method")
            .join(backtest.scores, on=["unique_id", "method"], how="left")
            .select(
                "unique_id",
                *[pl.col(src).cast(pl.Float64).alias(dst) for dst, src in expected_cols.items()],
            )
        )
        frame = frame.join(served, on="unique_id", how="left", maintain_order="left")
    else:
        frame = frame.with_columns(
            pl.lit(None, dtype=pl.Float64).alias(c) for c in EXPECTATION_COLUMNS
        )
    return frame.select(
        "unique_id",
        "sb_class",
        "tier",
        "category",
        "scale_mase",
        "scale_rmsse",
        *EXPECTATION_COLUMNS,
    )


# ------------------------------------------------------------------------- actuals


def record_actuals(
    store: ForecastStore,
    panel: DemandPanel,
    as_of: date | None = None,
    *,
    since: date | None = None,
) -> ObservedLoad:
    """Load the panel's demand of the periods that ended by ``as_of`` (default: the panel's
    last period) and start on or after ``since`` into the store's ``observed_demand``, zeros
    included (a stored zero is a known zero). Incremental and idempotent: the same load twice
    writes nothing the second time; a changed value (a correction) replaces the stored one.

    ``since`` defaults to the first forecast date of the newest runs of the panel's frequency
    (the periods monitoring can score); with no such run nothing is loaded."""
    if panel.n_periods == 0 or panel.n_items == 0:
        return ObservedLoad(0, 0, 0)
    starts = [date.fromisoformat(str(d)) for d in panel.dates.astype("datetime64[D]")]
    if as_of is None:
        as_of = period_end(starts[-1], panel.freq)
    if since is None:
        runs = [r for r in store.runs(limit=_RUNS_FOR_ACTUALS) if r.freq == panel.freq]
        if not runs:
            return ObservedLoad(0, 0, 0)
        since = min(r.forecast_dates[0] for r in runs)
    keep = [k for k, d in enumerate(starts) if d >= since and period_end(d, panel.freq) <= as_of]
    if not keep:
        return ObservedLoad(0, 0, 0)
    n = len(keep)
    frame = pl.DataFrame(
        {
            "unique_id": np.repeat(panel.item_ids.astype(str), n),
            "ds": [starts[k] for k in keep] * panel.n_items,
            "y": panel.y[:, keep].astype(np.float64).reshape(-1),
        },
        schema={"unique_id": pl.Utf8, "ds": pl.Date, "y": pl.Float64},
    )
    load = store.record_observed(frame, freq=panel.freq)
    log.info(
        "observed demand %s .. %s of %d items: %d new, %d corrected, %d unchanged",
        starts[keep[0]],
        starts[keep[-1]],
        panel.n_items,
        load.inserted,
        load.updated,
        load.unchanged,
    )
    return load


# ------------------------------------------------------------------------- scoring a run


def _expected_from_summary(accuracy: pl.DataFrame) -> pl.DataFrame:
    """The backtest expectation per group from a run's stored summary (``run_accuracy``): the
    row of the method the summary marks ``chosen`` in each class and tier (class ``all`` is
    the whole run). For runs stored without per-item attributes."""
    if accuracy.height == 0 or "chosen" not in accuracy.columns:
        return pl.DataFrame(schema=EXPECTED_SCHEMA)
    chosen = accuracy.filter(pl.col("chosen"))
    cols = [
        pl.col(c).cast(pl.Float64) if c in chosen.columns else pl.lit(None, dtype=pl.Float64)
        for c in ("mae", "mase", "rmsse", "rel_bias")
    ]
    n_items = (
        pl.col("n_items").cast(pl.Int64) if "n_items" in chosen.columns else pl.lit(None, pl.Int64)
    )
    return chosen.select(
        pl.when((pl.col("grouping") == "class") & (pl.col("group") == "all"))
        .then(pl.lit("all"))
        .otherwise(pl.col("grouping"))
        .alias("grouping"),
        pl.col("group"),
        n_items.alias("n_items"),
        *[c.alias(n) for c, n in zip(cols, ("mae", "mase", "rmsse", "rel_bias"), strict=True)],
        pl.lit(None, dtype=pl.Float64).alias("mape"),
    ).select(list(EXPECTED_SCHEMA))


def _fill(
    target: np.ndarray, frame: pl.DataFrame, value: str, rows: pl.DataFrame, cols: pl.DataFrame
) -> None:
    """Write ``frame[value]`` into ``target`` at the (unique_id, ds) cells it has."""
    if frame.height == 0:
        return
    hits = (
        frame.with_columns(pl.col("ds").cast(pl.Date))
        .join(rows, on="unique_id", how="inner")
        .join(cols, on="ds", how="inner")
    )
    target[hits["_r"].to_numpy(), hits["_c"].to_numpy()] = hits[value].to_numpy()


def _served_matrix(
    store: ForecastStore, ids: list[str], served: list[_Served]
) -> tuple[np.ndarray, np.ndarray, list[date]]:
    """The forecasts ``[items, periods]`` and actuals of the periods the lineage ``served``,
    each period's column from the run that served it (NaN where that run lacks the item)."""
    dates = [d for s in served for d in s.dates]
    fc = np.full((len(ids), len(dates)), np.nan)
    actual = np.full(fc.shape, np.nan)
    rows = pl.DataFrame({"unique_id": ids, "_r": np.arange(len(ids))})
    cols = pl.DataFrame(
        {"ds": dates, "_c": np.arange(len(dates))}, schema={"ds": pl.Date, "_c": pl.Int64}
    )
    for s in served:
        if not s.dates:
            continue
        forecasts = store.run_forecasts(s.run.run_id).select("unique_id", "ds", "forecast")
        _fill(fc, forecasts.filter(pl.col("ds").is_in(s.dates)), "forecast", rows, cols)
        found = store.run_actuals(s.run.run_id).filter(pl.col("ds").is_in(s.dates))
        _fill(actual, found, "y", rows, cols)
    actual[np.isnan(fc)] = np.nan
    return fc, actual, dates


def score_run(
    store: ForecastStore,
    run: RunInfo,
    as_of: date,
    cfg: MonitoringSettings,
    served: list[_Served] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, str]:
    """Rolling scores of the run's forecast periods that ended by ``as_of``, the expectation
    per group and where it came from. With ``served`` (the lineage's runs and the periods each
    served, ``run`` the newest), the periods of the lineage instead, each scored on the
    forecasts of the run that served it, the rolling window spanning the runs; groups, scales
    and expectation are ``run``'s."""
    forecasts = store.run_forecasts(run.run_id)
    ids = forecasts["unique_id"].unique(maintain_order=True).to_list()
    if served is not None:
        fc, actual, due = _served_matrix(store, ids, served)
    else:
        due = [d for d in run.forecast_dates if period_end(d, run.freq) <= as_of]
        h = len(run.forecast_dates)
        fc = forecasts["forecast"].to_numpy().reshape(len(ids), h)[:, : len(due)]
        actual = np.full(fc.shape, np.nan)
        found = store.run_actuals(run.run_id).filter(pl.col("ds").is_in(due))
        rows = pl.DataFrame({"unique_id": ids, "_r": np.arange(len(ids))})
        cols = pl.DataFrame(
            {"ds": due, "_c": np.arange(len(due))}, schema={"ds": pl.Date, "_c": pl.Int64}
        )
        _fill(actual, found, "y", rows, cols)
    attrs = pl.DataFrame({"unique_id": ids}).join(
        store.run_items(run.run_id), on="unique_id", how="left", maintain_order="left"
    )
    if "tier" not in attrs.columns:  # no stored attributes at all
        attrs = attrs.with_columns(
            pl.lit(None, dtype=pl.Utf8).alias(c) for c in ("sb_class", "tier", "category")
        ).with_columns(
            pl.lit(None, dtype=pl.Float64).alias(c)
            for c in ("scale_mase", "scale_rmsse", *EXPECTATION_COLUMNS)
        )
    groups = {
        "all": ids,
        "tier": attrs["tier"].to_list(),
        "class": attrs["sb_class"].to_list(),
        "category": attrs["category"].to_list(),
    }
    regular = attrs["tier"].is_in(list(REGULAR_TIERS)).fill_null(False).to_numpy()
    scores = rolling_scores(
        fc,
        actual,
        due,
        scale_mase=attrs["scale_mase"].fill_null(np.nan).to_numpy(),
        scale_rmsse=attrs["scale_rmsse"].fill_null(np.nan).to_numpy(),
        regular=regular,
        groups=groups,
        window=cfg.window,
    )
    if attrs["expected_mae"].is_not_null().any():
        expected = expected_scores(
            {c: attrs[c].fill_null(np.nan).to_numpy() for c in EXPECTATION_COLUMNS},
            regular=regular,
            groups=groups,
        )
        source = "backtest of each item's served method (run_items)"
    else:
        expected = _expected_from_summary(store.run_accuracy(run.run_id))
        source = "backtest summary, chosen method per class and tier (run_accuracy)"
        if expected.height == 0:
            source = "none: the run has no backtest"
    return scores, expected, source


# ------------------------------------------------------------------------- alerts


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _alert_reason(state: dict[str, Any]) -> str:
    metric, threshold = state["metric"], state["threshold"]
    rule = (
        f"|{_fmt(state['expected'])}| + {threshold:g}"
        if metric == "rel_bias"
        else f"{_fmt(state['expected'])} x (1 + {threshold:g})"
    )
    z = state.get("z")
    noise = "" if z is None else f"; {z:.1f} standard errors of its noise above the expectation"
    return (
        f"{metric} of {state['grouping']} {state['group']} is {_fmt(state['value'])}, worse than "
        f"the backtest expectation: {rule} = {_fmt(state['limit'])} for {state['streak']} "
        f"consecutive period(s) up to {state['ds']} ({state['n_items']} items){noise}"
    )


def _closing(alert: StoredAlert, model_version: str, reason: str) -> AlertChange:
    return AlertChange(
        alert_id=alert.alert_id,
        model_version=model_version,
        grouping=alert.grouping,
        group=alert.group,
        metric=alert.metric,
        value=alert.value,
        expected=alert.expected,
        threshold=alert.threshold,
        periods=alert.periods,
        period_end=alert.period_end,
        reason=f"{reason} (opened: {alert.reason})",
        close=True,
    )


def _plan_changes(
    model_version: str,
    states: pl.DataFrame,
    open_before: list[StoredAlert],
    cfg: MonitoringSettings,
) -> list[AlertChange]:
    """Alerts to open, refresh or close: a degraded (group, metric) opens one (or refreshes its
    open one, which then names ``model_version``); an open alert closes when its group is not
    degraded on its metric in the last period any more, or when its metric, grouping or group
    is no longer watched."""
    by_key = {(a.grouping, a.group, a.metric): a for a in open_before}
    changes: list[AlertChange] = []
    for state in states.iter_rows(named=True):
        key = (state["grouping"], state["group"], state["metric"])
        existing = by_key.get(key)
        if state["alert"]:
            changes.append(
                AlertChange(
                    alert_id=existing.alert_id if existing else None,
                    model_version=model_version,
                    grouping=state["grouping"],
                    group=state["group"],
                    metric=state["metric"],
                    value=state["value"],
                    expected=state["expected"],
                    threshold=state["threshold"],
                    periods=state["streak"],
                    period_end=state["ds"],
                    reason=_alert_reason(state),
                )
            )
        elif existing is not None and state["streak"] == 0:
            changes.append(
                AlertChange(
                    alert_id=existing.alert_id,
                    model_version=model_version,
                    grouping=existing.grouping,
                    group=existing.group,
                    metric=existing.metric,
                    value=state["value"],
                    expected=state["expected"],
                    threshold=state["threshold"],
                    periods=0,
                    period_end=state["ds"],
                    reason=f"recovered: {existing.metric} of {existing.grouping} "
                    f"{existing.group} is {_fmt(state['value'])}, within {_fmt(state['limit'])} "
                    f"on {state['ds']} (opened: {existing.reason})",
                    close=True,
                )
            )
    for alert in open_before:
        if alert.metric not in cfg.watch:
            why = f"monitoring watches {', '.join(cfg.watch)} now, not {alert.metric}"
        elif alert.grouping not in cfg.groupings:
            why = f"monitoring watches the groupings {', '.join(cfg.groupings)} now"
        elif alert.group in cfg.exclude_groups:
            why = f"group {alert.group} is excluded from alerts now"
        else:
            continue
        changes.append(_closing(alert, model_version, f"closed: {why}"))
    return changes


def send_webhook(
    url: str, payload: dict[str, Any], *, timeout_s: float, retries: int, backoff_s: float = 1.0
) -> str:
    """POST ``payload`` as JSON to ``url``; retried ``retries`` more times (``backoff_s``
    apart, doubling) on a connection error or a non-2xx answer. Never raises: returns what
    happened (``sent (HTTP 200)`` or ``failed after N attempt(s): ...``), which is also
    logged."""
    body = json.dumps(payload, default=str).encode()
    where = redact_url(url)
    problem = ""
    for attempt in range(1, retries + 2):
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "sparecast-monitor"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as answer:  # noqa: S310
                status = int(answer.status)
            if 200 <= status < 300:
                log.info("webhook %s: sent (HTTP %d, attempt %d)", where, status, attempt)
                return f"sent (HTTP {status})"
            problem = f"HTTP {status}"
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
        except Exception as exc:  # noqa: BLE001 - a webhook never stops monitoring
            problem = str(getattr(exc, "reason", exc)) or type(exc).__name__
        log.warning("webhook %s: attempt %d failed: %s", where, attempt, problem)
        if attempt <= retries:
            time.sleep(backoff_s * 2 ** (attempt - 1))
    return f"failed after {retries + 1} attempt(s): {problem}"


# ------------------------------------------------------------------------- the step


def monitor(
    settings: Settings,
    data_dir: Path,
    *,
    model_version: str | None = None,
    as_of: date | None = None,
) -> MonitorReport:
    """Score the served forecasts of ``model_version`` (None: the store's latest run) on the
    actuals stored up to ``as_of`` (default: today, UTC), compare them with the backtest
    expectation per tier, class and category on every watched metric, and open or close
    alerts (``[monitoring]``: watch, z, consecutive_periods, min_items, window, groupings,
    exclude_groups, webhook).

    Degraded periods are counted along the served lineage, not per model version: a weekly
    refresh (the champion's configuration retrained on newer data, a new model version) does
    not restart the count; each period is judged on the run that served it, against that
    run's own expectation. A promotion or a rollback (another configuration) starts a new
    count, and the alerts of a model that no longer serves close.

    The store is ``store.url`` or ``data_dir/history.sqlite``. Idempotent: a second pass with
    the same actuals refreshes the open alerts and opens no new one. Raises ``StoreError``
    for a model version the store does not have."""
    cfg = settings.monitoring
    as_of = as_of or datetime.now(UTC).date()
    url = store_url_for(settings, Path(data_dir))
    store = ForecastStore(url)
    try:
        store.migrate()
        return _monitor(store, cfg, model_version, as_of)
    finally:
        store.dispose()


@dataclass
class _Served:
    """A run of the served lineage and the due forecast dates it served."""

    run: RunInfo
    dates: list[date]


def _served_periods(
    store: ForecastStore, run: RunInfo, as_of: date, cfg: MonitoringSettings
) -> list[_Served]:
    """The runs of ``run``'s served lineage (``served_lineage``: ``run`` and the champions of
    its configuration that it replaced by refreshes), each with the forecast dates it served
    that ended by ``as_of``: a run serves from its first forecast date until the next run of
    the lineage starts. Newest runs only, enough to cover ``consecutive_periods`` periods (a
    longer streak is not needed to decide; the streak reported counts the periods covered)."""
    lineage = served_lineage(store.alias_events(), run.model_version)
    runs: list[RunInfo] = []
    for version in lineage[:-1]:
        found = store.run_of_version(version)
        if found is not None and found.freq == run.freq:
            runs.append(found)
    runs.append(run)
    out: list[_Served] = []
    needed = cfg.consecutive_periods + (cfg.window - 1 if cfg.window else 0)
    until: date | None = None
    for r in reversed(runs):
        dates = [
            d
            for d in r.forecast_dates
            if period_end(d, r.freq) <= as_of and (until is None or d < until)
        ]
        out.append(_Served(r, dates))
        until = r.forecast_dates[0] if until is None else min(until, r.forecast_dates[0])
        if sum(len(s.dates) for s in out) >= needed:
            break
    return list(reversed(out))


def _mark(scores: pl.DataFrame, expected: pl.DataFrame, cfg: MonitoringSettings) -> pl.DataFrame:
    """:func:`mark_periods` with the watched metrics, thresholds and exclusions of ``cfg``."""
    return mark_periods(
        scores,
        expected,
        watch=cfg.watch,
        min_items=cfg.min_items,
        groupings=cfg.groupings,
        exclude=cfg.exclude_groups,
        z=cfg.z,
    )


def _monitor(
    store: ForecastStore, cfg: MonitoringSettings, model_version: str | None, as_of: date
) -> MonitorReport:
    now = datetime.now(UTC)
    if model_version is not None:
        run = store.run_of_version(model_version)
        if run is None:
            raise StoreError(
                f"model version {model_version} is not in the forecast store "
                f"{redact_url(store.url)}; `sparecast store runs --data DIR` lists the stored ones"
            )
    else:
        run = store.latest_run()
    if run is None:
        reason = "nothing to monitor: the forecast store holds no run"
        store.record_monitor_pass(MonitorPass(now, None, as_of, 0, False, 0, reason), [])
        return MonitorReport(None, None, as_of, False, [], reason, pl.DataFrame())
    served = _served_periods(store, run, as_of, cfg)
    lineage = [s.run.model_version for s in served]
    parts, marks = [], []
    expected, source = pl.DataFrame(), "none"
    if cfg.window is not None:  # one rolling window over the lineage's served periods
        scores, expected, source = score_run(store, run, as_of, cfg, served)
        by_date = pl.DataFrame(
            {
                "ds": [d for s in served for d in s.dates],
                "model_version": [s.run.model_version for s in served for _ in s.dates],
            },
            schema={"ds": pl.Date, "model_version": pl.Utf8},
        )
        parts.append(scores.join(by_date, on="ds", how="left").drop("period"))
        marks.append(_mark(scores, expected, cfg))
        served = []  # scored already
    for s in served:
        current = s.run.run_id == run.run_id
        if not current and not s.dates:
            continue
        # an earlier run of the lineage is scored up to the last period it served only
        upto = as_of if current else period_end(s.dates[-1], s.run.freq)
        run_scores, run_expected, run_source = score_run(store, s.run, upto, cfg)
        if current:
            expected, source = run_expected, run_source
        if not s.dates:
            continue
        marks.append(_mark(run_scores, run_expected, cfg).filter(pl.col("ds").is_in(s.dates)))
        parts.append(
            run_scores.filter(pl.col("ds").is_in(s.dates)).with_columns(
                pl.lit(s.run.model_version).alias("model_version")
            )
        )
    scores = pl.concat(parts) if parts else pl.DataFrame()
    dates: list[date] = []
    if scores.height:
        dates = scores["ds"].unique().sort().to_list()
        rank = pl.DataFrame({"ds": dates, "_p": range(1, len(dates) + 1)})
        scores = (
            scores.join(rank, on="ds", how="left")
            .with_columns(pl.col("_p").cast(pl.Int32).alias("period"))
            .drop("_p")
            .sort("period", maintain_order=True)
        )
    due = [d for d in run.forecast_dates if period_end(d, run.freq) <= as_of]
    fva = (
        store.override_fva([run.run_id], until=due[-1])
        if due
        else store.override_fva([], until=as_of)
    )
    if fva.summary.get("n_items"):
        log.info("model %s: %s", run.model_version, fva_line(fva.summary))
    periods = len(dates)
    states = streaks(
        pl.concat(marks) if marks else pl.DataFrame(), dates, periods=cfg.consecutive_periods
    )
    open_before = [a for v in lineage for a in store.open_alerts(v)]
    changes = _plan_changes(run.model_version, states, open_before, cfg)
    champion = store.aliases().get(CHAMPION)
    if champion is not None and champion.model_version == run.model_version:
        # alerts of configurations that no longer serve (promoted over, rolled back) close
        for alert in store.open_alerts():
            if alert.model_version not in lineage:
                changes.append(
                    _closing(
                        alert,
                        alert.model_version,
                        f"closed: model {alert.model_version} no longer serves (the champion is "
                        f"{run.model_version}, another configuration or lineage)",
                    )
                )
    closing = {c.alert_id for c in changes if c.close}
    touched = {c.alert_id for c in changes if c.alert_id is not None}
    still_open = [a for a in open_before if a.alert_id not in closing]
    n_new = sum(c.alert_id is None for c in changes)
    n_open = len(still_open) + n_new
    degraded = n_open > 0
    across = f" across {len(lineage)} refresh(es) of its configuration" if len(lineage) > 1 else ""
    if degraded:
        reasons = [c.reason for c in changes if not c.close]
        reasons += [a.reason for a in still_open if a.alert_id not in touched]
        reason = f"model {run.model_version} degraded{across}: " + "; ".join(reasons)
    elif periods == 0:
        reason = (
            f"model {run.model_version}: no forecast period up to {as_of} has actuals yet "
            f"(first forecast date {run.forecast_dates[0]})"
        )
    else:
        watched = ", ".join(f"{m} (threshold {t:g})" for m, t in cfg.watch.items())
        reason = (
            f"model {run.model_version}: {watched} within the backtest expectation in every "
            f"watched group over {periods} period(s){across} up to {dates[-1]!s}"
        )
    stored = store.record_monitor_pass(
        MonitorPass(now, run.model_version, as_of, periods, degraded, n_open, reason), changes
    )
    new_alerts = [
        Alert.from_stored(s, new=True)
        for s, c in zip(stored, changes, strict=True)
        if c.alert_id is None
    ]
    closed = [Alert.from_stored(s) for s, c in zip(stored, changes, strict=True) if c.close]
    for alert in new_alerts:
        log.warning("accuracy alert opened (model %s): %s", alert.model_version, alert.reason)
    for alert in closed:
        log.info("accuracy alert closed (model %s): %s", alert.model_version, alert.reason)
    alerts = [
        Alert.from_stored(a, new=a.alert_id in {n.alert_id for n in new_alerts})
        for a in store.open_alerts(run.model_version)
    ]
    webhook = None
    if cfg.webhook_url and (new_alerts or closed):
        webhook = send_webhook(
            cfg.webhook_url,
            {
                "event": "sparecast.accuracy_alerts",
                "model_version": run.model_version,
                "as_of": as_of.isoformat(),
                "degraded": degraded,
                "reason": reason,
                "opened": [a.to_dict() for a in new_alerts],
                "closed": [a.to_dict() for a in closed],
            },
            timeout_s=cfg.webhook_timeout_s,
            retries=cfg.webhook_retries,
        )
    if scores.height and expected.height:
        scores = scores.join(
            expected.select(
                "grouping",
                "group",
                *[pl.col(m).alias(f"expected_{m}") for m in cfg.watch if m in expected.columns],
            ),
            on=["grouping", "group"],
            how="left",
            maintain_order="left",
        )
    return MonitorReport(
        model_version=run.model_version,
        run_id=run.run_id,
        as_of=as_of,
        degraded=degraded,
        alerts=alerts,
        reason=reason,
        scores=scores,
        closed=closed,
        expected=expected,
        states=states,
        periods_scored=periods,
        expectation=source,
        webhook=webhook,
        override_fva=fva,
        lineage=lineage,
    )
