"""Request limits, as ASGI middleware: requests in flight (503), body size (413) and a slow
client's pauses (408).

A body is refused as soon as it is known to be too large, never after it has been read
whole: at once when its ``Content-Length`` says so, otherwise (a chunked upload, or a
client that sends more than it declared) at the first chunk that takes the count past the
limit. A client that pauses longer than ``timeout`` seconds between two chunks gets 408.
Both refusals are :class:`~jaxcodec.serve.errors.RequestError` s raised from ``receive``,
so the route that is reading the body answers them like any other bad input; a
``Content-Length`` over the limit is answered here, before the application runs.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable

from jaxcodec.serve.errors import BodyTimeout, Busy, RequestError, TooLarge

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_error(send: Send, error: RequestError) -> None:
    """Sends ``{"error": ...}`` with the error's status, closing the connection (the rest of
    an unread body is never read)."""
    body = json.dumps({"error": str(error)}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length`` (None when absent); a malformed one is a 400."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            if not text.isdigit():
                raise RequestError(f"bad Content-Length header {text!r}")
            return int(text)
    return None


class BodyLimit:
    """ASGI middleware: at most ``max_bytes`` of request body, with pauses of at most
    ``timeout`` seconds between its chunks."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float):
        self.app = app
        self.max_bytes = int(max_bytes)
        self.timeout = float(timeout)

    def _too_large(self) -> TooLarge:
        return TooLarge(f"request body is over the upload limit of {self.max_bytes} bytes "
                        f"({self.max_bytes / (1 << 20):g} MB)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            length = declared_length(scope)
        except RequestError as error:
            await send_error(send, error)
            return
        if length is not None and length > self.max_bytes:
            await send_error(send, self._too_large())
            return
        received = 0
        finished = False

        async def limited_receive() -> Message:
            nonlocal received, finished
            if finished:  # after the body: a disconnect listener may wait as long as it likes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except asyncio.TimeoutError:
                raise BodyTimeout(f"request body stalled for more than {self.timeout:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
                finished = not message.get("more_body", False)
            else:
                finished = True
            return message

        await self.app(scope, limited_receive, send)


class InFlightLimit:
    """ASGI middleware: at most ``limit`` HTTP requests handled at once (reading their body,
    waiting for a worker or being answered); one more gets a JSON 503 at once. It bounds the
    memory that uploads being read can hold, before the worker queue bounds the work."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = int(limit)
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            await send_error(send, Busy(f"server busy: {self.limit} requests in progress; try again shortly",
                                        headers={"Retry-After": "1"}))
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
