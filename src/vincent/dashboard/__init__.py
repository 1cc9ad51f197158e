"""The web dashboard, served by the API's own server under ``/dashboard``.

Server-rendered pages (Jinja2) with a little plain JavaScript and a hand-drawn SVG chart: no
build step, no CDN. Pages read through ``read_models`` (scoped per viewer) and act through
the same services as the API; ``hub`` publishes live prices, rule changes, approvals and
worker health, and ``stream`` serves them to the pages as server-sent events.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from vincent.dashboard import routes, stream
from vincent.dashboard.hub import DashboardHub, running_hub
from vincent.dashboard.rendering import STATIC_DIR

__all__ = ["DashboardHub", "mount", "running_hub"]


def mount(app: FastAPI) -> None:
    """Add the dashboard's routes and static files to ``app`` (the hub starts in the lifespan)."""
    app.include_router(routes.router)
    app.include_router(stream.router)
    app.mount("/dashboard/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
