"""Cluster-side tables: the simulated cluster's workloads, and drift findings of reconcile."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel
from sqlalchemy import Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from modeldeck.core.fields import enum_column, timestamp


class SimulatedWorkload(SQLModel, table=True):
    """One serving object on a simulated cluster (what a Deployment is on Kubernetes).

    `version`… is what serves now; `desired_*` is a rollout in progress that takes over at
    `ready_at` unless `fails`.
    """

    __tablename__ = "simulated_workload"
    __table_args__ = (
        UniqueConstraint("cluster", "namespace", "name", name="uq_simulated_workload"),
    )

    id: int | None = Field(default=None, primary_key=True)
    cluster: str = Field(max_length=64)
    namespace: str = Field(max_length=253)
    name: str = Field(max_length=253)
    model: str = Field(max_length=64)
    version: str | None = Field(default=None, max_length=64)
    image: str | None = Field(default=None, max_length=500)
    artifact_uri: str | None = Field(default=None, max_length=1000)
    deployment_id: int | None = None
    desired_version: str | None = Field(default=None, max_length=64)
    desired_image: str | None = Field(default=None, max_length=500)
    desired_artifact_uri: str | None = Field(default=None, max_length=1000)
    desired_deployment_id: int | None = None
    applied_at: datetime | None = timestamp()
    ready_at: datetime | None = timestamp()
    fails: bool = False
    failure_reason: str = Field(default="", max_length=1000)
    edited_by_hand: bool = False
    updated_at: datetime = timestamp(default_now=True)


class DriftKind(StrEnum):
    """How the cluster differs from what modeldeck recorded."""

    missing = "missing"  # the object was deleted
    version = "version"  # another version serves
    artifact = "artifact"  # same version, another image or storageUri (kubectl set image)
    unreachable = "unreachable"  # could not look (not stored: not drift, but worth an alert)


_OPEN_SQL = "resolved_at IS NULL"


class ClusterDrift(SQLModel, table=True):
    """A difference between the cluster and the deployment history, found by reconcile.

    One open row per (model, environment, kind); seen again it counts up, gone it resolves.
    modeldeck never repairs it by itself: a person decides (promote or rollback).
    """

    __tablename__ = "cluster_drift"
    __table_args__ = (
        Index(
            "uq_cluster_drift_open",
            "model_id",
            "environment_id",
            "kind",
            unique=True,
            postgresql_where=text(_OPEN_SQL),
            sqlite_where=text(_OPEN_SQL),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id", index=True)
    environment_id: int = Field(foreign_key="environment.id", index=True)
    deployment_id: int | None = Field(default=None, foreign_key="deployment.id")
    kind: DriftKind = enum_column(DriftKind)
    expected: str = Field(default="", max_length=1000)
    observed: str = Field(default="", max_length=1000)
    message: str = Field(default="", max_length=2000)
    first_seen: datetime = timestamp(default_now=True)
    last_seen: datetime = timestamp(default_now=True)
    resolved_at: datetime | None = timestamp()
    count: int = 1


class DriftFinding(BaseModel):
    """What reconcile reports: alert-worthy, with a stable fingerprint for deduplication."""

    model: str
    environment: str
    cluster: str
    kind: DriftKind
    expected: str
    observed: str
    message: str
    deployment_id: int | None
    fingerprint: str
    new: bool
    first_seen: datetime | None = None
