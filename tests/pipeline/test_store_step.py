"""The pipeline writes every run into the forecast history store: `sparecast demo` into
DIR/history.sqlite, `store.url` into PostgreSQL; run.json records the run id and model version."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from utils.runs import demo_output

from sparecast import __version__
from sparecast.config import load_settings
from sparecast.data.panel import DemandPanel
from sparecast.pipeline.steps import run_pipeline
from sparecast.pipeline.store_step import (
    StoredRun,
    actuals_frame,
    run_meta,
    store_run,
    store_url_for,
)
from sparecast.store import ForecastStore, default_store_url

SMALL = ["--items", "120", "--days", "200", "--seed", "4", "--quiet"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_output(tmp_path_factory, *SMALL)


def test_demo_leaves_its_run_in_history_sqlite(demo_dir: Path) -> None:
    run = json.loads((demo_dir / "run.json").read_text())
    url = default_store_url(demo_dir)
    assert run["store"]["url"] == url and run["store"]["run_id"] == 1
    store = ForecastStore(url)
    info = store.latest_run()
    assert info is not None and info.run_id == 1
    assert info.model_version == run["store"]["model_version"]
    assert info.n_items == 120 and info.horizon == 28 and info.freq == "D"
    assert str(info.data_end) == run["data_window"]["end"]
    stored_config = {**info.config, "store": dict(info.config["store"])}
    token = stored_config["store"].pop("staging_token")  # the commit's token (recovery uses it)
    assert token and stored_config == run["config"]

    fc = pl.read_parquet(demo_dir / "forecasts.parquet")
    assert store.known_items() == sorted(fc["unique_id"].unique().to_list())
    some = fc["unique_id"].unique().sort().to_list()[::17]
    got = store.items_forecasts(some)
    for uid in some:
        want = fc.filter(pl.col("unique_id") == uid).sort("ds")
        assert got[uid].forecast == want["forecast"].to_list()
        assert got[uid].dates == want["ds"].to_list()
        assert got[uid].method == want["method"][0]

    summary = pl.read_parquet(demo_dir / "backtest_summary.parquet")
    accuracy = store.run_accuracy()
    assert accuracy.height == summary.height
    assert accuracy["method"].to_list() == summary["method"].to_list()
    assert accuracy["chosen"].to_list() == summary["chosen"].to_list()
    np.testing.assert_allclose(
        accuracy["rmsse"].to_numpy(), summary["rmsse"].cast(pl.Float64).to_numpy(), rtol=0, atol=0
    )

    # actuals: the last 28 days of demand, as the ERP recorded them (extracted table)
    demand = pl.read_parquet(next((demo_dir / "extract").glob("demand*.parquet")))
    uid = some[0]
    stored = store.actuals(uid)
    assert stored.height == 28 and stored["ds"].max() == info.data_end
    daily = (
        demand.filter(pl.col("item_id") == uid)
        .group_by("date")
        .agg(pl.col("quantity").sum())
        .filter(pl.col("date") >= stored["ds"].min(), pl.col("date") <= stored["ds"].max())
    )
    assert stored["y"].sum() == pytest.approx(daily["quantity"].sum())
    store.dispose()


def test_a_second_run_adds_to_the_history(demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    out.mkdir()
    (out / "history.sqlite").write_bytes((demo_dir / "history.sqlite").read_bytes())
    settings = load_settings(horizon=14)
    outcome = run_pipeline(str(demo_dir / "erp.sqlite"), out, settings)
    assert outcome.paths["store"] == default_store_url(out)
    run = json.loads((out / "run.json").read_text())
    assert run["store"]["run_id"] == 2
    store = ForecastStore(default_store_url(out))
    assert [r.run_id for r in store.runs()] == [2, 1]
    latest = store.latest_run()
    assert latest is not None and latest.horizon == 14
    item = store.known_items()[0]
    assert len(store.item_forecast(item).forecast) == 14  # type: ignore[union-attr]
    assert len(store.item_forecast(item, run_id=1).forecast) == 28  # type: ignore[union-attr]
    store.dispose()


def test_write_runs_off_and_backtest_only_leave_no_store(demo_dir: Path, tmp_path: Path) -> None:
    off = run_pipeline(
        str(demo_dir / "erp.sqlite"), tmp_path / "off", load_settings(store={"write_runs": False})
    )
    assert "store" not in off.paths and not (tmp_path / "off" / "history.sqlite").exists()
    bt = run_pipeline(
        str(demo_dir / "erp.sqlite"), tmp_path / "bt", load_settings(), with_forecast=False
    )
    assert "store" not in bt.paths and not (tmp_path / "bt" / "history.sqlite").exists()


@pytest.mark.integration
def test_run_into_postgresql_from_store_url(
    demo_dir: Path, tmp_path: Path, pg_databases: object
) -> None:
    url = pg_databases.create()  # type: ignore[attr-defined]
    settings = load_settings(store={"url": url.replace("postgres@", "postgres:pw@")})
    out = tmp_path / "pg"
    # trust auth ignores the password: it is there to check run.json hides it
    outcome = run_pipeline(str(demo_dir / "erp.sqlite"), out, settings)
    run = json.loads((out / "run.json").read_text())
    assert "pw" not in json.dumps(run) and run["store"]["url"].startswith(
        "postgresql+psycopg://postgres:***@"
    )
    assert run["config"]["store"]["url"] == run["store"]["url"]
    assert not (out / "history.sqlite").exists()
    store = ForecastStore(url)
    info = store.latest_run()
    assert info is not None and info.run_id == run["store"]["run_id"]
    assert outcome.result.forecasts is not None
    assert len(store.known_items()) == outcome.loaded.panel.n_items
    store.dispose()


def test_actuals_frame_is_the_panel_tail() -> None:
    df = pl.DataFrame(
        {
            "unique_id": ["a", "a", "b"],
            "ds": ["2026-01-01", "2026-01-03", "2026-01-02"],
            "y": [1.0, 3.0, 2.0],
        }
    ).with_columns(pl.col("ds").str.to_date())
    panel = DemandPanel.from_long(df, freq="D")
    tail = actuals_frame(panel, 2)
    d2, d3 = date(2026, 1, 2), date(2026, 1, 3)
    assert tail.to_dicts() == [
        {"unique_id": "a", "ds": d2, "y": 0.0},
        {"unique_id": "a", "ds": d3, "y": 3.0},
        {"unique_id": "b", "ds": d2, "y": 2.0},
        {"unique_id": "b", "ds": d3, "y": 0.0},
    ]
    assert actuals_frame(panel, 10).height == 6  # never more than the panel has


def test_unreachable_store_fails_the_run_before_any_file(
    demo_dir: Path, tmp_path: Path, unused_port: int
) -> None:
    """A configured store that is down is an error (exit 2 in the CLI) naming the store, found
    before the computation: no file of the run is written (issue 10: nothing for a run the store
    does not have)."""
    from sparecast.errors import StoreUnavailable

    url = f"postgresql+psycopg://postgres@127.0.0.1:{unused_port}/history"
    out = tmp_path / "down"
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{unused_port}/history is unreachable"):
        run_pipeline(str(demo_dir / "erp.sqlite"), out, load_settings(store={"url": url}))
    assert not (out / "forecasts.parquet").exists() and not (out / "run.json").exists()


def test_keep_runs_prunes_the_history(demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "prune"
    settings = load_settings(store={"keep_runs": 2}, methods=["ma", "sba"])
    for _ in range(3):
        run_pipeline(str(demo_dir / "erp.sqlite"), out, settings)
    store = ForecastStore(default_store_url(out))
    assert [r.run_id for r in store.runs()] == [3, 2]
    assert json.loads((out / "run.json").read_text())["store"]["run_id"] == 3
    store.dispose()


def _tiny_panel() -> DemandPanel:
    df = pl.DataFrame(
        {
            "unique_id": ["a", "a", "b"],
            "ds": ["2026-01-01", "2026-01-03", "2026-01-02"],
            "y": [1.0, 3.0, 2.0],
        }
    ).with_columns(pl.col("ds").str.to_date())
    return DemandPanel.from_long(df, freq="D")


def test_store_url_is_store_url_or_history_sqlite_in_the_output_dir(tmp_path: Path) -> None:
    assert (
        store_url_for(load_settings(), tmp_path) == f"sqlite:///{tmp_path.resolve()}/history.sqlite"
    )
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/history"
    assert store_url_for(load_settings(store={"url": url}), tmp_path) == url


def test_run_meta_describes_the_panel_and_hides_passwords() -> None:
    settings = load_settings(horizon=5)
    meta = run_meta(
        _tiny_panel(), settings, source="mysql+pymysql://erp:secret@db/erp", notes=["n1"]
    )
    assert meta.sparecast_version == __version__ and meta.config == settings.to_dict()
    assert (meta.data_start, meta.data_end) == (date(2026, 1, 1), date(2026, 1, 3))
    assert (meta.freq, meta.n_items, meta.n_periods, meta.horizon) == ("D", 2, 3, 5)
    assert meta.source == "mysql+pymysql://erp:***@db/erp" and meta.notes == ["n1"]


def test_store_run_writes_the_run_and_leaves_run_json_alone(tmp_path: Path) -> None:
    panel = _tiny_panel()
    forecasts = pl.DataFrame(
        {
            "unique_id": ["a", "b"],
            "ds": [date(2026, 1, 4)] * 2,
            "forecast": [1.0, 2.0],
            "method": ["ma", "ma"],
        }
    )
    (tmp_path / "run.json").write_text(json.dumps({"horizon": 1}))
    settings = load_settings(horizon=1)
    assert store_run(tmp_path, panel, None, None, settings, source="x") is None  # backtest only
    off = load_settings(horizon=1, store={"write_runs": False})
    assert store_run(tmp_path, panel, forecasts, None, off, source="x") is None
    assert not (tmp_path / "history.sqlite").exists()
    stored = store_run(tmp_path, panel, forecasts, None, settings, source="erp.sqlite")
    assert isinstance(stored, StoredRun) and stored.run_id == 1
    assert stored.url == default_store_url(tmp_path) and stored.seconds >= 0
    # run.json is not rewritten in place: the staging commit adds the store entry
    # (tests/pipeline/test_staging.py)
    assert json.loads((tmp_path / "run.json").read_text()) == {"horizon": 1}
    store = ForecastStore(stored.url)
    info = store.latest_run()
    assert info is not None and info.model_version == stored.model_version
    assert store.item_forecast("b").forecast == [2.0]  # type: ignore[union-attr]
    # actuals: the last horizon (1) periods of the panel, zeros included
    assert store.actuals("a")["y"].to_list() == [3.0] and store.actuals("b")["y"].to_list() == [0.0]
    store.dispose()
