"""``PUT/DELETE/GET /items/{id}/override``: the API key, validation, the forecast and policy
answers change and say so, and the cache never serves an answer from before a change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sparecast.config import Settings
from sparecast.service import create_app
from sparecast.service.models import ItemForecastOut, ItemOverrideOut, OverrideOut

from ..conftest import AUTH, service_settings, write_policy

LATER = (date.today() + timedelta(days=30)).isoformat()


@pytest.fixture
def qclient(quantile_dir: Path) -> Iterator[TestClient]:
    app = create_app(Settings(**service_settings()), quantile_dir)
    with TestClient(app) as c:
        yield c


def _body(**kw: Any) -> dict[str, Any]:
    return {"set_by": "alice", "reason": "fleet grows", "expires": LATER, **kw}


def test_put_and_delete_need_the_api_key(qclient: TestClient) -> None:
    assert qclient.put("/items/A-1/override", json=_body(forecast_multiplier=2)).status_code == 401
    wrong = {"X-API-Key": "nope"}
    put = qclient.put("/items/A-1/override", json=_body(forecast_multiplier=2), headers=wrong)
    assert put.status_code == 401
    assert qclient.delete("/items/A-1/override?by=bob").status_code == 401
    assert qclient.get("/items/A-1/override").json()["override"] is None  # nothing was set
    schema = qclient.get("/openapi.json").json()["paths"]["/items/{item_id}/override"]
    assert schema["put"]["security"] == [{"ApiKey": []}] and "security" not in schema["get"]


def test_a_multiplier_changes_the_forecast_answer_and_the_cache_follows(
    qclient: TestClient,
) -> None:
    before = qclient.get("/forecast/item/A-1").json()
    assert before["forecast"] == [10.0, 11.0, 12.0, 13.0] and before["override"] is None
    assert qclient.get("/forecast/item/A-1").json() == before  # now cached (fast path)
    put = qclient.put("/items/A-1/override", json=_body(forecast_multiplier=1.5), headers=AUTH)
    assert put.status_code == 200, put.text
    stored = OverrideOut.model_validate(put.json())
    assert stored.kinds == ["forecast_multiplier"] and stored.revision > 0
    after = qclient.get("/forecast/item/A-1").json()
    ItemForecastOut.model_validate(after)
    assert after["forecast"] == [15.0, 16.5, 18.0, 19.5]
    assert after["forecast_model"] == before["forecast"]
    assert after["quantiles"]["q90"] == [18.0, 19.5, 21.0, 22.5]  # (base + 2) * 1.5
    assert after["override"]["set_by"] == "alice" and after["override"]["revision"] > 0
    assert qclient.get("/forecast/item/A-1").json() == after  # cached with the override
    batch = qclient.post("/forecast/items", json={"item_ids": ["A-1", "B/2"]}, headers=AUTH)
    first, second = batch.json()["items"]
    assert first["forecast"] == after["forecast"] and second["override"] is None

    # a changed override: a new answer at once (not the one cached for the previous override)
    level = qclient.put("/items/A-1/override", json=_body(forecast_level=4.0), headers=AUTH)
    assert level.status_code == 200
    now = qclient.get("/forecast/item/A-1?horizon=2").json()
    assert now["forecast"] == [4.0, 4.0] and now["override"]["kinds"] == ["forecast_level"]
    assert qclient.get("/forecast/item/A-1").json()["forecast"] == [4.0] * 4

    gone = qclient.delete("/items/A-1/override?by=bob&reason=over", headers=AUTH)
    assert gone.status_code == 200 and gone.json()["forecast_level"] == 4.0
    assert qclient.get("/forecast/item/A-1").json() == before
    assert qclient.delete("/items/A-1/override?by=bob", headers=AUTH).status_code == 404

    history = ItemOverrideOut.model_validate(qclient.get("/items/A-1/override").json())
    assert history.override is None
    assert [(e.action, e.recorded_by) for e in history.history] == [
        ("set", "alice"),
        ("changed", "alice"),
        ("deleted", "bob"),
    ]
    assert history.history[-1].note == "over"


def test_validation_and_unknown_items(qclient: TestClient) -> None:
    def put(item: str, **kw: Any) -> Any:
        return qclient.put(f"/items/{item}/override", json=_body(**kw), headers=AUTH)

    assert put("nope", do_not_order=True).status_code == 404
    assert "unknown item 'nope'" in put("nope", do_not_order=True).json()["detail"]
    assert qclient.get("/items/nope/override").status_code == 404
    assert qclient.delete("/items/nope/override?by=x", headers=AUTH).status_code == 404
    assert put("A-1", forecast_multiplier=0).status_code == 422
    bad = put("A-1", reorder_point=9, order_up_to=3)
    assert bad.status_code == 422 and "must be <= the order-up-to" in bad.text
    past = put("A-1", do_not_order=True, expires=date.today().isoformat())
    assert past.status_code == 422 and "is not in the future" in past.text
    assert put("A-1").status_code == 422 and "overrides nothing" in put("A-1").text
    assert put("A-1", do_not_order=True, colour="red").status_code == 422  # unknown field


def test_policy_answer_applies_the_override(quantile_dir: Path) -> None:
    write_policy(quantile_dir, ["A-1", "B/2", "C 3"])  # s 1, S 4, order 0
    app = create_app(Settings(**service_settings()), quantile_dir)
    with TestClient(app) as client:
        plain = client.get("/items/A-1/policy").json()
        assert plain["reorder_point"] == 1.0 and "reorder_point_model" not in plain
        body = _body(reorder_point=2.0, order_up_to=6.0)
        assert client.put("/items/A-1/override", json=body, headers=AUTH).status_code == 200
        got = client.get("/items/A-1/policy").json()
        # no inventory_position in this plan file: on_hand 0 stands in -> IP 0 <= 2: 6 - 0
        assert (got["reorder_point"], got["order_up_to"], got["suggested_order"]) == (2.0, 6.0, 6.0)
        assert got["reorder_point_model"] == 1.0 and got["override"]["kinds"] == [
            "reorder_point",
            "order_up_to",
        ]
        stop = client.put("/items/B%2F2/override", json=_body(do_not_order=True), headers=AUTH)
        assert stop.status_code == 200
        b = client.get("/items/B/2/policy").json()
        assert b["suggested_order"] == 0.0 and b["suggested_order_model"] == 1.0
        assert client.get("/items/C 3/policy").json()["suggested_order"] == 2.0
        report = client.get("/reports/inventory")
        assert report.status_code == 404  # no report file in this directory
