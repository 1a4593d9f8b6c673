"""The plan applies the store's active planner overrides: do-not-order stops an order, a
forecast multiplier scales the forecast the plan uses, the report names them."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from sparecast.cli import app
from sparecast.data.sources import write_tables
from sparecast.inventory.overrides import Override
from sparecast.store import ForecastStore, default_store_url

runner = CliRunner()
END = date(2026, 10, 31)


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory, erp_tables: dict) -> Path:
    out = tmp_path_factory.mktemp("plan_overrides")
    write_tables(erp_tables, f"sqlite:///{out / 'erp.sqlite'}")
    (out / "sparecast.toml").write_text(f'[data]\ntoday = "{END.isoformat()}"\n')
    result = runner.invoke(
        app,
        ["plan", "-s", str(out / "erp.sqlite"), "-o", str(out), "-c", str(out / "sparecast.toml")]
        + ["--methods", "ma,sba", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    return out


def test_plan_applies_do_not_order_and_a_forecast_multiplier(planned: Path, tmp_path: Path) -> None:
    out = tmp_path / "dir"
    shutil.copytree(planned, out)
    before = pl.read_parquet(out / "policy.parquet")
    assert "override" not in before.columns  # no overrides: the documented columns only
    ordering = before.filter(pl.col("suggested_order") > 0)["unique_id"].to_list()
    stopped, scaled = ordering[0], before.filter(pl.col("forecast_per_period") > 0)["unique_id"][-1]
    store = ForecastStore(default_store_url(out))
    expires = date(2099, 1, 1)
    store.set_override(
        Override(stopped, "alice", "being phased out by the OEM", expires, do_not_order=True)
    )
    store.set_override(
        Override(scaled, "bob", "fleet doubles in January", expires, forecast_multiplier=2.0)
    )
    store.dispose()
    result = runner.invoke(
        app,
        ["plan", "-s", str(out / "erp.sqlite"), "-o", str(out), "--reuse-forecasts"]
        + ["-c", str(out / "sparecast.toml"), "--quiet"],
    )
    assert result.exit_code == 0, result.output
    after = pl.read_parquet(out / "policy.parquet")
    row = after.filter(pl.col("unique_id") == stopped).row(0, named=True)
    assert row["suggested_order"] == 0.0 and row["order_value"] == 0.0
    assert row["suggested_order_model"] > 0
    assert (row["override"], row["override_by"]) == ("do_not_order", "alice")
    old = before.filter(pl.col("unique_id") == scaled).row(0, named=True)
    new = after.filter(pl.col("unique_id") == scaled).row(0, named=True)
    assert new["forecast_per_period"] == pytest.approx(2 * old["forecast_per_period"])
    assert new["override"] == "forecast_multiplier"
    others = after.filter(~pl.col("unique_id").is_in([stopped, scaled]))
    assert others["override"].null_count() == others.height
    report = (out / "inventory_report.html").read_text()
    assert "2 item(s) with a planner override" in report and "being phased out by the OEM" in report
    # the forecasts file keeps the model's forecasts (overrides are applied where used)
    assert (
        pl.read_parquet(out / "forecasts.parquet").columns
        == pl.read_parquet(planned / "forecasts.parquet").columns
    )
