"""The Accuracy page's monitoring chart: a stored run's rolling scores per forecast period and
group against the actuals that arrived since, computed by the monitor step's own scoring
(``sparecast.pipeline.monitor.score_run``, so the page shows what ``sparecast monitor`` scores),
the run's backtest expectation as a band, and the periods where accuracy alerts fired.

The scores are remembered per (run, stored runs, observed-demand revision, day, window): a page
view computes them once per new actual, not once per request."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import sqlalchemy as sa

from sparecast.config import MonitoringSettings
from sparecast.evaluate.monitoring import MONITOR_GROUPINGS, MONITOR_METRICS
from sparecast.pipeline.monitor import period_end, score_run
from sparecast.service.web.tables import Column, TableSpec
from sparecast.store import ForecastStore
from sparecast.store.models import RunInfo
from sparecast.store.schema import alerts, forecast_runs, monitor_runs, observed_demand

__all__ = [
    "METRIC_LABELS",
    "MonitorScores",
    "MonitorView",
    "monitor_revision",
    "monitor_scores",
    "fired_alerts",
    "monitor_view",
    "monitoring_spec",
    "today",
]

METRIC_LABELS = {
    "mae": "MAE",
    "mase": "MASE",
    "rmsse": "RMSSE",
    "rel_bias": "Bias (relative)",
    "mape": "MAPE (regular items only)",
}
_PCT = ("rel_bias", "mape")


def monitoring_spec(metric: str) -> TableSpec:
    """The scores table of the page for the chosen ``metric`` (its expectation and alert limit
    in the metric's format). The spec's ``filters`` are the chart's query parameters, so that
    the table's sort, page and export links keep the chosen version, grouping, group, metric."""
    kind = "pct" if metric in _PCT else "num3"
    return TableSpec(
        "monitoring",
        (
            Column("model_version", "Model version"),
            Column("period", "Period", "int"),
            Column("ds", "Period start"),
            Column("grouping", "By"),
            Column("group", "Group"),
            Column("n_items", "Items scored", "int"),
            Column("mae", "MAE", "num3"),
            Column("mase", "MASE", "num3"),
            Column("rmsse", "RMSSE", "num3"),
            Column("rel_bias", "Bias (relative)", "pct"),
            Column("mape", "MAPE (regular only)", "pct"),
            Column("expected", f"Expected {METRIC_LABELS[metric]}", kind),
            Column("band_low", "Band low", kind),
            Column("band_high", "Alert limit", kind),
            Column("alert", "Alert fired"),
        ),
        default_sort="period",
        filters=("table", "version", "by", "group", "metric"),
        tiebreak="period",
    )


@dataclass(frozen=True)
class MonitorScores:
    """What ``score_run`` gives for a run on a day: the rolling scores per period and group
    (``sparecast.evaluate.monitoring.rolling_scores``), the expectation per group and where it
    came from."""

    run: RunInfo
    as_of: date
    scores: pl.DataFrame
    expected: pl.DataFrame
    source: str


def monitor_revision(store: ForecastStore, freq: str) -> tuple[Any, ...]:
    """What the scores of a run depend on besides the run itself: the stored runs (their
    actuals count too: count and newest id) and the observed demand of ``freq`` (rows and the
    newest load: a correction re-stamps its row)."""
    with store.engine.connect() as conn:
        runs = conn.execute(sa.select(sa.func.count(), sa.func.max(forecast_runs.c.id))).one()
        observed = conn.execute(
            sa.select(sa.func.count(), sa.func.max(observed_demand.c.loaded_at)).where(
                observed_demand.c.freq == freq
            )
        ).one()
    return (*tuple(runs), *tuple(observed))


def monitor_scores(
    store: ForecastStore, run: RunInfo, as_of: date, cfg: MonitoringSettings
) -> MonitorScores:
    """The monitor step's scores of ``run`` on the actuals stored for the periods that ended by
    ``as_of`` (blocking; the page remembers them per :func:`monitor_revision`)."""
    scores, expected, source = score_run(store, run, as_of, cfg)
    return MonitorScores(run, as_of, scores, expected, source)


def fired_alerts(store: ForecastStore, model_version: str) -> list[dict[str, Any]]:
    """The alerts of ``model_version`` (oldest first), each with ``as_of``: the day the
    monitoring pass that opened it scored up to (its ``monitor_runs`` row has the alert's
    ``opened_at`` as ``ran_at``), None when that pass is not recorded."""
    query = (
        sa.select(
            alerts.c.id,
            alerts.c.grouping,
            alerts.c.group_name,
            alerts.c.metric,
            alerts.c.status,
            alerts.c.opened_at,
            alerts.c.period_end,
            alerts.c.reason,
            monitor_runs.c.as_of,
        )
        .select_from(alerts.outerjoin(monitor_runs, monitor_runs.c.ran_at == alerts.c.opened_at))
        .where(alerts.c.model_version == model_version)
        .order_by(alerts.c.id)
    )
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(query).all()
    except sa.exc.SQLAlchemyError:  # a store without monitoring's tables: no alert to mark
        return []
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        m = dict(r._mapping)
        out.setdefault(int(m["id"]), m)
    return list(out.values())


def _day(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _fired_ds(alert: dict[str, Any], dates: list[date], freq: str) -> date | None:
    """The scored period an alert fired at: the last period that had ended by the opening
    pass's ``as_of``; without a recorded pass, its stored ``period_end`` (the period of its
    last refresh) or the last period ended by the day it opened."""
    as_of = _day(alert.get("as_of"))
    if as_of is None:
        stored = _day(alert.get("period_end"))
        if stored is not None and stored in dates:
            return stored
        as_of = _day(alert.get("opened_at"))
    ended = [d for d in dates if as_of is not None and period_end(d, freq) <= as_of]
    return ended[-1] if ended else None


@dataclass
class MonitorView:
    """The chart, table and form of the page's monitoring section."""

    versions: list[str]
    version: str | None
    served: str | None
    grouping: str
    group: str
    metric: str
    groups: list[str] = field(default_factory=list)
    frame: pl.DataFrame = field(default_factory=pl.DataFrame)
    chart: dict[str, Any] = field(default_factory=dict)
    empty: str = ""
    note: str = ""
    source: str = ""
    threshold: float = 0.0
    watched_metric: str = ""


def _band(metric: str, expected: float | None, threshold: float) -> tuple[Any, Any]:
    """Low and high edge of the expectation band: expected .. expected x (1 + threshold),
    the high edge being the alert limit; relative bias: +-(|expected| + threshold)."""
    if expected is None:
        return None, None
    if metric == "rel_bias":
        limit = abs(expected) + threshold
        return -limit, limit
    return expected, expected * (1.0 + threshold)


def monitor_view(
    got: MonitorScores | None,
    runs: list[RunInfo],
    fired: list[dict[str, Any]],
    *,
    served: str | None,
    params: dict[str, str],
    cfg: MonitoringSettings,
) -> MonitorView:
    """The section for the request's ``version``, ``by`` (grouping), ``group`` and ``metric``
    (defaults: the served version, all items, MASE) from the run's scores ``got``, the stored
    ``runs`` and the run's alerts ``fired`` (:func:`fired_alerts`)."""
    metric = params.get("metric", "mase")
    metric = metric if metric in MONITOR_METRICS else "mase"
    grouping = params.get("by", "all")
    grouping = grouping if grouping in MONITOR_GROUPINGS else "all"
    view = MonitorView(
        versions=[r.model_version for r in runs],
        version=got.run.model_version if got else None,
        served=served,
        grouping=grouping,
        group="all",
        metric=metric,
        threshold=cfg.threshold_of(metric) or cfg.threshold,
        watched_metric=metric if metric in cfg.watch else cfg.metric,
    )
    asked = params.get("version")
    if got is None:
        view.empty = (
            "The forecast store holds no run yet: `sparecast run --output DIR` (or the daily "
            "flow, `sparecast pipeline run daily`) stores one."
        )
        return view
    if asked and asked != got.run.model_version:
        view.note = f"Model version {asked} is not in the store; showing {got.run.model_version}."
    view.source = got.source
    scores = got.scores
    if scores.height == 0:
        view.empty = (
            f"No forecast period of model version {got.run.model_version} has actuals yet "
            f"(first forecast date {got.run.forecast_dates[0]}, scored up to {got.as_of}). "
            "Actuals arrive with the daily flow, `sparecast pipeline run daily`, which loads "
            "them and runs monitoring; `sparecast monitor` scores the actuals already stored."
        )
        return view
    mine = scores.filter(pl.col("grouping") == grouping)
    view.groups = sorted(mine["group"].unique().to_list())
    asked_group = params.get("group", "")
    view.group = asked_group if asked_group in view.groups else view.groups[0]
    series = mine.filter(pl.col("group") == view.group).sort("period")
    exp_rows = got.expected.filter(
        (pl.col("grouping") == grouping) & (pl.col("group") == view.group)
    )
    expected = exp_rows[metric][0] if exp_rows.height else None
    low, high = _band(metric, expected, view.threshold)
    dates = series["ds"].to_list()
    marks: dict[date, list[str]] = {}
    for a in fired:
        if (a["grouping"], a["group_name"], a["metric"]) != (grouping, view.group, metric):
            continue
        ds = _fired_ds(a, dates, got.run.freq)
        if ds is not None:
            opened = _day(a["opened_at"])
            marks.setdefault(ds, []).append(f"#{a['id']} opened {opened} ({a['status']})")
    view.frame = series.select(
        pl.lit(got.run.model_version).alias("model_version"),
        "period",
        pl.col("ds").cast(pl.String),
        "grouping",
        "group",
        "n_items",
        *MONITOR_METRICS,
        pl.lit(expected, pl.Float64).alias("expected"),
        pl.lit(low, pl.Float64).alias("band_low"),
        pl.lit(high, pl.Float64).alias("band_high"),
        pl.Series("alert", ["; ".join(marks.get(d, [])) or None for d in dates], pl.String),
    )
    values = series[metric].to_list()
    view.chart = {
        "x": [d.isoformat() for d in dates],
        "value": values,
        "expected": [expected] * len(dates),
        "low": [low] * len(dates),
        "high": [high] * len(dates),
        "alerts": [v if d in marks else None for d, v in zip(dates, values, strict=True)],
        "alert_labels": ["; ".join(marks.get(d, [])) for d in dates],
        "label": METRIC_LABELS[metric],
        "pct": metric in _PCT,
    }
    if expected is None:
        view.note = (
            f"The run has no backtest expectation of {METRIC_LABELS[metric]} for "
            f"{grouping} {view.group}: no band."
        )
    return view


def today() -> date:
    """The day the page scores up to (UTC, as ``sparecast monitor`` without ``--as-of``)."""
    return datetime.now(UTC).date()
