"""Reconcile: compare what each cluster runs with what modeldeck recorded, and say so.

A difference means someone changed the cluster by hand (kubectl edit/set image/delete). It is
recorded as an open `ClusterDrift` finding (one per model, environment and kind, counted while
it lasts, resolved when it goes away) with an audit event, and returned so the alerting code
can raise it. Nothing is re-applied: overwriting a hand fix silently could undo an emergency
change; a person decides with promote or rollback.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlmodel import Session, col, select

from modeldeck.core.audit import service as audit
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.clock import Clock, as_utc, utcnow
from modeldeck.core.clusters import connect
from modeldeck.core.clusters.backend import ClusterBackend, ClusterUnreachable, Running
from modeldeck.core.clusters.models import ClusterDrift, DriftFinding, DriftKind
from modeldeck.core.config import Settings
from modeldeck.core.errors import ModeldeckError
from modeldeck.core.rollouts import transitions
from modeldeck.core.rollouts.models import ROLLING_OUT, Deployment, DeploymentState

RECONCILER = Actor(name="modeldeck-reconciler", role=Role.admin, via="auto")
Difference = tuple[DriftKind, str, str, str]  # kind, expected, observed, message


def reconcile(session: Session, *, settings: Settings, clock: Clock = utcnow) -> list[DriftFinding]:
    """Check every active deployment against its cluster; record and return the differences.

    Pairs with a rollout being sent or rolling out are skipped (their cluster is meant to be
    changing); a request awaiting approval has not touched the cluster, so it is checked. An
    unreachable cluster is reported as an `unreachable` finding and leaves open findings as
    they are: not being able to look is not the same as the drift being gone. A cluster that
    did not answer (or whose backend cannot be built) is asked once per run: its other pairs
    are reported unreachable without a call, so a black-holed API server costs one series of
    connect timeouts, not one per deployment.
    """
    busy = {
        (d.model_id, d.environment_id)
        for d in session.exec(
            select(Deployment).where(col(Deployment.state).in_(ROLLING_OUT))
        ).all()
    }
    rows = session.exec(
        select(Deployment).where(Deployment.state == DeploymentState.active).order_by(Deployment.id)
    ).all()
    backends: dict[str, ClusterBackend] = {}
    down: dict[str, str] = {}  # cluster → why it did not answer in this run
    findings: list[DriftFinding] = []
    for row in rows:
        if (row.model_id, row.environment_id) in busy:
            continue
        ctx = transitions.load(session, row)
        if not ctx.env.active:
            continue
        cluster = ctx.env.cluster
        if cluster in down:
            findings.append(_unreachable(ctx, f"not read, {down[cluster]}"))
            continue
        try:
            running = _running(session, settings, clock, backends, ctx)
        except ModeldeckError as exc:
            if isinstance(exc, ClusterUnreachable) or cluster not in backends:
                down[cluster] = f"cluster {cluster} did not answer earlier in this run: {exc}"
            findings.append(_unreachable(ctx, str(exc)))
            continue
        differences = compare(ctx, running)
        findings.extend(_record(session, ctx, differences, clock))
    session.commit()
    return findings


def _running(
    session: Session,
    settings: Settings,
    clock: Clock,
    backends: dict[str, ClusterBackend],
    ctx: transitions.Context,
) -> Running | None:
    """What the pair's object runs; an unexpected error (an object a backend cannot parse) is
    logged and becomes BackendUnavailable, so one odd object does not stop the whole run."""
    cluster = ctx.env.cluster
    try:
        if cluster not in backends:
            backends[cluster] = connect.backend_for(settings, cluster, session=session, clock=clock)
        return backends[cluster].running(connect.target_of(ctx.env, ctx.model.name))
    except ModeldeckError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported as the pair's finding, with a traceback
        # No rollback: the findings of the pairs before this one are not committed yet.
        raise transitions.unexpected(exc, "reconcile", ctx.deployment) from exc


def _unreachable(ctx: transitions.Context, message: str) -> DriftFinding:
    difference = (DriftKind.unreachable, ctx.version.version, "", message)
    return _finding(ctx, difference, new=False, first_seen=None)


def compare(ctx: transitions.Context, running: Running | None) -> list[Difference]:
    """How the running object differs from the active deployment's version."""
    expected = ctx.version
    where = f"{ctx.model.name} in {ctx.env.name}"
    if running is None:
        return [
            (
                DriftKind.missing,
                expected.version,
                "",
                f"{where}: the serving object {ctx.env.target_name(ctx.model.name)!r} is gone "
                f"from cluster {ctx.env.cluster} (deleted by hand?)",
            )
        ]
    if running.version != expected.version:
        return [
            (
                DriftKind.version,
                expected.version,
                running.version or "unknown",
                f"{where}: cluster {ctx.env.cluster} runs {running.version or 'an unknown version'}"
                f", modeldeck recorded {expected.version} (changed outside modeldeck)",
            )
        ]
    if expected.image and running.image and running.image != expected.image:
        return [
            (
                DriftKind.artifact,
                expected.image,
                running.image,
                f"{where}: {expected.version} runs image {running.image}, registered as "
                f"{expected.image} (changed outside modeldeck)",
            )
        ]
    if (
        expected.artifact_uri
        and running.artifact_uri
        and running.artifact_uri != expected.artifact_uri
    ):
        return [
            (
                DriftKind.artifact,
                expected.artifact_uri,
                running.artifact_uri,
                f"{where}: {expected.version} loads {running.artifact_uri}, registered as "
                f"{expected.artifact_uri} (changed outside modeldeck)",
            )
        ]
    return []


def _record(
    session: Session, ctx: transitions.Context, differences: list[Difference], clock: Clock
) -> list[DriftFinding]:
    """Open or count findings for the differences seen; resolve the ones no longer seen."""
    now = clock()
    model_id, env_id = ctx.model.id, ctx.env.id
    assert model_id is not None and env_id is not None
    open_rows = {
        r.kind: r
        for r in session.exec(
            select(ClusterDrift).where(
                ClusterDrift.model_id == model_id,
                ClusterDrift.environment_id == env_id,
                col(ClusterDrift.resolved_at).is_(None),
            )
        ).all()
    }
    out = []
    for kind, expected, observed, message in differences:
        row = open_rows.pop(kind, None)
        new = row is None
        if row is None:
            row = ClusterDrift(
                model_id=model_id,
                environment_id=env_id,
                deployment_id=ctx.deployment.id,
                kind=kind,
                first_seen=now,
            )
        else:
            row.count += 1
        row.expected, row.observed, row.message, row.last_seen = expected, observed, message, now
        session.add(row)
        if new:
            audit.record(
                session,
                actor=RECONCILER,
                action="cluster.drift",
                target=ctx.target_name,
                clock=clock,
                after={
                    "kind": kind,
                    "expected": expected,
                    "observed": observed,
                    "message": message,
                },
            )
        out.append(
            _finding(
                ctx, (kind, expected, observed, message), new=new, first_seen=as_utc(row.first_seen)
            )
        )
    for row in open_rows.values():
        row.resolved_at = now
        session.add(row)
        audit.record(
            session,
            actor=RECONCILER,
            action="cluster.drift_resolved",
            target=ctx.target_name,
            clock=clock,
            before={"kind": row.kind, "observed": row.observed},
        )
    return out


def _finding(
    ctx: transitions.Context, difference: Difference, *, new: bool, first_seen: datetime | None
) -> DriftFinding:
    kind, expected, observed, message = difference
    key = f"cluster-drift|{ctx.model.name}|{ctx.env.name}|{kind}"
    return DriftFinding(
        model=ctx.model.name,
        environment=ctx.env.name,
        cluster=ctx.env.cluster,
        kind=kind,
        expected=expected,
        observed=observed,
        message=message,
        deployment_id=ctx.deployment.id,
        new=new,
        fingerprint=hashlib.sha256(key.encode()).hexdigest()[:32],
        first_seen=first_seen,
    )
