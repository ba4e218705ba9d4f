"""Who is looking: optional OIDC login (st.login) mapped to modeldeck roles by email.

Without an `[auth]` section in Streamlit's secrets the dashboard is read-only: everyone is an
anonymous viewer. With it, people sign in; their verified email claim is mapped to a role via
`roles.emails` (or `roles.default`) exactly as Slack users are, and the services check that
role on every action, so hiding a button is a courtesy, never the protection.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.auth.service import role_for
from modeldeck.core.config import Settings

VIA = "dashboard"
ANONYMOUS = Actor(name="dashboard:anonymous", role=Role.viewer, via=VIA)


def login_configured() -> bool:
    """True when Streamlit's secrets hold an [auth] section (OIDC provider settings)."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all is the common case
        return False


def _claim(name: str) -> Any:
    try:
        return st.user.get(name)
    except Exception:  # noqa: BLE001 - st.user outside a session or without auth
        return None


def logged_in() -> bool:
    return login_configured() and bool(_claim("is_logged_in"))


def actor_for_claims(settings: Settings, email: str | None, email_verified: Any = None) -> Actor:
    """The Actor of a signed-in person: `dashboard:<email>` with the role their email maps to.

    An identity provider that says the email is not verified gets no role: anybody could
    have typed that address."""
    if not email or email_verified is False:
        return Actor(name=f"dashboard:{email or 'unknown'}", role=None, via=VIA)
    email = email.strip().lower()
    return Actor(name=f"dashboard:{email}", role=role_for(settings.roles, email=email), via=VIA)


def current_actor(settings: Settings) -> Actor:
    """Who acts on this page: the signed-in person, or the read-only anonymous viewer."""
    if not login_configured():
        return ANONYMOUS
    if not _claim("is_logged_in"):
        return ANONYMOUS
    return actor_for_claims(settings, _claim("email"), _claim("email_verified"))


def can(actor: Actor, needed: Role) -> bool:
    """Whether to *show* an action; the service decides whether to *allow* it."""
    return actor.role is not None and actor.role.allows(needed)


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
    if actor.role is None:
        box.caption(
            "Your email has no modeldeck role: ask an admin to add it under "
            "`roles.emails` in modeldeck.yaml. You can look, not act."
        )
    box.button("Sign out", on_click=st.logout, key="auth_logout", width="stretch")
