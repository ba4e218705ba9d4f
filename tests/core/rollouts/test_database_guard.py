"""The one-rollout-per-(model, environment) rule lives in the database, not only in Python."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from modeldeck.core.auth.models import Actor
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.rollouts.models import Deployment
from tests.core.rollouts.world import register


def _row(state: str, version_id: int) -> Deployment:
    return Deployment(
        model_id=1,
        environment_id=1,
        version_id=version_id,
        state=state,
        requested_by="x",
        requested_via="cli",
    )


def test_the_database_refuses_a_second_rollout_in_flight_and_a_second_active(
    any_engine: Engine, settings: Settings, admin: Actor
) -> None:
    """Even code that bypasses the service cannot break the rule (partial unique indexes)."""
    with Session(any_engine) as s:
        environments.sync(s, settings)
        register(s, admin)
        for first, second in (("pending", "rolling_out"), ("active", "active")):
            s.add(_row(first, 1))
            s.commit()
            s.add(_row(second, 2))
            with pytest.raises(IntegrityError):
                s.commit()
            s.rollback()
        for state in ("failed", "superseded", "rejected", "failed"):
            s.add(_row(state, 3))  # finished rows are not limited
        s.commit()
