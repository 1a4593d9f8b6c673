"""Faults of the API (issue 10): oversized bodies sent to a real ``sparecast serve`` (Content-Length
and chunked, with and without a key: the server's memory does not grow by the body size and a
concurrent GET stays fast), PostgreSQL frozen for 12 s behind a TCP proxy that stops forwarding
(uncached requests and /health answer within the store deadline, then recover), and Redis
stopped and restarted (answers from the store, /health degraded, then ok again).

Everything runs on 127.0.0.1 with bounded loops and sizes for a 2-core machine; the fixtures of
this module are its own (tests/faults/ is shared with the pipeline fault tests)."""

from __future__ import annotations

import hashlib
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from utils.runs import make_forecasts, make_meta
from utils.servers import PgDatabases, RedisProcess, TcpProxy, served

from sparecast.config import Settings
from sparecast.service import create_app
from sparecast.store import ForecastStore

pytestmark = pytest.mark.slow

API_KEY = "faults-key-31c9"
API_KEY_HASH = hashlib.sha256(API_KEY.encode()).hexdigest()
AUTH = {"X-API-Key": API_KEY}
ITEMS = [f"i{k}" for k in range(40)]
HORIZON = 8


def _settings(**kw: Any) -> Settings:
    service = {"api_key_hashes": [API_KEY_HASH]}
    service.update(kw.pop("service", {}))
    return Settings(service=service, **kw)


def _write_run(url: str) -> None:
    store = ForecastStore(url)
    try:
        store.migrate()
        store.write_run(
            make_meta(HORIZON, len(ITEMS)), make_forecasts(len(ITEMS), HORIZON, levels=(90,))
        )
    finally:
        store.dispose()


def _until(check: Callable[[], bool], timeout_s: float = 20.0) -> float:
    """Seconds until ``check()`` is true (fails after ``timeout_s``)."""
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < timeout_s, "condition not reached"
        time.sleep(0.2)
    return time.monotonic() - t0


def _timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    t0 = time.perf_counter()
    r = call()
    return r, time.perf_counter() - t0


# -- oversized bodies against a real server ---------------------------------------------------


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


ANNOUNCED = 200 * 1024 * 1024  # what each oversized request claims to send
SEND_BUDGET = 16 * 1024 * 1024  # what it sends at most


def _post_raw(port: int, *, key: bool, chunked: bool) -> tuple[int | None, int]:
    """POST /forecast/items announcing ``ANNOUNCED`` bytes (Content-Length) or streaming chunks,
    sending at most ``SEND_BUDGET`` and stopping as soon as the server answers or stops
    reading. Returns (status or None, body bytes sent)."""
    head = [
        "POST /forecast/items HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {ANNOUNCED}",
    ]
    if key:
        head.append(f"X-API-Key: {API_KEY}")
    block = b'{"item_ids": ["' + b"x" * (64 * 1024 - 15)
    sent = 0
    response = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        s.settimeout(0.5)
        while sent < SEND_BUDGET:
            if select.select([s], [], [], 0)[0]:
                break  # the server answered already
            data = f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block
            try:
                s.sendall(data)
            except OSError:  # a timeout (the server stopped reading) or a reset
                break
            sent += len(block)
        s.settimeout(5)
        try:
            while b"\r\n\r\n" not in response:
                part = s.recv(65536)
                if not part:
                    break
                response += part
        except OSError:
            pass
    if not response.startswith(b"HTTP/1.1 "):
        return None, sent
    return int(response.split(b" ", 2)[1]), sent


def test_oversized_bodies_do_not_grow_the_server_or_stall_reads(tmp_path: Path) -> None:
    _write_run(f"sqlite:///{tmp_path / 'history.sqlite'}")
    env = {"SPARECAST_SERVICE__API_KEY_HASHES": json.dumps([API_KEY_HASH])}
    with served(tmp_path, env=env) as app:
        base, pid = app.base, app.proc.pid
        port = int(base.rsplit(":", 1)[1])
        with httpx.Client(base_url=base, timeout=10) as http:
            for item in ITEMS[:5]:  # warm: cached answers, modules loaded
                assert http.get(f"/forecast/item/{item}").status_code == 200
            quiet = [_timed(lambda: http.get("/forecast/item/i0"))[1] for _ in range(50)]
        before = _rss_mb(pid)

        stop = threading.Event()
        latencies: list[float] = []

        failures: list[str] = []

        def reader() -> None:
            with httpx.Client(base_url=base, timeout=10) as http:
                while not stop.is_set() and len(latencies) < 20_000:
                    try:
                        r, dt = _timed(lambda: http.get("/forecast/item/i1"))
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                        continue
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:100]}")
                    latencies.append(dt)
                    time.sleep(0.005)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        results = {}
        try:
            _until(lambda: len(latencies) >= 20)  # the reader runs
            for round_ in range(4):
                for key in (False, True):
                    for chunked in (False, True):
                        results[(key, chunked, round_)] = _post_raw(port, key=key, chunked=chunked)
            count = len(latencies)
            _until(lambda: len(latencies) >= count + 20)  # and still runs after
        finally:
            stop.set()
            thread.join(timeout=30)
        after = _rss_mb(pid)

    print(  # the measured figures (pytest -s)
        f"\nRSS before {before:.1f} MB, after {after:.1f} MB; GET worst quiet "
        f"{max(quiet) * 1000:.1f} ms, worst during {max(latencies, default=0) * 1000:.1f} ms "
        f"({len(latencies)} GETs); answers {results}; failures {failures[:3]}"
    )
    assert not failures
    for (key, chunked, _), (status, sent) in results.items():
        if not key:  # refused before the body is read: 401, or 413 for the announced size
            assert status == (401 if chunked else 413), (key, chunked, status)
            assert sent < SEND_BUDGET
        elif not chunked:
            assert status == 413
        else:
            assert status in (413, None), status  # 413, or the connection cut at the limit
            assert sent < SEND_BUDGET  # the server stopped reading at the limit
    assert after - before < 40, (before, after)  # far below one 200 MB body
    assert latencies and max(latencies) < 0.5, max(latencies)


# -- PostgreSQL frozen ------------------------------------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    dbs = PgDatabases()  # unreachable PostgreSQL: skipped (a failure under CI=true)
    try:
        yield dbs.create()
    finally:
        dbs.drop_all()


FREEZE_S = 12.0
DEADLINE_S = 3.0


def test_frozen_postgresql_answers_within_the_deadline_and_recovers(
    tmp_path: Path, pg_url: str
) -> None:
    _write_run(pg_url)
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxy.restore()
    via = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    settings = _settings(
        store={"url": via}, service={"store_timeout_s": DEADLINE_S, "version_refresh_s": 0.5}
    )
    try:
        with TestClient(create_app(settings, tmp_path)) as client:
            cached = client.get("/forecast/item/i0")
            assert cached.status_code == 200
            assert client.get("/health").json() == {"status": "ok"}

            proxy.pause()
            frozen_at = time.monotonic()
            hit, hit_s = _timed(lambda: client.get("/forecast/item/i0"))
            assert hit.content == cached.content and hit_s < 0.5
            miss, miss_s = _timed(lambda: client.get("/forecast/item/i1"))
            assert miss.status_code == 503
            assert "unreachable and the item is not cached" in miss.json()["detail"]
            health, health_s = _timed(lambda: client.get("/health"))
            assert health.json() == {"status": "degraded"}
            detail = client.get("/health", headers=AUTH).json()
            assert detail["dependencies"]["store"]["state"] == "down"

            # many uncached requests at once: each answers within about the deadline, and the
            # bounded store calls keep the worker threads free
            def uncached(item: str) -> tuple[int, float]:
                r, dt = _timed(lambda: client.get(f"/forecast/item/{item}"))
                return r.status_code, dt

            with ThreadPoolExecutor(16) as pool:
                burst = list(pool.map(uncached, ITEMS[2:18]))
            later: list[float] = []
            while time.monotonic() - frozen_at < FREEZE_S - DEADLINE_S or len(later) < 2:
                r, dt = _timed(lambda: client.get("/forecast/item/i35"))
                assert r.status_code == 503
                later.append(dt)
            hit2, hit2_s = _timed(lambda: client.get("/forecast/item/i0"))
            assert hit2.status_code == 200 and hit2_s < 0.5
            while time.monotonic() - frozen_at < FREEZE_S:
                time.sleep(0.1)
            proxy.resume()
            recovery_s = _until(lambda: client.get("/forecast/item/i1").status_code == 200)
            _until(lambda: client.get("/health").json() == {"status": "ok"})
            assert client.get("/forecast/item/i35").status_code == 200
    finally:
        proxy.resume()
        proxy.cut()

    burst_s = [dt for _, dt in burst]
    print(  # the measured figures (pytest -s)
        f"\nfrozen PostgreSQL: cached hit {hit_s * 1000:.0f} ms, uncached {miss_s:.2f} s, "
        f"/health {health_s:.2f} s, 16 concurrent uncached worst {max(burst_s):.2f} s, "
        f"{len(later)} later uncached worst {max(later, default=0):.2f} s, recovered "
        f"{recovery_s:.1f} s after the resume"
    )
    assert {code for code, _ in burst} == {503}
    limit = DEADLINE_S + 1.5
    assert miss_s < limit and health_s < limit
    assert later and max(burst_s) < limit and max(later) < limit


# -- Redis stopped and restarted --------------------------------------------------------------


def test_redis_stopped_answers_from_the_store_and_recovers(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    _write_run(f"sqlite:///{tmp_path / 'history.sqlite'}")
    settings = _settings(store={"cache_url": redis_server.url})
    with TestClient(create_app(settings, tmp_path)) as client:
        first = client.get("/forecast/item/i0")
        assert first.status_code == 200
        assert client.get("/health").json() == {"status": "ok"}

        redis_server.stop()
        worst = 0.0
        for item in ("i0", "i1", "i2"):
            r, dt = _timed(lambda item=item: client.get(f"/forecast/item/{item}"))  # type: ignore[misc]
            assert r.status_code == 200
            worst = max(worst, dt)
        assert client.get("/forecast/item/i0").content == first.content  # from the store
        batch = client.post("/forecast/items", json={"item_ids": ["i3", "i4"]}, headers=AUTH)
        assert batch.status_code == 200
        assert client.get("/health").json() == {"status": "degraded"}
        detail = client.get("/health", headers=AUTH).json()
        assert detail["dependencies"]["cache"]["state"] == "down"

        redis_server.start()  # same port, empty
        recovery_s = _until(lambda: client.get("/health").json() == {"status": "ok"})
        assert client.get("/forecast/item/i0").content == first.content
        assert client.get("/forecast/item/i0").content == first.content  # a hit again
    print(f"\nRedis down: worst read {worst * 1000:.0f} ms; ok {recovery_s:.1f} s after restart")
    assert worst < 1.0
