"""One router per resource."""

from sparecast.service.routes import forecast, health, items, jobs, metrics, reports

__all__ = ["forecast", "health", "items", "jobs", "metrics", "reports"]
