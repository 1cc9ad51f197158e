"""Dependency aliases that keep routes short."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from vincent.api.auth import CurrentSecret
from vincent.api.state import AppState, app_state, get_session
from vincent.config import Settings
from vincent.errors import ConfigurationError
from vincent.skills.polymarket.types import TradingSkill


def _settings(request: Request) -> Settings:
    return app_state(request).settings


def _skill(request: Request) -> TradingSkill:
    skill = app_state(request).skill
    if skill is None:
        raise ConfigurationError("The Polymarket skill is not configured in this process")
    return skill


SessionDep = Annotated[AsyncSession, Depends(get_session)]
StateDep = Annotated[AppState, Depends(app_state)]
SettingsDep = Annotated[Settings, Depends(_settings)]
SkillDep = Annotated[TradingSkill, Depends(_skill)]

__all__ = ["CurrentSecret", "SessionDep", "SettingsDep", "SkillDep", "StateDep"]
