"""Check results and reference profiles (tables), and the monitoring API schemas."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from pydantic import Field as Spec
from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from modeldeck.core.fields import enum_column, json_column, timestamp


class CheckKind(StrEnum):
    drift = "drift"
    quality = "quality"
    decay = "decay"
    hardware = "hardware"


class CheckStatus(StrEnum):
    ok = "ok"
    warn = "warn"
    fail = "fail"
    error = "error"
    no_data = "no_data"


class ColumnKind(StrEnum):
    """Column types as evidently names them (they decide the drift test)."""

    numerical = "num"
    categorical = "cat"
    text = "text"
    datetime = "datetime"
    unknown = "unknown"


class CheckResult(SQLModel, table=True):
    __tablename__ = "check_result"
    __table_args__ = (
        Index("ix_check_result_deployment_kind_end", "deployment_id", "kind", "window_end"),
    )

    id: int | None = Field(default=None, primary_key=True)
    deployment_id: int = Field(foreign_key="deployment.id", index=True)
    kind: CheckKind = enum_column(CheckKind)
    window_start: datetime = timestamp(nullable=False)
    window_end: datetime = timestamp(nullable=False)
    status: CheckStatus = enum_column(CheckStatus)
    score: float | None = None
    details: dict[str, Any] = json_column()
    reference_hash: str | None = Field(default=None, max_length=64)
    rows: int = 0
    duration_ms: int = 0
    message: str = Field(default="", max_length=2000)
    created_at: datetime = timestamp(default_now=True)


class CheckResultPublic(BaseModel):
    id: int
    deployment_id: int
    model: str
    version: str
    environment: str
    kind: CheckKind
    window_start: datetime
    window_end: datetime
    status: CheckStatus
    score: float | None
    details: dict[str, Any]
    reference_hash: str | None
    rows: int
    duration_ms: int
    message: str
    created_at: datetime


class CheckResultsPublic(BaseModel):
    data: list[CheckResultPublic]
    count: int


class ReferenceProfile(SQLModel, table=True):
    """What every check compares against, computed once when reference data is set (§10):
    column kinds and storage types, category sets, ranges, missing shares, the reference's
    own performance and calibration, and the hash of the stored data."""

    __tablename__ = "reference_profile"

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="model_version.id", unique=True)
    hash: str = Field(max_length=64)
    data_uri: str = Field(max_length=1000)
    source_uri: str | None = Field(default=None, max_length=1000)
    rows: int = 0
    columns: dict[str, Any] = json_column()
    task: dict[str, Any] = json_column()
    metrics: dict[str, Any] = json_column()
    created_by: str = Field(default="", max_length=200)
    created_at: datetime = timestamp(default_now=True)


class ColumnProfilePublic(BaseModel):
    kind: ColumnKind
    dtype: str
    role: str
    missing_share: float
    n_unique: int
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None


class ReferenceProfilePublic(BaseModel):
    model: str
    version: str
    hash: str
    data_uri: str
    source_uri: str | None
    rows: int
    columns: dict[str, ColumnProfilePublic]
    task: dict[str, Any]
    metrics: dict[str, Any]
    created_by: str
    created_at: datetime


class IngestResult(BaseModel):
    """What an ingestion stored (all or nothing)."""

    kind: str
    model: str
    version: str | None = None
    environment: str | None = None
    rows: int
    files: list[str]
    duration_ms: int
    rows_per_second: float


FeatureValue = float | int | str | bool | None


class PredictionIn(BaseModel):
    prediction_id: str = Spec(min_length=1, max_length=200)
    timestamp: datetime
    features: dict[str, FeatureValue]
    prediction: float | int | str | bool
    probabilities: dict[str, float] | None = Spec(
        default=None, description='class -> probability, e.g. {"fraud": 0.92, "ok": 0.08}'
    )


class PredictionBatch(BaseModel):
    model: str = Spec(max_length=64)
    version: str = Spec(max_length=64)
    environment: str = Spec(max_length=64)
    predictions: list[PredictionIn] = Spec(min_length=1, max_length=1_000_000)


class LabelIn(BaseModel):
    prediction_id: str = Spec(min_length=1, max_length=200)
    label: float | int | str | bool


class LabelBatch(BaseModel):
    model: str = Spec(max_length=64)
    labels: list[LabelIn] = Spec(min_length=1, max_length=1_000_000)


class RunChecksRequest(BaseModel):
    model: str = Spec(max_length=64)
    environment: str = Spec(max_length=64)
    kinds: list[CheckKind] = Spec(
        default_factory=lambda: [CheckKind.drift, CheckKind.quality, CheckKind.decay]
    )
    window_end: datetime | None = None
