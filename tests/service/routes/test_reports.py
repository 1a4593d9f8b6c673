"""GET /reports/inventory, and what the plan endpoints answer without a plan."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient


def test_policy_and_report_without_a_plan_say_how_to_make_one(
    client: TestClient, data_dir: Path
) -> None:
    # `sparecast demo` plans too: remove its plan to see the answer of a directory without one
    (data_dir / "policy.parquet").unlink()
    (data_dir / "inventory_report.html").unlink()
    for path in ("/items/P000001/policy", "/reports/inventory"):
        r = client.get(path)
        assert r.status_code == 404
        assert r.json()["detail"] == (
            "no inventory plan in the served data directory; run `sparecast plan --output DIR` "
            "into it"
        )
        assert str(data_dir) not in r.text


def test_inventory_report_is_html(client: TestClient, data_dir: Path) -> None:
    html = "<!doctype html><title>Inventory</title><h1>Plan of 30 items</h1>"
    (data_dir / "inventory_report.html").write_text(html)
    r = client.get("/reports/inventory")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.text == html
