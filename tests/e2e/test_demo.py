"""`modeldeck demo` as a real process: the seeded world shows exactly the planted problems,
the servers start and answer, Ctrl-C leaves no process behind, a second run reuses the world,
and an interrupted build is rebuilt.

The world is built once per module (`modeldeck demo --seed-only`, the same code path as the
plain command) and its seeding time is printed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import psutil
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from modeldeck.core import db
from modeldeck.core.alerts.models import OPEN, Alert
from modeldeck.core.clock import as_utc
from modeldeck.core.demo import home, world
from modeldeck.core.environments.models import Environment
from modeldeck.core.monitoring.models import CheckKind, CheckResult, CheckStatus
from modeldeck.core.registry.models import Model, ModelVersion
from modeldeck.core.rollouts.models import Approval, Deployment, DeploymentKind, DeploymentState
from tests.utils.prometheus import require_prometheus
from tests.utils.servers import wait_until

# One worker builds the world once for the whole module (scripts/test runs --dist loadgroup).
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(1500),
    pytest.mark.xdist_group("demo-world"),
]
MODELDECK = Path(sys.executable).with_name("modeldeck")


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODELDECK_")}
    return {**clean, "COLUMNS": "200", "MODELDECK_USER": "tester"}


def modeldeck(folder: Path, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MODELDECK), *args],
        cwd=folder,
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start(folder: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(MODELDECK), *args],
        cwd=folder,
        env=env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def descendants(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def read_until(stream: IO[str], marker: str, timeout: float) -> str:
    """Lines of a child's output until one contains `marker` (fails on EOF or timeout)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            raise AssertionError(f"output ended before {marker!r}:\n{''.join(seen)}")
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no {marker!r} within {timeout}s:\n{''.join(seen)}")


@dataclass
class World:
    folder: Path
    engine: Engine
    start: datetime
    summary: dict[str, Any]

    def day(self, at: datetime) -> float:
        return (as_utc(at) - self.start) / timedelta(days=1)


@pytest.fixture(scope="module")
def demo_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_prometheus()  # the idle-GPU alert needs GPU history from a real Prometheus
    folder = tmp_path_factory.mktemp("demo")
    began = time.perf_counter()
    result = modeldeck(folder, "--json", "demo", "--seed-only")
    seconds = time.perf_counter() - began
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    state = json.loads((folder / ".modeldeck" / "demo.json").read_text())
    print(
        f"\ndemo seeding: {seconds:.0f}s wall for the command, build {state['seconds']}s "
        f"wall / {state['cpu_seconds']}s CPU; counts {state['counts']}"
    )
    engine = db.make_engine(f"sqlite:///{folder}/.modeldeck/modeldeck.db")
    end = as_utc(datetime.fromisoformat(state["end"]))
    yield World(folder, engine, end - timedelta(days=world.DAYS), summary)
    engine.dispose()


def results(w: World, model: str, env: str, kind: CheckKind) -> list[tuple[CheckResult, str]]:
    with Session(w.engine) as session:
        rows = session.exec(
            select(CheckResult, ModelVersion.version)
            .join(Deployment, col(Deployment.id) == CheckResult.deployment_id)
            .join(Model, col(Model.id) == Deployment.model_id)
            .join(Environment, col(Environment.id) == Deployment.environment_id)
            .join(ModelVersion, col(ModelVersion.id) == Deployment.version_id)
            .where(Model.name == model, Environment.name == env, CheckResult.kind == kind)
            .order_by(col(CheckResult.window_end))
        ).all()
    return [(r, v) for r, v in rows]


def alerts(w: World, model: str | None = None, env: str | None = None) -> list[Alert]:
    with Session(w.engine) as session:
        query = select(Alert)
        if model is not None:
            model_id = session.exec(select(Model.id).where(Model.name == model)).one()
            query = query.where(Alert.model_id == model_id)
        if env is not None:
            env_id = session.exec(select(Environment.id).where(Environment.name == env)).one()
            query = query.where(Alert.environment_id == env_id)
        return list(session.exec(query.order_by(col(Alert.first_seen))).all())


def test_the_build_reports_its_world(demo_world: World) -> None:
    built = demo_world.summary["built"]
    assert demo_world.summary["token"].startswith("mdk_")
    assert built["counts"]["predictions"] > 2_000_000
    assert built["counts"]["checks"] > 1000
    assert "hourly GPU rows" in built["gpu_note"]
    assert home.Home(demo_world.folder / ".modeldeck").why_rebuild() is None


def test_fraud_inputs_drift_on_the_shifted_columns_from_about_day_60(demo_world: World) -> None:
    checks = results(demo_world, "fraud-detector", "production", CheckKind.drift)
    failed = [r for r, _ in checks if r.status == CheckStatus.fail]
    assert failed, "no drift found"
    assert all(demo_world.day(r.window_end) > world.DRIFT_START for r in failed)
    assert demo_world.day(failed[0].window_end) < world.DRIFT_START + 12
    for r in failed:
        drifted = {c for c, d in r.details["columns"].items() if d["drifted"]}
        assert {"amount", "merchant_category"} <= drifted
        assert drifted <= {"amount", "merchant_category", "txn_count_24h", "device_age_days"}
    fired = [a for a in alerts(demo_world, "fraud-detector") if a.rule == "drift"]
    assert fired and all(demo_world.day(a.first_seen) > world.DRIFT_START for a in fired)
    # production still runs the drifted 1.4.1; staging's 1.4.1 alert resolved when 1.5.0
    # (retrained on the drifted data) replaced it there
    prod = [a for a in alerts(demo_world, "fraud-detector", "production") if a.rule == "drift"]
    assert prod and "amount" in prod[-1].summary and prod[-1].status == "firing"
    staging = [a for a in alerts(demo_world, "fraud-detector", "staging") if a.rule == "drift"]
    assert all(a.status == "resolved" for a in staging)


def test_the_churn_upstream_break_on_day_80_fails_data_quality(demo_world: World) -> None:
    checks = results(demo_world, "churn-predictor", "production", CheckKind.quality)
    failed = [r for r, _ in checks if r.status == CheckStatus.fail]
    assert failed
    first = failed[0]
    assert world.BREAK_DAY < demo_world.day(first.window_end) <= world.BREAK_DAY + 1.01
    assert all(
        r.status != CheckStatus.fail
        for r, _ in checks
        if demo_world.day(r.window_end) <= world.BREAK_DAY
    )
    columns = first.details["columns"]
    assert columns["monthly_spend"]["missing_share"] == 1.0
    assert "family" in columns["plan"]["new_categories"]
    fired = {a.rule for a in alerts(demo_world, "churn-predictor") if a.status in OPEN}
    assert "quality" in fired


def test_eta_decays_below_its_reference(demo_world: World) -> None:
    checks = results(demo_world, "eta-regressor", "production", CheckKind.decay)
    failed = [r for r, _ in checks if r.status == CheckStatus.fail]
    assert failed and demo_world.day(failed[0].window_end) > world.DECAY_START
    last = checks[-1][0]
    assert last.status == CheckStatus.fail and last.details["source"] == "realised"
    mae = last.details["metrics"]["mae"]
    assert mae["realised"] > 1.5 * mae["reference"]
    decay = [a for a in alerts(demo_world, "eta-regressor") if a.rule == "performance_drop"]
    assert any(a.status == "firing" for a in decay)


def test_the_idle_gpu_is_found(demo_world: World) -> None:
    idle = [a for a in alerts(demo_world, world.IDLE_GPU_MODEL) if a.rule == "gpu_idle"]
    assert len(idle) == 1 and idle[0].status == "firing"
    assert "utilisation" in idle[0].summary


def test_nothing_fires_for_the_healthy_model(demo_world: World) -> None:
    assert alerts(demo_world, world.HEALTHY_MODEL) == []
    for env in ("staging", "production"):
        for kind in (CheckKind.drift, CheckKind.quality, CheckKind.decay):
            rows = results(demo_world, world.HEALTHY_MODEL, env, kind)
            assert rows, (env, kind)
            assert {r.status for r, _ in rows} <= {CheckStatus.ok, CheckStatus.warn}, (env, kind)


def test_the_history_has_promotions_approvals_and_one_rollback(demo_world: World) -> None:
    with Session(demo_world.engine) as session:
        deployments = session.exec(select(Deployment)).all()
        approvals = session.exec(select(Approval)).all()
    rollbacks = [d for d in deployments if d.kind == DeploymentKind.rollback]
    assert len(rollbacks) == 1 and "latency" in rollbacks[0].reason
    assert rollbacks[0].requested_via == "slack"
    assert len(approvals) >= 8
    assert all(a.approver == world.APPROVER.name for a in approvals)
    waiting = [d for d in deployments if d.state == DeploymentState.awaiting_approval]
    assert len(waiting) == 1
    active = [d for d in deployments if d.state == DeploymentState.active]
    assert len(active) == 8  # four models in two environments


def test_a_second_run_reuses_the_world(demo_world: World) -> None:
    with Session(demo_world.engine) as session:
        before = len(session.exec(select(Deployment.id)).all())
    again = modeldeck(demo_world.folder, "--json", "demo", "--seed-only", timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["built"] is None
    with Session(demo_world.engine) as session:
        assert len(session.exec(select(Deployment.id)).all()) == before


def test_the_demo_serves_and_ctrl_c_stops_every_process(demo_world: World) -> None:
    demo = start(demo_world.folder, "demo", "--port", "0")
    try:
        assert demo.stdout is not None
        text = read_until(demo.stdout, "Ctrl-C stops everything", timeout=300)
        api = re.search(r"API\s+(http://127\.0\.0\.1:\d+)/api/v1", text)
        dashboard = re.search(r"Dashboard\s+(http://127\.0\.0\.1:\d+)", text)
        assert api and dashboard, text
        assert httpx.get(f"{api[1]}/readyz", timeout=10).status_code == 200
        assert httpx.get(f"{dashboard[1]}/_stcore/health", timeout=10).text == "ok"
        children = descendants(demo.pid)
        assert len(children) >= 5  # prometheus, api, scheduler, dashboard (+ streamlit)
        second = modeldeck(demo_world.folder, "demo", "--seed-only", timeout=120)
        assert second.returncode == 1 and "a demo is already running" in second.stderr
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(timeout=60)
    assert code == 0, demo.stderr.read() if demo.stderr else ""
    wait_until(
        lambda: not any(alive(p) for p in children),
        timeout=20,
        what="every child of the demo to exit",
    )


def test_an_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / ".modeldeck").write_text("a file where the folder should be")
    result = modeldeck(tmp_path, "demo", "--seed-only", timeout=120)
    assert result.returncode == 1
    assert "cannot write the demo folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_ctrl_c_while_building_leaves_a_world_the_next_run_rebuilds(tmp_path: Path) -> None:
    state = tmp_path / ".modeldeck" / home.STATE_FILE
    build = start(tmp_path, "demo", "--seed-only")
    try:
        wait_until(
            lambda: state.exists() and len(descendants(build.pid)) >= 2,
            timeout=120,
            interval=0.2,
            what="the seeding workers",
        )
        workers = descendants(build.pid)
    finally:
        build.send_signal(signal.SIGINT)
        code = build.wait(timeout=60)
    assert code == 130
    assert "the next `modeldeck demo` rebuilds it" in (build.stderr.read() if build.stderr else "")
    wait_until(lambda: not any(alive(p) for p in workers), timeout=20, what="workers to exit")
    assert json.loads(state.read_text())["state"] == home.BUILDING
    again = start(tmp_path, "demo", "--seed-only")
    try:
        assert again.stderr is not None
        read_until(again.stderr, "the last build did not finish", timeout=120)
    finally:
        again.send_signal(signal.SIGINT)
        assert again.wait(timeout=60) == 130
