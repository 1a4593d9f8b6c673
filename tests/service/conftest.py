"""Fixtures of the API tests: a small real demo run directory (SQLite store), a hand-built run
with quantiles, an inventory plan file, our own redis-server processes, a scratch PostgreSQL
database and a TCP proxy in front of PostgreSQL that a test can cut and restore.

Servers that cannot be reached skip the test, except under CI=true where they fail it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from sparecast.cli import app as cli_app
from sparecast.config import Settings
from sparecast.service import create_app
from sparecast.store import ForecastStore, RunMeta

PG_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432"
API_KEY = "test-key-7f3a"
API_KEY_HASH = hashlib.sha256(API_KEY.encode()).hexdigest()
AUTH = {"X-API-Key": API_KEY}


def unreachable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: integration servers are required)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_settings(**service: Any) -> dict[str, Any]:
    """Settings overrides with the test API key (and ``service`` keys on top)."""
    return {"service": {"api_key_hashes": [API_KEY_HASH], **service}}


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


class RedisProcess:
    """Our own redis-server (no persistence) on a fixed free port, stopped and started at will."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    if shutil.which("redis-server") is None:
        unreachable("redis-server is not installed")
    server = RedisProcess(tmp_path)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        unreachable(f"cannot start redis-server: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh scratch PostgreSQL database, dropped after the test."""
    sa = pytest.importorskip("sqlalchemy")
    name = f"sparecast_api_{uuid.uuid4().hex[:12]}"
    server = sa.create_engine(
        f"{PG_SERVER_URL}/postgres",
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 3},
    )
    try:
        with server.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any connection problem means "not reachable"
        server.dispose()
        unreachable(f"PostgreSQL not reachable at 127.0.0.1:5432: {getattr(exc, 'orig', exc)}")
    try:
        yield f"{PG_SERVER_URL}/{name}"
    finally:
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


class TcpProxy:
    """A TCP relay 127.0.0.1:port -> target; ``cut()`` closes the listener and every relayed
    connection (the database looks down: connection refused), ``restore()`` listens again on
    the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        if self._listener is not None:
            try:  # wakes the thread blocked in accept(); close() alone would not on Linux
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.fixture
def pg_proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxy.restore()
    try:
        yield proxy
    finally:
        proxy.cut()
