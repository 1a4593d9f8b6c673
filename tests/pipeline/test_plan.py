"""The plan step end to end (sparecast.pipeline.plan): `sparecast plan` and `sparecast demo`
write policy.parquet and inventory_report.html; the numbers are wired correctly; bad purchasing
rows are reported; a later plan re-reads the purchase orders."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from sparecast.cli import app
from sparecast.config import load_settings
from sparecast.data.sources import write_tables
from sparecast.inventory.leadtime import LEAD_TIME_SOURCES
from sparecast.inventory.plan import POLICY_COLUMNS
from sparecast.pipeline.plan import recorded_items_file

runner = CliRunner()
END = date(2026, 10, 31)
FAST = ["--methods", "ma,sba", "--quiet"]


def _config(tmp: Path) -> Path:
    path = tmp / "sparecast.toml"
    path.write_text(f'[data]\ntoday = "{END.isoformat()}"\n')
    return path


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory, erp_tables: dict) -> Path:
    out = tmp_path_factory.mktemp("plan")
    db = out / "erp.sqlite"
    write_tables(erp_tables, f"sqlite:///{db}")
    result = runner.invoke(
        app, ["plan", "--source", str(db), "--output", str(out), "-c", str(_config(out)), *FAST]
    )
    assert result.exit_code == 0, result.output
    return out


def test_plan_writes_policy_with_the_documented_columns(planned: Path, erp_tables: dict) -> None:
    pol = pl.read_parquet(planned / "policy.parquet")
    assert pol.columns == list(POLICY_COLUMNS)
    assert pol.height == 80
    assert sorted(pol["unique_id"].to_list()) == sorted(erp_tables["items"]["item_id"].to_list())
    assert set(pol["lead_time_source"].unique()) <= set(LEAD_TIME_SOURCES)
    assert (pol["stockout_risk"].is_between(0, 1)).all()
    assert (pol["expected_fill_rate"].is_between(0, 1)).all()
    assert (pol["order_up_to"] >= pol["reorder_point"]).all()
    assert (pol["suggested_order"] >= 0).all()
    # inventory position = on hand + open POs - backorders
    np.testing.assert_allclose(
        pol["inventory_position"], pol["on_hand"] + pol["open_quantity"] - pol["backorders"]
    )
    # an order is suggested only at or below the reorder point
    ordered = pol.filter(pl.col("suggested_order") > 0)
    assert ordered.height > 0
    assert (ordered["inventory_position"] <= ordered["reorder_point"]).all()
    np.testing.assert_allclose(
        ordered["order_value"], ordered["suggested_order"] * ordered["unit_cost"]
    )
    # ranks 1..n by risk (desc), then value (desc)
    ranked = ordered.sort("order_rank")
    assert ranked["order_rank"].to_list() == list(range(1, ordered.height + 1))
    keys = list(zip(ranked["stockout_risk"], ranked["order_value"], strict=True))
    assert all(
        a[0] > b[0] or (a[0] == b[0] and a[1] >= b[1]) for a, b in zip(keys, keys[1:], strict=False)
    )
    assert pol.filter(pl.col("suggested_order") == 0)["order_rank"].null_count() == (
        pol.height - ordered.height
    )
    # service targets: the tier's default target
    targets = load_settings().inventory.targets
    for tier, target in pol.select("tier", "service_target").unique().iter_rows():
        assert target == pytest.approx(targets[tier])


def test_plan_stock_and_open_quantities_match_the_erp(planned: Path, erp_tables: dict) -> None:
    pol = pl.read_parquet(planned / "policy.parquet")
    stock = erp_tables["stock"].select(pl.col("item_id").alias("unique_id"), "on_hand")
    got = pol.join(stock, on="unique_id", suffix="_erp")
    np.testing.assert_allclose(got["on_hand"], got["on_hand_erp"].clip(lower_bound=0))
    # open quantity by hand: ordered - received per PO line, summed per item (the demo's rows
    # are all valid)
    received = erp_tables["receipts"].group_by("po_id").agg(pl.col("quantity").sum().alias("r"))
    open_ = (
        erp_tables["purchase_orders"]
        .join(received, on="po_id", how="left")
        .with_columns((pl.col("quantity") - pl.col("r").fill_null(0)).alias("open"))
        .filter(pl.col("open") > 0)
        .group_by("item_id")
        .agg(pl.col("open").sum())
    )
    got = pol.join(open_, left_on="unique_id", right_on="item_id", how="left")
    np.testing.assert_allclose(got["open_quantity"], got["open"].fill_null(0))
    assert (got["open_quantity"] > 0).sum() > 0


def test_plan_report_has_every_section_and_no_external_assets(planned: Path) -> None:
    html = (planned / "inventory_report.html").read_text()
    pol = pl.read_parquet(planned / "policy.parquet")
    for section in (
        "summary",
        "suggested-orders",
        "stockout-risk",
        "stock-vs-forecast",
        "supplier-performance",
        "open-orders",
        "lead-times",
        "data-quality",
        "notes",
    ):
        assert f'<section id="{section}">' in html, section
    assert not re.search(r"(src|href)=\"?(https?:)?//", html)
    assert "<script" not in html and "<link" not in html
    # the top-ranked order is the first row of the suggested-orders table
    top = pol.filter(pl.col("order_rank") == 1)["unique_id"].item()
    orders = html.split('<section id="suggested-orders">')[1].split("</section>")[0]
    first_row = orders.split("<tbody>")[1].split("</tr>")[0]
    assert f"<td>{top}</td>" in first_row
    n_to_order = int((pol["suggested_order"] > 0).sum())
    assert f"Suggested orders ({n_to_order:,})" in html
    assert "Data quality: rejected rows (0)" in html
    run = json.loads((planned / "run.json").read_text())
    assert run["plan"]["n_to_order"] == n_to_order
    assert run["plan"]["rejected_rows"] == 0
    assert (planned / "forecasts.parquet").exists()  # the forecasting run wrote its files too


def test_plan_reuses_forecasts_when_asked(planned: Path, tmp_path: Path) -> None:
    before = pl.read_parquet(planned / "policy.parquet")
    fc_mtime = (planned / "forecasts.parquet").stat().st_mtime_ns
    result = runner.invoke(
        app,
        [
            "plan",
            "--source",
            str(planned / "erp.sqlite"),
            "--output",
            str(planned),
            "--reuse-forecasts",
            "-c",
            str(_config(tmp_path)),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (planned / "forecasts.parquet").stat().st_mtime_ns == fc_mtime
    assert pl.read_parquet(planned / "policy.parquet").equals(before)
    assert json.loads((planned / "run.json").read_text())["plan"]["forecasts_reused"] is True

    # without --quiet the plan's summary is printed
    loud = runner.invoke(
        app,
        ["plan", "-s", str(planned / "erp.sqlite"), "-o", str(planned), "--reuse-forecasts"]
        + ["-c", str(_config(tmp_path))],
    )
    assert loud.exit_code == 0, loud.output
    n_to_order = int((before["suggested_order"] > 0).sum())
    assert "Inventory plan" in loud.output
    assert f"80 items: {n_to_order} to order now" in loud.output
    assert "policy.parquet" in loud.output and "inventory_report.html" in loud.output

    empty = tmp_path / "empty"
    result = runner.invoke(
        app,
        ["plan", "--source", str(planned / "erp.sqlite"), "--output", str(empty)]
        + ["--reuse-forecasts", "--quiet"],
    )
    assert result.exit_code == 2
    assert "no forecasts.parquet" in result.output


def test_plan_reports_bad_purchasing_rows(tmp_path: Path, erp_tables: dict) -> None:
    tables = dict(erp_tables)
    po = tables["purchase_orders"]
    first = po.row(0, named=True)
    bad_po = pl.DataFrame(
        [
            {**first, "po_id": "BAD1", "quantity": -3.0},
            {**first, "po_id": "BAD2", "item_id": "NOPE"},
        ],
        schema=po.schema,
    )
    rc = tables["receipts"]
    r0 = rc.row(0, named=True)
    bad_rc = pl.DataFrame(
        [
            {**r0, "po_id": "GHOST"},
            {**r0, "receipt_date": first["order_date"] - timedelta(days=400)},
        ],
        schema=rc.schema,
    )
    stock = tables["stock"]
    bad_stock = pl.DataFrame(
        [{"item_id": "NOPE", "on_hand": 5.0, "as_of": END}], schema=stock.schema
    )
    tables["purchase_orders"] = pl.concat([po, bad_po])
    tables["receipts"] = pl.concat([rc, bad_rc])
    tables["stock"] = pl.concat([stock, bad_stock])
    db = tmp_path / "erp.sqlite"
    write_tables(tables, f"sqlite:///{db}")
    out = tmp_path / "out"
    cfg = ["-c", str(_config(tmp_path))]
    result = runner.invoke(app, ["plan", "-s", str(db), "-o", str(out), *cfg, *FAST])
    assert result.exit_code == 0, result.output
    rejected = pl.read_parquet(out / "rejected_purchasing.parquet")
    got = sorted(zip(rejected["table"], rejected["reason"], strict=True))
    assert got == [
        ("purchase_orders", "non_positive_quantity"),
        ("purchase_orders", "unknown_item"),
        ("receipts", "receipt_before_order"),
        ("receipts", "unknown_po"),
        ("stock", "unknown_item"),
    ]
    html = (out / "inventory_report.html").read_text()
    assert "Data quality: rejected rows (5)" in html
    assert "receipt_before_order" in html
    assert json.loads((out / "run.json").read_text())["plan"]["rejected_rows"] == 5
    pol = pl.read_parquet(out / "policy.parquet")
    assert pol.height == 80 and "NOPE" not in pol["unique_id"].to_list()
    # --strict turns them into an error
    strict = runner.invoke(app, ["plan", "-s", str(db), "-o", str(out), *cfg, *FAST, "--strict"])
    assert strict.exit_code == 2
    assert "purchasing/stock row(s) rejected" in strict.output


def test_plan_needs_purchasing_tables_or_an_items_file(tmp_path: Path) -> None:
    csv = tmp_path / "long.csv"
    pl.DataFrame(
        {"unique_id": ["a"] * 60, "ds": [date(2026, 1, 1) + timedelta(days=i) for i in range(60)]}
    ).with_columns(pl.lit(1.0).alias("y")).write_csv(csv)
    result = runner.invoke(app, ["plan", "-s", str(csv), "-o", str(tmp_path / "o"), *FAST])
    assert result.exit_code == 2
    assert "needs an ERP database" in result.output and "--items FILE" in result.output


def test_demo_includes_the_plan(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(
        app, ["demo", "--output", str(out), "--items", "60", "--days", "120", *FAST]
    )
    assert result.exit_code == 0, result.output
    pol = pl.read_parquet(out / "policy.parquet")
    assert pol.height == 60 and pol.columns == list(POLICY_COLUMNS)
    assert '<section id="suggested-orders">' in (out / "inventory_report.html").read_text()
    # a later `run` into the directory removes the plan's files: no stale policy survives
    rerun = runner.invoke(app, ["run", "-s", str(out / "erp.sqlite"), "-o", str(out), *FAST])
    assert rerun.exit_code == 0, rerun.output
    assert (out / "forecasts.parquet").exists()
    assert not (out / "policy.parquet").exists()
    assert not (out / "inventory_report.html").exists()


@pytest.mark.integration
def test_plan_on_mariadb_equals_sqlite(mariadb_url: str, tmp_path: Path, erp_tables: dict) -> None:
    """The purchasing tables read from the real MariaDB give the same policy as from SQLite."""
    write_tables(erp_tables, mariadb_url)
    lite = tmp_path / "erp.sqlite"
    write_tables(erp_tables, f"sqlite:///{lite}")
    cfg = ["-c", str(_config(tmp_path))]
    a = runner.invoke(app, ["plan", "-s", str(lite), "-o", str(tmp_path / "a"), *cfg, *FAST])
    b = runner.invoke(app, ["plan", "-s", mariadb_url, "-o", str(tmp_path / "b"), *cfg, *FAST])
    assert a.exit_code == 0, a.output
    assert b.exit_code == 0, b.output
    pa = pl.read_parquet(tmp_path / "a" / "policy.parquet")
    pb = pl.read_parquet(tmp_path / "b" / "policy.parquet")
    assert pa.height == 80
    assert pa.equals(pb)


def test_a_later_plan_sees_changes_to_older_purchase_orders(
    tmp_path: Path, erp_tables: dict
) -> None:
    """The second run extracts incrementally (by order date); a PO line cancelled in the ERP
    in between must not stay open in the plan."""
    import sqlalchemy as sa

    db = tmp_path / "erp.sqlite"
    write_tables(erp_tables, f"sqlite:///{db}")
    out = tmp_path / "out"
    args = ["plan", "-s", str(db), "-o", str(out), "-c", str(_config(tmp_path)), *FAST]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    received = erp_tables["receipts"]["po_id"].unique().implode()
    unreceived = erp_tables["purchase_orders"].filter(~pl.col("po_id").is_in(received))
    item = unreceived["item_id"][0]
    cancelled = unreceived.filter(pl.col("item_id") == item)["po_id"].to_list()
    pol = pl.read_parquet(out / "policy.parquet").filter(pl.col("unique_id") == item)
    assert pol["open_quantity"].item() > 0
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        for po_id in cancelled:
            conn.execute(sa.text("DELETE FROM purchase_orders WHERE po_id = :p"), {"p": po_id})
    engine.dispose()
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert json.loads((out / "run.json").read_text())["extract"]["full"] is False
    pol = pl.read_parquet(out / "policy.parquet").filter(pl.col("unique_id") == item)
    still_open = (
        erp_tables["purchase_orders"]
        .filter((pl.col("item_id") == item) & ~pl.col("po_id").is_in(cancelled))
        .join(
            erp_tables["receipts"].group_by("po_id").agg(pl.col("quantity").sum().alias("r")),
            on="po_id",
            how="left",
        )
        .select((pl.col("quantity") - pl.col("r").fill_null(0)).clip(lower_bound=0).sum())
        .item()
    )
    assert pol["open_quantity"].item() == still_open


def test_plan_takes_a_duration_horizon_on_weekly_buckets(tmp_path: Path, erp_tables: dict) -> None:
    """`sparecast plan --horizon 1mo` on the daily ERP bucketed to weeks: the month after the
    last complete week (Monday 2026-10-19; the forecast starts 2026-10-26) has 31 days, so 5
    weeks; the plan's forecast total is the sum of those 5 weeks."""
    db = tmp_path / "erp.sqlite"
    write_tables(erp_tables, f"sqlite:///{db}")
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["plan", "-s", str(db), "-o", str(out), "-c", str(_config(tmp_path)), "-h", "1mo", *FAST],
        env={"SPARECAST_DATA__FREQ": "W"},
    )
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["horizon"] == {"periods": 5, "unit": "weeks", "asked": "1mo"}
    fc = pl.read_parquet(out / "forecasts.parquet")
    assert sorted(set(fc["ds"].to_list())) == [
        date(2026, 10, 26) + timedelta(weeks=k) for k in range(5)
    ]
    totals = fc.group_by("unique_id").agg(pl.col("forecast").sum().alias("total"))
    pol = pl.read_parquet(out / "policy.parquet").join(totals, on="unique_id")
    np.testing.assert_allclose(pol["forecast_horizon_total"], pol["total"], rtol=1e-9)


def _long_demand(path: Path, weeks: int = 30) -> Path:
    """Weekly long-format demand of A, B (2 a week) and C (1 every 3rd week)."""
    rows = []
    for w in range(weeks):
        day = (date(2026, 1, 5) + timedelta(weeks=w)).isoformat()
        rows += [("A", day, "2"), ("B", day, "2"), ("C", day, "1" if w % 3 == 0 else "0")]
    pl.DataFrame(rows, schema=["unique_id", "ds", "y"], orient="row").write_csv(path)
    return path


def test_plan_from_a_long_file_and_an_items_file(tmp_path: Path) -> None:
    demand = _long_demand(tmp_path / "demand.csv")
    items = tmp_path / "items.csv"
    items.write_text(
        "unique_id,lead_time_days,moq,unit_cost,on_hand,on_order\n"
        "A,14,4,2.5,3,1\n"
        "B,abc,1,1,0,0\n"  # rejected: B takes every default
        "Z,21,1,4,0,0\n"  # no demand: planned with zero history
    )
    out = tmp_path / "out"
    cfg = ["-c", str(_config(tmp_path))]
    args = ["plan", "-s", str(demand), "--items", str(items), "-o", str(out), *cfg, *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    pol = pl.read_parquet(out / "policy.parquet").sort("unique_id")
    assert pol.columns == list(POLICY_COLUMNS)
    assert pol["unique_id"].to_list() == ["A", "B", "C", "Z"]
    src = dict(zip(pol["unique_id"], pol["lead_time_source"], strict=True))
    assert src == {"A": "quoted", "B": "default", "C": "default", "Z": "quoted"}
    a = pol.row(0, named=True)
    assert (a["lead_time_mean_days"], a["unit_cost"], a["inventory_position"]) == (14.0, 2.5, 4.0)
    assert a["order_quantity"] >= 4
    assert pol.filter(pl.col("unique_id") == "Z")["suggested_order"].item() == 0.0
    rejected = pl.read_parquet(out / "rejected_items.parquet")
    assert rejected.select("input_row", "unique_id", "lead_time_days", "reason").rows() == [
        (1, "B", "abc", "bad_lead_time_days")
    ]
    run = json.loads((out / "run.json").read_text())
    assert run["command"]["items"] == str(items.resolve())
    assert recorded_items_file(out) == str(items.resolve())  # a retrain plans with it again
    assert recorded_items_file(tmp_path) is None
    assert run["validation"]["items"]["counts"] == {"bad_lead_time_days": 1}
    notes = "\n".join(run["plan"]["notes"])
    assert "lead_time_std_days (default: 0" in notes and "lot_size (default" in notes
    assert "2 item(s) of the demand have no row in the items file" in notes  # B (rejected), C
    assert "1 item(s) of the items file have no demand history" in notes
    assert "2 item(s) have no learned or quoted lead time" in notes
    assert notes.startswith("1 row(s) of the items file rejected (bad_lead_time_days 1)")
    assert "lead_time_std_days (default: 0" in (out / "inventory_report.html").read_text()
    fc = pl.read_parquet(out / "forecasts.parquet")
    assert set(fc["unique_id"]) == {"A", "B", "C", "Z"}  # Z forecast too (zero history)

    # the corrected items file replaces the plan on the same forecasts; no stale rejected rows
    items.write_text("unique_id,lead_time_days\nA,7\nB,7\nC,7\nZ,7\n")
    again = runner.invoke(app, [*args, "--reuse-forecasts"])
    assert again.exit_code == 0, again.output
    pol = pl.read_parquet(out / "policy.parquet")
    assert set(pol["lead_time_mean_days"]) == {7.0} and set(pol["lead_time_source"]) == {"quoted"}
    assert not (out / "rejected_items.parquet").exists()


def test_plan_items_file_errors(tmp_path: Path, erp_tables: dict) -> None:
    demand = _long_demand(tmp_path / "demand.csv")
    items = tmp_path / "items.csv"
    items.write_text("unique_id,on_hand\nA,-1\n")
    cfg = ["-c", str(_config(tmp_path))]
    out = ["-o", str(tmp_path / "o")]
    strict = runner.invoke(
        app, ["plan", "-s", str(demand), "-i", str(items), *out, *cfg, *FAST, "--strict"]
    )
    assert strict.exit_code == 2
    assert "negative_on_hand" in strict.output
    db = tmp_path / "erp.sqlite"
    write_tables(erp_tables, f"sqlite:///{db}")
    refused = runner.invoke(app, ["plan", "-s", str(db), "-i", str(items), *out, *cfg, *FAST])
    assert refused.exit_code == 2
    assert "--items is for a long-format demand file" in refused.output
    missing = runner.invoke(
        app, ["plan", "-s", str(demand), "-i", str(tmp_path / "no.csv"), *out, *cfg, *FAST]
    )
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_erp_item_master_quotes_are_the_fallback_after_own_orders(
    planned: Path, tmp_path: Path, erp_tables: dict
) -> None:
    """An item master column mapped to lead_time_days: items with enough PO lines of their own
    keep them; the others take their quote instead of the pooled supplier/global lead time."""
    tables = dict(erp_tables)
    items = tables["items"]
    quotes = [float(10 + k % 5) for k in range(items.height)]
    tables["items"] = items.with_columns(pl.Series("QUOTED_LT", quotes))
    db = tmp_path / "erp.sqlite"
    write_tables(tables, f"sqlite:///{db}")
    cfg = tmp_path / "sparecast.toml"
    cfg.write_text(
        f'[data]\ntoday = "{END.isoformat()}"\n'
        '[data.erp_mapping.items.columns]\nlead_time_days = "QUOTED_LT"\n'
    )
    out = tmp_path / "out"
    result = runner.invoke(app, ["plan", "-s", str(db), "-o", str(out), "-c", str(cfg), *FAST])
    assert result.exit_code == 0, result.output
    before = pl.read_parquet(planned / "policy.parquet")
    after = pl.read_parquet(out / "policy.parquet")
    quote = dict(zip(items["item_id"], quotes, strict=True))
    joined = before.join(after, on="unique_id", suffix="_q")
    own = joined.filter(pl.col("lead_time_source") == "item_supplier")
    assert own.height > 0
    assert (own["lead_time_source_q"] == "item_supplier").all()
    np.testing.assert_allclose(own["lead_time_mean_days_q"], own["lead_time_mean_days"])
    pooled = joined.filter(pl.col("lead_time_source") != "item_supplier")
    assert pooled.height > 0
    assert (pooled["lead_time_source_q"] == "quoted").all()
    np.testing.assert_allclose(
        pooled["lead_time_mean_days_q"], [quote[i] for i in pooled["unique_id"]]
    )
