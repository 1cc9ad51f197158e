"""``GET /health`` (no auth) and ``GET /metrics`` (Prometheus text)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vincent import __version__
from vincent.api.deps import StateDep
from vincent.api.envelope import iso, ok

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness")
async def health() -> JSONResponse:
    return ok({"status": "ok", "timestamp": iso(datetime.now(UTC)), "version": __version__})


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(state: StateDep) -> Response:
    body = b"".join(generate_latest(registry) for registry in state.metrics_registries)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
