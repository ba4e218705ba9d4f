"""Sign-in → Actor mapping, the sidebar's identity, and `modeldeck dashboard`'s command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from modeldeck.core.auth.models import Role
from modeldeck.core.cli import dashboard as dashboard_cli
from modeldeck.core.cli.main import app as cli_app
from modeldeck.core.config import Settings
from modeldeck.core.errors import ConfigError
from modeldeck.core.rollouts.models import Deployment
from modeldeck.dashboard import auth
from tests.dashboard import world
from tests.dashboard.conftest import app, button, labels, texts
from tests.dashboard.world import World


@pytest.fixture
def roles_settings(tmp_path: Path) -> Settings:
    return world.write_config(
        tmp_path,
        roles={
            "emails": {"Ana@Acme.io": "admin", "dev@acme.io": "deployer"},
            "oidc_groups": {"ml-oncall": "approver", "ml-readers": "viewer"},
            "default": "viewer",
        },
    )[1]


def claims(email: str | None, verified: object = True, **more: object) -> dict[str, object]:
    out: dict[str, object] = {"is_logged_in": True, **more}
    if email is not None:
        out["email"] = email
    if verified is not None:
        out["email_verified"] = verified
    return out


def test_actor_from_claims(roles_settings: Settings) -> None:
    ana = auth.actor_for_claims(roles_settings, claims("ana@acme.io"))
    assert (ana.name, ana.role, ana.via) == ("dashboard:ana@acme.io", Role.admin, "dashboard")
    shouting = auth.actor_for_claims(roles_settings, claims(" ANA@ACME.IO "))
    assert shouting.role == Role.admin and shouting.name == "dashboard:ana@acme.io"
    other = auth.actor_for_claims(roles_settings, claims("bo@acme.io"))
    assert other.role == Role.viewer  # roles.default
    unverified = auth.actor_for_claims(roles_settings, claims("ana@acme.io", False))
    assert unverified.role is None  # anyone can type an address the IdP did not verify
    assert unverified.name == "dashboard:unverified:ana@acme.io"  # never passes for Ana
    nobody = auth.actor_for_claims(roles_settings, claims(None))
    assert nobody.role is None and nobody.name == "dashboard:unknown"


def test_a_missing_email_verified_claim_is_not_trusted(tmp_path: Path) -> None:
    strict = world.write_config(tmp_path, roles={"emails": {"ana@acme.io": "admin"}})[1]
    for verified in (None, "no", 1, "false"):
        actor = auth.actor_for_claims(strict, claims("ana@acme.io", verified))
        assert actor.role is None, verified
    assert auth.actor_for_claims(strict, claims("ana@acme.io", "true")).role == Role.admin
    trusting = world.write_config(
        tmp_path,
        roles={"emails": {"ana@acme.io": "admin"}, "oidc_trust_unverified_email": True},
    )[1]
    assert auth.actor_for_claims(trusting, claims("ana@acme.io", None)).role == Role.admin
    # An IdP that says "not verified" is believed even then.
    assert auth.actor_for_claims(trusting, claims("ana@acme.io", False)).role is None


def test_roles_from_the_groups_claim_highest_wins(roles_settings: Settings) -> None:
    oncall = auth.actor_for_claims(roles_settings, claims("bo@acme.io", groups=["ml-oncall"]))
    assert oncall.role == Role.approver  # the group beats roles.default
    dev = auth.actor_for_claims(
        roles_settings, claims("dev@acme.io", groups=["ml-readers", "ml-oncall", "other"])
    )
    assert dev.role == Role.approver  # approver (group) > deployer (email) > viewer (group)
    ana = auth.actor_for_claims(roles_settings, claims("ana@acme.io", groups=["ml-oncall"]))
    assert ana.role == Role.admin  # admin (email) > approver (group)
    single = auth.actor_for_claims(roles_settings, claims("bo@acme.io", groups="ml-oncall"))
    assert single.role == Role.approver  # one group as a string
    # Groups are the IdP's word, so they count without a verified email; the default not.
    unverified = auth.actor_for_claims(
        roles_settings, claims("bo@acme.io", False, groups=["ml-oncall"], sub="u-42")
    )
    assert (unverified.name, unverified.role) == ("dashboard:unverified:bo@acme.io", Role.approver)
    no_email = auth.actor_for_claims(roles_settings, claims(None, None, sub="u-42"))
    assert (no_email.name, no_email.role) == ("dashboard:sub:u-42", None)


def test_groups_claim_name_and_nested_path(tmp_path: Path) -> None:
    keycloak = world.write_config(
        tmp_path,
        roles={
            "oidc_groups": {"modeldeck-deployers": "deployer"},
            "oidc_groups_claim": "realm_access.roles",
        },
    )[1]
    token = claims("bo@acme.io", realm_access={"roles": ["offline", "modeldeck-deployers"]})
    assert auth.actor_for_claims(keycloak, token).role == Role.deployer
    assert auth.actor_for_claims(keycloak, claims("bo@acme.io", groups=["x"])).role is None
    with pytest.raises(ConfigError, match="oidc_groups"):
        world.write_config(tmp_path, roles={"oidc_groups": {"ops": "superuser"}})


def test_a_group_member_acts_on_the_page(
    seeded: World, sqlite_engine: Engine, tmp_path: Path
) -> None:
    """Signed in through (mocked) OIDC with an unlisted email but a mapped group: the Model
    page offers the deployer's actions and the service records that person."""
    path, _ = world.write_config(
        tmp_path, roles={"emails": world.EMAILS, "oidc_groups": {"ml-platform": "deployer"}}
    )
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))  # a new config version
    at = app(email="eve@acme.io")
    at.user = {**at.user, "groups": ["ml-platform"]}
    at.session_state["model"] = "search-ranker"
    at.run()
    at.switch_page("views/model.py")
    at.run()
    assert "**eve@acme.io**" in texts(at) and "`deployer`" in texts(at)
    at.selectbox(key="promote_env").set_value("staging")
    button(at, "Promote…").click().run()
    button(at, "Confirm promote").click().run()
    with Session(sqlite_engine) as s:
        dep = s.exec(select(Deployment).order_by(col(Deployment.id).desc())).first()
    assert dep is not None and dep.requested_by == "dashboard:eve@acme.io"


def test_without_sign_in_configured_everyone_is_a_read_only_viewer(seeded: World) -> None:
    at = app()
    at.run()
    assert "Read-only: sign-in is not configured" in texts(at)
    assert "Sign in" not in labels(at)


def test_sign_in_offered_when_configured(seeded: World) -> None:
    at = app(login=False)
    at.run()
    assert "Read-only until you sign in" in texts(at)
    assert "Sign in" in labels(at)


def test_signed_in_user_sees_name_and_role(seeded: World) -> None:
    at = app(email="deployer@acme.io")
    at.run()
    assert "**deployer@acme.io**" in texts(at) and "`deployer`" in texts(at)
    assert "Sign out" in labels(at)
    at = app(email="stranger@elsewhere.io")
    at.run()
    assert "has no modeldeck role" in texts(at)


def test_sign_out_button_logs_out(seeded: World) -> None:
    at = app(email="deployer@acme.io")
    at.run()
    button(at, "Sign out").click().run()
    assert at.user.get("is_logged_in") is False
    assert "Read-only until you sign in" in texts(at)


def test_command_line(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    cmd = dashboard_cli.command(port=8599, host="0.0.0.0", secrets=secrets)
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(cmd[4]).name == "app.py" and Path(cmd[4]).parent.name == "dashboard"
    pairs = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert pairs["--server.port"] == "8599" and pairs["--server.address"] == "0.0.0.0"
    assert pairs["--server.headless"] == "true"
    assert pairs["--browser.gatherUsageStats"] == "false"
    assert pairs["--client.showErrorDetails"] == "none"  # no traceback reaches a browser
    assert pairs["--secrets.files"] == str(secrets)
    env = dashboard_cli.child_env(Path("relative/modeldeck.yaml"))
    assert env["MODELDECK_CONFIG"] == str(Path("relative/modeldeck.yaml").resolve())


def test_cli_refuses_a_broken_config_before_starting(tmp_path: Path) -> None:
    bad = tmp_path / "modeldeck.yaml"
    bad.write_text("environments: [{name: prod, cluster: nowhere}]\n")
    result = CliRunner().invoke(cli_app, ["--config", str(bad), "dashboard", "--port", "1"])
    assert result.exit_code != 0
    assert "unknown cluster" in result.output


def test_cli_rejects_a_bad_port(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app, ["dashboard", "--port", "70000"])
    assert result.exit_code == 2
