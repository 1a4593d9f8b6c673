"""The store's tables: FloatArray round trips (float64 BLOBs on SQLite, double precision[] on
PostgreSQL, NULL, NaN and infinities included) and the table definitions (keys, the cascade from
a run to its rows, the item indexes)."""

from __future__ import annotations

import math
import struct

import numpy as np
import sqlalchemy as sa

from sparecast.store.schema import (
    FloatArray,
    actual_demand,
    forecast_runs,
    forecasts,
    metadata,
    run_accuracy,
)

VALUES = [1.5, -0.0, 0.1, 1e300, float("inf"), float("-inf"), float("nan")]


def _roundtrip_table() -> tuple[sa.MetaData, sa.Table]:
    meta = sa.MetaData()
    table = sa.Table(
        "arrays",
        meta,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("v", FloatArray, nullable=True),
    )
    return meta, table


def _same(got: list[float], want: list[float]) -> bool:
    """Equal bit for bit (NaN equals NaN, -0.0 is not 0.0)."""
    return [struct.pack("<d", x) for x in got] == [struct.pack("<d", x) for x in want]


def test_float_array_round_trip(fresh_url: str) -> None:
    meta, table = _roundtrip_table()
    engine = sa.create_engine(fresh_url)
    try:
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                table.insert(),
                [
                    {"id": 1, "v": VALUES},
                    {"id": 2, "v": np.array([1, 2, 3], dtype=np.float32)},  # stored as float64
                    {"id": 3, "v": []},
                    {"id": 4, "v": None},
                ],
            )
        with engine.connect() as conn:
            rows = dict(conn.execute(sa.select(table.c.id, table.c.v)).all())
            if engine.dialect.name == "postgresql":
                kind = conn.execute(sa.text("SELECT pg_typeof(v)::text FROM arrays WHERE id = 1"))
                assert kind.scalar() == "double precision[]"
                second = conn.execute(sa.text("SELECT v[2] FROM arrays WHERE id = 2")).scalar()
                assert second == 2.0  # an SQL array: index it, unnest it
            else:
                raw = conn.execute(sa.text("SELECT v FROM arrays WHERE id = 2")).scalar()
                assert bytes(raw) == struct.pack("<3d", 1.0, 2.0, 3.0)  # little-endian float64
        assert _same(rows[1], VALUES) and math.isnan(rows[1][-1])
        assert rows[2] == [1.0, 2.0, 3.0] and all(type(x) is float for x in rows[2])
        assert rows[3] == [] and rows[4] is None
    finally:
        engine.dispose()


def test_tables_and_their_keys() -> None:
    # the tables of 0001 (later migrations add theirs; tests/store/test_monitoring.py etc.)
    names = [t.name for t in metadata.sorted_tables]
    assert {"forecast_runs", "actual_demand", "forecasts", "run_accuracy"} <= set(names)
    assert names.index("forecast_runs") < min(
        names.index(n) for n in ("actual_demand", "forecasts", "run_accuracy")
    )
    assert {t.name for t in metadata.sorted_tables} >= {
        "forecast_runs",
        "order_decisions",
        "actual_demand",
        "forecasts",
        "run_accuracy",
        "item_overrides",  # planner overrides (migration 0003)
        "override_history",
    }
    assert [c.name for c in forecast_runs.primary_key] == ["id"]
    assert [c.name for c in forecasts.primary_key] == ["run_id", "unique_id"]
    assert [c.name for c in actual_demand.primary_key] == ["run_id", "unique_id"]
    assert [c.name for c in run_accuracy.primary_key] == [
        "run_id",
        "grouping",
        "group_name",
        "method",
        "metric",
    ]
    unique = [c for c in forecast_runs.constraints if isinstance(c, sa.UniqueConstraint)]
    assert [[col.name for col in c.columns] for c in unique] == [["model_version"]]


def test_every_row_of_a_run_goes_with_the_run() -> None:
    for table in (forecasts, actual_demand, run_accuracy):
        (fk,) = table.foreign_keys
        assert fk.target_fullname == "forecast_runs.id" and fk.ondelete == "CASCADE"


def test_arrays_and_item_indexes() -> None:
    arrays = {
        (t.name, c.name)
        for t in metadata.sorted_tables
        for c in t.columns
        if isinstance(c.type, FloatArray)
    }
    assert arrays == {("forecasts", "forecast"), ("forecasts", "quantiles"), ("actual_demand", "y")}
    indexes = {
        ix.name: [c.name for c in ix.columns] for t in metadata.sorted_tables for ix in t.indexes
    }
    assert indexes["ix_forecasts_unique_id"] == ["unique_id", "run_id"]
    assert indexes["ix_actual_demand_unique_id"] == ["unique_id", "run_id"]
    assert indexes == {
        "ix_forecasts_unique_id": ["unique_id", "run_id"],
        "ix_actual_demand_unique_id": ["unique_id", "run_id"],
        "ix_order_decisions_plan": ["plan_id", "unique_id"],
        "ix_override_history_unique_id": ["unique_id", "id"],
        "ix_alerts_status": ["status", "model_version"],
        "ix_observed_demand_ds": ["freq", "ds"],
    }
