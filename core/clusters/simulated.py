"""A cluster that lives in the database: for the demo, tests and trying modeldeck out.

It behaves like a Deployment: a rollout takes `rollout_seconds` (measured with the injected
clock, so a demo seeded with a past clock works), fails with probability `failure_rate`
(decided once per rollout from a seeded random, so reruns are reproducible), and keeps serving
the old version until the new one is ready. Writes join the caller's transaction.
"""

from __future__ import annotations

import random
from datetime import timedelta

from sqlmodel import Session, select

from modeldeck.core.clock import Clock, as_utc, utcnow
from modeldeck.core.clusters.backend import (
    Phase,
    Release,
    RolloutStatus,
    Running,
    Target,
    TargetMissing,
)
from modeldeck.core.clusters.models import SimulatedWorkload
from modeldeck.core.config import ClusterConfig

_FAILURES = (
    'container "model" exited with code 137 (OOMKilled) while loading the weights',
    "0/2 pods ready: CrashLoopBackOff (readiness probe failed: HTTP 503 on /v2/health/ready)",
    "0/2 pods scheduled: 0/8 nodes are available: insufficient nvidia.com/gpu",
)


class SimulatedBackend:
    """ClusterBackend over the `simulated_workload` table."""

    def __init__(self, cluster: ClusterConfig, *, session: Session, clock: Clock = utcnow):
        self.cluster = cluster
        self.session = session
        self.clock = clock

    def apply(self, target: Target, release: Release) -> Running | None:
        row = self._row(target)
        before = _current(row, self.clock) if row else None
        now = self.clock()
        if row is None:
            row = SimulatedWorkload(
                cluster=target.cluster,
                namespace=target.namespace,
                name=target.name,
                model=target.model,
            )
        elif before is not None:
            row.version, row.image = before.version, before.image
            row.artifact_uri, row.deployment_id = before.artifact_uri, before.deployment_id
        seed = f"{target.cluster}/{target.namespace}/{target.name}/{release.deployment_id}"
        row.fails = random.Random(seed).random() < self.cluster.failure_rate
        row.failure_reason = random.Random(seed).choice(_FAILURES) if row.fails else ""
        row.desired_version = release.version
        row.desired_image = release.image or None
        row.desired_artifact_uri = release.artifact_uri or None
        row.desired_deployment_id = release.deployment_id
        row.applied_at = now
        row.ready_at = now + timedelta(seconds=self.cluster.rollout_seconds)
        row.edited_by_hand = False
        row.updated_at = now
        self.session.add(row)
        self.session.flush()
        return before

    def rollout_status(self, target: Target, release: Release) -> RolloutStatus:
        row = self._row(target)
        if row is None:
            raise TargetMissing(
                f"{target.describe('workload')} not found (deleted by hand?)",
                hint="modeldeck changes existing objects and never creates them",
            )
        if row.desired_deployment_id != release.deployment_id:
            return RolloutStatus(
                Phase.failed,
                f"{target.describe('workload')} was changed by someone else during the rollout "
                f"(now wants {row.desired_version or row.version})",
            )
        assert row.ready_at is not None
        remaining = (as_utc(row.ready_at) - self.clock()).total_seconds()
        if remaining > 0:
            return RolloutStatus(
                Phase.progressing,
                f"waiting for {row.desired_version} to become ready (about {remaining:.0f}s left)",
            )
        if row.fails:
            return RolloutStatus(
                Phase.failed, f"rollout of {row.desired_version} failed: {row.failure_reason}"
            )
        return RolloutStatus(Phase.available, f"{row.desired_version} is available")

    def running(self, target: Target) -> Running | None:
        row = self._row(target)
        return _current(row, self.clock) if row else None

    def _row(self, target: Target) -> SimulatedWorkload | None:
        return self.session.exec(
            select(SimulatedWorkload).where(
                SimulatedWorkload.cluster == target.cluster,
                SimulatedWorkload.namespace == target.namespace,
                SimulatedWorkload.name == target.name,
            )
        ).first()


def _current(row: SimulatedWorkload, clock: Clock) -> Running | None:
    """What serves now: the desired version once it is ready (and did not fail)."""
    done = (
        row.desired_deployment_id is not None
        and row.ready_at is not None
        and as_utc(row.ready_at) <= clock()
        and not row.fails
    )
    if done:
        return Running(
            version=row.desired_version,
            image=row.desired_image,
            artifact_uri=row.desired_artifact_uri,
            deployment_id=row.desired_deployment_id,
        )
    if row.version is None:
        return None
    return Running(
        version=row.version,
        image=row.image,
        artifact_uri=row.artifact_uri,
        deployment_id=row.deployment_id,
    )


def edit_by_hand(
    session: Session,
    *,
    cluster: str,
    namespace: str,
    name: str,
    version: str | None = None,
    image: str | None = None,
    clock: Clock = utcnow,
) -> None:
    """Change a simulated workload behind modeldeck's back (what `kubectl set image` does).

    For the demo and tests of reconcile; commits like a separate actor would.
    """
    row = session.exec(
        select(SimulatedWorkload).where(
            SimulatedWorkload.cluster == cluster,
            SimulatedWorkload.namespace == namespace,
            SimulatedWorkload.name == name,
        )
    ).one()
    now_running = _current(row, clock)
    row.version = version if version is not None else (now_running.version if now_running else None)
    row.image = image if image is not None else (now_running.image if now_running else None)
    row.deployment_id = None
    row.desired_version = row.desired_image = row.desired_artifact_uri = None
    row.desired_deployment_id = None
    row.edited_by_hand = True
    row.updated_at = clock()
    session.add(row)
    session.commit()


def delete_by_hand(session: Session, *, cluster: str, namespace: str, name: str) -> None:
    """Delete a simulated workload (what `kubectl delete deployment` does)."""
    row = session.exec(
        select(SimulatedWorkload).where(
            SimulatedWorkload.cluster == cluster,
            SimulatedWorkload.namespace == namespace,
            SimulatedWorkload.name == name,
        )
    ).one()
    session.delete(row)
    session.commit()
