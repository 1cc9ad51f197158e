"""Warm-ups run once per (secret, token), one at a time, off the trigger path."""

from __future__ import annotations

import asyncio

from tests.engine.scripted_skill import ScriptedSkill
from tests.engine.test_rule_registry import rule
from vincent.services.trade_manager.skill_warmup import SkillWarmup


async def test_each_secret_and_token_is_warmed_once(skill: ScriptedSkill) -> None:
    warmup = SkillWarmup(skill)
    warmup.want([rule("a"), rule("b"), rule("c", token_id="t2")])
    warmup.want([rule("d")])
    assert warmup.pending == 2

    warmup.close()
    async with asyncio.timeout(5):
        await warmup.run()

    assert skill.prepared == [("s", "t1"), ("s", "t2")]
    assert warmup.pending == 0
