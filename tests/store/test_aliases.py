"""The served-model pointer (store/aliases.py) on SQLite and PostgreSQL: the service serves the
champion's run, a move is checked against the alias it expects, the history replays, and
pruning keeps every run that served as champion."""

from __future__ import annotations

from datetime import timedelta

import pytest
from utils.runs import START, make_forecasts, make_meta

from sparecast.store import ForecastStore, StoreError
from sparecast.store.aliases import champion_stack, served_lineage


def _runs(store: ForecastStore, n: int) -> list[str]:
    versions = []
    for k in range(n):
        run_id = store.write_run(
            make_meta(2, 2, data_end=START - timedelta(days=1 - k)), make_forecasts(2, 2, seed=k)
        )
        info = store.get_run(run_id)
        assert info is not None
        versions.append(info.model_version)
    return versions


def test_served_run_follows_the_champion_alias(store: ForecastStore) -> None:
    v1, v2, v3 = _runs(store, 3)
    assert store.served_run().model_version == v3  # type: ignore[union-attr]  # no alias: newest
    assert store.move_alias("champion", v1, action="bootstrap", reason="first") is None
    assert store.served_run().model_version == v1  # type: ignore[union-attr]
    assert store.move_alias("champion", v2, action="promote", reason="better") == v1
    with pytest.raises(StoreError, match="another process moved it"):
        store.move_alias(
            "champion", v3, action="promote", reason="late", expect=v1, check_expected=True
        )
    assert store.served_run().model_version == v2  # type: ignore[union-attr]
    store.record_event("keep", "challenger", v3, "not better")
    events = store.alias_events()
    assert [(e.action, e.model_version, e.previous_version) for e in events] == [
        ("bootstrap", v1, None),
        ("promote", v2, v1),
        ("keep", v3, None),
    ]
    assert champion_stack(events) == [v1, v2]
    assert store.aliases()["champion"].reason == "better"


def test_pruning_keeps_the_runs_that_served_as_champion(store: ForecastStore) -> None:
    v1, v2, v3, v4 = _runs(store, 4)
    store.move_alias("champion", v1, action="bootstrap", reason="first")
    store.move_alias("challenger", v2, action="train", reason="trained")
    store.delete_runs(keep_last=1)
    kept = [r.model_version for r in store.runs()]
    assert kept == [v4, v2, v1]  # newest, the challenger, the champion; v3 went
    assert store.served_run().model_version == v1  # type: ignore[union-attr]


def test_served_lineage_follows_refreshes_and_restarts_on_promotion_and_rollback(
    store: ForecastStore,
) -> None:
    a1, a2, b1, b2, a3 = _runs(store, 5)
    store.move_alias("champion", a1, action="bootstrap", reason="first")
    store.move_alias("champion", a2, action="refresh", reason="newer data")
    store.move_alias("challenger", b1, action="train", reason="trained")
    store.move_alias("champion", b1, action="promote", reason="better")
    store.move_alias("champion", b2, action="refresh", reason="newer data")
    events = store.alias_events()
    assert served_lineage(events, b2) == [b1, b2]  # a promotion starts a new lineage
    assert served_lineage(events, a2) == [a1, a2]
    assert served_lineage(events, a3) == [a3]  # never served
    assert champion_stack(events) == [a2, b2]
    # a rollback to the previous configuration retrained on newer data (a3): a new lineage,
    # and it replaces that configuration's entry of the stack
    store.move_alias("champion", a3, action="rollback", reason="degraded")
    events = store.alias_events()
    assert served_lineage(events, a3) == [a3] and champion_stack(events) == [a3]
