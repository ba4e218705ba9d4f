"""What every command needs: settings, database, the acting user, output mode."""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

import typer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core import db
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.config import Settings, load_settings
from modeldeck.core.environments import service as environments
from modeldeck.core.errors import ConfigError


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
