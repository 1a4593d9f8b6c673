"""Data layer: canonical tables and validation, sources (SQL, files), ERP mapping and
incremental extraction, the demo ERP generator and the DemandPanel."""

from sparecast.data.panel import DemandPanel

__all__ = ["DemandPanel"]
