from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core.auth.models import Actor
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import ModelCreate, ModelVersionCreate


def test_register_on_both_databases(any_engine: Engine, settings: Settings, admin: Actor) -> None:
    with Session(any_engine) as session:
        environments.sync(session, settings)
        registry.register_version(
            session,
            model_name="fraud",
            actor=admin,
            data=ModelVersionCreate(version="1.0.0", image="img:1.0.0"),
            create_model_if_missing=ModelCreate(name="fraud"),
        )
        assert registry.list_versions(session, "fraud").count == 1
