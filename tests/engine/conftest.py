"""Engine fixtures: a tenant row, rule factory, a manual clock and the scripted skill."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from cryptography.fernet import Fernet

from tests.engine.scripted_skill import ScriptedSkill
from tests.skill.conftest import skill_settings
from vincent.crypto import KeyBox
from vincent.db.models import Secret, TradeRule
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleType, TriggerSource
from vincent.services.trade_manager.rule_manager import NewRule, create_rule, to_snapshot
from vincent.services.trade_manager.types import ActionType, RuleAction, RuleSnapshot
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill, create_polymarket_skill

MakeSecret = Callable[[str], Awaitable[str]]
MakeRule = Callable[..., Awaitable[RuleSnapshot]]


class ManualClock:
    """Wall and monotonic time that move only when a test says so."""

    def __init__(self) -> None:
        self._now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
        self._monotonic = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def skill(request: pytest.FixtureRequest) -> ScriptedSkill:
    # A rule's claim runs in the skill's transaction: the scripted skill needs the database
    # whenever the test has one.
    uses_db = "session_factory" in request.fixturenames
    return ScriptedSkill(request.getfixturevalue("session_factory") if uses_db else None)


@pytest.fixture
def make_secret(session_factory: SessionFactory) -> MakeSecret:
    async def make(name: str = "tenant") -> str:
        async with session_factory() as session, session.begin():
            secret = Secret(
                name=name,
                encrypted_private_key="not-a-real-key",
                eoa_address="0x" + "1" * 40,
                funder_address="0x" + "2" * 40,
            )
            session.add(secret)
            await session.flush()
            return secret.id

    return make


@pytest.fixture
def make_rule(session_factory: SessionFactory) -> MakeRule:
    async def make(
        secret_id: str,
        token_id: str,
        rule_type: TradeRuleType = TradeRuleType.STOP_LOSS,
        trigger_price: str = "0.40",
        *,
        amount: str | None = None,
        trailing_percent: str | None = None,
        trigger_source: TriggerSource = TriggerSource.MIDPOINT,
    ) -> RuleSnapshot:
        action = (
            RuleAction(ActionType.SELL_ALL)
            if amount is None
            else RuleAction(ActionType.SELL_PARTIAL, Decimal(amount))
        )
        new = NewRule(
            rule_type=rule_type,
            market_id=f"0xcond-{token_id}",
            token_id=token_id,
            trigger_price=Decimal(trigger_price),
            action=action,
            trailing_percent=None if trailing_percent is None else Decimal(trailing_percent),
            trigger_source=trigger_source,
        )
        async with session_factory() as session, session.begin():
            rule: TradeRule = await create_rule(session, secret_id, new, max_active_rules=1000)
            return to_snapshot(rule)

    return make


@pytest.fixture
def keybox_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def keybox(keybox_key: str) -> KeyBox:
    return KeyBox(keybox_key)


@pytest.fixture
async def exchange() -> AsyncIterator[LocalExchange]:
    async with LocalExchange.start(host="127.0.0.1", port=0) as ex:
        yield ex


@pytest.fixture
async def live_skill(
    exchange: LocalExchange, database_url: str, session_factory: SessionFactory, keybox: KeyBox
) -> AsyncIterator[PolymarketSkill]:
    built = create_polymarket_skill(
        skill_settings(exchange, database_url, timeout_s=2.0), session_factory, keybox
    )
    yield built
    await built.aclose()
