"""Running the API under uvicorn: one process, or N worker processes sharing one socket.

With ``workers > 1`` the parent binds the socket, forks the workers (each builds its own app,
store connections and cache after the fork) and forwards SIGINT/SIGTERM to them; a worker that
dies is replaced. Forking keeps the settings object as it is (no re-reading of files or the
environment in the workers). Prometheus metrics then use prometheus-client's multiprocess mode
in a temporary directory, so any worker's ``/metrics`` reports all of them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from sparecast.config import Settings

__all__ = ["serve", "uvicorn_options"]


def uvicorn_options(log_level: str = "warning") -> dict[str, Any]:
    """uvicorn settings of the fast path: uvloop, httptools, no per-request access log."""
    return {
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        "log_level": log_level,
        "lifespan": "on",
        "timeout_graceful_shutdown": 5,
        "backlog": 4096,
    }


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.set_inheritable(True)
    return sock


def _worker(settings: Settings, data_dir: Path, sock: socket.socket, metrics_dir: Path) -> None:
    import uvicorn
    from prometheus_client import values

    from sparecast.service.app import create_app

    # Metrics built from here on keep their values in files of PROMETHEUS_MULTIPROC_DIR (the
    # choice prometheus-client made at import time may predate the variable).
    values.ValueClass = values.MultiProcessValue()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    app = create_app(settings, data_dir, metrics_multiprocess_dir=metrics_dir)
    server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options()))
    server.run(sockets=[sock])


def serve(
    settings: Settings,
    data_dir: Path,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    log_level: str = "warning",
) -> None:
    """Serve the API of ``data_dir`` until interrupted; host, port and workers default to the
    ``[service]`` settings."""
    import uvicorn

    host = host or settings.service.host
    port = port or settings.service.port
    workers = workers or settings.service.workers
    if workers == 1:
        from sparecast.service.app import create_app

        uvicorn.run(
            create_app(settings, data_dir), host=host, port=port, **uvicorn_options(log_level)
        )
        return

    sock = _bind(host, port)
    metrics_dir = Path(tempfile.mkdtemp(prefix="sparecast-metrics-"))
    # where the workers' prometheus-client values go (read by MultiProcessValue)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    children: set[int] = set()
    stopping = False

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                _worker(settings, data_dir, sock, metrics_dir)
            except BaseException:  # noqa: BLE001 - the parent logs the exit code
                code = 1
            os._exit(code)
        children.add(pid)

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                children.discard(pid)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"sparecast serve: http://{host}:{port} ({workers} workers)", flush=True)
    try:
        for _ in range(workers):
            spawn()
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            children.discard(pid)
            if not stopping:
                print(f"worker {pid} exited ({status}); starting another", flush=True)
                time.sleep(0.5)
                spawn()
    finally:
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
