"""Tokens and the RBAC policy. Every interface resolves an Actor here and services check it."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from modeldeck.core import db
from modeldeck.core.audit import service as audit
from modeldeck.core.auth.models import Actor, ApiToken, ApiTokenCreated, ApiTokenPublic, Role
from modeldeck.core.clock import Clock, as_utc, utcnow
from modeldeck.core.config import RolesConfig
from modeldeck.core.errors import Forbidden, InvalidInput, NotFound, Unauthorized

TOKEN_PREFIX = "mdk_"
MAX_TOKEN_LENGTH = 200  # ours are 47 characters; refuse megabyte headers before hashing


def hash_token(token: str) -> str:
    # Tokens are 32 random bytes: a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).hexdigest()


def require(actor: Actor, needed: Role, action: str) -> None:
    """Raise Forbidden unless the actor's role reaches `needed`."""
    if actor.role is None:
        raise Forbidden(
            f"{actor.name} has no modeldeck role, so cannot {action}",
            hint="ask an admin to map you to a role in modeldeck.yaml (roles:)",
        )
    if not actor.role.allows(needed):
        raise Forbidden(f"{action} needs the {needed} role; {actor.name} is {actor.role}")


def role_for(
    roles: RolesConfig,
    *,
    user: str | None = None,
    groups: list[str] | None = None,
    email: str | None = None,
    oidc_groups: list[str] | None = None,
) -> Role | None:
    """The highest role any of the identity's keys maps to, else the default role."""
    found: list[Role] = []
    if user and user in roles.slack_users:
        found.append(Role(roles.slack_users[user]))
    for group in groups or []:
        if group in roles.slack_groups:
            found.append(Role(roles.slack_groups[group]))
    for group in oidc_groups or []:  # the dashboard's sign-in (IdP groups claim)
        if group in roles.oidc_groups:
            found.append(Role(roles.oidc_groups[group]))
    if email and email.lower() in {k.lower(): v for k, v in roles.emails.items()}:
        found.append(Role({k.lower(): v for k, v in roles.emails.items()}[email.lower()]))
    if found:
        return max(found, key=lambda r: r.rank)
    return Role(roles.default) if roles.default else None


# Actor names are `<interface>:<identity>`; which list of `roles.people` each interface uses.
_PEOPLE_LISTS = {"slack": "slack", "dashboard": "emails", "token": "tokens", "cli": "cli"}


def person_of(roles: RolesConfig, actor_name: str) -> str:
    """The person (`roles.people` key) behind an actor name, else the name itself.

    One person may ask through the API and approve from Slack; the two-person rule and "one
    decision per person" compare what this returns, not the per-interface names.
    """
    interface, sep, identity = actor_name.partition(":")
    section = _PEOPLE_LISTS.get(interface) if sep else None
    if section is None or not identity:
        return actor_name
    wanted = identity.lower() if section == "emails" else identity
    for person, ids in roles.people.items():
        listed = getattr(ids, section)
        if section == "emails":
            listed = [e.strip().lower() for e in listed]
        if wanted in listed:
            return person
    return actor_name


def same_person(roles: RolesConfig, first: str, second: str) -> bool:
    """True when two actor names belong to one person (or are the same name)."""
    return first == second or person_of(roles, first) == person_of(roles, second)


def create_token(
    session: Session,
    *,
    name: str,
    role: Role,
    actor: Actor,
    expires_in_days: int | None = None,
    clock: Clock = utcnow,
) -> ApiTokenCreated:
    """Create a token; the clear text is returned once and never stored."""
    require(actor, Role.admin, "create API tokens")
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("token name must be 1-100 characters")
    if expires_in_days is not None and expires_in_days <= 0:
        raise InvalidInput("expires_in_days must be a positive number of days")
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = clock()
    row = ApiToken(
        name=name,
        hash=hash_token(clear),
        prefix=clear[:10],
        role=role,
        created_at=now,
        created_by=actor.name,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="token.create",
        target=f"token:{name}",
        after={"id": row.id, "role": role, "expires_at": row.expires_at},
        clock=clock,
    )
    session.commit()
    return ApiTokenCreated(**_public(row).model_dump(), token=clear)


def revoke_token(session: Session, *, token_id: int, actor: Actor, clock: Clock = utcnow) -> None:
    require(actor, Role.admin, "revoke API tokens")
    row = db.get_by_id(session, ApiToken, token_id)
    if row is None:
        raise NotFound(f"no API token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = clock()
        session.add(row)
        audit.record(
            session, actor=actor, action="token.revoke", target=f"token:{row.name}", clock=clock
        )
        session.commit()


def list_tokens(session: Session) -> list[ApiTokenPublic]:
    return [_public(t) for t in session.exec(select(ApiToken).order_by(ApiToken.id)).all()]


@dataclass(frozen=True)
class TokenGrant:
    """What a valid token resolves to."""

    name: str
    role: Role
    expires_at: datetime | None


class TokenCache:
    """Tokens recently found valid, so that most API requests authenticate without a query.

    An entry is trusted for `ttl` seconds: a token revoked through this process's API is
    refused at once (the route calls `clear`), one revoked elsewhere (the CLI, another API
    worker) at most `ttl` seconds later. Expiry is checked on every use against the request's
    clock. Unknown and revoked tokens are never cached, so guessing fills nothing.
    """

    def __init__(
        self,
        ttl: float = 5.0,
        max_entries: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._monotonic = monotonic
        self._grants: dict[str, tuple[TokenGrant, float]] = {}  # hash -> (grant, read at)
        self._lock = threading.Lock()  # filled from worker threads, read on the event loop
        self.generation = 0  # moves on every clear: a lookup that began before is not kept

    def actor(self, token: str, *, clock: Clock = utcnow) -> Actor | None:
        """The token's actor if it is cached and fresh (raises if it has expired), else None."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        cached = self._grants.get(hash_token(token))
        if cached is None or self._monotonic() - cached[1] >= self.ttl:
            return None
        return _actor(cached[0], clock)

    def put(self, digest: str, grant: TokenGrant, generation: int) -> None:
        """Keep a grant read from the database, unless `clear` ran since the read began."""
        with self._lock:
            if generation != self.generation:
                return
            now = self._monotonic()
            if len(self._grants) >= self.max_entries:
                self._grants = {k: v for k, v in self._grants.items() if now - v[1] < self.ttl}
                if len(self._grants) >= self.max_entries:
                    self._grants = {}
            self._grants[digest] = (grant, now)

    def clear(self) -> None:
        """Forget every token (after a revocation: the next request reads the database)."""
        with self._lock:
            self._grants = {}
            self.generation += 1


def authenticate(
    session: Session, token: str, *, clock: Clock = utcnow, cache: TokenCache | None = None
) -> Actor:
    """Resolve a bearer token to an Actor, or raise Unauthorized (same message for all cases
    but expiry/revocation, which a user can act on). A valid token is put in `cache`."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized("invalid API token")
    digest = hash_token(token)
    generation = cache.generation if cache is not None else 0
    # Four columns, not the ORM object: this runs on every API request the cache misses.
    row = session.exec(
        select(ApiToken.name, ApiToken.role, ApiToken.revoked_at, ApiToken.expires_at).where(
            ApiToken.hash == digest
        )
    ).first()
    if row is None:
        raise Unauthorized("invalid API token")
    name, role, revoked_at, expires_at = row
    if revoked_at is not None:
        raise Unauthorized("this API token was revoked")
    grant = TokenGrant(
        name=name,
        role=Role(role),
        expires_at=as_utc(expires_at) if expires_at is not None else None,
    )
    actor = _actor(grant, clock)
    if cache is not None:
        cache.put(digest, grant, generation)
    return actor


def _actor(grant: TokenGrant, clock: Clock) -> Actor:
    if grant.expires_at is not None and grant.expires_at <= clock():
        raise Unauthorized("this API token has expired")
    return Actor(name=f"token:{grant.name}", role=grant.role, via="api")


def _public(row: ApiToken) -> ApiTokenPublic:
    assert row.id is not None
    return ApiTokenPublic(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        role=row.role,
        created_at=as_utc(row.created_at),
        expires_at=as_utc(row.expires_at) if row.expires_at else None,
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
    )
