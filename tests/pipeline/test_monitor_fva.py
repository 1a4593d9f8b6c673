"""The monitor step reports the forecast value added of the planner overrides against the
model on the periods it scores: an override that helped, one that hurt, computed by hand; the
same figures in ``sparecast monitor``."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner
from utils.runs import make_meta

from sparecast.cli import app
from sparecast.config import Settings, load_settings
from sparecast.inventory.overrides import Override
from sparecast.pipeline.monitor import monitor
from sparecast.store import ForecastStore, default_store_url

H = 4
# overrides are recorded today and apply from today's date on: the forecasts start later
F0 = date.today() + timedelta(days=30)
DAYS = [F0 + timedelta(days=k) for k in range(H)]
ITEMS = ("a", "b", "c")


def _store_with_overrides(data_dir: Path) -> None:
    """A daily run forecasting 2.0 for a, b, c over F0..F0+3; a's level override 3 (exact:
    its demand is 3), b's multiplier 2 (forecast 4 on a demand of 2), c none. The demand of
    the 4 days before F0 gives the RMSSE scales: a 0, 2, 0, 2 (scale 4), b 2 throughout
    (scale 0: no RMSSE)."""
    store = ForecastStore(default_store_url(data_dir))
    try:
        store.migrate()
        frame = pl.DataFrame(
            {
                "unique_id": [i for i in ITEMS for _ in DAYS],
                "ds": DAYS * len(ITEMS),
                "forecast": [2.0] * (len(ITEMS) * H),
                "method": ["sba"] * (len(ITEMS) * H),
            }
        )
        store.write_run(make_meta(H, len(ITEMS), data_end=F0 - timedelta(days=1)), frame)
        later = date.today() + timedelta(days=400)
        store.set_override(
            Override("a", "alice", "campaign", later, forecast_level=3.0), today=date.today()
        )
        store.set_override(
            Override("b", "bob", "gut feeling", later, forecast_multiplier=2.0),
            today=date.today(),
        )
        before = [F0 - timedelta(days=k) for k in range(4, 0, -1)]
        observed = {
            "a": [0.0, 2.0, 0.0, 2.0] + [3.0] * H,
            "b": [2.0] * (4 + H),
            "c": [1.0] * (4 + H),
        }
        store.record_observed(
            pl.DataFrame(
                {
                    "unique_id": [i for i in ITEMS for _ in range(4 + H)],
                    "ds": (before + DAYS) * len(ITEMS),
                    "y": [v for i in ITEMS for v in observed[i]],
                }
            ),
            freq="D",
        )
    finally:
        store.dispose()


def _settings() -> Settings:
    return load_settings(monitoring={"min_items": 1})


def test_monitor_reports_the_override_fva(tmp_path: Path) -> None:
    _store_with_overrides(tmp_path)
    # before any forecast period ended: nothing scored, no FVA
    report = monitor(_settings(), tmp_path, as_of=F0 - timedelta(days=1))
    assert report.override_fva is not None and report.override_fva.summary["n_items"] == 0
    assert "no overridden forecast period" in report.override_fva_text()

    # two days ended: a's override helped (MAE 1 -> 0), b's hurt (0 -> 2)
    report = monitor(_settings(), tmp_path, as_of=DAYS[1])
    assert report.periods_scored == 2
    fva = report.override_fva
    assert fva is not None
    a, b = fva.per_item.rows(named=True)
    assert (a["unique_id"], a["override"], a["n_periods"]) == ("a", "forecast_level", 2)
    assert (a["mae_model"], a["mae_override"], a["mae_fva"], a["helped"]) == (1.0, 0.0, 1.0, True)
    # RMSE model 1, override 0, scale 4: RMSSE 0.5 -> 0
    assert a["rmsse_model"] == pytest.approx(0.5) and a["rmsse_override"] == 0.0
    assert (b["unique_id"], b["override"]) == ("b", "forecast_multiplier")
    assert (b["mae_model"], b["mae_override"], b["mae_fva"], b["helped"]) == (0.0, 2.0, -2.0, False)
    assert b["rmsse_model"] is None  # b's demand never changed: no scale
    s = fva.summary
    assert (s["n_items"], s["n_periods"]) == (2, 4)  # only the 2 days scored, not the 4 known
    assert (s["mae_model"], s["mae_override"]) == (0.5, 1.0)
    assert s["mae_fva"] == pytest.approx(-0.5)
    assert s["rmsse_fva"] == pytest.approx(0.5)
    assert (s["share_helped"], s["share_hurt"]) == (0.5, 0.5)
    assert report.to_dict()["override_fva"] == s
    text = report.override_fva_text()
    assert "overrides: 2 item(s), 4 period(s) scored: MAE model 0.5 -> overridden 1" in text
    assert "(FVA -0.5, > 0: the overrides helped)" in text and "helped 50% of the items" in text

    result = CliRunner().invoke(
        app, ["monitor", "--data", str(tmp_path), "--as-of", DAYS[-1].isoformat()]
    )
    assert result.exit_code == 0, result.output
    # all 4 days: a helped 4 x 1, b hurt 4 x 2
    assert "overrides: 2 item(s), 8 period(s) scored: MAE model 0.5 -> overridden 1" in (
        " ".join(result.output.split())
    )
