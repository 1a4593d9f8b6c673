"""Fixtures of the web app's tests: the API over a copy of the demo run with one planner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sparecast.config import Settings
from sparecast.service import create_app
from sparecast.service.web.auth import hash_password

PLANNER = "ann"
PASSWORD = "s3cret-pw"
PASSWORD_HASH = hash_password(PASSWORD)


def web_settings(**web: Any) -> dict[str, Any]:
    """Settings with the planner user (and ``web`` keys on top)."""
    return {"web": {"users": {PLANNER: PASSWORD_HASH}, "secret": "t" * 32, **web}}


def csrf_of(client: TestClient, path: str = "/app/login") -> str:
    """The CSRF token a page's forms carry (loads ``path`` to get the CSRF cookie)."""
    html = client.get(path).text
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def sign_in(client: TestClient, user: str = PLANNER, password: str = PASSWORD) -> None:
    token = csrf_of(client)
    r = client.post(
        "/app/login",
        data={"username": user, "password": password, "csrf_token": token, "next": "/app"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


@pytest.fixture
def web_client(data_dir: Path) -> Iterator[TestClient]:
    """The app over the demo copy, a planner configured, nobody signed in."""
    app = create_app(Settings(**web_settings()), data_dir)
    with TestClient(app) as c:
        yield c
