"""The process group behind `modeldeck up` and `modeldeck demo`, with real child processes:
health waits name the part that failed, stop() ends children and grandchildren, a child that
ignores SIGTERM is killed after the timeout, and a port in use is refused by `up`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from typer.testing import CliRunner

from modeldeck.core.cli.main import app
from modeldeck.core.cli.up import (
    Child,
    ProcessGroup,
    StartupFailed,
    free_port,
    modeldeck_argv,
    port_free,
    standard_children,
)
from modeldeck.core.config import Settings
from tests.utils.servers import free_port as any_port
from tests.utils.servers import wait_until

HTTP_CHILD = textwrap.dedent("""
    import http.server, sys
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
        def log_message(self, *a):
            pass
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
""")


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_healthy_children_start_and_stop_with_their_grandchildren(tmp_path: Path) -> None:
    port = any_port()
    spawner = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    group = ProcessGroup(
        [
            Child(
                "web", python(HTTP_CHILD, str(port)), health_url=f"http://127.0.0.1:{port}/health"
            ),
            Child("spawner", python(spawner)),
        ],
        log_dir=tmp_path / "logs",
    )
    group.start()
    try:
        group.wait_healthy(timeout=30)
        log = tmp_path / "logs" / "spawner.log"
        grandchild = int(wait_until(lambda: log.read_text().strip(), what="grandchild pid"))
        pids = [c.process.pid for c in group.children if c.process] + [grandchild]
        assert all(psutil.pid_exists(p) for p in pids)
    finally:
        killed = group.stop()
    assert killed == []
    assert all(gone(p) for p in pids)


def test_a_child_that_exits_during_start_up_is_named_with_its_log(tmp_path: Path) -> None:
    port = any_port()
    group = ProcessGroup(
        [
            Child(
                "api",
                python("import sys; print('cannot open the database'); sys.exit(3)"),
                health_url=f"http://127.0.0.1:{port}/readyz",
            ),
        ],
        log_dir=tmp_path,
    )
    group.start()
    try:
        with pytest.raises(StartupFailed) as failed:
            group.wait_healthy(timeout=30)
    finally:
        group.stop()
    assert "api exited with code 3" in failed.value.message
    assert "cannot open the database" in failed.value.message


def test_a_child_that_never_answers_times_out_by_name(tmp_path: Path) -> None:
    port = any_port()
    group = ProcessGroup(
        [
            Child(
                "dashboard",
                python("import time; time.sleep(600)"),
                health_url=f"http://127.0.0.1:{port}/_stcore/health",
            ),
        ],
        log_dir=tmp_path,
    )
    group.start()
    try:
        with pytest.raises(StartupFailed) as failed:
            group.wait_healthy(timeout=1.0)
    finally:
        group.stop()
    assert "not healthy within 1s: dashboard" in failed.value.message


def test_a_child_ignoring_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    group = ProcessGroup([Child("stubborn", python(stubborn))], log_dir=tmp_path, stop_timeout=1.0)
    group.start()
    wait_until(lambda: "ready" in (tmp_path / "stubborn.log").read_text(), what="child")
    child = group.children[0].process
    assert child is not None
    began = time.monotonic()
    assert group.stop() == ["stubborn"]
    assert time.monotonic() - began < 10
    assert child.returncode == -signal.SIGKILL


def test_watch_returns_the_child_that_died(tmp_path: Path) -> None:
    group = ProcessGroup(
        [
            Child("scheduler", python("import time; time.sleep(0.3)")),
            Child("api", python("import time; time.sleep(600)")),
        ],
        log_dir=tmp_path,
    )
    group.start()
    try:
        died = group.watch()
    finally:
        group.stop()
    assert died is not None and died.name == "scheduler"
    assert died.describe_exit().startswith("scheduler exited with code 0")


def test_free_port_keeps_a_free_preferred_port_and_moves_a_taken_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert not port_free("127.0.0.1", busy)
        other = free_port("127.0.0.1", busy)
        assert other != busy and port_free("127.0.0.1", other)
    wanted = any_port()
    assert free_port("127.0.0.1", wanted) == wanted
    assert free_port("127.0.0.1", wanted, avoid={wanted}) != wanted


def test_up_refuses_a_port_in_use_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "modeldeck.yaml"
    config.write_text(f"database_url: sqlite:///{tmp_path}/m.db\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELDECK_")}
        result = CliRunner().invoke(
            app,
            ["--config", str(config), "up", "--api-port", str(busy)],
            env={**env, "COLUMNS": "200"},
        )
    assert result.exit_code == 1
    assert f"port {busy} (api) on 127.0.0.1 is already in use" in result.stderr
    assert "--api-port" in result.stderr
    assert not (tmp_path / "m.db").exists()  # refused before the database was touched


def test_dashboard_secrets_reach_the_dashboard_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up --dashboard-secrets` becomes `modeldeck dashboard --secrets <absolute path>`; the
    path is made absolute because the child may resolve it from another directory."""
    settings = Settings()
    ports: dict[str, Any] = {"config": None, "api_port": 8000, "dashboard_port": 8501}
    plain = {c.name: c for c in standard_children(settings, host="127.0.0.1", **ports)}
    assert "--secrets" not in plain["dashboard"].argv
    monkeypatch.chdir(tmp_path)
    signed = {
        c.name: c
        for c in standard_children(
            settings, host="127.0.0.1", dashboard_secrets=Path("secrets.toml"), **ports
        )
    }
    argv = signed["dashboard"].argv
    assert argv[argv.index("dashboard") :] == [
        "dashboard",
        "--host",
        "127.0.0.1",
        "--port",
        "8501",
        "--secrets",
        str(tmp_path / "secrets.toml"),
    ]
    assert signed["api"].argv == plain["api"].argv


def test_up_refuses_dashboard_secrets_that_do_not_exist(tmp_path: Path) -> None:
    config = tmp_path / "modeldeck.yaml"
    config.write_text(f"database_url: sqlite:///{tmp_path}/m.db\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELDECK_")}
    missing = tmp_path / "nowhere" / "secrets.toml"
    result = CliRunner().invoke(
        app,
        ["--config", str(config), "up", "--dashboard-secrets", str(missing)],
        env={**env, "COLUMNS": "200"},
    )
    assert result.exit_code == 2
    assert "--dashboard-secrets" in result.stderr and "does not exist" in result.stderr
    assert not (tmp_path / "m.db").exists()  # refused before anything was prepared


def _group_members(pgids: set[int]) -> list[psutil.Process]:
    """Live (not zombie) processes in these process groups."""
    alive = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) in pgids:
                alive.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return alive


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_up_runs_the_real_parts_and_sigint_stops_them_all(tmp_path: Path) -> None:
    """The real `modeldeck up` (SQLite, free ports, --log-dir): API and dashboard answer, the
    dashboard got --secrets, and SIGINT (Ctrl-C) ends it with 0, every child and grandchild
    gone and both ports free again."""
    api_port = any_port()
    dashboard_port = free_port("127.0.0.1", avoid={api_port})
    config = tmp_path / "modeldeck.yaml"
    config.write_text(f"database_url: sqlite:///{tmp_path}/m.db\ndata_dir: {tmp_path}/data\n")
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{dashboard_port}/oauth2callback"\n'
        'cookie_secret = "a-test-cookie-secret-of-enough-length"\n'
        'client_id = "modeldeck-test"\n'
        'client_secret = "not-a-real-secret"\n'
        'server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELDECK_")}
    argv = modeldeck_argv(
        "up",
        "--host",
        "127.0.0.1",
        "--api-port",
        str(api_port),
        "--dashboard-port",
        str(dashboard_port),
        "--log-dir",
        str(tmp_path / "logs"),
        "--dashboard-secrets",
        str(secrets),
        config=config,
    )
    with (tmp_path / "up.out").open("wb") as out:
        up = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    parent = psutil.Process(up.pid)
    family: list[psutil.Process] = []
    try:
        with httpx.Client(timeout=2.0, trust_env=False) as client:

            def answers(url: str) -> bool:
                assert up.poll() is None, (tmp_path / "up.out").read_text()
                try:
                    return client.get(url).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(
                lambda: answers(f"http://127.0.0.1:{api_port}/readyz"), timeout=60, what="API"
            )
            wait_until(
                lambda: answers(f"http://127.0.0.1:{dashboard_port}/_stcore/health"),
                timeout=60,
                what="dashboard",
            )
        family = parent.children(recursive=True)
        lines = [p.cmdline() for p in family]
        dashboard = next(c for c in lines if "dashboard" in c and "--secrets" in c)
        assert dashboard[dashboard.index("--secrets") + 1] == str(secrets)
        assert any("streamlit" in c and str(secrets) in c for c in lines)
        children = {p.pid for p in parent.children()}
        assert {c.stem for c in (tmp_path / "logs").glob("*.log")} == {
            "api",
            "scheduler",
            "dashboard",
        }

        began = time.monotonic()
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0, (tmp_path / "up.out").read_text()
        assert time.monotonic() - began < 30
        assert all(gone(p.pid) for p in family)
        assert _group_members(children) == []
        assert port_free("127.0.0.1", api_port) and port_free("127.0.0.1", dashboard_port)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(10)
        for proc in family:  # only what this test started
            with contextlib.suppress(psutil.Error):
                proc.kill()
