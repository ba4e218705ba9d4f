"""`modeldeck`: the root command. Sub-commands live in one module per domain."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from pydantic import ValidationError

from modeldeck.core import __version__
from modeldeck.core.cli import registry, serve, status
from modeldeck.core.cli.context import CliContext
from modeldeck.core.cli.output import error
from modeldeck.core.errors import ConfigError, InvalidInput, ModeldeckError

app = typer.Typer(
    name="modeldeck",
    help="Ship ML models to GPU clusters, watch them decay, roll them back. "
    "Start with `modeldeck demo`.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"modeldeck {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[str | None, typer.Option(
        "--config", "-c", envvar="MODELDECK_CONFIG",
        help="Path to modeldeck.yaml (default: ./modeldeck.yaml if present).")] = None,
    json_output: Annotated[bool, typer.Option(
        "--json", help="Machine-readable JSON output instead of tables.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    ctx.obj = CliContext(config_path=config, json_output=json_output)


registry.register_commands(app)
status.register_commands(app)
serve.register_commands(app)


def main() -> None:
    """Console entry point: domain errors become one red line and exit code 1 (2 for usage)."""
    try:
        app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        error("aborted")
        sys.exit(1)
    except InvalidInput as exc:
        error(exc.message, exc.hint)
        sys.exit(2)
    except (ConfigError, ModeldeckError) as exc:
        error(exc.message, exc.hint)
        sys.exit(1)
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "value"
            error(f"{field}: {err['msg'].removeprefix('Value error, ')}")
        sys.exit(2)
    except Exception as exc:
        # Typer's (vendored) click raises usage errors that know their exit code (2).
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise
