"""Speed of the API: cached single-item reads and 1,000-item batches, load from another process.

    python benchmarks/api.py [--items 2016] [--workers 1 2] [--duration 10] [--rate 1500] [--redis]

Builds a demo run directory (``sparecast demo``), starts ``sparecast serve`` on it as a
subprocess for each worker count and measures, from separate load-generator processes on
loopback, every phase bounded in time:

1. throughput of cached ``GET /forecast/item/{id}`` with 50 and 200 concurrent keep-alive
   connections (closed loop, as fast as the server answers): req/s, p50, p99. The load comes
   from ``wrk`` when it is installed (``apt-get install wrk``; C, one thread), otherwise from
   the asyncio client of this file in a second process;
2. latency at a fixed offered rate (``--rate``, default 1,500 req/s) over 50 and 200
   connections (open loop; latency counted from each request's scheduled time, so a stall is
   not hidden by the client waiting: no coordinated omission): p50, p99, achieved req/s;
3. ``POST /forecast/items`` with 1,000 items: cached (the same batch again) and uncached (each
   request with another horizon, so a new cache key and a store read of 1,000 items).

Goals (issue 5, 2-core machine): cached single-item reads p99 < 20 ms and >= 1,500 req/s;
1,000-item batch < 150 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing as mp
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

KEY = "benchmark-key"
ITEM = "P000042"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- a minimal HTTP/1.1 keep-alive client (asyncio streams, uvloop when present) -------------


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bytes]:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    match = re.search(rb"(?i)content-length: *(\d+)", head)
    body = await reader.readexactly(int(match.group(1))) if match else b""
    return status, body


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


def _post(path: str, payload: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {KEY}\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


async def _closed_loop(port: int, conns: int, duration: float, raw: bytes) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + duration

    async def one() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            status, _ = await _request(reader, writer, raw)
            latencies.append(time.perf_counter() - t0)
            errors += status != 200
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(conns)))
    elapsed = time.perf_counter() - t0
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": quantile(latencies, 0.5) * 1e3,
        "p99_ms": quantile(latencies, 0.99) * 1e3,
        "errors": errors,
    }


async def _open_loop(
    port: int, conns: int, duration: float, rate: float, raw: bytes
) -> dict[str, float]:
    """Requests scheduled at ``rate`` per second, spread round-robin over ``conns``
    connections; latency = answer time - scheduled time."""
    n = int(rate * duration)
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter() + 0.5  # after the connections are open

    async def one(k: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(k, n, conns):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status, _ = await _request(reader, writer, raw)
            latencies.append(time.perf_counter() - scheduled)
            errors += status != 200
        writer.close()

    await asyncio.gather(*(one(k) for k in range(conns)))
    elapsed = time.perf_counter() - start
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": quantile(latencies, 0.5) * 1e3,
        "p99_ms": quantile(latencies, 0.99) * 1e3,
        "errors": errors,
    }


def _client_main(kind: str, args: dict[str, Any], out: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    raw = args.pop("raw")
    fn = _closed_loop if kind == "closed" else _open_loop
    out.send(asyncio.run(fn(raw=raw, **args)))
    out.close()


def in_client_process(kind: str, **args: Any) -> dict[str, float]:
    """Run a load phase in a separate process (the server has its own)."""
    parent, child = mp.Pipe(duplex=False)
    proc = mp.get_context("spawn").Process(target=_client_main, args=(kind, args, child))
    proc.start()
    child.close()
    result: dict[str, float] = parent.recv()
    proc.join(timeout=60)
    return result


def wrk(port: int, conns: int, duration: float, path: str) -> dict[str, float]:
    """Closed-loop throughput with wrk (one thread)."""
    text = subprocess.run(
        ["wrk", "-t1", f"-c{conns}", f"-d{duration:g}s", "--latency", "--timeout", "5s"]
        + [f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 30,
    ).stdout
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def latency(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)\b", text)
        assert m, text
        return float(m.group(1)) * units[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    assert rps, text
    return {
        "rps": float(rps.group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "errors": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "",  # type: ignore[dict-item]
    }


async def _batches(port: int, ids: list[str], horizons: list[int | None]) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = []
    for h in horizons:
        payload = json.dumps({"item_ids": ids, "horizon": h}).encode()
        t0 = time.perf_counter()
        status, body = await _request(reader, writer, _post("/forecast/items", payload))
        out.append(time.perf_counter() - t0)
        assert status == 200, body[:300]
    writer.close()
    return out


# -- the run -------------------------------------------------------------------------------------


def make_data_dir(path: Path, items: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "sparecast.cli", "demo", "--output", str(path)]
        + ["--items", str(items), "--methods", "ma,sba,tsb", "--quiet"],
        check=True,
    )


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Our own redis-server (no persistence) on a free port."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        + ["--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def start_server(
    data: Path, port: int, workers: int, cache_url: str | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SPARECAST_SERVICE__API_KEY_HASHES": json.dumps([hashlib.sha256(KEY.encode()).hexdigest()]),
    }
    if cache_url:
        env["SPARECAST_STORE__CACHE_URL"] = cache_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparecast.cli", "serve", "--data", str(data)]
        + ["--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(_get("/health"))
                if b" 200 " in s.recv(200):
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=2016)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load phase")
    parser.add_argument("--rate", type=float, default=1500.0, help="offered req/s, open loop")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--data", type=Path, help="existing run directory (default: a new demo)")
    parser.add_argument(
        "--redis", action="store_true", help="cache in a redis-server of our own (default: LRU)"
    )
    args = parser.parse_args()
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
    tmp = Path(tempfile.mkdtemp(prefix="sparecast-api-bench-"))
    redis: subprocess.Popen[bytes] | None = None
    try:
        data = args.data or tmp / "run"
        if args.data is None:
            print(f"demo run: {args.items} items -> {data}", flush=True)
            make_data_dir(data, args.items)
        path = f"/forecast/item/{ITEM}"
        ids = [f"P{i:06d}" for i in range(1, min(1000, args.items) + 1)]
        rows = []
        redis, cache_url = start_redis(tmp) if args.redis else (None, None)
        cache = "Redis" if args.redis else "LRU"
        for workers in args.workers:
            port = free_port()
            server = start_server(data, port, workers, cache_url)
            try:
                # warm every worker's cache (LRU is per process) with many new connections
                for _ in range(20 * workers):
                    with socket.create_connection(("127.0.0.1", port)) as s:
                        s.sendall(_get(path))
                        s.recv(65536)
                for conns in (50, 200):
                    if use_wrk:
                        r = wrk(port, conns, args.duration, path)
                        client = "wrk"
                    else:
                        r = in_client_process(
                            "closed", port=port, conns=conns, duration=args.duration, raw=_get(path)
                        )
                        client = "python"
                    rows.append((workers, f"GET cached ({cache}), closed loop, {client}", conns, r))
                    print(rows[-1], flush=True)
                for conns in (50, 200):
                    r = in_client_process(
                        "open",
                        port=port,
                        conns=conns,
                        duration=args.duration,
                        rate=args.rate,
                        raw=_get(path),
                    )
                    phase = f"GET cached ({cache}), {args.rate:,.0f} req/s offered"
                    rows.append((workers, phase, conns, r))
                    print(rows[-1], flush=True)
                # batches: uncached (a new horizon: new keys, 1,000 items read from the store),
                # then cached (the same request again); every worker sees them in turn. The
                # horizons differ by request: 8..27 periods of 28 (answers a little smaller)
                asyncio.run(_batches(port, ids, [7] * workers))  # first store reads: warm-up
                cold = asyncio.run(_batches(port, ids, list(range(8, 28))))
                asyncio.run(_batches(port, ids, [None] * (5 * workers)))  # fill each worker
                warm = asyncio.run(_batches(port, ids, [None] * 50))
                for label, lat in (("uncached", cold), ("cached", warm)):
                    r = {
                        "rps": len(lat) / sum(lat),
                        "p50_ms": statistics.median(lat) * 1e3,
                        "p99_ms": quantile(lat, 0.99) * 1e3,
                        "errors": 0,
                    }
                    rows.append((workers, f"POST {len(ids):,} items, {label} ({cache})", 1, r))
                    print(rows[-1], flush=True)
            finally:
                server.terminate()
                server.wait(timeout=30)
        print()
        print("| workers | phase | connections | req/s | p50 ms | p99 ms | errors |")
        print("|---:|---|---:|---:|---:|---:|---:|")
        for workers, phase, conns, r in rows:
            print(
                f"| {workers} | {phase} | {conns} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {r['errors']} |"
            )
        print(f"\n{os.cpu_count()} CPUs; load generator: {'wrk' if use_wrk else 'python'} + python")
    finally:
        if redis is not None:
            redis.terminate()
            redis.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
