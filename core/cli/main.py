"""`modeldeck`: the root command. Sub-commands live in one module per domain."""

from __future__ import annotations

from typing import Annotated

import typer

from modeldeck.core import __version__, logs
from modeldeck.core.cli import (
    alerts,
    bot,
    dashboard,
    hardware,
    monitoring,
    outbox,
    output,
    registry,
    rollouts,
    scheduler,
    serve,
    status,
    up,
)
from modeldeck.core.cli.context import JSON_HELP, CliContext, CliGroup

app = typer.Typer(
    name="modeldeck",
    help="Ship ML models to GPU clusters, watch them decay, roll them back. "
    "Start with `modeldeck demo`.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    cls=CliGroup,  # maps the core's errors to exit codes (1 failure, 2 invalid input)
)


def _version(value: bool) -> None:
    if value:
        print(f"modeldeck {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            envvar="MODELDECK_CONFIG",
            help="Path to modeldeck.yaml (default: ./modeldeck.yaml if present).",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    # Short commands log problems only, to stderr (stdout is for results, often --json);
    # the long-running ones (api, scheduler, bot, up) reconfigure with settings.log_level.
    logs.configure("auto", "WARNING")
    output.reset()
    ctx.obj = CliContext(config_path=config, json_output=json_output)


registry.register_commands(app)
status.register_commands(app)
rollouts.register_commands(app)
serve.register_commands(app)
bot.register_commands(app)
alerts.register_commands(app)
outbox.register_commands(app)
hardware.register_commands(app)
monitoring.register_commands(app)
scheduler.register_commands(app)
dashboard.register_commands(app)
up.register_commands(app)


def main() -> None:
    """Console entry point: exit 0 ok, 1 failure, 2 usage error (see CliGroup)."""
    app()
