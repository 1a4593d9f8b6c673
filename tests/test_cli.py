"""End-to-end tests of the command line on the embedded default and on the real MariaDB."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner
from utils.runs import demo_output

from sparecast.cli import app
from sparecast.data.demo import generate_demo_erp
from sparecast.data.sources import write_tables
from sparecast.selection.router import DEFAULT_CANDIDATES

runner = CliRunner()

SMALL = ["--items", "150", "--days", "200", "--seed", "3", "--quiet"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_output(tmp_path_factory, *SMALL)


def test_demo_writes_every_output(demo_dir: Path) -> None:
    for name in (
        "erp.sqlite",
        "classification.parquet",
        "backtest.parquet",
        "forecasts.parquet",
        "run.json",
    ):
        assert (demo_dir / name).exists(), name
    classes = pl.read_parquet(demo_dir / "classification.parquet")
    assert classes.height == 150
    assert {"unique_id", "n_periods", "demand_frequency", "adi", "cv2", "sb_class", "tier"} <= set(
        classes.columns
    )
    assert set(classes["tier"].unique()) <= {
        "high_volume",
        "regular",
        "intermittent",
        "very_intermittent",
    }

    fc = pl.read_parquet(demo_dir / "forecasts.parquet")
    assert fc.height == 150 * 28
    assert set(DEFAULT_CANDIDATES) <= set(fc.columns)
    assert "zero" not in fc.columns  # the zero forecast is a backtest reference only
    assert {"unique_id", "ds", "forecast", "method"} <= set(fc.columns)
    assert (fc["forecast"] >= 0).all()

    # the forecast column is the chosen method's value (or the mean of the chosen methods'
    # values, "mean(a,b)", with top_k > 1), item by item
    def served(r: dict) -> float:
        name = r["method"]
        members = name[5:-1].split(",") if name.startswith("mean(") else [name]
        return float(np.mean([r[m] for m in members]))

    chosen = fc.select(
        pl.struct(["method", *DEFAULT_CANDIDATES]).map_elements(served, return_dtype=pl.Float64)
    ).to_series()
    np.testing.assert_allclose(chosen.to_numpy(), fc["forecast"].to_numpy(), rtol=1e-6)
    # the robust default serves the classes where no method is significantly better
    assert "robust" in set(fc["method"])

    bt = pl.read_parquet(demo_dir / "backtest.parquet")
    # every candidate and the zero forecast (the reference), never chosen
    assert bt.height == 150 * (len(DEFAULT_CANDIDATES) + 1)
    assert bt.filter(pl.col("method") == "zero").height == 150
    assert not bt.filter(pl.col("method") == "zero")["chosen"].any()
    assert {"mae", "rmse", "mase", "rmsse", "me", "pis", "chosen_method", "chosen"} <= set(
        bt.columns
    )
    assert bt.filter(pl.col("chosen")).height == 150  # exactly one chosen method per item

    summary = pl.read_parquet(demo_dir / "backtest_summary.parquet")
    assert summary.columns[:4] == ["grouping", "group", "method", "label"]
    assert {
        "rmsse",
        "rmsse_median",
        "mae",
        "wape",
        "rel_bias",
        "mase_vs_zero_pct",
        "rmsse_vs_zero_pct",
        "mase_vs_naive_pct",
        "rmsse_vs_ma_pct",
        "chosen",
    } <= set(summary.columns)
    # every group has a zero row (relative bias -100% where anything was sold), never chosen
    zero = summary.filter(pl.col("method") == "zero")
    assert zero.height == summary.select("grouping", "group").unique().height
    assert not zero["chosen"].any()
    sold = zero["rel_bias"].drop_nulls()  # null in the no_demand group
    assert sold.len() >= zero.height - 1 and sold.to_list() == pytest.approx(
        [-1.0] * sold.len(), abs=0.01
    )

    run = json.loads((demo_dir / "run.json").read_text())
    assert run["data_window"]["n_items"] == 150
    assert run["data_window"]["end"] == "2026-10-31"
    assert "validation" in run and "timings_s" in run


def test_run_on_long_csv_and_summary_output(tmp_path: Path, demo_dir: Path) -> None:
    fc_dir = tmp_path / "out"
    long = pl.DataFrame(
        {
            "unique_id": ["a"] * 60 + ["b"] * 60,
            "ds": [date(2025, 1, 1) + timedelta(days=i) for i in range(60)] * 2,
            "y": [float(i % 5 == 0) * 3 for i in range(60)]
            + [float(i % 11 == 0) for i in range(60)],
        }
    )
    csv = tmp_path / "long.csv"
    long.write_csv(csv)
    result = runner.invoke(
        app,
        [
            "run",
            "--source",
            str(csv),
            "--output",
            str(fc_dir),
            "--horizon",
            "7",
            "--methods",
            "naive,ma,sba",
        ],
    )
    assert result.exit_code == 0, result.output
    # the per-class accuracy table: the chosen method (*) and the zero forecast's row (the
    # console wraps at 80 columns here: the rows are 97 wide)
    out = result.output
    assert "Backtest accuracy against the zero forecast" in out
    assert "bias %" in out and "vs zero %" in out
    rows = [line.split() for line in out.splitlines()]
    assert ["intermittent", "2"] in [r[:2] for r in rows] and ["zero"] in [r[:1] for r in rows]
    assert "than zero" in out  # the served forecasts compared with forecasting nothing
    fc = pl.read_parquet(fc_dir / "forecasts.parquet")
    assert fc.columns[:5] == ["unique_id", "ds", "naive", "ma", "sba"]
    assert fc.height == 14
    assert fc["ds"].min() == date(2025, 3, 2)


def test_bad_rows_are_reported_and_strict_fails(tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(
        "unique_id,ds,y\n"
        + "".join(f"a,2025-01-{d:02d},1\n" for d in range(1, 29))
        + "a,2025-01-05,abc\n,2025-01-06,1\n"
    )
    ok = runner.invoke(
        app,
        ["run", "--source", str(csv), "--output", str(tmp_path / "o"), "-h", "3", "-m", "naive,ma"],
    )
    assert ok.exit_code == 0, ok.output
    rejected = pl.read_parquet(tmp_path / "o" / "rejected_rows.parquet")
    assert rejected.height == 2
    strict = runner.invoke(
        app,
        [
            "run",
            "--source",
            str(csv),
            "--output",
            str(tmp_path / "s"),
            "-h",
            "3",
            "-m",
            "naive",
            "--strict",
        ],
    )
    assert strict.exit_code == 2
    assert "non_numeric_quantity" in strict.output or "non-numeric" in strict.output


def test_unknown_source_and_method_give_clear_errors(tmp_path: Path) -> None:
    r = runner.invoke(
        app, ["run", "--source", str(tmp_path / "missing.parquet"), "--output", str(tmp_path)]
    )
    assert r.exit_code == 2 and "missing.parquet" in r.output
    r = runner.invoke(
        app,
        ["run", "--source", str(tmp_path / "x.csv"), "--output", str(tmp_path), "-m", "prophet"],
    )
    assert r.exit_code == 2 and "prophet" in r.output


def test_backtest_command_writes_no_forecasts(tmp_path: Path, demo_dir: Path) -> None:
    out = tmp_path / "bt"
    r = runner.invoke(
        app,
        [
            "backtest",
            "--source",
            str(demo_dir / "erp.sqlite"),
            "--output",
            str(out),
            "-m",
            "naive,ma,sba",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (out / "backtest.parquet").exists() and not (out / "forecasts.parquet").exists()


@pytest.mark.integration
def test_run_on_mariadb_equals_sqlite_and_extracts_incrementally(
    mariadb_url: str, tmp_path: Path
) -> None:
    tables = generate_demo_erp(n_items=120, n_days=150, seed=5, end_date=date(2026, 10, 31))
    sqlite_url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    write_tables(tables, sqlite_url)
    write_tables(tables, mariadb_url)
    args = ["--quiet", "--methods", "naive,ma,croston,sba,tsb,imapa", "--horizon", "14"]
    a = runner.invoke(
        app, ["run", "--source", sqlite_url, "--output", str(tmp_path / "lite"), *args]
    )
    b = runner.invoke(
        app, ["run", "--source", mariadb_url, "--output", str(tmp_path / "maria"), *args]
    )
    assert a.exit_code == 0, a.output
    assert b.exit_code == 0, b.output
    fa = pl.read_parquet(tmp_path / "lite" / "forecasts.parquet")
    fb = pl.read_parquet(tmp_path / "maria" / "forecasts.parquet")
    assert fa.shape == fb.shape
    assert fa["unique_id"].to_list() == fb["unique_id"].to_list()
    for col in ("naive", "ma", "croston", "sba", "tsb", "imapa", "forecast"):
        np.testing.assert_allclose(fa[col].to_numpy(), fb[col].to_numpy(), rtol=1e-6, err_msg=col)

    # New consumption rows arrive in the ERP: the second run reads only those.
    items = tables["items"]["item_id"].to_list()[:3]
    new = pl.DataFrame(
        {"item_id": items, "date": [date(2026, 11, 1)] * 3, "quantity": [2.0, 5.0, 1.0]}
    )
    engine = sa.create_engine(mariadb_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO demand (item_id, date, quantity) VALUES (:item_id, :date, :quantity)"
            ),
            new.to_dicts(),
        )
    engine.dispose()
    c = runner.invoke(
        app,
        ["run", "--source", mariadb_url, "--output", str(tmp_path / "maria"), *args],
        env={"SPARECAST_DATA__TODAY": "2026-11-02"},
    )
    assert c.exit_code == 0, c.output
    run = json.loads((tmp_path / "maria" / "run.json").read_text())
    assert run["extract"]["full"] is False
    assert run["extract"]["new_rows"]["demand"] == 3
    assert run["data_window"]["end"] == "2026-11-01"
    fc = pl.read_parquet(tmp_path / "maria" / "forecasts.parquet")
    assert fc["ds"].min() == date(2026, 11, 2)


def test_weekly_bucketing_of_a_daily_erp(tmp_path: Path, demo_dir: Path) -> None:
    out = tmp_path / "weekly"
    r = runner.invoke(
        app,
        ["run", "--source", str(demo_dir / "erp.sqlite"), "--output", str(out), "-h", "4", "-q"],
        env={"SPARECAST_DATA__FREQ": "W"},
    )
    assert r.exit_code == 0, r.output
    run = json.loads((out / "run.json").read_text())
    assert run["data_window"]["freq"] == "W"
    # the demo ends on Saturday 2026-10-31: that partial week is dropped, the last complete
    # week starts Monday 2026-10-19 and the forecast starts the Monday after it
    assert run["data_window"]["end"] == "2026-10-19"
    fc = pl.read_parquet(out / "forecasts.parquet")
    assert fc["ds"].min() == date(2026, 10, 26)
    assert all(d.weekday() == 0 for d in fc["ds"].unique().to_list())


# ---------------------------------------------------------------------------- odd inputs
def _csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("unique_id,ds,y\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    return path


def _days(n: int, item: str = "A", every: int = 3) -> list[tuple[str, str, str]]:
    first = date(2025, 1, 1)
    return [(item, str(first + timedelta(days=i)), "2") for i in range(0, n, every)]


def test_demo_rerun_regenerates_and_reextracts(tmp_path: Path) -> None:
    out = tmp_path / "d"
    a = runner.invoke(app, ["demo", "-o", str(out), "--items", "60", "--days", "90", "-q"])
    b = runner.invoke(app, ["demo", "-o", str(out), "--items", "80", "--days", "120", "-q"])
    assert a.exit_code == 0 and b.exit_code == 0, b.output
    run = json.loads((out / "run.json").read_text())
    assert run["data_window"]["n_items"] == 80 and run["data_window"]["n_periods"] == 120
    assert run["extract"]["full"] is True


def test_window_days_and_a_future_row(tmp_path: Path) -> None:
    rows = _days(200) + [("A", "2099-01-01", "5")]
    cfg = tmp_path / "w.toml"
    cfg.write_text("horizon = 7\nmethods = ['naive', 'ma']\n[data]\nwindow_days = 100\n")
    r = runner.invoke(
        app,
        [
            "run",
            "-s",
            str(_csv(tmp_path / "f.csv", rows)),
            "-o",
            str(tmp_path / "o"),
            "-c",
            str(cfg),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert run["data_window"]["n_periods"] == 100  # the window ends at the last *valid* day
    counts = run["validation"]["demand"]["counts"]
    assert counts.get("future_date") == 1 and counts.get("outside_window", 0) > 0


def test_fallback_method_is_always_forecast(tmp_path: Path) -> None:
    # NEW has demand only after the last backtest origin: no window scores it
    rows = _days(120, "OLD") + [
        ("NEW", str(date(2025, 4, 23) + timedelta(days=i)), "2") for i in range(6)
    ]
    cfg = tmp_path / "i.toml"
    cfg.write_text('[backtest]\nselect_by = "item"\n')
    out = tmp_path / "o"
    r = runner.invoke(
        app,
        [
            "run",
            "-s",
            str(_csv(tmp_path / "n.csv", rows)),
            "-o",
            str(out),
            "-c",
            str(cfg),
            "-m",
            "sba,tsb",
            "-h",
            "7",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    fc = pl.read_parquet(out / "forecasts.parquet").filter(pl.col("unique_id") == "NEW")
    assert fc["method"][0] == "robust" and "robust" in fc.columns
    np.testing.assert_allclose(fc["forecast"].to_numpy(), fc["robust"].to_numpy())
    assert fc["forecast"][0] > 0


def test_bad_items_are_reported_not_fatal(tmp_path: Path) -> None:
    tables = generate_demo_erp(n_items=40, n_days=90, seed=2, end_date=date(2026, 10, 31))
    items = tables["items"]
    tables["items"] = pl.concat([items, items.head(2)])  # two duplicate item rows
    db = tmp_path / "erp.sqlite"
    write_tables({"items": tables["items"], "demand": tables["demand"]}, f"sqlite:///{db}")
    out = tmp_path / "o"
    r = runner.invoke(app, ["run", "-s", str(db), "-o", str(out), "-m", "naive,ma", "-h", "7"])
    assert r.exit_code == 0, r.output  # an ERP with only items and demand is enough
    assert "duplicate" in r.output
    assert pl.read_parquet(out / "rejected_items.parquet").height == 2
    assert pl.read_parquet(out / "classification.parquet").height == 40


def test_unusable_output_and_bad_demo_options(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    csv = _csv(tmp_path / "f.csv", _days(60))
    r = runner.invoke(app, ["run", "-s", str(csv), "-o", str(afile), "-q"])
    assert r.exit_code == 2 and "output directory" in r.output
    r = runner.invoke(app, ["demo", "-o", str(tmp_path / "d"), "--items", "0"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["demo", "-o", str(tmp_path / "d"), "--end-date", "2026-13-01"])
    assert r.exit_code == 2 and "2026-13-01" in r.output


def test_mapping_errors_show_the_config_section(tmp_path: Path, demo_dir: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text('[data.erp_mapping.demand]\ncolumns = { qty = "QUANTITY" }\n')
    r = runner.invoke(
        app, ["run", "-s", str(demo_dir / "erp.sqlite"), "-o", str(tmp_path / "o"), "-c", str(cfg)]
    )
    assert r.exit_code == 2
    assert "[data.erp_mapping.demand.columns]" in r.output  # not eaten as Rich markup


def test_short_history_degrades_gracefully(tmp_path: Path) -> None:
    short = _csv(tmp_path / "s.csv", _days(20, "A", every=2) + _days(20, "B", every=5))
    # 19 days cannot hold a 28-day backtest window: every item gets the fallback, with a note
    r = runner.invoke(app, ["run", "-s", str(short), "-o", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 0, r.output
    assert "backtest skipped" in r.output
    fc = pl.read_parquet(tmp_path / "o" / "forecasts.parquet")
    assert set(fc["method"]) == {"robust"} and fc.height == 2 * 28
    assert not (tmp_path / "o" / "backtest.parquet").exists()
    # 39 days, h = 14: 14 + 1 + 1 training periods leave room for 2 of the 3 windows
    longer = _csv(tmp_path / "l.csv", _days(40, "A", every=2) + _days(40, "B", every=5))
    r = runner.invoke(app, ["run", "-s", str(longer), "-o", str(tmp_path / "o2"), "-h", "14", "-q"])
    assert r.exit_code == 0, r.output
    assert "backtest on 2 window(s) instead of 3" in r.output
    # the backtest command itself cannot run without a window: a clear error
    r = runner.invoke(app, ["backtest", "-s", str(short), "-o", str(tmp_path / "b"), "-q"])
    assert r.exit_code == 2 and "needs at least" in r.output


def test_run_on_an_erp_with_its_own_names_through_the_config_mapping(
    tmp_path: Path, demo_dir: Path
) -> None:
    tables = generate_demo_erp(n_items=150, n_days=200, seed=3, end_date=date(2026, 10, 31))
    erp = {
        "ITEM_MASTER": tables["items"].rename({"item_id": "ITEM_NO", "category": "ITEM_GROUP"}),
        "MTL_ISSUES": tables["demand"].rename(
            {"item_id": "ITEM_NO", "date": "TRX_DATE", "quantity": "QTY"}
        ),
    }
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    engine = sa.create_engine(url)
    for name, frame in erp.items():
        frame.to_pandas().to_sql(name, engine, index=False)
    engine.dispose()
    cfg = tmp_path / "erp.toml"
    cfg.write_text(
        "[data.erp_mapping.items]\n"
        'table = "ITEM_MASTER"\n'
        'columns = { item_id = "ITEM_NO", category = "ITEM_GROUP" }\n'
        "[data.erp_mapping.demand]\n"
        'table = "MTL_ISSUES"\n'
        'columns = { item_id = "ITEM_NO", date = "TRX_DATE", quantity = "QTY" }\n'
    )
    out = tmp_path / "mapped"
    r = runner.invoke(app, ["run", "-s", url, "-o", str(out), "-c", str(cfg), "-q"])
    assert r.exit_code == 0, r.output
    # the same demand as the demo written under canonical names gives the same forecasts
    mapped = pl.read_parquet(out / "forecasts.parquet")
    canonical = pl.read_parquet(demo_dir / "forecasts.parquet")
    assert mapped["unique_id"].to_list() == canonical["unique_id"].to_list()
    np.testing.assert_allclose(mapped["forecast"].to_numpy(), canonical["forecast"].to_numpy())


def test_router_option_and_selection_output(tmp_path: Path) -> None:
    # A every 3rd day (regular tier), B every 30th day (intermittent tier)
    rows = _days(150, "A", every=3) + _days(150, "B", every=30)
    src = _csv(tmp_path / "r.csv", rows)
    cfg = tmp_path / "rules.toml"
    cfg.write_text('[router.rules]\nregular = "sba"\nintermittent = "tsb"\nhigh_volume = "ses"\n')
    out = tmp_path / "o"
    args = ["run", "-s", str(src), "-o", str(out), "-c", str(cfg), "-h", "7"]
    r = runner.invoke(app, [*args, "--router", "rules"])
    assert r.exit_code == 0, r.output
    assert "router rules (tier -> method)" in r.output
    sel = pl.read_parquet(out / "selection.parquet")
    assert sel.columns == ["unique_id", "method", "reason", "sb_class", "tier"]
    assert sel.sort("unique_id").select("method", "reason").rows() == [
        ("sba", "rule: tier regular -> sba"),
        ("tsb", "rule: tier intermittent -> tsb"),
    ]
    fc = pl.read_parquet(out / "forecasts.parquet")
    assert fc.filter(pl.col("unique_id") == "B")["method"].unique().to_list() == ["tsb"]
    # the same data in auto mode: the reason names the backtest score
    r = runner.invoke(app, [*args, "--router", "auto", "-q"])
    assert r.exit_code == 0, r.output
    reasons = pl.read_parquet(out / "selection.parquet")["reason"].to_list()
    assert all(x.startswith(("robust default robust", "best rmsse in class")) for x in reasons)
    assert any("p=" in x and "items" in x for x in reasons), reasons
    r = runner.invoke(app, [*args, "--router", "magic", "-q"])
    assert r.exit_code != 0 and "auto or rules" in r.output


def test_a_single_period_runs_on_the_fallback(tmp_path: Path) -> None:
    """One day of history: every item gets the fallback; LightGBM (needs 2 periods) is left
    out of the forecast columns with a note instead of failing the run (both router modes)."""
    one = _csv(tmp_path / "one.csv", [("a", "2024-01-01", "3"), ("b", "2024-01-01", "1")])
    for mode in ("auto", "rules"):
        out = tmp_path / mode
        r = runner.invoke(app, ["run", "-s", str(one), "-o", str(out), "--router", mode, "-q"])
        assert r.exit_code == 0, r.output
        fc = pl.read_parquet(out / "forecasts.parquet")
        assert set(fc["method"]) == {"robust"} and fc.height == 2 * 28
        np.testing.assert_allclose(fc["forecast"], fc["robust"])
        assert "not forecast" in r.output
        if mode == "rules":  # the rules sent the items to XGBoost: they moved to the fallback
            sel = pl.read_parquet(out / "selection.parquet")
            assert sel["reason"].str.contains("cannot forecast this panel").all()


def test_a_single_candidate_is_served_alone(tmp_path: Path) -> None:
    """--methods sba: the fallback (ma) is backtested but does not compete with sba."""
    src = _csv(tmp_path / "d.csv", _days(120, "A", every=3) + _days(120, "B", every=7))
    r = runner.invoke(app, ["run", "-s", str(src), "-o", str(tmp_path / "o"), "-m", "sba", "-q"])
    assert r.exit_code == 0, r.output
    assert set(pl.read_parquet(tmp_path / "o" / "selection.parquet")["method"]) == {"sba"}


def test_extreme_rows_are_said_even_with_quiet(tmp_path: Path) -> None:
    """A rejected 1e12 row changes the forecasts: the CLI says so on stderr with --quiet too."""
    rows = [f"S{i},2024-01-0{d},1" for i in range(20) for d in (1, 5)]
    rows += ["TYPO,2024-01-02,1", "TYPO,2024-01-06,1000000000000"]
    csv = tmp_path / "typo.csv"
    csv.write_text("unique_id,ds,y\n" + "\n".join(rows) + "\n")
    result = runner.invoke(
        app, ["run", "--source", str(csv), "--output", str(tmp_path / "o"), "-h", "3", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "1 demand row(s) with extreme quantities: extreme_quantity" in result.output


# --------------------------------------------------------------------------- issue 11: horizons
def test_monthly_data_forecasts_6_months_on_3_windows_by_default(tmp_path: Path) -> None:
    """Like `sparecast run --source oil.csv` (56 months): no horizon given, so 6 months, and
    the backtest keeps its 3 windows (no note); the summary gives the horizon's unit."""
    from utils.panels import write_monthly_csv

    out = tmp_path / "out"
    r = runner.invoke(
        app,
        ["run", "-s", str(write_monthly_csv(tmp_path)), "-o", str(out), "-m", "ma,sba"],
        env={"COLUMNS": "200"},
    )
    assert r.exit_code == 0, r.output
    assert "horizon 6 periods (months); backtest on 3 windows, origins 6 periods apart" in r.output
    assert "note:" not in r.output
    fc = pl.read_parquet(out / "forecasts.parquet")
    assert fc.height == 12 * 6
    assert json.loads((out / "run.json").read_text())["horizon"]["periods"] == 6


def test_horizon_option_takes_periods_or_a_duration(tmp_path: Path) -> None:
    csv = _csv(tmp_path / "d.csv", _days(120) + _days(120, "B", 5))
    # the last day is 2025-04-28: a month is 2025-04-29 .. 2025-05-28, 30 days
    for spec, periods in (("2w", 14), ("10", 10), ("1mo", 30)):
        out = tmp_path / f"out{spec}"
        r = runner.invoke(
            app, ["run", "-s", str(csv), "-o", str(out), "-h", spec, "-m", "ma,sba", "-q"]
        )
        assert r.exit_code == 0, r.output
        fc = pl.read_parquet(out / "forecasts.parquet")
        assert fc.height == 2 * periods, spec
        assert json.loads((out / "run.json").read_text())["horizon"] == {
            "periods": periods,
            "unit": "days",
            "asked": int(spec) if spec.isdigit() else spec,
        }
    bad = runner.invoke(app, ["run", "-s", str(csv), "-o", str(tmp_path / "bad"), "-h", "soon"])
    assert bad.exit_code == 2
    assert "horizon must be a number of periods or a duration like 90d, 13w, 6mo, 1y" in bad.output
    assert "'soon'" in bad.output
    big = runner.invoke(app, ["run", "-s", str(csv), "-o", str(tmp_path / "big"), "-h", "20y"])
    assert big.exit_code == 2
    assert "h='20y' = 730" in big.output and "max_horizon=3660" in big.output
    assert not (tmp_path / "big" / "forecasts.parquet").exists()


def test_evaluate_plan_command(demo_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "sparecast.toml"
    config.write_text("[inventory]\nn_samples = 200\n")
    out = tmp_path / "decisions"
    r = runner.invoke(
        app,
        [
            "evaluate-plan", "--source", str(demo_dir / "erp.sqlite"), "--output", str(out),
            "--targets", "0.9,0.95", "--split", "130", "--config", str(config),
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "sparecast" in r.output and "decisions_report.html" in r.output
    goals = pl.read_parquet(out / "decisions_goals.parquet")
    assert goals["target"].to_list() == [0.9, 0.95]
    meta = json.loads((out / "decisions.json").read_text())
    assert meta["split"] == 130
    quiet = runner.invoke(
        app, ["evaluate-plan", "-s", str(demo_dir / "erp.sqlite"), "-o", str(out), "-q"]
    )
    assert quiet.exit_code == 0 and "Outputs in" not in quiet.output
    assert pl.read_parquet(out / "decisions_goals.parquet")["target"].to_list() == [
        0.9, 0.95, 0.98,
    ]  # fmt: skip
    bad = runner.invoke(app, ["evaluate-plan", "-s", "x.sqlite", "-o", str(out), "--targets", "a"])
    assert bad.exit_code == 2
    bad = runner.invoke(
        app,
        ["evaluate-plan", "-s", str(demo_dir / "erp.sqlite"), "-o", str(out), "--targets", "1.5"],
    )
    assert bad.exit_code == 2 and "targets must be in (0, 1)" in bad.output


def test_threads_setting_reaches_the_kernels(
    tmp_path: Path, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPARECAST_THREADS caps the classical kernels' threads for the command (forecasts alike)."""
    from sparecast.methods import _work

    seen: list[int] = []
    real = _work.by_blocks

    def spy(level, y):  # type: ignore[no-untyped-def]
        seen.append(_work.kernel_threads())
        return real(level, y)

    monkeypatch.setattr(_work, "by_blocks", spy)
    monkeypatch.setenv("SPARECAST_THREADS", "1")
    out = tmp_path / "bt"
    args = ["--source", str(demo_dir / "erp.sqlite"), "--output", str(out), "-m", "croston,imapa"]
    try:
        result = runner.invoke(app, ["backtest", *args, "-q"])
    finally:
        _work.set_threads(None)
    assert result.exit_code == 0, result.output
    assert seen and set(seen) == {1}
