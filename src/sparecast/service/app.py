"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from sparecast._version import __version__
from sparecast.config import Settings
from sparecast.pipeline.staging import recover_output_dir
from sparecast.service.cached_reads import ItemForecastFastPath
from sparecast.service.deps import require_api_key
from sparecast.service.errors import add_exception_handlers
from sparecast.service.limits import RequestLimits
from sparecast.service.metrics import LatencyMiddleware
from sparecast.service.routes import forecast, health, items, jobs, metrics, overrides, reports
from sparecast.service.state import ServiceState
from sparecast.service.web import STATIC_DIR
from sparecast.service.web import router as web_router
from sparecast.service.web.pages import PageResponse, WebApp, page_response

__all__ = ["create_app"]

ROUTERS = (
    forecast.router,
    items.router,
    reports.router,
    health.router,
    jobs.router,
    metrics.router,
    overrides.router,
)
"""One router per resource, each with its path prefix."""


def _route_of(router: APIRouter, endpoint: Callable[..., Any]) -> APIRoute:
    """The route of ``endpoint`` in ``router`` (the fast path labels its answers with it)."""
    return next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is endpoint)


def _protected_routes() -> list[APIRoute]:
    """Every route behind the API key (its ``ApiKeyDep`` dependency)."""
    return [
        route
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        and any(d.dependency is require_api_key for d in route.dependencies)
    ]


def _protected() -> list[tuple[str, str]]:
    """(path, method) of every operation behind the API key."""
    return [
        (route.path_format, method.lower())
        for route in _protected_routes()
        for method in route.methods or ()
    ]


_log = logging.getLogger("sparecast.service")


def create_app(
    settings: Settings,
    data_dir: str | Path,
    *,
    metrics_multiprocess_dir: Path | None = None,
) -> FastAPI:
    """The API serving the store and plan of ``data_dir`` (``sparecast serve --data DIR``).

    The store is ``settings.store.url`` or ``DIR/history.sqlite``; the cache Redis
    (``settings.store.cache_url``) or an in-process LRU. Connections open in the app's lifespan:
    use it under an ASGI server or ``with TestClient(app)``.
    """
    state = ServiceState(
        settings, Path(data_dir), metrics_multiprocess_dir=metrics_multiprocess_dir
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # finish or undo what an interrupted command or retrain left in the directory
        for line in await run_in_threadpool(recover_output_dir, Path(data_dir), settings):
            _log.info("recovery: %s", line)
        await state.start()
        # the web app's tables are computed in the background from now on: requests are
        # answered at once, and one that needs a table being computed waits for it
        web = getattr(app.state, "sparecast_web", None)
        if web is None:
            web = app.state.sparecast_web = WebApp(state)
        web.start_warming()
        try:
            yield
        finally:
            await run_in_threadpool(web.stop_warming)
            await state.stop()

    app = FastAPI(
        title="sparecast",
        version=__version__,
        summary="Forecasts and inventory decisions for intermittent demand",
        lifespan=lifespan,
    )
    app.state.sparecast = state
    add_exception_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    # the planner's web app: pages under /app, its static files (uPlot, CSS, JS) beside them
    app.include_router(web_router)
    app.add_exception_handler(PageResponse, page_response)
    app.mount("/app/static", StaticFiles(directory=STATIC_DIR), name="web-static")
    app.add_middleware(
        ItemForecastFastPath, state=state, route=_route_of(forecast.router, forecast.item_forecast)
    )
    # the body limit and the key check answer before any body is read
    app.add_middleware(RequestLimits, state=state, protected=_protected_routes())
    app.add_middleware(LatencyMiddleware, metrics=state.metrics)  # outermost: times everything
    header = settings.service.api_key_header

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "ApiKey": {"type": "apiKey", "in": "header", "name": header}
            }
            for path, method in _protected():
                schema["paths"][path][method]["security"] = [{"ApiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
