"""Bounded requests (service/limits.py and the routes' checks): the body size limit before
parsing, the API key before the body, short error texts, the horizon and batch limits, strict
request types and repeated query parameters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sparecast.config import Settings
from sparecast.service import create_app

from .conftest import AUTH, service_settings


@pytest.fixture
def small(data_dir: Path) -> Iterator[TestClient]:
    """The API with a 2 KiB body limit and a max_horizon of 10."""
    settings = Settings(horizon=10, max_horizon=10, **service_settings(max_body_bytes=2048))
    with TestClient(create_app(settings, data_dir)) as c:
        yield c


def _chunks(total: int, size: int = 512) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size


def test_a_body_announced_larger_than_the_limit_is_413(small: TestClient) -> None:
    body = b'{"item_ids": ["P000001"], "pad": "' + b"x" * 3000 + b'"}'
    for headers in (AUTH, {}):
        r = small.post("/forecast/items", content=body, headers=headers)
        assert r.status_code == 413
        assert "larger than 2048 bytes (service.max_body_bytes)" in r.json()["detail"]


def test_a_chunked_body_is_counted_and_stopped_at_the_limit(small: TestClient) -> None:
    r = small.post("/forecast/items", content=_chunks(10_000), headers=AUTH)
    assert r.status_code == 413
    ok = small.post(
        "/forecast/items",
        content=iter([b'{"item_ids": ', b'["P000001"]}']),
        headers={**AUTH, "content-type": "application/json"},
    )
    assert ok.status_code == 200


def test_the_key_is_checked_before_the_body_is_read(small: TestClient) -> None:
    read = 0

    def body() -> Iterator[bytes]:
        nonlocal read
        for chunk in _chunks(1024):
            read += len(chunk)
            yield chunk

    r = small.post("/forecast/items", content=body())
    assert r.status_code == 401
    assert "missing API key" in r.json()["detail"]
    assert r.headers["www-authenticate"] == "ApiKey"
    wrong = small.post("/forecast/items", content=b"{not json", headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401  # not 422: the body was never parsed
    assert "invalid API key" in wrong.json()["detail"]


def test_a_huge_item_id_gets_a_small_404(client: TestClient) -> None:
    item = "Z" * 60_000  # httpx caps URLs at 65,536 characters
    for r in (
        client.get(f"/forecast/item/{item}"),
        client.get(f"/items/{item}/policy"),
        client.post("/forecast/items", json={"item_ids": ["Z" * 500_000]}, headers=AUTH),
    ):
        assert r.status_code == 404, r.text[:200]
        assert len(r.content) < 300
        assert "ZZZZ…'" in r.json()["detail"]


def test_validation_errors_quote_a_short_prefix_of_the_input(client: TestClient) -> None:
    r = client.post(
        "/forecast/items", json={"item_ids": ["P1"], "horizon": "9" * 100_000}, headers=AUTH
    )
    assert r.status_code == 422
    assert len(r.content) < 1000
    unknown_field = client.post(
        "/forecast/items", json={"item_ids": ["P1"], "k" * 100_000: 1}, headers=AUTH
    )
    assert unknown_field.status_code == 422
    assert len(unknown_field.content) < 1000


def test_horizon_above_max_horizon_is_422_naming_the_limit(small: TestClient) -> None:
    r = small.get("/forecast/item/P000001", params={"horizon": 11})
    assert r.status_code == 422
    error = r.json()["detail"][0]
    assert error["loc"] == ["query", "horizon"]
    assert "max_horizon=10" in error["msg"]
    batch = small.post(
        "/forecast/items", json={"item_ids": ["P000001"], "horizon": 11}, headers=AUTH
    )
    assert batch.status_code == 422
    assert batch.json()["detail"][0]["loc"] == ["body", "horizon"]
    assert "max_horizon=10" in batch.json()["detail"][0]["msg"]
    assert small.get("/forecast/item/P000001", params={"horizon": 10}).status_code == 200


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"item_ids": ["P000001"], "horizon": True}, "horizon"),
        ({"item_ids": ["P000001"], "horizon": 3.0}, "horizon"),
        ({"item_ids": ["P000001"], "horizon": ["3"]}, "horizon"),  # "3" is 3 periods, "3w" too
        ({"item_ids": ["P000001"], "quantiles": ["90"]}, "quantiles"),
        ({"item_ids": ["P000001"], "quantiles": [True]}, "quantiles"),
    ],
)
def test_request_types_are_strict(
    client: TestClient, payload: dict[str, object], field: str
) -> None:
    r = client.post("/forecast/items", json=payload, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["body", field]


def test_a_repeated_single_valued_query_parameter_is_422(client: TestClient) -> None:
    assert client.get("/forecast/item/P000001?horizon=3").status_code == 200  # cached now
    r = client.get("/forecast/item/P000001?horizon=3&horizon=5")
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "horizon"]
    assert "more than once" in r.json()["detail"][0]["msg"]
    # a list parameter may repeat
    assert client.get("/forecast/item/P000001?quantiles=90&quantiles=97.5").status_code != 500
