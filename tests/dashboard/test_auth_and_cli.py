"""Sign-in → Actor mapping, the sidebar's identity, and `modeldeck dashboard`'s command line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modeldeck.core.auth.models import Role
from modeldeck.core.cli import dashboard as dashboard_cli
from modeldeck.core.cli.main import app as cli_app
from modeldeck.core.config import Settings
from modeldeck.dashboard import auth
from tests.dashboard import world
from tests.dashboard.conftest import app, button, labels, texts
from tests.dashboard.world import World


@pytest.fixture
def roles_settings(tmp_path: Path) -> Settings:
    return world.write_config(
        tmp_path, roles={"emails": {"Ana@Acme.io": "admin"}, "default": "viewer"}
    )[1]


def test_actor_from_claims(roles_settings: Settings) -> None:
    ana = auth.actor_for_claims(roles_settings, "ana@acme.io", True)
    assert (ana.name, ana.role, ana.via) == ("dashboard:ana@acme.io", Role.admin, "dashboard")
    shouting = auth.actor_for_claims(roles_settings, " ANA@ACME.IO ", None)
    assert shouting.role == Role.admin and shouting.name == "dashboard:ana@acme.io"
    other = auth.actor_for_claims(roles_settings, "bo@acme.io", True)
    assert other.role == Role.viewer  # roles.default
    unverified = auth.actor_for_claims(roles_settings, "ana@acme.io", False)
    assert unverified.role is None  # anyone can type an address the IdP did not verify
    nobody = auth.actor_for_claims(roles_settings, None, True)
    assert nobody.role is None and nobody.name == "dashboard:unknown"


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
