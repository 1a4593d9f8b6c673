"""The ERP mapping (sparecast.data.mapping): defaults, dict and TOML input, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparecast.data.mapping import ErpMapping
from sparecast.errors import ConfigError


def test_mapping_defaults_and_dict() -> None:
    m = ErpMapping()
    assert m.table_name("demand") == "demand"
    assert m.column_map("demand") == {
        "item_id": "item_id",
        "date": "date",
        "quantity": "quantity",
        "line_id": "line_id",
    }
    m = ErpMapping.from_dict(
        {
            "demand": {
                "table": "MTL_ISSUES",
                "columns": {"item_id": "ITEM_NO", "date": "TRX_DATE", "quantity": "QTY"},
            }
        }
    )
    assert m.table_name("demand") == "MTL_ISSUES"
    assert m.column_map("demand")["date"] == "TRX_DATE"
    assert m.table_name("items") == "items"
    assert m.fingerprint() != ErpMapping().fingerprint()
    assert ErpMapping.coerce(None) == ErpMapping()


def test_mapping_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"\[data.erp_mapping.demand.columns\] has unknown canonical column\(s\) "
        r"\['qty', 'day'\]",
    ):
        ErpMapping.from_dict({"demand": {"columns": {"qty": "QTY", "day": "D", "item_id": "X"}}})
    with pytest.raises(ConfigError, match=r"unknown table\(s\) \['demnd'\]"):
        ErpMapping.from_dict({"demnd": {"table": "X"}})
    with pytest.raises(ConfigError, match=r"data.erp_mapping.items.colums"):
        ErpMapping.from_dict({"items": {"colums": {}}})
    toml = tmp_path / "sparecast.toml"
    toml.write_text('[data.erp_mapping.demand]\ntable = "ISSUES"\ncolumns = { quantity = "QTY" }\n')
    assert ErpMapping.from_toml(toml).table_name("demand") == "ISSUES"
    with pytest.raises(ConfigError, match="does not exist"):
        ErpMapping.from_toml(tmp_path / "nope.toml")
