"""A tiny hand-built store for the monitoring tests: one daily run of 16 items forecasting a
flat 2.0 for 6 days, whose numbers are easy to check by hand.

Items ``i00``..``i15``: category ``pumps`` for i00..i03, ``seals`` for the others; tier
``regular`` for even items, ``intermittent`` for odd ones; class ``smooth`` when
``(i // 2) % 2 == 0``, else ``lumpy``. Every item's MASE and RMSSE scales are 1 (so MASE = MAE
and RMSSE = RMSE) and its backtest expectation is MAE = MASE = RMSSE = 1, MAPE 0.5, no bias.

Healthy actuals alternate 1 and 3 around the forecast of 2 (error 1 every period: exactly the
expectation); a degraded item's actual is 6, three times the forecast (error 4)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

from sparecast.data.panel import DemandPanel
from sparecast.store import ForecastStore, RunMeta

N_ITEMS = 16
H = 6
FIRST_DAY = date(2026, 11, 1)
DATES = [FIRST_DAY + timedelta(days=k) for k in range(H)]
IDS = [f"i{k:02d}" for k in range(N_ITEMS)]
PUMPS = IDS[:4]


def item_attributes() -> pl.DataFrame:
    """The run_items frame of the hand-built run."""
    k = np.arange(N_ITEMS)
    return pl.DataFrame(
        {
            "unique_id": IDS,
            "sb_class": ["smooth" if (i // 2) % 2 == 0 else "lumpy" for i in k],
            "tier": ["regular" if i % 2 == 0 else "intermittent" for i in k],
            "category": ["pumps" if i < 4 else "seals" for i in k],
            "scale_mase": np.ones(N_ITEMS),
            "scale_rmsse": np.ones(N_ITEMS),
            "expected_mae": np.ones(N_ITEMS),
            "expected_mase": np.ones(N_ITEMS),
            "expected_rmsse": np.ones(N_ITEMS),
            "expected_mape": np.full(N_ITEMS, 0.5),
            "expected_error_sum": np.zeros(N_ITEMS),
            "expected_actual_sum": np.full(N_ITEMS, 10.0),
        }
    )


def write_hand_run(store: ForecastStore, *, with_items: bool = True) -> int:
    """Store the hand-built run (forecast 2.0 for every item and day); its run id."""
    store.migrate()
    frame = pl.DataFrame(
        {
            "unique_id": np.repeat(IDS, H).tolist(),
            "ds": DATES * N_ITEMS,
            "forecast": [2.0] * (N_ITEMS * H),
            "method": ["sba"] * (N_ITEMS * H),
        }
    )
    meta = RunMeta("0.1.0", {}, date(2026, 1, 1), date(2026, 10, 31), "D", N_ITEMS, 304, H)
    return store.write_run(meta, frame, items=item_attributes() if with_items else None)


def actuals_panel(degraded: list[str] | tuple[str, ...] = (), days: int = H) -> DemandPanel:
    """The demand of the forecast days: healthy items alternate 1, 3, 1, ...; ``degraded``
    items have 6 every day."""
    y = np.tile(np.array([1.0, 3.0] * H)[:days], (N_ITEMS, 1))
    for uid in degraded:
        y[IDS.index(uid)] = 6.0
    return DemandPanel(
        y.astype(np.float32), np.array(IDS), np.datetime64(FIRST_DAY.isoformat()), "D"
    )
