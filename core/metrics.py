"""Counters and histograms served on /metrics (prometheus-client, default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
