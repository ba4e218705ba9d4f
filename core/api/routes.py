"""Gathers every domain router under /api/v1. A new domain adds one line here."""

from __future__ import annotations

from fastapi import FastAPI

from modeldeck.core.alerts.router import router as alerts_router
from modeldeck.core.audit.router import router as audit_router
from modeldeck.core.auth.router import router as auth_router
from modeldeck.core.environments.router import router as environments_router
from modeldeck.core.hardware.router import router as hardware_router
from modeldeck.core.monitoring.router import router as monitoring_router
from modeldeck.core.registry.router import router as registry_router
from modeldeck.core.rollouts.router import router as rollouts_router

API_PREFIX = "/api/v1"

ROUTERS = [
    registry_router,
    environments_router,
    rollouts_router,
    alerts_router,
    hardware_router,
    monitoring_router,
    audit_router,
    auth_router,
]


def include_routers(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
