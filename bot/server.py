"""The two transports: Socket Mode (default, no public URL) and HTTP (`/slack/events`).

HTTP goes through slack_bolt's FastAPI adapter under uvicorn — never bolt's development
server, which handles one request at a time. bolt's App is synchronous, so each request is
dispatched on a worker thread: the event loop keeps accepting requests (and, when mounted on
the API app, keeps serving the API) while a signature is checked and a request is acked.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from slack_bolt import App
from slack_bolt.adapter.fastapi import SlackRequestHandler
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.concurrency import run_in_threadpool

from modeldeck.core import __version__, logs
from modeldeck.core.config import SlackConfig
from modeldeck.core.errors import ConfigError

EVENTS_PATH = "/slack/events"
log = logs.get("modeldeck.bot.server")


class ThreadedSlackRequestHandler(SlackRequestHandler):
    """bolt's FastAPI/Starlette handler with `App.dispatch` moved off the event loop."""

    async def handle(
        self, req: Request, addition_context_properties: dict[str, Any] | None = None
    ) -> Response:
        if req.method != "POST":
            return await super().handle(req, addition_context_properties)
        body = await req.body()
        bolt_request = to_bolt_request(req, body, addition_context_properties)
        bolt_response = await run_in_threadpool(self.app.dispatch, bolt_request)
        return to_starlette_response(bolt_response)


def slack_router(app: App, path: str = EVENTS_PATH) -> APIRouter:
    """POST `path`: slash commands and interactivity, signature-verified by bolt."""
    handler = ThreadedSlackRequestHandler(app)
    router = APIRouter(tags=["slack"])

    @router.post(path, include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        return await handler.handle(request)

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

    log.info("slack.http_mode", host=host, port=port, path=EVENTS_PATH)
    uvicorn.run(
        http_app(app),
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
    log.info("slack.socket_mode")
    socket_mode_handler(app, slack).start()
