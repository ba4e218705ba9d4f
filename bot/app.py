"""The one bolt App: Web API client, request verification, the replay guard, the error handler,
and every listener.

Both transports use it: Socket Mode (bot/server.run_socket_mode) and HTTP (bot/server.py,
under uvicorn).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.error import BoltError
from slack_bolt.middleware import Middleware
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from sqlalchemy.engine import Engine

from modeldeck.bot import errors
from modeldeck.bot.context import BotDeps
from modeldeck.bot.identity import GroupDirectory
from modeldeck.bot.listeners import actions, commands
from modeldeck.bot.replay import ReplayCache, ReplayGuard
from modeldeck.core import logs
from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.config import Settings, SlackConfig
from modeldeck.core.errors import BackendUnavailable, ConfigError

SLACK_API = "https://slack.com/api/"
MAX_RETRY_WAIT = 5.0  # seconds a worker may sleep for Slack's Retry-After before a retry
log = logs.get("modeldeck.bot.app")


def web_client(slack: SlackConfig) -> WebClient:
    """The bot's Web API client; `slack.api_url` points it elsewhere (tests, proxies).

    A 429 is retried after Slack's Retry-After only when that is short (ShortRateLimitRetry)."""
    if slack.bot_token is None:
        raise ConfigError(
            "the Slack bot needs slack.bot_token (MODELDECK_SLACK__BOT_TOKEN)",
            hint="see docs/slack.md",
        )
    base = (slack.api_url or SLACK_API).rstrip("/") + "/"
    return WebClient(
        token=slack.bot_token.get_secret_value(),
        base_url=base,
        timeout=10,
        retry_handlers=[ShortRateLimitRetry(max_retry_count=2)],
    )


class ShortRateLimitRetry(RateLimitErrorRetryHandler):
    """Retry a 429 after its Retry-After only when that is at most `max_wait` seconds.

    The wait is a sleep on one of the four lazy workers (bot/pacing.py): a burst of 429s with
    Retry-After 30-60 s would hold every reply back that long. A longer wait is not taken: the
    call fails with `ratelimited` and the caller logs it (a redraw, `slack.update_failed`) or
    reports it (the error handler). A Retry-After that is not a number of seconds counts as
    long; none at all is a one-second wait (slack_sdk's default)."""

    def __init__(self, max_retry_count: int = 2, max_wait: float = MAX_RETRY_WAIT) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        values = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), [])
        if not values:
            return True
        text = str(values[0]).strip()
        return text.isdigit() and int(text) <= self.max_wait


def build_deps(
    settings: Settings, engine: Engine, client: WebClient, *, clock: Clock = utcnow
) -> BotDeps:
    return BotDeps(
        settings=settings,
        engine=engine,
        clock=clock,
        directory=GroupDirectory(
            client, settings.roles, max_age=settings.slack.groups_max_age_seconds
        ),
    )


def create_app(
    settings: Settings,
    engine: Engine,
    *,
    client: WebClient | None = None,
    clock: Clock = utcnow,
    http: bool | None = None,
) -> App:
    """Build the App. HTTP mode requires the signing secret; Socket Mode does not use it."""
    slack = settings.slack
    http = slack.mode == "http" if http is None else http
    if http and slack.signing_secret is None:
        raise ConfigError(
            "HTTP mode needs slack.signing_secret (MODELDECK_SLACK__SIGNING_SECRET)"
            " to verify that requests come from Slack",
            hint="see docs/slack.md",
        )
    client = client or web_client(slack)
    try:
        app = _bolt_app(slack, client, http)
    except BoltError as exc:  # auth.test said no: the token is wrong or revoked
        raise ConfigError(
            f"Slack refused the bot token: {exc}",
            hint="check slack.bot_token (MODELDECK_SLACK__BOT_TOKEN)",
        ) from None
    except OSError as exc:  # URLError is an OSError
        reason = getattr(exc, "reason", exc)
        raise BackendUnavailable(
            f"cannot reach the Slack Web API at {client.base_url}: {reason}",
            hint="check the network, or slack.api_url",
        ) from None
    deps = build_deps(settings, engine, client, clock=clock)
    deps.directory.refresh()  # user-group roles known before the first request (if any)
    if http:
        app.use(ReplayGuard(ReplayCache()))
    app.use(ShareDeps(deps))
    app.error(errors.error_handler(deps.pool))
    commands.register(app)
    actions.register(app)
    return app


def _bolt_app(slack: SlackConfig, client: WebClient, http: bool) -> App:
    """The App checks the token once (auth.test) when it is built."""
    return App(
        name="modeldeck",
        # Without a logger of its own, bolt creates the logger named after the app
        # ("modeldeck", the parent of all of ours) and freezes its level at the root's.
        logger=logging.getLogger("modeldeck.bot.bolt"),
        client=client,
        signing_secret=slack.signing_secret.get_secret_value() if slack.signing_secret else "",
        request_verification_enabled=http,
        # ack() runs where the request is dispatched (the event loop, in HTTP mode) and
        # returns at once; the work goes to the lazy pool (bot/context.py, bot/pacing.py).
        process_before_response=True,
    )


class ShareDeps(Middleware):
    """Hand the shared dependencies to the listeners. Who is asking is resolved on the lazy
    pool (bot/context.py): the ack path is bolt's checks, the replay guard and this.

    A Middleware, not a function: bolt builds the arguments of a function middleware anew
    for every request."""

    def __init__(self, deps: BotDeps) -> None:
        self.deps = deps

    def process(
        self,
        *,
        req: BoltRequest,
        resp: BoltResponse,
        next: Callable[[], BoltResponse],  # noqa: A002 - bolt's name
    ) -> BoltResponse | None:
        req.context["deps"] = self.deps
        return next()
