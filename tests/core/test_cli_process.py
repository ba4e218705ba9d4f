"""The `modeldeck` console script as a real process in a temporary folder: help, --json that
parses, exit codes 0/1/2, errors on stderr (never a traceback), the first demo."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

MODELDECK = Path(sys.executable).with_name("modeldeck")


def run(
    folder: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELDECK_")}
    return subprocess.run(
        [str(MODELDECK), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env={**clean, "MODELDECK_USER": "ana", "COLUMNS": "120", **(env or {})},
        timeout=timeout,
        check=False,
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_help_version_and_usage_errors(tmp_path: Path) -> None:
    helped = run(tmp_path, "--help")
    assert helped.returncode == 0 and helped.stderr == ""
    for command in ("register", "models", "versions", "status", "api", "db", "token", "demo"):
        assert command in helped.stdout
    assert run(tmp_path, "--version").stdout.strip().startswith("modeldeck ")
    bare = run(tmp_path)
    assert bare.returncode == 2 and "Usage: modeldeck" in bare.stdout + bare.stderr
    unknown = run(tmp_path, "frobnicate")
    assert unknown.returncode == 2 and "No such command 'frobnicate'" in unknown.stderr


def test_bad_config_file_exits_1_with_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("databse_url: sqlite:///x.db\n")
    result = run(tmp_path, "--config", "bad.yaml", "status")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: bad.yaml: databse_url: unknown key (check the spelling; see "
        "deploy/modeldeck.example.yaml)"
    )
    assert result.stdout == ""
    (tmp_path / "broken.yaml").write_text("api:\n  port: [\n")
    broken = run(tmp_path, "status", env={"MODELDECK_CONFIG": "broken.yaml"})
    assert broken.returncode == 1 and "broken.yaml: not valid YAML at line 3" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_bad_database_url_or_log_level_exits_1_with_one_clear_line(tmp_path: Path) -> None:
    result = run(tmp_path, "models", "list", env={"MODELDECK_DATABASE_URL": "notaurl"})
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: environment variable MODELDECK_DATABASE_URL: database_url: not a database URL; "
        "use sqlite:///path/to/file.db or postgresql://user@host/database (psycopg 3)"
    ]
    (tmp_path / "modeldeck.yaml").write_text("log_level: LOUD\n")
    api = run(tmp_path, "api", timeout=60)
    assert api.returncode == 1
    assert api.stderr.splitlines() == [
        "error: modeldeck.yaml: log_level: 'LOUD' is not a log level; "
        "use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    ]


def test_api_on_a_port_in_use_exits_1_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(tmp_path, "api", "--port", str(port), timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: port {port} on 127.0.0.1 is already in use; stop the other server or choose "
        "another port with --port"
    ]
    assert not (tmp_path / ".modeldeck").exists()  # refused before the database was touched


def test_register_list_status_with_json_and_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "modeldeck.yaml").write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "sim"}],
                "environments": [
                    {"name": "staging", "cluster": "sim"},
                    {"name": "production", "cluster": "sim"},
                ],
            }
        )
    )
    created = as_json(
        run(
            tmp_path,
            "--json",
            "register",
            "fraud",
            "1.0",
            "--image",
            "img:1",
            "--artifact-uri",
            "s3://a/1",
            "--metrics",
            "auc=0.9",
        )
    )
    assert created["metrics"] == {"auc": 0.9} and created["created_by"] == "cli:ana"
    assert (tmp_path / ".modeldeck" / "modeldeck.db").is_file()  # the default location
    models = as_json(run(tmp_path, "--json", "models", "list"))
    assert [m["name"] for m in models["data"]] == ["fraud"]
    status = as_json(run(tmp_path, "--json", "status", "fraud"))
    assert {row["environment"] for row in status} == {"staging", "production"}
    duplicate = run(tmp_path, "register", "fraud", "1.0", "--image", "img:1")
    assert duplicate.returncode == 1
    assert duplicate.stderr.startswith("error: model 'fraud' already has a version '1.0'")
    malformed = run(tmp_path, "register", "Fraud Detector", "1.0")
    assert malformed.returncode == 2 and "name: must be" in malformed.stderr
    assert as_json(run(tmp_path, "--json", "versions", "fraud"))["count"] == 1


def test_token_create_and_db_upgrade(tmp_path: Path) -> None:
    env = {"MODELDECK_DATABASE_URL": f"sqlite:///{tmp_path}/t.db"}
    upgraded = as_json(run(tmp_path, "--json", "db", "upgrade", env=env))
    assert upgraded["before"] is None and upgraded["after"]
    token = as_json(run(tmp_path, "--json", "token", "create", "ci", "--role", "deployer", env=env))
    assert token["token"].startswith("mdk_") and token["role"] == "deployer"
    assert token["token"].encode() not in (tmp_path / "t.db").read_bytes()


@pytest.mark.slow
def test_first_demo_seeds_and_status_finds_it(tmp_path: Path) -> None:
    """`modeldeck demo --seed-only` builds the world in ./.modeldeck; plain `modeldeck status`
    then finds its config there (no flags), and a second run adds nothing."""
    seeded = as_json(run(tmp_path, "--json", "demo", "--seed-only", timeout=600))
    assert seeded["token"].startswith("mdk_")
    assert (tmp_path / ".modeldeck" / "modeldeck.yaml").is_file()
    rows = as_json(run(tmp_path, "--json", "status"))
    models = {r["model"] for r in rows}
    assert models and {r["environment"] for r in rows} >= {"staging", "production"}
    as_json(run(tmp_path, "--json", "demo", "--seed-only", timeout=600))
    assert {r["model"] for r in as_json(run(tmp_path, "--json", "status"))} == models
