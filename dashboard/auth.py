"""Who is looking: optional OIDC login (st.login) mapped to modeldeck roles by email or group.

Without an `[auth]` section in Streamlit's secrets the dashboard is read-only: everyone is an
anonymous viewer. With it, people sign in; their verified email (`roles.emails`) and the groups
in their ID token (`roles.oidc_groups`, claim `roles.oidc_groups_claim`) map to roles exactly
as Slack users and groups do (the highest wins, else `roles.default`). The services check that
role on every action, so hiding a button is a courtesy, never the protection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.auth.service import role_for
from modeldeck.core.config import RolesConfig, Settings

VIA = "dashboard"
ANONYMOUS = Actor(name="dashboard:anonymous", role=Role.viewer, via=VIA)


def login_configured() -> bool:
    """True when Streamlit's secrets hold an [auth] section (OIDC provider settings)."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all is the common case
        return False


def _claims() -> dict[str, Any]:
    try:
        return dict(st.user.to_dict())
    except Exception:  # noqa: BLE001 - st.user outside a session or without auth
        return {}


def logged_in() -> bool:
    return login_configured() and bool(_claims().get("is_logged_in"))


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, or by dotted path into nested claims (`realm_access.roles`)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def groups(claims: Mapping[str, Any], roles: RolesConfig) -> list[str]:
    """The IdP groups of a signed-in person (a list of names, or one name)."""
    value = claim(claims, roles.oidc_groups_claim)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(g) for g in value if isinstance(g, str | int) and not isinstance(g, bool)]
    return []


def email_verified(claims: Mapping[str, Any], roles: RolesConfig) -> bool:
    """Only an explicit `email_verified: true` counts (some IdPs send the string "true"); a
    missing claim is not trusted unless `roles.oidc_trust_unverified_email` says so."""
    value = claims.get("email_verified")
    return (
        value is True
        or (isinstance(value, str) and value.strip().lower() == "true")
        or (roles.oidc_trust_unverified_email and value is None)
    )


def actor_for_claims(settings: Settings, claims: Mapping[str, Any]) -> Actor:
    """The Actor of a signed-in person: `dashboard:<email>` with the highest role their
    verified email or their groups map to.

    An email the IdP did not verify maps to nothing (anybody could have typed it) and is named
    `dashboard:unverified:<email>`, so it never passes for the address's owner in the audit
    log or the two-person rule; the person's groups still count (the IdP asserts those)."""
    roles = settings.roles
    raw = claims.get("email")
    email = raw.strip().lower() if isinstance(raw, str) and raw.strip() else None
    found = groups(claims, roles)
    if email and email_verified(claims, roles):
        return Actor(
            name=f"dashboard:{email}",
            role=role_for(roles, email=email, oidc_groups=found),
            via=VIA,
        )
    if email:
        name = f"dashboard:unverified:{email}"
    elif isinstance(claims.get("sub"), str) and claims["sub"]:
        name = f"dashboard:sub:{claims['sub']}"
    else:
        name = "dashboard:unknown"
    known = [g for g in found if g in roles.oidc_groups]
    role = role_for(roles, oidc_groups=known) if known else None  # no default: not verified
    return Actor(name=name, role=role, via=VIA)


def current_actor(settings: Settings) -> Actor:
    """Who acts on this page: the signed-in person, or the read-only anonymous viewer."""
    if not login_configured():
        return ANONYMOUS
    claims = _claims()
    if not claims.get("is_logged_in"):
        return ANONYMOUS
    return actor_for_claims(settings, claims)


def can(actor: Actor, needed: Role) -> bool:
    """Whether to *show* an action; the service decides whether to *allow* it."""
    return actor.role is not None and actor.role.allows(needed)


def may_load(actor: Actor) -> bool:
    """Whether this visitor may make the server do heavy work for everyone (clear the shared
    caches, build an evidently report): anyone on a dashboard without sign-in (the operator
    chose an open one), else only a signed-in person with a role."""
    if not login_configured():
        return True
    return actor is not ANONYMOUS and actor.role is not None


def sidebar(actor: Actor) -> None:
    """Who you are, what you may do, and the login/logout button."""
    box = st.sidebar.container(border=True)
    if not login_configured():
        box.caption(
            ":material/visibility: Read-only: sign-in is not configured (see "
            "docs/operations.md, Dashboard sign-in)."
        )
        return
    if actor is ANONYMOUS:
        box.caption(":material/visibility: Read-only until you sign in.")
        box.button("Sign in", on_click=st.login, key="auth_login", width="stretch")
        return
    role = actor.role or "no role"
    box.markdown(f"**{actor.name.removeprefix('dashboard:')}**  \nrole: `{role}`")
    if actor.name.startswith("dashboard:unverified:"):
        box.caption(
            "Your identity provider has not verified this email, so it maps to no role "
            "(only your groups count)."
        )
    elif actor.role is None:
        box.caption(
            "Your email has no modeldeck role: ask an admin to add it under "
            "`roles.emails` (or your group under `roles.oidc_groups`) in modeldeck.yaml. "
            "You can look, not act."
        )
    box.button("Sign out", on_click=st.logout, key="auth_logout", width="stretch")
