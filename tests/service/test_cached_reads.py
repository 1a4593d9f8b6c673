"""The cached-read middleware (service/cached_reads.py): hits answer the same bytes as the
route, and are counted as hits."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sparecast.config import Settings
from sparecast.service import create_app
from sparecast.service.models import ItemForecastOut

from .conftest import cache_lookups, metric_value, service_settings


def test_second_read_is_a_cache_hit_with_the_same_bytes(client: TestClient) -> None:
    hits, misses = cache_lookups(client, "hit"), cache_lookups(client, "miss")
    first = client.get("/forecast/item/P000003?horizon=7")
    assert (cache_lookups(client, "hit"), cache_lookups(client, "miss")) == (hits, misses + 1)
    second = client.get("/forecast/item/P000003?horizon=7")
    assert (cache_lookups(client, "hit"), cache_lookups(client, "miss")) == (hits + 1, misses + 1)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    # the full horizon spelt out shares the entry of "no horizon"
    full = client.get("/forecast/item/P000003")
    assert client.get("/forecast/item/P000003?horizon=28").content == full.content
    ratio = metric_value(client, "sparecast_cache_hit_ratio")
    assert ratio == pytest.approx(
        cache_lookups(client, "hit")
        / (cache_lookups(client, "hit") + cache_lookups(client, "miss"))
    )


@pytest.mark.parametrize(
    "query",
    [
        "horizon=03",
        "quantiles=90.0&quantiles=50",
        "horizon=2&quantiles=97.5&utm=x",
        "horizon=4",
        "quantiles=90&horizon=1",
    ],
)
def test_cache_hits_answer_exactly_as_the_route(quantile_dir: Path, query: str) -> None:
    """The fast path (cache hits) and the route (misses) give the same status and bytes, and
    the same answer as the route alone on a cold app."""
    settings = Settings(**service_settings())
    with TestClient(create_app(settings, quantile_dir)) as client:
        cold = client.get(f"/forecast/item/B/2?{query}")
        hits = cache_lookups(client, "hit")
        warm = client.get(f"/forecast/item/B/2?{query}")
        assert cold.status_code == warm.status_code == 200
        assert warm.content == cold.content
        assert cache_lookups(client, "hit") == hits + 1
        body = ItemForecastOut.model_validate_json(warm.content)
        assert body.item_id == "B/2"
        assert body.dates[0].isoformat() == "2026-11-02"
