"""``run_evaluate_plan``: a source in, the decision backtest's files out."""

from __future__ import annotations

import json
from pathlib import Path

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
