"""Counters and histograms served on /metrics (prometheus-client, default registry)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from modeldeck.core import logs
from modeldeck.core.notify.models import OutboxMessage, OutboxStatus

PROMOTIONS = Counter(
    "modeldeck_promotions_total", "Promotions requested", ["environment", "result"]
)
ROLLBACKS = Counter("modeldeck_rollbacks_total", "Rollbacks", ["environment", "trigger"])
BAD_RELEASES_STOPPED = Counter(
    "modeldeck_bad_releases_stopped_total",
    "Releases stopped by a failed check or rollout",
    ["environment", "reason"],
)
CHECKS = Counter("modeldeck_checks_total", "Monitoring checks run", ["kind", "status"])
INGESTED_ROWS = Counter("modeldeck_ingested_rows_total", "Rows ingested", ["kind"])
ALERTS = Counter("modeldeck_alerts_total", "Alert notifications", ["rule", "severity", "event"])
NOTIFICATIONS = Counter("modeldeck_notifications_total", "Outbox deliveries", ["channel", "result"])
HTTP_LATENCY = Histogram(
    "modeldeck_http_request_seconds",
    "API request latency",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class OutboxGauge:
    """`modeldeck_outbox_messages{channel,status}`: pending and dead notifications, read from
    the database at scrape time. The scheduler process delivers but the API process serves
    /metrics, so a counter in either would miss the other's work; the table has it all.
    Alert on `modeldeck_outbox_messages{status="dead"} > 0`."""

    def __init__(self) -> None:
        self.engine: Engine | None = None

    def describe(self) -> list[Metric]:
        return []  # nothing to query at registration

    def collect(self) -> Iterator[Metric]:
        if self.engine is None:
            return
        family = GaugeMetricFamily(
            "modeldeck_outbox_messages",
            "Outbox messages waiting (pending) or given up (dead), per channel",
            labels=["channel", "status"],
        )
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(OutboxMessage.channel, OutboxMessage.status, func.count())
                    .where(col(OutboxMessage.status).in_([OutboxStatus.pending, OutboxStatus.dead]))
                    .group_by(OutboxMessage.channel, OutboxMessage.status)
                ).all()
        except Exception as exc:  # the database is down: /readyz says so, /metrics still works
            logs.get("modeldeck.metrics").warning("metrics.outbox_unavailable", error=str(exc))
            return
        seen = {(str(channel), str(status)): int(n) for channel, status, n in rows}
        for channel in sorted({c for c, _ in seen} | {"slack"}):
            for status in (OutboxStatus.pending, OutboxStatus.dead):
                family.add_metric([channel, str(status)], seen.get((channel, str(status)), 0))
        yield family


OUTBOX = OutboxGauge()
REGISTRY.register(OUTBOX)


def watch_outbox(engine: Engine) -> None:
    """Serve the outbox gauge from this database (the API app calls it; the last one wins)."""
    OUTBOX.engine = engine
