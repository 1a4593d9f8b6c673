"""The checks of a forecast read (service/forecast_query.py), shared by the forecast routes and
the cached-read middleware: horizon and quantile levels against the served run."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from sparecast.config import Settings
from sparecast.service import create_app
from sparecast.service.errors import NoRun
from sparecast.service.forecast_query import checked_horizon, checked_levels, served_run
from sparecast.service.state import ServiceState

LOC: list[str | int] = ["query", "x"]


def _state(client: TestClient) -> ServiceState:
    state: ServiceState = client.app.state.sparecast  # type: ignore[attr-defined]
    return state


def test_the_whole_run_is_no_horizon(client: TestClient) -> None:
    state = _state(client)
    run = served_run(state)
    assert run.horizon == 28
    assert checked_horizon(state, run, None, LOC) is None
    assert checked_horizon(state, run, 28, LOC) is None  # the same cache entry as no horizon
    assert checked_horizon(state, run, 5, LOC) == 5
    with pytest.raises(HTTPException) as raised:
        checked_horizon(state, run, 29, LOC)
    assert raised.value.status_code == 422
    assert raised.value.detail[0]["loc"] == LOC
    assert "longer than the 28 periods" in raised.value.detail[0]["msg"]
    # durations in the run's periods (days; the demo's last day is 2026-10-31)
    assert checked_horizon(state, run, "1w", LOC) == 7
    assert checked_horizon(state, run, "4w", LOC) is None  # 28 days: the whole run
    assert checked_horizon(state, run, " 10 ", LOC) == 10
    for spec, words in (("1mo", "1mo = 30 periods (days) is longer"), ("x", "like 90d, 13w")):
        with pytest.raises(HTTPException) as bad:
            checked_horizon(state, run, spec, LOC)
        assert bad.value.detail[0]["loc"] == LOC and words in bad.value.detail[0]["msg"]


def test_levels_are_sorted_unique_and_in_the_run(client: TestClient) -> None:
    run = served_run(_state(client))
    assert run.quantile_levels == [50.0, 80.0, 90.0, 95.0, 99.0]
    assert checked_levels(run, None, LOC) is None
    assert checked_levels(run, [], LOC) == []
    assert checked_levels(run, [90, 50, 90.0], LOC) == [50.0, 90.0]
    for bad, words in [(42.0, "available: 50, 80"), (100.0, "percent"), (float("nan"), "percent")]:
        with pytest.raises(HTTPException) as raised:
            checked_levels(run, [bad], LOC)
        assert raised.value.status_code == 422
        assert words in raised.value.detail[0]["msg"]


def test_no_run_names_the_fix(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(), tmp_path)) as client:
        with pytest.raises(NoRun, match="holds no run yet"):
            served_run(_state(client))
