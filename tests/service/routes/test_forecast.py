"""GET /forecast/item/{item_id} and POST /forecast/items over a real demo run (SQLite store, LRU
cache) and a hand-built run with quantiles: values against the run's own forecasts.parquet,
404/422/503 messages, batches."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from sparecast.config import Settings
from sparecast.service import create_app
from sparecast.service.models import ForecastBatchOut, ItemForecastOut

from ..conftest import (
    API_KEY,
    AUTH,
    QUANTILE_H,
    QUANTILE_ITEMS,
    cache_lookups,
    quantile_frame,
    run_json,
    service_settings,
)


def test_item_forecast_is_the_runs_forecast(client: TestClient, data_dir: Path) -> None:
    expected = pl.read_parquet(data_dir / "forecasts.parquet").filter(
        pl.col("unique_id") == "P000002"
    )
    assert expected.height == 28
    r = client.get("/forecast/item/P000002")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = ItemForecastOut.model_validate_json(r.content)
    assert body.item_id == "P000002"
    assert body.model_version == run_json(data_dir)["store"]["model_version"]
    assert body.method == expected["method"][0]
    assert body.dates == expected["ds"].to_list()
    assert body.forecast == pytest.approx(expected["forecast"].to_list(), rel=1e-12)
    # the run's quantile columns (settings.quantiles) come back in full without a query
    assert set(body.quantiles) == {"q50", "q80", "q90", "q95", "q99"}
    for name, values in body.quantiles.items():
        assert values == pytest.approx(expected[name].to_list(), rel=1e-12)
    q = np.array([body.quantiles[n] for n in ("q50", "q80", "q90", "q95", "q99")])
    assert (q >= 0).all() and (np.diff(q, axis=0) >= 0).all()  # non-negative, rising with level
    assert np.array_equal(q, np.round(q))  # integer demand gives integer quantiles

    short = ItemForecastOut.model_validate_json(
        client.get("/forecast/item/P000002?horizon=5").content
    )
    assert short.dates == expected["ds"].to_list()[:5]
    assert short.forecast == pytest.approx(expected["forecast"].to_list()[:5], rel=1e-12)


def test_unknown_item_is_404_naming_it(client: TestClient) -> None:
    r = client.get("/forecast/item/NO-SUCH-PART")
    assert r.status_code == 404
    assert "'NO-SUCH-PART'" in r.json()["detail"]
    assert "unknown item" in r.json()["detail"]


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("horizon=0", "horizon", "horizon must be at least 1 period, got '0'"),
        ("horizon=abc", "horizon", "a number of periods or a duration like 90d, 13w, 6mo, 1y"),
        ("horizon=6m", "horizon", "months are mo: 6mo"),
        ("horizon=29", "horizon", "horizon 29 is longer than the 28 periods (days) run"),
        ("horizon=1mo", "horizon", "horizon 1mo = 30 periods (days) is longer than the 28"),
        ("horizon=20y", "horizon", "horizon 20y = 7305 periods (days) is above the limit"),
        ("quantiles=x", "quantiles", "number"),
        ("quantiles=42", "quantiles", "available: 50, 80, 90, 95, 99"),
    ],
)
def test_bad_query_is_422_naming_the_field(
    client: TestClient, query: str, field: str, words: str
) -> None:
    r = client.get(f"/forecast/item/P000001?{query}")
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail[0]["loc"][:2] == ["query", field]
    assert words in detail[0]["msg"]


def test_quantiles_in_percent_from_a_run_that_has_them(quantile_dir: Path) -> None:
    frame = quantile_frame()
    with TestClient(create_app(Settings(**service_settings()), quantile_dir)) as client:
        # an id with a slash and one with a space are served whole
        for item in QUANTILE_ITEMS:
            want = frame.filter(pl.col("unique_id") == item)
            r = client.get(f"/forecast/item/{item}", params={"quantiles": [97.5, 90]})
            assert r.status_code == 200, r.text
            body = ItemForecastOut.model_validate_json(r.content)
            assert body.item_id == item
            assert body.forecast == want["forecast"].to_list()
            assert body.quantiles == {
                "q90": want["q90"].to_list(),
                "q97.5": want["q97.5"].to_list(),
            }
        all_levels = client.get("/forecast/item/A-1?horizon=2").json()
        assert all_levels["quantiles"] == {
            "q50": [9.5, 10.5],
            "q90": [12.0, 13.0],
            "q97.5": [13.5, 14.5],
        }
        assert all_levels["forecast"] == [10.0, 11.0]
        # the same levels in another order are the same cache entry (a hit)
        before = cache_lookups(client, "hit")
        client.get("/forecast/item/A-1?quantiles=90&quantiles=50")
        client.get("/forecast/item/A-1?quantiles=50&quantiles=90&quantiles=50")
        assert cache_lookups(client, "hit") == before + 1
        bad = client.get("/forecast/item/A-1?quantiles=80")
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["query", "quantiles"]
        assert "80 not in run" in bad.json()["detail"][0]["msg"]
        assert "available: 50, 90, 97.5" in bad.json()["detail"][0]["msg"]
        out_of_range = client.get("/forecast/item/A-1?quantiles=100")
        assert out_of_range.status_code == 422
        assert "percent in (0, 100)" in out_of_range.json()["detail"][0]["msg"]
        batch = client.post(
            "/forecast/items",
            json={"item_ids": ["C 3", "A-1"], "horizon": QUANTILE_H - 1, "quantiles": [50]},
            headers=AUTH,
        )
        assert batch.status_code == 200
        items = ForecastBatchOut.model_validate_json(batch.content).items
        assert [i.item_id for i in items] == ["C 3", "A-1"]
        assert items[0].quantiles == {"q50": [29.5, 30.5, 31.5]}
        none = client.post(
            "/forecast/items", json={"item_ids": ["A-1"], "quantiles": []}, headers=AUTH
        )
        assert none.json()["items"][0]["quantiles"] == {}


def test_batch_equals_single_reads_in_request_order(client: TestClient) -> None:
    ids = ["P000005", "P000001", "P000005", "P000012"]
    r = client.post("/forecast/items", json={"item_ids": ids, "horizon": 3}, headers=AUTH)
    assert r.status_code == 200, r.text
    out = ForecastBatchOut.model_validate_json(r.content)
    assert [i.item_id for i in out.items] == ids
    for item in out.items:
        single = client.get(f"/forecast/item/{item.item_id}?horizon=3").json()
        assert item.model_dump(mode="json") == single
    # now every item is cached: the second batch is all hits and the same bytes
    hits = cache_lookups(client, "hit")
    again = client.post("/forecast/items", json={"item_ids": ids, "horizon": 3}, headers=AUTH)
    assert again.content == r.content
    assert cache_lookups(client, "hit") == hits + 3  # three distinct items


def test_batch_errors(data_dir: Path) -> None:
    app = create_app(Settings(**service_settings(max_batch_items=3)), data_dir)
    with TestClient(app) as client:
        body = {"item_ids": ["P000001", "P000002"]}
        missing = client.post("/forecast/items", json=body)
        assert missing.status_code == 401
        assert "missing API key" in missing.json()["detail"]
        assert "X-API-Key" in missing.json()["detail"]
        wrong = client.post("/forecast/items", json=body, headers={"X-API-Key": API_KEY + "x"})
        assert wrong.status_code == 401
        assert "invalid API key" in wrong.json()["detail"]
        assert client.post("/forecast/items", json=body, headers=AUTH).status_code == 200

        too_many = client.post(
            "/forecast/items",
            json={"item_ids": ["P000001", "P000002", "P000003", "P000004"]},
            headers=AUTH,
        )
        assert too_many.status_code == 422
        assert too_many.json()["detail"][0]["loc"] == ["body", "item_ids"]
        assert "at most 3" in too_many.json()["detail"][0]["msg"]

        unknown = client.post(
            "/forecast/items", json={"item_ids": ["P000001", "ZZ9", "QQ1"]}, headers=AUTH
        )
        assert unknown.status_code == 404
        assert "'ZZ9', 'QQ1'" in unknown.json()["detail"]

        for payload, field in [
            ({"item_ids": []}, "item_ids"),
            ({"item_ids": "P000001"}, "item_ids"),
            ({"item_ids": ["P000001"], "horizon": 0}, "horizon"),
            ({"item_ids": ["P000001"], "horizon": 99}, "horizon"),
            ({"item_ids": ["P000001"], "colour": "red"}, "colour"),
            ({}, "item_ids"),
        ]:
            r = client.post("/forecast/items", json=payload, headers=AUTH)
            assert r.status_code == 422, (payload, r.text)
            assert r.json()["detail"][0]["loc"][:2] == ["body", field], r.json()


def test_no_run_yet_is_503_with_the_fix(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(**service_settings()), tmp_path)) as client:
        r = client.get("/forecast/item/P000001")
        assert r.status_code == 503
        assert "holds no run yet" in r.json()["detail"]
        assert "sparecast run" in r.json()["detail"]
        health = client.get("/health", headers=AUTH).json()
        assert health["status"] == "degraded"
        assert health["model_version"] is None


def test_default_horizon_applies_when_the_request_gives_none(data_dir: Path) -> None:
    with TestClient(create_app(Settings(**service_settings(default_horizon=5)), data_dir)) as c:
        assert len(c.get("/forecast/item/P000001").json()["forecast"]) == 5
        assert len(c.get("/forecast/item/P000001?horizon=9").json()["forecast"]) == 9
        body = c.post("/forecast/items", json={"item_ids": ["P000001"]}, headers=AUTH).json()
        assert len(body["items"][0]["dates"]) == 5
    # a default beyond the run's horizon answers everything the run has
    with TestClient(create_app(Settings(**service_settings(default_horizon=99)), data_dir)) as c:
        assert len(c.get("/forecast/item/P000001").json()["forecast"]) == 28


def test_a_batch_of_the_default_limit_of_1000_items(tmp_path: Path) -> None:
    from datetime import timedelta

    from sparecast.store import ForecastStore, RunMeta

    ids = [f"I{i:05d}" for i in range(1001)]
    frame = pl.DataFrame(
        {
            "unique_id": [i for i in ids for _ in range(3)],
            "ds": [date(2026, 11, 1) + timedelta(days=d) for _ in ids for d in range(3)],
            "forecast": [float(n) + d / 10 for n in range(len(ids)) for d in range(3)],
            "method": ["ma"] * (3 * len(ids)),
        }
    )
    store = ForecastStore(f"sqlite:///{tmp_path / 'history.sqlite'}")
    store.migrate()
    meta = RunMeta("0.1.0", {}, date(2026, 1, 1), date(2026, 10, 31), "D", len(ids), 304, 3)
    store.write_run(meta, frame)
    store.dispose()
    with TestClient(create_app(Settings(**service_settings()), tmp_path)) as client:
        wanted = list(reversed(ids[:1000]))
        r = client.post("/forecast/items", json={"item_ids": wanted}, headers=AUTH)
        assert r.status_code == 200
        items = r.json()["items"]
        assert [i["item_id"] for i in items] == wanted
        assert items[0]["forecast"] == [999.0, 999.1, 999.2]
        assert items[-1]["forecast"] == [0.0, 0.1, 0.2]
        over = client.post("/forecast/items", json={"item_ids": ids}, headers=AUTH)
        assert over.status_code == 422
        assert "1001 items requested; at most 1000" in over.json()["detail"][0]["msg"]


def test_a_horizon_may_be_a_duration_in_the_runs_periods(data_dir: Path) -> None:
    """The demo run is daily (last day 2026-10-31) with 28 periods: 2w is 14 of them, 4w all
    of them (the same cache entry as no horizon); the batch takes the same; and
    service.default_horizon may be a duration too."""
    settings = Settings(**service_settings(default_horizon="1w"))
    with TestClient(create_app(settings, data_dir)) as c:
        full = c.get("/forecast/item/P000001?horizon=28").json()
        two = c.get("/forecast/item/P000001", params={"horizon": "2w"}).json()
        assert two["dates"] == full["dates"][:14] and two["forecast"] == full["forecast"][:14]
        before = cache_lookups(c, "hit")
        assert c.get("/forecast/item/P000001?horizon=4w").json() == full  # all 28 days
        assert cache_lookups(c, "hit") == before + 1  # the entry of ?horizon=28
        assert len(c.get("/forecast/item/P000001?horizon=14%20days").json()["dates"]) == 14
        assert len(c.get("/forecast/item/P000001").json()["dates"]) == 7  # default_horizon
        body = c.post(
            "/forecast/items",
            json={"item_ids": ["P000001", "P000002"], "horizon": "3w"},
            headers=AUTH,
        )
        assert body.status_code == 200, body.text
        assert [len(i["dates"]) for i in body.json()["items"]] == [21, 21]
        bad = c.post(
            "/forecast/items", json={"item_ids": ["P000001"], "horizon": "1mo"}, headers=AUTH
        )
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "horizon"]
        assert "1mo = 30 periods (days) is longer than the 28 periods (days)" in bad.text


def test_a_monthly_run_converts_weeks_and_days_to_months(tmp_path: Path) -> None:
    from sparecast.store import ForecastStore, RunMeta

    out = tmp_path / "monthly"
    out.mkdir()
    months = [date(2026, 11, 1), date(2026, 12, 1)] + [date(2027, m, 1) for m in range(1, 5)]
    frame = pl.DataFrame(
        {"unique_id": ["M1"] * 6, "ds": months, "forecast": [1.0, 2, 3, 4, 5, 6], "method": "sba"}
    )
    store = ForecastStore(f"sqlite:///{out / 'history.sqlite'}")
    try:
        store.migrate()
        meta = RunMeta(
            sparecast_version="0.1.0",
            config={},
            data_start=date(2022, 7, 1),
            data_end=date(2026, 10, 1),
            freq="M",
            n_items=1,
            n_periods=52,
            horizon=6,
        )
        store.write_run(meta, frame)
    finally:
        store.dispose()
    with TestClient(create_app(Settings(**service_settings()), out)) as c:
        for spec, n in (("13w", 3), ("90d", 3), ("92d", 4), ("6mo", 6), ("2", 2)):
            r = c.get(f"/forecast/item/M1?horizon={spec}")
            assert r.status_code == 200, (spec, r.text)
            assert r.json()["forecast"] == [1.0, 2, 3, 4, 5, 6][:n], spec
        long = c.get("/forecast/item/M1?horizon=1y")
        assert long.status_code == 422
        assert "horizon 1y = 12 periods (months) is longer than the 6 periods (months)" in long.text
