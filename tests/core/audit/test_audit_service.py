"""The audit log: append-only, written in the transaction of the change, searchable."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from modeldeck.core.audit import service as audit
from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.clock import FixedClock
from modeldeck.core.errors import Conflict, Forbidden
from modeldeck.core.registry import service as registry
from modeldeck.core.registry.models import Model, ModelCreate, ModelVersionCreate
from tests.utils.rows import count

ROOT = Path(__file__).parents[3]


@pytest.fixture
def session(any_engine: Engine) -> Iterator[Session]:
    with Session(any_engine, expire_on_commit=False) as s:
        yield s


def test_event_commits_only_with_its_change(
    any_engine: Engine, session: Session, admin: Actor
) -> None:
    """record() only adds to the caller's transaction: a change that fails takes its event
    with it, so the log never claims something that did not happen."""
    session.add(Model(name="one"))
    audit.record(session, actor=admin, action="model.create", target="model:one")
    session.commit()
    session.add(Model(name="one"))  # violates the unique name
    audit.record(session, actor=admin, action="model.create", target="model:one")
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()
    assert count(any_engine, "audit_event") == 1
    assert count(any_engine, "model") == 1


def test_refused_service_calls_leave_no_event(
    any_engine: Engine, session: Session, admin: Actor
) -> None:
    registry.register_version(
        session,
        model_name="fraud",
        actor=admin,
        data=ModelVersionCreate(version="1.0", image="img:1"),
        create_model_if_missing=ModelCreate(name="fraud"),
    )
    before = count(any_engine, "audit_event")
    with pytest.raises(Conflict):
        registry.register_version(
            session,
            model_name="fraud",
            actor=admin,
            data=ModelVersionCreate(version="1.0", image="i"),
        )
    with pytest.raises(Conflict):
        registry.create_model(session, data=ModelCreate(name="fraud"), actor=admin)
    with pytest.raises(Forbidden):
        registry.create_model(
            session, data=ModelCreate(name="other"), actor=Actor("v", Role.viewer)
        )
    assert count(any_engine, "audit_event") == before


def test_secrets_are_scrubbed_and_times_serialised(session: Session, admin: Actor) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    event = audit.record(
        session,
        actor=admin,
        action="config.change",
        target="slack",
        before={"bot_token": "xoxb-1", "nested": {"Signing_Secret": "s", "ok": 1}},
        after={"list": [{"password": "p"}], "at": when, "Authorization": "Bearer x"},
    )
    session.commit()
    stored = session.get(AuditEvent, event.id)
    assert stored is not None
    assert stored.before == {"bot_token": "***", "nested": {"Signing_Secret": "***", "ok": 1}}
    assert stored.after == {
        "list": [{"password": "***"}],
        "at": "2026-01-02T01:04:05+00:00",
        "Authorization": "***",
    }


def test_search_filters_and_orders_newest_first(session: Session, clock: FixedClock) -> None:
    ana, bob = Actor("ana", Role.admin, via="slack"), Actor("bob", Role.admin, request_id="r1")
    start = clock()
    for actor, action, target in [
        (ana, "model.create", "model:fraud_v2"),
        (bob, "version.register", "model:fraud_v2/version:1.0"),
        (ana, "model.create", "model:fraudXv2"),
        (bob, "token.create", "token:ci"),
    ]:
        audit.record(session, actor=actor, action=action, target=target, clock=clock)
        clock.advance(minutes=10)
    session.commit()
    everything = audit.search(session)
    assert everything.count == 4
    assert [e.target for e in everything.data][0] == "token:ci"  # newest first
    assert everything.data[-1].via == "slack" and everything.data[0].request_id == "r1"
    assert audit.search(session, actor="ana").count == 2
    assert audit.search(session, action="model.create").count == 2
    # '_' in a name is a literal character, not a LIKE wildcard
    prefix = audit.search(session, target="model:fraud_")
    assert {e.target for e in prefix.data} == {"model:fraud_v2", "model:fraud_v2/version:1.0"}
    assert audit.search(session, text="FRAUDX").count == 1  # case-insensitive text search
    assert audit.search(session, text="100%").count == 0
    window = audit.search(
        session, since=start + timedelta(minutes=10), until=start + timedelta(minutes=30)
    )
    assert [e.action for e in window.data] == ["model.create", "version.register"]
    page = audit.search(session, limit=1, offset=1)
    assert page.count == 4 and [e.target for e in page.data] == ["model:fraudXv2"]


def test_search_window_in_another_timezone(
    session: Session, clock: FixedClock, admin: Actor
) -> None:
    """SQLite compares stored UTC text: a +02:00 bound must still mean the same instant."""
    audit.record(session, actor=admin, action="a", target="t", clock=clock)  # 12:00 UTC
    session.commit()
    plus_two = timezone(timedelta(hours=2))
    just_before = (clock() - timedelta(minutes=1)).astimezone(plus_two)  # 13:59+02:00
    assert audit.search(session, since=just_before).count == 1
    assert audit.search(session, until=just_before).count == 0
    assert audit.search(session, since=clock().astimezone(UTC)).count == 1


def _python_files() -> list[Path]:
    return [p for folder in ("core", "bot", "dashboard") for p in (ROOT / folder).rglob("*.py")]


def test_no_code_updates_or_deletes_audit_events() -> None:
    """Append-only by construction: nothing in the code base issues UPDATE or DELETE on
    audit_event, and the only audit route is a GET."""
    offenders = []
    for path in _python_files():
        source = path.read_text(encoding="utf-8")
        lowered = source.lower()
        for needle in ("update audit_event", "delete from audit_event", "truncate audit_event"):
            if needle in lowered:
                offenders.append(f"{path}: {needle}")
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            target = first.id if isinstance(first, ast.Name) else getattr(first, "attr", "")
            if name in ("update", "delete") and target == "AuditEvent":
                offenders.append(f"{path}:{node.lineno}: {name}(AuditEvent)")
    assert offenders == []


def test_the_audit_api_is_read_only() -> None:
    from modeldeck.core.audit.router import router

    methods = {m for route in router.routes for m in getattr(route, "methods", set())}
    assert methods == {"GET"}
