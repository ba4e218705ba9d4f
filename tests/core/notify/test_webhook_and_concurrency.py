"""Webhook delivery over real HTTP, and two drainers on PostgreSQL sending each message once."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core.alerts import service as alerts
from modeldeck.core.alerts.models import Severity
from modeldeck.core.clock import FixedClock, as_utc
from modeldeck.core.config import Settings
from modeldeck.core.environments import service as environments
from modeldeck.core.notify import service as notify
from modeldeck.core.notify.models import DrainReport, OutboxStatus
from modeldeck.core.rollouts.models import Deployment
from tests.conftest import make_settings
from tests.core.alerts.world import live_deployment, outbox
from tests.core.notify.conftest import Receiver
from tests.utils.fake_slack import FakeSlack


def _hook_settings(tmp_path: Path, slack: FakeSlack, receiver: Receiver) -> Settings:
    return make_settings(
        tmp_path,
        slack={"bot_token": slack.token, "api_url": slack.url, "alert_channel": "C0ALERTS"},
        notify={
            "backoff_seconds": 5,
            "webhooks": [
                {"name": "pager", "url": receiver.url, "headers": {"X-Api-Key": "s3cret"}}
            ],
        },
    )


def _fire(
    session: Session, settings: Settings, clock: FixedClock, dep: Deployment, rule: str = "quality"
) -> None:
    alerts.fire(
        session,
        settings=settings,
        rule=rule,
        severity=Severity.critical,
        summary="country 38% missing",
        details={"metric": "missing share"},
        model_id=dep.model_id,
        version_id=dep.version_id,
        environment_id=dep.environment_id,
        clock=clock,
    )


def test_webhook_gets_json_with_the_alert_and_an_idempotency_key(
    tmp_path: Path,
    session: Session,
    clock: FixedClock,
    dep: Deployment,
    slack: FakeSlack,
    receiver: Receiver,
) -> None:
    settings = _hook_settings(tmp_path, slack, receiver)
    _fire(session, settings, clock, dep)
    assert [m.channel for m in outbox(session)] == ["slack", "webhook:pager"]
    assert notify.drain(session, settings=settings, clock=clock) == DrainReport(sent=2)
    [request] = receiver.requests
    body, headers = request["body"], request["headers"]
    assert body["kind"] == "alert" and body["alert"]["rule"] == "quality"
    assert body["alert"]["model"] == "fraud" and body["alert"]["severity"] == "critical"
    assert body["text"].startswith("[firing] critical: quality on fraud")
    assert headers["Idempotency-Key"] == body["id"] == f"modeldeck-outbox-{outbox(session)[1].id}"
    assert headers["X-Api-Key"] == "s3cret"


def test_webhook_5xx_retries_4xx_dead_letters_429_waits(
    tmp_path: Path,
    session: Session,
    clock: FixedClock,
    dep: Deployment,
    slack: FakeSlack,
    receiver: Receiver,
) -> None:
    settings = _hook_settings(tmp_path, slack, receiver)
    _fire(session, settings, clock, dep)
    receiver.status = 503
    assert notify.drain(session, settings=settings, clock=clock) == DrainReport(sent=1, retried=1)
    hook = outbox(session)[1]
    assert hook.error == "webhook:pager answered HTTP 503" and hook.attempts == 1

    receiver.status, receiver.headers = 429, {"Retry-After": "120"}
    clock.advance(seconds=5)
    assert notify.drain(session, settings=settings, clock=clock) == DrainReport(retried=1)
    hook = outbox(session)[1]
    assert hook.attempts == 1 and as_utc(hook.next_attempt_at) == clock() + timedelta(seconds=120)

    receiver.status, receiver.headers = 400, {}
    clock.advance(seconds=120)
    assert notify.drain(session, settings=settings, clock=clock) == DrainReport(dead=1)
    hook = outbox(session)[1]
    assert hook.status == OutboxStatus.dead
    assert hook.error == "webhook:pager refused the message: HTTP 400"
    assert len(receiver.requests) == 3


def test_webhook_only_takes_its_kinds(
    tmp_path: Path,
    session: Session,
    clock: FixedClock,
    dep: Deployment,
    slack: FakeSlack,
    receiver: Receiver,
) -> None:
    settings = _hook_settings(tmp_path, slack, receiver)
    notify.publish(
        session,
        settings=settings,
        kind="approval_request",
        payload={"deployment_id": dep.id},
        clock=clock,
    )
    session.commit()
    assert [m.channel for m in outbox(session)] == ["slack"]


def test_two_drainers_on_postgres_send_each_message_once(
    pg_engine: Engine, tmp_path: Path, slack: FakeSlack, receiver: Receiver, clock: FixedClock
) -> None:
    settings = _hook_settings(tmp_path, slack, receiver)
    with Session(pg_engine, expire_on_commit=False) as session:
        environments.sync(session, settings)
        dep = live_deployment(session, at=clock() - timedelta(days=1))
        for i in range(20):
            _fire(session, settings, clock, dep, rule=f"rule-{i}")
    barrier = threading.Barrier(2)
    reports: list[DrainReport] = []

    def drain() -> None:
        with Session(pg_engine, expire_on_commit=False) as own:
            barrier.wait()
            reports.append(notify.drain(own, settings=settings, clock=clock))

    threads = [threading.Thread(target=drain) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(r.sent for r in reports) == 40
    posted = slack.calls_to("chat.postMessage", ok_only=True)
    assert len(posted) == 20 and len(receiver.requests) == 20
    assert len({r["body"]["id"] for r in receiver.requests}) == 20
    with Session(pg_engine) as session:
        assert {m.status for m in outbox(session)} == {OutboxStatus.sent}


def test_webhook_config_refuses_other_schemes_and_keeps_the_url_secret(tmp_path: Path) -> None:
    from modeldeck.core.config import load_settings
    from modeldeck.core.errors import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("notify:\n  webhooks:\n    - {name: pager, url: 'ftp://example.com/x'}\n")
    with pytest.raises(ConfigError, match="webhook pager: url must start with http"):
        load_settings(bad)
    good = tmp_path / "good.yaml"
    good.write_text("notify:\n  webhooks:\n    - {name: pager, url: 'https://h/T0K3N'}\n")
    assert "T0K3N" not in repr(load_settings(good).notify)
