"""Import every table so SQLModel.metadata is complete (alembic, tests, create_all).

A new table module must be imported here; tests/core/test_migrations.py fails otherwise.
"""

from __future__ import annotations

from sqlmodel import SQLModel

from modeldeck.core.alerts import models as alerts_models
from modeldeck.core.audit import models as audit_models
from modeldeck.core.auth import models as auth_models
from modeldeck.core.clusters import models as clusters_models
from modeldeck.core.environments import models as environments_models
from modeldeck.core.hardware import models as hardware_models
from modeldeck.core.monitoring import models as monitoring_models
from modeldeck.core.notify import models as notify_models
from modeldeck.core.registry import models as registry_models
from modeldeck.core.rollouts import models as rollouts_models

metadata = SQLModel.metadata

__all__ = [
    "alerts_models",
    "audit_models",
    "auth_models",
    "clusters_models",
    "environments_models",
    "hardware_models",
    "metadata",
    "monitoring_models",
    "notify_models",
    "registry_models",
    "rollouts_models",
]
