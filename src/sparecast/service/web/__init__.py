"""The planner's web app: server-rendered pages under ``/app`` (Jinja2 templates, uPlot charts
shipped as a static file, tables sorted, filtered and paginated on the server, CSV/Excel export).
"""

from __future__ import annotations

from sparecast.service.web.pages import STATIC_DIR, router

__all__ = ["router", "STATIC_DIR"]
