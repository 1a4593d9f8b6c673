"""The service's error types and the app-level handlers that turn errors into HTTP answers.

Route handlers raise what went wrong (an unknown item, no run, an unreachable store, a running
job) and never build error responses themselves: one table here maps each error type to its
status code, and the answer is always ``{"detail": "<the error's message>"}`` (the ``ErrorOut``
shape, the same as FastAPI's ``HTTPException``). 401 and 422 stay ``HTTPException``s: they are
FastAPI's own authentication and validation answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse, Response

from sparecast.errors import CacheUnavailable, SparecastError, StoreError

__all__ = [
    "NotFound",
    "NoPlan",
    "NoRun",
    "JobConflict",
    "NoRetrainSource",
    "STATUS_CODES",
    "add_exception_handlers",
]


class NotFound(SparecastError):
    """What the request names (an item, a job) does not exist."""


class NoPlan(NotFound):
    """The data directory has no inventory plan (policy.parquet / inventory_report.html)."""


class NoRun(SparecastError):
    """There is no forecast run to serve: the store holds none yet, or it was unreachable
    before the first one could be read."""


class JobConflict(SparecastError):
    """A retraining job is already running."""

    def __init__(self, job_id: str | None) -> None:
        self.job_id = job_id
        where = f"job {job_id}" if job_id else "a job of another server process"
        super().__init__(
            f"a retraining job is already running ({where}); poll GET /jobs/{job_id or '{id}'} "
            "and retry when it has finished"
        )


class NoRetrainSource(SparecastError):
    """``POST /retrain`` has no source to run the pipeline on."""


STATUS_CODES: dict[type[Exception], int] = {
    NotFound: status.HTTP_404_NOT_FOUND,
    JobConflict: status.HTTP_409_CONFLICT,
    NoRetrainSource: status.HTTP_409_CONFLICT,
    NoRun: status.HTTP_503_SERVICE_UNAVAILABLE,
    # StoreUnavailable (a StoreError) too: cached answers are still served, the rest wait
    StoreError: status.HTTP_503_SERVICE_UNAVAILABLE,
    CacheUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}
"""Status code of each error type a route may raise (subclasses included)."""


def _detail_handler(code: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handler(request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=code)

    return handler


def add_exception_handlers(app: FastAPI) -> None:
    """Answer every error type of ``STATUS_CODES`` with its status and ``{"detail": message}``.

    Starlette picks the handler of the nearest class in the error's MRO, so a subclass
    (``NoPlan``, ``StoreUnavailable``) gets its base class's status unless it has its own."""
    for error, code in STATUS_CODES.items():
        app.add_exception_handler(error, _detail_handler(code))
