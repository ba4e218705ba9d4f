"""Cross-domain flows: failing checks → alert → automatic rollback; reconcile → alerts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import Alert, AlertStatus
from modeldeck.core.auth.models import Actor
from modeldeck.core.clock import FixedClock
from modeldeck.core.clusters import simulated
from modeldeck.core.config import CheckConfig, Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.monitoring import flows
from modeldeck.core.monitoring import service as monitoring
from modeldeck.core.monitoring.models import CheckKind, CheckStatus
from modeldeck.core.notify import service as notify
from modeldeck.core.rollouts import queries
from modeldeck.core.rollouts.models import Deployment, DeploymentKind, DeploymentState
from tests.conftest import make_settings
from tests.core.alerts.world import check_result, drift_details
from tests.core.monitoring import conftest as monitored
from tests.core.monitoring import synth
from tests.core.rollouts.world import live, live_everywhere, register
from tests.utils.fake_slack import FakeSlack


def _trust(settings: Settings, trust: str) -> Settings:
    return settings.model_copy(update={"model_checks": {"fraud": CheckConfig(trust=trust)}})


def _active(session: Session, environment: str = "production") -> Deployment:
    row = queries.status(session, model="fraud")
    dep_id = {r.environment: r.deployment_id for r in row}[environment]
    assert dep_id is not None
    found = session.get(Deployment, dep_id)
    assert found is not None
    return found


def _two_releases(
    session: Session,
    settings: Settings,
    clock: FixedClock,
    admin: Actor,
    deployer: Actor,
    approver: Actor,
) -> Deployment:
    register(session, admin, versions=("1.0.0", "1.1.0"))
    live_everywhere(session, settings, clock, deployer, approver, "1.0.0")
    live_everywhere(session, settings, clock, deployer, approver, "1.1.0")
    return _active(session)


def test_failed_check_at_trust_rollback_rolls_back_once(
    session: Session,
    settings: Settings,
    clock: FixedClock,
    admin: Actor,
    deployer: Actor,
    approver: Actor,
) -> None:
    cfg = _trust(settings, "rollback")
    bad = _two_releases(session, cfg, clock, admin, deployer, approver)
    result = check_result(
        session,
        bad,
        CheckKind.quality,
        CheckStatus.fail,
        end=clock(),
        details={"problems": ["country: 38% missing"]},
    )
    [alert] = flows.alert_on_results(session, settings=cfg, results=[result], clock=clock)

    assert alert.pauses_promotions
    now = _active(session)
    assert now.id != bad.id and now.kind == DeploymentKind.rollback
    assert now.requested_by == "modeldeck-auto-rollback"
    assert f"quality check #{result.id} failed over" in now.reason
    public = queries.to_public(session, [now])[0]
    assert public.version == "1.0.0" and public.state == DeploymentState.active

    # The same failure reported again (a late result of the old deployment): no second one.
    again = check_result(
        session,
        bad,
        CheckKind.drift,
        CheckStatus.fail,
        end=clock(),
        score=0.9,
        details=drift_details(0.9, {"amount": 0.4}),
    )
    flows.alert_on_results(session, settings=cfg, results=[again], clock=clock)
    rollbacks = session.exec(
        select(Deployment).where(Deployment.kind == DeploymentKind.rollback)
    ).all()
    assert len(rollbacks) == 1

    # The next check of the version that runs now clears the old version's alerts.
    clock.advance(minutes=15)
    ok = check_result(session, now, CheckKind.quality, CheckStatus.ok, end=clock())
    flows.alert_on_results(session, settings=cfg, results=[ok], clock=clock)
    assert (
        alerts.promotions_paused(session, model_id=now.model_id, environment_id=now.environment_id)
        is None
    )


def test_no_rollback_below_trust_rollback_or_where_the_environment_forbids_it(
    session: Session,
    settings: Settings,
    clock: FixedClock,
    admin: Actor,
    deployer: Actor,
    approver: Actor,
) -> None:
    bad = _two_releases(session, settings, clock, admin, deployer, approver)
    for trust in ("shadow", "notify", "pause"):
        result = check_result(session, bad, CheckKind.quality, CheckStatus.fail, end=clock())
        flows.alert_on_results(
            session, settings=_trust(settings, trust), results=[result], clock=clock
        )
        assert _active(session).id == bad.id
    staging = _active(session, "staging")  # auto_rollback is off in staging
    result = check_result(session, staging, CheckKind.quality, CheckStatus.fail, end=clock())
    flows.alert_on_results(
        session, settings=_trust(settings, "rollback"), results=[result], clock=clock
    )
    assert _active(session, "staging").id == staging.id
    assert (
        session.exec(select(Deployment).where(Deployment.kind == DeploymentKind.rollback)).first()
        is None
    )


def test_real_checks_on_stored_predictions_alert_and_reach_slack(
    engine: Engine, tmp_path: Path, clock: FixedClock, admin: Actor
) -> None:
    """Predictions in the Parquet store → run_checks (evidently) → alerts → outbox → Slack."""
    with FakeSlack() as slack, Session(engine, expire_on_commit=False) as session:
        settings = make_settings(
            tmp_path,
            checks={"min_rows": 30},
            slack={"bot_token": slack.token, "api_url": slack.url, "alert_channel": "C0ALERTS"},
        )
        environments.sync(session, settings)
        monitored.register(session, admin, metrics={"accuracy": 0.8, "auc": 0.85})
        monitoring.set_reference(
            session,
            settings=settings,
            model="fraud",
            version="1.0.0",
            frame=synth.reference(),
            actor=admin,
            clock=clock,
        )
        dep_id = monitored.deploy(session, model="fraud", version="1.0.0", environment="production")
        batch = synth.predictions(
            3000,
            7,
            clock() - timedelta(minutes=60),
            shift={"age": 1.0, "score_b": 0.8},
            swap={"channel"},
        )
        batch.loc[batch.index[:900], "country"] = None  # 30% missing (reference: 0%)
        monitoring.ingest_predictions(
            session,
            settings=settings,
            model="fraud",
            version="1.0.0",
            environment="production",
            frame=batch,
            actor=admin,
            clock=clock,
        )

        results = flows.check_and_alert(
            session, settings=settings, deployment_id=dep_id, clock=clock
        )
        statuses = {r.kind: r.status for r in results}
        assert statuses[CheckKind.drift] == CheckStatus.fail
        assert statuses[CheckKind.quality] == CheckStatus.fail
        firing = {a.rule: a for a in alerts.list_alerts(session, status=AlertStatus.firing)}
        # Older ages raise the estimated error rate too: CBPE-style decay, calibrated reference.
        assert set(firing) == {"drift", "quality", "performance_drop"}
        assert "accuracy (estimated)" in firing["performance_drop"].summary
        drift = firing["drift"]
        assert drift.details["value"] == 0.5 and drift.details["threshold"] == 0.5
        top = {t.split(" ")[0] for t in drift.details["top_features"]}
        assert top == {"age", "score_b", "channel"}
        assert any("country" in p for p in firing["quality"].details["problems"])

        assert notify.drain(session, settings=settings, clock=clock).sent == 3
        texts = [c.args["text"] for c in slack.calls_to("chat.postMessage", ok_only=True)]
        assert any(t.startswith("[firing] warning: drift on fraud (production)") for t in texts)


def test_cluster_changed_by_hand_raises_an_alert_until_it_is_fixed(
    session: Session,
    settings: Settings,
    clock: FixedClock,
    admin: Actor,
    deployer: Actor,
    approver: Actor,
) -> None:
    register(session, admin, versions=("1.0.0",))
    live(session, settings, clock, deployer, approver, "1.0.0", "staging")
    simulated.edit_by_hand(
        session,
        cluster="gpu-l4",
        namespace="ml-staging",
        name="fraud",
        version="1.0.0-hotfix",
        clock=clock,
    )
    flows.reconcile_and_alert(session, settings=settings, clock=clock)
    clock.advance(minutes=1)
    flows.reconcile_and_alert(session, settings=settings, clock=clock)
    [alert] = session.exec(select(Alert)).all()
    assert (alert.rule, alert.key, alert.count, alert.status) == (
        flows.CLUSTER_DRIFT,
        "version",
        2,
        AlertStatus.firing,
    )
    assert "runs 1.0.0-hotfix, modeldeck recorded 1.0.0" in alert.summary

    simulated.edit_by_hand(
        session,
        cluster="gpu-l4",
        namespace="ml-staging",
        name="fraud",
        version="1.0.0",
        clock=clock,
    )
    flows.reconcile_and_alert(session, settings=settings, clock=clock)
    session.expire_all()
    assert session.exec(select(Alert.status).where(col(Alert.id) == alert.id)).one() == (
        AlertStatus.resolved
    )
