"""The CLI in-process (typer's CliRunner): output, --json, exit codes, database effects."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.main import get_command
from typer.testing import CliRunner, Result

from modeldeck.core import db
from modeldeck.core.audit.models import AuditEvent
from modeldeck.core.auth.models import ApiToken
from modeldeck.core.cli.main import app
from tests.utils import db as testdb
from tests.utils.rows import snapshot

# Commands whose --help must show an example (the ones people type most).
EXAMPLES = [
    ["register"],
    ["versions"],
    ["status"],
    ["history"],
    ["models", "list"],
    ["api"],
    ["demo"],
    ["db", "upgrade"],
    ["token", "create"],
    ["token", "revoke"],
    ["token", "list"],
]


class Cli:
    """Runs `modeldeck ...` in-process against a config in a temporary folder."""

    def __init__(self, folder: Path, database_url: str) -> None:
        self.folder = folder
        self.config = folder / "modeldeck.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "database_url": database_url,
                    "clusters": [{"name": "sim-l4", "gpu_model": "L4"}],
                    "environments": [
                        {"name": "staging", "cluster": "sim-l4", "aliases": ["stg"]},
                        {"name": "production", "cluster": "sim-l4", "requires_previous": "staging"},
                    ],
                }
            )
        )
        self.database_url = database_url
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        # None unsets a variable: no MODELDECK_* of the developer's shell leaks in
        clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MODELDECK_")}
        return self.runner.invoke(
            app,
            ["--config", str(self.config), *args],
            env={**clean, "MODELDECK_USER": "ana", **(env or {})},
        )

    def json(self, *args: str) -> Any:
        result = self("--json", *args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    @property
    def engine(self) -> Engine:
        return db.make_engine(self.database_url)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path, f"sqlite:///{tmp_path}/md.db")


def register(cli: Cli, *extra: str, model: str = "fraud", version: str = "1.0") -> Result:
    return cli(
        "register",
        model,
        version,
        "--image",
        f"ghcr.io/acme/{model}:{version}",
        "--artifact-uri",
        f"s3://m/{model}/{version}",
        *extra,
    )


# --- help -----------------------------------------------------------------------------------


def test_help_lists_every_command_with_a_help_line() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    root = get_command(app)
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        assert command.get_short_help_str().strip(), f"`modeldeck {name}` has no help line"
        assert name in result.stdout


@pytest.mark.parametrize("command", EXAMPLES, ids=" ".join)
def test_common_commands_show_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Example: modeldeck" in result.stdout or "Example: MODELDECK_" in result.stdout


# --- register, models, versions ----------------------------------------------------------------


def test_register_then_list_and_read_back(cli: Cli) -> None:
    result = register(
        cli,
        "-m",
        "auc=0.91",
        "-m",
        "f1=0.8",
        "-p",
        "max_depth=8",
        "-p",
        'features=["a","b"]',
        "-p",
        "note=plain text",
        "--team",
        "risk",
        "--git-commit",
        "abc1234",
        "--data-fingerprint",
        "sha256:ff",
    )
    assert result.exit_code == 0, result.output
    assert "registered fraud 1.0" in result.stdout
    versions = cli.json("versions", "fraud")
    (version,) = versions["data"]
    assert version["metrics"] == {"auc": 0.91, "f1": 0.8}
    assert version["params"] == {"max_depth": 8, "features": ["a", "b"], "note": "plain text"}
    assert version["created_by"] == "cli:ana" and version["git_commit"] == "abc1234"
    models = cli.json("models", "list")
    assert [(m["name"], m["team"]) for m in models["data"]] == [("fraud", "risk")]
    assert cli.json("models", "list", "--team", "growth")["count"] == 0
    table = cli("models", "list")
    assert table.exit_code == 0 and "fraud" in table.stdout and "risk" in table.stdout
    with Session(cli.engine) as session:
        actors = {
            e.actor
            for e in session.exec(select(AuditEvent)).all()
            if e.action != "environment.sync"
        }
    assert actors == {"cli:ana"}


def test_register_json_output_is_the_public_schema(cli: Cli) -> None:
    data = cli.json("register", "churn", "2.0.0", "--stage", "staging", "--artifact-uri", "s3://c")
    assert data["model"] == "churn" and data["version"] == "2.0.0"
    assert data["stage"] == "staging"
    assert datetime.fromisoformat(data["created_at"]).tzinfo is not None


def test_duplicate_version_exits_1_and_changes_nothing(cli: Cli) -> None:
    assert register(cli).exit_code == 0
    before = snapshot(cli.engine)
    result = register(cli)
    assert result.exit_code == 1
    assert "error: model 'fraud' already has a version '1.0'" in result.stderr
    assert "hint: versions are immutable" in result.stderr
    assert snapshot(cli.engine) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["register", "fraud detector", "1.0"], "name: must be 1-64 lower-case ASCII"),
        (["register", "fr\u0430ud", "1.0"], "U+0430 CYRILLIC SMALL LETTER A"),
        (["register", "a" * 300, "1.0"], "name: String should have at most 64 characters"),
        (["register", "fraud", "1 0"], "version: must be 1-64 ASCII"),
        (["register", "fraud", "1.0", "-m", "auc=nan"], "--metrics auc: 'nan' is not a finite"),
        (["register", "fraud", "1.0", "-m", "auc=high"], "--metrics auc: 'high' is not a number"),
        (["register", "fraud", "1.0", "-m", "auc"], "expected key=value"),
        (["register", "fraud", "1.0", "--git-commit", "nothex"], "git_commit: String should"),
        (["register", "fraud", "1.0", "--image", "a\nb"], "image: must be one line"),
        (["register", "fraud", "1.0"], "error: a version needs something to deploy: an image, an"),
        (["register", "fraud", "1.0", "--image", " ", "--artifact-uri", ""], "something to deploy"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(cli: Cli, args: list[str], message: str) -> None:
    register(cli, model="other")
    before = snapshot(cli.engine)
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert snapshot(cli.engine) == before


def test_usage_errors_exit_2(cli: Cli) -> None:
    assert cli("register").exit_code == 2
    assert cli("register", "fraud", "1.0", "--stage", "heaven").exit_code == 2
    assert cli("no-such-command").exit_code == 2


def test_unknown_model_exits_1_with_a_hint(cli: Cli) -> None:
    register(cli, model="fraud-detector")
    result = cli("versions", "fraud")
    assert result.exit_code == 1
    assert "error: no model named 'fraud'" in result.stderr
    assert "hint: did you mean fraud-detector?" in result.stderr


def test_values_are_printed_literally_not_as_markup(cli: Cli) -> None:
    register(cli, "--description", "[bold]not bold[/bold]", model="tricky")
    result = cli("models", "list")
    assert "[bold]not bold[/bold]" in result.stdout


# --- status and history -----------------------------------------------------------------------


def test_status_on_an_empty_and_a_filled_registry(cli: Cli) -> None:
    empty = cli("status")
    assert empty.exit_code == 0
    assert "no models yet (try `modeldeck register` or `modeldeck demo`)" in empty.stdout
    register(cli)
    rows = cli.json("status")
    assert {(r["model"], r["environment"], r["version"]) for r in rows} == {
        ("fraud", "staging", None),
        ("fraud", "production", None),
    }
    assert cli.json("status", "fraud") == rows
    assert cli("status", "nope").exit_code == 1
    assert cli.json("history", "fraud") == {"data": [], "count": 0}
    assert cli("history", "fraud", "--env", "qa").exit_code == 1


# --- tokens ------------------------------------------------------------------------------------


def test_token_create_shows_it_once_and_stores_the_hash(cli: Cli) -> None:
    result = cli("token", "create", "ci-pipeline", "--role", "deployer", "--expires-in-days", "30")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("mdk_") and "copy it now" in result.stdout
    assert token not in repr(snapshot(cli.engine))
    listed = cli("token", "list")
    assert "ci-pipeline" in listed.stdout and token not in listed.stdout
    (row,) = cli.json("token", "list")
    assert row["role"] == "deployer" and row["expires_at"] and "token" not in row
    created = cli.json("token", "create", "bot")
    assert created["token"].startswith("mdk_") and created["role"] == "viewer"
    revoked = cli("token", "revoke", str(row["id"]))
    assert revoked.exit_code == 0 and f"token {row['id']} revoked" in revoked.stdout
    with Session(cli.engine) as session:
        stored = session.get(ApiToken, row["id"])
        assert stored is not None and stored.revoked_at is not None


def test_bad_token_commands(cli: Cli) -> None:
    cli("status")  # creates the schema
    before = snapshot(cli.engine)
    assert cli("token", "create", "x", "--role", "god").exit_code == 2
    assert cli("token", "create", "x", "--expires-in-days", "0").exit_code == 2
    blank = cli("token", "create", "   ")
    assert blank.exit_code == 2 and "token name must be 1-100 characters" in blank.stderr
    missing = cli("token", "revoke", "42")
    assert missing.exit_code == 1 and "no API token with id 42" in missing.stderr
    assert snapshot(cli.engine) == before


# --- configuration and database ---------------------------------------------------------------


def test_bad_config_exits_1_naming_the_key_and_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("clusters:\n  - name: sim\n    gpus: many\n")
    result = CliRunner().invoke(app, ["--config", str(bad), "status"])
    assert result.exit_code == 1
    assert f"error: {bad}: clusters[sim].gpus: Input should be a valid integer" in result.stderr
    assert "Traceback" not in result.output


def test_db_upgrade_reports_the_revision(cli: Cli) -> None:
    first = cli.json("db", "upgrade")
    assert first == {"before": None, "after": first["after"]} and first["after"]
    again = cli.json("db", "upgrade")
    assert again == {"before": first["after"], "after": first["after"]}


def test_environment_variable_picks_the_database(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    env = {"MODELDECK_DATABASE_URL": f"sqlite:///{other}"}
    result = cli("register", "fraud", "1.0", "--image", "img:1", env=env)
    assert result.exit_code == 0, result.output
    assert other.exists() and not (tmp_path / "md.db").exists()


def test_unreachable_database_exits_1_without_the_url(tmp_path: Path) -> None:
    cli = Cli(tmp_path, "postgresql://modeldeck:s3cret@127.0.0.1:1/none")
    result = cli("status")
    assert result.exit_code == 1
    assert "error: cannot use the database" in result.stderr
    assert "s3cret" not in result.output


@pytest.fixture
def pg_url() -> Iterator[str]:
    testdb.require_postgres()
    url, schema = testdb.postgres_schema_url()
    yield url
    testdb.drop_schema(schema)


@pytest.mark.postgres
def test_postgres_needs_db_upgrade_first(tmp_path: Path, pg_url: str) -> None:
    cli = Cli(tmp_path, pg_url)
    refused = cli("status")
    assert refused.exit_code == 1
    assert "the database has no modeldeck schema yet" in refused.stderr
    assert "modeldeck db upgrade" in refused.stderr
    assert cli.json("db", "upgrade")["before"] is None
    assert register(cli).exit_code == 0
    assert cli.json("versions", "fraud")["count"] == 1
