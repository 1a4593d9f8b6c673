"""The web app's background warm-up: the pages' tables are computed once (at start, by the
warm-up, while requests arriving meanwhile wait for that computation rather than repeat it) and
again only when a plan file changes, which the warm-up notices by itself."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
from fastapi.testclient import TestClient

from sparecast.config import Settings
from sparecast.service import create_app
from sparecast.service.web.pages import WebApp

from .conftest import web_settings

TABLES = (
    "accuracy",
    "suppliers",
    "orders",
    "realised",
    "expectation",
    "sorted:items:default",
    "sorted:orders:default",
    "sorted:accuracy:default",
)


def _wait(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the warm-up did not finish in time"
        time.sleep(0.02)


def _counts(web: WebApp) -> dict[str, int]:
    return {name: web.computed[name] for name in TABLES}


def test_tables_are_computed_once_and_again_after_a_plan_change(data_dir: Path) -> None:
    app = create_app(Settings(**web_settings(warm_interval_s=0.05)), data_dir)
    with TestClient(app) as client:
        web: WebApp = app.state.sparecast_web
        # requests right at start, concurrently with the warm-up and with each other
        paths = ["/app/accuracy", "/app/accuracy", "/app", "/app/orders", "/app/items"] * 2
        with ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(lambda p: client.get(p).status_code, paths))
        assert codes == [200] * len(paths)
        passes = web.warm_passes
        _wait(lambda: web.warm_passes >= passes + 2)  # a pass finished after the requests
        assert _counts(web) == dict.fromkeys(TABLES, 1)
        assert web.data.reads()["policy"] == 1
        for path in ("/app", "/app/orders", "/app/items", "/app/accuracy", "/app/suppliers"):
            assert client.get(path).status_code == 200
        assert _counts(web) == dict.fromkeys(TABLES, 1)
        assert web.last_warm_s is not None

        # a new plan (one item fewer) written as `sparecast plan` does: by a rename
        policy = pl.read_parquet(data_dir / "policy.parquet")
        gone = policy.filter(pl.col("suggested_order") > 0).sort("order_rank")["unique_id"][0]
        policy.filter(pl.col("unique_id") != gone).write_parquet(data_dir / "policy.tmp")
        os.replace(data_dir / "policy.tmp", data_dir / "policy.parquet")
        # picked up without a request: the plan is read and its tables derived once more
        _wait(lambda: web.computed["sorted:orders:default"] == 2)
        passes = web.warm_passes
        _wait(lambda: web.warm_passes >= passes + 1)  # the pass that noticed it has finished
        assert web.data.reads()["policy"] == 2
        counts = _counts(web)
        assert counts["accuracy"] == counts["orders"] == counts["suppliers"] == 2
        assert counts["sorted:items:default"] == 2
        assert counts["realised"] == 2  # keyed on the plan's categories
        assert counts["expectation"] == 1  # the stored runs did not change
        html = client.get("/app").text
        assert f">{policy.height - 1:,}<" in html
        orders = client.get("/app/orders").text
        assert f'data-id="{gone}"' not in orders
        assert _counts(web) == counts


def test_no_warm_up_computes_on_the_first_request(data_dir: Path) -> None:
    app = create_app(Settings(**web_settings(warm_interval_s=0)), data_dir)
    with TestClient(app) as client:
        web: WebApp = app.state.sparecast_web
        time.sleep(0.2)
        assert web.warm_passes == 0 and web.computed["accuracy"] == 0
        assert client.get("/app/accuracy").status_code == 200
        assert client.get("/app/accuracy").status_code == 200
        assert web.computed["accuracy"] == 1
