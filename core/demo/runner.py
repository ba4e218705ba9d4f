"""`modeldeck demo`: build the world once (or again when asked or when it is incomplete),
then run it: Prometheus and the GPU exporter, the API, the scheduler, the Slack bot when its
tokens are set, the dashboard, and the live traffic feeder, until Ctrl-C.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import Engine
from sqlmodel import Session

from modeldeck.core import db
from modeldeck.core.auth import service as auth
from modeldeck.core.auth.models import Actor, Role
from modeldeck.core.cli import output
from modeldeck.core.cli.up import (
    START_TIMEOUT,
    ProcessGroup,
    StartupFailed,
    bot_problem,
    standard_children,
    stop_on_signals,
)
from modeldeck.core.clock import FixedClock, as_utc, utcnow
from modeldeck.core.config import Settings, load_settings
from modeldeck.core.demo import gpu, home, workers, world
from modeldeck.core.demo.live import Feeder
from modeldeck.core.demo.seed import open_alerts
from modeldeck.core.environments import service as environments
from modeldeck.core.errors import ConfigError, ModeldeckError
from modeldeck.core.timeseries import floor_time

DEMO_ADMIN = Actor(name="demo-setup", role=Role.admin, via="cli")
UNSAFE_ENV = ("MODELDECK_DATABASE_URL", "MODELDECK_DATA_DIR", "MODELDECK_CONFIG")


@dataclass
class Built:
    """What a build produced, for the summary."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process and its workers: the cost on an idle machine
    counts: dict[str, float] = field(default_factory=dict)
    token: str | None = None
    gpu_note: str | None = None
    alerts: int = 0


def run(
    *,
    reset: bool,
    port: int,
    seed_only: bool,
    json_output: bool,
    base: Path = home.DEMO_DIR,
    dashboard_port: int = 8501,
    workers_count: int | None = None,
) -> None:
    """Build (if needed) and serve the demo world in `base`."""
    for name in UNSAFE_ENV:
        if os.environ.get(name):
            raise ConfigError(
                f"{name} is set: the demo would use that instead of its own folder",
                hint=f"unset {name} for the demo (`env -u {name} modeldeck demo`)",
            )
    with home.Home(base) as folder:
        if reset:
            folder.wipe()
        elif folder.foreign():
            folder.wipe()  # raises with the reason: the demo never deletes what it did not make
        why = folder.why_rebuild()
        prometheus = not gpu.missing_binaries()
        ports = home.pick_ports(port, dashboard_port)
        if why is not None:
            folder.wipe()
            folder.mark(home.BUILDING, started_at=utcnow())
        folder.write_config(
            world.config(
                str(folder.base),
                api_port=ports.api,
                dashboard_port=ports.dashboard,
                prometheus_url=f"http://127.0.0.1:{ports.prometheus}" if prometheus else None,
            )
        )
        settings = load_settings(folder.config_path)
        engine = db.make_engine(settings.database_url)
        try:
            _serve(
                folder,
                settings,
                engine,
                ports,
                why=why,
                prometheus=prometheus,
                seed_only=seed_only,
                json_output=json_output,
                workers_count=workers_count,
            )
        finally:
            engine.dispose()


def _serve(
    folder: home.Home,
    settings: Settings,
    engine: Engine,
    ports: home.Ports,
    *,
    why: str | None,
    prometheus: bool,
    seed_only: bool,
    json_output: bool,
    workers_count: int | None,
) -> None:
    group = ProcessGroup([], log_dir=folder.base / "logs")
    exporter: Any = None
    feeder: Feeder | None = None
    built: Built | None = None
    interrupted = False
    try:
        if why is not None:
            output.err_console.print(f"Building the demo world in {folder.base} ({why}) …")
            built = build(
                folder,
                settings,
                engine,
                prometheus=prometheus,
                workers_count=workers_count,
                json_output=json_output,
            )
        exporter = gpu.start_exporter(settings, engine, ports.exporter)
        if prometheus:
            child = gpu.prometheus_child(
                folder.base, port=ports.prometheus, exporter_port=ports.exporter
            )
            group.children.append(child)
            group.start()
            group.wait_healthy(START_TIMEOUT, [child])
        if built is not None:
            built.gpu_note = _scrape(settings, engine, folder, prometheus)
            with Session(engine) as session:
                built.alerts = len(open_alerts(session))
            folder.mark(
                home.READY,
                built_at=utcnow(),
                seconds=round(built.seconds, 1),
                cpu_seconds=round(built.cpu_seconds, 1),
                counts=built.counts,
                fed_until=_end(folder),
                alerts=built.alerts,
            )
        if seed_only:
            _summary(folder, settings, ports, built, json_output, serving=False)
            return
        with stop_on_signals(group):
            children = standard_children(
                settings,
                config=folder.config_path,
                api_port=ports.api,
                dashboard_port=ports.dashboard,
                host="127.0.0.1",
            )
            group.children.extend(children)
            group.start()
            group.wait_healthy(START_TIMEOUT, children)
            feeder = _feeder(folder, settings, engine)
            feeder.start()
            _summary(folder, settings, ports, built, json_output, serving=True)
            died = group.watch()
            if died is not None:
                raise StartupFailed(f"{died.describe_exit()}; stopping the demo")
    except KeyboardInterrupt:
        interrupted = True  # Ctrl-C while building or starting: the finally stops what runs
    finally:
        if feeder is not None:
            feeder.stop()
        killed = group.stop()
        if exporter is not None:
            exporter[0].shutdown()
            exporter[0].server_close()
        if killed:
            output.error(f"had to kill {', '.join(killed)} after {group.stop_timeout:g}s")
        if not folder.is_ready():
            output.err_console.print(
                "interrupted: the demo world is incomplete; the next `modeldeck demo` rebuilds it"
            )
        elif not seed_only:
            output.err_console.print("demo stopped")
    if interrupted and not folder.is_ready():
        raise SystemExit(130)


def build(
    folder: home.Home,
    settings: Settings,
    engine: Engine,
    *,
    prometheus: bool,
    workers_count: int | None = None,
    json_output: bool = False,
    end: datetime | None = None,
) -> Built:
    """The whole history: schema, environments, 90 days through the services, the GPU
    backfill, an admin token. Leaves the state file at "building" (the caller marks it
    ready once the GPU history is scraped)."""
    began, cpu = time.perf_counter(), _cpu_seconds()
    end = end or floor_time(utcnow(), 3600)
    db.upgrade(engine)
    with Session(engine) as session:
        environments.sync(session, settings, clock=FixedClock(end - timedelta(days=world.DAYS)))
    engine.dispose()  # the workers fork: no connection may cross
    folder.mark(home.BUILDING, end=end)
    counters = _seed(settings, end, workers_count, quiet=json_output)
    if prometheus:
        gpu.backfill(settings, engine, folder.base, end=end)
    with Session(engine) as session:
        token = auth.create_token(
            session, name="demo-admin", role=Role.admin, actor=DEMO_ADMIN, clock=FixedClock(end)
        )
    return Built(
        seconds=time.perf_counter() - began,
        cpu_seconds=_cpu_seconds() - cpu,
        counts=counters.as_dict(),
        token=token.token,
    )


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _seed(
    settings: Settings, end: datetime, workers_count: int | None, quiet: bool
) -> workers.Counters:
    columns = (
        TextColumn("[bold]seeding[/bold] {task.description}"),
        BarColumn(),
        TextColumn("day {task.completed:.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=output.err_console, disable=quiet, transient=False) as bar:
        task = bar.add_task("90 days of history", total=world.DAYS)
        days: dict[int, float] = {}

        def on_update(update: workers.Update) -> None:
            days[update.worker] = update.day
            bar.update(
                task,
                completed=min(days.values()),
                description=escape(f"{update.what} (day {update.day:.0f})"),
            )

        counters = workers.build(settings, end=end, workers=workers_count, on_update=on_update)
        bar.update(task, completed=world.DAYS, description="90 days of history")
    return counters


def _scrape(settings: Settings, engine: Engine, folder: home.Home, prometheus: bool) -> str | None:
    """Store the backfilled GPU hours; a failure costs the GPU history, not the demo."""
    if not prometheus:
        missing = " and ".join(gpu.missing_binaries())
        return (
            f"GPU history skipped: {missing} not installed (apt-get install prometheus); "
            "the exporter still serves /metrics"
        )
    try:
        result = gpu.scrape_history(settings, engine, end=_end(folder))
    except ModeldeckError as exc:
        return f"GPU history not stored: {exc}"
    return f"{result.rows} hourly GPU rows from {result.series} series"


def _end(folder: home.Home) -> datetime:
    state = folder.state() or {}
    value = state.get("end")
    return (
        as_utc(datetime.fromisoformat(value))
        if isinstance(value, str)
        else floor_time(utcnow(), 3600)
    )


def _feeder(folder: home.Home, settings: Settings, engine: Engine) -> Feeder:
    state = folder.state() or {}
    end = _end(folder)
    fed = state.get("fed_until")
    fed_until = as_utc(datetime.fromisoformat(fed)) if isinstance(fed, str) else end

    def on_fed(at: datetime) -> None:
        folder.mark(home.READY, fed_until=at)

    return Feeder(
        settings, engine, start=end - timedelta(days=world.DAYS), fed_until=fed_until, on_fed=on_fed
    )


def _summary(
    folder: home.Home,
    settings: Settings,
    ports: home.Ports,
    built: Built | None,
    json_output: bool,
    *,
    serving: bool,
) -> None:
    api = f"http://127.0.0.1:{ports.api}"
    urls = {
        "dashboard": f"http://127.0.0.1:{ports.dashboard}",
        "api": f"{api}/api/v1",
        "docs": f"{api}/docs",
        "readyz": f"{api}/readyz",
        "gpu_exporter": f"http://127.0.0.1:{ports.exporter}/metrics",
    }
    if settings.prometheus.url:
        urls["prometheus"] = settings.prometheus.url
    slack = bot_problem(settings)
    if json_output:
        output.emit_json(
            {
                "folder": str(folder.base),
                "config": str(folder.config_path),
                "serving": serving,
                "urls": urls if serving else {},
                "ports_moved": list(ports.moved),
                "built": {k: v for k, v in built.__dict__.items() if k != "token"}
                if built
                else None,
                "token": built.token if built else None,
                "slack": slack or "on",
            }
        )
        sys.stdout.flush()
        return
    for line in ports.moved:
        output.console.print(f"[yellow]![/yellow] {escape(line)}")
    if built is not None:
        counts = built.counts
        output.success(
            f"built the demo world in {built.seconds:.0f}s "
            f"({built.cpu_seconds:.0f} CPU-s): "
            f"{counts.get('predictions', 0):,.0f} predictions, "
            f"{counts.get('checks', 0):,.0f} checks, {built.alerts} open alerts"
        )
        if built.gpu_note:
            output.console.print(f"  [dim]{escape(built.gpu_note)}[/dim]")
        if built.token:
            output.console.print(f"  admin API token (shown once): {built.token}")
    else:
        output.success(f"demo world in {folder.base} (already built; --reset rebuilds it)")
    if serving:
        output.console.print(f"  Dashboard    {urls['dashboard']}")
        output.console.print(f"  API          {urls['api']}  (docs {urls['docs']})")
        output.console.print(
            f"  GPU metrics  {urls['gpu_exporter']}"
            + (f"  (Prometheus {urls['prometheus']})" if "prometheus" in urls else "")
        )
        output.console.print(f"  Slack        {escape(slack) if slack else 'bot running'}")
        output.console.print(f"  logs         {folder.base / 'logs'}")
        output.console.print(
            "  try: modeldeck status · modeldeck alerts · modeldeck history fraud-detector"
        )
        output.console.print("  Ctrl-C stops everything")
    sys.stdout.flush()
