"""Prometheus metrics of the service: request latency per route, cache hits, forecast age.

Each app has its own registry (several apps in one process, e.g. tests, do not collide). With
several server processes (``sparecast serve --workers N``) the counters and histograms live in
prometheus-client's multiprocess files and every process's ``/metrics`` answers their sum.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ServiceMetrics", "MonitoringCollector", "LatencyMiddleware", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_CACHE_COUNTER = "sparecast_cache_requests"

# The *_created series double the exposition for nothing a dashboard of this service uses.
disable_created_metrics()


class _DerivedCollector(Collector):
    """Gauges computed at scrape time: cache hit ratio (from the counters) and forecast age."""

    def __init__(self, source: Collector, forecast_created_at: Callable[[], float | None]) -> None:
        self.source = source
        self.forecast_created_at = forecast_created_at

    def collect(self) -> Iterable[Metric]:
        hits = misses = 0.0
        for family in self.source.collect():
            if family.name != _CACHE_COUNTER:
                continue
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                if sample.labels.get("result") == "hit":
                    hits += sample.value
                elif sample.labels.get("result") in ("miss", "error"):
                    misses += sample.value
        ratio = GaugeMetricFamily(
            "sparecast_cache_hit_ratio",
            "cache hits / (hits + misses) of forecast lookups since start (NaN before any)",
        )
        ratio.add_metric([], hits / (hits + misses) if hits + misses else float("nan"))
        yield ratio
        age = GaugeMetricFamily(
            "sparecast_forecast_age_seconds",
            "seconds since the served forecast run was written (NaN when there is none)",
        )
        created = self.forecast_created_at()
        age.add_metric([], time.time() - created if created is not None else float("nan"))
        yield age


class ServiceMetrics:
    """The service's metrics and their exposition."""

    def __init__(
        self,
        forecast_created_at: Callable[[], float | None],
        multiprocess_dir: Path | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "sparecast_http_request_duration_seconds",
            "time from request start to the end of the response, per route template",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.cache = Counter(
            _CACHE_COUNTER,
            "forecast cache lookups by result: hit, miss, error (cache unreachable: a miss)",
            ["result"],
            registry=self.registry,
        )
        self._hit = self.cache.labels("hit")
        self._miss = self.cache.labels("miss")
        self._error = self.cache.labels("error")
        self.multiprocess_dir = multiprocess_dir
        source: Collector = self.registry
        if multiprocess_dir is not None:
            source = MultiProcessCollector(CollectorRegistry(), path=str(multiprocess_dir))
        self._exposed = CollectorRegistry(auto_describe=False)
        self._exposed.register(_Passthrough(source))
        self._exposed.register(_DerivedCollector(source, forecast_created_at))

    def add_collector(self, collector: Collector) -> None:
        """Expose the metrics of another collector too (computed at scrape time)."""
        self._exposed.register(collector)

    def cache_lookups(self, hits: int, misses: int, errors: int = 0) -> None:
        """Count cache lookups of one request."""
        if hits:
            self._hit.inc(hits)
        if misses:
            self._miss.inc(misses)
        if errors:
            self._error.inc(errors)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self._exposed)


class MonitoringCollector(Collector):
    """Accuracy monitoring gauges, from what the service last read of the store:
    ``sparecast_accuracy_alerts_open`` (count), ``sparecast_accuracy_alert_ratio`` (per open
    alert: its metric over the backtest expectation, labelled by model version, grouping, group
    and metric) and ``sparecast_monitoring_last_run_timestamp_seconds``."""

    def __init__(self, snapshot: Callable[[], tuple[list[Any], float | None] | None]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        state = self.snapshot()
        alerts, last_run = state if state is not None else ([], None)
        count = GaugeMetricFamily(
            "sparecast_accuracy_alerts_open", "open accuracy alerts (sparecast monitor)"
        )
        count.add_metric([], float(len(alerts)))
        yield count
        ratio = GaugeMetricFamily(
            "sparecast_accuracy_alert_ratio",
            "metric / backtest expectation of each open accuracy alert (NaN: no expectation)",
            labels=["model_version", "grouping", "group", "metric"],
        )
        for alert in alerts:
            value, expected = alert.value, alert.expected
            ok = value is not None and expected not in (None, 0)
            ratio.add_metric(
                [alert.model_version, alert.grouping, alert.group, alert.metric],
                abs(value) / abs(expected) if ok else float("nan"),
            )
        yield ratio
        last = GaugeMetricFamily(
            "sparecast_monitoring_last_run_timestamp_seconds",
            "Unix time of the last monitoring pass (NaN: monitoring never ran on this store)",
        )
        last.add_metric([], last_run if last_run is not None else float("nan"))
        yield last


class OverrideFvaCollector(Collector):
    """The planner overrides' forecast value added against the served model, from the last
    monitoring pass the service read: ``sparecast_override_fva_mae`` and
    ``sparecast_override_fva_rmsse`` (model minus overridden; > 0: the overrides helped; NaN:
    nothing scored) and ``sparecast_override_fva_items`` (overridden items scored)."""

    def __init__(self, snapshot: Callable[[], dict[str, Any] | None]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        summary = self.snapshot() or {}
        for name, key, what in (
            ("sparecast_override_fva_mae", "mae_fva", "MAE"),
            ("sparecast_override_fva_rmsse", "rmsse_fva", "mean RMSSE"),
        ):
            gauge = GaugeMetricFamily(
                name,
                f"{what} of the served model minus {what} after the planner overrides on the "
                "scored periods (> 0: they helped; NaN: none scored)",
            )
            value = summary.get(key)
            gauge.add_metric([], float(value) if value is not None else float("nan"))
            yield gauge
        items = GaugeMetricFamily(
            "sparecast_override_fva_items", "overridden items scored for the overrides' FVA"
        )
        items.add_metric([], float(summary.get("n_items") or 0))
        yield items


class _Passthrough(Collector):
    def __init__(self, source: Collector) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()


class LatencyMiddleware:
    """Pure ASGI middleware (no per-request task like BaseHTTPMiddleware): observes the latency
    of every HTTP request under its route template (``/forecast/item/{item_id}``), so item ids
    never become label values."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - start
            )
