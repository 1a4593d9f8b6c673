"""Fixtures of the API tests: a small real demo run directory (SQLite store), a hand-built run
with quantiles, an inventory plan file, a scratch PostgreSQL database and a TCP proxy in front of
PostgreSQL that a test can cut and restore (our own redis-server is the root conftest's
``redis_server``).

Servers that cannot be reached skip the test, except under CI=true where they fail it."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner
from utils.servers import (
    PG_SERVER_URL,
    TcpProxy,
    pg_server,
)

from sparecast.cli import app as cli_app
from sparecast.config import Settings
from sparecast.service import create_app
from sparecast.store import ForecastStore, RunMeta

API_KEY = "test-key-7f3a"
API_KEY_HASH = hashlib.sha256(API_KEY.encode()).hexdigest()
AUTH = {"X-API-Key": API_KEY}


def service_settings(**service: Any) -> dict[str, Any]:
    """Settings overrides with the test API key (and ``service`` keys on top); the web app's
    background warm-up off (tests/service/web test it), so that no thread compiles beside a
    test's own lazy imports (CPython 3.11.7 can fail two concurrent AST builds, gh-106905)."""
    return {"service": {"api_key_hashes": [API_KEY_HASH], **service}, "web": {"warm_interval_s": 0}}


def metric_value(client: TestClient, line_prefix: str) -> float:
    """The value of the first ``/metrics`` sample whose line starts with ``line_prefix``."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_prefix + " ") or line.startswith(line_prefix + "{"):
            if line.split(" ")[0] == line_prefix or line.startswith(line_prefix):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_prefix} not in /metrics")


def cache_lookups(client: TestClient, result: str) -> float:
    """How many forecast cache lookups had ``result`` (hit, miss, error) so far."""
    return metric_value(client, f'sparecast_cache_requests_total{{result="{result}"}}')


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``sparecast demo`` run of 30 items (SQLite ERP and history store), made once."""
    out = tmp_path_factory.mktemp("demo") / "run"
    result = CliRunner().invoke(
        cli_app,
        [
            "demo",
            "--output",
            str(out),
            "--items",
            "30",
            "--days",
            "150",
            "--methods",
            "naive,ma,sba,tsb",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (out / "history.sqlite").is_file()
    return out


@pytest.fixture
def data_dir(demo_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the demo directory (tests may add plan files or retrain into it)."""
    target = tmp_path / "data"
    shutil.copytree(demo_dir, target)
    return target


def run_json(data_dir: Path) -> dict[str, Any]:
    return json.loads((data_dir / "run.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture
def client(data_dir: Path) -> Iterator[TestClient]:
    """The API over the demo copy (LRU cache, SQLite store), lifespan running."""
    app = create_app(Settings(**service_settings()), data_dir)
    with TestClient(app) as c:
        yield c


# -- a hand-built run with quantiles ----------------------------------------------------------

QUANTILE_ITEMS = ["A-1", "B/2", "C 3"]  # a slash and a space: ids are paths, not path segments
QUANTILE_START = date(2026, 11, 2)
QUANTILE_H = 4


def quantile_frame() -> pl.DataFrame:
    """Forecasts with q50/q90/q97.5 whose values encode (item, step): easy to check by hand."""
    rows = []
    for i, item in enumerate(QUANTILE_ITEMS):
        for step in range(QUANTILE_H):
            base = 10.0 * (i + 1) + step
            rows.append(
                {
                    "unique_id": item,
                    "ds": QUANTILE_START + timedelta(days=step),
                    "forecast": base,
                    "method": "tsb" if i else "sba",
                    "q50": base - 0.5,
                    "q90": base + 2.0,
                    "q97.5": base + 3.5,
                }
            )
    return pl.DataFrame(rows)


def write_quantile_run(url: str, config: dict[str, Any] | None = None) -> int:
    store = ForecastStore(url)
    try:
        if not store.is_migrated():
            store.migrate()
        meta = RunMeta(
            sparecast_version="0.1.0",
            config=config or {"test": "quantiles"},
            data_start=date(2025, 11, 1),
            data_end=QUANTILE_START - timedelta(days=1),
            freq="D",
            n_items=len(QUANTILE_ITEMS),
            n_periods=366,
            horizon=QUANTILE_H,
            source="test",
        )
        return store.write_run(meta, quantile_frame())
    finally:
        store.dispose()


@pytest.fixture
def quantile_dir(tmp_path: Path) -> Path:
    """A data directory whose history.sqlite holds one hand-built run with quantiles."""
    out = tmp_path / "qrun"
    out.mkdir()
    write_quantile_run(f"sqlite:///{out / 'history.sqlite'}")
    return out


def write_policy(data_dir: Path, items: list[str]) -> pl.DataFrame:
    """An inventory plan file as ``sparecast plan`` writes it (values from the item's index)."""
    n = len(items)
    frame = pl.DataFrame(
        {
            "unique_id": items,
            "safety_stock": [1.5 * i for i in range(n)],
            "reorder_point": [2.0 * i + 1 for i in range(n)],
            "order_up_to": [3.0 * i + 4 for i in range(n)],
            "on_hand": [float(i % 3) for i in range(n)],
            "suggested_order": [float(i) for i in range(n)],
            "stockout_risk": [0.01 * i for i in range(n)],
            "service_target": [0.95] * n,
            "lead_time_mean_days": [12.5] * n,
            "supplier_id": [f"S{i:03d}" for i in range(n)],
            "next_order_date": [date(2026, 11, 3)] * n,
        }
    )
    frame.write_parquet(data_dir / "policy.parquet")
    return frame


# -- servers -------------------------------------------------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh scratch PostgreSQL database, dropped after the test."""
    sa = pytest.importorskip("sqlalchemy")
    name = f"sparecast_api_{uuid.uuid4().hex[:12]}"
    server = pg_server()
    with server.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_SERVER_URL}/{name}"
    finally:
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture
def pg_proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxy.restore()
    try:
        yield proxy
    finally:
        proxy.cut()
