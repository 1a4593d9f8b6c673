"""What the pages read from the data directory: the run's Parquet files (cached in memory,
re-read when a file changes), run.json, and the plan's identity (for order decisions)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from sparecast.pipeline.outputs import OPEN_ORDERS_FILE, POLICY_FILE, SUPPLIERS_FILE
from sparecast.pipeline.staging import RUN_JSON

__all__ = ["WebData", "RISK_LEVELS", "risk_level"]

RISK_LEVELS: tuple[tuple[str, float, float], ...] = (
    ("low", 0.0, 0.05),
    ("medium", 0.05, 0.20),
    ("high", 0.20, 0.50),
    ("critical", 0.50, 1.01),
)
"""Stockout-risk levels of the order workbench's filter: (name, lower bound, upper excl.)."""


def risk_level() -> pl.Expr:
    """The ``risk_level`` column from ``stockout_risk``."""
    expr: pl.Expr = pl.lit(None, pl.String)
    for name, lo, hi in reversed(RISK_LEVELS):
        expr = (
            pl.when((pl.col("stockout_risk") >= lo) & (pl.col("stockout_risk") < hi))
            .then(pl.lit(name))
            .otherwise(expr)
        )
    return expr.alias("risk_level")


class _Cached:
    """One file's parsed content, re-made when its mtime or size changes."""

    def __init__(self, path: Path, parse: Callable[[Path], Any]) -> None:
        self.path = path
        self.parse = parse
        self.signature: tuple[int, int] | None = None
        self.value: Any = None
        self.lock = threading.Lock()
        self.reads = 0

    def get(self) -> Any:
        try:
            st = self.path.stat()
        except OSError:
            return None
        sig = (st.st_mtime_ns, st.st_size)
        if sig != self.signature:
            with self.lock:
                if sig != self.signature:
                    self.value = self.parse(self.path)
                    self.signature = sig
                    self.reads += 1
        return self.value


def _policy(path: Path) -> dict[str, Any]:
    frame = pl.read_parquet(path).with_columns(pl.col("unique_id").cast(pl.String))
    if "stockout_risk" in frame.columns:
        frame = frame.with_columns(risk_level())
    plan_id = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    orders = (
        frame.filter(pl.col("suggested_order") > 0)
        if "suggested_order" in frame.columns
        else frame.head(0)
    )
    return {
        "frame": frame,
        "orders": orders,
        "plan_id": plan_id,
        "suppliers": sorted(
            x for x in frame.get_column("supplier_id").unique().to_list() if x is not None
        )
        if "supplier_id" in frame.columns
        else [],
        "categories": sorted(
            x for x in frame.get_column("category").unique().to_list() if x is not None
        )
        if "category" in frame.columns
        else [],
        "index": {uid: i for i, uid in enumerate(frame.get_column("unique_id").to_list())},
    }


def _frame(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


class WebData:
    """The data directory as the pages see it; every accessor returns None when the file is
    missing (the page then says which command makes it)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._policy = _Cached(data_dir / POLICY_FILE, _policy)
        self._files = {
            name: _Cached(data_dir / f"{name}.parquet", _frame)
            for name in (
                "classification",
                "selection",
                "backtest_summary",
                SUPPLIERS_FILE.removesuffix(".parquet"),
                OPEN_ORDERS_FILE.removesuffix(".parquet"),
            )
        }
        self._run = _Cached(data_dir / RUN_JSON, _json)

    def plan(self) -> dict[str, Any] | None:
        """The plan (``frame``, ``orders``, ``plan_id``, ``suppliers``, ``categories``)."""
        value: dict[str, Any] | None = self._policy.get()
        return value

    def frame(self, name: str) -> pl.DataFrame | None:
        """``DIR/<name>.parquet`` (classification, selection, backtest_summary, suppliers,
        open_orders) or None."""
        value: pl.DataFrame | None = self._files[name].get()
        return value

    def signature(self, name: str) -> tuple[int, int] | None:
        """``DIR/<name>.parquet``'s (mtime, size), None when missing: the version of a file read
        only to derive a table (the backtest's per-item scores, 1.4 million rows at 100,000
        items: its derived table is kept, the file is not)."""
        try:
            st = (self.data_dir / f"{name}.parquet").stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def read(self, name: str, columns: list[str]) -> pl.DataFrame | None:
        """``columns`` of ``DIR/<name>.parquet`` read now (not kept), or None when missing."""
        path = self.data_dir / f"{name}.parquet"
        if not path.exists():
            return None
        return pl.read_parquet(path, columns=columns)

    def run_json(self) -> dict[str, Any]:
        """``DIR/run.json`` ({} when missing)."""
        value: dict[str, Any] = self._run.get() or {}
        return value

    def reads(self) -> dict[str, int]:
        """How often each file was read (parsed) so far, by name (``policy``, ``run.json``,
        the frames' names)."""
        return {
            "policy": self._policy.reads,
            "run.json": self._run.reads,
            **{name: cached.reads for name, cached in self._files.items()},
        }

    def policy_row(self, item_id: str) -> dict[str, Any] | None:
        """The item's plan row, or None."""
        plan = self.plan()
        if plan is None:
            return None
        i = plan["index"].get(item_id)
        return None if i is None else plan["frame"].row(i, named=True)
