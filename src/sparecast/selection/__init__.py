"""Choosing methods: the hybrid router (tier rules or backtest-based choice per class, tier or
item, with a fallback and top-k combinations) and the choice from a backtest's scores.

Importing this package registers the router as the method ``"hybrid"``.
"""

from sparecast.selection.choose import BALANCED, select
from sparecast.selection.combinations import with_combinations
from sparecast.selection.router import (
    DEFAULT_CANDIDATES,
    DEFAULT_METRIC,
    DEFAULT_RULES,
    ROUTER_METRICS,
    ROUTER_MODES,
    HybridRouter,
    hybrid_forecast,
)

__all__ = [
    "BALANCED",
    "DEFAULT_CANDIDATES",
    "DEFAULT_METRIC",
    "DEFAULT_RULES",
    "ROUTER_METRICS",
    "ROUTER_MODES",
    "HybridRouter",
    "hybrid_forecast",
    "select",
    "with_combinations",
]
