"""The HTTP API: forecasts, inventory policy, reports, health, retraining and metrics."""

from sparecast.service.app import create_app

__all__ = ["create_app"]
