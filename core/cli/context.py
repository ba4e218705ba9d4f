"""What every command needs: settings, database, the acting user, output mode."""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import typer
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
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


class CliGroup(TyperGroup):
    """The root command group: the core's errors become a red line on stderr and an exit code
    (1 failure, 2 invalid input), the same under the console script and under CliRunner."""

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
                field = ".".join(str(p) for p in err["loc"]) or "value"
                error(f"{field}: {err['msg'].removeprefix('Value error, ')}")
            raise typer.Exit(EXIT_USAGE) from None
        except OperationalError as exc:
            # Never print the URL: it may hold a password.
            error(
                f"cannot use the database: {str(exc.orig).strip().splitlines()[0]}",
                "check database_url / MODELDECK_DATABASE_URL and that the server is up",
            )
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
