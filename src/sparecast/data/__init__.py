"""Data layer: canonical tables, validation, sources (SQL, files), the demo ERP and the DemandPanel."""

from sparecast.data.panel import DemandPanel

__all__ = ["DemandPanel"]
