"""`modeldeck bot`: the Slack bot, over Socket Mode (default) or HTTP (`--http`).

The bot package is imported inside the command: core never imports bot at module level, the
CLI is only where the two are put together.
"""

from __future__ import annotations

from typing import Annotated

import typer

from modeldeck.core import logs
from modeldeck.core.cli import context
from modeldeck.core.cli.serve import ensure_port_free
from modeldeck.core.errors import ConfigError


def bot(
    ctx: typer.Context,
    http: Annotated[
        bool,
        typer.Option(
            "--http",
            help="Serve POST /slack/events (needs slack.signing_secret) instead of "
            "Socket Mode. Also chosen by slack.mode: http.",
        ),
    ] = False,
    port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="HTTP port (default slack.http_port, 3000; with --with-api, api.port).",
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="HTTP bind address (default api.host).")] = None,
    with_api: Annotated[
        bool,
        typer.Option(
            "--with-api",
            help="HTTP mode: serve the REST API on the same port, with the bot "
            "mounted at /slack/events.",
        ),
    ] = False,
) -> None:
    """Run the Slack bot: `/modeldeck` commands, approval and alert buttons.

    Socket Mode needs slack.bot_token and slack.app_token and no public URL. HTTP mode needs
    slack.bot_token and slack.signing_secret and a URL Slack can reach. See docs/slack.md.
    """
    from modeldeck.bot import server
    from modeldeck.bot.app import create_app

    cli = context.get(ctx)
    settings = cli.settings
    logs.configure(settings.log_format, settings.log_level)
    if not settings.slack.enabled:
        raise ConfigError(
            "Slack is not configured: set slack.bot_token (MODELDECK_SLACK__BOT_TOKEN)",
            hint="see docs/slack.md",
        )
    http = http or with_api or settings.slack.mode == "http"
    bind = host or settings.api.host
    port = port or (settings.api.port if with_api else settings.slack.http_port)
    if http:
        ensure_port_free(bind, port)
    app = create_app(settings, cli.engine, http=http)
    if not http:
        server.run_socket_mode(app, settings.slack)
    elif with_api:
        import uvicorn

        from modeldeck.core.api.app import create_app as create_api
        from modeldeck.core.heap import freeze_startup_heap

        api = create_api(settings, engine=cli.engine)
        server.mount(api, app)
        freeze_startup_heap()
        uvicorn.run(
            api,
            host=bind,
            port=port,
            log_level=settings.log_level.lower(),
            access_log=False,
            log_config=None,  # our handler renders uvicorn's lines too
        )
    else:
        server.run_http(app, host=bind, port=port, log_level=settings.log_level)


def register_commands(app: typer.Typer) -> None:
    app.command("bot")(bot)
