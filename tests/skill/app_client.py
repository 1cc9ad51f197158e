"""The real app (its lifespan entered) on the local exchange, as an httpx client: for tests
that need the skill's routes with settings of their own (paper mode, say)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from pydantic import SecretStr

from tests.skill.conftest import skill_settings
from tests.skill.test_routes import ADMIN_TOKEN
from vincent.app import create_app
from vincent.sim import LocalExchange


@asynccontextmanager
async def app_client(
    exchange: LocalExchange,
    database_url: str,
    encryption_key: str,
    *,
    paper: bool = False,
    **overrides: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    settings = skill_settings(exchange, database_url, paper=paper).model_copy(
        update={
            "trade_manager_enabled": False,
            "vincent_encryption_key": SecretStr(encryption_key),
            "vincent_admin_token": SecretStr(ADMIN_TOKEN),
            **overrides,
        }
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://vincent") as http:
            yield http
