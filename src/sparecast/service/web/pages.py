"""The web app's pages (``/app/...``): overview, order workbench, items, accuracy, suppliers,
models, sign-in. Server-rendered with Jinja2; every table is sorted, filtered and paginated here
and exports to CSV (``?export=csv``) or Excel (``?export=xlsx``) as filtered."""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import numpy as np
import orjson
import polars as pl
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from sparecast._version import __version__
from sparecast.errors import SparecastError, StoreError
from sparecast.evaluate.monitoring import MONITOR_GROUPINGS
from sparecast.inventory.leadtime import quote_samples
from sparecast.inventory.overrides import Override, OverrideError
from sparecast.inventory.plan import HIGH_RISK
from sparecast.methods.distributions import lead_time_demand
from sparecast.service.routes.forecast import forecast_json
from sparecast.service.state import ServiceState
from sparecast.service.web.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Signer,
    check_credentials,
)
from sparecast.service.web.data import RISK_LEVELS, WebData
from sparecast.service.web.monitoring import (
    METRIC_LABELS,
    MonitorView,
    fired_alerts,
    monitor_revision,
    monitor_scores,
    monitor_view,
    monitoring_spec,
)
from sparecast.service.web.monitoring import today as monitoring_today
from sparecast.service.web.tables import (
    Column,
    TableQuery,
    TableSpec,
    fmt,
    query_table,
    sort_frame,
)
from sparecast.service.web.tables import filtered as filtered_table
from sparecast.store.decisions import OrderDecision, OrderDecisions
from sparecast.store.writeback import orders_csv, orders_xlsx, write_erp_orders

__all__ = ["router", "STATIC_DIR", "WebApp", "TABLES", "warm"]

log = logging.getLogger("sparecast.service.web")

STATIC_DIR = Path(__file__).parent / "static"

router = APIRouter(prefix="/app", include_in_schema=False)

NAV = (
    ("overview", "/app", "Overview"),
    ("orders", "/app/orders", "Order workbench"),
    ("items", "/app/items", "Items"),
    ("accuracy", "/app/accuracy", "Accuracy"),
    ("suppliers", "/app/suppliers", "Suppliers"),
    ("models", "/app/models", "Models"),
)

ORDERS = TableSpec(
    "orders",
    (
        Column("order_rank", "Rank", "int"),
        Column("unique_id", "Item", "link"),
        Column("description", "Description"),
        Column("category", "Category"),
        Column("supplier_id", "Supplier"),
        Column("stockout_risk", "Stockout risk", "pct"),
        Column("risk_level", "Risk"),
        Column("on_hand", "On hand", "num"),
        Column("inventory_position", "Position", "num"),
        Column("reorder_point", "Reorder point", "num"),
        Column("suggested_order", "Suggested", "num"),
        Column("order_value", "Value", "money"),
        Column("status", "Status"),
        Column("quantity", "Decided qty", "num"),
    ),
    default_sort="order_rank",
    filters=("supplier_id", "category", "risk_level", "status"),
    search=("unique_id", "description"),
)
ITEMS = TableSpec(
    "items",
    (
        Column("unique_id", "Item", "link"),
        Column("description", "Description"),
        Column("category", "Category"),
        Column("tier", "Tier"),
        Column("supplier_id", "Supplier"),
        Column("on_hand", "On hand", "num"),
        Column("forecast_horizon_total", "Forecast (horizon)", "num"),
        Column("safety_stock", "Safety stock", "num"),
        Column("reorder_point", "Reorder point", "num"),
        Column("stockout_risk", "Stockout risk", "pct"),
        Column("expected_fill_rate", "Expected fill", "pct"),
    ),
    default_sort="unique_id",
    filters=("category", "tier", "supplier_id", "risk_level"),
    search=("unique_id", "description"),
)
ACCURACY = TableSpec(
    "accuracy",
    (
        Column("grouping", "By"),
        Column("group", "Group"),
        Column("method", "Method"),
        Column("n_items", "Items", "int"),
        Column("mae", "MAE", "num3"),
        Column("mase", "MASE", "num3"),
        Column("rmsse", "RMSSE", "num3"),
        Column("rel_bias", "Bias (relative)", "pct"),
        Column("mape", "MAPE (regular only)", "pct"),
        Column("chosen", "Chosen"),
    ),
    default_sort="grouping",
    filters=("grouping", "method", "chosen"),
    search=("group", "method"),
    tiebreak="group",
)
REALISED = TableSpec(
    "realised",
    (
        Column("model_version", "Model version"),
        Column("run_id", "Run", "int"),
        Column("grouping", "By"),
        Column("group", "Group"),
        Column("n_items", "Items", "int"),
        Column("n_points", "Forecast-actual pairs", "int"),
        Column("mae", "MAE", "num3"),
        Column("bias", "Bias (mean error)", "num3"),
    ),
    default_sort="run_id",
    default_desc=True,
    filters=("grouping",),
    tiebreak="group",
)
SUPPLIERS = TableSpec(
    "suppliers",
    (
        Column("supplier_id", "Supplier"),
        Column("name", "Name"),
        Column("n_orders", "Orders", "int"),
        Column("n_due", "Due", "int"),
        Column("on_time_rate", "On time", "pct"),
        Column("fill_rate", "Fill rate", "pct"),
        Column("mean_delay_days", "Mean delay (days)", "num"),
        Column("lead_time_mean_days", "Lead time mean (days)", "num"),
        Column("lt_p10", "LT p10", "num"),
        Column("lt_p50", "LT median", "num"),
        Column("lt_p90", "LT p90", "num"),
        Column("quoted_lead_time_days", "Quoted (days)", "num"),
        Column("n_items", "Items", "int"),
    ),
    default_sort="n_orders",
    default_desc=True,
    search=("supplier_id", "name"),
    tiebreak="supplier_id",
)
RUNS = TableSpec(
    "runs",
    (
        Column("run_id", "Run", "int"),
        Column("model_version", "Model version"),
        Column("created_at", "Created"),
        Column("data_end", "Data until"),
        Column("n_items", "Items", "int"),
        Column("horizon", "Horizon", "int"),
        Column("aliases", "Aliases"),
    ),
    default_sort="run_id",
    default_desc=True,
    tiebreak="run_id",
)
TABLES = {t.name: t for t in (ORDERS, ITEMS, ACCURACY, REALISED, SUPPLIERS, RUNS)}
"""Every table of the app by name (tests and the benchmark iterate over them)."""


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("sparecast.service.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.filters["urlq"] = lambda s: quote(str(s), safe="")
    env.filters["json"] = lambda v: Markup(chart_json(v))  # escaped for a <script> block
    return env


class WebApp:
    """Per-app state of the pages: templates, data files, signer, decisions, derived tables
    (one value per name, for the current file versions) and their background warm-up."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state
        self.settings = state.settings
        self.web = state.settings.web
        self.data = WebData(state.data_dir)
        self.env = _env()
        self.signer = Signer(self.web.secret, self.web.session_max_age_s)
        self.decisions = OrderDecisions(state.store.engine)
        self._memo: dict[str, tuple[Any, Any]] = {}
        self._memo_locks: dict[str, threading.Lock] = {}
        self._memo_guard = threading.Lock()
        self.computed: Counter[str] = Counter()
        """How often each derived table was computed (the tests and the benchmark read it)."""
        self.warm_passes = 0
        """Warm-up passes finished (each checks every file and table; most find nothing new)."""
        self.last_warm_s: float | None = None
        """Seconds the last warm-up pass that computed something took."""
        self._stop = threading.Event()
        self._warmer: threading.Thread | None = None
        self._warm_users = 0

    def memo(self, name: str, key: tuple[Any, ...], make: Any) -> Any:
        """``make()``, remembered while ``key`` stays the same (derived tables of big files):
        its frames and dicts compare by identity (a re-read file is a new object), the rest by
        value. One computation at a time per name: a caller that arrives while another (the
        warm-up or a request) computes the same table waits for it and takes its result."""
        found = self._memo.get(name)
        if found is not None and _same_key(found[0], key):
            return found[1]
        with self._memo_guard:
            lock = self._memo_locks.setdefault(name, threading.Lock())
        with lock:
            found = self._memo.get(name)
            if found is not None and _same_key(found[0], key):
                return found[1]
            value = make()
            self._memo[name] = (key, value)
            self.computed[name] += 1
            return value

    def start_warming(self) -> None:
        """Start the background warm-up (``warm`` now, then every ``web.warm_interval_s``
        seconds: a pass that finds nothing changed only stats the files and asks the store for
        its run ids). Requests are answered meanwhile; one that needs a table being computed
        waits for that computation (``memo``)."""
        self._warm_users += 1
        interval = self.web.warm_interval_s
        if interval <= 0 or self._warmer is not None:
            return
        # every template compiled here, before the thread starts: requests then never compile
        # one beside the warm-up (CPython 3.11.7 can fail two concurrent AST builds, gh-106905)
        for name in self.env.list_templates():
            self.env.get_template(name)
        self._stop.clear()

        def loop() -> None:
            failed = ""  # the last failure, logged once (not at every pass while it lasts)
            while not self._stop.is_set():
                t0 = time.perf_counter()
                before = sum(self.computed.values())
                try:
                    warm(self)
                    failed = ""
                except (Exception, pl.exceptions.PanicException) as exc:  # noqa: BLE001
                    # an unreachable store, or a file read while a command rewrote it in place
                    # (polars then panics): the next pass tries again; the pages say so
                    if str(exc) != failed:
                        failed = str(exc)
                        log.warning("warming the web app's tables: %s", exc, exc_info=True)
                if sum(self.computed.values()) != before:
                    self.last_warm_s = time.perf_counter() - t0
                self.warm_passes += 1
                self._stop.wait(interval)

        self._warmer = threading.Thread(target=loop, name="sparecast-web-warm", daemon=True)
        self._warmer.start()

    def stop_warming(self, timeout: float = 60.0) -> None:
        """Stop the warm-up (blocking: waits for a computation in progress, at most
        ``timeout`` seconds). Nested lifespans share one warm-up: the last one stops it."""
        self._warm_users -= 1
        if self._warm_users > 0:
            return
        thread, self._warmer = self._warmer, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout)


def _same_key(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, pl.DataFrame | dict) or isinstance(y, pl.DataFrame | dict):
            if x is not y:
                return False
        elif x != y:
            return False
    return True


def _app(request: Request) -> WebApp:
    web: WebApp | None = getattr(request.app.state, "sparecast_web", None)
    if web is None:
        web = WebApp(request.app.state.sparecast)
        request.app.state.sparecast_web = web
    return web


def _user(request: Request, web: WebApp) -> str | None:
    return web.signer.user_of(request.cookies.get(SESSION_COOKIE))


def _render(request: Request, web: WebApp, template: str, page: str, **ctx: Any) -> Response:
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    html = web.env.get_template(template).render(
        nav=NAV,
        page=page,
        user=_user(request, web),
        csrf_token=web.signer.csrf_token(csrf),
        version=__version__,
        msg=request.query_params.get("msg", ""),
        request_path=request.url.path,
        **ctx,
    )
    response = HTMLResponse(html)
    if CSRF_COOKIE not in request.cookies:
        response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/app")
    return response


class PageResponse(Exception):
    """Raised by a page's checks to answer with ``response`` instead of the page (a sign-in
    redirect, a 403 for a stale form, the "no plan" page); ``app.py`` turns it into the answer."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def page_response(request: Request, exc: Exception) -> Response:
    """The exception handler of :class:`PageResponse` (installed by ``create_app``)."""
    assert isinstance(exc, PageResponse)
    return exc.response


def _signed_in(request: Request, *, write: bool = False) -> WebApp:
    """The web app of a request whose user may see the page (or change data: ``write``);
    otherwise a redirect to the sign-in page."""
    web = _app(request)
    if (write or not web.web.public) and _user(request, web) is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        redirect = RedirectResponse(f"/app/login?next={quote(target, safe='')}", status_code=303)
        raise PageResponse(redirect)
    return web


async def _form(request: Request, web: WebApp) -> dict[str, str]:
    """The urlencoded form of a POST, after its CSRF token was checked (403 otherwise)."""
    body = (await request.body()).decode("utf-8", "replace")
    form = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
    if not web.signer.csrf_ok(request.cookies.get(CSRF_COOKIE), form.get("csrf_token")):
        raise PageResponse(
            HTMLResponse(
                "<h1>403</h1><p>The form's security token is missing or stale: reload the page "
                "and try again.</p>",
                status_code=403,
            )
        )
    return form


async def _plan(request: Request, web: WebApp, page: str) -> dict[str, Any]:
    """The current inventory plan, or the "no plan" page in its place."""
    plan = await run_in_threadpool(web.data.plan)
    if plan is None:
        raise PageResponse(
            _render(
                request,
                web,
                "missing.html",
                page,
                title="No inventory plan",
                what="the inventory plan (policy.parquet)",
                fix="sparecast plan --output DIR (or sparecast demo --output DIR)",
            )
        )
    return plan  # type: ignore[no-any-return]


def _download(content: bytes, kind: str, filename: str) -> Response:
    """``content`` as a file download: ``kind`` "xlsx" (Excel) or "csv"."""
    media = (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        if kind == "xlsx"
        else "text/csv; charset=utf-8"
    )
    headers = {"Content-Disposition": f'attachment; filename="{filename}.{kind}"'}
    return Response(content, media_type=media, headers=headers)


def _export(frame: pl.DataFrame, spec: TableSpec, kind: str, limit: int) -> Response:
    cols = [c.key for c in spec.columns if c.key in frame.columns]
    out = frame.select(cols).head(limit)
    temporal = [c for c, t in out.schema.items() if t == pl.Object]
    if temporal:
        out = out.with_columns(pl.col(temporal).cast(pl.String))
    content = orders_xlsx(out, spec.name) if kind == "xlsx" else orders_csv(out)
    return _download(content, kind, f"{spec.name}-{date.today().isoformat()}")


def _table(
    request: Request, web: WebApp, frame: pl.DataFrame, spec: TableSpec
) -> tuple[Any, Response | None]:
    """The table page of the request (or its export when ``?export=`` asks for one)."""
    params = dict(request.query_params)
    query = TableQuery.from_params(params, spec)
    sorter = _sorter(web, spec)
    kind = params.get("export")
    if kind in ("csv", "xlsx"):
        return None, _export(
            filtered_table(frame, spec, query, sorter), spec, kind, web.web.export_max_rows
        )
    return query_table(frame, spec, query, web.web.page_size, sorter), None


def _sorter(web: WebApp, spec: TableSpec) -> Any:
    """Sorts ``spec``'s table once per (frame, column, direction): paging and filtering reuse the
    sorted frame. The default order (which the warm-up makes) and the last other order asked for
    are kept: at most two sorted copies per table."""

    def sorter(f: pl.DataFrame, sort: str, desc: bool) -> pl.DataFrame:
        slot = "default" if (sort, desc) == (spec.default_sort, spec.default_desc) else "other"
        return web.memo(  # type: ignore[no-any-return]
            f"sorted:{spec.name}:{slot}", (f, sort, desc), lambda: sort_frame(f, spec, sort, desc)
        )

    return sorter


def _accuracy_key(web: WebApp) -> tuple[Any, ...]:
    return (web.data.frame("backtest_summary"), web.data.signature("backtest"), web.data.plan())


def _suppliers_key(web: WebApp) -> tuple[Any, ...]:
    return (web.data.frame("suppliers"), web.data.plan())


def _realised(web: WebApp, run_ids: tuple[int, ...]) -> pl.DataFrame:
    """``realised_frame`` of the stored runs ``run_ids`` (remembered; blocking)."""
    key = (run_ids, web.data.plan(), web.data.frame("classification"))
    return web.memo("realised", key, lambda: realised_frame(web))  # type: ignore[no-any-return]


def _expectation(web: WebApp, run_ids: tuple[int, ...]) -> list[dict[str, Any]]:
    """``expectation_rows`` of the stored runs ``run_ids`` (remembered; blocking)."""
    return web.memo(  # type: ignore[no-any-return]
        "expectation", (run_ids,), lambda: expectation_rows(web, run_ids)
    )


def _orders(web: WebApp, plan: dict[str, Any]) -> pl.DataFrame:
    """The order workbench's frame of ``plan`` with the decisions taken (remembered while no
    decision is taken; blocking: reads the store)."""
    signature = web.decisions.signature(plan["plan_id"])
    return web.memo(  # type: ignore[no-any-return]
        "orders", (plan, signature), lambda: _orders_frame(web, plan)
    )


def warm(web: WebApp) -> None:
    """Compute what the pages' first requests would (blocking): read the plan files, derive the
    accuracy, supplier and order tables, read the stored runs' realised accuracy, and sort each
    table in its default order. Whatever is current already is only checked, so a pass after no
    change costs a few stats and store queries."""
    steps: list[Any] = [
        web.data.plan,
        web.data.run_json,
        *(
            (lambda n=n: web.data.frame(n))
            for n in ("classification", "selection", "suppliers", "open_orders")
        ),
        lambda: _table_default(web, ITEMS, (web.data.plan() or {}).get("frame")),
        lambda: _table_default(
            web, ACCURACY, web.memo("accuracy", _accuracy_key(web), lambda: accuracy_frame(web))
        ),
        lambda: _table_default(
            web,
            SUPPLIERS,
            web.memo("suppliers", _suppliers_key(web), lambda: suppliers_frame(web)),
        ),
        lambda: _table_default(
            web, ORDERS, _orders(web, plan) if (plan := web.data.plan()) is not None else None
        ),
        lambda: _run_tables(web),
    ]
    for step in steps:
        if web._stop.is_set():
            return
        step()


def _table_default(web: WebApp, spec: TableSpec, frame: pl.DataFrame | None) -> None:
    if frame is not None and spec.default_sort in frame.columns:
        _sorter(web, spec)(frame, spec.default_sort, spec.default_desc)


def _run_tables(web: WebApp) -> None:
    run_ids = tuple(r.run_id for r in web.state.store.runs(10))
    _table_default(web, REALISED, _realised(web, run_ids))
    _expectation(web, run_ids)


# ---------------------------------------------------------------------------- store extras


def _optional_rows(
    web: WebApp,
    table: str,
    *,
    where: dict[str, Any] | None = None,
    order: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]] | None:
    """Rows of a store table another feature owns (alerts, model aliases, overrides), None when
    the store has no such table (that feature is not installed or not migrated)."""
    import sqlalchemy as sa

    engine = web.state.store.engine
    try:
        if not sa.inspect(engine).has_table(table):
            return None
        t = sa.Table(table, sa.MetaData(), autoload_with=engine)
        query = sa.select(t)
        for key, value in (where or {}).items():
            query = query.where(t.c[key] == value)
        if order is not None:
            query = query.order_by(t.c[order].desc())
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.limit(limit))]
    except sa.exc.SQLAlchemyError:
        return None


# ---------------------------------------------------------------------------- sign-in


@router.get("/login")
async def login_page(request: Request) -> Response:
    web = _app(request)
    return _render(
        request,
        web,
        "login.html",
        "login",
        next=request.query_params.get("next", "/app"),
        error="",
        configured=bool(web.web.users or web.settings.service.api_key_hashes),
    )


@router.post("/login")
async def login(request: Request) -> Response:
    web = _app(request)
    form = await _form(request, web)
    user, password = form.get("username", "").strip(), form.get("password", "")
    target = form.get("next", "/app")
    if not target.startswith("/app"):
        target = "/app"
    ok = await run_in_threadpool(check_credentials, user, password, web.web, web.settings.service)
    if not ok:
        response = _render(
            request,
            web,
            "login.html",
            "login",
            next=target,
            error="Unknown user or wrong password.",
            configured=bool(web.web.users or web.settings.service.api_key_hashes),
        )
        response.status_code = 401
        return response
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        web.signer.session(user),
        httponly=True,
        samesite="lax",
        path="/app",
        max_age=web.web.session_max_age_s,
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    web = _app(request)
    await _form(request, web)
    response = RedirectResponse("/app", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/app")
    return response


# ---------------------------------------------------------------------------- overview


def overview_figures(web: WebApp) -> dict[str, Any]:
    """The overview's headline figures (also what the browser test compares with the files)."""
    plan = web.data.plan()
    run = web.state.run
    figures: dict[str, Any] = {
        "model_version": run.model_version if run else None,
        "model_age_days": (
            round((datetime.now(UTC) - run.created_at).total_seconds() / 86400, 1) if run else None
        ),
        "data_end": run.data_end.isoformat() if run else None,
        "data_age_days": (date.today() - run.data_end).days if run else None,
    }
    if plan is not None:
        frame, orders = plan["frame"], plan["orders"]
        summary = web.data.run_json().get("plan", {})
        fill = summary.get("expected_aggregate_fill_rate")
        figures.update(
            items=frame.height,
            orders=orders.height,
            order_value=float(orders.get_column("order_value").sum()) if orders.height else 0.0,
            at_risk=int((frame.get_column("stockout_risk") >= HIGH_RISK).sum()),
            expected_fill=(
                float(fill)
                if fill is not None
                else float(frame.get_column("expected_fill_rate").mean() or 0.0)
            ),
            stock_value=float(
                (frame.get_column("on_hand") * frame.get_column("unit_cost").fill_null(0)).sum()
            ),
            plan_today=summary.get("today"),
            risk_levels=[
                {
                    "name": name,
                    "count": int(
                        ((frame["stockout_risk"] >= lo) & (frame["stockout_risk"] < hi)).sum()
                    ),
                }
                for name, lo, hi in RISK_LEVELS
            ],
        )
    return figures


@router.get("")
async def overview(request: Request) -> Response:
    web = _signed_in(request)
    figures = await run_in_threadpool(overview_figures, web)
    runs = await web.state.store_call(web.state.store.runs, 2)
    changes = None
    if len(runs) == 2:  # what changed since the run before the served one
        new, old = runs
        changes = {
            "previous": old.model_version,
            "previous_created": old.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            "item_change": new.n_items - old.n_items,
            "data_days": (new.data_end - old.data_end).days,
            "horizon": (old.horizon, new.horizon),
            "config_changed": old.config != new.config,
        }
    alerts = await run_in_threadpool(
        _optional_rows, web, "alerts", where={"status": "open"}, order="opened_at", limit=20
    )
    top = []
    plan = await run_in_threadpool(web.data.plan)
    if plan is not None:
        top = plan["orders"].sort("order_rank").head(10).to_dicts()
    return _render(
        request,
        web,
        "overview.html",
        "overview",
        changes=changes,
        f=figures,
        alerts=alerts,
        top=top,
        chart={"risk": figures.get("risk_levels", [])},
    )


# ---------------------------------------------------------------------------- orders


def _orders_frame(web: WebApp, plan: dict[str, Any]) -> pl.DataFrame:
    """The plan's suggested orders with the decisions taken on them (status, quantity...)."""
    decided = web.decisions.of_plan(plan["plan_id"])
    orders = plan["orders"]
    if decided.height:
        orders = orders.join(
            decided.select(
                "unique_id",
                pl.col("decision").alias("status"),
                "quantity",
                pl.col("reason").alias("decision_reason"),
                "decided_by",
            ),
            on="unique_id",
            how="left",
        )
    else:
        orders = orders.with_columns(
            pl.lit(None, pl.String).alias("status"),
            pl.lit(None, pl.Float64).alias("quantity"),
            pl.lit(None, pl.String).alias("decision_reason"),
            pl.lit(None, pl.String).alias("decided_by"),
        )
    return orders.with_columns(pl.col("status").fill_null("open"))


@router.get("/orders")
async def orders_page(request: Request) -> Response:
    web = _signed_in(request)
    plan = await _plan(request, web, "orders")
    frame = await web.state.store_call(_orders, web, plan)
    table, export = await run_in_threadpool(_table, request, web, frame, ORDERS)
    if export is not None:
        return export
    counts = frame.group_by("status").len().to_dicts()
    return _render(
        request,
        web,
        "orders.html",
        "orders",
        t=table,
        plan_id=plan["plan_id"],
        suppliers=plan["suppliers"],
        categories=plan["categories"],
        risk_levels=[r[0] for r in RISK_LEVELS],
        counts={c["status"]: c["len"] for c in counts},
        writeback=web.settings.writeback.url is not None,
    )


@router.post("/orders/decide")
async def decide(request: Request) -> Response:
    web = _signed_in(request, write=True)
    form = await _form(request, web)
    user = _user(request, web) or ""
    plan = await _plan(request, web, "orders")
    back = form.get("back", "/app/orders")
    if not back.startswith("/app"):
        back = "/app/orders"
    item = form.get("item_id", "")
    row = await run_in_threadpool(web.data.policy_row, item)
    if row is None or not (row.get("suggested_order") or 0) > 0:
        return _redirect_msg(back, f"item {item} has no suggested order in this plan")
    decision = form.get("decision", "")
    try:
        quantity = float(form.get("quantity") or row["suggested_order"])
    except ValueError:
        return _redirect_msg(back, f"quantity {form.get('quantity')!r} is not a number")
    try:
        await web.state.store_call(
            web.decisions.record,
            OrderDecision(
                plan_id=plan["plan_id"],
                unique_id=item,
                supplier_id=row.get("supplier_id"),
                suggested_quantity=float(row["suggested_order"]),
                quantity=quantity,
                unit_cost=row.get("unit_cost"),
                decision=decision,  # type: ignore[arg-type]  # checked by record
                reason=form.get("reason", ""),
                decided_by=user,
            ),
        )
    except SparecastError as exc:
        return _redirect_msg(back, str(exc))
    return _redirect_msg(back, f"{item}: {decision} ({fmt(quantity, 'num')})")


def _redirect_msg(back: str, msg: str) -> Response:
    sep = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{sep}{urlencode({'msg': msg})}", status_code=303)


def _write_back(web: WebApp, plan_id: str) -> str:
    """Approved lines of the plan to DIR/approved_orders.csv + .xlsx, and the pending decisions
    to the ERP table when configured; the message shown."""
    approved = web.decisions.approved(plan_id)
    data_dir = web.state.data_dir
    (data_dir / "approved_orders.csv").write_bytes(orders_csv(approved))
    (data_dir / "approved_orders.xlsx").write_bytes(orders_xlsx(approved, "approved orders"))
    msg = f"{approved.height} approved order lines written to approved_orders.csv/.xlsx"
    wb = web.settings.writeback
    if wb.url is not None:
        pending = web.decisions.pending()
        result = write_erp_orders(wb.url, wb.table, pending)
        web.decisions.mark_written(result.keys)
        msg += f"; ERP table {wb.table}: {result.inserted} lines added, {result.updated} updated"
    return msg


@router.post("/orders/writeback")
async def writeback(request: Request) -> Response:
    web = _signed_in(request, write=True)
    await _form(request, web)
    plan = await _plan(request, web, "orders")
    try:
        msg = await run_in_threadpool(_write_back, web, plan["plan_id"])
    except (SparecastError, StoreError) as exc:
        msg = f"write-back failed: {exc}"
    return _redirect_msg("/app/orders", msg)


@router.get("/orders/approved")
async def approved_export(request: Request) -> Response:
    """The approved lines of the current plan as CSV (``?export=xlsx``: Excel)."""
    web = _signed_in(request)
    plan = await _plan(request, web, "orders")
    approved = await web.state.store_call(web.decisions.approved, plan["plan_id"])
    if request.query_params.get("export") == "xlsx":
        return _download(orders_xlsx(approved, "approved orders"), "xlsx", "approved_orders")
    return _download(orders_csv(approved), "csv", "approved_orders")


# ---------------------------------------------------------------------------- items


@router.get("/items")
async def items_page(request: Request) -> Response:
    web = _signed_in(request)
    plan = await _plan(request, web, "items")
    table, export = await run_in_threadpool(_table, request, web, plan["frame"], ITEMS)
    if export is not None:
        return export
    tiers = sorted(x for x in plan["frame"]["tier"].unique().to_list() if x is not None)
    return _render(
        request,
        web,
        "items.html",
        "items",
        t=table,
        suppliers=plan["suppliers"],
        categories=plan["categories"],
        tiers=tiers,
        risk_levels=[r[0] for r in RISK_LEVELS],
    )


def _ltd_chart(row: dict[str, Any], history: np.ndarray, freq_days: float) -> dict[str, Any]:
    """A histogram of the item's lead-time demand, re-sampled from its stored history and
    lead time with the plan's distribution (1,000 draws, the plan's seed)."""
    mean = row.get("lead_time_mean_days") or 0.0
    std = row.get("lead_time_std_days")
    lead = np.asarray(quote_samples(float(mean), std), dtype=float) / freq_days
    method = row.get("distribution") or "auto"
    if method not in ("poisson", "negbin", "compound", "bootstrap"):
        method = "auto"
    ltd = lead_time_demand(
        history[None, :].astype(np.float32), [lead], method=method, n_samples=1000, seed=0
    )
    samples = ltd.lead_samples[0].astype(float)
    top = int(max(np.ceil(samples.max()), (row.get("reorder_point") or 0) + 1, 1))
    width = max(1, math.ceil((top + 1) / 60))  # at most about 60 bars
    bins = np.clip(np.round(samples).astype(int), 0, top) // width
    counts = np.bincount(bins, minlength=top // width + 1)
    return {
        "x": [k * width for k in range(counts.size)],
        "bin_width": width,
        "p": [round(float(c) / samples.size, 5) for c in counts],
        "reorder_point": row.get("reorder_point"),
        "safety_stock": row.get("safety_stock"),
        "mean": row.get("mean_lead_time_demand"),
    }


def item_context(web: WebApp, item_id: str) -> dict[str, Any] | None:
    """Everything the item page shows (blocking: store reads); None for an unknown item."""
    row = web.data.policy_row(item_id)
    store = web.state.store
    fc = store.item_forecast(item_id)
    if row is None and fc is None:
        return None
    run = web.state.run
    history = store.actuals(item_id)
    chart: dict[str, Any] = {"history": {"x": [], "y": []}, "forecast": None}
    if history.height:
        chart["history"] = {
            "x": [d.isoformat() for d in history["ds"].to_list()],
            "y": history["y"].to_list(),
        }
    forecast_rows: list[dict[str, Any]] = []
    applied = None
    if fc is not None:
        # what GET /forecast/item/{id} answers: an active planner override's level or
        # multiplier replaces the model's forecast there, so it does here
        answer = orjson.loads(forecast_json(fc, web.state.active_override(item_id)))
        applied = answer["override"]
        q = dict(answer["quantiles"])
        values = answer["forecast"]
        chart["forecast"] = {
            "x": [d.isoformat() for d in fc.dates],
            "y": values,
            "quantiles": q,
        }
        for i, d in enumerate(fc.dates):
            forecast_rows.append(
                {"ds": d.isoformat(), "forecast": values[i], **{k: v[i] for k, v in q.items()}}
            )
    freq_days = {"D": 1.0, "W": 7.0, "M": 30.4375}.get(run.freq if run else "D", 1.0)
    ltd = None
    if row is not None and history.height:
        ltd = _ltd_chart(row, history["y"].to_numpy(), freq_days)
    open_orders: list[dict[str, Any]] = []
    oo = web.data.frame("open_orders")
    if oo is not None:
        open_orders = oo.filter(pl.col("item_id") == item_id).to_dicts()
    supplier = None
    sup = web.data.frame("suppliers")
    if sup is not None and row is not None and row.get("supplier_id") is not None:
        found = sup.filter(pl.col("supplier_id") == row["supplier_id"]).to_dicts()
        supplier = found[0] if found else None
    selection = None
    sel = web.data.frame("selection")
    if sel is not None:
        found = sel.filter(pl.col("unique_id") == item_id).to_dicts()
        selection = found[0] if found else None
    classification = None
    cls = web.data.frame("classification")
    if cls is not None:
        found = cls.filter(pl.col("unique_id") == item_id).to_dicts()
        classification = found[0] if found else None
    override = _optional_rows(web, "item_overrides", where={"unique_id": item_id}, limit=1)
    if override:  # the override's values, for the edit form
        current: dict[str, Any] | None = override[0]
    else:
        current = None
    override_history = _optional_rows(
        web, "override_history", where={"unique_id": item_id}, order="id", limit=50
    )
    return {
        "item_id": item_id,
        "row": row,
        "fc": fc,
        "forecast_rows": forecast_rows,
        "quantile_keys": list(fc.quantiles) if fc else [],
        "chart": {**chart, "ltd": ltd},
        "open_orders": open_orders,
        "supplier": supplier,
        "selection": selection,
        "classification": classification,
        "override": override,
        "override_current": current,
        "override_applied": applied,
        "override_history": override_history,
        "tomorrow": date.fromordinal(date.today().toordinal() + 1).isoformat(),
        "method": fc.method if fc else None,
    }


@router.get("/items/{item_id:path}")
async def item_page(item_id: str, request: Request) -> Response:
    web = _signed_in(request)
    ctx = await web.state.store_call(item_context, web, item_id)
    if ctx is None:
        response = _render(
            request,
            web,
            "missing.html",
            "items",
            title=f"Unknown item {item_id}",
            what=f"item {item_id} (not in the plan nor the forecast store)",
            fix="check the item id; the Items page lists every item",
        )
        response.status_code = 404
        return response
    kind = request.query_params.get("export")
    if kind in ("csv", "xlsx"):  # the item's forecast table or its open purchase orders
        which = request.query_params.get("table", "forecast")
        rows = ctx["open_orders"] if which == "open_orders" else ctx["forecast_rows"]
        frame = pl.DataFrame(rows) if rows else pl.DataFrame({"unique_id": []})
        spec = TableSpec(
            f"{which}-{item_id}".replace("/", "_"),
            tuple(Column(c, c) for c in frame.columns),
            default_sort=frame.columns[0],
        )
        return _export(frame, spec, kind, web.web.export_max_rows)
    return _render(request, web, "item.html", "items", **ctx)


def _float_or_none(form: dict[str, str], key: str) -> float | None:
    text = form.get(key, "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise OverrideError(f"{key.replace('_', ' ')} {text!r} is not a number") from None


def _date_or_none(form: dict[str, str], key: str) -> date | None:
    text = form.get(key, "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise OverrideError(
            f"{key.replace('_', ' ')} {text!r} is not a date (YYYY-MM-DD)"
        ) from None


def _change_override(web: WebApp, item_id: str, form: dict[str, str], user: str) -> str:
    """Set or delete the item's planner override from the item page's form (as
    ``PUT``/``DELETE /items/{id}/override`` do); the message shown."""
    state = web.state
    today = date.today()
    state.store.expire_overrides(today)
    if form.get("action") == "delete":
        state.store.delete_override(item_id, by=user, note=form.get("reason", ""))
        state.refresh_overrides(force=True)
        return f"override of {item_id} removed"
    expires = _date_or_none(form, "expires")
    if expires is None:
        raise OverrideError("an override needs an expiry date (the first day it no longer applies)")
    override = Override(
        item_id=item_id,
        set_by=user,
        reason=form.get("reason", "").strip(),
        expires=expires,
        forecast_level=_float_or_none(form, "forecast_level"),
        forecast_multiplier=_float_or_none(form, "forecast_multiplier"),
        reorder_point=_float_or_none(form, "reorder_point"),
        order_up_to=_float_or_none(form, "order_up_to"),
        do_not_order=form.get("do_not_order") in ("on", "1", "true"),
        phase_out_date=_date_or_none(form, "phase_out_date"),
    )
    state.store.set_override(override, today=today)
    state.refresh_overrides(force=True)
    return f"override of {item_id} set ({', '.join(override.kinds)}) until {expires}"


@router.post("/items/{item_id:path}/override")
async def item_override(item_id: str, request: Request) -> Response:
    """Set (``action=set``) or delete (``action=delete``) the item's planner override."""
    web = _signed_in(request, write=True)
    form = await _form(request, web)
    back = f"/app/items/{quote(item_id, safe='')}"
    try:
        msg = await web.state.store_call(
            _change_override, web, item_id, form, _user(request, web) or ""
        )
    except SparecastError as exc:
        msg = f"override not changed: {exc}"
    return _redirect_msg(back, msg)


# ---------------------------------------------------------------------------- accuracy


def accuracy_frame(web: WebApp) -> pl.DataFrame | None:
    """Backtest scores by class, tier and category (MAPE over regular items only)."""
    summary = web.data.frame("backtest_summary")
    if summary is None:
        return None
    parts = [
        summary.select(
            "grouping",
            "group",
            "method",
            "n_items",
            "mae",
            "mase",
            "rmsse",
            "rel_bias",
            pl.lit(None, pl.Float64).alias("mape"),
            "chosen",
        )
    ]
    plan = web.data.plan()
    scores = None
    if plan is not None:
        scores = web.data.read("backtest", BACKTEST_COLUMNS)
    if scores is not None and plan is not None:
        attrs = plan["frame"].select("unique_id", "category", "tier")
        s = scores.join(attrs, on="unique_id", how="inner")
        by_cat = s.group_by("category", "method").agg(
            pl.len().alias("n_items"),
            pl.col("mae").mean(),
            pl.col("mase").mean(),
            pl.col("rmsse").mean(),
            (pl.col("error_sum").sum() / pl.col("actual_sum").sum()).alias("rel_bias"),
            pl.col("mape").filter(pl.col("tier") == "regular").mean().alias("mape"),
            pl.col("chosen").any().alias("chosen"),
        )
        chosen = (
            s.filter("chosen")
            .group_by("category")
            .agg(
                pl.len().alias("n_items"),
                pl.col("mae").mean(),
                pl.col("mase").mean(),
                pl.col("rmsse").mean(),
                (pl.col("error_sum").sum() / pl.col("actual_sum").sum()).alias("rel_bias"),
                pl.col("mape").filter(pl.col("tier") == "regular").mean().alias("mape"),
            )
            .with_columns(pl.lit("chosen per item").alias("method"), pl.lit(True).alias("chosen"))
        )
        for frame in (by_cat.with_columns(pl.lit(False).alias("chosen")), chosen):
            parts.append(
                frame.select(
                    pl.lit("category").alias("grouping"),
                    pl.col("category").cast(pl.String).alias("group"),
                    "method",
                    pl.col("n_items").cast(pl.Int64),
                    "mae",
                    "mase",
                    "rmsse",
                    "rel_bias",
                    "mape",
                    "chosen",
                )
            )
    return pl.concat(
        [
            p.with_columns(pl.col("n_items").cast(pl.Int64), pl.col("chosen").cast(pl.Boolean))
            for p in parts
        ],
        how="vertical_relaxed",
    )


BACKTEST_COLUMNS = [
    "unique_id",
    "method",
    "mae",
    "mase",
    "rmsse",
    "error_sum",
    "actual_sum",
    "mape",
    "chosen",
]
"""The columns of backtest.parquet the accuracy page derives its category scores from."""


def realised_frame(web: WebApp, max_runs: int = 10) -> pl.DataFrame:
    """Forecasts of the stored runs against the actuals stored since: MAE and bias per run by
    class, tier and category (empty until a later run stored the actuals)."""
    store = web.state.store
    plan = web.data.plan()
    cls = web.data.frame("classification")
    rows = []
    for run in store.runs(limit=max_runs):
        fva = store.forecast_vs_actual(run.run_id)
        if not fva.height:
            continue
        fva = fva.with_columns((pl.col("forecast") - pl.col("y")).alias("e"))
        groups: list[tuple[str, pl.DataFrame]] = [
            ("all", fva.with_columns(pl.lit("all").alias("g")))
        ]
        if cls is not None:
            j = fva.join(cls.select("unique_id", "sb_class", "tier"), on="unique_id", how="left")
            groups.append(("class", j.with_columns(pl.col("sb_class").alias("g"))))
            groups.append(("tier", j.with_columns(pl.col("tier").alias("g"))))
        if plan is not None:
            j = fva.join(plan["frame"].select("unique_id", "category"), on="unique_id", how="left")
            groups.append(("category", j.with_columns(pl.col("category").alias("g"))))
        for grouping, frame in groups:
            agg = frame.group_by("g").agg(
                pl.col("unique_id").n_unique().alias("n_items"),
                pl.len().alias("n_points"),
                pl.col("e").abs().mean().alias("mae"),
                pl.col("e").mean().alias("bias"),
            )
            for r in agg.to_dicts():
                rows.append(
                    {
                        "model_version": run.model_version,
                        "run_id": run.run_id,
                        "grouping": grouping,
                        "group": str(r["g"]),
                        "n_items": r["n_items"],
                        "n_points": r["n_points"],
                        "mae": r["mae"],
                        "bias": r["bias"],
                    }
                )
    schema = {
        "model_version": pl.String,
        "run_id": pl.Int64,
        "grouping": pl.String,
        "group": pl.String,
        "n_items": pl.Int64,
        "n_points": pl.Int64,
        "mae": pl.Float64,
        "bias": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def expectation_rows(web: WebApp, run_ids: tuple[int, ...]) -> list[dict[str, Any]]:
    """The backtest expectation stored with each run (its chosen methods' scores by class and
    tier): what the served model version promised, per version."""
    rows = []
    for run_id in run_ids:
        info = web.state.store.get_run(run_id)
        acc = web.state.store.run_accuracy(run_id)
        if info is None or not acc.height or "chosen" not in acc.columns:
            continue
        for r in acc.filter(pl.col("chosen")).to_dicts():
            rows.append(
                {
                    "model version": info.model_version,
                    "by": r.get("grouping"),
                    "group": r.get("group"),
                    "method": r.get("method"),
                    "MAE": fmt(r.get("mae"), "num3"),
                    "MASE": fmt(r.get("mase"), "num3"),
                    "RMSSE": fmt(r.get("rmsse"), "num3"),
                    "bias": fmt(r.get("rel_bias"), "pct"),
                }
            )
    return rows


def monitor_section(web: WebApp, params: dict[str, str]) -> MonitorView:
    """The Accuracy page's monitoring chart and table for the request's ``version``, ``by``,
    ``group`` and ``metric`` (blocking store reads; the scores are remembered per run, stored
    runs and observed-demand revision, so a page view does not rescore; the revision is read at
    most every ``service.version_refresh_s``)."""
    store = web.state.store
    cfg = web.settings.monitoring
    runs = store.runs(limit=50)
    served = web.state.run.model_version if web.state.run is not None else None
    asked = params.get("version")
    run = next((r for r in runs if r.model_version == asked), None)
    if run is None and asked:
        run = store.run_by_version(asked)
        if run is not None:
            runs.append(run)
    if run is None:
        run = next((r for r in runs if r.model_version == served), runs[0] if runs else None)
    got = None
    fired: list[dict[str, Any]] = []
    if run is not None:
        day = monitoring_today()
        # the revision scans observed_demand: checked at most every service.version_refresh_s
        every, freq = web.settings.service.version_refresh_s, run.freq
        revision = web.memo(
            f"monitor-revision:{freq}",
            (int(time.monotonic() // every),),
            lambda: monitor_revision(store, freq),
        )
        key = (revision, day, cfg.window)
        chosen = run
        got = web.memo(
            f"monitor:{run.run_id}:{run.model_version}",
            key,
            lambda: monitor_scores(store, chosen, day, cfg),
        )
        fired = fired_alerts(store, run.model_version)
    return monitor_view(got, runs, fired, served=served, params=params, cfg=cfg)


@router.get("/accuracy")
async def accuracy_page(request: Request) -> Response:
    web = _signed_in(request)
    params = dict(request.query_params)
    which = params.get("table", "backtest")
    frame = await run_in_threadpool(
        lambda: web.memo("accuracy", _accuracy_key(web), lambda: accuracy_frame(web))
    )
    mon = await web.state.store_call(monitor_section, web, params, timeout=None)
    mon_spec = monitoring_spec(mon.metric)
    carried = {"table": "monitoring", "version": mon.version, "by": mon.grouping}
    carried.update(group=mon.group, metric=mon.metric)
    m_table = None
    if mon.frame.width:
        filters = {k: v for k, v in carried.items() if v}
        if which == "monitoring":
            m_query = TableQuery.from_params({**params, **filters}, mon_spec)
            kind = params.get("export")
            if kind in ("csv", "xlsx"):
                out = filtered_table(mon.frame, mon_spec, m_query)
                return _export(out, mon_spec, kind, web.web.export_max_rows)
        else:
            m_query = TableQuery(filters=filters)
        m_table = query_table(mon.frame, mon_spec, m_query, web.web.page_size)
    elif which == "monitoring" and params.get("export"):
        return HTMLResponse(f"no accuracy scores to export: {mon.empty}", status_code=404)
    run_ids = tuple(r.run_id for r in await web.state.store_call(web.state.store.runs, 10))
    realised = await web.state.store_call(_realised, web, run_ids, timeout=None)
    if which == "realised":
        rl_table, export = await run_in_threadpool(_table, request, web, realised, REALISED)
        if export is not None:
            return export
    else:
        rl_table = query_table(realised, REALISED, TableQuery(), web.web.page_size)
    bt_table = None
    chart: dict[str, Any] = {"labels": [], "mase": [], "rmsse": []}
    methods: list[str] = []
    groupings: list[str] = []
    if frame is not None:
        if which not in ("realised", "monitoring"):
            bt_table, export = await run_in_threadpool(_table, request, web, frame, ACCURACY)
            if export is not None:
                return export
        else:
            bt_table = query_table(frame, ACCURACY, TableQuery(), web.web.page_size)
        chosen = frame.filter(pl.col("chosen") & (pl.col("grouping") != "category"))
        chart = {
            "labels": [f"{r['grouping']}: {r['group']}" for r in chosen.to_dicts()],
            "mase": [r["mase"] for r in chosen.to_dicts()],
            "rmsse": [r["rmsse"] for r in chosen.to_dicts()],
        }
        methods = sorted(frame["method"].unique().to_list())
        groupings = sorted(frame["grouping"].unique().to_list())
    elif which == "backtest" and params.get("export"):
        return HTMLResponse(
            "no backtest summary (backtest_summary.parquet) to export", status_code=404
        )
    expectation = await web.state.store_call(_expectation, web, run_ids)
    alerts = await run_in_threadpool(_optional_rows, web, "alerts", order="opened_at", limit=50)
    return _render(
        request,
        web,
        "accuracy.html",
        "accuracy",
        alerts=alerts,
        expectation=expectation,
        t=bt_table,
        r=rl_table,
        m=m_table,
        mon=mon,
        metrics=METRIC_LABELS,
        monitor_groupings=MONITOR_GROUPINGS,
        chart=chart,
        methods=methods,
        groupings=groupings,
    )


# ---------------------------------------------------------------------------- suppliers


def suppliers_frame(web: WebApp) -> pl.DataFrame | None:
    """Supplier performance (plan's suppliers.parquet) with the spread of its items' mean lead
    times (p10, median, p90, from the plan)."""
    sup = web.data.frame("suppliers")
    plan = web.data.plan()
    if sup is None:
        return None
    if plan is None:
        return sup
    spread = (
        plan["frame"]
        .group_by("supplier_id")
        .agg(
            pl.len().alias("n_items"),
            pl.col("lead_time_mean_days").quantile(0.1, "nearest").alias("lt_p10"),
            pl.col("lead_time_mean_days").quantile(0.5, "nearest").alias("lt_p50"),
            pl.col("lead_time_mean_days").quantile(0.9, "nearest").alias("lt_p90"),
        )
    )
    return sup.join(spread, on="supplier_id", how="left")


@router.get("/suppliers")
async def suppliers_page(request: Request) -> Response:
    web = _signed_in(request)
    frame = await run_in_threadpool(
        lambda: web.memo("suppliers", _suppliers_key(web), lambda: suppliers_frame(web))
    )
    if frame is None:
        return _render(
            request,
            web,
            "missing.html",
            "suppliers",
            title="No supplier performance",
            what="the supplier performance of the plan (suppliers.parquet)",
            fix="sparecast plan --output DIR (a plan made by this version writes it)",
        )
    table, export = await run_in_threadpool(_table, request, web, frame, SUPPLIERS)
    if export is not None:
        return export
    chosen = request.query_params.get("supplier_id")
    plan = await run_in_threadpool(web.data.plan)
    hist: dict[str, Any] = {"x": [], "y": [], "supplier": chosen or "all suppliers"}
    if plan is not None:
        lt = plan["frame"]
        if chosen:
            lt = lt.filter(pl.col("supplier_id") == chosen)
        days = lt["lead_time_mean_days"].drop_nulls().to_numpy()
        if days.size:
            edges = np.arange(0, math.ceil(days.max() / 5) * 5 + 5, 5)
            counts, _ = np.histogram(days, bins=edges)
            hist.update(x=edges[:-1].tolist(), y=counts.tolist())
    return _render(request, web, "suppliers.html", "suppliers", t=table, hist=hist)


# ---------------------------------------------------------------------------- models


def models_context(web: WebApp) -> dict[str, Any]:
    """Runs (model versions) in the store, the aliases and their history when the production
    loop's tables exist, and the served run's stored backtest accuracy."""
    store = web.state.store
    aliases = _optional_rows(web, "model_aliases")
    events = _optional_rows(web, "alias_events", order="id", limit=50)
    by_version: dict[str, list[str]] = {}
    for a in aliases or []:
        by_version.setdefault(str(a.get("model_version")), []).append(str(a.get("alias")))
    runs = [
        {
            "run_id": r.run_id,
            "model_version": r.model_version,
            "created_at": r.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            "data_end": r.data_end.isoformat(),
            "n_items": r.n_items,
            "horizon": r.horizon,
            "aliases": ", ".join(by_version.get(r.model_version, [])),
        }
        for r in store.runs(limit=200)
    ]
    schema = {
        "run_id": pl.Int64,
        "model_version": pl.String,
        "created_at": pl.String,
        "data_end": pl.String,
        "n_items": pl.Int64,
        "horizon": pl.Int64,
        "aliases": pl.String,
    }
    frame = pl.DataFrame(runs, schema=schema) if runs else pl.DataFrame(schema=schema)
    curves = sorted(p.name for p in web.state.data_dir.glob("decision*.svg"))
    return {"runs": frame, "aliases": aliases, "events": events, "curves": curves}


@router.get("/models")
async def models_page(request: Request) -> Response:
    web = _signed_in(request)
    ctx = await web.state.store_call(models_context, web)
    table, export = await run_in_threadpool(_table, request, web, ctx["runs"], RUNS)
    if export is not None:
        return export
    served = web.state.run
    return _render(
        request,
        web,
        "models.html",
        "models",
        t=table,
        aliases=ctx["aliases"],
        events=ctx["events"],
        curves=ctx["curves"],
        served=served.model_version if served else None,
    )


@router.get("/files/{name}")
async def data_file(name: str, request: Request) -> Response:
    """A decision-curve SVG of the data directory (the Models page shows it)."""
    web = _signed_in(request)
    path = web.state.data_dir / name
    if (
        not (name.startswith("decision") and name.endswith(".svg"))
        or "/" in name
        or not path.is_file()
    ):
        return HTMLResponse("not found", status_code=404)
    return Response(path.read_bytes(), media_type="image/svg+xml")


def chart_json(value: Any) -> str:
    """``value`` as JSON for a ``<script type="application/json">`` block (NaN as null)."""
    text = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
