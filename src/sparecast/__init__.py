"""sparecast: forecasting and inventory planning for intermittent demand."""

from sparecast.data.panel import DemandPanel
from sparecast.errors import SparecastError

__version__ = "0.1.0"

__all__ = ["DemandPanel", "SparecastError", "__version__"]
