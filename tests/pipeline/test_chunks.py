"""A long Parquet file loaded per chunk on the workers of a real LocalCluster
(``DaskEngine.load_file``, sparecast.pipeline.chunks): the same panel calendar, validation
report, rejected rows, classification, scores, selection, forecasts and quantiles as the
one-process load and run of the same file, sorted by id or not; each chunk reads only its
items; files whose chunks could differ are refused."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from sparecast.cli import app
from sparecast.config import Settings, load_settings
from sparecast.data.demo import generate_demo_erp
from sparecast.data.schema import validate_long
from sparecast.errors import ConfigError
from sparecast.pipeline.chunks import ChunkedPanel, FileRange, as_panel, why_not_chunked
from sparecast.pipeline.core import run_core
from sparecast.pipeline.distributed import DaskEngine, NotChunkable
from sparecast.pipeline.engine import LOCAL
from sparecast.pipeline.load import load_panel
from sparecast.pipeline.outputs import read_forecasts
from sparecast.selection.combinations import with_combinations

distributed = pytest.importorskip("distributed")

runner = CliRunner()

CLASSICAL = ["croston", "sba", "ma", "adida", "robust"]
END = date(2026, 10, 31)


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def long_rows() -> pl.DataFrame:
    """The demo's demand as long rows, with rows every rule rejects: a future date, a missing
    quantity, a quantity 1e9 (extreme: judged against the typical sizes of all items), a
    duplicate, and an item whose only row is rejected (it is no item of the panel)."""
    demand = generate_demo_erp(n_items=150, n_days=200, seed=3, end_date=END)["demand"]
    rows = demand.select(
        pl.col("item_id").alias("unique_id"),
        pl.col("date").alias("ds"),
        pl.col("quantity").cast(pl.Float64).alias("y"),
    )
    first = rows.row(0, named=True)
    bad = pl.DataFrame(
        {
            "unique_id": [first["unique_id"], "P000007", "P000009", "P000999", "P000011"],
            "ds": [date(2030, 1, 1), date(2026, 5, 1), date(2026, 5, 2), date(2031, 1, 1), END],
            "y": [1.0, None, 1e9, 2.0, 3.0],
        },
        schema=rows.schema,
    )
    # small items (ids after the demo's: chunks of their own) and one with a single row of 200:
    # extreme among the small items alone, not among all (the outlier pool of all items)
    small = pl.DataFrame(
        {
            "unique_id": [f"Z{i:04d}" for i in range(60) for _ in range(5)] + ["Z9999"],
            "ds": [date(2026, 10, d) for _ in range(60) for d in range(20, 25)] + [END],
            "y": [1.0] * 300 + [200.0],
        },
        schema=rows.schema,
    )
    return pl.concat([rows, bad, rows.slice(5, 1), small])


def _write(rows: pl.DataFrame, path: Path, *, sort: bool) -> str:
    out = (
        rows.sort("unique_id", maintain_order=True)
        if sort
        else rows.sample(fraction=1.0, shuffle=True, seed=1)
    )
    out.write_parquet(path, row_group_size=500)
    return str(path)


@pytest.fixture(scope="module", params=["sorted", "unsorted"])
def long_file(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    long_rows: pl.DataFrame,
) -> str:
    path = tmp_path_factory.mktemp("long") / f"{request.param}.parquet"
    return _write(long_rows, path, sort=request.param == "sorted")


def _settings(top_k: int = 1, **data: object) -> Settings:
    return load_settings(
        methods=CLASSICAL,
        quantiles=[0.5, 0.9],
        data={"today": date(2026, 11, 1), **data},
        router={"top_k": top_k},
    )


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"window_days": 120, "outlier_action": "cap", "outlier_factor": 20.0},
        {"top_k": 2},
    ],
    ids=["defaults", "window-and-cap", "combinations"],
)
def test_a_file_loaded_per_chunk_equals_the_one_process_run(
    client: distributed.Client, long_file: str, data: dict[str, object]
) -> None:
    """Chunks of 40 ids: the panel's items and calendar, the validation report and the
    rejected rows, and every table of the core equal those of the one-process load and run of
    the same file. With a window (its end found by a probe over the chunks) and capped
    outliers too, and with combinations of the top 2 methods (scored on each chunk's training
    scales: the client has no matrix)."""
    settings = _settings(**data)  # type: ignore[arg-type]
    seen: list[str] = []
    engine = DaskEngine(client, 40, progress=lambda label, d, n: seen.append(label))
    ref = load_panel(long_file, settings)
    got = engine.load_file(long_file, settings)
    panel = got.panel
    assert isinstance(panel, ChunkedPanel) and panel.y.size == 0  # no matrix on the client
    assert panel.item_ids.tolist() == ref.panel.item_ids.tolist()
    assert "P000999" not in panel.item_ids  # its only row was rejected
    # Z9999's row of 200 is judged against all items, not its chunk's small ones alone
    assert "Z9999" in panel.item_ids
    small = pl.read_parquet(long_file).filter(pl.col("unique_id").str.starts_with("Z"))
    alone = validate_long(
        small, outlier_factor=settings.data.outlier_factor, today=settings.data.today
    )
    assert (
        alone.report.counts.get("extreme_quantity", 0)
        + alone.report.counts.get("extreme_quantity_capped", 0)
        == 1
    )
    assert (panel.start, panel.freq, panel.n_periods) == (
        ref.panel.start,
        ref.panel.freq,
        ref.panel.n_periods,
    )
    # every rejected row reported, as in one process (the chunks in id order)
    want, have = ref.reports["demand"], got.report
    assert have.counts == want.counts and sum(want.counts.values()) >= 4
    for name in ("rows_in", "rows_kept", "rows_rejected", "rows_flagged", "returns"):
        assert getattr(have, name) == getattr(want, name), name
    assert (have.date_min, have.date_max) == (want.date_min, want.date_max)
    # the same rejected rows, numbered by their rows in the file as in one process; in a
    # sorted file the chunks come in file order: the same examples too
    assert_frame_equal(got.rejected.sort("input_row"), ref.rejected["demand"].sort("input_row"))
    if "unsorted" not in long_file:
        assert have.examples == want.examples
    # the core on the chunks equals the core on the whole panel
    one = run_core(ref.panel, settings, engine=LOCAL)
    many = run_core(panel, settings, engine=engine)
    for name in ("classification", "selection", "summary", "forecasts"):
        assert_frame_equal(getattr(many, name), getattr(one, name))
    assert one.backtest is not None and many.backtest is not None
    assert_frame_equal(many.backtest.scores, one.backtest.scores)
    assert many.notes == one.notes
    if data.get("top_k"):  # combinations scored on each chunk's training scales
        kw = {"h": 28, "methods": CLASSICAL, "n_windows": 2, "keep_errors": True}
        combos = ["mean(croston,sba)", "mean(ma,adida,robust)"]
        want_c = with_combinations(LOCAL.backtest(ref.panel, **kw), combos).scores
        got_c = with_combinations(engine.backtest(panel, **kw), combos).scores
        assert set(combos) <= set(got_c["method"].to_list())
        assert_frame_equal(got_c, want_c)
    assert one.forecasts is not None
    point = one.forecasts["forecast"].to_numpy().reshape(panel.n_items, -1)
    np.testing.assert_array_equal(
        engine.forecast_quantiles(panel, point, [0.5, 0.9]),
        LOCAL.forecast_quantiles(ref.panel, point, [0.5, 0.9]),
    )
    # progress per chunk: the load's rounds and every step
    n_chunks = len(panel.sources)
    for step in ("load", "classify", "backtest", "forecast"):
        assert len([s for s in seen if s.startswith(f"{step} chunk")]) >= n_chunks


def test_a_chunk_reads_only_its_items(client: distributed.Client, long_file: str) -> None:
    """Each chunk's rows are those of its id range, and the panel a worker builds of it holds
    its items only, in the rows the client gave it."""
    settings = _settings()
    panel = DaskEngine(client, 40).load_file(long_file, settings).panel
    whole = pl.read_parquet(long_file)
    assert len(panel.sources) == 5  # 184 items of 200 ids
    for a, b, src in panel.sources:
        rows = src.read()
        ids = rows["item_id"]
        assert ids.min() >= src.lo and ids.max() <= src.hi  # type: ignore[operator]
        assert (
            rows.height
            == whole.filter(pl.col("unique_id").is_between(pl.lit(src.lo), pl.lit(src.hi))).height
        )
        on_worker = client.submit(as_panel, src, pure=False).result()
        assert on_worker.item_ids.tolist() == panel.item_ids[a:b].tolist()
        assert on_worker.n_periods == panel.n_periods


def test_files_whose_chunks_could_differ_are_loaded_in_one_piece(
    client: distributed.Client, tmp_path: Path, long_rows: pl.DataFrame
) -> None:
    """Padded ids (validation strips them: one item in two ranges), a line_id column (its
    duplicates cross items), integer ids (their order is not the panel's) and a CSV file are
    refused with the reason."""
    engine = DaskEngine(client, 40)
    settings = _settings()
    padded = long_rows.with_columns(
        pl.when(pl.col("unique_id") == "P000003")
        .then(pl.lit(" P000003"))
        .otherwise(pl.col("unique_id"))
        .alias("unique_id")
    )
    cases = {
        "padded.parquet": (padded, "padded"),
        "lines.parquet": (long_rows.with_row_index("line_id"), "line_id"),
        "ints.parquet": (
            long_rows.with_columns(pl.col("unique_id").str.slice(1).cast(pl.Int64)),
            "Int64",
        ),
    }
    for name, (frame, reason) in cases.items():
        frame.write_parquet(tmp_path / name)
        with pytest.raises(NotChunkable, match=reason):
            engine.load_file(str(tmp_path / name), settings)
    long_rows.write_csv(tmp_path / "long.csv")
    assert "not a Parquet file" in str(why_not_chunked(tmp_path / "long.csv"))


def test_a_global_method_is_refused_on_a_chunked_panel(
    client: distributed.Client, long_file: str
) -> None:
    """XGBoost learns across items and does not train on the cluster: it needs the whole
    panel, which a chunked load does not build on the client; the run says so instead of
    computing on an empty matrix (LightGBM, which trains on the cluster: tests/pipeline/
    test_dask_ml.py)."""
    engine = DaskEngine(client, 40)
    panel = engine.load_file(long_file, _settings()).panel
    with pytest.raises(ConfigError, match="whole panel"):
        run_core(panel, load_settings(methods=["sba", "xgboost"]), engine=engine)


def test_a_file_range_without_its_calendar_is_no_panel(long_file: str) -> None:
    from sparecast.pipeline.chunks import ReadSpec

    with pytest.raises(ValueError, match="calendar"):
        as_panel(FileRange(ReadSpec(long_file), "P000001", "P000010"))


def _store_table(out: Path, query: str) -> pl.DataFrame:
    with sqlite3.connect(out / "history.sqlite") as con:
        return pl.read_database(query, connection=con)


def test_sparecast_run_on_a_cluster_loads_the_file_per_chunk(
    client: distributed.Client, long_file: str, tmp_path: Path
) -> None:
    """``sparecast run --source FILE.parquet --cluster ADDRESS``: the file is loaded per chunk
    on the workers (run.json says so) and every output, the rejected rows and the store's
    actuals and per-item scales equal those of the run without Dask."""
    cfg = tmp_path / "sparecast.toml"
    cfg.write_text('[compute]\nchunk_items = 45\n[data]\ntoday = "2026-11-01"\n')
    outs = {}
    for name, extra in {
        "single": [],
        "dask": ["--cluster", client.scheduler.address],
    }.items():
        out = tmp_path / name
        args = ["run", "--source", long_file, "-o", str(out), "--config", str(cfg), "-q"]
        result = runner.invoke(app, [*args, "--methods", ",".join(CLASSICAL), *extra])
        assert result.exit_code == 0, result.output
        outs[name] = out
    single, dask = outs["single"], outs["dask"]
    run = json.loads((dask / "run.json").read_text())
    assert run["extract"]["load"].startswith("per chunk on the workers")
    assert "load" not in json.loads((single / "run.json").read_text())["extract"]
    assert_frame_equal(read_forecasts(dask), read_forecasts(single))
    for name in ("classification.parquet", "backtest.parquet", "selection.parquet"):
        assert_frame_equal(pl.read_parquet(dask / name), pl.read_parquet(single / name))
    key = ["unique_id", "ds", "y", "reason"]
    assert_frame_equal(
        pl.read_parquet(dask / "rejected_rows.parquet").select(key).sort(key, nulls_last=True),
        pl.read_parquet(single / "rejected_rows.parquet").select(key).sort(key, nulls_last=True),
    )
    for query in (
        "select unique_id, y from actual_demand order by unique_id",
        "select unique_id, scale_mase, scale_rmsse from run_items order by unique_id",
    ):
        got, want = _store_table(dask, query), _store_table(single, query)
        assert want.height > 0
        assert_frame_equal(got, want)


@pytest.mark.parametrize("calibrate", [True, False], ids=["calibrated", "not-calibrated"])
def test_sparecast_plan_with_an_items_file_on_a_cluster_plans_per_chunk(
    client: distributed.Client,
    long_file: str,
    tmp_path: Path,
    calibrate: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``sparecast plan --source FILE.parquet --items ITEMS --cluster ADDRESS``: the demand is
    loaded per chunk on the workers, the items file's items without demand (before, between
    and after the file's ids) join the panel, the calibration runs on the client on its
    sample's rows only (100 of the items), the plan chunks read their own rows: the same
    policy, notes, summary and rejected item rows as the plan without Dask. With categories
    in the items file (the extreme-quantity rule's typical sizes per category), the file is
    loaded in one piece and run.json says why. Calibrated, the level weight is chosen on 50
    items with demand (as above 5,000 items: the client gathers those rows only). With level
    uncertainty: calibrated, the client's calibration picks the level sigma (the grid [0.5]
    forces it) and the chunks plan at it; not calibrated, at ``inventory.item_level_sigma``.
    The adaptive level's weight (30-day window: above 0 on this demo) is the whole panel's,
    summed from the chunks' statistics."""
    if calibrate:  # the cluster's workers are threads of this process: they see it too
        monkeypatch.setattr("sparecast.methods.level_alpha._ALPHA_MAX_ITEMS", 50)
    items = tmp_path / "items.csv"
    items.write_text(
        "unique_id,lead_time_days,moq,unit_cost,on_hand,on_order\n"
        "A0001,14,1,2,0,0\n"  # no demand, before every id of the file
        "P000003,14,4,2.5,3,1\n"
        "P000004,abc,1,1,0,0\n"  # rejected: takes the defaults
        "P000010,30,1,5,40,0\n"
        "Q0001,21,1,4,0,0\n"  # no demand, between the file's ids
        "ZZ01,7,1,1,2,0\n"  # no demand, after them
    )
    cfg = tmp_path / "sparecast.toml"
    cfg.write_text(
        '[compute]\nchunk_items = 45\n[data]\ntoday = "2026-11-01"\n'
        f"[inventory]\nchunk_size = 20\nn_samples = 200\ncalibrate = {str(calibrate).lower()}\n"
        "calibration_max_items = 100\ncalibration_min_periods = 0\nlevel_window_days = 30\n"
        + ("item_level_sigmas = [0.5]\n" if calibrate else "item_level_sigma = 0.5\n")
    )
    outs = {}
    for name, extra in {"single": [], "dask": ["--cluster", client.scheduler.address]}.items():
        out = tmp_path / name
        args = ["plan", "--source", long_file, "--items", str(items), "-o", str(out)]
        args += ["--config", str(cfg), "-q", "--methods", ",".join(CLASSICAL), *extra]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        outs[name] = out
    single, dask = outs["single"], outs["dask"]
    run, ref = (json.loads((d / "run.json").read_text()) for d in (dask, single))
    assert run["extract"]["load"].startswith("per chunk on the workers")
    assert "plan_rows_s" in run["plan"]["timings_s"]  # the client gathered rows, not the panel
    policy = pl.read_parquet(single / "policy.parquet")
    assert {"A0001", "Q0001", "ZZ01"} <= set(policy["unique_id"])
    assert_frame_equal(pl.read_parquet(dask / "policy.parquet"), policy)
    assert run["plan"]["notes"] == ref["plan"]["notes"]
    # the adaptive level's weight: the whole panel's, from the sums of the chunks
    moved = [n for n in ref["plan"]["notes"] if "lead-time demand moved" in n]
    assert len(moved) == 1 and "a share 0.000 " not in moved[0]
    assert (
        any("targets calibrated" in n and "of 100 item(s)" in n for n in ref["plan"]["notes"])
        == calibrate
    )
    for key in ("n_items", "n_to_order", "order_value", "expected_aggregate_fill_rate"):
        assert run["plan"][key] == ref["plan"][key]
    assert_frame_equal(
        pl.read_parquet(dask / "rejected_items.parquet"),
        pl.read_parquet(single / "rejected_items.parquet"),
    )
    # --reuse-forecasts on the cluster: the file read per chunk again, the same policy
    args = ["plan", "--source", long_file, "--items", str(items), "-o", str(dask)]
    args += ["--config", str(cfg), "-q", "--reuse-forecasts"]
    again = runner.invoke(app, [*args, "--cluster", client.scheduler.address])
    assert again.exit_code == 0, again.output
    assert_frame_equal(pl.read_parquet(dask / "policy.parquet"), policy)
    assert "plan_rows_s" in json.loads((dask / "run.json").read_text())["plan"]["timings_s"]
    if not calibrate:
        return
    items.write_text("unique_id,lead_time_days,category\nP000003,14,brakes\n")
    out = tmp_path / "categories"
    args = ["plan", "--source", long_file, "--items", str(items), "-o", str(out)]
    args += ["--config", str(cfg), "-q", "--methods", ",".join(CLASSICAL)]
    result = runner.invoke(app, [*args, "--cluster", client.scheduler.address])
    assert result.exit_code == 0, result.output
    load = json.loads((out / "run.json").read_text())["extract"]["load"]
    assert load.startswith("in one piece on the client") and "categor" in load
