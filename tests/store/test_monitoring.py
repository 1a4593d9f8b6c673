"""The store's monitoring tables on SQLite and PostgreSQL: observed demand loaded
incrementally (a reload writes nothing, corrections win, forecast_vs_actual and actuals read
it), the item attributes of a run, alerts and monitoring passes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
import sqlalchemy as sa
from utils.monitoring import DATES, N_ITEMS, H, item_attributes, write_hand_run

from sparecast.errors import StoreError
from sparecast.store import ForecastStore, RunMeta
from sparecast.store.monitoring import AlertChange, MonitorPass
from sparecast.store.schema import alerts, observed_demand, run_items


def _observed(values: dict[tuple[str, date], float]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "unique_id": [k[0] for k in values],
            "ds": [k[1] for k in values],
            "y": list(values.values()),
        }
    )


def test_tables_and_keys() -> None:
    assert [c.name for c in observed_demand.primary_key] == ["freq", "unique_id", "ds"]
    assert [c.name for c in run_items.primary_key] == ["run_id", "unique_id"]
    (fk,) = run_items.foreign_keys
    assert fk.target_fullname == "forecast_runs.id" and fk.ondelete == "CASCADE"
    assert not alerts.foreign_keys  # the alert history outlives pruned runs


def test_observed_load_is_incremental_and_corrections_win(store: ForecastStore) -> None:
    store.migrate()
    first = datetime(2026, 11, 3, 6, tzinfo=UTC)
    day = {("a", DATES[0]): 1.0, ("a", DATES[1]): 0.0, ("b", DATES[0]): 2.0}
    load = store.record_observed(_observed(day), freq="D", loaded_at=first)
    assert (load.inserted, load.updated, load.unchanged) == (3, 0, 0)
    again = store.record_observed(_observed(day), freq="D", loaded_at=first + timedelta(days=1))
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    stored = store.observed("D")
    assert stored["loaded_at"].to_list() == [first] * 3  # nothing was written again
    later = first + timedelta(days=2)
    fixed = store.record_observed(
        _observed({("a", DATES[1]): 4.0, ("a", DATES[2]): 1.0, ("b", DATES[0]): 2.0}),
        freq="D",
        loaded_at=later,
    )
    assert (fixed.inserted, fixed.updated, fixed.unchanged) == (1, 1, 1)
    stored = store.observed("D")
    assert stored.select("unique_id", "ds", "y").rows() == [
        ("a", DATES[0], 1.0),
        ("a", DATES[1], 4.0),
        ("a", DATES[2], 1.0),
        ("b", DATES[0], 2.0),
    ]
    assert stored["loaded_at"].to_list() == [first, later, later, first]
    assert store.observed("W").height == 0 and store.observed("D", start=DATES[2]).height == 1


def test_bad_observed_frames_write_nothing(store: ForecastStore) -> None:
    store.migrate()
    with pytest.raises(StoreError, match="duplicated"):
        store.record_observed(
            pl.DataFrame({"unique_id": ["a", "a"], "ds": [DATES[0]] * 2, "y": [1.0, 2.0]}),
            freq="D",
        )
    with pytest.raises(StoreError, match="NaN"):
        store.record_observed(
            pl.DataFrame({"unique_id": ["a"], "ds": [DATES[0]], "y": [float("nan")]}), freq="D"
        )
    with pytest.raises(StoreError, match="freq"):
        store.record_observed(_observed({("a", DATES[0]): 1.0}), freq="Q")
    assert store.observed("D").height == 0


def test_forecast_vs_actual_reads_observed_demand(store: ForecastStore) -> None:
    run_id = write_hand_run(store)
    assert store.forecast_vs_actual(run_id).height == 0
    store.record_observed(
        _observed({("i00", DATES[0]): 5.0, ("i01", DATES[1]): 0.0, ("zz", DATES[0]): 1.0}),
        freq="D",
    )
    fva = store.forecast_vs_actual(run_id)
    assert fva.select("unique_id", "ds", "step", "forecast", "y").rows() == [
        ("i00", DATES[0], 1, 2.0, 5.0),
        ("i01", DATES[1], 2, 2.0, 0.0),
    ]
    assert store.actuals("i00", freq="D")["y"].to_list() == [5.0]


def test_a_later_run_overrides_older_observed_values(store: ForecastStore) -> None:
    run_id = write_hand_run(store)
    store.record_observed(
        _observed({("i00", DATES[0]): 5.0}),
        freq="D",
        loaded_at=datetime(2020, 1, 1, tzinfo=UTC),  # loaded long before the next run
    )
    later = store.write_run(
        RunMeta("0.1.0", {}, date(2026, 1, 1), date(2026, 11, 6), "D", N_ITEMS, 310, H),
        pl.DataFrame(
            {"unique_id": ["i00"], "ds": [date(2026, 11, 7)], "forecast": [1.0], "method": ["ma"]}
        ),
        actuals=pl.DataFrame({"unique_id": ["i00"], "ds": [DATES[0]], "y": [7.0]}),
    )
    assert later > run_id
    assert store.forecast_vs_actual(run_id)["y"].to_list() == [7.0]
    assert store.actuals("i00", freq="D")["y"].to_list() == [7.0]


def test_run_items_round_trip_and_go_with_the_run(store: ForecastStore) -> None:
    run_id = write_hand_run(store)
    got = store.run_items(run_id)
    want = item_attributes()
    assert got.columns == want.columns
    assert got.to_dicts() == want.to_dicts()
    assert store.run_items(run_id + 1).height == 0
    write_hand_run(store, with_items=False)
    assert store.delete_runs(keep_last=1) == [run_id]
    assert store.run_items(run_id).height == 0


def test_alerts_open_refresh_close_and_passes(store: ForecastStore) -> None:
    store.migrate()
    assert store.last_monitor_pass() is None and store.open_alerts() == []
    t0 = datetime(2026, 11, 4, 7, tzinfo=UTC)
    change = AlertChange(
        None, "v1", "category", "pumps", "mase", 4.0, 1.0, 1.0, 3, DATES[2], "worse"
    )
    (opened,) = store.record_monitor_pass(
        MonitorPass(t0, "v1", DATES[2], 3, True, 1, "degraded"), [change]
    )
    assert opened.status == "open" and opened.opened_at == t0 and opened.group == "pumps"
    t1 = t0 + timedelta(days=1)
    (refreshed,) = store.record_monitor_pass(
        MonitorPass(t1, "v1", DATES[3], 4, True, 1, "degraded"),
        [
            AlertChange(
                opened.alert_id,
                "v1",
                "category",
                "pumps",
                "mase",
                4.5,
                1.0,
                1.0,
                4,
                DATES[3],
                "still worse",
            )
        ],
    )
    assert refreshed.alert_id == opened.alert_id and refreshed.periods == 4
    assert refreshed.opened_at == t0 and refreshed.updated_at == t1
    assert [a.alert_id for a in store.open_alerts("v1")] == [opened.alert_id]
    assert store.open_alerts("v2") == []
    t2 = t1 + timedelta(days=1)
    (closed,) = store.record_monitor_pass(
        MonitorPass(t2, "v1", DATES[4], 5, False, 0, "ok"),
        [
            AlertChange(
                opened.alert_id,
                "v1",
                "category",
                "pumps",
                "mase",
                0.9,
                1.0,
                1.0,
                0,
                DATES[4],
                "recovered",
                close=True,
            )
        ],
    )
    assert closed.status == "closed" and closed.closed_at == t2
    assert store.open_alerts() == [] and len(store.alerts()) == 1
    last = store.last_monitor_pass()
    assert last is not None and last.ran_at == t2 and last.degraded is False
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM monitor_runs")).scalar() == 3


def test_close_alerts_of_a_version(store: ForecastStore) -> None:
    store.migrate()
    t0 = datetime(2026, 11, 4, 7, tzinfo=UTC)
    changes = [
        AlertChange(None, v, "tier", g, "mase", 3.0, 1.0, 0.5, 3, DATES[2], f"worse {g}")
        for v, g in (("v1", "regular"), ("v1", "intermittent"), ("v2", "regular"))
    ]
    opened = store.record_monitor_pass(MonitorPass(t0, "v1", DATES[2], 3, True, 2, "x"), changes)
    closed = store.close_alerts("v1", "rolled back to v0")
    assert closed == sorted(a.alert_id for a in opened[:2])
    assert [a.model_version for a in store.open_alerts()] == ["v2"]
    (one,) = store.alerts(status="closed", limit=1)
    assert one.reason == "rolled back to v0 (opened: worse intermittent)"
    assert one.closed_at is not None
    assert store.close_alerts("v1", "again") == []


def test_a_refreshed_alert_names_the_version_serving_now(store: ForecastStore) -> None:
    store.migrate()
    change = AlertChange(
        None, "v1", "category", "pumps", "rel_bias", -0.5, 0.0, 0.3, 3, DATES[2], "opened"
    )
    (opened,) = store.record_monitor_pass(
        MonitorPass(datetime.now(UTC), "v1", DATES[2], 3, True, 1, "degraded"), [change]
    )
    refresh = AlertChange(
        opened.alert_id, "v2", "category", "pumps", "rel_bias", -0.6, 0.0, 0.3, 4, DATES[3], "on"
    )
    store.record_monitor_pass(
        MonitorPass(datetime.now(UTC), "v2", DATES[3], 4, True, 1, "degraded"), [refresh]
    )
    assert store.open_alerts("v1") == []
    (moved,) = store.open_alerts("v2")
    assert (moved.alert_id, moved.periods, moved.metric) == (opened.alert_id, 4, "rel_bias")
