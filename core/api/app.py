"""The FastAPI application: gathers the domain routers and the service endpoints."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.engine import Engine

from modeldeck.core import __version__
from modeldeck.core.api.middleware import BodyLimit, RequestContext
from modeldeck.core.api.routes import API_PREFIX, include_routers
from modeldeck.core.clock import Clock, utcnow
from modeldeck.core.config import Settings
from modeldeck.core.db import make_engine, ping
from modeldeck.core.errors import ModeldeckError, Unauthorized


def create_app(settings: Settings, *, engine: Engine | None = None,
               clock: Clock = utcnow) -> FastAPI:
    """Build the app. The engine is created from settings unless a test passes one."""
    app = FastAPI(
        title="modeldeck",
        version=__version__,
        description="Registry, rollouts, monitoring and GPU cost of ML models. "
        "Authenticate with `Authorization: Bearer <token>` (see `modeldeck token create`).",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.database_url)
    app.state.clock = clock

    @app.exception_handler(ModeldeckError)
    async def _domain_error(_: Request, exc: ModeldeckError) -> JSONResponse:
        body: dict[str, Any] = {"detail": exc.message, "error": exc.title}
        if exc.hint:
            body["hint"] = exc.hint
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.get("/healthz", tags=["service"], include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["service"], include_in_schema=False)
    def readyz(request: Request) -> JSONResponse:
        try:
            ping(request.app.state.engine)
        except ModeldeckError as exc:
            return JSONResponse({"status": "unavailable", "detail": exc.message}, 503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["service"], include_in_schema=False)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    include_routers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.api.max_body_bytes)
    app.add_middleware(RequestContext)
    return app
