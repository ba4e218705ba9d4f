"""What every command needs: settings, database, the acting user, output mode."""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session
from typer.core import TyperGroup

from modeldeck.core import db
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.cli.output import error
from modeldeck.core.config import Settings, load_settings
from modeldeck.core.environments import service as environments
from modeldeck.core.errors import ConfigError, InvalidInput, ModeldeckError

EXIT_FAILURE = 1
EXIT_USAGE = 2
JSON_HELP = "Machine-readable JSON output instead of tables."


def _json_flag(ctx: typer.Context, value: bool) -> None:
    if value and isinstance(obj := ctx.find_root().obj, CliContext):
        obj.json_output = True


def _json_option() -> Any:
    """`--json` as typer builds it, for every sub-command: scripts write it after the command
    (`modeldeck models list --json`) as often as before it. It sets the root's flag."""
    probe = typer.Typer(add_completion=False)

    @probe.command()
    def _probe(
        json_output: Annotated[
            bool, typer.Option("--json", help=JSON_HELP, callback=_json_flag)
        ] = False,
    ) -> None:
        """Never run: only its option is used."""

    (option,) = typer.main.get_command(probe).params
    option.expose_value = False  # the commands' signatures stay as they are
    return option


def _with_json_option(command: Any, option: Any) -> None:
    subcommands = getattr(command, "commands", None)
    if subcommands is not None:
        for sub in subcommands.values():
            _with_json_option(sub, option)
    elif not any("--json" in getattr(p, "opts", ()) for p in command.params):
        command.params.append(option)


class CliGroup(TyperGroup):
    """The root command group: the core's errors become a red line on stderr and an exit code
    (1 failure, 2 invalid input), the same under the console script and under CliRunner.
    Every sub-command also accepts the root's `--json`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        option = _json_option()
        for command in self.commands.values():
            _with_json_option(command, option)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except InvalidInput as exc:
            error(exc.message, exc.hint)
            raise typer.Exit(EXIT_USAGE) from None
        except ModeldeckError as exc:
            error(exc.message, exc.hint)
            raise typer.Exit(EXIT_FAILURE) from None
        except ValidationError as exc:
            for err in exc.errors():
                message = err["msg"].removeprefix("Value error, ")
                field = ".".join(str(p) for p in err["loc"])  # none: about the whole input
                error(f"{field}: {message}" if field else message)
            raise typer.Exit(EXIT_USAGE) from None
        except OperationalError as exc:
            # Never print the URL: it may hold a password.
            error(
                f"cannot use the database: {str(exc.orig).strip().splitlines()[0]}",
                "check database_url / MODELDECK_DATABASE_URL and that the server is up",
            )
            raise typer.Exit(EXIT_FAILURE) from None
        except DBAPIError as exc:
            # Anything else the driver refuses (permissions, a broken file): one line, no URL.
            error(f"database error: {str(exc.orig).strip().splitlines()[0]}")
            raise typer.Exit(EXIT_FAILURE) from None


@dataclass
class CliContext:
    config_path: str | None = None
    json_output: bool = False
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings

    @cached_property
    def engine(self) -> Engine:
        engine = db.make_engine(self.settings.database_url)
        self._ensure_schema(engine)
        return engine

    def _ensure_schema(self, engine: Engine) -> None:
        if db.is_sqlite(engine):
            # A local SQLite file is this user's own: keep it at the current schema.
            db.upgrade(engine)
        elif db.current_revision(engine) is None:
            raise ConfigError(
                "the database has no modeldeck schema yet",
                hint="run `modeldeck db upgrade` once (see docs/operations.md)",
            )
        with Session(engine) as session:
            environments.sync(session, self.settings)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with db.session_scope(self.engine) as session:
            yield session

    @property
    def actor(self) -> Actor:
        """The local operator. Whoever can open the database is its admin (like a kubeconfig
        with cluster-admin); MODELDECK_USER names them for the audit and the two-person rule."""
        name = os.environ.get("MODELDECK_USER") or getpass.getuser()
        return Actor(name=f"cli:{name}", role=Role.admin, via="cli")


def get(ctx: typer.Context) -> CliContext:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliContext)
    return obj
