"""ASGI middleware: request ids, a body-size limit, and latency metrics."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modeldeck.core.metrics import HTTP_LATENCY

_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes: no access log


def route_template(scope: Scope) -> str:
    """The matched route as a template (`/api/v1/models/{name}`): a bounded metric label.

    Recent FastAPI versions keep an included router's routes relative to its prefix; the
    prefix is then the leading segments of the real path that the template does not cover.
    """
    template = getattr(scope.get("route"), "path", None)
    if not isinstance(template, str) or not template:
        return "unmatched"
    path = str(scope.get("path", ""))
    extra = path.count("/") - template.count("/")
    if extra > 0 and ":path}" not in template:
        return "/".join(path.split("/")[: extra + 1]) + template
    return template


class RequestContext:
    """Give every request an id (X-Request-ID, or a new one), log it, time it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = structlog.get_logger("modeldeck.api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw = headers.get(b"x-request-id", b"").decode("latin-1")[:64]
        request_id = raw if raw and raw.isprintable() else secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            HTTP_LATENCY.labels(scope["method"], route_template(scope), str(status)).observe(
                elapsed
            )
            if status >= 400 or scope["path"] not in _QUIET:
                self.log.info(
                    "http.request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    ms=round(elapsed * 1000, 1),
                )
            structlog.contextvars.unbind_contextvars("request_id")


class BodyLimit:
    """Refuse bodies over `max_bytes` with 413: at once when Content-Length says so, else as
    soon as a streamed (chunked) body passes the limit. The app never sees the rest."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        refused = False
        started = False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            # FastAPI turns the exception raised while it reads the body into its own
            # 400 answer; swallow that and send the 413 below instead.
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise
        if refused and not started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body: dict[str, Any] = {
            "error": "payload too large",
            "detail": f"request body larger than {self.max_bytes} bytes",
        }
        data = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


class _TooLarge(Exception):
    pass
