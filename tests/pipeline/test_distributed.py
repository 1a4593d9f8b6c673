"""The core on a real Dask LocalCluster (sparecast.pipeline.distributed): the same
classification, scores, selection and forecasts as the single-process run, chunks of uneven
size, ``sparecast run --cluster`` to a scheduler started here and ``--workers``, and a clear
error when the scheduler cannot be reached."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from sparecast.classify import classify
from sparecast.cli import app
from sparecast.config import Settings, load_settings
from sparecast.data.demo import generate_demo_erp
from sparecast.data.panel import DemandPanel
from sparecast.data.sources import sqlite_url, write_tables
from sparecast.errors import ConfigError
from sparecast.inventory.plan import PlanResult, compute_plan
from sparecast.pipeline.core import run_core
from sparecast.pipeline.distributed import (
    DaskEngine,
    chunk_bounds,
    compute_engine,
    memory_limit,
    merge_notes,
)
from sparecast.pipeline.engine import LOCAL
from sparecast.pipeline.outputs import read_forecasts

distributed = pytest.importorskip("distributed")

runner = CliRunner()
CLASSICAL = ["croston", "sba", "ma", "adida", "robust"]
END = date(2026, 10, 31)


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    """Two single-threaded workers in this process (light on a 2-core machine)."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as c:
        yield c


@pytest.fixture(scope="module")
def client(cluster: distributed.LocalCluster) -> Iterator[distributed.Client]:
    with distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def tables() -> dict[str, pl.DataFrame]:
    return generate_demo_erp(n_items=150, n_days=200, seed=3, end_date=END)


@pytest.fixture(scope="module")
def panel(tables: dict[str, pl.DataFrame]) -> DemandPanel:
    return DemandPanel.from_long(
        tables["demand"], id_col="item_id", time_col="date", target_col="quantity"
    )


def test_chunk_bounds_cover_every_item_once() -> None:
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(8, 4) == [(0, 4), (4, 8)]
    assert chunk_bounds(3, 10) == [(0, 3)]
    assert chunk_bounds(0, 10) == [(0, 0)]
    with pytest.raises(ConfigError, match="chunk_items"):
        chunk_bounds(5, 0)


@pytest.mark.parametrize("top_k", [1, 2])
def test_dask_core_equals_the_single_process_run(
    client: distributed.Client, panel: DemandPanel, top_k: int
) -> None:
    """Chunks of 40 items (the last one shorter): every table the core returns is identical to
    the single-process run's; top_k=2 also merges the per-window errors of the chunks."""
    assert panel.n_items % 40 != 0
    settings = load_settings(methods=CLASSICAL, router={"top_k": top_k})
    seen: list[tuple[str, int, int]] = []
    engine = DaskEngine(client, 40, progress=lambda label, d, n: seen.append((label, d, n)))
    ref = run_core(panel, settings, engine=LOCAL)
    got = run_core(panel, settings, engine=engine)
    assert ref.backtest is not None and got.backtest is not None
    assert got.backtest.methods == ref.backtest.methods
    assert got.backtest.labels == ref.backtest.labels
    assert got.backtest.origins == ref.backtest.origins
    for name in ("classification", "selection", "summary", "forecasts"):
        assert_frame_equal(getattr(got, name), getattr(ref, name))
    assert_frame_equal(got.backtest.scores, ref.backtest.scores)
    assert got.notes == ref.notes
    # progress per chunk and step: 4 chunks (40, 40, 40, 30 items) each
    n_chunks = -(-panel.n_items // 40)
    for step in ("classify", "backtest", "forecast"):
        mine = [s for s in seen if s[0].startswith(f"{step} chunk")]
        assert len(mine) == n_chunks and {s[2] for s in mine} == {n_chunks}
    assert any(f"(items 121-{panel.n_items})" in s[0] for s in seen)


def test_a_global_method_runs_on_the_client_and_matches(
    client: distributed.Client, panel: DemandPanel
) -> None:
    """With ``compute.lightgbm_on_dask`` off, LightGBM (which learns across items) is
    backtested and forecast on the whole panel on the client while the workers do the classical
    methods per chunk; the result equals the single-process one. (On: lightgbm.dask,
    tests/pipeline/test_dask_ml.py.)"""
    settings = load_settings(methods=["sba", "ma", "lightgbm"])
    ref = run_core(panel, settings, engine=LOCAL)
    got = run_core(panel, settings, engine=DaskEngine(client, 64, lightgbm_on_dask=False))
    assert ref.backtest is not None and got.backtest is not None
    assert "lightgbm" in got.backtest.methods
    assert_frame_equal(got.backtest.scores, ref.backtest.scores)
    assert_frame_equal(got.forecasts, ref.forecasts)
    assert_frame_equal(got.selection, ref.selection)


def _plans_both(
    client: distributed.Client,
    panel: DemandPanel,
    tables: dict[str, pl.DataFrame],
    settings: Settings,
) -> tuple[PlanResult, PlanResult, list[str]]:
    """The plan in one process and per chunk of 40 items on the workers (``DaskEngine``), and
    the progress labels of the latter."""
    classification = classify(panel)
    ref = compute_plan(panel, classification, None, tables, settings, today=END)
    seen: list[str] = []
    engine = DaskEngine(client, 40, progress=lambda label, done, total: seen.append(label))
    got = compute_plan(
        panel, classification, None, tables, settings, today=END, planner=engine.plan_items
    )
    return ref, got, seen


@pytest.mark.parametrize("calibrate", [True, False])
def test_the_plan_per_chunk_on_the_workers_equals_the_single_process_plan(
    client: distributed.Client,
    panel: DemandPanel,
    tables: dict[str, pl.DataFrame],
    calibrate: bool,
) -> None:
    """``compute_plan(..., planner=DaskEngine.plan_items)``: the lead-time demand, policies,
    sparse rule and stockout risk per chunk on the workers (chunks of 40 items, two blocks of
    ``inventory.chunk_size`` 20), the calibration on the client: the same policy, notes and
    summary as in one process."""
    settings = load_settings(
        inventory={
            "chunk_size": 20,
            "n_samples": 200,
            "calibrate": calibrate,
            "calibration_max_items": 100,
            "sparse_threshold": 0.1,
        }
    )
    ref, got, seen = _plans_both(client, panel, tables, settings)
    assert_frame_equal(got.policy, ref.policy)
    assert got.notes == ref.notes and got.summary == ref.summary
    assert len([s for s in seen if s.startswith("plan chunk")]) == 4  # 150 items
    assert any("sparse item(s)" in n for n in got.notes)  # summed over the chunks
    assert any("targets calibrated" in n for n in got.notes) == calibrate


def test_targets_the_calibration_cannot_measure_are_allocated_on_the_client(
    client: distributed.Client, panel: DemandPanel, tables: dict[str, pl.DataFrame]
) -> None:
    """Calibration on but the history too short for it: the model's allocation
    (``decide.allocated_item_targets``) weighs every item against the others, so the Dask
    planner plans on the client (no plan chunk), as one process."""
    settings = load_settings(
        inventory={
            "chunk_size": 20,
            "n_samples": 200,
            "calibration_min_periods": panel.n_periods + 1,
        }
    )
    ref, got, seen = _plans_both(client, panel, tables, settings)
    assert_frame_equal(got.policy, ref.policy)
    assert got.notes == ref.notes
    assert not [s for s in seen if s.startswith("plan chunk")]
    assert any("marginal analysis on the model" in n for n in got.notes)


@pytest.mark.parametrize("level", ["history", "recent", "adaptive", "forecast"])
def test_every_level_plans_per_chunk_and_equals_the_single_process_plan(
    client: distributed.Client,
    panel: DemandPanel,
    tables: dict[str, pl.DataFrame],
    level: str,
) -> None:
    """``inventory.level``: an item's level shift reads its own history and rate only, and its
    stochastic rounding draws one uniform per sample path shared by all items
    (``policy.rescale_samples``), so the workers plan the recent and forecast levels per chunk
    with the same policy and notes (the raised and lowered counts summed) as one process."""
    settings = load_settings(
        inventory={
            "chunk_size": 20,
            "n_samples": 200,
            "calibrate": False,
            "level": level,
            "level_window_days": 60,
        }
    )
    if level == "adaptive":  # a shift that persists in half the items: a weight above 0
        y = panel.y.copy()
        y[::2, 100:] *= 3.0
        panel = dataclasses.replace(panel, y=y)
    ref, got, seen = _plans_both(client, panel, tables, settings)
    assert_frame_equal(got.policy, ref.policy)
    assert got.notes == ref.notes and got.summary == ref.summary
    assert len([s for s in seen if s.startswith("plan chunk")]) == 4  # 150 items
    moved = [n for n in got.notes if "lead-time demand moved" in n]
    assert len(moved) == (level != "history")
    if level in ("recent", "adaptive"):
        assert (ref.policy["level_factor"] != 1.0).sum() > 10
    if level == "adaptive":  # one weight, of the whole panel, on every chunk
        assert "a share 0.000 of the way" not in moved[0]


def test_the_sparse_value_rule_plans_on_the_client(
    client: distributed.Client, panel: DemandPanel, tables: dict[str, pl.DataFrame]
) -> None:
    """``inventory.sparse_policy = value`` stocks the sparse items of all chunks as one pool:
    the Dask planner runs it on the client (no plan chunk), so the plan equals one process's
    instead of pooling per chunk."""
    settings = load_settings(
        inventory={
            "n_samples": 200,
            "calibrate": False,
            "sparse_threshold": 0.1,
            "sparse_policy": "value",
        }
    )
    ref, got, seen = _plans_both(client, panel, tables, settings)
    assert_frame_equal(got.policy, ref.policy)
    assert not [s for s in seen if s.startswith("plan chunk")]
    assert any("sparse_policy = value" in n for n in got.notes)


@pytest.mark.parametrize("calibrate", [True, False])
def test_a_level_sigma_plans_per_chunk_and_equals_the_single_process_plan(
    client: distributed.Client,
    panel: DemandPanel,
    tables: dict[str, pl.DataFrame],
    calibrate: bool,
) -> None:
    """Level uncertainty per item (``policy.level_mixture``: the factors of a sample path are
    shared by all items, so a chunk draws what the whole panel draws): calibrated, the client
    picks the level sigma per target (here the grid [0.5] forces it) and the workers plan at
    it; not calibrated, they plan at ``inventory.item_level_sigma``. The same policy, notes and
    summary as in one process, in 4 plan chunks, and not the plan without level uncertainty."""
    base = {
        "chunk_size": 20,
        "n_samples": 200,
        "calibrate": calibrate,
        "calibration_max_items": 100,
        "sparse_threshold": 0.1,
    }
    sigma = {"item_level_sigmas": [0.5]} if calibrate else {"item_level_sigma": 0.5}
    settings = load_settings(inventory={**base, **sigma})
    ref, got, seen = _plans_both(client, panel, tables, settings)
    assert_frame_equal(got.policy, ref.policy)
    assert got.notes == ref.notes and got.summary == ref.summary
    assert len([s for s in seen if s.startswith("plan chunk")]) == 4  # 150 items
    flat = load_settings(inventory={**base, "item_level_sigmas": [0.0]})
    without = compute_plan(panel, classify(panel), None, tables, flat, today=END)
    assert not ref.policy["reorder_point"].equals(without.policy["reorder_point"])


def test_merge_notes_sums_the_counts_of_the_same_note() -> None:
    a = ["3 sparse item(s) (demand in under 2% of periods): 1 with no stock (reorder point -1)"]
    b = [
        "x 0.5 once",
        "4 sparse item(s) (demand in under 2% of periods): 0 with no stock (reorder point -1)",
    ]
    assert merge_notes([a, b, []]) == [
        "x 0.5 once",
        "7 sparse item(s) (demand in under 2% of periods): 1 with no stock (reorder point -1)",
    ]


@pytest.fixture(scope="module")
def erp(tmp_path_factory: pytest.TempPathFactory, tables: dict[str, pl.DataFrame]) -> str:
    db = tmp_path_factory.mktemp("erp") / "erp.sqlite"
    write_tables(tables, sqlite_url(db))
    return sqlite_url(db)


def _run(erp: str, out: Path, *extra: str, config: Path | None = None) -> pl.DataFrame:
    args = ["run", "--source", erp, "-o", str(out), "--methods", ",".join(CLASSICAL), "-q"]
    args += ["--config", str(config)] if config else []
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code == 0, result.output
    return read_forecasts(out)  # forecasts.parquet, or forecasts/part-*.parquet on Dask


def test_run_on_a_scheduler_writes_the_same_outputs(
    cluster: distributed.LocalCluster, erp: str, tmp_path: Path
) -> None:
    """``sparecast run --cluster ADDRESS`` (chunk_items from the config file) writes the same
    forecasts, selection and classification as the run without Dask."""
    cfg = tmp_path / "sparecast.toml"
    cfg.write_text("[compute]\nchunk_items = 45\n")
    ref = _run(erp, tmp_path / "single", config=cfg)
    got = _run(erp, tmp_path / "dask", "--cluster", cluster.scheduler_address, config=cfg)
    assert_frame_equal(got, ref)
    # on the cluster: one part per chunk of 45 items, written chunk by chunk
    parts = sorted(p.name for p in (tmp_path / "dask" / "forecasts").iterdir())
    assert parts == [f"part-{i:05d}.parquet" for i in range(-(-150 // 45))]
    assert not (tmp_path / "dask" / "forecasts.parquet").exists()
    for name in ("classification.parquet", "backtest.parquet"):
        a = pl.read_parquet(tmp_path / "dask" / name)
        assert_frame_equal(a, pl.read_parquet(tmp_path / "single" / name))
    assert np.isfinite(got["forecast"].to_numpy()).all()


def test_workers_start_a_local_cluster(erp: str, tmp_path: Path) -> None:
    """``--workers 1``: a LocalCluster of one worker process started and closed by the run."""
    ref = _run(erp, tmp_path / "single")
    got = _run(erp, tmp_path / "dask", "--workers", "1")
    assert_frame_equal(got, ref)


def test_unreachable_scheduler_is_a_clear_error(
    erp: str, tmp_path: Path, unused_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARECAST_COMPUTE__CONNECT_TIMEOUT_S", "1")
    address = f"tcp://127.0.0.1:{unused_port}"
    result = runner.invoke(
        app, ["run", "--source", erp, "-o", str(tmp_path / "out"), "--cluster", address, "-q"]
    )
    assert result.exit_code == 2
    assert f"cannot reach the Dask scheduler at {address}" in " ".join(result.output.split())


def test_memory_limit_as_dask_takes_it() -> None:
    assert memory_limit("0.5") == 0.5 and memory_limit("1") == 1.0
    assert memory_limit("2GiB") == "2GiB" and memory_limit("auto") == "auto"
    assert memory_limit("0") == "0"  # Dask: no limit


def test_no_compute_settings_keep_the_single_process() -> None:
    with compute_engine(load_settings()) as engine:
        assert engine is LOCAL


def test_plan_and_backtest_on_a_scheduler(
    cluster: distributed.LocalCluster, erp: str, tmp_path: Path
) -> None:
    """``plan --cluster``: forecasts, their quantiles (per chunk on the workers) and the plan
    equal the run without Dask; ``plan --reuse-forecasts`` reads the partitioned forecasts; a
    run without Dask into the same directory replaces the parts by one file (and back).
    ``backtest --cluster`` writes the same scores."""
    methods = ["--methods", ",".join(CLASSICAL), "-q"]
    cfg = tmp_path / "sparecast.toml"
    # the plan per chunk of 60 items too: three blocks of Monte-Carlo samples of 20
    cfg.write_text(
        "[compute]\nchunk_items = 60\nlightgbm_on_dask = false\n[inventory]\nchunk_size = 20\n"
    )

    def plan(out: Path, *extra: str) -> None:
        args = ["plan", "--source", erp, "-o", str(out), "--config", str(cfg), *methods]
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == 0, result.output

    single, dask = tmp_path / "single", tmp_path / "dask"
    plan(single)
    plan(dask)  # first without Dask: forecasts.parquet, replaced below
    assert (dask / "forecasts.parquet").is_file()
    plan(dask, "--cluster", cluster.scheduler_address)
    assert not (dask / "forecasts.parquet").exists()
    assert len(list((dask / "forecasts").glob("part-*.parquet"))) == 3
    ref = read_forecasts(single)
    assert any(c.startswith("q") for c in ref.columns)  # the quantile columns
    assert_frame_equal(read_forecasts(dask), ref)
    policy = pl.read_parquet(single / "policy.parquet")
    assert_frame_equal(pl.read_parquet(dask / "policy.parquet"), policy)
    plan(dask, "--reuse-forecasts")
    assert_frame_equal(pl.read_parquet(dask / "policy.parquet"), policy)
    plan(dask)  # without Dask again: one file, the parts are gone
    assert (dask / "forecasts.parquet").is_file() and not (dask / "forecasts").exists()

    for out, extra in ((single, ()), (dask, ("--cluster", cluster.scheduler_address))):
        args = ["backtest", "--source", erp, "-o", str(out / "bt"), "--config", str(cfg)]
        result = runner.invoke(app, [*args, *methods, *extra])
        assert result.exit_code == 0, result.output
    assert_frame_equal(
        pl.read_parquet(dask / "bt" / "backtest.parquet"),
        pl.read_parquet(single / "bt" / "backtest.parquet"),
    )
