"""Planner overrides in the store (SQLite, and the real PostgreSQL as integration): set,
change, delete and expire with their history, validation, unknown items, active filtering."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from utils.runs import make_forecasts, make_meta

from sparecast.inventory.overrides import Override, OverrideError, UnknownOverrideItem
from sparecast.store import ForecastStore

TODAY = date(2026, 12, 6)


def _override(item: str = "i1", **kw: object) -> Override:
    values: dict[str, object] = {
        "set_by": "alice",
        "reason": "supplier recall",
        "expires": TODAY + timedelta(days=30),
        "forecast_multiplier": 1.2,
    }
    values.update(kw)
    return Override(item_id=item, **values)  # type: ignore[arg-type]


def test_set_change_delete_expire_keep_the_full_history(store: ForecastStore) -> None:
    store.write_run(make_meta(5, 3), make_forecasts(3, 5))
    first = store.set_override(_override(), today=TODAY)
    assert first.revision > 0
    got = store.overrides()
    assert list(got) == ["i1"] and got["i1"].forecast_multiplier == 1.2
    assert got["i1"].created_at.tzinfo is not None and got["i1"].revision == first.revision
    second = store.set_override(
        _override(forecast_multiplier=None, reorder_point=3.0, order_up_to=8.0, set_by="bob"),
        today=TODAY,
    )
    assert second.revision > first.revision
    now = store.overrides()["i1"]
    assert (now.forecast_multiplier, now.reorder_point, now.order_up_to, now.set_by) == (
        None,
        3.0,
        8.0,
        "bob",
    )
    store.set_override(
        _override("i2", forecast_multiplier=None, do_not_order=True, expires=TODAY + timedelta(1)),
        today=TODAY,
    )
    revision = store.overrides_revision()
    # active filtering by date: i2 expires tomorrow
    assert set(store.overrides(as_of=TODAY)) == {"i1", "i2"}
    assert set(store.overrides(as_of=TODAY + timedelta(1))) == {"i1"}
    expired = store.expire_overrides(TODAY + timedelta(1))
    assert [o.item_id for o in expired] == ["i2"]
    assert store.expire_overrides(TODAY + timedelta(1)) == []  # idempotent
    assert store.overrides_revision() > revision
    removed = store.delete_override("i1", by="carol", note="recall over")
    assert removed.reorder_point == 3.0
    assert store.overrides() == {}
    history = store.override_history()
    assert [(e.override.item_id, e.action, e.recorded_by) for e in history] == [
        ("i1", "set", "alice"),
        ("i1", "changed", "bob"),
        ("i2", "set", "alice"),
        ("i2", "expired", "system"),
        ("i1", "deleted", "carol"),
    ]
    assert history[-1].note == "recall over" and history[-1].override.set_by == "bob"
    assert [e.action for e in store.override_history("i2")] == ["set", "expired"]
    assert history[2].override.do_not_order is True
    assert history[0].summary()["override"]["kinds"] == ["forecast_multiplier"]


def test_validation_and_unknown_items(store: ForecastStore) -> None:
    with pytest.raises(UnknownOverrideItem, match="no forecast run yet"):
        store.set_override(_override(), today=TODAY)
    store.write_run(make_meta(5, 3), make_forecasts(3, 5))
    with pytest.raises(UnknownOverrideItem, match="unknown item 'nope'.*latest forecast run"):
        store.set_override(_override("nope"), today=TODAY)
    with pytest.raises(OverrideError, match="forecast_multiplier = 0 must be > 0"):
        store.set_override(_override(forecast_multiplier=0.0), today=TODAY)
    with pytest.raises(OverrideError, match="reorder_point = 9 is above order_up_to = 4"):
        store.set_override(
            _override(forecast_multiplier=None, reorder_point=9.0, order_up_to=4.0), today=TODAY
        )
    with pytest.raises(OverrideError, match="expires = 2026-12-06 is not in the future"):
        store.set_override(_override(expires=TODAY), today=TODAY)
    with pytest.raises(OverrideError, match="overrides nothing"):
        store.set_override(_override(forecast_multiplier=None), today=TODAY)
    with pytest.raises(OverrideError, match="not both"):
        store.set_override(_override(forecast_level=2.0), today=TODAY)
    with pytest.raises(OverrideError, match="give a reason"):
        store.set_override(_override(reason=" "), today=TODAY)
    with pytest.raises(OverrideError, match="has no override to delete"):
        store.delete_override("i1", by="bob")
    assert store.override_history() == [] and store.overrides_revision() == 0
    # no check of the item when asked not to (e.g. an item the next run will have)
    store.set_override(_override("new-item"), today=TODAY, check_item=False)
    assert "new-item" in store.overrides()


def test_concurrent_first_overrides_of_one_item_all_succeed(store: ForecastStore) -> None:
    """Eight threads set the first override of the same item at once: none fails, the
    history has one ``set`` and seven ``changed``."""
    from concurrent.futures import ThreadPoolExecutor

    store.write_run(make_meta(5, 3), make_forecasts(3, 5))
    with ThreadPoolExecutor(8) as pool:
        done = list(
            pool.map(
                lambda k: store.set_override(_override(forecast_multiplier=1.0 + k), today=TODAY),
                range(8),
            )
        )
    assert len({o.revision for o in done}) == 8
    actions = [e.action for e in store.override_history("i1")]
    assert actions == ["set"] + ["changed"] * 7
