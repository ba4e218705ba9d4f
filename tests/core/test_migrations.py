"""The alembic migration creates exactly the schema the models describe, on both databases.

If this fails after you changed a table: run scripts/regen-migration (pre-1.0) and commit the
regenerated core/migrations/versions/0001_initial.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from modeldeck.core import db
from modeldeck.core.tables import metadata
from tests.utils import db as testdb
from tests.utils.servers import wait_until

CORE = Path(__file__).parents[2] / "core"

# DESIGN §2, table by table (columns named as in the code).
DESIGN_TABLES: dict[str, set[str]] = {
    "model": {"id", "name", "description", "owner", "team", "task_type", "created_at"},
    "model_version": {
        "id",
        "model_id",
        "version",
        "image",
        "artifact_uri",
        "reference_data_uri",
        "training_data_fingerprint",
        "git_commit",
        "metrics",
        "params",
        "created_by",
        "created_at",
        "stage",
    },
    "environment": {
        "id",
        "name",
        "cluster",
        "namespace",
        "requires_previous",
        "approvals_required",
        "auto_rollback",
        "backend",
        "target",
    },
    "deployment": {
        "id",
        "model_id",
        "environment_id",
        "version_id",
        "previous_deployment_id",
        "state",
        "reason",
        "requested_by",
        "requested_via",
        "idempotency_key",
        "started_at",
        "finished_at",
        "message",
    },
    "approval": {"id", "deployment_id", "approver", "decision", "at"},
    "check_result": {
        "id",
        "deployment_id",
        "kind",
        "window_start",
        "window_end",
        "status",
        "score",
        "details",
        "reference_hash",
        "duration_ms",
    },
    "alert": {
        "id",
        "fingerprint",
        "rule",
        "severity",
        "model_id",
        "version_id",
        "environment_id",
        "status",
        "first_seen",
        "last_seen",
        "last_notified",
        "snoozed_until",
        "snoozed_by",
        "count",
    },
    "outbox_message": {
        "id",
        "channel",
        "payload",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "error",
    },
    "audit_event": {
        "id",
        "at",
        "actor",
        "via",
        "action",
        "target",
        "before",
        "after",
        "request_id",
    },
    "api_token": {"id", "name", "hash", "role", "created_at", "expires_at", "revoked_at"},
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database (not the migrated template the other tests copy)."""
    if request.param == "sqlite":
        engine = db.make_engine(f"sqlite:///{tmp_path}/fresh.db")
        yield engine
        engine.dispose()
        return
    testdb.require_postgres()
    url, schema = testdb.postgres_schema_url()
    engine = db.make_engine(url, pool_size=2)
    try:
        yield engine
    finally:
        engine.dispose()
        testdb.drop_schema(schema)


def differences(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def test_upgrade_head_matches_the_models(fresh_engine: Engine) -> None:
    head = ScriptDirectory.from_config(db.alembic_config(fresh_engine)).get_current_head()
    assert db.current_revision(fresh_engine) is None
    db.upgrade(fresh_engine)
    assert db.current_revision(fresh_engine) == head
    assert differences(fresh_engine) == [], "models and migration differ: run regen-migration"


def test_upgrade_creates_every_design_table(fresh_engine: Engine) -> None:
    db.upgrade(fresh_engine)
    inspector = inspect(fresh_engine)
    tables = set(inspector.get_table_names())
    missing = set(DESIGN_TABLES) - tables
    assert not missing
    for name, columns in DESIGN_TABLES.items():
        have = {c["name"] for c in inspector.get_columns(name)}
        assert columns <= have, f"{name} lacks {columns - have}"


def test_upgrade_twice_is_a_no_op(fresh_engine: Engine) -> None:
    db.upgrade(fresh_engine)
    first = db.current_revision(fresh_engine)
    db.upgrade(fresh_engine)
    assert db.current_revision(fresh_engine) == first
    assert differences(fresh_engine) == []


def test_one_rollout_per_model_and_environment_is_a_database_rule(
    fresh_engine: Engine,
) -> None:
    db.upgrade(fresh_engine)
    indexes = {i["name"]: i for i in inspect(fresh_engine).get_indexes("deployment")}
    for name in ("uq_deployment_in_flight", "uq_deployment_active"):
        assert indexes[name]["unique"], name
        assert indexes[name]["column_names"] == ["model_id", "environment_id"]


def test_every_table_module_is_imported_by_tables_py() -> None:
    """A table defined in some core/**/models.py but not imported in core/tables.py would be
    invisible to alembic: compare what tables.py sees with what importing every models.py
    defines (in a fresh interpreter, so this test's own imports do not hide the gap)."""
    modules = sorted(
        "modeldeck.core." + ".".join(p.relative_to(CORE).with_suffix("").parts)
        for p in CORE.rglob("models.py")
    )
    script = (
        "import importlib, json, sys\n"
        "from modeldeck.core.tables import metadata\n"
        "seen = set(metadata.tables)\n"
        "for name in sys.argv[1:]: importlib.import_module(name)\n"
        "print(json.dumps(sorted(set(metadata.tables) - seen)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *modules],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    forgotten = json.loads(result.stdout.strip().splitlines()[-1])
    assert forgotten == [], f"import these table modules in core/tables.py: {forgotten}"


@pytest.mark.postgres
def test_pods_migrating_together_on_postgres_all_succeed(tmp_path: Path) -> None:
    """Kubernetes starts every pod's `db upgrade` init container at once on a fresh database:
    they take turns (advisory lock) instead of racing to create the same tables."""
    testdb.require_postgres()
    url, schema = testdb.postgres_schema_url()
    go = tmp_path / "go"
    code = (
        "import os, sys, time\n"
        "from modeldeck.core import db\n"
        "engine = db.make_engine(sys.argv[1])\n"
        "open(sys.argv[3], 'w').close()\n"
        "while not os.path.exists(sys.argv[2]):\n"
        "    time.sleep(0.002)\n"
        "db.upgrade(engine)\n"
    )
    try:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, url, str(go), str(tmp_path / f"ready-{i}")],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for i in range(6)
        ]
        wait_until(lambda: len(list(tmp_path.glob("ready-*"))) == 6, what="six migrators")
        go.touch()
        outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, outputs
        engine = db.make_engine(url)
        head = ScriptDirectory.from_config(db.alembic_config(engine)).get_current_head()
        assert db.current_revision(engine) == head
        engine.dispose()
    finally:
        testdb.drop_schema(schema)
