"""Roles, the RBAC policy, and API tokens (stored hashed) on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.auth import service as auth
from modeldeck.core.auth.models import Actor, ApiToken, Role
from modeldeck.core.clock import FixedClock
from modeldeck.core.config import RolesConfig
from modeldeck.core.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from tests.utils.rows import snapshot


@pytest.fixture
def session(any_engine: Engine) -> Iterator[Session]:
    with Session(any_engine, expire_on_commit=False) as s:
        yield s


# --- roles and policy -----------------------------------------------------------------------


def test_roles_are_ordered() -> None:
    order = [Role.viewer, Role.deployer, Role.approver, Role.admin]
    for i, have in enumerate(order):
        for j, needed in enumerate(order):
            assert have.allows(needed) is (i >= j), (have, needed)


def test_require_names_the_missing_role() -> None:
    auth.require(Actor("ana", Role.admin), Role.deployer, "promote")
    with pytest.raises(Forbidden, match="promote needs the approver role; bob is deployer"):
        auth.require(Actor("bob", Role.deployer), Role.approver, "promote")
    with pytest.raises(Forbidden, match="stranger has no modeldeck role") as info:
        auth.require(Actor("stranger", None), Role.viewer, "look")
    assert info.value.hint is not None and "roles:" in info.value.hint


def test_identity_maps_to_its_highest_role() -> None:
    roles = RolesConfig(
        slack_users={"U1": "deployer"},
        slack_groups={"S-ops": "approver", "S-all": "viewer"},
        emails={"Carol@Example.com": "admin"},
    )
    assert auth.role_for(roles, user="U1") == Role.deployer
    assert auth.role_for(roles, user="U1", groups=["S-all", "S-ops"]) == Role.approver
    assert auth.role_for(roles, email="carol@example.COM") == Role.admin
    assert auth.role_for(roles, user="U-nobody") is None
    assert auth.role_for(RolesConfig(default="viewer"), user="U-nobody") == Role.viewer


# --- tokens ---------------------------------------------------------------------------------


def test_token_is_stored_only_as_its_hash(
    any_engine: Engine, session: Session, admin: Actor, clock: FixedClock
) -> None:
    created = auth.create_token(session, name="ci", role=Role.deployer, actor=admin, clock=clock)
    assert created.token.startswith("mdk_") and len(created.token) > 40
    row = session.exec(select(ApiToken)).one()
    assert row.hash == hashlib.sha256(created.token.encode()).hexdigest()
    assert created.token.startswith(row.prefix) and len(row.prefix) < len(created.token) // 3
    everything = repr(snapshot(any_engine))
    assert created.token not in everything
    assert created.token[len(row.prefix) :] not in everything
    (event,) = session.exec(select(AuditEvent)).all()
    assert event.action == "token.create" and event.after is not None
    assert event.after["role"] == "deployer" and "token" not in (event.after or {})


def test_authenticate_resolves_the_role(session: Session, admin: Actor, clock: FixedClock) -> None:
    created = auth.create_token(session, name="bot", role=Role.approver, actor=admin)
    actor = auth.authenticate(session, created.token, clock=clock)
    assert actor == Actor(name="token:bot", role=Role.approver, via="api")


@pytest.mark.parametrize("token", ["", "mdk_nope", "x" * 5000, "mdk_" + "a" * 43])
def test_unknown_tokens_are_refused(session: Session, token: str) -> None:
    with pytest.raises(Unauthorized, match="invalid API token"):
        auth.authenticate(session, token)


def test_expired_token_is_refused(session: Session, admin: Actor, clock: FixedClock) -> None:
    created = auth.create_token(
        session, name="short", role=Role.viewer, actor=admin, expires_in_days=1, clock=clock
    )
    clock.advance(hours=23, minutes=59)
    assert auth.authenticate(session, created.token, clock=clock).role == Role.viewer
    clock.advance(minutes=1)
    with pytest.raises(Unauthorized, match="this API token has expired"):
        auth.authenticate(session, created.token, clock=clock)


def test_revoked_token_is_refused_and_revocation_is_audited_once(
    session: Session, admin: Actor, clock: FixedClock
) -> None:
    created = auth.create_token(session, name="leaked", role=Role.admin, actor=admin)
    auth.revoke_token(session, token_id=created.id, actor=admin, clock=clock)
    auth.revoke_token(session, token_id=created.id, actor=admin, clock=clock)
    with pytest.raises(Unauthorized, match="this API token was revoked"):
        auth.authenticate(session, created.token, clock=clock)
    actions = [e.action for e in session.exec(select(AuditEvent)).all()]
    assert actions == ["token.create", "token.revoke"]
    (listed,) = auth.list_tokens(session)
    assert listed.revoked_at == clock() and not hasattr(listed, "token")


@pytest.mark.parametrize("role", [Role.viewer, Role.deployer, Role.approver])
def test_only_admins_manage_tokens(
    any_engine: Engine, session: Session, admin: Actor, role: Role
) -> None:
    created = auth.create_token(session, name="keep", role=Role.viewer, actor=admin)
    before = snapshot(any_engine)
    actor = Actor(name="mallory", role=role)
    with pytest.raises(Forbidden, match="create API tokens needs the admin role"):
        auth.create_token(session, name="sneaky", role=Role.admin, actor=actor)
    with pytest.raises(Forbidden, match="revoke API tokens needs the admin role"):
        auth.revoke_token(session, token_id=created.id, actor=actor)
    assert snapshot(any_engine) == before


@pytest.mark.parametrize(
    ("name", "days", "message"),
    [
        ("   ", None, "token name must be 1-100 characters"),
        ("x" * 101, None, "token name must be 1-100 characters"),
        ("ok", 0, "expires_in_days must be a positive number of days"),
        ("ok", -3, "expires_in_days must be a positive number of days"),
    ],
)
def test_bad_token_requests_change_nothing(
    any_engine: Engine, session: Session, admin: Actor, name: str, days: int | None, message: str
) -> None:
    before = snapshot(any_engine)
    with pytest.raises(InvalidInput, match=message):
        auth.create_token(session, name=name, role=Role.viewer, actor=admin, expires_in_days=days)
    assert snapshot(any_engine) == before


def test_revoking_an_unknown_token_is_not_found(
    any_engine: Engine, session: Session, admin: Actor
) -> None:
    before = snapshot(any_engine)
    with pytest.raises(NotFound, match="no API token with id 999"):
        auth.revoke_token(session, token_id=999, actor=admin)
    assert snapshot(any_engine) == before


# --- the API's token cache ------------------------------------------------------------------


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cached_token_needs_no_lookup_until_its_ttl_passes(
    session: Session, admin: Actor, clock: FixedClock
) -> None:
    created = auth.create_token(session, name="dash", role=Role.viewer, actor=admin)
    ticks = FakeMonotonic()
    cache = auth.TokenCache(ttl=5.0, monotonic=ticks)
    assert cache.actor(created.token, clock=clock) is None
    actor = auth.authenticate(session, created.token, clock=clock, cache=cache)
    assert cache.actor(created.token, clock=clock) == actor
    ticks.now = 4.9
    assert cache.actor(created.token, clock=clock) == actor
    ticks.now = 5.0  # revoked elsewhere (CLI, another worker): refused from here on
    assert cache.actor(created.token, clock=clock) is None


def test_cache_checks_expiry_on_every_use(
    session: Session, admin: Actor, clock: FixedClock
) -> None:
    created = auth.create_token(
        session, name="short", role=Role.viewer, actor=admin, expires_in_days=1, clock=clock
    )
    cache = auth.TokenCache(monotonic=FakeMonotonic())
    auth.authenticate(session, created.token, clock=clock, cache=cache)
    clock.advance(days=1)
    with pytest.raises(Unauthorized, match="this API token has expired"):
        cache.actor(created.token, clock=clock)


def test_cache_keeps_no_unknown_or_revoked_token(
    session: Session, admin: Actor, clock: FixedClock
) -> None:
    created = auth.create_token(session, name="leaked", role=Role.admin, actor=admin)
    auth.revoke_token(session, token_id=created.id, actor=admin, clock=clock)
    cache = auth.TokenCache(monotonic=FakeMonotonic())
    for token in (created.token, "mdk_" + "a" * 43, "x" * 5000):
        with pytest.raises(Unauthorized):
            auth.authenticate(session, token, clock=clock, cache=cache)
        assert cache.actor(token, clock=clock) is None


def test_clear_forgets_tokens_and_drops_lookups_that_began_before_it(
    session: Session, admin: Actor, clock: FixedClock
) -> None:
    created = auth.create_token(session, name="ci", role=Role.deployer, actor=admin)
    cache = auth.TokenCache(monotonic=FakeMonotonic())
    auth.authenticate(session, created.token, clock=clock, cache=cache)
    cache.clear()
    assert cache.actor(created.token, clock=clock) is None
    # A lookup that read the row before a revocation's clear must not cache it after.
    began = cache.generation
    cache.clear()
    cache.put(auth.hash_token(created.token), auth.TokenGrant("ci", Role.deployer, None), began)
    assert cache.actor(created.token, clock=clock) is None


def test_cache_stays_bounded(session: Session, admin: Actor, clock: FixedClock) -> None:
    tokens = [
        auth.create_token(session, name=f"t{i}", role=Role.viewer, actor=admin).token
        for i in range(3)
    ]
    cache = auth.TokenCache(max_entries=2, monotonic=FakeMonotonic())
    for token in tokens:
        auth.authenticate(session, token, clock=clock, cache=cache)
    assert len([t for t in tokens if cache.actor(t, clock=clock)]) <= 2
    assert cache.actor(tokens[-1], clock=clock) is not None
