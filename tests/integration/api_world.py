"""An API on a test database with one token per role (used by integration and e2e tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core.api.app import create_app
from modeldeck.core.auth import service as auth
from modeldeck.core.auth.models import SYSTEM, Role
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from tests.conftest import make_settings

SMALL_BODY_LIMIT = 64 * 1024


@dataclass
class ApiWorld:
    app: FastAPI
    engine: Engine
    clock: FixedClock
    settings: Settings
    tokens: dict[Role, str] = field(default_factory=dict)
    token_ids: dict[Role, int] = field(default_factory=dict)

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def build(engine: Engine, tmp_path: Path, clock: FixedClock, **overrides: Any) -> ApiWorld:
    """Environments synced, one token per role (created by the system, like the CLI would)."""
    settings = make_settings(tmp_path, api={"max_body_bytes": SMALL_BODY_LIMIT}, **overrides)
    world = ApiWorld(
        app=create_app(settings, engine=engine, clock=clock),
        engine=engine,
        clock=clock,
        settings=settings,
    )
    with Session(engine, expire_on_commit=False) as session:
        environments.sync(session, settings, clock=clock)
        for role in Role:
            created = auth.create_token(
                session, name=f"{role}-token", role=role, actor=SYSTEM, clock=clock
            )
            world.tokens[role] = created.token
            world.token_ids[role] = created.id
    return world
