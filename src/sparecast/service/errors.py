"""The service's error types and the app-level handlers that turn errors into HTTP answers.

Route handlers raise what went wrong (an unknown item, no run, an unreachable store, a running
job) and never build error responses themselves: one table here maps each error type to its
status code, and the answer is always ``{"detail": "<the error's message>"}`` (the ``ErrorOut``
shape, the same as FastAPI's ``HTTPException``). 401 and 422 stay ``HTTPException``s: they are
FastAPI's own authentication and validation answers.

Answers never carry connection details or server paths: store and cache errors raised below
the service (whose messages name the redacted URL and the driver's text) are answered with a
fixed sentence and logged in full; only ``StoreDown``, whose message the service writes, is
passed on. Every detail is capped (``MAX_DETAIL``) and validation errors quote at most a short
prefix of the input, so no answer grows with what the request sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from sparecast.errors import (
    CacheUnavailable,
    LoopManagedError,
    SparecastError,
    StoreError,
    StoreUnavailable,
)

__all__ = [
    "NotFound",
    "NoPlan",
    "NoRun",
    "JobConflict",
    "NoRetrainSource",
    "StoreDown",
    "MAX_DETAIL",
    "public_message",
    "short",
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


class StoreDown(StoreUnavailable):
    """The store did not answer a request (unreachable or past its deadline); the message is
    written by the service for the caller (no URL or driver text) and answered as it is."""


MAX_DETAIL = 2000
"""Most characters of an error answer's detail (a safety net: messages quote short prefixes)."""

SHORT_INPUT = 64
"""Most characters of a request value quoted in an answer (the rest is cut with an ellipsis)."""

log = logging.getLogger("sparecast.service")


def short(value: str, limit: int = SHORT_INPUT) -> str:
    """``repr(value)``, cut to about ``limit`` characters: error answers quote at most a short
    prefix of what the request sent (a 100 MB item id gets a small 404)."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit])[:-1] + "…'"


def public_message(exc: Exception) -> str:
    """What an answer may say about ``exc``: store and cache errors from below the service get
    a fixed sentence (their messages name hosts, users and driver errors), the rest their
    message, capped at ``MAX_DETAIL`` characters."""
    if isinstance(exc, StoreError) and not isinstance(exc, StoreDown):
        log.warning("forecast store: %s", exc)
        if isinstance(exc, StoreUnavailable):
            message = "the forecast store is unreachable; retry later"
        else:
            message = "the forecast store failed to answer; the server log has the details"
    elif isinstance(exc, CacheUnavailable):
        log.warning("forecast cache: %s", exc)
        message = "the forecast cache is unreachable; retry later"
    else:
        message = str(exc)
    if len(message) > MAX_DETAIL:
        message = message[: MAX_DETAIL - 1] + "…"
    return message


def _short_input(value: Any) -> Any:
    """A validation error's ``input`` as it is when short, else a cut string of it."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = value if isinstance(value, str) else json.dumps(jsonable_encoder(value), default=str)
    return value if len(text) <= SHORT_INPUT else text[:SHORT_INPUT] + "…"


async def _validation_handler(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 answer, with every error's ``input`` cut to a short prefix."""
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        error = dict(error)
        if "input" in error:
            error["input"] = _short_input(error["input"])
        # an unknown field's name is part of its location: cut that too
        error["loc"] = [_short_input(part) for part in error.get("loc", ())]
        errors.append(error)
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


STATUS_CODES: dict[type[Exception], int] = {
    NotFound: status.HTTP_404_NOT_FOUND,
    JobConflict: status.HTTP_409_CONFLICT,
    NoRetrainSource: status.HTTP_409_CONFLICT,
    LoopManagedError: status.HTTP_409_CONFLICT,
    NoRun: status.HTTP_503_SERVICE_UNAVAILABLE,
    # StoreUnavailable (a StoreError) too: cached answers are still served, the rest wait
    StoreError: status.HTTP_503_SERVICE_UNAVAILABLE,
    CacheUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}
"""Status code of each error type a route may raise (subclasses included)."""


def _detail_handler(code: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handler(request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": public_message(exc)}, status_code=code)

    return handler


def add_exception_handlers(app: FastAPI) -> None:
    """Answer every error type of ``STATUS_CODES`` with its status and ``{"detail": message}``.

    Starlette picks the handler of the nearest class in the error's MRO, so a subclass
    (``NoPlan``, ``StoreUnavailable``) gets its base class's status unless it has its own."""
    for error, code in STATUS_CODES.items():
        app.add_exception_handler(error, _detail_handler(code))
    app.add_exception_handler(RequestValidationError, _validation_handler)
