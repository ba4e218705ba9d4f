from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session

from modeldeck.core.clock import FixedClock
from modeldeck.core.rollouts.models import Deployment
from tests.core.alerts.world import live_deployment


@pytest.fixture
def dep(session: Session, clock: FixedClock) -> Deployment:
    """fraud 1.0.0 live in production for two days."""
    return live_deployment(session, at=clock() - timedelta(days=2))
