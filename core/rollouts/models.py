"""Deployment history and approvals.

Every row of `deployment` is one request to run a version somewhere; rows are never deleted,
so "what ran in ENV at time T" is a query and any past state can be restored.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel
from pydantic import Field as Spec
from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from modeldeck.core.fields import enum_column, timestamp
from modeldeck.core.naming import Slug, VersionStr


class DeploymentState(StrEnum):
    pending = "pending"
    awaiting_approval = "awaiting_approval"
    rolling_out = "rolling_out"
    active = "active"
    failed = "failed"
    rolled_back = "rolled_back"
    superseded = "superseded"
    rejected = "rejected"


IN_FLIGHT = (
    DeploymentState.pending,
    DeploymentState.awaiting_approval,
    DeploymentState.rolling_out,
)
# Rollouts the cluster is (or is about to be) changing for: what reconcile leaves alone and
# what an emergency rollback waits for. A request awaiting approval has not touched the cluster.
ROLLING_OUT = (DeploymentState.pending, DeploymentState.rolling_out)
FINISHED = (
    DeploymentState.failed,
    DeploymentState.rolled_back,
    DeploymentState.superseded,
    DeploymentState.rejected,
)


class Via(StrEnum):
    slack = "slack"
    api = "api"
    cli = "cli"
    dashboard = "dashboard"
    auto = "auto"


class DeploymentKind(StrEnum):
    promote = "promote"
    rollback = "rollback"


_IN_FLIGHT_SQL = "state IN ('pending', 'awaiting_approval', 'rolling_out')"
_ACTIVE_SQL = "state = 'active'"


class Deployment(SQLModel, table=True):
    __table_args__ = (
        # The database, not Python, guarantees one rollout in flight and one active version
        # per (model, environment).
        Index(
            "uq_deployment_in_flight",
            "model_id",
            "environment_id",
            unique=True,
            postgresql_where=text(_IN_FLIGHT_SQL),
            sqlite_where=text(_IN_FLIGHT_SQL),
        ),
        Index(
            "uq_deployment_active",
            "model_id",
            "environment_id",
            unique=True,
            postgresql_where=text(_ACTIVE_SQL),
            sqlite_where=text(_ACTIVE_SQL),
        ),
        Index("ix_deployment_env_started", "environment_id", "model_id", "started_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id", index=True)
    environment_id: int = Field(foreign_key="environment.id", index=True)
    version_id: int = Field(foreign_key="model_version.id", index=True)
    previous_deployment_id: int | None = Field(default=None, foreign_key="deployment.id")
    kind: DeploymentKind = enum_column(DeploymentKind, DeploymentKind.promote)
    state: DeploymentState = enum_column(DeploymentState, DeploymentState.pending, index=True)
    reason: str = Field(default="", max_length=2000)
    requested_by: str = Field(max_length=200)
    requested_via: Via = enum_column(Via, Via.api)
    idempotency_key: str | None = Field(default=None, unique=True, max_length=200)
    started_at: datetime = timestamp(default_now=True)
    # became `pending` (on request, or on the last approval): the relaunch grace runs from here
    pending_since: datetime | None = timestamp()
    applied_at: datetime | None = timestamp()  # sent to the cluster; rollout timeout runs from here
    activated_at: datetime | None = timestamp()
    finished_at: datetime | None = timestamp()
    message: str = Field(default="", max_length=4000)
    slack_channel: str | None = Field(default=None, max_length=64)
    slack_ts: str | None = Field(default=None, max_length=64)


class DeploymentPublic(BaseModel):
    id: int
    model: str
    environment: str
    version: str
    kind: DeploymentKind
    state: DeploymentState
    previous_deployment_id: int | None
    reason: str
    requested_by: str
    requested_via: Via
    started_at: datetime
    activated_at: datetime | None
    finished_at: datetime | None
    message: str
    approvals: list[ApprovalPublic] = []
    applied_at: datetime | None = None
    approvals_required: int = 0


class DeploymentsPublic(BaseModel):
    data: list[DeploymentPublic]
    count: int


class Decision(StrEnum):
    approve = "approve"
    reject = "reject"


class Approval(SQLModel, table=True):
    __table_args__ = (Index("uq_approval_once", "deployment_id", "approver", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    deployment_id: int = Field(foreign_key="deployment.id", index=True)
    approver: str = Field(max_length=200)
    decision: Decision = enum_column(Decision)
    comment: str = Field(default="", max_length=2000)
    at: datetime = timestamp(default_now=True)


class ApprovalPublic(BaseModel):
    approver: str
    decision: Decision
    comment: str
    at: datetime


DeploymentPublic.model_rebuild()


class PromoteRequest(BaseModel):
    """POST /deployments: run `version` of `model` in `environment` (name or alias)."""

    model: Slug
    version: VersionStr
    environment: str = Spec(min_length=1, max_length=64)
    reason: str = Spec(default="", max_length=2000)
    idempotency_key: str | None = Spec(default=None, min_length=1, max_length=200)


class RollbackRequest(BaseModel):
    """POST /rollbacks: go back to the previous version, or to `to_version` from the history."""

    model: Slug
    environment: str = Spec(min_length=1, max_length=64)
    to_version: VersionStr | None = None
    reason: str = Spec(default="", max_length=2000)
    idempotency_key: str | None = Spec(default=None, min_length=1, max_length=200)
    expected_current_id: int | None = Spec(
        default=None,
        gt=0,
        description="refuse (409) unless this deployment is still the active one",
    )


class RollbackPlan(BaseModel):
    """What a rollback would do now: shown before a person confirms it."""

    model: str
    environment: str
    current_deployment_id: int
    from_version: str
    to_version: str
    approvals_required: int  # 0 for the emergency rollback to the previous good version
    supersedes: int | None = None  # the request awaiting approval it would reject


class ApprovalRequest(BaseModel):
    """POST /approvals: approve or reject a rollout awaiting approval."""

    deployment_id: int = Spec(gt=0)
    decision: Decision = Decision.approve
    comment: str = Spec(default="", max_length=2000)
