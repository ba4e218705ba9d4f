"""Registry tables and schemas: Model and ModelVersion (lineage, metrics, stage label)."""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic import Field as Spec
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from modeldeck.core.fields import enum_column, json_column, timestamp
from modeldeck.core.naming import Line, Slug, Text, VersionStr, check_line


class TaskType(StrEnum):
    classification = "classification"
    regression = "regression"
    other = "other"


class Stage(StrEnum):
    """A label only; what actually runs where is the deployment history."""

    none = "none"
    staging = "staging"
    production = "production"
    archived = "archived"


class Model(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)
    description: str = Field(default="", max_length=2000)
    owner: str = Field(default="", max_length=200)
    team: str = Field(default="", max_length=200, index=True)
    task_type: TaskType = enum_column(TaskType, TaskType.classification)
    created_at: datetime = timestamp(default_now=True)


class ModelCreate(BaseModel):
    """A new model. Unknown fields are refused: a typo must not be dropped silently."""

    model_config = ConfigDict(extra="forbid")

    name: Slug
    description: Text = Spec(default="", max_length=2000)
    owner: Line = Spec(default="", max_length=200)
    team: Line = Spec(default="", max_length=200)
    task_type: TaskType = TaskType.classification


class ModelPublic(BaseModel):
    id: int
    name: str
    description: str
    owner: str
    team: str
    task_type: TaskType
    created_at: datetime


class ModelsPublic(BaseModel):
    data: list[ModelPublic]
    count: int


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_version"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_version"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="model.id", index=True)
    version: str = Field(max_length=64)
    image: str = Field(default="", max_length=500)
    artifact_uri: str = Field(default="", max_length=1000)
    reference_data_uri: str | None = Field(default=None, max_length=1000)
    training_data_fingerprint: str | None = Field(default=None, max_length=200)
    git_commit: str | None = Field(default=None, max_length=64)
    metrics: dict[str, float] = json_column()
    params: dict[str, Any] = json_column()
    created_by: str = Field(default="", max_length=200)
    created_at: datetime = timestamp(default_now=True)
    stage: Stage = enum_column(Stage, Stage.none)


class ModelVersionCreate(BaseModel):
    """What `register` accepts: an image or an artifact URI (or both), and lineage, which is
    optional but recommended."""

    model_config = ConfigDict(extra="forbid")

    version: VersionStr
    image: Line = Spec(default="", max_length=500)
    artifact_uri: Line = Spec(default="", max_length=1000)
    reference_data_uri: Line | None = Spec(default=None, max_length=1000)
    training_data_fingerprint: Line | None = Spec(default=None, max_length=200)
    git_commit: str | None = Spec(default=None, max_length=64, pattern=r"^[0-9a-fA-F]{4,64}$")
    metrics: dict[str, float] = Spec(default_factory=dict, max_length=200)
    params: dict[str, Any] = Spec(default_factory=dict, max_length=200)
    stage: Stage = Stage.none

    @field_validator("metrics")
    @classmethod
    def _finite(cls, value: dict[str, float]) -> dict[str, float]:
        for key, number in value.items():
            _check_key(key, "metric")
            if not math.isfinite(number):
                raise ValueError(f"metric {key!r} must be a finite number, got {number}")
        return value

    @field_validator("params")
    @classmethod
    def _json_safe(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            _check_key(key, "param")
            _check_json(item, f"param {key!r}", depth=0)
        return value

    @model_validator(mode="after")
    def _deployable(self) -> ModelVersionCreate:
        # A promote deploys the image (Kubernetes) or the artifact (KServe); with neither,
        # the cluster would keep running the old version.
        if not self.image.strip() and not self.artifact_uri.strip():
            raise ValueError(
                "a version needs something to deploy: an image, an artifact_uri or both"
            )
        return self


def _check_key(key: str, what: str) -> None:
    if not key or len(key) > 100:
        raise ValueError(f"{what} names must be 1-100 characters")
    try:
        check_line(key)
    except ValueError:
        raise ValueError(f"{what} name {key!r} contains control characters") from None


def _check_json(value: Any, where: str, depth: int) -> None:
    """Params are stored as JSON on both databases: finite numbers, no NUL, bounded depth."""
    if depth > 10:
        raise ValueError(f"{where} is nested more than 10 levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value}")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{where} contains a NUL character")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_json(k, where, depth + 1)
            _check_json(v, f"{where}.{k}", depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_json(v, f"{where}[{i}]", depth + 1)


class ModelVersionPublic(BaseModel):
    id: int
    model: str
    version: str
    image: str
    artifact_uri: str
    reference_data_uri: str | None
    training_data_fingerprint: str | None
    git_commit: str | None
    metrics: dict[str, float]
    params: dict[str, Any]
    created_by: str
    created_at: datetime
    stage: Stage


class ModelVersionsPublic(BaseModel):
    data: list[ModelVersionPublic]
    count: int
