"""Fast SQL reads into polars through Arrow-native drivers.

``read_tables`` (:mod:`sparecast.data.sources`) builds every query with SQLAlchemy; this module
runs the compiled query through a driver that hands back Arrow columns instead of Python rows:

- PostgreSQL: ADBC (``adbc-driver-postgresql``, libpq's binary COPY protocol);
- SQLite: ADBC (``adbc-driver-sqlite``);
- MariaDB/MySQL: connectorx.

The frames are brought to the types the SQLAlchemy reader gives (integers as Int64, FLOAT/REAL
as the float its text form reads as, NUMERIC as decimals or floats), so that the same
coercion and validation see the same rows. ``fast_reader`` says which driver serves a URL, or
why none does (the caller then reads through SQLAlchemy and notes why); no message ever holds
the password.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import polars as pl
import sqlalchemy as sa

from sparecast.urls import redact_text

__all__ = ["FAST_DRIVERS", "FastReader", "compile_sql", "fast_reader", "normalise_arrow_frame"]

FAST_DRIVERS: dict[str, tuple[str, str]] = {
    "postgresql": ("adbc-postgresql", "adbc_driver_postgresql"),
    "sqlite": ("adbc-sqlite", "adbc_driver_sqlite"),
    "mysql": ("connectorx", "connectorx"),
    "mariadb": ("connectorx", "connectorx"),
}
"""SQLAlchemy backend name -> (fast driver, the Python module it needs)."""

_PIP_NAMES = {
    "adbc_driver_postgresql": "adbc-driver-postgresql",
    "adbc_driver_sqlite": "adbc-driver-sqlite",
    "connectorx": "connectorx",
}
# URL query options each fast driver understands as SQLAlchemy's drivers do; any other option
# keeps the SQLAlchemy reader (it knows what the option means for its own driver).
_MYSQL_IGNORED_OPTIONS = frozenset({"charset"})  # connectorx always reads utf8mb4


@dataclass
class FastReader:
    """Runs SQL text through one Arrow-native driver. ``uri`` holds the credentials: it is never
    shown (``repr`` hides it) and errors are redacted by ``read``. An ADBC connection is opened
    at the first read and kept for the next ones until ``close``."""

    driver: str
    uri: str = field(repr=False)
    password: str | None = field(default=None, repr=False)
    _conn: Any = field(default=None, repr=False, compare=False)

    def read(
        self, sql: str, *, batch_rows: int = 100_000, on_rows: Callable[[int], None] | None = None
    ) -> pl.DataFrame:
        """The result of ``sql`` as a polars frame in the SQLAlchemy reader's types;
        ``on_rows(rows_so_far)`` after each batch where the driver streams (ADBC)."""
        try:
            if self.driver == "connectorx":
                import connectorx

                table = connectorx.read_sql(self.uri, sql, return_type="arrow")
                frame = pl.from_arrow(table)
            else:
                frame = self._read_adbc(sql, batch_rows, on_rows)
        except Exception as exc:  # noqa: BLE001 - re-raised without the secrets
            self.close()  # a failed statement can leave the connection unusable
            raise FastReadError(self.redact(f"{type(exc).__name__}: {exc}")) from None
        assert isinstance(frame, pl.DataFrame)
        if on_rows is not None and self.driver == "connectorx":
            on_rows(frame.height)
        try:
            return normalise_arrow_frame(frame)
        except pl.exceptions.PolarsError as exc:
            raise FastReadError(self.redact(f"{type(exc).__name__}: {exc}")) from None

    def close(self) -> None:
        """Close the ADBC connection, if one is open."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001, S110 - closing is best effort
                pass

    def _connection(self) -> Any:
        if self._conn is None:
            if self.driver == "adbc-postgresql":
                from adbc_driver_postgresql import dbapi as pg

                self._conn = pg.connect(self.uri)
            else:
                from adbc_driver_sqlite import dbapi as lite

                self._conn = lite.connect(self.uri)
        return self._conn

    def _read_adbc(
        self, sql: str, batch_rows: int, on_rows: Callable[[int], None] | None
    ) -> pl.DataFrame:
        import pyarrow as pa

        cursor = self._connection().cursor()
        try:
            if self.driver == "adbc-sqlite":  # default: batches of 1024 rows
                cursor.adbc_statement.set_options(
                    **{"adbc.sqlite.query.batch_rows": str(max(1024, batch_rows))}
                )
            cursor.execute(sql)
            reader = cursor.fetch_record_batch()
            batches = []
            done = 0
            for batch in reader:
                batches.append(batch)
                done += batch.num_rows
                if on_rows is not None:
                    on_rows(done)
            table = pa.Table.from_batches(batches, schema=reader.schema)
        finally:
            cursor.close()
        frame = pl.from_arrow(table, rechunk=False)
        assert isinstance(frame, pl.DataFrame)
        return frame

    def redact(self, text: str) -> str:
        """``text`` without the password (as given or URL-quoted) or the URI."""
        text = text.replace(self.uri, "<url>")
        if self.password:
            for secret in {self.password, quote(self.password, safe="")}:
                text = text.replace(secret, "***")
        return redact_text(text)


class FastReadError(RuntimeError):
    """The fast driver could not read a query (message already redacted)."""


def fast_reader(url: sa.URL) -> tuple[FastReader | None, str]:
    """The fast reader of ``url``, or None and the reason the SQLAlchemy reader is used (the
    backend has no fast driver, its package is not installed, the URL has options only the
    SQLAlchemy driver knows, an in-memory or ``file:`` SQLite database)."""
    backend = url.get_backend_name()
    if backend not in FAST_DRIVERS:
        return None, f"no Arrow driver for {backend} databases"
    driver, module = FAST_DRIVERS[backend]
    if importlib.util.find_spec(module) is None:
        return None, f"{_PIP_NAMES[module]} is not installed (pip install {_PIP_NAMES[module]})"
    query = dict(url.query)
    if backend == "sqlite":
        db = url.database or ""
        if not db or db == ":memory:" or db.startswith("file:") or query:
            return None, "an in-memory, file: URI or optioned SQLite URL"
        return FastReader(driver, db), ""
    user = quote(url.username or "", safe="")
    password = url.password
    auth = user + (f":{quote(str(password), safe='')}" if password else "")
    host = url.host or ""
    if "," in host:
        return None, "several hosts in one URL"
    netloc = (f"{auth}@" if auth else "") + (f"[{host}]" if ":" in host else host)
    if url.port:
        netloc += f":{url.port}"
    database = quote(url.database or "", safe="")
    if backend == "postgresql":
        options = "&".join(
            f"{quote(k, safe='')}={quote(str(v), safe='')}"
            for k, values in query.items()
            for v in (values if isinstance(values, tuple) else (values,))
        )
        uri = f"postgresql://{netloc}/{database}" + (f"?{options}" if options else "")
        return FastReader(driver, uri, None if password is None else str(password)), ""
    unknown = sorted(set(query) - _MYSQL_IGNORED_OPTIONS)
    if unknown:
        return None, f"URL option(s) {unknown} that only the SQLAlchemy driver knows"
    if not host:
        return None, "a MariaDB/MySQL URL without a host (a socket)"
    uri = f"mysql://{netloc}/{database}"
    return FastReader(driver, uri, None if password is None else str(password)), ""


def compile_sql(stmt: sa.Select[Any], dialect: sa.Dialect) -> str:
    """``stmt`` as SQL text for ``dialect`` with its parameters written in as literals (the
    queries of ``read_tables`` bind only dates, datetimes and ISO strings)."""
    return str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def normalise_arrow_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """An Arrow-read frame in the types the SQLAlchemy reader builds from Python values:
    every integer width as Int64; FLOAT/REAL (float32) as the float64 of their shortest text,
    which is what the servers send the SQLAlchemy drivers; PostgreSQL NUMERIC (an opaque
    string through ADBC) as Float64, where ``read_tables`` brings decimals anyway."""
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype.is_integer() and dtype != pl.Int64():
            exprs.append(col.cast(pl.Int64))
        elif dtype == pl.Float32():
            exprs.append(col.cast(pl.String).cast(pl.Float64))
        elif dtype.is_extension():
            meta = str(getattr(dtype, "ext_metadata", "") or "")
            if '"type_name":"numeric"' not in meta.replace(" ", ""):
                raise FastReadError(f"column {name!r} has a type the Arrow reader leaves opaque")
            exprs.append(col.ext.storage().cast(pl.Float64))
        else:
            exprs.append(col)
    return frame.select(exprs)
