"""Reading and writing the canonical tables: SQL databases (any SQLAlchemy URL; SQLite by
default, MariaDB in production) and long-format files (CSV/Parquet ``unique_id, ds, y``).

Every kind of source implements the ``Source`` protocol (``SqlSource``, ``SqliteSource``,
``FileSource``); ``open_source`` is the one place that tells the kind from the string the user
gave. Readers return frames with canonical column names; ``Source.load`` (and ``load_source``)
also validates them (``sparecast.data.schema``) so that the caller gets clean typed tables plus
a report of every rejected row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, cast

import pandas as pd
import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from sparecast.data.fastsql import FastReader, FastReadError, compile_sql, fast_reader
from sparecast.data.mapping import ErpMapping
from sparecast.data.outliers import DEFAULT_OUTLIER_ACTION, DEFAULT_OUTLIER_FACTOR
from sparecast.data.schema import (
    DATE_COLUMNS,
    DATED_TABLES,
    REQUIRED_COLUMNS,
    TABLE_SCHEMAS,
    TABLES,
    ValidationReport,
    parse_date_expr,
    validate_long,
    validate_tables,
)
from sparecast.errors import SourceError
from sparecast.urls import redact_url

__all__ = [
    "SQLITE_SUFFIXES",
    "FILE_SUFFIXES",
    "Source",
    "SqlSource",
    "SqliteSource",
    "FileSource",
    "open_source",
    "SourceData",
    "load_source",
    "check_database_url",
    "read_long_file",
    "write_long_file",
    "read_tables",
    "write_tables",
    "sqlite_url",
    "SqlReader",
]

log = logging.getLogger(__name__)

LONG_COLUMNS = ("unique_id", "ds", "y")
FILE_SUFFIXES = (".csv", ".parquet", ".pq")
"""Extensions of the long-format files (CSV/Parquet)."""
SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
"""Extensions of the files read as SQLite databases."""
_INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "demand": (("item_id", "date"),),
    "purchase_orders": (("item_id",), ("order_date",)),
    "receipts": (("po_id",), ("receipt_date",)),
    "items": (("item_id",),),
    "stock": (("item_id",),),
}


# --------------------------------------------------------------------------- helpers
def sqlite_url(path: str | Path) -> str:
    """SQLAlchemy URL of a SQLite file (absolute path)."""
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def check_database_url(url: str) -> sa.URL:
    """``url`` parsed by SQLAlchemy, or SourceError naming the problem with the password hidden
    (a malformed URL, a port that is not a number from 1 to 65535), never a traceback."""
    shown = redact_url(url)
    try:
        parsed = make_url(url)
        port = parsed.port
    except sa.exc.ArgumentError:
        raise SourceError(
            f"{shown!r} is not a valid database URL; expected "
            "dialect+driver://user:password@host:port/database (e.g. "
            "mysql+pymysql://erp@db.example:3306/erp, sqlite:///erp.sqlite)"
        ) from None
    except ValueError:  # SQLAlchemy parses the port with int()
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise SourceError(
            f"{shown!r} is not a valid database URL: its port must be a number from 1 to 65535"
        )
    return parsed


def _engine(url: str, *, must_exist: bool) -> Engine:
    """Create an engine; SourceError (not a SQLAlchemy traceback) for bad URLs/missing drivers.

    With ``must_exist`` a SQLite URL must point to an existing file (SQLite would otherwise
    silently create an empty database).
    """
    shown = redact_url(url)
    parsed = check_database_url(url)
    if parsed.get_backend_name() == "sqlite" and must_exist:
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:") and not Path(db).exists():
            raise SourceError(
                f"SQLite database {db} does not exist (source {shown}); check the path, "
                "or create it with `sparecast demo`"
            )
    try:
        return sa.create_engine(parsed)
    except (ImportError, sa.exc.SQLAlchemyError) as exc:
        raise SourceError(
            f"cannot use database URL {shown}: {exc}. Is the driver installed "
            "(e.g. mysql+pymysql://, postgresql+psycopg://)?"
        ) from None


@contextmanager
def _connected(engine: Engine, url: str, *, begin: bool = False) -> Iterator[Connection]:
    """A connection of ``engine``; any failure to connect (a driver error, an option the driver
    rejects such as ``?charset=nope``) is a SourceError naming the redacted URL, never a
    traceback."""
    try:
        conn = engine.connect()
    except Exception as exc:  # noqa: BLE001 - every connect failure is the source's problem
        raise _connect_error(url, exc) from None
    with conn:
        if begin:
            with conn.begin():
                yield conn
        else:
            yield conn


def _connect_error(url: str, exc: Exception) -> SourceError:
    orig = getattr(exc, "orig", None) or exc
    return SourceError(
        f"cannot connect to {redact_url(url)}: {orig}. Check that the server is running, "
        "the host/port/user/password and the database name."
    )


def _sql_type(name: str, s: pl.Series) -> sa.types.TypeEngine[Any]:
    dtype = s.dtype
    if dtype == pl.Date():
        return sa.Date()
    if isinstance(dtype, pl.Datetime):
        return sa.DateTime()
    if dtype == pl.Boolean():
        return sa.Boolean()
    if dtype.is_integer():
        return sa.BigInteger()
    if dtype.is_numeric():
        return sa.Double()
    longest = int(cast(Any, s.cast(pl.String).str.len_chars().max()) or 0) if s.len() else 0
    if longest <= 64 and (name.endswith("_id") or name in ("unit", "country", "category")):
        return sa.String(64)
    if longest <= 255:
        return sa.String(255)
    return sa.Text()


# --------------------------------------------------------------------------- SQL write
def _insert_chunks(
    conn: sa.Connection, table: sa.Table, frame: pl.DataFrame, chunk_size: int
) -> None:
    """Insert ``frame`` through the DBAPI's executemany, ``chunk_size`` rows at a time.

    Bypasses SQLAlchemy's per-row processing (10x faster for millions of rows); values are
    prepared the way SQLAlchemy would store them (SQLite: dates as ISO text, booleans as 0/1).
    """
    dialect = conn.dialect
    cols = [c.name for c in table.c if c.name in frame.columns]
    if dialect.name == "sqlite":
        frame = frame.with_columns(
            [
                pl.col(c).dt.strftime("%Y-%m-%d %H:%M:%S.%6f")
                if isinstance(frame.schema[c], pl.Datetime)
                else pl.col(c).cast(pl.String)
                for c in cols
                if frame.schema[c] == pl.Date() or isinstance(frame.schema[c], pl.Datetime)
            ]
        )
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    if dialect.paramstyle not in ("qmark", "format", "pyformat"):
        for lo in range(0, frame.height, chunk_size):  # generic (slower) path
            conn.execute(table.insert(), frame.slice(lo, chunk_size).select(cols).to_dicts())
        return
    quote = dialect.identifier_preparer.quote
    sql = (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
        f"({', '.join(quote(c) for c in cols)}) VALUES ({', '.join([mark] * len(cols))})"
    )
    for lo in range(0, frame.height, chunk_size):
        rows = frame.slice(lo, chunk_size).select(cols).rows()
        if rows:
            conn.exec_driver_sql(sql, rows)


def write_tables(
    tables: Mapping[str, pl.DataFrame | pd.DataFrame],
    url: str,
    *,
    if_exists: Literal["replace", "append", "fail"] = "replace",
    chunk_size: int = 50_000,
) -> dict[str, int]:
    """Write every table to the database at ``url`` (any SQLAlchemy URL; SQLite file by default).

    Tables are written under their dict keys with SQL types from the polars types (dates as DATE,
    floats as DOUBLE, ids as VARCHAR(64)); the canonical tables get indexes (demand on
    ``(item_id, date)``; purchase_orders on item_id and order_date; receipts on po_id and
    receipt_date). Inserts are chunked (``chunk_size`` rows) so 100k items x 730 days fits.
    ``if_exists``: "replace" drops and recreates, "append" adds rows (creating missing tables),
    "fail" raises SourceError when a table exists. Returns rows written per table.
    """
    if if_exists not in ("replace", "append", "fail"):
        raise SourceError(f"if_exists must be 'replace', 'append' or 'fail', got {if_exists!r}")
    engine = _engine(url, must_exist=False)
    written: dict[str, int] = {}
    try:
        with _connected(engine, url, begin=True) as conn:
            existing = set(sa.inspect(conn).get_table_names())
        for name, df in tables.items():
            frame = pl.from_pandas(df) if isinstance(df, pd.DataFrame) else df
            with _connected(engine, url, begin=True) as conn:
                meta = sa.MetaData()
                cols = [sa.Column(c, _sql_type(c, frame[c])) for c in frame.columns]
                table = sa.Table(name, meta, *cols)
                if name in existing:
                    if if_exists == "fail":
                        raise SourceError(
                            f"table {name} already exists in {redact_url(url)}; "
                            "use if_exists='replace' or 'append'"
                        )
                    if if_exists == "replace":
                        sa.Table(name, sa.MetaData()).drop(conn)
                        table.create(conn)
                    else:
                        table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                else:
                    table.create(conn)
                _insert_chunks(conn, table, frame, chunk_size)
                if name not in existing or if_exists == "replace":
                    for cols_ix in _INDEXES.get(name, ()):
                        if all(c in frame.columns for c in cols_ix):
                            sa.Index(
                                f"ix_{name}_{'_'.join(cols_ix)}", *[table.c[c] for c in cols_ix]
                            ).create(conn)
            written[name] = frame.height
    except sa.exc.DBAPIError as exc:
        raise _connect_error(url, exc) from None
    finally:
        engine.dispose()
    return written


# --------------------------------------------------------------------------- SQL read
def _since_for(since: date | Mapping[str, date | None] | None, table: str) -> date | None:
    if since is None or table not in DATED_TABLES:
        return None
    if isinstance(since, Mapping):
        return since.get(table)
    return since


def _find_column(table: sa.Table, name: str) -> sa.Column[Any] | None:
    if name in table.c:
        return table.c[name]
    lowered = {c.name.lower(): c for c in table.c}
    return lowered.get(name.lower())


def _coerce_read(df: pl.DataFrame, table: str) -> pl.DataFrame:
    """Bring what the driver returned towards the canonical types without losing anything:
    ids to strings, decimals to floats, datetimes to dates, ISO date strings to dates (only when
    every value parses; otherwise the strings are kept for validation to reject)."""
    canon = TABLE_SCHEMAS[table]
    exprs = []
    for c, dtype in df.schema.items():
        target = canon.get(c)
        e = pl.col(c)
        if dtype == pl.Null() and target is not None:
            exprs.append(e.cast(target))
        elif target == pl.String() and dtype != pl.String():
            exprs.append(e.cast(pl.String))
        elif target == pl.Float64() and (isinstance(dtype, pl.Decimal) or dtype.is_integer()):
            exprs.append(e.cast(pl.Float64))
        elif target == pl.Date() and isinstance(dtype, pl.Datetime):
            exprs.append(e.dt.date())
        elif target == pl.Date() and dtype == pl.String():
            exprs.append(e)  # handled below
        elif target == pl.Boolean() and dtype.is_integer():
            exprs.append(e != 0)
        else:
            exprs.append(e)
    df = df.select(exprs)
    for c in DATE_COLUMNS.get(table, ()):
        if c in df.columns and df.schema[c] == pl.String():
            # a few thousand distinct dates over millions of rows: parse each text once
            texts = df[c].unique().to_frame("text")
            texts = texts.with_columns(parse_date_expr(pl.col("text"), pl.String()).alias(c))
            parsed = df.select(pl.col(c).alias("text")).join(
                texts, on="text", how="left", maintain_order="left"
            )[c]
            if parsed.null_count() == df[c].null_count():
                df = df.with_columns(parsed)
    return df


ReadProgress = Callable[[str, int, int], None]
"""progress(table, rows_read, rows_total) while a table is read in chunks."""


def _fetch(
    conn: sa.Connection,
    stmt: sa.Select[Any],
    names: list[str],
    chunk_size: int,
    progress: tuple[str, ReadProgress] | None = None,
) -> pl.DataFrame:
    parts: list[pl.DataFrame] = []
    total = 0
    if progress is not None:
        count = sa.select(sa.func.count()).select_from(stmt.subquery())
        total = int(conn.execute(count).scalar_one())
        progress[1](progress[0], 0, total)
    result = conn.execution_options(stream_results=True).execute(stmt)
    done = 0
    for rows in result.partitions(chunk_size):
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        parts.append(
            pl.DataFrame({n: list(v) for n, v in zip(names, columns, strict=True)}, strict=False)
        )
        done += len(rows)
        if progress is not None:
            progress[1](progress[0], done, max(total, done))
    if not parts:
        return pl.DataFrame({n: [] for n in names})
    return pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]


def _fetch_fast(
    conn: sa.Connection,
    reader: FastReader,
    stmt: sa.Select[Any],
    names: list[str],
    chunk_size: int,
    progress: tuple[str, ReadProgress] | None = None,
) -> pl.DataFrame:
    """``_fetch`` through the Arrow driver: the same frame (columns ``names``, the SQLAlchemy
    reader's types) and the same progress calls (the total first, then one per ``chunk_size``
    rows and one at the end)."""
    total = 0
    on_rows: Callable[[int], None] | None = None
    if progress is not None:
        count = sa.select(sa.func.count()).select_from(stmt.subquery())
        total = int(conn.execute(count).scalar_one())
        table, report = progress
        report(table, 0, total)
        reported = [0]

        def on_rows(done: int) -> None:
            while reported[0] + chunk_size <= done:
                reported[0] += chunk_size
                report(table, reported[0], max(total, reported[0]))

    declared = {c.name: c for c in stmt.selected_columns}
    if conn.dialect.name in ("mysql", "mariadb") and any(
        isinstance(c.type, sa.TIMESTAMP) for c in declared.values()
    ):
        # TIMESTAMP values come in the session's time zone through SQLAlchemy; read them the
        # same way only where that zone is UTC
        zone = conn.exec_driver_sql(
            "SELECT IF(@@session.time_zone = 'SYSTEM', @@system_time_zone, @@session.time_zone)"
        ).scalar()
        if str(zone).upper() not in ("UTC", "+00:00", "GMT", "ETC/UTC"):
            raise FastReadError(f"TIMESTAMP columns in the session time zone {zone}")
    frame = reader.read(compile_sql(stmt, conn.dialect), batch_rows=chunk_size, on_rows=on_rows)
    aware = [n for n, t in frame.schema.items() if isinstance(t, pl.Datetime) and t.time_zone]
    if aware and conn.dialect.name == "postgresql":
        # the Arrow driver gives UTC; psycopg gives the session's time zone (its calendar days)
        zone = str(conn.exec_driver_sql("SHOW TIME ZONE").scalar())
        try:
            frame = frame.with_columns(pl.col(n).dt.convert_time_zone(zone) for n in aware)
        except pl.exceptions.PolarsError:
            raise FastReadError(f"the session time zone {zone!r} is not a zone name") from None
    if conn.dialect.name == "sqlite":
        # SQLite lets a column hold numbers and text; the driver then turns the numbers into
        # text of its own format, so such a table is read row by row instead.
        for name in frame.columns:
            col = declared.get(name)
            if (
                frame.schema[name] == pl.String()
                and col is not None
                and not isinstance(col.type, sa.String | sa.Date | sa.DateTime | sa.Time)
            ):
                raise FastReadError(f"column {name!r} mixes text and numbers")
    if progress is not None and frame.height % chunk_size:
        progress[1](progress[0], frame.height, max(total, frame.height))
    if frame.height == 0:
        return pl.DataFrame({n: [] for n in names})
    return frame.rename(dict(zip(frame.columns, names, strict=True)))


SqlReader = Literal["auto", "arrow", "sqlalchemy"]
"""How ``read_tables`` reads rows: "arrow" through an Arrow-native driver (ADBC for
PostgreSQL and SQLite, connectorx for MariaDB/MySQL; SourceError when none serves the URL),
"sqlalchemy" row by row through the URL's own driver, "auto" (default) Arrow where it can,
else SQLAlchemy, with a log note saying why."""


def _fast_reader_for(parsed: sa.URL, reader: SqlReader, shown: str) -> FastReader | None:
    if reader == "sqlalchemy":
        return None
    if reader not in ("auto", "arrow"):
        raise SourceError(f"reader must be 'auto', 'arrow' or 'sqlalchemy', got {reader!r}")
    fast, why = fast_reader(parsed)
    if fast is None:
        if reader == "arrow":
            raise SourceError(f"cannot read {shown} through Arrow: {why}")
        log.info("reading %s through SQLAlchemy: %s", shown, why)
    return fast


def read_tables(
    url: str,
    mapping: ErpMapping | Mapping[str, Any] | None = None,
    tables: Iterable[str] = TABLES,
    since: date | Mapping[str, date | None] | None = None,
    *,
    chunk_size: int = 100_000,
    progress: ReadProgress | None = None,
    reader: SqlReader = "auto",
) -> dict[str, pl.DataFrame]:
    """Read canonical tables from the database at ``url`` through the ERP ``mapping``.

    The queries are built by SQLAlchemy; ``reader`` (``SqlReader``) says how their rows are
    fetched: by default through an Arrow-native driver where one serves the URL (ADBC for
    PostgreSQL and SQLite, connectorx for MariaDB/MySQL; 10-30x faster than row by row), else,
    or when that driver cannot read a table (e.g. a SQLite column holding both numbers and
    text), through SQLAlchemy, with a log note. Both give the same frames.

    ``progress(table, rows_read, rows_total)`` is called as each table is read (in chunks of
    ``chunk_size`` rows); it costs one COUNT query per table.

    Returns canonical column names (optional columns only when the source has them) with the
    source's types nudged to the canonical ones (dates come back as dates from SQLite and
    MariaDB alike); rows are not validated here. ``since`` (a date, or a dict table -> date)
    restricts the dated tables (demand.date, purchase_orders.order_date, receipts.receipt_date)
    to rows dated strictly after that day; other tables are read in full.
    Raises SourceError naming the URL and the missing tables/columns, or the connection error.
    """
    erp = ErpMapping.coerce(mapping)
    names = list(tables)
    unknown = [t for t in names if t not in TABLES]
    if unknown:
        raise SourceError(f"unknown table(s) {unknown}; canonical tables are {list(TABLES)}")
    engine = _engine(url, must_exist=True)
    shown = redact_url(url)
    fast = _fast_reader_for(engine.url, reader, shown)
    out: dict[str, pl.DataFrame] = {}
    try:
        with _connected(engine, url) as conn:
            available = sa.inspect(conn).get_table_names()
            by_lower = {t.lower(): t for t in available}
            missing_tables = [
                f"{t} (source table {erp.table_name(t)!r})"
                for t in names
                if erp.table_name(t) not in available and erp.table_name(t).lower() not in by_lower
            ]
            if missing_tables:
                raise SourceError(
                    f"{shown} lacks table(s) {', '.join(missing_tables)}; it has "
                    f"{sorted(available) or 'no tables'}. Map the ERP's table names in the "
                    "[data.erp_mapping] section of the config "
                    '(e.g. [data.erp_mapping.demand] table = "MTL_ISSUES").'
                )
            sqlite = engine.dialect.name == "sqlite"
            for t in names:
                src_name = erp.table_name(t)
                src_name = src_name if src_name in available else by_lower[src_name.lower()]
                table = sa.Table(src_name, sa.MetaData(), autoload_with=conn)
                selected: list[Any] = []
                labels: list[str] = []
                missing_cols = []
                cols_by_canon: dict[str, sa.Column[Any]] = {}
                for canon, src in erp.column_map(t).items():
                    col = _find_column(table, src)
                    if col is None:
                        if canon in REQUIRED_COLUMNS[t]:
                            missing_cols.append(f"{canon} (source column {src!r})")
                        continue
                    cols_by_canon[canon] = col
                    expr: Any = col
                    if sqlite and isinstance(col.type, sa.Date | sa.DateTime):
                        # SQLite stores dates as text: parse them in polars (fast, lenient)
                        expr = sa.type_coerce(col, sa.String())
                    selected.append(expr.label(canon))
                    labels.append(canon)
                if missing_cols:
                    raise SourceError(
                        f"table {src_name!r} in {shown} (canonical {t}) lacks column(s) "
                        f"{', '.join(missing_cols)}; it has {[c.name for c in table.c]}. "
                        f"Map them in the config, e.g. [data.erp_mapping.{t}.columns] "
                        f'{missing_cols[0].split(" ")[0]} = "SOURCE_COLUMN".'
                    )
                stmt = sa.select(*selected)
                after = _since_for(since, t)
                if after is not None:
                    col = cols_by_canon[DATED_TABLES[t]]
                    first = after + timedelta(days=1)
                    bound: Any = first
                    if isinstance(col.type, sa.DateTime):
                        bound = datetime.combine(first, time())
                    elif not isinstance(col.type, sa.Date):
                        bound = first.isoformat()
                    stmt = stmt.where(col >= bound)
                tracker = (t, progress) if progress is not None else None
                frame = None
                if fast is not None:
                    try:
                        frame = _fetch_fast(conn, fast, stmt, labels, chunk_size, tracker)
                    except FastReadError as exc:
                        if reader == "arrow":
                            raise SourceError(
                                f"cannot read table {src_name!r} of {shown} through "
                                f"{fast.driver}: {exc}"
                            ) from None
                        log.warning(
                            "reading table %r of %s through SQLAlchemy: %s could not (%s)",
                            src_name,
                            shown,
                            fast.driver,
                            exc,
                        )
                if frame is None:
                    frame = _fetch(conn, stmt, labels, chunk_size, tracker)
                out[t] = _coerce_read(frame, t)
    except sa.exc.DBAPIError as exc:
        raise _connect_error(url, exc) from None
    except sa.exc.NoSuchTableError as exc:
        raise SourceError(f"{shown} lacks table {exc}") from None
    finally:
        if fast is not None:
            fast.close()
        engine.dispose()
    return out


# --------------------------------------------------------------------------- long files
def read_frame_file(p: Path, what: str = "") -> pl.DataFrame:
    """A CSV (every column as strings: nothing lost to type inference, bad values reach
    validation) or Parquet file, by extension; a SourceError naming ``what`` and the file
    otherwise."""
    name = f"{what} {p}".strip()
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            return pl.read_csv(p, infer_schema=False)
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(p)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise SourceError(f"cannot read {name}: {exc}") from None
    raise SourceError(f"cannot read {name}: unknown extension {p.suffix!r}; use .csv or .parquet")


def read_long_file(path: str | Path) -> pl.DataFrame:
    """Read a long-format file ``unique_id, ds, y`` (CSV or Parquet, by extension).

    CSV columns are read as strings so that nothing is lost to type inference (item ids keep
    leading zeros, bad dates/quantities reach validation and are reported): pass the result to
    ``sparecast.data.schema.validate_long``. Extra columns are kept.
    """
    p = Path(path)
    if not p.exists():
        raise SourceError(f"long-format file {p} does not exist")
    df = read_frame_file(p)
    missing = [c for c in LONG_COLUMNS if c not in df.columns]
    if missing:
        raise SourceError(
            f"{p} lacks column(s) {missing}; it has {df.columns}. A long-format file needs "
            "'unique_id' (item), 'ds' (date) and 'y' (quantity)."
        )
    return df


def write_long_file(df: pl.DataFrame | pd.DataFrame, path: str | Path) -> Path:
    """Write long-format rows to CSV or Parquet (by extension); canonical demand
    (``item_id, date, quantity``) is renamed to ``unique_id, ds, y``. Returns the path."""
    frame = pl.from_pandas(df) if isinstance(df, pd.DataFrame) else df
    if (
        all(c in frame.columns for c in ("item_id", "date", "quantity"))
        and "unique_id" not in frame.columns
    ):
        frame = frame.rename({"item_id": "unique_id", "date": "ds", "quantity": "y"})
    missing = [c for c in LONG_COLUMNS if c not in frame.columns]
    if missing:
        raise SourceError(f"cannot write {path}: the frame lacks column(s) {missing}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        frame.write_csv(p)
    elif suffix in (".parquet", ".pq"):
        frame.write_parquet(p)
    else:
        raise SourceError(f"cannot write {p}: unknown extension {p.suffix!r}; use .csv or .parquet")
    return p


# --------------------------------------------------------------------------- load_source
@dataclass
class SourceData:
    """Tables read from one source.

    ``kind``: "sql" or "long_file"; ``location``: the URL (password hidden) or the path;
    ``tables``: canonical tables (validated and typed when ``load_source(validate=True)``; for a
    long file only ``demand`` and an ``items`` table derived from its ids); ``reports`` and
    ``rejected``: the validation report and rejected rows per table (empty without validation).
    """

    kind: Literal["sql", "long_file"]
    location: str
    tables: dict[str, pl.DataFrame]
    reports: dict[str, ValidationReport] = field(default_factory=dict)
    rejected: dict[str, pl.DataFrame] = field(default_factory=dict)

    def report_dict(self) -> dict[str, Any]:
        """Validation reports as a JSON-ready dict (for run.json)."""
        return {t: r.to_dict() for t, r in self.reports.items()}

    def raise_if_rejected(self) -> None:
        """DataValidationError if any table had rejected rows (``--strict``)."""
        for r in self.reports.values():
            r.raise_if_rejected()


def _items_from_ids(ids: pl.Series) -> pl.DataFrame:
    n = ids.len()
    return pl.DataFrame(
        {
            "item_id": ids,
            "description": pl.Series([None] * n, dtype=pl.String),
            "category": pl.Series([None] * n, dtype=pl.String),
            "unit_cost": pl.Series([None] * n, dtype=pl.Float64),
            "unit": pl.Series([None] * n, dtype=pl.String),
            "active": pl.Series([True] * n, dtype=pl.Boolean),
        },
        schema=TABLE_SCHEMAS["items"],
    )


class Source(Protocol):
    """One place the canonical tables come from: a database or a long-format file.

    ``name``: the kind of source ("sql", "sqlite" or "file"); ``kind``: the kind of tables it
    gives ("sql": the ERP tables; "long_file": demand and the items of its ids); ``url``: the
    SQLAlchemy URL of a database (it can be extracted incrementally), None for a file.
    """

    name: ClassVar[str]
    kind: ClassVar[Literal["sql", "long_file"]]

    @property
    def url(self) -> str | None:
        """The SQLAlchemy URL of a database source, None for a file."""
        ...

    def describe(self) -> str:
        """Where the source is, with any password hidden (for messages and run.json)."""
        ...

    def read_tables(
        self,
        tables: Iterable[str] | None = None,
        since: date | Mapping[str, date | None] | None = None,
        *,
        progress: ReadProgress | None = None,
    ) -> dict[str, pl.DataFrame]:
        """The canonical ``tables`` as read (canonical names, not validated)."""
        ...

    def load(
        self,
        *,
        tables: Iterable[str] | None = None,
        since: date | Mapping[str, date | None] | None = None,
        validate: bool = True,
        today: date | str | None = None,
        window_start: date | str | None = None,
        window_end: date | str | None = None,
        strict: bool = False,
        outlier_factor: float = DEFAULT_OUTLIER_FACTOR,
        outlier_action: str = DEFAULT_OUTLIER_ACTION,
    ) -> SourceData:
        """The tables, validated unless ``validate=False`` (see ``load_source``)."""
        ...


class SqlSource:
    """A database at a SQLAlchemy URL (MariaDB, PostgreSQL, SQLite, ...), read through the ERP
    ``mapping``."""

    name: ClassVar[str] = "sql"
    kind: ClassVar[Literal["sql", "long_file"]] = "sql"

    def __init__(self, url: str, mapping: ErpMapping | Mapping[str, Any] | None = None) -> None:
        check_database_url(url)  # a malformed URL fails here, before any work
        self._url = url
        self.mapping = ErpMapping.coerce(mapping)

    @property
    def url(self) -> str:
        """The SQLAlchemy URL."""
        return self._url

    def describe(self) -> str:
        """The URL with its password hidden."""
        return redact_url(self._url)

    def read_tables(
        self,
        tables: Iterable[str] | None = None,
        since: date | Mapping[str, date | None] | None = None,
        *,
        progress: ReadProgress | None = None,
    ) -> dict[str, pl.DataFrame]:
        """``read_tables`` of this URL and mapping (default: all six tables)."""
        names = list(tables) if tables is not None else list(TABLES)
        return read_tables(self._url, self.mapping, tables=names, since=since, progress=progress)

    def load(
        self,
        *,
        tables: Iterable[str] | None = None,
        since: date | Mapping[str, date | None] | None = None,
        validate: bool = True,
        today: date | str | None = None,
        window_start: date | str | None = None,
        window_end: date | str | None = None,
        strict: bool = False,
        outlier_factor: float = DEFAULT_OUTLIER_FACTOR,
        outlier_action: str = DEFAULT_OUTLIER_ACTION,
    ) -> SourceData:
        """The tables (default: all six), validated against each other unless ``validate=False``;
        ``strict`` raises at the first table with rejected rows."""
        raw = self.read_tables(tables, since)
        shown = self.describe()
        if not validate:
            return SourceData("sql", shown, raw)
        results = validate_tables(
            raw,
            today=today,
            window_start=window_start,
            window_end=window_end,
            outlier_factor=outlier_factor,
            outlier_action=outlier_action,
        )
        if strict:
            for r in results.values():
                r.report.raise_if_rejected()
        return SourceData(
            "sql",
            shown,
            {t: r.valid for t, r in results.items()},
            reports={t: r.report for t, r in results.items()},
            rejected={t: r.rejected for t, r in results.items()},
        )


class SqliteSource(SqlSource):
    """A SQLite database file (one of ``SQLITE_SUFFIXES``); it must exist."""

    name: ClassVar[str] = "sqlite"

    def __init__(
        self, path: str | Path, mapping: ErpMapping | Mapping[str, Any] | None = None
    ) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise SourceError(f"SQLite file {self.path} does not exist; check the path")
        super().__init__(sqlite_url(self.path), mapping)

    def describe(self) -> str:
        """The path of the file."""
        return str(self.path)


class FileSource:
    """A long-format file ``unique_id, ds, y`` (CSV or Parquet): demand only, and an items
    table made of its ids (no purchasing tables)."""

    name: ClassVar[str] = "file"
    kind: ClassVar[Literal["sql", "long_file"]] = "long_file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()

    @property
    def url(self) -> None:
        """A file has no database URL."""
        return None

    def describe(self) -> str:
        """The path of the file."""
        return str(self.path)

    def read_tables(
        self,
        tables: Iterable[str] | None = None,
        since: date | Mapping[str, date | None] | None = None,
        *,
        progress: ReadProgress | None = None,
    ) -> dict[str, pl.DataFrame]:
        """``demand`` (renamed to the canonical columns, not validated) and ``items`` (its ids);
        ``tables``, ``since`` and ``progress`` do not apply to a file."""
        demand = read_long_file(self.path).rename(
            {"unique_id": "item_id", "ds": "date", "y": "quantity"}
        )
        ids = demand["item_id"].cast(pl.String).drop_nulls().unique(maintain_order=True)
        return {"demand": demand, "items": _items_from_ids(ids)}

    def load(
        self,
        *,
        tables: Iterable[str] | None = None,
        since: date | Mapping[str, date | None] | None = None,
        validate: bool = True,
        today: date | str | None = None,
        window_start: date | str | None = None,
        window_end: date | str | None = None,
        strict: bool = False,
        outlier_factor: float = DEFAULT_OUTLIER_FACTOR,
        outlier_action: str = DEFAULT_OUTLIER_ACTION,
    ) -> SourceData:
        """Demand (validated as long format unless ``validate=False``) and the items of its ids
        (sorted when validated)."""
        if not validate:
            return SourceData("long_file", self.describe(), self.read_tables())
        raw = read_long_file(self.path)
        res = validate_long(
            raw,
            today=today,
            window_start=window_start,
            window_end=window_end,
            outlier_factor=outlier_factor,
            outlier_action=outlier_action,
        )
        if strict:
            res.report.raise_if_rejected()
        ids = res.valid["item_id"].unique(maintain_order=True).sort()
        return SourceData(
            "long_file",
            self.describe(),
            {"demand": res.valid, "items": _items_from_ids(ids)},
            reports={"demand": res.report},
            rejected={"demand": res.rejected},
        )


def open_source(
    location: str | Path, *, mapping: ErpMapping | Mapping[str, Any] | None = None
) -> Source:
    """The source ``location`` names: a SQLAlchemy URL (contains ``://``), a SQLite file
    (``SQLITE_SUFFIXES``, must exist) or a long-format file (``FILE_SUFFIXES``).

    The one place that tells the kind of source from the string. ``mapping`` is the ERP
    mapping of a database (``[data.erp_mapping]``; a file ignores it).
    """
    text = str(location)
    if "://" in text:
        return SqlSource(text, mapping)
    path = Path(text).expanduser()
    suffix = path.suffix.lower()
    if suffix in SQLITE_SUFFIXES:
        return SqliteSource(path, mapping)
    if suffix in FILE_SUFFIXES:
        return FileSource(path)
    raise SourceError(
        f"cannot tell what kind of source {text!r} is: give a database URL "
        "(e.g. mysql+pymysql://user@host/db, sqlite:///erp.sqlite), a .sqlite/.db file "
        "or a long-format .csv/.parquet file"
    )


def load_source(
    source: str | Path,
    *,
    mapping: ErpMapping | Mapping[str, Any] | None = None,
    tables: Iterable[str] | None = None,
    since: date | Mapping[str, date | None] | None = None,
    validate: bool = True,
    today: date | str | None = None,
    window_start: date | str | None = None,
    window_end: date | str | None = None,
    strict: bool = False,
    outlier_factor: float = DEFAULT_OUTLIER_FACTOR,
    outlier_action: str = DEFAULT_OUTLIER_ACTION,
) -> SourceData:
    """Read a source: a SQLAlchemy URL (contains ``://``), a SQLite file (.sqlite/.sqlite3/.db)
    or a long-format file (.csv/.parquet); ``open_source(source).load(...)``.

    With ``validate`` (default) every table goes through ``sparecast.data.schema`` validation
    (demand against the items table, ``today``/window bounds) and ``strict`` raises
    DataValidationError at the first table with rejected rows; ``outlier_factor`` and
    ``outlier_action`` set the extreme-quantity rule (``sparecast.data.outliers``, the
    ``[data]`` settings of the same names). ``tables`` selects the SQL tables
    (default: all six); ``mapping`` is the ERP mapping (``[data.erp_mapping]`` config section).
    """
    return open_source(source, mapping=mapping).load(
        tables=tables,
        since=since,
        validate=validate,
        today=today,
        window_start=window_start,
        window_end=window_end,
        strict=strict,
        outlier_factor=outlier_factor,
        outlier_action=outlier_action,
    )
