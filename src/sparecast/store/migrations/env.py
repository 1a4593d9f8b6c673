"""Alembic environment of the forecast history store.

Run programmatically by ``ForecastStore.migrate()``: the caller passes an open SQLAlchemy
connection in ``config.attributes["connection"]``; no alembic.ini is needed. For the alembic
command line, set ``sqlalchemy.url`` in a config file and point ``script_location`` here.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from sparecast.store.schema import metadata

config = context.config
target_metadata = metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs batch mode to alter tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        _run(conn)


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
