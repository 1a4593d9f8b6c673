"""The ERP mapping: the source table and column names of every canonical table.

A mapping is the ``[data.erp_mapping]`` section of the config file, e.g.::

    [data.erp_mapping.demand]
    table = "MTL_ISSUES"
    columns = { item_id = "ITEM_NO", date = "TRX_DATE", quantity = "QTY" }

Tables and columns that are not mapped keep their canonical names.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sparecast.data.schema import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, TABLES
from sparecast.errors import ConfigError

__all__ = ["TableMapping", "ErpMapping"]


class TableMapping(BaseModel):
    """Where one canonical table lives in the ERP: ``table`` (None = the canonical name) and
    ``columns``, canonical column -> source column (unmapped columns keep their names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str | None = None
    columns: dict[str, str] = Field(default_factory=dict)


class ErpMapping(BaseModel):
    """Source table and column names of every canonical table (defaults: the canonical names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: TableMapping = Field(default_factory=TableMapping)
    demand: TableMapping = Field(default_factory=TableMapping)
    suppliers: TableMapping = Field(default_factory=TableMapping)
    purchase_orders: TableMapping = Field(default_factory=TableMapping)
    receipts: TableMapping = Field(default_factory=TableMapping)
    stock: TableMapping = Field(default_factory=TableMapping)

    @model_validator(mode="after")
    def _known_columns(self) -> ErpMapping:
        problems = []
        for name in TABLES:
            tm: TableMapping = getattr(self, name)
            allowed = REQUIRED_COLUMNS[name] + OPTIONAL_COLUMNS[name]
            unknown = [c for c in tm.columns if c not in allowed]
            if unknown:
                problems.append(
                    f"[data.erp_mapping.{name}.columns] has unknown canonical column(s) "
                    f"{unknown}; "
                    f"the columns of {name} are {list(allowed)}"
                )
            empty = [c for c, s in tm.columns.items() if not str(s).strip()]
            if empty:
                problems.append(
                    f"[data.erp_mapping.{name}.columns] maps {empty} to an empty source column name"
                )
            if tm.table is not None and not tm.table.strip():
                problems.append(
                    f"[data.erp_mapping.{name}] table is empty; remove it or name the source table"
                )
        if problems:
            raise ConfigError(
                "invalid ERP mapping: "
                + "; ".join(problems)
                + ". Keys are canonical names, values the ERP's names."
            )
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ErpMapping:
        """Build from a dict such as the config's ``[data.erp_mapping]`` section; errors are
        ConfigError."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(
                "the [data.erp_mapping] section must be a table of tables, "
                f"got {type(data).__name__}"
            )
        unknown = [k for k in data if k not in TABLES]
        if unknown:
            raise ConfigError(
                f"[data.erp_mapping] has unknown table(s) {unknown}; "
                f"the canonical tables are {list(TABLES)}"
            )
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            details = "; ".join(
                f"data.erp_mapping.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigError(f"invalid ERP mapping: {details}") from None

    @classmethod
    def from_toml(cls, path: str | Path) -> ErpMapping:
        """Read the ``[data.erp_mapping]`` section of a sparecast TOML config file (a file
        without one gives the identity mapping)."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from None
        return cls.from_dict((data.get("data") or {}).get("erp_mapping"))

    @classmethod
    def coerce(cls, mapping: ErpMapping | Mapping[str, Any] | None) -> ErpMapping:
        """Accept a mapping, a dict or None (identity)."""
        if isinstance(mapping, ErpMapping):
            return mapping
        return cls.from_dict(mapping)

    def table_name(self, table: str) -> str:
        """Source table name of canonical ``table``."""
        tm: TableMapping = getattr(self, table)
        return tm.table or table

    def column_map(self, table: str) -> dict[str, str]:
        """Canonical column -> source column for every (required and optional) canonical column."""
        tm: TableMapping = getattr(self, table)
        cols = REQUIRED_COLUMNS[table] + OPTIONAL_COLUMNS[table]
        return {c: tm.columns.get(c, c) for c in cols}

    def fingerprint(self) -> str:
        """Stable hash of the mapping (incremental extraction restarts when it changes)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]
