"""The two transports: Socket Mode (default, no public URL) and HTTP (`/slack/events`).

HTTP is served by uvicorn, on the FastAPI app of the bot (or of the REST API) — never bolt's
development server, which handles one request at a time. `/slack/events` is a plain ASGI
route around slack_bolt's Starlette adapter functions: FastAPI's per-route machinery
(dependencies, response models) has nothing to do for it and would cost every ack.

`App.dispatch` runs on the event loop itself. What it does before the ack is CPU only — the
signature check, parsing, the replay guard, handing the work to the lazy pool — a fraction
of a millisecond that never waits on Slack or the database (even an error's answer is sent
from the pool). On a worker thread it would cost more than that: the hop, and under load a
wait for the interpreter lock on the way there and back.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from modeldeck.bot.pacing import ACKS, AckGate
from modeldeck.core import __version__, logs
from modeldeck.core.config import SlackConfig
from modeldeck.core.errors import ConfigError
from modeldeck.core.heap import freeze_startup_heap

EVENTS_PATH = "/slack/events"
# A slash command is a few hundred bytes; a click also carries the message it was on, and
# modeldeck's messages (clipped by core/notify/kit.py) stay within tens of KB even encoded.
# A larger body is not Slack talking to this app: refused with 413, never read whole.
MAX_BODY = 1024 * 1024
SIGNATURE_HEADERS = ("x-slack-signature", "x-slack-request-timestamp")
log = logs.get("modeldeck.bot.server")


class SlackEvents:
    """POST: a slash command or a click, signature-verified and acked by bolt.

    A body over MAX_BODY is refused with 413 before it is read whole or verified.

    Counted by the ack gate from when its body has arrived until the ack has been sent: lazy
    work steps aside meanwhile (bot/pacing.py). Only requests that carry Slack's signature
    headers count (bolt verifies them next), so nobody without them can hold replies back,
    and a slow body holds nothing back while it trickles in."""

    def __init__(self, app: App, gate: AckGate = ACKS) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await read_body(request)
        if body is None:
            too_large = PlainTextResponse("request body too large", status_code=413)
            await too_large(scope, receive, send)
            return
        signed = all(name in request.headers for name in SIGNATURE_HEADERS)
        if signed:
            self.gate.arrived()
        try:
            response = to_starlette_response(self.app.dispatch(to_bolt_request(request, body)))
            await response(scope, receive, send)
        finally:
            if signed:
                self.gate.acked()


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes | None:
    """The body, or None when it is larger than `limit`: refused by its Content-Length before
    any of it is read, or as soon as a streamed (chunked) body grows past it. Never buffered
    whole, never handed to the signature check."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def slack_router(app: App, path: str = EVENTS_PATH) -> APIRouter:
    """POST `path`: slash commands and interactivity, signature-verified by bolt."""
    router = APIRouter(tags=["slack"])
    router.routes.append(Route(path, SlackEvents(app), methods=["POST"], include_in_schema=False))
    return router


def mount(api: FastAPI, app: App, path: str = EVENTS_PATH) -> None:
    """Serve the bot at `path` on an existing FastAPI app (e.g. the REST API's)."""
    api.include_router(slack_router(app, path))


def http_app(app: App) -> FastAPI:
    """A FastAPI app of its own for `modeldeck bot --http`: /slack/events and /healthz."""
    api = FastAPI(
        title="modeldeck Slack bot",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @api.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    mount(api, app)
    return api


def run_http(app: App, *, host: str, port: int, log_level: str = "info") -> None:
    import uvicorn

    api = http_app(app)
    freeze_startup_heap()
    log.info("slack.http_mode", host=host, port=port, path=EVENTS_PATH)
    uvicorn.run(
        api,
        host=host,
        port=port,
        log_level=log_level.lower(),
        access_log=False,
        log_config=None,  # our handler (core/logs.py) renders uvicorn's lines too
    )


def socket_mode_handler(app: App, slack: SlackConfig) -> SocketModeHandler:
    if slack.app_token is None:
        raise ConfigError(
            "Socket Mode needs slack.app_token (xapp-…, MODELDECK_SLACK__APP_TOKEN)",
            hint="or run `modeldeck bot --http` with a signing secret; see docs/slack.md",
        )
    return SocketModeHandler(app, app_token=slack.app_token.get_secret_value())


def run_socket_mode(app: App, slack: SlackConfig) -> None:
    """Connect to Slack over a websocket and serve until interrupted."""
    handler = socket_mode_handler(app, slack)
    freeze_startup_heap()
    log.info("slack.socket_mode")
    handler.start()
