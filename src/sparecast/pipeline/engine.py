"""Where the forecasting core's heavy steps run: ``LocalEngine`` in this process (the default),
``sparecast.pipeline.distributed.DaskEngine`` per chunk of items on a Dask cluster. The core
(``sparecast.pipeline.core.run_core``) calls the same steps on either, and the plan
(``sparecast.inventory.plan.compute_plan``) their ``plan_items``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import polars as pl

from sparecast.classify import TierThresholds, classify
from sparecast.core import forecast_arrays
from sparecast.data.panel import DemandPanel
from sparecast.errors import MethodError
from sparecast.evaluate.backtest import BacktestResult, backtest
from sparecast.inventory.plan import ItemPlan, plan_items
from sparecast.methods import shared_levels
from sparecast.methods.quantiles import forecast_quantiles

__all__ = ["Engine", "LocalEngine", "LOCAL"]


class Engine(Protocol):
    """The core's heavy steps over a whole panel (rows of every result in panel order)."""

    def classify(self, panel: DemandPanel, thresholds: TierThresholds | None) -> pl.DataFrame:
        """:func:`sparecast.classify.classify` of ``panel``."""
        ...

    def backtest(self, panel: DemandPanel, **kwargs: Any) -> BacktestResult:
        """:func:`sparecast.evaluate.backtest.backtest` of ``panel`` with ``kwargs``."""
        ...

    def forecast_all(
        self,
        panel: DemandPanel,
        h: int,
        names: list[str],
        params: dict[str, dict[str, Any]],
        step: Callable[[str], None],
    ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Point forecasts ``[items, h]`` of every method of ``names`` (in that order) and the
        methods that cannot forecast this panel (name -> why); ``step(name)`` after each."""
        ...

    def forecast_quantiles(
        self, panel: DemandPanel, point: np.ndarray, levels: list[float]
    ) -> np.ndarray:
        """:func:`sparecast.methods.quantiles.forecast_quantiles` of ``panel.y`` around
        ``point[items, h]``: ``float64[items, h, len(levels)]``."""
        ...

    def plan_items(self, *args: Any, **kwargs: Any) -> ItemPlan:
        """:func:`sparecast.inventory.plan.plan_items` (the plan's distributions and
        policies; ``compute_plan(..., planner=engine.plan_items)``)."""
        ...


class LocalEngine:
    """Every step in this process, on the whole panel (today's single-process run)."""

    def classify(self, panel: DemandPanel, thresholds: TierThresholds | None) -> pl.DataFrame:
        return classify(panel, thresholds=thresholds)

    def backtest(self, panel: DemandPanel, **kwargs: Any) -> BacktestResult:
        return backtest(panel, **kwargs)

    def forecast_all(
        self,
        panel: DemandPanel,
        h: int,
        names: list[str],
        params: dict[str, dict[str, Any]],
        step: Callable[[str], None],
    ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        # a method that cannot run on this panel (e.g. LightGBM on a single period) is left
        # out, and the caller serves its items the fallback
        values: dict[str, np.ndarray] = {}
        failed: dict[str, str] = {}
        # one block around the loop: the classical methods share their levels (e.g. SBA
        # reuses Croston's, robust its members')
        with shared_levels(panel.y, names):
            for name in names:
                try:
                    values.update(forecast_arrays(panel, h, [name], params, progress=step))
                except MethodError as exc:
                    failed[name] = str(exc)
        return values, failed

    def forecast_quantiles(
        self, panel: DemandPanel, point: np.ndarray, levels: list[float]
    ) -> np.ndarray:
        return forecast_quantiles(panel.y, point, levels)

    def plan_items(self, *args: Any, **kwargs: Any) -> ItemPlan:
        return plan_items(*args, **kwargs)


LOCAL = LocalEngine()
"""The default engine: no cluster."""
