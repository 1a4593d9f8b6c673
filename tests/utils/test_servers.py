"""The shared server helpers: the skip-or-fail rule for unreachable servers, free ports, our own
redis-server, the TCP proxy that cuts connections."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from utils.servers import TcpProxy, free_port, running_redis, unreachable


def test_unreachable_skips_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="^db down$"):
        unreachable("db down")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"db down \(CI=true: integration servers"):
        unreachable("db down")


def test_free_port_can_be_listened_on() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen(1)


@pytest.mark.integration
def test_running_redis_answers_and_stops(tmp_path: Path) -> None:
    with running_redis(tmp_path) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            assert s.recv(16).startswith(b"+PONG")
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
    assert server.proc is None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_tcp_proxy_relays_cuts_and_restores() -> None:
    """An echo server behind the proxy: bytes pass, a cut refuses connections, restore
    listens again on the same port."""
    upstream = socket.socket()
    upstream.bind(("127.0.0.1", 0))
    upstream.listen(8)

    def echo() -> None:
        while True:
            try:
                conn, _ = upstream.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    proxy = TcpProxy(upstream.getsockname())
    proxy.restore()
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as s:
            s.sendall(b"ping")
            assert s.recv(16) == b"ping"
        proxy.cut()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
        proxy.restore()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as s:
            s.sendall(b"again")
            assert s.recv(16) == b"again"
    finally:
        proxy.cut()
        upstream.close()
