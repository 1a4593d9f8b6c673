"""The web app in a real browser: Playwright for Python driving Debian's chromium headless
(``apt-get install chromium``; never ``playwright install``). Every page loads without console
errors and draws its charts, the numbers shown equal the API's and the plan files', and a
planner signs in, approves two orders and writes them back into a MariaDB table. Screenshots of
every page are saved under the test's temporary directory (``screenshots/``)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
import sqlalchemy as sa
import uvicorn
from utils.servers import free_port, unreachable

from sparecast.config import Settings
from sparecast.service import create_app
from sparecast.store.writeback import erp_table

from .conftest import PASSWORD, PLANNER, web_settings

CHROMIUM = os.environ.get("SPARECAST_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGES = {
    "overview": "/app",
    "orders": "/app/orders",
    "items": "/app/items",
    "accuracy": "/app/accuracy",
    "suppliers": "/app/suppliers",
    "models": "/app/models",
    "login": "/app/login",
}

if os.environ.get("CI", "").lower() == "true":
    from playwright.sync_api import Browser, Page, sync_playwright
else:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install 'sparecast[test]'")
    Browser, Page, sync_playwright = sync_api.Browser, sync_api.Page, sync_api.sync_playwright


class _Server:
    """``sparecast serve`` in a thread (uvicorn on a free port)."""

    def __init__(self, settings: Settings, data_dir: Path) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            create_app(settings, data_dir), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the web app's server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).is_file():
        unreachable(f"no chromium at {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _watch(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def _sign_in(page: Page, base: str) -> None:
    page.goto(f"{base}/app/login?next=/app/orders")
    page.fill("#username", PLANNER)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{base}/app/orders")
    assert page.text_content("#signed-in") == PLANNER


def test_every_page_loads_without_errors(browser: Browser, data_dir: Path, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    policy = pl.read_parquet(data_dir / "policy.parquet")
    item = policy.sort("order_rank")["unique_id"][0]
    pages = {**PAGES, "item": f"/app/items/{item}"}
    with _Server(Settings(**web_settings()), data_dir) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = _watch(page)
        _sign_in(page, server.url)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        for name, path in pages.items():
            response = page.goto(server.url + path)
            assert response is not None and response.status == 200, name
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(shots / f"{name}.png"), full_page=False)
        assert errors == [], errors
        # offline: nothing but the app itself was fetched (no CDN)
        assert all(u.startswith(server.url) or u.startswith("data:") for u in requests), requests
        # the charts were drawn (uPlot made its canvas)
        for path, chart in [
            ("/app", "#chart-risk"),
            (f"/app/items/{item}", "#chart-forecast"),
            (f"/app/items/{item}", "#chart-ltd"),
            ("/app/accuracy", "#chart-accuracy"),
            ("/app/suppliers", "#chart-leadtime"),
        ]:
            page.goto(server.url + path)
            assert page.locator(f"{chart} canvas").count() == 1, (path, chart)
        assert errors == [], errors
        page.close()
    assert sorted(p.name for p in shots.iterdir()) == sorted(f"{n}.png" for n in pages)


def test_accuracy_over_time_chart(browser: Browser, tmp_path: Path) -> None:
    """The Accuracy page's monitoring chart on a store with actuals and a fired alert: drawn
    (band, series, alert marker) without console errors; screenshot ``accuracy-monitor.png``."""
    from utils.monitoring import DATES, PUMPS, actuals_panel, write_hand_run

    from sparecast.pipeline.monitor import monitor, record_actuals
    from sparecast.store import ForecastStore, default_store_url

    settings = Settings(
        **web_settings(), monitoring={"threshold": 1.0, "consecutive_periods": 3, "min_items": 2}
    )
    store = ForecastStore(default_store_url(tmp_path))
    write_hand_run(store)
    record_actuals(store, actuals_panel(PUMPS), DATES[-1])
    store.dispose()
    monitor(settings, tmp_path, as_of=DATES[2])
    monitor(settings, tmp_path, as_of=DATES[-1])
    with _Server(settings, tmp_path) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = _watch(page)
        page.goto(f"{server.url}/app/accuracy?by=category&group=pumps&metric=mase")
        page.wait_for_load_state("networkidle")
        assert page.locator("#chart-monitor canvas").count() == 1
        assert page.text_content("#monitor-group") == "pumps"
        assert page.locator("#table-monitoring td[data-col=alert]").all_text_contents()[2]
        page.select_option("select[name=by]", "tier")
        page.click("#monitor-form button[type=submit]")
        page.wait_for_load_state("networkidle")
        assert page.text_content("#monitor-group") in ("intermittent", "regular")
        page.goto(f"{server.url}/app/accuracy?by=category&group=pumps&metric=mase")
        page.screenshot(path=str(tmp_path / "accuracy-monitor.png"), full_page=True)
        assert errors == [], errors
        page.close()


def test_numbers_shown_equal_the_api_and_files(browser: Browser, data_dir: Path) -> None:
    plan = json.loads((data_dir / "run.json").read_text())["plan"]
    policy = pl.read_parquet(data_dir / "policy.parquet")
    item = policy.sort("order_rank")["unique_id"][0]
    with _Server(Settings(**web_settings()), data_dir) as server:
        page = browser.new_page()
        page.goto(server.url + "/app")
        assert page.text_content("#fig-items") == f"{policy.height:,}"
        assert page.text_content("#fig-orders") == f"{plan['n_to_order']:,}"
        assert page.text_content("#fig-order-value") == f"{plan['order_value']:,.2f}"
        assert page.text_content("#fig-at-risk") == f"{plan['n_at_risk']:,}"
        api = httpx.get(f"{server.url}/forecast/item/{item}").json()
        assert page.text_content("#fig-model") == api["model_version"]
        page.goto(f"{server.url}/app/items/{item}")
        shown = page.locator("#forecast-values td[data-col=forecast]").all_text_contents()
        assert [float(x.replace(",", "")) for x in shown] == [round(v, 3) for v in api["forecast"]]
        row = httpx.get(f"{server.url}/items/{item}/policy").json()
        text = page.text_content("#policy") or ""
        assert f"{row['reorder_point']:,.2f}" in text and f"{row['safety_stock']:,.2f}" in text
        page.close()


@pytest.mark.integration
def test_planner_approves_two_orders_into_mariadb(
    browser: Browser, data_dir: Path, mariadb_url: str
) -> None:
    table = "sparecast_order_proposals"
    settings = Settings(**web_settings(), writeback={"url": mariadb_url, "table": table})
    orders = (
        pl.read_parquet(data_dir / "policy.parquet")
        .filter(pl.col("suggested_order") > 0)
        .sort("order_rank")
        .head(2)
    )
    with _Server(settings, data_dir) as server:
        page = browser.new_page()
        errors = _watch(page)
        _sign_in(page, server.url)
        first, second = orders.to_dicts()
        row = page.locator(f'tr[data-id="{first["unique_id"]}"]')
        row.locator("button.approve").click()
        page.wait_for_selector("#msg")
        row = page.locator(f'tr[data-id="{second["unique_id"]}"]')
        row.locator("input[name=quantity]").fill(str(second["suggested_order"] + 3))
        row.locator("input[name=reason]").fill("pack size")
        row.locator("button.approve").click()
        page.wait_for_selector("#msg")
        assert page.text_content("#n-approved") == "2"
        for _ in range(2):  # a second click is a retry: the lines must land once
            page.click("#writeback")
            page.wait_for_selector("#msg")
        assert "ERP table" in (page.text_content("#msg") or "")
        assert errors == [], errors
        page.close()
    engine = sa.create_engine(mariadb_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(erp_table(table)).order_by("item_id")).mappings().all()
    finally:
        engine.dispose()
    assert sorted(r["item_id"] for r in rows) == sorted(orders["unique_id"].to_list())
    quantities = {r["item_id"]: r["quantity"] for r in rows}
    assert quantities[second["unique_id"]] == second["suggested_order"] + 3
    assert {r["decided_by"] for r in rows} == {PLANNER}


def test_override_set_on_the_item_page_changes_the_api(browser: Browser, data_dir: Path) -> None:
    from datetime import date, timedelta

    policy = pl.read_parquet(data_dir / "policy.parquet")
    item = policy.sort("order_rank")["unique_id"][0]
    with _Server(Settings(**web_settings()), data_dir) as server:
        before = httpx.get(f"{server.url}/forecast/item/{item}").json()
        assert before["override"] is None
        page = browser.new_page()
        errors = _watch(page)
        _sign_in(page, server.url)
        page.goto(f"{server.url}/app/items/{item}")
        form = page.locator("#override-form")
        form.locator("input[name=forecast_level]").fill("3.5")
        form.locator("input[name=expires]").fill((date.today() + timedelta(days=14)).isoformat())
        form.locator("input[name=reason]").fill("known project demand")
        page.click("#override-set")
        page.wait_for_selector("#override-applied")
        after = httpx.get(f"{server.url}/forecast/item/{item}").json()
        assert after["override"]["forecast_level"] == 3.5
        assert after["override"]["set_by"] == PLANNER
        assert set(after["forecast"]) == {3.5} and after["forecast_model"] == before["forecast"]
        shown = page.locator("#forecast-values td[data-col=forecast]").all_text_contents()
        assert {float(x) for x in shown} == {3.5}
        assert errors == [], errors
        page.close()
