"""`modeldeck gpu [MODEL]`, `gpu-scrape`, `gpu-exporter`: GPU usage and cost per version."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.markup import escape

from modeldeck.core.cli import context, output
from modeldeck.core.clock import utcnow
from modeldeck.core.hardware import report, service
from modeldeck.core.hardware.models import HardwareReport

SCRAPE_WAIT_SECONDS = 60.0  # wait this long for a scheduled scrape that is running


def _money(value: float | None, digits: int = 2) -> str | None:
    return f"${value:,.{digits}f}" if value is not None else None


def _approx(text: str | None, approximate: bool) -> str | None:
    return f"{text}~" if text is not None and approximate else text


def gpu(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="Only this environment.")] = None,
    version: Annotated[
        str | None, typer.Option("--version", "-v", help="Only this version.")
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=800, help="Range: the last N days.")] = 7,
) -> None:
    """GPU-hours, utilisation, memory, power and cost per model version (stored aggregates).

    Example: modeldeck gpu fraud-detector --env production --days 30
    """
    cli = context.get(ctx)
    end = utcnow()
    with cli.session() as session:
        result = report.usage(
            session,
            settings=cli.settings,
            start=end - timedelta(days=days),
            end=end,
            model=model,
            version=version,
            environment=env,
        )
    if cli.json_output:
        output.emit_json(result)
        return
    _print(result, days)


def _util(mean: float | None, p95: float | None, sep: str) -> str:
    """Utilisation mean/p95; "n/a" for a GPU that exported no utilisation readings (MIG)."""
    if mean is None or p95 is None:
        return "n/a"
    return f"{mean:.0f}{sep}{p95:.0f}"


def _print(result: HardwareReport, days: int) -> None:
    colour = "green" if result.status.available else "yellow"
    output.console.print(f"[{colour}]{escape(result.status.message)}[/{colour}]")
    output.table(
        f"GPU usage, last {days} days (~ = approximate: shared GPU, or predictions split "
        "by GPU-seconds across GPU models)",
        ["version", "env", "GPUs", "GPU-h", "util % mean/p95", "mem GiB", "W", "cost", "$/1k pred"],
        [
            (
                f"{v.model} {v.version}",
                v.environment or v.cluster,
                f"{v.gpu_count}× {v.gpu_model}",
                f"{v.gpu_hours:,.1f}" + ("~" if v.approximate else ""),
                _util(v.util_mean, v.util_p95, "/"),
                f"{v.memory_used_gib:.1f}/{v.memory_total_gib:.0f}"
                if v.memory_used_gib is not None and v.memory_total_gib
                else None,
                f"{v.power_watts:.0f}" if v.power_watts is not None else None,
                _money(v.cost),
                _approx(_money(v.cost_per_1k_predictions, 4), v.predictions_approximate),
            )
            for v in result.versions
        ],
        empty="no GPU usage stored for this range",
    )
    for comparison in result.comparisons:
        output.table(
            f"{comparison.model} {comparison.version} across GPU models",
            ["gpu", "environments", "gpu-hours", "util mean/p95 %", "cost", "per 1k pred"],
            [
                (
                    g.gpu_model,
                    ", ".join(g.environments),
                    f"{g.gpu_hours:,.1f}",
                    _util(g.util_mean, g.util_p95, " / "),
                    _money(g.cost),
                    _approx(_money(g.cost_per_1k_predictions, 4), g.predictions_approximate),
                )
                for g in comparison.by_gpu_model
            ],
        )
    if any(u.gpu_hours_free or u.gpu_hours_unmatched for u in result.unattributed):
        output.table(
            "GPU time not attributed to a version",
            ["cluster", "gpu", "free gpu-hours", "unmatched gpu-hours", "pods"],
            [
                (
                    u.cluster,
                    u.gpu_model,
                    f"{u.gpu_hours_free:,.1f}",
                    f"{u.gpu_hours_unmatched:,.1f}",
                    ", ".join(u.pods[:5]),
                )
                for u in result.unattributed
            ],
        )
    for finding in result.findings:
        mark = "[dim]i[/dim]" if finding.severity == "info" else "[yellow]![/yellow]"
        output.console.print(f"{mark} {escape(finding.summary)}")
        if finding.fix:
            output.console.print(f"  [dim]fix: {escape(finding.fix)}[/dim]")
    if result.cost is not None:
        output.console.print(f"total: {result.gpu_hours:,.1f} GPU-hours, {_money(result.cost)}")


def gpu_scrape(
    ctx: typer.Context,
    hours: Annotated[
        int, typer.Option(min=1, max=24 * 400, help="Scrape the last N hours (backfill).")
    ] = 2,
) -> None:
    """Aggregate GPU metrics from Prometheus into the database now (the scheduler does this
    every 10 minutes); use a large --hours to backfill history (scraped in chunks of a few
    hours, oldest first; hours Prometheus no longer has keep what was stored)."""
    cli = context.get(ctx)
    end = utcnow()
    with cli.session() as session:
        result = service.scrape(
            session,
            settings=cli.settings,
            start=end - timedelta(hours=hours),
            end=end,
            wait_seconds=SCRAPE_WAIT_SECONDS,
        )
    if cli.json_output:
        output.emit_json(result)
        return
    output.success(
        f"stored {result.rows} hourly rows from {result.series} GPU series "
        f"({result.chunks} chunk(s), {result.queries} queries, {result.duration_ms} ms)"
    )
    for finding in result.findings:
        output.console.print(f"  {escape(finding.summary)}")


def gpu_exporter(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port to serve /metrics on.")] = 9400,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
) -> None:
    """Serve demo dcgm-exporter metrics for the simulated clusters (what the demo scrapes)."""
    from modeldeck.core.hardware import exporter

    cli = context.get(ctx)
    server, thread = exporter.serve(cli.settings, cli.engine, host=host, port=port)
    output.success(
        f"demo GPU exporter on http://{host}:{server.server_port}/metrics (Ctrl-C stops it)"
    )
    try:
        while thread.is_alive():
            thread.join(timeout=1)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()


def register_commands(app: typer.Typer) -> None:
    app.command("gpu")(gpu)
    app.command("gpu-scrape")(gpu_scrape)
    app.command("gpu-exporter")(gpu_exporter)
