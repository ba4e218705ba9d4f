"""Roles, actors and API tokens (stored as SHA-256 hashes, never in clear)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from pydantic import Field as Spec
from sqlmodel import Field, SQLModel

from modeldeck.core.fields import enum_column, timestamp


class Role(StrEnum):
    viewer = "viewer"
    deployer = "deployer"
    approver = "approver"
    admin = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANK = {Role.viewer: 0, Role.deployer: 1, Role.approver: 2, Role.admin: 3}


@dataclass(frozen=True)
class Actor:
    """Who is acting, with which role, through which interface. Passed to every service."""

    name: str
    role: Role | None
    via: str = "api"
    request_id: str | None = None


SYSTEM = Actor(name="modeldeck", role=Role.admin, via="auto")


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, index=True)
    hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16, description="first characters, to recognise a token")
    role: Role = enum_column(Role)
    created_at: datetime = timestamp(default_now=True)
    created_by: str = Field(default="", max_length=200)
    expires_at: datetime | None = timestamp()
    revoked_at: datetime | None = timestamp()
    last_used_at: datetime | None = timestamp()


class ApiTokenPublic(BaseModel):
    id: int
    name: str
    prefix: str
    role: Role
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiTokenCreated(ApiTokenPublic):
    token: str


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Spec(min_length=1, max_length=100)
    role: Role = Role.viewer
    expires_in_days: int | None = Spec(default=None, ge=1, le=3650)


class WhoAmI(BaseModel):
    name: str
    role: Role | None
