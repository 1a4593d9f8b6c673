"""The global LightGBM trained with lightgbm.dask on rows built per chunk on the workers of a
real 2-worker LocalCluster (sparecast.pipeline.dask_ml), against the single-process fit.

Tolerance: the cluster's model is not the one-process model. lightgbm.dask trains data-parallel
(one part of the rows per worker: bin boundaries found per worker and merged, bagging per
worker) and each chunk draws its own horizon steps and kept quiet rows. Measured on this panel,
two one-process fits that differ only in ``seed`` are 7-14 % apart in total forecast (per-item
correlation 0.98); the cluster's fit is as far from the one-process fit as that. So the tests
ask for what a different seed also gives: totals within 20 %, per-item forecasts correlated
above 0.9, and the backtest accuracy (mean MASE) within 15 %; the classical methods stay
identical.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from sparecast.config import load_settings
from sparecast.data.demo import generate_demo_erp
from sparecast.data.panel import DemandPanel
from sparecast.errors import MethodError
from sparecast.methods.ml import GlobalLightGBM
from sparecast.pipeline.core import run_core
from sparecast.pipeline.dask_ml import dask_model, fit_on_cluster, predict_chunk
from sparecast.pipeline.distributed import DaskEngine, _chunk, chunk_bounds
from sparecast.pipeline.engine import LOCAL

distributed = pytest.importorskip("distributed")
pytest.importorskip("lightgbm.dask")

H = 28


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    """Two single-threaded worker processes: lightgbm.dask's network (one LightGBM machine per
    worker) needs a process per worker."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def panel() -> DemandPanel:
    tables = generate_demo_erp(n_items=400, n_days=400, seed=3, end_date=date(2026, 10, 31))
    return DemandPanel.from_long(
        tables["demand"], id_col="item_id", time_col="date", target_col="quantity"
    )


def _close(local: np.ndarray, dask: np.ndarray) -> None:
    a, b = local.sum(axis=1), dask.sum(axis=1)
    assert abs(b.sum() / a.sum() - 1) < 0.2
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_lightgbm_trains_on_the_cluster_close_to_the_local_fit(
    client: distributed.Client, panel: DemandPanel
) -> None:
    """Rows per chunk of 100 items on the workers, one DaskLGBMRegressor fit, the level
    calibration on its rows; forecasts per chunk equal forecasts of the whole panel."""
    local = GlobalLightGBM(n_estimators=60).fit(panel, H)
    bounds = chunk_bounds(panel.n_items, 100)
    model, timings = fit_on_cluster(
        client, GlobalLightGBM(n_estimators=60), panel, H, bounds, _chunk
    )
    assert model.model_.num_trees() == 60
    assert set(timings) == {"rows_s", "train_s", "calibrate_s"}
    # max_rows bounds the rows of all chunks together, like one process's fit
    assert 0.8 < model.n_train_rows_ / local.n_train_rows_ < 1.2
    assert model.level_[1].size == local.level_[1].size  # calibrated in as many bins
    whole = predict_chunk(model, panel, H)[0]
    per_chunk = np.concatenate([predict_chunk(model, _chunk(panel, a, b), H)[0] for a, b in bounds])
    np.testing.assert_allclose(per_chunk, whole)
    _close(local.predict(), whole)
    with pytest.raises(MethodError, match="predict\\(panel, h\\)"):
        model.predict()


def test_run_core_on_dask_trains_lightgbm_there(
    client: distributed.Client, panel: DemandPanel
) -> None:
    """run_core on the DaskEngine: LightGBM fitted twice on the cluster (before the earliest
    backtest origin, then on the whole panel), its forecasts made per chunk; the classical
    methods' scores are identical to one process's, LightGBM's close."""
    settings = load_settings(
        methods=["croston", "sba", "lightgbm"],
        method_params={"lightgbm": {"n_estimators": 40}},
    )
    seen: list[str] = []
    engine = DaskEngine(client, 150, progress=lambda label, d, n: seen.append(label))
    ref = run_core(panel, settings, engine=LOCAL)
    got = run_core(panel, settings, engine=engine)
    assert ref.backtest is not None and got.backtest is not None and got.forecasts is not None
    assert ref.forecasts is not None
    assert got.backtest.methods == ref.backtest.methods
    for step in ("backtest", "forecast"):
        assert engine.timings[f"{step}_lightgbm_fit_s"] > 0
        assert sum(label.startswith(f"{step} lightgbm rows chunk") for label in seen) == 3
    mase = [
        r.backtest.scores.filter(pl.col("method") == "lightgbm")["mase"].mean() for r in (ref, got)
    ]
    assert abs(mase[1] / mase[0] - 1) < 0.15, mase
    n = panel.n_items
    _close(
        ref.forecasts["lightgbm"].to_numpy().reshape(n, H),
        got.forecasts["lightgbm"].to_numpy().reshape(n, H),
    )
    assert_frame_equal(
        got.forecasts.select("unique_id", "ds"), ref.forecasts.select("unique_id", "ds")
    )


def test_only_built_in_objectives_train_on_dask(panel: DemandPanel) -> None:
    """The asymmetric objective is a Python callable: it stays on the client (None here)."""
    assert dask_model("lightgbm", "D", {"lightgbm": {"objective": "asymmetric"}}) is None
    assert dask_model("croston", "D", None) is None
    model = dask_model("lightgbm", "D", {"lightgbm": {"n_estimators": 7}})
    assert isinstance(model, GlobalLightGBM) and model.n_estimators == 7
