"""``run_evaluate_plan``: a source in, the decision backtest's files out."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sparecast.config import load_settings
from sparecast.data.sources import sqlite_url, write_tables
from sparecast.errors import SourceError
from sparecast.pipeline.evaluate_plan import DECISION_FILES, run_evaluate_plan


def test_evaluate_plan_on_a_demo_erp(erp_tables: dict, tmp_path: Path) -> None:
    db = tmp_path / "erp.sqlite"
    write_tables(erp_tables, sqlite_url(db))
    settings = load_settings(inventory={"n_samples": 200})
    out = run_evaluate_plan(str(db), tmp_path / "out", settings, targets=(0.9, 0.95), split=150)
    for name in DECISION_FILES:
        assert (tmp_path / "out" / name).is_file(), name
    per_item = pl.read_parquet(tmp_path / "out" / "decisions_per_item.parquet")
    assert per_item.height == 4 * 2 * 80
    assert set(per_item["policy"]) == {"sparecast", "aggregate", "textbook", "empirical"}
    # unit costs come from the items table
    costs = dict(zip(erp_tables["items"]["item_id"], erp_tables["items"]["unit_cost"], strict=True))
    row = per_item.filter(pl.col("avg_on_hand") > 0).row(0, named=True)
    assert row["avg_on_hand_value"] == pytest.approx(row["avg_on_hand"] * costs[row["unique_id"]])
    meta = json.loads((tmp_path / "out" / "decisions.json").read_text())
    assert meta["split"] == 150 and meta["n_periods"] == 200 and meta["freq"] == "D"
    assert len(meta["goals"]) == 2 and out.backtest.goals.height == 2


def test_a_file_without_purchase_orders_is_refused(tmp_path: Path) -> None:
    csv = tmp_path / "demand.csv"
    csv.write_text("unique_id,ds,y\na,2026-01-01,1\na,2026-01-02,0\n")
    with pytest.raises(SourceError, match="purchase_orders and receipts"):
        run_evaluate_plan(str(csv), tmp_path / "out", load_settings())


def test_a_crash_while_writing_leaves_the_previous_set_intact(
    erp_tables: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sparecast.pipeline.evaluate_plan as module
    from sparecast.pipeline.staging import STAGING_PREFIX

    db = tmp_path / "erp.sqlite"
    write_tables(erp_tables, sqlite_url(db))
    out_dir = tmp_path / "out"
    settings = load_settings(inventory={"n_samples": 200})
    first = run_evaluate_plan(str(db), out_dir, settings, targets=(0.9,), split=150)
    before = {name: (out_dir / name).read_bytes() for name in DECISION_FILES}

    # the second set: different targets (other files), and the page fails after the four
    # parquet files and decisions.json are written
    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("disk full while rendering")

    monkeypatch.setattr(module, "render_decisions_report", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        module.write_decisions(first.backtest, out_dir, str(db), "D", (0.9, 0.95))
    assert {name: (out_dir / name).read_bytes() for name in DECISION_FILES} == before
    assert not list(out_dir.glob(f"{STAGING_PREFIX}*"))
    # and a complete set replaces the old one as a whole
    monkeypatch.undo()
    module.write_decisions(first.backtest, out_dir, str(db), "D", (0.9, 0.95))
    meta = json.loads((out_dir / "decisions.json").read_text())
    assert meta["targets"] == [0.9, 0.95]
    assert not list(out_dir.glob(f"{STAGING_PREFIX}*"))


def _weekly_files(tmp_path: Path) -> tuple[Path, Path]:
    """A long-format weekly demand file (40 items x 150 weeks, demand in about 15% of the
    weeks) and its items file: lead times of 7 or 16 weeks, MOQs, unit costs, one bad row."""
    rng = np.random.default_rng(5)
    n, weeks = 40, 150
    ids = [f"P{i:02d}" for i in range(n)]
    y = (rng.random((n, weeks)) < 0.15) * rng.integers(1, 6, (n, weeks))
    start = date(2023, 1, 2)  # a Monday
    demand = tmp_path / "demand.csv"
    pl.DataFrame(
        {
            "unique_id": np.repeat(ids, weeks),
            "ds": [start + timedelta(weeks=int(w)) for _ in ids for w in range(weeks)],
            "y": y.ravel().astype(float),
        }
    ).write_csv(demand)
    rows = ["unique_id,lead_time_days,moq,unit_cost"]
    rows += [f"{i},{49 if k % 2 else 112},{1 + k % 3},{1 + k}" for k, i in enumerate(ids)]
    rows[1] = "P00,soon,1,1"  # rejected: P00 takes the default lead time
    items = tmp_path / "items.csv"
    items.write_text("\n".join(rows) + "\n")
    return demand, items


def test_evaluate_plan_of_a_long_file_with_an_items_file(tmp_path: Path) -> None:
    # issue 12: a planner with a demand file and an item master backtests the plan as `plan
    # --items` plans it: weekly periods, the quoted lead times (7 or 16 weeks), MOQs, costs
    demand, items = _weekly_files(tmp_path)
    settings = load_settings(inventory={"n_samples": 200, "default_lead_time_days": 14})
    with pytest.raises(SourceError, match="--items FILE"):
        run_evaluate_plan(str(demand), tmp_path / "none", settings)
    out = run_evaluate_plan(
        str(demand), tmp_path / "out", settings, targets=(0.9,), items_file=items
    )
    meta = json.loads((tmp_path / "out" / "decisions.json").read_text())
    assert meta["freq"] == "W" and meta["split"] == 100 and meta["n_periods"] == 150
    per_item = out.backtest.per_item.filter(pl.col("policy") == "sparecast")
    lead = dict(zip(per_item["unique_id"], per_item["lead_time_periods"], strict=True))
    assert lead["P01"] == pytest.approx(7.0) and lead["P02"] == pytest.approx(16.0)
    assert lead["P00"] == pytest.approx(2.0)  # the rejected row: the default, 14 days
    # unit costs from the items file value the stock
    row = per_item.filter((pl.col("unique_id") == "P05") & (pl.col("avg_on_hand") > 0)).row(
        0, named=True
    )
    assert row["avg_on_hand_value"] == pytest.approx(row["avg_on_hand"] * 6.0)
    rejected = pl.read_parquet(tmp_path / "out" / "rejected_items.parquet")
    assert rejected["unique_id"].to_list() == ["P00"]
    assert meta["notes"][0].startswith("1 row(s) of the items file rejected")
    assert any("lead_time_std_days (default: 0" in n for n in meta["notes"])
    # the corrected items file: no stale rejected rows left from the run before
    items.write_text(items.read_text().replace("P00,soon", "P00,49"))
    run_evaluate_plan(str(demand), tmp_path / "out", settings, targets=(0.9,), items_file=items)
    assert not (tmp_path / "out" / "rejected_items.parquet").exists()


def test_the_command_takes_an_items_file(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sparecast.cli import app

    demand, items = _weekly_files(tmp_path)
    config = tmp_path / "sparecast.toml"
    config.write_text("[inventory]\nn_samples = 200\n")
    out = tmp_path / "out"
    args = ["evaluate-plan", "-s", str(demand), "--items", str(items), "-o", str(out)]
    result = CliRunner().invoke(app, [*args, "--targets", "0.95", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "1 row(s) of the items file rejected" in result.output
    assert pl.read_parquet(out / "decisions_goals.parquet")["target"].to_list() == [0.95]
    refused = CliRunner().invoke(app, ["evaluate-plan", "-s", str(demand), "-o", str(out)])
    assert refused.exit_code != 0 and "--items FILE" in refused.output
