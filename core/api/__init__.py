"""The REST API (FastAPI): routers per domain under /api/v1."""
