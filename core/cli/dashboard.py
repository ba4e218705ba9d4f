"""`modeldeck dashboard`: run the Streamlit dashboard (dashboard/app.py) in a child process.

The configuration reaches the child through MODELDECK_CONFIG (an absolute path), so the
dashboard reads exactly the settings this command validated. The dashboard is found by module
spec, not imported: core never imports dashboard code.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from modeldeck.core.cli import context, output
from modeldeck.core.config import CONFIG_ENV, config_path
from modeldeck.core.errors import ConfigError


def app_path() -> Path:
    """dashboard/app.py of the installed modeldeck."""
    spec = importlib.util.find_spec("modeldeck.dashboard")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the modeldeck dashboard package is not installed",
            hint="reinstall modeldeck (pip install modeldeck)",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "app.py"
    if not path.is_file():
        raise ConfigError(f"the dashboard entry point {path} is missing")
    return path


def command(*, port: int, host: str, secrets: Path | None = None) -> list[str]:
    """The `streamlit run` command line: headless, no usage statistics, no file watcher, and
    no exception details in the browser (a traceback can show settings, paths, SQL)."""
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_path()),
        "--server.port",
        str(port),
        "--server.address",
        host,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--client.toolbarMode",
        "viewer",
        "--client.showErrorDetails",
        "none",  # the browser gets a generic message; the log gets the traceback
        "--theme.base",
        "light",
    ]
    if secrets is not None:
        # st.login's OIDC settings ([auth] in secrets.toml): docs/operations.md, Dashboard sign-in.
        cmd += ["--secrets.files", str(secrets)]
    return cmd


def args(*, host: str, port: int, secrets: Path | None = None) -> list[str]:
    """The arguments of `modeldeck dashboard` that serve on host:port, with OIDC sign-in when
    `secrets` is given (made absolute: the child may resolve it from another directory)."""
    sign_in = ["--secrets", str(secrets.resolve())] if secrets is not None else []
    return ["dashboard", "--host", host, "--port", str(port), *sign_in]


def child_env(config: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if config is not None:
        env[CONFIG_ENV] = str(config.resolve())
    return env


# `modeldeck dashboard --secrets` and `modeldeck up --dashboard-secrets`.
SecretsFile = Annotated[
    Path | None,
    typer.Option(
        exists=True,
        dir_okay=False,
        help="secrets.toml with an \\[auth] section for OIDC sign-in (st.login; see "
        "docs/operations.md, Dashboard sign-in); without it the dashboard is read-only.",
    ),
]


def dashboard(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8501,
    host: Annotated[str, typer.Option(help="Bind address (0.0.0.0 in containers).")] = "127.0.0.1",
    secrets: SecretsFile = None,
) -> None:
    """Serve the Streamlit dashboard (fleet overview, drift, decay, hardware, alerts, audit)."""
    cli = context.get(ctx)
    cli.settings  # noqa: B018 - fail here, with the CLI's message, on a broken config
    cli.engine  # noqa: B018 - SQLite: migrate; PostgreSQL: refuse a database without schema
    config = config_path(cli.config_path)
    cmd = command(port=port, host=host, secrets=secrets)
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    output.success(f"dashboard on http://{shown}:{port} (Ctrl-C stops it)")
    child = subprocess.Popen(cmd, env=child_env(config))

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        code = child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)
        try:
            code = child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            code = child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code not in (0, -signal.SIGINT, -signal.SIGTERM):
        raise typer.Exit(1)


def register_commands(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
