"""`modeldeck promote / rollback / approve / reject` through the real Typer app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlmodel import Session, select
from typer.testing import CliRunner

from modeldeck.core import db
from modeldeck.core.cli.main import app
from modeldeck.core.rollouts.models import Deployment
from tests.core.rollouts.world import TABLES


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """Staging rolls out in 0.3 s of real time; production needs one approval."""
    path = tmp_path / "modeldeck.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database_url": f"sqlite:///{tmp_path}/cli.db",
                "data_dir": str(tmp_path / "data"),
                "clusters": [{"name": "gpu-l4", "rollout_seconds": 0.3}, {"name": "gpu-a100"}],
                "environments": [
                    {"name": "staging", "cluster": "gpu-l4", "aliases": ["stg"]},
                    {
                        "name": "production",
                        "cluster": "gpu-a100",
                        "aliases": ["prod"],
                        "requires_previous": "staging",
                        "approvals_required": 1,
                    },
                ],
            }
        )
    )
    return path


def run(config: Path, *args: str, user: str = "alice") -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app, ["--config", str(config), *args], env={"MODELDECK_USER": user, "COLUMNS": "200"}
    )
    return result.exit_code, result.stdout, result.stderr


def rows(config: Path) -> dict[str, int]:
    engine = db.make_engine(f"sqlite:///{config.parent}/cli.db")
    with Session(engine) as session:
        out = {
            t: len(session.connection().exec_driver_sql(f"SELECT id FROM {t}").all())
            for t in TABLES
        }
    engine.dispose()
    return out


def _json(out: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(out)
    return data


@pytest.fixture
def registered(config: Path) -> Path:
    for version in ("1.0.0", "1.1.0"):
        code, _, err = run(
            config, "register", "fraud", version, "--image", f"ghcr.io/acme/fraud:{version}"
        )
        assert code == 0, err
    return config


def test_promote_wait_approve_and_rollback(registered: Path) -> None:
    code, out, err = run(
        registered,
        "promote",
        "fraud",
        "1.0.0",
        "--to",
        "stg",
        "--wait",
        "--interval",
        "0.1",
        "-r",
        "first cut",
    )
    assert code == 0, err
    assert "fraud 1.0.0 → staging (deployment #1): active" in out
    code, out, _ = run(registered, "--json", "promote", "fraud", "1.0.0", "--to", "prod")
    assert code == 0
    waiting = _json(out)
    assert waiting["state"] == "awaiting_approval"
    code, out, err = run(registered, "approve", str(waiting["id"]))
    assert code == 1
    assert "cli:alice requested deployment #2 and cannot approve it (two-person rule)" in err
    code, out, err = run(registered, "approve", str(waiting["id"]), "-m", "ok", user="bob")
    assert code == 0, err
    assert "fraud 1.0.0 → production (deployment #2): active" in out
    code, out, err = run(registered, "rollback", "fraud", "--env", "prod")
    assert code == 1
    assert "fraud has no earlier version in production to roll back to" in err


def test_rollback_to_a_version_not_in_the_history_is_a_usage_error(registered: Path) -> None:
    code, _, err = run(
        registered, "promote", "fraud", "1.0.0", "--to", "staging", "--wait", "--interval", "0.1"
    )
    assert code == 0, err
    before = rows(registered)
    code, _, err = run(registered, "rollback", "fraud", "--env", "staging", "--to", "1.1.0")
    assert code == 2
    assert "fraud 1.1.0 never ran in staging" in err
    assert rows(registered) == before


def test_refusals_exit_non_zero_and_change_nothing(registered: Path) -> None:
    run(registered, "status")  # creates the schema, syncs environments
    before = rows(registered)
    code, _, err = run(registered, "promote", "fraud", "1.0.0", "--to", "production")
    assert code == 1 and "has not been active in staging" in err
    assert "hint: modeldeck promote fraud 1.0.0 --to staging" in err
    code, _, err = run(registered, "promote", "fraud", "3.0.0", "--to", "staging")
    assert code == 1 and "has no version '3.0.0'" in err
    code, _, err = run(registered, "promote", "fraud", "1.0.0", "--to", "qa")
    assert code == 1 and "no environment named 'qa'" in err
    code, _, err = run(registered, "promote", "fraud", "1.0.0")
    assert code == 2 and "--to" in err
    code, _, err = run(registered, "approve", "42")
    assert code == 1 and "no deployment with id 42" in err
    code, _, err = run(registered, "approve", "0")
    assert code == 2
    assert rows(registered) == before


def test_reject_from_the_cli(registered: Path) -> None:
    run(registered, "promote", "fraud", "1.0.0", "--to", "staging", "--wait", "--interval", "0.1")
    code, out, _ = run(registered, "--json", "promote", "fraud", "1.0.0", "--to", "prod")
    dep_id = _json(out)["id"]
    code, out, err = run(registered, "reject", str(dep_id), "-m", "not now", user="bob")
    assert code == 0, err
    assert "rejected by cli:bob: not now" in out
    code, _, err = run(registered, "approve", str(dep_id), user="carol")
    assert code == 1 and "is rejected" in err


def test_a_failed_rollout_with_wait_exits_1(registered: Path, config: Path) -> None:
    data = yaml.safe_load(config.read_text())
    data["clusters"][0]["failure_rate"] = 1.0
    config.write_text(yaml.safe_dump(data))
    code, out, err = run(
        config, "promote", "fraud", "1.0.0", "--to", "staging", "--wait", "--interval", "0.1"
    )
    assert code == 1
    assert "staging (deployment #1): failed: rollout of 1.0.0 failed" in err
    engine = db.make_engine(f"sqlite:///{config.parent}/cli.db")
    with Session(engine) as session:
        assert session.exec(select(Deployment.state)).all() == ["failed"]
    engine.dispose()


def test_without_wait_a_slow_rollout_is_reported_as_rolling_out(registered: Path) -> None:
    code, out, err = run(registered, "promote", "fraud", "1.0.0", "--to", "staging")
    assert code == 0, err
    assert "rolling_out" in out
