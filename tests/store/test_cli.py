"""`sparecast store migrate | runs | prune` on a run directory's history.sqlite."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import polars as pl
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from sparecast.cli import app
from sparecast.store import ForecastStore, RunMeta, default_store_url
from sparecast.store.engine import alembic_config

runner = CliRunner()


def _write_runs(directory: Path, n: int) -> list[int]:
    store = ForecastStore(default_store_url(directory))
    store.migrate()
    frame = pl.DataFrame(
        {"unique_id": ["a"], "ds": [date(2026, 11, 1)], "forecast": [1.0], "method": ["ma"]}
    )
    meta = RunMeta("0.1.0", {}, date(2025, 11, 1), date(2026, 10, 31), "D", 1, 365, 1)
    ids = [store.write_run(meta, frame) for _ in range(n)]
    store.dispose()
    return ids


def test_migrate_twice(tmp_path: Path) -> None:
    first = runner.invoke(app, ["store", "migrate", "--data", str(tmp_path)])
    assert first.exit_code == 0, first.output
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert f"migrated from empty to revision {head}" in first.output
    again = runner.invoke(app, ["store", "migrate", "--data", str(tmp_path)])
    assert again.exit_code == 0 and f"already at revision {head}" in again.output
    assert ForecastStore(default_store_url(tmp_path)).is_migrated()


def test_runs_and_prune(tmp_path: Path) -> None:
    runner.invoke(app, ["store", "migrate", "--data", str(tmp_path)])
    empty = runner.invoke(app, ["store", "runs", "--data", str(tmp_path)])
    assert empty.exit_code == 0 and "no runs" in empty.output
    ids = _write_runs(tmp_path, 3)
    listed = runner.invoke(app, ["store", "runs", "--data", str(tmp_path), "-n", "2"])
    assert listed.exit_code == 0, listed.output
    assert "0.1.0+" in listed.output and "2025-11-01" in listed.output  # (table may wrap)
    assert "(day)" in listed.output  # the horizon with its unit: "1 period (day)", may wrap
    pruned = runner.invoke(app, ["store", "prune", "--keep", "1", "--data", str(tmp_path)])
    assert pruned.exit_code == 0 and f"deleted 2 run(s) ({ids[0]}, {ids[1]})" in pruned.output
    assert [r.run_id for r in ForecastStore(default_store_url(tmp_path)).runs()] == [ids[2]]


def test_errors_name_the_store_and_the_fix(tmp_path: Path, unused_port: int) -> None:
    with sqlite3.connect(tmp_path / "history.sqlite") as conn:  # someone else's table
        conn.execute("CREATE TABLE forecast_runs (id INTEGER PRIMARY KEY)")
    odd = runner.invoke(app, ["store", "runs", "--data", str(tmp_path)])
    assert odd.exit_code == 2
    assert "has a schema this sparecast does not know" in odd.output
    url = f"postgresql+psycopg://postgres:pw@127.0.0.1:{unused_port}/x"
    down = runner.invoke(app, ["store", "migrate", "--url", url])
    assert down.exit_code == 2 and "is unreachable" in down.output
    assert "pw" not in down.output
