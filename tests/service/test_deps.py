"""The route dependencies (service/deps.py): API key checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from sparecast.config import Settings
from sparecast.service import create_app
from sparecast.service.deps import key_matches

from .conftest import AUTH


@given(key=st.text(min_size=1, max_size=40), other=st.text(min_size=1, max_size=40))
def test_key_matches_exactly_the_configured_keys(key: str, other: str) -> None:
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
    decoy = hashlib.sha256(b"decoy").hexdigest()
    assert key_matches(key, [decoy, digest])
    assert not key_matches(key, [decoy])
    assert not key_matches(key, [])
    assert key_matches(other, [digest]) == (other == key)


def test_without_configured_keys_post_says_how_to_open_it(data_dir: Path) -> None:
    with TestClient(create_app(Settings(), data_dir)) as client:
        r = client.post("/forecast/items", json={"item_ids": ["P000001"]}, headers=AUTH)
        assert r.status_code == 401
        assert "service.api_key_hashes" in r.json()["detail"]
