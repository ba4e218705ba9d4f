"""`modeldeck up`: API + scheduler + bot + dashboard as one process group on one machine.

Each part is its own child process (the same commands that run alone), so one crashing never
takes another's memory with it and `ps` shows what runs. The parent migrates the database once
(children must not race on a fresh SQLite file), starts each child in its own session, names the
one that fails its health check, and on Ctrl-C or SIGTERM stops them newest first. On Linux a
child also gets SIGTERM if the parent dies uncleanly (PR_SET_PDEATHSIG): no orphan keeps a port.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Annotated

import httpx
import psutil
import typer

from modeldeck.core.cli import context, dashboard, output
from modeldeck.core.cli.serve import ensure_port_free
from modeldeck.core.config import Settings
from modeldeck.core.errors import ModeldeckError

STOP_TIMEOUT = 10.0
START_TIMEOUT = 90.0
DASHBOARD_PORT = 8501
LOG_TAIL = 2000


class StartupFailed(ModeldeckError):
    """A child did not become healthy; the message names it and quotes its log."""


@dataclass
class Child:
    """One part of the group: the command to run and how to tell it is up."""

    name: str
    argv: list[str]
    health_url: str | None = None  # polled until 200; None: "running" is healthy
    url: str | None = None  # what to print for people
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def describe_exit(self) -> str:
        assert self.process is not None
        code = self.process.returncode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return f"{self.name} {how}{self.log_tail()}"

    def log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_bytes()[-LOG_TAIL:].decode("utf-8", "replace").strip()
        return f"\n--- last lines of {self.log_path} ---\n{text}" if text else ""


def modeldeck_argv(*args: str, config: Path | str | None = None) -> list[str]:
    """The command line of `modeldeck ARGS` with this interpreter (works without PATH)."""
    script = Path(sys.executable).with_name("modeldeck")
    head = (
        [sys.executable, str(script)]
        if script.exists()
        else [sys.executable, "-c", "from modeldeck.core.cli.main import main; main()"]
    )
    return [*head, *(["--config", str(config)] if config else []), *args]


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", preferred: int = 0, avoid: set[int] | None = None) -> int:
    """`preferred` when nothing listens there, else a free port the OS picks."""
    if preferred and preferred not in (avoid or set()) and port_free(host, preferred):
        return preferred
    while True:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in (avoid or set()):
            return port


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux only)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


class ProcessGroup:
    """Start, watch and stop a list of children."""

    def __init__(
        self,
        children: list[Child],
        *,
        log_dir: Path | None = None,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self.children = children
        self.log_dir = log_dir
        self.stop_timeout = stop_timeout
        self._stop = threading.Event()
        self._logs: list[IO[bytes]] = []

    def start(self) -> None:
        """Start every child not started yet (a group can grow in phases)."""
        for child in self.children:
            if child.process is not None:
                continue
            stdout: IO[bytes] | None = None
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                child.log_path = self.log_dir / f"{child.name}.log"
                stdout = child.log_path.open("ab")
                self._logs.append(stdout)
            child.process = subprocess.Popen(
                child.argv,
                env={**os.environ, **child.env},
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT if stdout else None,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def wait_healthy(
        self, timeout: float = START_TIMEOUT, children: list[Child] | None = None
    ) -> None:
        """Block until every child (or those given) answers; else StartupFailed names one."""
        deadline = time.monotonic() + timeout
        waiting = list(self.children if children is None else children)
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while waiting:
                for child in list(waiting):
                    if self._stop.is_set():
                        raise KeyboardInterrupt
                    if self._exited(child):
                        raise StartupFailed(f"{child.describe_exit()}")
                    if child.health_url is None or _answers(client, child.health_url):
                        waiting.remove(child)
                if waiting and time.monotonic() > deadline:
                    names = ", ".join(f"{c.name} ({c.health_url})" for c in waiting)
                    tails = "".join(c.log_tail() for c in waiting)
                    raise StartupFailed(f"not healthy within {timeout:g}s: {names}{tails}")
                if waiting:
                    self._stop.wait(0.2)

    def watch(self) -> Child | None:
        """Block until stop() is called (None) or a child exits on its own (that child)."""
        while not self._stop.wait(0.5):
            for child in self.children:
                if self._exited(child):
                    return child
        return None

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> list[str]:
        """SIGTERM each child's group (newest first), SIGKILL on timeout; returns those killed."""
        running = [c for c in reversed(self.children) if c.process and c.process.poll() is None]
        for child in running:
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        killed = []
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGKILL)
                child.process.wait(5)
                killed.append(child.name)
        for child in self.children:  # grandchildren left in a group whose leader exited
            if child.process is not None:
                _signal_group(child, signal.SIGKILL)
        # A killed process lets go of its ports only once it has exited, which on a busy
        # machine is not the moment kill() returns: wait (bounded) for the groups to empty.
        _wait_groups_gone([c.process.pid for c in self.children if c.process], timeout=5.0)
        for handle in self._logs:
            handle.close()
        return killed

    @staticmethod
    def _exited(child: Child) -> bool:
        return child.process is not None and child.process.poll() is not None


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_groups_gone(pgids: list[int], *, timeout: float) -> None:
    """Poll until no live process is left in these process groups. Zombies count as gone:
    an orphan is reaped by PID 1, which in a container may never do it."""
    deadline = time.monotonic() + timeout
    while _live_members(set(pgids)) and time.monotonic() < deadline:
        time.sleep(0.02)


def _live_members(pgids: set[int]) -> list[int]:
    alive = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) in pgids:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return alive


def _signal_group(child: Child, sig: signal.Signals) -> None:
    assert child.process is not None
    try:
        os.killpg(child.process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def stop_on_signals(group: ProcessGroup) -> Iterator[None]:
    """SIGINT and SIGTERM ask the group to stop (handled in the main thread's wait loops)."""

    def _handler(signum: int, _: FrameType | None) -> None:
        group.request_stop()

    previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def bot_problem(settings: Settings) -> str | None:
    """Why the Slack bot cannot start with these settings, or None when it can."""
    slack = settings.slack
    if not slack.enabled:
        return "Slack is off: set slack.bot_token (MODELDECK_SLACK__BOT_TOKEN) to start the bot"
    if slack.mode == "socket" and slack.app_token is None:
        return "Socket Mode needs slack.app_token (MODELDECK_SLACK__APP_TOKEN); bot not started"
    if slack.mode == "http" and slack.signing_secret is None:
        return "HTTP mode needs slack.signing_secret; bot not started"
    return None


def standard_children(
    settings: Settings,
    *,
    config: Path | str | None,
    api_port: int,
    dashboard_port: int,
    host: str,
    dashboard_secrets: Path | None = None,
) -> list[Child]:
    """API, scheduler, bot (only when Slack is fully configured) and dashboard."""
    api = f"http://{host}:{api_port}"
    dash = f"http://{host}:{dashboard_port}"
    children = [
        Child(
            "api",
            modeldeck_argv("api", "--host", host, "--port", str(api_port), config=config),
            health_url=f"{api}/readyz",
            url=f"{api}/docs",
        ),
        Child("scheduler", modeldeck_argv("scheduler", config=config)),
    ]
    if bot_problem(settings) is None:
        children.append(Child("bot", modeldeck_argv("bot", config=config)))
    dash_args = dashboard.args(host=host, port=dashboard_port, secrets=dashboard_secrets)
    children.append(
        Child(
            "dashboard",
            modeldeck_argv(*dash_args, config=config),
            health_url=f"{dash}/_stcore/health",
            url=dash,
        )
    )
    return children


def run_group(
    group: ProcessGroup,
    *,
    timeout: float,
    on_ready: Callable[[], None],
    on_exit: Callable[[], None] | None = None,
) -> int:
    """Start, wait for health, call `on_ready`, watch; 0 after a requested stop, 1 on failure."""
    code = 0
    with stop_on_signals(group):
        try:
            group.start()
            group.wait_healthy(timeout)
            on_ready()
            died = group.watch()
            if died is not None:
                output.error(f"{died.describe_exit()}; stopping the others")
                code = 1
        except StartupFailed as exc:
            output.error(
                exc.message,
                "fix the part that failed, or run it alone to see why (e.g. `modeldeck api`)",
            )
            code = 1
        except KeyboardInterrupt:
            pass
        finally:
            killed = group.stop()
            if on_exit is not None:
                on_exit()
            if killed:
                output.error(f"had to kill {', '.join(killed)} after {group.stop_timeout:g}s")
    return code


def up(
    ctx: typer.Context,
    api_port: Annotated[int | None, typer.Option(help="API port (default api.port).")] = None,
    dashboard_port: Annotated[int, typer.Option(help="Dashboard port.")] = DASHBOARD_PORT,
    host: Annotated[str | None, typer.Option(help="Bind address (default api.host).")] = None,
    log_dir: Annotated[
        Path | None,
        typer.Option(help="Write each part's output to DIR/<part>.log instead of this terminal."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for health checks.")
    ] = START_TIMEOUT,
    dashboard_secrets: dashboard.SecretsFile = None,
) -> None:
    """Run API, scheduler, Slack bot (when tokens are set) and dashboard together.

    For one machine; each part also runs alone (`modeldeck api`, `scheduler`, `bot`,
    `dashboard`). Ctrl-C stops all of them.

    Example: modeldeck up --log-dir /var/log/modeldeck --dashboard-secrets secrets.toml
    """
    cli = context.get(ctx)
    settings = cli.settings
    bind = host or settings.api.host
    port = api_port or settings.api.port
    for name, wanted in (("api", port), ("dashboard", dashboard_port)):  # before anything changes
        ensure_port_free(bind, wanted, what=name, option=f"--{name}-port")
    cli.engine  # noqa: B018 - migrate and sync once here, before the children race to
    config = cli.config_path or os.environ.get("MODELDECK_CONFIG")
    children = standard_children(
        settings,
        config=config,
        api_port=port,
        dashboard_port=dashboard_port,
        host=bind,
        dashboard_secrets=dashboard_secrets,
    )
    group = ProcessGroup(children, log_dir=log_dir)

    def ready() -> None:
        output.success("modeldeck is up")
        for child in children:
            output.console.print(f"  {child.name:<10} {child.url or 'running'}")
        if (problem := bot_problem(settings)) is not None:
            output.console.print(f"  [dim]{problem}[/dim]")
        output.console.print("  Ctrl-C stops everything")

    code = run_group(group, timeout=timeout, on_ready=ready)
    if code:
        raise typer.Exit(code)


def register_commands(app: typer.Typer) -> None:
    app.command("up")(up)
