"""The poll tick's delta sync: rules changed in the database by another process (no
notification) are picked up by the next tick, and a tick with nothing changed reads no
rule rows."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.engine.conftest import MakeRule, MakeSecret
from tests.engine.live import running_worker, worker_settings
from tests.engine.scripted_skill import ScriptedSkill
from vincent.db.session import SessionFactory
from vincent.enums import TradeRuleType
from vincent.services.trade_manager import rule_manager
from vincent.services.trade_manager.monitoring_worker import TradeMonitoringWorker
from vincent.services.trade_manager.types import ActionType, RuleAction
from vincent.sim import LocalExchange

TIMEOUT_S = 15.0


def sync_rows(worker: TradeMonitoringWorker, kind: str) -> float:
    value = worker.metrics_registry.get_sample_value(
        "vincent_trade_manager_rule_sync_rows_total", {"kind": kind}
    )
    return value or 0.0


class RuleSelects:
    """The statements reading ``trade_rules`` rows, as sent to the database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.statements: list[str] = []
        sa.event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        text = " ".join(statement.split()).lower()
        if text.startswith("select trade_rules.id, trade_rules.secret_id"):
            self.statements.append(text)


async def tick(worker: TradeMonitoringWorker) -> None:
    await worker.wait_for_ticks(worker.request_tick())


async def test_delta_sync_picks_up_database_changes_and_reads_nothing_when_idle(
    exchange: LocalExchange,
    engine: AsyncEngine,
    session_factory: SessionFactory,
    database_url: str,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("alice")
    a = await make_rule(secret_id, "tok-a", TradeRuleType.STOP_LOSS, "0.40")
    b = await make_rule(secret_id, "tok-b", TradeRuleType.STOP_LOSS, "0.40")
    skill = ScriptedSkill()
    for token in ("tok-a", "tok-b", "tok-c"):
        skill.set_book(token, [("0.49", "100")], [("0.51", "100")])
    settings = worker_settings(
        exchange,
        database_url,
        trade_manager_ws_enabled=False,
        trade_manager_poll_interval_s=3600.0,
        trade_manager_sync_overlap_s=0.0,
    )
    selects = RuleSelects(engine)
    async with running_worker(settings, session_factory, skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            assert sync_rows(worker, "full") == 2  # the start's load reads every ACTIVE rule
            await tick(worker)
            # Nothing changed since the load: no rule rows, one (delta) statement.
            selects.statements.clear()
            delta_before = sync_rows(worker, "delta")
            await tick(worker)
            assert sync_rows(worker, "delta") == delta_before
            assert len(selects.statements) == 1
            assert "trade_rules.updated_at >" in selects.statements[0]
            assert "trade_rules.status =" not in selects.statements[0]

            # Another process (no notification): creates c, cancels a, moves b.
            async with session_factory() as session, session.begin():
                c = await rule_manager.create_rule(
                    session,
                    secret_id,
                    rule_manager.NewRule(
                        rule_type=TradeRuleType.STOP_LOSS,
                        market_id="market-c",
                        token_id="tok-c",
                        trigger_price=Decimal("0.35"),
                        action=RuleAction(ActionType.SELL_ALL),
                    ),
                    max_active_rules=100,
                )
                await rule_manager.cancel_rule(session, secret_id, a.id)
                await rule_manager.update_rule(session, secret_id, b.id, Decimal("0.30"))
            assert worker.watched_rule(a.id) is not None  # not heard of yet

            await tick(worker)

            assert sync_rows(worker, "delta") == delta_before + 3
            assert worker.watched_rule(a.id) is None
            moved = worker.watched_rule(b.id)
            assert moved is not None and moved.trigger_price == Decimal("0.30")
            added = worker.watched_rule(c.id)
            assert added is not None and added.token_id == "tok-c"
            assert sync_rows(worker, "full") == 2  # no full sync was needed for that

            # And the tick after reads nothing again.
            await tick(worker)
            assert sync_rows(worker, "delta") == delta_before + 3


async def test_a_full_sync_runs_every_full_sync_interval(
    exchange: LocalExchange,
    session_factory: SessionFactory,
    database_url: str,
    make_secret: MakeSecret,
    make_rule: MakeRule,
) -> None:
    secret_id = await make_secret("alice")
    await make_rule(secret_id, "tok-a", TradeRuleType.STOP_LOSS, "0.40")
    skill = ScriptedSkill()
    skill.set_book("tok-a", [("0.49", "100")], [("0.51", "100")])
    settings = worker_settings(
        exchange,
        database_url,
        trade_manager_ws_enabled=False,
        trade_manager_poll_interval_s=3600.0,
        # Every tick is due for a full sync: the safety net, at its most frequent.
        trade_manager_full_sync_interval_s=0.000001,
    )
    async with running_worker(settings, session_factory, skill) as worker:
        async with asyncio.timeout(TIMEOUT_S):
            await tick(worker)
            await tick(worker)
            assert sync_rows(worker, "full") >= 3
            assert sync_rows(worker, "delta") == 0
