"""The web app's pages on a real demo run (TestClient): every page renders, tables sort, filter,
paginate and export, sign-in and CSRF guard the forms, decisions land in the store and the
write-back writes the approved lines; the numbers shown are those of the files and the API."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from sparecast.config import Settings
from sparecast.service import create_app
from sparecast.service.web.auth import Signer, hash_password, verify_password
from sparecast.service.web.pages import TABLES, overview_figures
from sparecast.store.decisions import OrderDecisions

from .conftest import PLANNER, csrf_of, sign_in, web_settings

PAGES = [
    "/app",
    "/app/orders",
    "/app/items",
    "/app/accuracy",
    "/app/suppliers",
    "/app/models",
    "/app/login",
]


def _ids(html: str, table: str) -> list[str]:
    body = html.split(f'id="table-{table}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<tr data-id="([^"]*)"', body)


def _cells(html: str, table: str, col: str) -> list[str]:
    body = html.split(f'id="table-{table}"', 1)[1].split("</table>", 1)[0]
    return [
        re.sub(r"<[^>]+>", "", c).strip()
        for c in re.findall(rf'data-col="{col}">(.*?)</td>', body, flags=re.S)
    ]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders(web_client: TestClient, path: str) -> None:
    r = web_client.get(path)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    assert "/app/static/uplot.iife.min.js" in r.text  # the vendored chart library, no CDN
    assert "https://" not in r.text.split("<footer", 1)[0].replace("https://github", "")


def test_static_files_are_served(web_client: TestClient) -> None:
    for name in ("uplot.iife.min.js", "uplot.min.css", "app.js", "app.css", "uplot.LICENSE"):
        assert web_client.get(f"/app/static/{name}").status_code == 200


def test_item_page_and_unknown_item(web_client: TestClient, data_dir: Path) -> None:
    policy = pl.read_parquet(data_dir / "policy.parquet")
    item = policy.sort("order_rank")["unique_id"][0]
    r = web_client.get(f"/app/items/{item}")
    assert r.status_code == 200
    assert 'id="chart-forecast"' in r.text and 'id="chart-ltd"' in r.text
    api = web_client.get(f"/forecast/item/{item}").json()
    shown = re.findall(r'data-col="forecast">([^<]*)<', r.text)
    assert [float(x.replace(",", "")) for x in shown] == pytest.approx(
        [round(v, 3) for v in api["forecast"]], abs=1e-9
    )
    assert web_client.get("/app/items/NO-SUCH-ITEM").status_code == 404


def test_overview_figures_equal_the_files(web_client: TestClient, data_dir: Path) -> None:
    import json

    web_client.get("/app")  # the app's state is made on the first page
    web = web_client.app.state.sparecast_web  # type: ignore[attr-defined]
    f = overview_figures(web)
    policy = pl.read_parquet(data_dir / "policy.parquet")
    plan = json.loads((data_dir / "run.json").read_text())["plan"]
    assert f["items"] == policy.height == plan["n_items"]
    assert f["orders"] == plan["n_to_order"]
    assert f["order_value"] == pytest.approx(plan["order_value"])
    assert f["at_risk"] == plan["n_at_risk"]
    html = web_client.get("/app").text
    assert f'id="fig-orders"><a href="/app/orders">{plan["n_to_order"]:,}<' in html
    assert f'id="fig-order-value">{plan["order_value"]:,.2f}<' in html


def test_orders_sort_filter_paginate(web_client: TestClient, data_dir: Path) -> None:
    policy = pl.read_parquet(data_dir / "policy.parquet")
    orders = policy.filter(pl.col("suggested_order") > 0)
    html = web_client.get("/app/orders").text
    assert _ids(html, "orders") == orders.sort("order_rank")["unique_id"].head(50).to_list()
    by_value = web_client.get("/app/orders?sort=order_value&desc=1").text
    expected = orders.sort(["order_value", "unique_id"], descending=[True, False])
    assert _ids(by_value, "orders") == expected["unique_id"].head(50).to_list()
    supplier = orders["supplier_id"].drop_nulls()[0]
    filt = web_client.get(f"/app/orders?supplier_id={supplier}").text
    want = orders.filter(pl.col("supplier_id") == supplier).sort("order_rank")
    assert _ids(filt, "orders") == want["unique_id"].head(50).to_list()
    assert f'id="orders-total">{want.height:,}<' in filt
    small = create_app(Settings(**web_settings(page_size=5)), data_dir)
    with TestClient(small) as c:
        p2 = c.get("/app/orders?page=2").text
        assert _ids(p2, "orders") == orders.sort("order_rank")["unique_id"][5:10].to_list()
        assert "page 2 of" in p2
        last = c.get("/app/orders?page=9999").text  # clamped to the last page
        assert _ids(last, "orders")
    risky = web_client.get("/app/orders?min_risk=0.2").text
    assert set(_ids(risky, "orders")) <= set(
        orders.filter(pl.col("stockout_risk") >= 0.2)["unique_id"].to_list()
    )
    # an unknown sort column falls back to the default, never an error
    assert web_client.get("/app/orders?sort=__class__&page=x").status_code == 200


@pytest.mark.parametrize(
    "table,path",
    [
        ("orders", "/app/orders"),
        ("items", "/app/items"),
        ("accuracy", "/app/accuracy"),
        ("suppliers", "/app/suppliers"),
        ("runs", "/app/models"),
    ],
)
def test_every_table_exports_csv_and_xlsx(web_client: TestClient, table: str, path: str) -> None:
    spec = TABLES[table]
    csv = web_client.get(f"{path}?export=csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    frame = pl.read_csv(io.BytesIO(csv.content))
    assert frame.columns == [c.key for c in spec.columns if c.key in frame.columns]
    assert frame.height > 0
    xlsx = web_client.get(f"{path}?export=xlsx")
    assert xlsx.status_code == 200
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == frame.columns and len(rows) - 1 == frame.height


def test_export_is_the_filtered_table(web_client: TestClient, data_dir: Path) -> None:
    orders = pl.read_parquet(data_dir / "policy.parquet").filter(pl.col("suggested_order") > 0)
    cat = orders["category"][0]
    csv = pl.read_csv(io.BytesIO(web_client.get(f"/app/orders?export=csv&category={cat}").content))
    assert sorted(csv["unique_id"].to_list()) == sorted(
        orders.filter(pl.col("category") == cat)["unique_id"].to_list()
    )


def test_password_hash_and_session_signing() -> None:
    stored = hash_password("pw")
    assert verify_password("pw", stored) and not verify_password("pW", stored)
    assert not verify_password("pw", "scrypt$bad")
    signer = Signer("k" * 32, 60)
    cookie = signer.session("ann", now=1000.0)
    assert signer.user_of(cookie, now=1030.0) == "ann"
    assert signer.user_of(cookie, now=1061.0) is None  # expired
    assert signer.user_of(cookie[:-1] + ("0" if cookie[-1] != "0" else "1"), now=1030) is None
    assert Signer("other" * 8, 60).user_of(cookie, now=1030.0) is None
    assert signer.csrf_ok("c", signer.csrf_token("c")) and not signer.csrf_ok("c", "x")


def test_sign_in(web_client: TestClient) -> None:
    token = csrf_of(web_client)
    bad = web_client.post(
        "/app/login", data={"username": PLANNER, "password": "nope", "csrf_token": token}
    )
    assert bad.status_code == 401 and "wrong password" in bad.text
    no_csrf = web_client.post("/app/login", data={"username": PLANNER, "password": "x"})
    assert no_csrf.status_code == 403
    sign_in(web_client)
    assert f'id="signed-in">{PLANNER}<' in web_client.get("/app").text


def test_api_key_signs_in(data_dir: Path) -> None:
    import hashlib

    settings = Settings(
        **web_settings(), service={"api_key_hashes": [hashlib.sha256(b"key-123").hexdigest()]}
    )
    with TestClient(create_app(settings, data_dir)) as c:
        sign_in(c, "ops-bot", "key-123")
        assert 'id="signed-in">ops-bot<' in c.get("/app").text


def test_private_pages_ask_for_sign_in(data_dir: Path) -> None:
    with TestClient(create_app(Settings(**web_settings(public=False)), data_dir)) as c:
        r = c.get("/app/orders", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/app/login?next=")
        sign_in(c)
        assert c.get("/app/orders").status_code == 200


def _first_orders(data_dir: Path, n: int) -> list[dict]:
    policy = pl.read_parquet(data_dir / "policy.parquet")
    return policy.filter(pl.col("suggested_order") > 0).sort("order_rank").head(n).to_dicts()


def test_decisions_need_sign_in_and_csrf(web_client: TestClient, data_dir: Path) -> None:
    item = _first_orders(data_dir, 1)[0]["unique_id"]
    token = csrf_of(web_client)
    anon = web_client.post(
        "/app/orders/decide",
        data={"item_id": item, "decision": "approved", "csrf_token": token},
        follow_redirects=False,
    )
    assert anon.status_code == 303 and "/app/login" in anon.headers["location"]
    sign_in(web_client)
    forged = web_client.post(
        "/app/orders/decide", data={"item_id": item, "decision": "approved", "csrf_token": "forged"}
    )
    assert forged.status_code == 403
    web = web_client.app.state.sparecast_web  # type: ignore[attr-defined]
    assert OrderDecisions(web.state.store.engine).approved().height == 0


def test_approve_reject_and_write_back(web_client: TestClient, data_dir: Path) -> None:
    sign_in(web_client)
    token = csrf_of(web_client, "/app/orders")
    a, b, c = _first_orders(data_dir, 3)
    for row, decision, qty, reason in [
        (a, "approved", a["suggested_order"], ""),
        (b, "approved", b["suggested_order"] + 2, "bigger lot"),
        (c, "rejected", 0, ""),  # rejected without a reason: refused
    ]:
        r = web_client.post(
            "/app/orders/decide",
            data={
                "item_id": row["unique_id"],
                "decision": decision,
                "quantity": qty,
                "reason": reason,
                "csrf_token": token,
            },
        )
        assert r.status_code == 200
    assert "needs a reason" in r.text
    html = web_client.get("/app/orders?status=approved").text
    assert sorted(_ids(html, "orders")) == sorted([a["unique_id"], b["unique_id"]])
    assert 'id="n-approved">2<' in html
    r = web_client.post("/app/orders/writeback", data={"csrf_token": token})
    assert "2 approved order lines written" in r.text
    written = pl.read_csv(data_dir / "approved_orders.csv")
    assert sorted(written["unique_id"].to_list()) == sorted([a["unique_id"], b["unique_id"]])
    qty = dict(zip(written["unique_id"], written["quantity"], strict=True))
    assert qty[b["unique_id"]] == b["suggested_order"] + 2
    assert written["decided_by"].to_list() == [PLANNER, PLANNER]
    assert load_workbook(data_dir / "approved_orders.xlsx").active.max_row == 3
    csv = pl.read_csv(io.BytesIO(web_client.get("/app/orders/approved").content))
    assert csv.height == 2


def test_cli_hash_password_makes_a_hash_that_signs_in() -> None:
    from typer.testing import CliRunner

    from sparecast.cli import app as cli_app

    result = CliRunner().invoke(cli_app, ["web", "hash-password", "--password", "long-enough-1"])
    assert result.exit_code == 0, result.output
    stored = result.output.strip()
    assert verify_password("long-enough-1", stored)
    Settings(web={"users": {"bob": stored}})  # accepted by the config's check
    short = CliRunner().invoke(cli_app, ["web", "hash-password", "--password", "short"])
    assert short.exit_code == 2


def test_config_refuses_a_plain_password() -> None:
    from sparecast.config import load_settings
    from sparecast.errors import ConfigError

    with pytest.raises(ConfigError, match="hash-password"):
        load_settings(web={"users": {"bob": "plaintext"}})


def test_open_alerts_and_aliases_show_when_their_tables_exist(data_dir: Path) -> None:
    """The monitoring and registry tables belong to other features (the store's migrations
    make them): the pages show their rows (here written by hand, with those tables' columns)."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{data_dir / 'history.sqlite'}")
    with engine.begin() as conn:
        version = conn.execute(sa.text("SELECT model_version FROM forecast_runs")).scalar()
        conn.execute(
            sa.text(
                "INSERT INTO alerts (opened_at, updated_at, model_version, grouping, group_name, "
                "metric, value, expected, threshold, periods, status, reason) VALUES "
                "('2026-11-20 00:00:00', '2026-11-20 00:00:00', :v, 'tier', 'regular', 'mase', "
                "1.4, 1.1, 1.2, 3, 'open', 'MASE 1.4 over the expected 1.1 for 3 periods')"
            ),
            {"v": version},
        )
        conn.execute(sa.text("DELETE FROM model_aliases WHERE alias = 'champion'"))
        conn.execute(
            sa.text(
                "INSERT INTO model_aliases VALUES ('champion', :v, '2026-11-20 00:00:00', "
                "'first run')"
            ),
            {"v": version},
        )
    engine.dispose()
    with TestClient(create_app(Settings(**web_settings()), data_dir)) as c:
        assert "MASE 1.4 over the expected 1.1" in c.get("/app").text
        assert "MASE 1.4 over the expected 1.1" in c.get("/app/accuracy").text
        models = c.get("/app/models").text
        assert 'id="aliases"' in models and "champion" in models


def test_override_set_and_removed_on_the_item_page(web_client: TestClient, data_dir: Path) -> None:
    from datetime import date, timedelta

    item = _first_orders(data_dir, 1)[0]["unique_id"]
    expires = (date.today() + timedelta(days=30)).isoformat()
    form = {"forecast_level": "5", "expires": expires, "reason": "campaign", "action": "set"}
    anon = web_client.post(
        f"/app/items/{item}/override",
        data={**form, "csrf_token": csrf_of(web_client)},
        follow_redirects=False,
    )
    assert anon.status_code == 303 and "/app/login" in anon.headers["location"]
    sign_in(web_client)
    token = csrf_of(web_client)
    forged = web_client.post(f"/app/items/{item}/override", data={**form, "csrf_token": "x"})
    assert forged.status_code == 403
    page = web_client.post(f"/app/items/{item}/override", data={**form, "csrf_token": token})
    assert "set (forecast_level)" in page.text and 'id="override-applied"' in page.text
    api = web_client.get(f"/forecast/item/{item}").json()
    assert api["override"]["forecast_level"] == 5 and set(api["forecast"]) == {5.0}
    shown = re.findall(r'data-col="forecast">([^<]*)<', page.text)
    assert {float(x) for x in shown} == {5.0}  # the page shows what the API answers
    bad = web_client.post(
        f"/app/items/{item}/override",
        data={**form, "forecast_level": "lots", "csrf_token": token},
    )
    assert "not a number" in bad.text
    gone = web_client.post(
        f"/app/items/{item}/override",
        data={"action": "delete", "reason": "over", "csrf_token": token},
    )
    assert "removed" in gone.text and 'id="no-override"' in gone.text
    assert web_client.get(f"/forecast/item/{item}").json()["override"] is None


def test_overview_says_what_changed_since_the_previous_run(data_dir: Path) -> None:
    from datetime import timedelta

    from sparecast.store import ForecastStore, RunMeta

    store = ForecastStore(f"sqlite:///{data_dir / 'history.sqlite'}")
    run = store.latest_run()
    assert run is not None
    with TestClient(create_app(Settings(**web_settings()), data_dir)) as c:
        assert "nothing to compare with yet" in c.get("/app").text
    meta = RunMeta(
        sparecast_version=run.sparecast_version,
        config=run.config,
        data_start=run.data_start,
        data_end=run.data_end + timedelta(days=7),
        freq=run.freq,
        n_items=run.n_items,
        n_periods=run.n_periods,
        horizon=run.horizon,
        source=run.source,
    )
    store.write_run(meta, store.run_forecasts(run.run_id))
    store.dispose()
    with TestClient(create_app(Settings(**web_settings()), data_dir)) as c:
        html = c.get("/app").text
        assert f"Since the previous run (<code>{run.model_version}</code>" in html
        assert "data +7 days, items +0, same settings" in html


def test_item_tables_export(web_client: TestClient, data_dir: Path) -> None:
    item = _first_orders(data_dir, 1)[0]["unique_id"]
    api = web_client.get(f"/forecast/item/{item}").json()
    csv = pl.read_csv(io.BytesIO(web_client.get(f"/app/items/{item}?export=csv").content))
    assert csv["forecast"].to_list() == pytest.approx(api["forecast"])
    assert csv["q90"].to_list() == pytest.approx(api["quantiles"]["q90"])
    xlsx = web_client.get(f"/app/items/{item}?export=xlsx&table=open_orders")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"


def _monitor_chart(html: str) -> dict[str, Any]:
    start = html.index('id="chart-monitor-data">') + len('id="chart-monitor-data">')
    return json.loads(html[start : html.index("</script>", start)])  # type: ignore[no-any-return]


def test_accuracy_over_time_is_what_monitoring_scores(tmp_path: Path) -> None:
    """On a hand-built store (tests/utils/monitoring.py) whose pumps degrade: the page's series
    are ``monitor(...).scores`` of the chosen group and metric, the band is the expectation up
    to its alert limit, the alert is marked at the period it fired, the table exports the same
    numbers, and the scores are recomputed only when new actuals arrive."""
    from utils.monitoring import DATES, PUMPS, actuals_panel, write_hand_run

    from sparecast.pipeline.monitor import monitor, record_actuals
    from sparecast.store import ForecastStore, default_store_url

    monitoring = {"threshold": 1.0, "consecutive_periods": 3, "min_items": 2}
    settings = Settings(
        **web_settings(), monitoring=monitoring, service={"version_refresh_s": 0.05}
    )
    store = ForecastStore(default_store_url(tmp_path))
    write_hand_run(store)
    with TestClient(create_app(settings, tmp_path)) as c:
        empty = c.get("/app/accuracy").text
        assert 'id="monitor-empty"' in empty and 'id="chart-monitor"' not in empty
        assert "sparecast pipeline run daily" in empty and "sparecast monitor" in empty

        record_actuals(store, actuals_panel(PUMPS), DATES[3])
        monitor(settings, tmp_path, as_of=DATES[2])  # three degraded days: the alert opens
        report = monitor(settings, tmp_path, as_of=DATES[3])  # refreshes it, opens none
        (alert,) = report.alerts
        assert (alert.grouping, alert.group, alert.period_end) == ("category", "pumps", DATES[3])
        time.sleep(0.1)  # past version_refresh_s: the page re-reads the revision
        version = report.model_version

        html = c.get("/app/accuracy?table=monitoring&by=category&group=pumps&metric=mase").text
        chart = _monitor_chart(html)
        want = report.scores.filter(
            (pl.col("grouping") == "category") & (pl.col("group") == "pumps")
        ).sort("period")
        assert (
            chart["x"] == [d.isoformat() for d in DATES[:4]] == [d.isoformat() for d in want["ds"]]
        )
        assert chart["value"] == pytest.approx(want["mase"].to_list())
        assert chart["expected"] == pytest.approx(want["expected_mase"].to_list())
        assert chart["high"] == pytest.approx([1.0 * (1 + 1.0)] * 4)  # expected x (1 + threshold)
        # fired at the third degraded day (the pass that opened it), not at its last refresh
        assert chart["alerts"] == [None, None, pytest.approx(4.0), None]
        assert f"#{alert.alert_id} opened" in chart["alert_labels"][2]
        assert f'id="monitor-version">{version}<' in html
        assert f'<option value="{version}" selected>{version} (served)</option>' in html

        default = _monitor_chart(c.get("/app/accuracy").text)  # all items, MASE
        every = report.scores.filter(pl.col("grouping") == "all").sort("period")
        assert default["value"] == pytest.approx(every["mase"].to_list())
        assert default["alerts"] == [None] * 4
        bias = _monitor_chart(c.get("/app/accuracy?by=tier&group=regular&metric=rel_bias").text)
        regular = report.scores.filter(pl.col("group") == "regular").sort("period")
        assert bias["value"] == pytest.approx(regular["rel_bias"].to_list())
        assert bias["low"] == pytest.approx([-1.0] * 4)  # +-(|0| + threshold)

        csv = c.get("/app/accuracy?table=monitoring&by=category&group=pumps&metric=mase&export=csv")
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        table = pl.read_csv(io.BytesIO(csv.content))
        assert table["mase"].to_list() == pytest.approx(want["mase"].to_list())
        assert table["mape"].to_list() == pytest.approx(want["mape"].to_list())
        assert table["alert"].is_not_null().to_list() == [False, False, True, False]
        xlsx = c.get(
            "/app/accuracy?table=monitoring&by=category&group=pumps&metric=mase&export=xlsx"
        )
        rows = list(load_workbook(io.BytesIO(xlsx.content)).active.iter_rows(values_only=True))
        assert len(rows) == 5 and rows[0][0] == "model_version"

        web = c.app.state.sparecast_web  # type: ignore[attr-defined]
        (name,) = [k for k in web._memo if k.startswith("monitor:")]
        first = web._memo[name][1]
        c.get("/app/accuracy?by=class")
        assert web._memo[name][1] is first  # same actuals: not rescored
        record_actuals(store, actuals_panel(PUMPS), DATES[5])
        time.sleep(0.1)  # the observed-demand revision is re-read every version_refresh_s
        later = _monitor_chart(c.get("/app/accuracy").text)
        assert web._memo[name][1] is not first and len(later["x"]) == 6
    store.dispose()
