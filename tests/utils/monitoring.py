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
from pathlib import Path

import numpy as np
import polars as pl

from sparecast.data.panel import DemandPanel
from sparecast.inventory.overrides import Override
from sparecast.store import ForecastStore, RunMeta, default_store_url
from utils.runs import make_meta

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


# ---- planner overrides: one that helped, one that hurt (the FVA monitoring reports)

FVA_H = 4
# overrides are recorded today and apply from today's date on: the forecasts start later
FVA_F0 = date.today() + timedelta(days=30)
FVA_DAYS = [FVA_F0 + timedelta(days=k) for k in range(FVA_H)]
FVA_ITEMS = ("a", "b", "c")


def write_override_run(data_dir: Path) -> None:
    """A daily run forecasting 2.0 for a, b, c over FVA_F0..FVA_F0+3; a's level override 3 (exact:
    its demand is 3), b's multiplier 2 (forecast 4 on a demand of 2), c none. The demand of
    the 4 days before FVA_F0 gives the RMSSE scales: a 0, 2, 0, 2 (scale 4), b 2 throughout
    (scale 0: no RMSSE)."""
    store = ForecastStore(default_store_url(data_dir))
    try:
        store.migrate()
        frame = pl.DataFrame(
            {
                "unique_id": [i for i in FVA_ITEMS for _ in FVA_DAYS],
                "ds": FVA_DAYS * len(FVA_ITEMS),
                "forecast": [2.0] * (len(FVA_ITEMS) * FVA_H),
                "method": ["sba"] * (len(FVA_ITEMS) * FVA_H),
            }
        )
        store.write_run(
            make_meta(FVA_H, len(FVA_ITEMS), data_end=FVA_F0 - timedelta(days=1)), frame
        )
        later = date.today() + timedelta(days=400)
        store.set_override(
            Override("a", "alice", "campaign", later, forecast_level=3.0), today=date.today()
        )
        store.set_override(
            Override("b", "bob", "gut feeling", later, forecast_multiplier=2.0),
            today=date.today(),
        )
        before = [FVA_F0 - timedelta(days=k) for k in range(4, 0, -1)]
        observed = {
            "a": [0.0, 2.0, 0.0, 2.0] + [3.0] * FVA_H,
            "b": [2.0] * (4 + FVA_H),
            "c": [1.0] * (4 + FVA_H),
        }
        store.record_observed(
            pl.DataFrame(
                {
                    "unique_id": [i for i in FVA_ITEMS for _ in range(4 + FVA_H)],
                    "ds": (before + FVA_DAYS) * len(FVA_ITEMS),
                    "y": [v for i in FVA_ITEMS for v in observed[i]],
                }
            ),
            freq="D",
        )
    finally:
        store.dispose()
