"""Incremental extraction of an ERP database into Parquet files (``DIR/extract``).

The dated tables (demand, purchase orders, receipts) are appended after a watermark, the master
tables re-read in full; see ``extract_incremental``. Reads go through
:func:`sparecast.data.sources.read_tables` and the ERP mapping (:mod:`sparecast.data.mapping`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from sparecast.data.mapping import ErpMapping
from sparecast.data.schema import DATED_TABLES, TABLES
from sparecast.data.sources import read_tables
from sparecast.errors import ConfigError, SourceError
from sparecast.urls import redact_url

__all__ = ["ExtractResult", "extract_incremental", "read_extract"]


@dataclass
class ExtractResult:
    """What one extraction did.

    ``new_rows``: rows read in this run per table (for the dated tables only the rows after the
    watermark, for the master tables their full size); ``total_rows``: rows now in each Parquet
    file; ``watermarks``: max extracted date per dated table; ``full``: True when everything was
    re-read (first run, ``full=True``, or the source URL/mapping changed).
    """

    directory: Path
    full: bool
    new_rows: dict[str, int] = field(default_factory=dict)
    total_rows: dict[str, int] = field(default_factory=dict)
    watermarks: dict[str, date | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "directory": str(self.directory),
            "full": self.full,
            "new_rows": dict(self.new_rows),
            "total_rows": dict(self.total_rows),
            "watermarks": {k: v.isoformat() if v else None for k, v in self.watermarks.items()},
        }


_STATE_VERSION = 1


def _source_fingerprint(url: str, mapping: ErpMapping, tables: Iterable[str]) -> str:
    payload = json.dumps(
        {"url": url, "mapping": mapping.fingerprint(), "tables": sorted(tables)}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _write_atomic_parquet(df: pl.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".parquet.tmp")
    df.write_parquet(tmp)
    os.replace(tmp, path)


def _write_atomic_json(data: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _max_date(df: pl.DataFrame, col: str, today: date | None = None) -> date | None:
    """Latest date of ``col`` not after ``today`` (future-dated rows never move the watermark)."""
    if col not in df.columns or df.height == 0 or df.schema[col] != pl.Date():
        return None
    dates = df[col] if today is None else df[col].filter(df[col] <= today)
    value = dates.max()
    return value if isinstance(value, date) else None


def extract_incremental(
    url: str,
    state_dir: str | Path,
    mapping: ErpMapping | Mapping[str, Any] | None = None,
    *,
    full: bool = False,
    tables: Iterable[str] = TABLES,
    today: date | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ExtractResult:
    """Extract the ERP's canonical tables into ``state_dir/extract/<table>.parquet``, incrementally.

    The watermark rule: for the dated tables (demand by ``date``, purchase_orders by
    ``order_date``, receipts by ``receipt_date``) ``state_dir/extract/state.json`` keeps the
    latest date extracted that is not after ``today`` (default: the current date; rows dated in
    the future are kept for validation to report but never move the watermark, and are re-read
    on the next call instead of being appended twice); the next call only queries rows dated
    *after* that day and appends them. Rows booked later for a day that was already extracted
    are therefore never seen: run the extraction after the ERP day is closed (e.g. nightly for
    yesterday), or pass ``full=True`` to re-read everything. The master tables (items,
    suppliers, stock) are small and re-read in full every time. A change of the source URL, the
    mapping or the table list (recorded as a fingerprint in state.json), or a missing Parquet
    file, forces a full extraction. Rows are stored as read (canonical names, source types);
    validate them with ``sparecast.data.schema.validate_tables`` when using them
    (``read_extract``).
    """
    names = list(tables)
    unknown = [t for t in names if t not in TABLES]
    if unknown:
        raise ConfigError(
            f"unknown table(s) {unknown} to extract; canonical tables are {list(TABLES)}"
        )
    erp = ErpMapping.coerce(mapping)
    out_dir = Path(state_dir) / "extract"
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / "state.json"
    fingerprint = _source_fingerprint(url, erp, names)

    state: dict[str, Any] = {}
    if state_path.exists():
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            state = {}  # unreadable state: start over
    old_marks: dict[str, date | None] = {
        t: date.fromisoformat(v) if v else None for t, v in (state.get("watermarks") or {}).items()
    }
    full_run = (
        full
        or state.get("version") != _STATE_VERSION
        or state.get("fingerprint") != fingerprint
        or any(not (out_dir / f"{t}.parquet").exists() for t in names)
    )
    since: dict[str, date | None] = {}
    if not full_run:
        since = {t: old_marks.get(t) for t in names if t in DATED_TABLES}
    fresh = read_tables(url, erp, tables=names, since=since, progress=progress)

    result = ExtractResult(directory=out_dir, full=full_run)
    for t in names:
        new = fresh[t]
        path = out_dir / f"{t}.parquet"
        incremental = t in DATED_TABLES and since.get(t) is not None
        if incremental:
            # Rows dated after the watermark (future-dated bookings) were read again just now.
            col = DATED_TABLES[t]
            old = pl.read_parquet(path).filter(pl.col(col) <= since[t])
            combined = pl.concat([old, new], how="vertical_relaxed") if new.height else old
        else:
            combined = new
        _write_atomic_parquet(combined, path)
        result.new_rows[t] = new.height
        result.total_rows[t] = combined.height
        if t in DATED_TABLES:
            mark = _max_date(combined, DATED_TABLES[t], today or date.today())
            result.watermarks[t] = mark if mark is not None else since.get(t)
    _write_atomic_json(
        {
            "version": _STATE_VERSION,
            "fingerprint": fingerprint,
            "source": redact_url(url),
            "tables": names,
            "watermarks": {k: v.isoformat() if v else None for k, v in result.watermarks.items()},
            "extracted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "last_run": {"full": full_run, "new_rows": result.new_rows},
        },
        state_path,
    )
    return result


def read_extract(
    state_dir: str | Path, tables: Iterable[str] | None = None
) -> dict[str, pl.DataFrame]:
    """The tables extracted by ``extract_incremental`` into ``state_dir/extract`` (as stored)."""
    out_dir = Path(state_dir) / "extract"
    names = (
        list(tables)
        if tables is not None
        else [t for t in TABLES if (out_dir / f"{t}.parquet").exists()]
    )
    missing = [t for t in names if not (out_dir / f"{t}.parquet").exists()]
    if missing or not names:
        raise SourceError(
            f"no extracted table(s) {missing or list(TABLES)} in {out_dir}; "
            "run the extraction first (sparecast.data.extract.extract_incremental)"
        )
    return {t: pl.read_parquet(out_dir / f"{t}.parquet") for t in names}
