"""Bounds on what one request may make the server read: the body size limit and the API key,
both enforced before the body is read.

FastAPI reads and parses a request's whole body before it solves the route's dependencies, so
neither a size check nor the key check inside a route can stop a large body from being read into
memory. This pure ASGI middleware answers first: 413 when ``Content-Length`` announces more than
``service.max_body_bytes``, 401 on a key-protected operation without a valid key (the same answer
as ``deps.require_api_key``), and it counts a chunked (streamed) body as it is read, stopping at
the limit with 413. Nothing it does reads the body itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from fastapi import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sparecast.service.deps import api_key_error
from sparecast.service.state import ServiceState

__all__ = ["RequestLimits", "BodyTooLarge"]


class BodyTooLarge(HTTPException):
    """The body read so far is over ``service.max_body_bytes`` (raised from ``receive``, so the
    route's body reading stops there and the app answers 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=_too_large(limit))


def _too_large(limit: int) -> str:
    return (
        f"request body larger than {limit} bytes (service.max_body_bytes); send fewer items "
        "per request"
    )


async def _answer(
    send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = orjson.dumps({"detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the unread body is not worth draining
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """ASGI middleware: body size limit and API key check before any body is read.

    ``protected`` are the routes behind the API key (``create_app`` passes every route with the
    ``ApiKeyDep`` dependency); a request they fully match is refused with 401 here, before the
    route reads its body, unless it carries a valid key.
    """

    def __init__(self, app: ASGIApp, state: ServiceState, protected: Sequence[BaseRoute]) -> None:
        self.app = app
        self.state = state
        self.protected = list(protected)
        # methods of the protected routes: other requests (the GET hot path) skip the matching
        self.methods = {m for route in self.protected for m in getattr(route, "methods", ())}

    def _needs_key(self, scope: Scope) -> bool:
        return scope["method"] in self.methods and any(
            route.matches(scope)[0] is Match.FULL for route in self.protected
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        service = self.state.settings.service
        limit = service.max_body_bytes
        length: int | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
        if length is not None and length > limit:
            await _answer(send, 413, _too_large(limit))
            return
        if self._needs_key(scope):
            headers = {k.decode("latin-1").lower(): v for k, v in scope["headers"]}
            key = headers.get(service.api_key_header.lower())
            error = api_key_error(service, None if key is None else key.decode("latin-1"))
            if error is not None:
                await _answer(send, 401, error, [(b"www-authenticate", b"ApiKey")])
                return

        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:  # an app part that let it through instead of answering 413
            if started:
                raise
            await _answer(send, 413, _too_large(limit))
