"""`modeldeck scheduler`: the process that runs checks, delivery and rollouts on schedule."""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Annotated

import typer

from modeldeck.core.cli import context, output


def scheduler(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Run every job once and exit (cron, smoke tests).")
    ] = False,
) -> None:
    """Run the scheduler: checks, alert delivery, rollouts.

    Several may run: one leads (PostgreSQL advisory lock), the others wait and take over.
    """
    from modeldeck.core import logs
    from modeldeck.core.scheduler import Scheduler

    cli = context.get(ctx)
    settings = cli.settings
    logs.configure(settings.log_format, settings.log_level)
    # APScheduler logs every run at INFO (the drain alone runs every few seconds); our own
    # lines say what matters, its warnings (skipped runs, missed runs) still show.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    runner = Scheduler(engine=cli.engine, settings=settings)
    if once:
        report = runner.run_once()
        if cli.json_output:
            output.emit_json(report)
        else:
            output.success(
                f"ran {report['checks']} checks in {report['seconds']}s; "
                f"delivery: {report['drain']}"
            )
        return

    def _stop(signum: int, _: FrameType | None) -> None:
        runner.stop(timeout=0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    runner.run()


def register_commands(app: typer.Typer) -> None:
    app.command("scheduler")(scheduler)
