"""Dependency aliases that keep routes short.

Every dependency here is ``async def``: FastAPI runs a plain ``def`` dependency in a worker
thread, a thread hop per request for what is an attribute read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.api.auth import CurrentSecret
from vincent.api.state import AppState, current_state, get_read_session, get_session
from vincent.config import Settings
from vincent.errors import ConfigurationError
from vincent.skills.polymarket.types import TradingSkill


async def _settings(request: Request) -> Settings:
    state: AppState = request.app.state.vincent
    return state.settings


async def _skill(request: Request) -> TradingSkill:
    state: AppState = request.app.state.vincent
    skill = state.skill
    if skill is None:
        raise ConfigurationError("The Polymarket skill is not configured in this process")
    return skill


# scope="function": the session is closed, and its database turn given back, when the route
# returns, before the response is sent (a streamed response holds neither).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]
StateDep = Annotated[AppState, Depends(current_state)]
SettingsDep = Annotated[Settings, Depends(_settings)]
SkillDep = Annotated[TradingSkill, Depends(_skill)]

__all__ = [
    "CurrentSecret",
    "ReadSessionDep",
    "SessionDep",
    "SettingsDep",
    "SkillDep",
    "StateDep",
]
