"""The per-process state (service/state.py): the inventory plan table follows its file."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fastapi.testclient import TestClient

from .conftest import write_policy


def test_a_new_plan_file_is_served_without_restart(client: TestClient, data_dir: Path) -> None:
    write_policy(data_dir, ["P000001"])
    assert client.get("/items/P000002/policy").status_code == 404
    time.sleep(0.01)  # a new mtime even on coarse clocks
    write_policy(data_dir, ["P000001", "P000002"])
    os.utime(data_dir / "policy.parquet")
    assert client.get("/items/P000002/policy").json()["reorder_point"] == 3.0
