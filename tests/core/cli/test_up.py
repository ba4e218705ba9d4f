"""The process group behind `modeldeck up` and `modeldeck demo`, with real child processes:
health waits name the part that failed, stop() ends children and grandchildren, a child that
ignores SIGTERM is killed after the timeout, and a port in use is refused by `up`."""

from __future__ import annotations

import os
import signal
import socket
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from modeldeck.core.cli.main import app
from modeldeck.core.cli.up import Child, ProcessGroup, StartupFailed, free_port, port_free
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
