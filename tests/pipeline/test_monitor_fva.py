"""The monitor step reports the forecast value added of the planner overrides against the
model on the periods it scores: an override that helped, one that hurt, computed by hand; the
same figures in ``sparecast monitor``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner
from utils.monitoring import FVA_DAYS, write_override_run

from sparecast.cli import app
from sparecast.config import Settings, load_settings
from sparecast.pipeline.monitor import monitor

DAYS = FVA_DAYS


def _settings() -> Settings:
    return load_settings(monitoring={"min_items": 1})


def test_monitor_reports_the_override_fva(tmp_path: Path) -> None:
    write_override_run(tmp_path)
    # before any forecast period ended: nothing scored, no FVA
    report = monitor(_settings(), tmp_path, as_of=DAYS[0] - timedelta(days=1))
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
