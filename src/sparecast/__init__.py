"""sparecast: forecasting and inventory planning for intermittent demand.

The public API: ``DemandPanel`` (the items x periods demand matrix), ``forecast`` (every method
over a panel), ``backtest`` (rolling-origin evaluation), ``HybridRouter`` (a method per item),
``classify`` (ADI/CV² classes and frequency tiers), ``lead_time_stats`` (lead times, open orders and
supplier performance from purchase orders), ``plan`` (the inventory policy of a panel and an
items table, a ``Plan``), ``evaluate_plan`` (the decision backtest: the plan's policy against
the textbook and an empirical rule, replayed on the history), ``simulate_policy`` (one
inventory simulation), ``load_settings`` and the error types.
"""

from sparecast._version import __version__
from sparecast.classify import TierThresholds, classify
from sparecast.config import Settings, load_settings
from sparecast.core import DEFAULT_HORIZONS, forecast, horizon_periods
from sparecast.data.panel import DemandPanel
from sparecast.errors import (
    ConfigError,
    DataValidationError,
    MethodError,
    SourceError,
    SparecastError,
)
from sparecast.evaluate.backtest import BacktestResult, backtest
from sparecast.inventory.decisions import DecisionBacktest, evaluate_plan
from sparecast.inventory.leadtime import LeadTimeResult, lead_time_stats
from sparecast.inventory.overrides import Override
from sparecast.inventory.planning import Plan, plan
from sparecast.inventory.simulate import SimulationResult, simulate_policy
from sparecast.methods import METHODS
from sparecast.selection import HybridRouter  # importing selection registers "hybrid"

__all__ = [
    "DemandPanel",
    "forecast",
    "horizon_periods",
    "DEFAULT_HORIZONS",
    "backtest",
    "BacktestResult",
    "HybridRouter",
    "classify",
    "TierThresholds",
    "lead_time_stats",
    "LeadTimeResult",
    "plan",
    "Plan",
    "Override",
    "evaluate_plan",
    "DecisionBacktest",
    "simulate_policy",
    "SimulationResult",
    "Settings",
    "load_settings",
    "METHODS",
    "SparecastError",
    "DataValidationError",
    "SourceError",
    "ConfigError",
    "MethodError",
    "__version__",
]
