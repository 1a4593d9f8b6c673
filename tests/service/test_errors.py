"""The app-level exception handlers (service/errors.py): each error type answers its status code
with ``{"detail": message}``, through real requests; store errors of forecast reads say what is
still served."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sparecast.errors import CacheUnavailable, SparecastError, StoreError, StoreUnavailable
from sparecast.service.errors import (
    MAX_DETAIL,
    JobConflict,
    NoPlan,
    NoRetrainSource,
    NoRun,
    NotFound,
    StoreDown,
    add_exception_handlers,
)

from .conftest import AUTH


def _raising(error: Exception) -> TestClient:
    app = FastAPI()
    add_exception_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("unknown item 'X'"), 404),
        (NoPlan("no inventory plan in /data; run `sparecast plan`"), 404),
        (JobConflict("ab" * 16), 409),
        (JobConflict(None), 409),
        (NoRetrainSource("no source to retrain on"), 409),
        (NoRun("the forecast store holds no run yet"), 503),
        (StoreDown("the forecast store is unreachable and the item is not cached"), 503),
    ],
)
def test_each_error_type_answers_its_status_and_message(error: Exception, status: int) -> None:
    with _raising(error) as client:
        r = client.get("/boom")
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"detail": str(error)}


@pytest.mark.parametrize(
    ("error", "detail"),
    [
        (
            StoreError("forecast store postgresql://u@db.internal:5432/x failed: no table"),
            "the forecast store failed to answer; the server log has the details",
        ),
        (
            StoreUnavailable("forecast store postgresql://u@db.internal:5432/x is unreachable"),
            "the forecast store is unreachable; retry later",
        ),
        (
            CacheUnavailable("redis://cache.internal:6379/0: connection refused"),
            "the forecast cache is unreachable; retry later",
        ),
    ],
)
def test_store_and_cache_errors_answer_no_connection_details(error: Exception, detail: str) -> None:
    """Their messages name hosts, users and driver errors: the answer is a fixed sentence."""
    with _raising(error) as client:
        r = client.get("/boom")
    assert r.status_code == 503
    assert r.json() == {"detail": detail}


def test_a_long_message_is_capped() -> None:
    with _raising(NotFound("unknown job " + "x" * 10**6)) as client:
        r = client.get("/boom")
    assert r.status_code == 404
    assert len(r.json()["detail"]) == MAX_DETAIL


def test_an_error_without_a_status_stays_a_server_error() -> None:
    with _raising(SparecastError("a bug")) as client:
        assert client.get("/boom").status_code == 500


def _fail(error: Exception) -> Any:
    def read(*args: Any, **kwargs: Any) -> NoReturn:
        raise error

    return read


def test_a_store_error_of_a_forecast_read_is_503_with_its_message(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = client.app.state.sparecast.store  # type: ignore[attr-defined]
    monkeypatch.setattr(store, "item_forecast", _fail(StoreError("the schema is too old")))
    r = client.get("/forecast/item/P000001")
    assert r.status_code == 503
    assert r.json() == {
        "detail": "the forecast store failed to answer; the server log has the details"
    }


def test_an_unreachable_store_says_what_is_not_cached(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client.get("/forecast/item/P000001").status_code == 200  # now cached
    store = client.app.state.sparecast.store  # type: ignore[attr-defined]
    down = StoreUnavailable("connection refused")
    monkeypatch.setattr(store, "item_forecast", _fail(down))
    monkeypatch.setattr(store, "items_forecasts", _fail(down))
    assert client.get("/forecast/item/P000001").status_code == 200
    single = client.get("/forecast/item/P000002")
    assert single.status_code == 503
    assert single.json() == {
        "detail": "the forecast store is unreachable and the item is not "
        "cached; cached forecasts are still served, retry later"
    }
    batch = client.post(
        "/forecast/items", json={"item_ids": ["P000001", "P000002", "P000003"]}, headers=AUTH
    )
    assert batch.status_code == 503
    assert batch.json() == {
        "detail": "the forecast store is unreachable and 2 of the 3 items "
        "are not cached; cached forecasts are still served, retry later"
    }
