"""Options every command shares (`--json` before or after the command), the choices a command
offers, and what `status` says when there is nothing to show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from modeldeck.core.cli.main import app
from tests.core.test_cli import Cli, register


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path, f"sqlite:///{tmp_path}/md.db")


@pytest.mark.parametrize(
    "command",
    [
        ["models", "list"],
        ["versions", "fraud"],
        ["status"],
        ["history", "fraud"],
        ["token", "list"],
    ],
    ids=" ".join,
)
def test_json_before_and_after_the_command_give_the_same_answer(
    cli: Cli, command: list[str]
) -> None:
    assert register(cli).exit_code == 0
    before = cli("--json", *command)
    after = cli(*command, "--json")
    assert before.exit_code == after.exit_code == 0, after.output
    assert json.loads(after.stdout) == json.loads(before.stdout)
    table = cli(*command)
    assert table.exit_code == 0
    with pytest.raises(json.JSONDecodeError):  # without --json: a table, not JSON
        json.loads(table.stdout)


def test_json_after_register_and_db_upgrade(cli: Cli) -> None:
    registered = cli("register", "churn", "2.0", "--image", "img:2", "--json")
    assert registered.exit_code == 0, registered.output
    assert json.loads(registered.stdout)["version"] == "2.0"
    upgraded = cli("db", "upgrade", "--json")
    assert json.loads(upgraded.stdout)["before"] == json.loads(upgraded.stdout)["after"]


@pytest.mark.parametrize("command", [[], ["models", "list"], ["register"], ["db", "upgrade"]])
def test_help_shows_json_at_every_level(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0
    assert "--json" in result.stdout
    assert "Machine-readable JSON output instead of tables." in result.stdout


def test_check_offers_only_the_kinds_it_runs(cli: Cli) -> None:
    refused = cli("check", "fraud", "--env", "staging", "-k", "hardware", env={"COLUMNS": "200"})
    assert refused.exit_code == 2
    assert "'hardware' is not one of 'drift', 'quality', 'decay'" in refused.output
    shown = CliRunner().invoke(app, ["check", "--help"], env={"COLUMNS": "200"})
    assert "drift" in shown.stdout and "hardware" not in shown.stdout


def test_status_says_environments_are_missing_when_models_exist(tmp_path: Path) -> None:
    cli = Cli(tmp_path, f"sqlite:///{tmp_path}/md.db")
    cli.config.write_text(yaml.safe_dump({"database_url": cli.database_url}))
    assert register(cli).exit_code == 0
    result = CliRunner().invoke(
        app, ["--config", str(cli.config), "status"], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0
    assert "no models yet" not in result.stdout
    assert (
        f"no environments configured: add `clusters:` and `environments:` to {cli.config} "
        "(see deploy/modeldeck.example.yaml)"
    ) in result.stdout
