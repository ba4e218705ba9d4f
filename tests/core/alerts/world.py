"""A small world for alert, notify and scheduler tests: models, versions, live deployments.

Deployment rows are written directly (the rollouts service is not what these tests are
about); everything else goes through the real services.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from modeldeck.core.alerts.models import Alert
from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.environments.models import Environment
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.notify.models import OutboxMessage
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import Model, ModelCreate, ModelVersion, ModelVersionCreate
from modeldeck.core.rollouts.models import Deployment, DeploymentState

SEEDER = Actor(name="seeder", role=Role.admin, via="cli")


def live_deployment(
    session: Session,
    *,
    model: str = "fraud",
    version: str = "1.0.0",
    environment: str = "production",
    at: datetime | None = None,
    state: DeploymentState = DeploymentState.active,
) -> Deployment:
    """Register model/version if needed and make it the active deployment in `environment`."""
    if session.exec(select(Model).where(Model.name == model)).first() is None:
        registry.create_model(session, data=ModelCreate(name=model), actor=SEEDER)
    found = registry.get_model(session, model)
    row = session.exec(
        select(ModelVersion).where(
            ModelVersion.model_id == found.id, ModelVersion.version == version
        )
    ).first()
    if row is None:
        registry.register_version(
            session,
            model_name=model,
            actor=SEEDER,
            data=ModelVersionCreate(
                version=version, image=f"registry.example.org/{model}:{version}"
            ),
        )
        row = registry.get_version(session, found, version)
    env = session.exec(select(Environment).where(Environment.name == environment)).one()
    for previous in session.exec(
        select(Deployment).where(
            Deployment.model_id == found.id,
            Deployment.environment_id == env.id,
            Deployment.state == DeploymentState.active,
        )
    ).all():
        previous.state = DeploymentState.superseded
        session.add(previous)
    session.flush()
    assert found.id is not None and env.id is not None and row.id is not None
    times: dict[str, Any] = {"started_at": at, "activated_at": at} if at else {}
    dep = Deployment(
        model_id=found.id,
        environment_id=env.id,
        version_id=row.id,
        state=state,
        requested_by="seeder",
        **times,
    )
    session.add(dep)
    session.commit()
    return dep


def check_result(
    session: Session,
    deployment: Deployment,
    kind: CheckKind,
    status: CheckStatus,
    *,
    end: datetime,
    score: float | None = None,
    details: dict[str, Any] | None = None,
    rows: int = 500,
    window: timedelta = timedelta(hours=1),
) -> CheckResult:
    """Store a check result as the monitoring checks would."""
    assert deployment.id is not None
    result = CheckResult(
        deployment_id=deployment.id,
        kind=kind,
        window_start=end - window,
        window_end=end,
        status=status,
        score=score,
        details=details or {},
        rows=rows if status != CheckStatus.no_data else 0,
    )
    session.add(result)
    session.commit()
    return result


def drift_details(share: float, drifted: dict[str, float], clean: int = 2) -> dict[str, Any]:
    """Per-column drift as the drift check reports it (psi scores, threshold 0.1)."""
    columns: dict[str, Any] = {
        name: {"score": score, "threshold": 0.1, "method": "psi", "drifted": True}
        for name, score in drifted.items()
    }
    for i in range(clean):
        columns[f"clean_{i}"] = {"score": 0.01, "threshold": 0.1, "method": "psi", "drifted": False}
    return {"share_drifted": share, "columns": columns}


def outbox(session: Session) -> list[OutboxMessage]:
    session.expire_all()
    return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())


def snapshot(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables alerting writes, to prove a refused request changed nothing."""
    session.expire_all()
    return {
        model.__name__: [r.model_dump() for r in session.exec(select(model)).all()]
        for model in (Alert, OutboxMessage, AuditEvent, CheckResult, Deployment)
    }
