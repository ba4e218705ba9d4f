"""Environment table: synced from the configuration file at start-up."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlmodel import Field, SQLModel

from modeldeck.core.fields import timestamp


class Environment(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)
    cluster: str = Field(max_length=64)
    namespace: str = Field(default="default", max_length=253)
    requires_previous: str | None = Field(default=None, max_length=64)
    approvals_required: int = 0
    auto_rollback: bool = False
    backend: str = Field(default="simulated", max_length=32)
    target: str = Field(default="{model}", max_length=253)
    gpu_model: str = Field(default="", max_length=64)
    active: bool = Field(default=True, description="false once removed from the config")
    updated_at: datetime = timestamp(default_now=True)

    def target_name(self, model: str) -> str:
        """The cluster object (Deployment / InferenceService) that serves `model` here."""
        return self.target.replace("{model}", model)


class EnvironmentPublic(BaseModel):
    id: int
    name: str
    cluster: str
    namespace: str
    requires_previous: str | None
    approvals_required: int
    auto_rollback: bool
    backend: str
    target: str
    gpu_model: str
    active: bool


class EnvironmentsPublic(BaseModel):
    data: list[EnvironmentPublic]
    count: int
