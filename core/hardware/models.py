"""Hardware tables (hourly GPU aggregates, scrape runs) and the schemas the API returns.

The dashboard and the API read `gpu_usage_hourly`, never Prometheus: a year of history is
~9k rows per GPU instead of millions of samples, and it survives Prometheus' retention.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from modeldeck.core.fields import json_column, timestamp


class Attribution(StrEnum):
    """How a GPU series was tied to a model version."""

    pod_labels = "pod_labels"  # kube_pod_labels: modeldeck.io/model + modeldeck.io/version
    pod_name = "pod_name"  # pod-name prefix of the environment's target + deployment history
    none = "none"  # unattributed: the GPU was free, or attribution failed (see findings)


_NATURAL_KEY = ("hour", "cluster", "gpu_uuid", "mig_instance", "namespace", "pod")


class GpuUsageHourly(SQLModel, table=True):
    """One GPU (or MIG instance) × one pod × one version × one hour.

    `gpu_seconds` is the share of the hour the version held the GPU: a GPU shared by n pods
    (time-slicing, MIG) gives each 1/n, so GPU-hours add up to the GPUs that exist (`shared`
    marks those rows approximate). Utilisation, memory, power and temperature are the GPU's own
    readings, which pods sharing it cannot split. `samples` counts the utilisation readings:
    0 means the utilisation is unknown (a MIG slice exporting only memory), and `util_mean`/
    `util_p95` then mean nothing (0.0 only because the columns are NOT NULL).
    """

    __tablename__ = "gpu_usage_hourly"
    __table_args__ = (
        Index("ix_gpu_usage_hourly_version_hour", "version_id", "hour"),
        Index("ix_gpu_usage_hourly_cluster_hour", "cluster", "hour"),
        # The natural key: two scrapes of the same hour can never both count it. Two partial
        # indexes because NULLs are distinct in a unique index (unattributed rows).
        Index(
            "uq_gpu_usage_hourly_attributed",
            *_NATURAL_KEY,
            "version_id",
            unique=True,
            postgresql_where=text("version_id IS NOT NULL"),
            sqlite_where=text("version_id IS NOT NULL"),
        ),
        Index(
            "uq_gpu_usage_hourly_unattributed",
            *_NATURAL_KEY,
            unique=True,
            postgresql_where=text("version_id IS NULL"),
            sqlite_where=text("version_id IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    hour: datetime = timestamp(nullable=False, index=True)
    cluster: str = Field(max_length=64)
    node: str = Field(default="", max_length=253)
    gpu_uuid: str = Field(max_length=100)
    gpu_index: str = Field(default="", max_length=16)
    mig_instance: str = Field(default="", max_length=16)
    gpu_model: str = Field(default="", max_length=100)
    namespace: str = Field(default="", max_length=253)
    pod: str = Field(default="", max_length=253)
    model_id: int | None = Field(default=None, foreign_key="model.id", index=True)
    version_id: int | None = Field(default=None, foreign_key="model_version.id")
    environment_id: int | None = Field(default=None, foreign_key="environment.id")
    attribution: str = Field(default=Attribution.none.value, max_length=16)
    util_mean: float = 0.0
    util_p95: float = 0.0
    engine_active_mean: float | None = None
    memory_used_mib: float | None = None
    memory_used_max_mib: float | None = None
    memory_total_mib: float | None = None
    power_watts: float | None = None
    energy_wh: float | None = None
    temp_celsius: float | None = None
    temp_max_celsius: float | None = None
    gpu_seconds: float = 0.0
    shared: bool = False
    samples: int = 0


class HardwareScrape(SQLModel, table=True):
    """One run of `hardware.service.scrape`: what window, whether Prometheus answered, and the
    findings the hardware page shows until the next run."""

    __tablename__ = "hardware_scrape"

    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = timestamp(nullable=False, index=True)
    finished_at: datetime | None = timestamp()
    window_start: datetime = timestamp(nullable=False)
    window_end: datetime = timestamp(nullable=False)
    ok: bool = False
    error: str = Field(default="", max_length=2000)
    rows: int = 0
    series: int = 0
    queries: int = 0
    duration_ms: int = 0
    findings: list[dict[str, Any]] = json_column(list)


class FindingKind(StrEnum):
    metrics_missing = "metrics_missing"
    metrics_stuck = "metrics_stuck"
    missing_labels = "missing_labels"
    attribution = "attribution"
    shared_gpu = "shared_gpu"
    unpriced = "unpriced"
    idle = "idle"
    memory_full = "memory_full"
    thermal = "thermal"


class Finding(BaseModel):
    """Something the hardware page says: what is wrong, and how to fix it."""

    kind: FindingKind
    severity: str = "warning"
    summary: str
    fix: str = ""
    cluster: str = ""
    node: str = ""
    gpu_uuid: str = ""
    model: str | None = None
    version: str | None = None
    environment: str | None = None
    details: dict[str, Any] = {}


class HardwareStatus(BaseModel):
    """Whether the stored numbers are current. `message` is what a person reads."""

    available: bool
    message: str
    last_success_at: datetime | None = None
    unavailable_since: datetime | None = None
    last_error: str | None = None
    data_until: datetime | None = None


class ScrapeResult(BaseModel):
    window_start: datetime
    window_end: datetime
    rows: int
    series: int
    queries: int
    max_points_per_query: int
    duration_ms: int
    chunks: int = 1  # scraped in this many whole-hour pieces, oldest first
    findings: list[Finding]


class VersionUsage(BaseModel):
    """GPU usage of one model version in one environment on one GPU model over a range."""

    model: str
    version: str
    environment: str | None
    cluster: str
    gpu_model: str
    gpu_count: int  # GPUs held at once (the most in any hour)
    gpus_seen: int = 0  # distinct GPUs over the range (a rescheduled pod counts each)
    gpu_hours: float
    # None: no GPU of it had a utilisation reading in the range (unknown, not 0 %).
    util_mean: float | None
    util_p95: float | None
    memory_used_gib: float | None
    memory_total_gib: float | None
    power_watts: float | None
    energy_kwh: float | None
    price_per_gpu_hour: float | None
    cost: float | None
    predictions: int | None = None
    cost_per_1k_predictions: float | None = None
    approximate: bool = False
    # The version × environment also ran on another GPU model or cluster: `predictions` is
    # its share by GPU-seconds, so it and cost per 1k predictions are approximate.
    predictions_approximate: bool = False
    first_hour: datetime
    last_hour: datetime


class GpuModelUsage(BaseModel):
    gpu_model: str
    environments: list[str]
    gpu_hours: float
    util_mean: float | None
    util_p95: float | None
    cost: float | None
    predictions: int | None = None
    cost_per_1k_predictions: float | None = None
    predictions_approximate: bool = False


class GpuComparison(BaseModel):
    """The same version on different GPU models (e.g. A100 in production, L4 in staging)."""

    model: str
    version: str
    by_gpu_model: list[GpuModelUsage]


class UnattributedUsage(BaseModel):
    cluster: str
    gpu_model: str
    gpu_hours_free: float
    gpu_hours_unmatched: float
    pods: list[str]


class HardwareReport(BaseModel):
    start: datetime
    end: datetime
    status: HardwareStatus
    versions: list[VersionUsage]
    comparisons: list[GpuComparison]
    unattributed: list[UnattributedUsage]
    findings: list[Finding]
    gpu_hours: float
    cost: float | None
