"""Alembic migrations: idempotent, safe when several processes migrate at once, and the same
schema on SQLite and PostgreSQL as the SQLAlchemy metadata."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from sparecast.store import ForecastStore
from sparecast.store.engine import MIGRATIONS_DIR, alembic_config
from sparecast.store.schema import metadata


def _head() -> str:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def schema_of(url: str) -> dict[str, Any]:
    """Tables, columns (name, nullable, generic type), primary keys, foreign keys, indexes and
    unique constraints as the database reports them, in a form comparable across dialects."""
    engine = sa.create_engine(url)
    insp = sa.inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        columns = []
        for col in insp.get_columns(table):
            kind = type(col["type"]).__name__.upper()
            if kind == "ARRAY":  # PostgreSQL's side of FloatArray: double precision[]
                item = type(col["type"].item_type).__name__.upper()  # type: ignore[attr-defined]
                kind = "FLOAT_ARRAY" if item == "DOUBLE_PRECISION" else f"ARRAY OF {item}"
            elif kind in ("BLOB", "LARGEBINARY"):  # SQLite's side: a float64 BLOB
                kind = "FLOAT_ARRAY"
            generic = next(
                g
                for g, names in {
                    "int": ("INTEGER", "SMALLINT", "BIGINT"),
                    "float": ("FLOAT", "DOUBLE_PRECISION", "DOUBLE", "REAL"),
                    "text": ("TEXT", "VARCHAR", "STRING"),
                    "date": ("DATE",),
                    "datetime": ("DATETIME", "TIMESTAMP"),
                    "bool": ("BOOLEAN",),
                    "float_array": ("FLOAT_ARRAY",),
                }.items()
                if kind in names
            )
            length = getattr(col["type"], "length", None)
            columns.append((col["name"], col["nullable"], generic, length))
        out[table] = {
            "columns": columns,
            "pk": insp.get_pk_constraint(table)["constrained_columns"],
            "fks": sorted(
                (
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    fk["options"].get("ondelete"),
                )
                for fk in insp.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
                for ix in insp.get_indexes(table)
                if not ix.get("duplicates_constraint")  # PostgreSQL: a UNIQUE's own index
            ),
            "unique": sorted(
                (uc["name"], tuple(uc["column_names"])) for uc in insp.get_unique_constraints(table)
            ),
        }
    engine.dispose()
    return out


def test_migrate_creates_head_and_is_idempotent(fresh_url: str) -> None:
    store = ForecastStore(fresh_url)
    assert store.schema_revision() is None and not store.is_migrated()
    store.migrate()
    assert store.schema_revision() == _head() and store.is_migrated()
    first = schema_of(fresh_url)
    store.migrate()
    store.migrate()
    assert schema_of(fresh_url) == first
    assert store.schema_revision() == _head()
    store.dispose()


def test_migrations_match_the_metadata(fresh_url: str) -> None:
    """Alembic's autogenerate finds nothing to change between the migrated database and
    store/schema.py: the two are the same schema."""
    store = ForecastStore(fresh_url)
    store.migrate()
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    store.dispose()


def test_concurrent_migrations_all_succeed(fresh_url: str) -> None:
    """Service workers may all migrate at start: the lock serialises them, none fails."""
    errors: list[BaseException] = []

    def migrate() -> None:
        store = ForecastStore(fresh_url)
        try:
            store.migrate()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            store.dispose()

    threads = [threading.Thread(target=migrate) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ForecastStore(fresh_url).schema_revision() == _head()


@pytest.mark.integration
def test_same_schema_on_sqlite_and_postgresql(
    tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'a.sqlite'}"
    pg_url = request.getfixturevalue("pg_databases").create()
    for url in (sqlite_url, pg_url):
        store = ForecastStore(url)
        store.migrate()
        store.dispose()
    lite, pg = schema_of(sqlite_url), schema_of(pg_url)
    assert set(lite) == {"alembic_version", *metadata.tables}
    assert lite == pg


def test_downgrade_to_base_and_upgrade_again(fresh_url: str) -> None:
    from alembic import command

    store = ForecastStore(fresh_url)
    store.migrate()
    migrated = schema_of(fresh_url)
    with store.engine.begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(schema_of(fresh_url)) <= {"alembic_version"}
    assert store.schema_revision() is None
    store.migrate()
    assert schema_of(fresh_url) == migrated
    store.dispose()
