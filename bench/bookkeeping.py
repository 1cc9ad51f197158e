"""A fire's bookkeeping writers alone: CPU per call (issue 14, round 9).

    python -m bench.bookkeeping [--calls 300] [--db sqlite|postgres|URL]

A scratch database with one secret, ``2 * calls + 40`` rules set TRIGGERED and one EXECUTED
audit row; then ``--calls`` calls of each writer a fire runs after its POST, measured with
``time.thread_time`` (the event loop thread's CPU, so another process on the machine
counts little): ``record_settling`` (alternating two order ids, so each call writes),
the settlement note on the audit row (``settlement._record``, CONFIRMED: the same shape of
write as the skill's fill) and ``record_executed`` (each call on a rule of its own). For an
A/B, run it with another checkout's ``src`` first on ``PYTHONPATH``. The last line is one
JSON object (ms of CPU per call).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

import sqlalchemy as sa

from bench.common import PG_DEFAULT, scratch_database
from vincent.audit import transaction_log as audit
from vincent.db.models import Secret, TradeRule
from vincent.db.session import SessionFactory, create_engine, create_session_factory
from vincent.enums import ExecutionMode, TradeRuleStatus, TradeRuleType, TransactionStatus
from vincent.services.trade_manager.execution_outcomes import record_executed, record_settling
from vincent.services.trade_manager.rule_manager import NewRule, create_rule
from vincent.services.trade_manager.types import ActionType, RuleAction
from vincent.skills.polymarket import settlement
from vincent.skills.polymarket.types import (
    BetResult,
    BetStatus,
    ExecutedRow,
    Settlement,
    SettlementState,
)

WARM_CALLS = 20


async def _setup(sessions: SessionFactory, rules: int) -> tuple[list[str], str]:
    async with sessions() as session, session.begin():
        secret = Secret(
            name="bench",
            encrypted_private_key="not-a-real-key",
            eoa_address="0x" + "1" * 40,
            funder_address="0x" + "2" * 40,
        )
        session.add(secret)
        await session.flush()
        rule_ids = []
        for i in range(rules):
            new = NewRule(
                rule_type=TradeRuleType.STOP_LOSS,
                market_id="0xcondition",
                token_id=f"token-{i}",
                trigger_price=Decimal("0.4"),
                action=RuleAction(ActionType.SELL_ALL),
            )
            rule = await create_rule(session, secret.id, new, max_active_rules=rules)
            rule_ids.append(rule.id)
        row = audit.create_log(
            session,
            secret_id=secret.id,
            request_data={"tokenId": "token-0", "side": "SELL", "amount": "9"},
            status=TransactionStatus.EXECUTED,
            usd_value=Decimal("4.5"),
            execution_mode=ExecutionMode.LIVE,
            order_id="order-0",
        )
        await session.execute(
            sa.update(TradeRule)
            .where(TradeRule.id.in_(rule_ids))
            .values(status=TradeRuleStatus.TRIGGERED)
        )
    return rule_ids, row.id


async def _cpu_ms(call: Callable[[int], Awaitable[object]], calls: int) -> float:
    started = time.thread_time()
    for i in range(calls):
        await call(i)
    return round(1000 * (time.thread_time() - started) / calls, 3)


async def measure(database_url: str, calls: int) -> dict[str, float]:
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    try:
        rule_ids, log_id = await _setup(sessions, 2 * calls + 2 * WARM_CALLS)
        data = {"exchange": {"status": "matched", "trade_ids": ["trade-0"]}}
        recorded = ExecutedRow("secret", "order-0", ("trade-0",), data)
        confirmed = Settlement(SettlementState.CONFIRMED, "order-0", trade_statuses=("CONFIRMED",))

        def result(i: int) -> BetResult:
            return BetResult(
                BetStatus.EXECUTED,
                log_id,
                "0xwallet",
                order_id=f"order-{i % 2}",
                filled_shares=Decimal(9),
            )

        async def settling(i: int) -> None:
            await record_settling(sessions, rule_ids[0], result(i))

        async def note(i: int) -> None:
            await settlement._record(sessions, log_id, recorded, confirmed)

        executed_ids = iter(rule_ids[1:])

        async def executed(i: int) -> None:
            await record_executed(sessions, next(executed_ids), result(i))

        figures: dict[str, float] = {}
        for name, call in (
            ("record_settling_ms", settling),
            ("settlement_note_ms", note),
            ("record_executed_ms", executed),
        ):
            await _cpu_ms(call, WARM_CALLS)
            figures[name] = await _cpu_ms(call, calls)
        return figures
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--db", default="sqlite", help="sqlite, postgres or a PostgreSQL URL")
    args = parser.parse_args(argv)
    kind = "sqlite" if args.db == "sqlite" else "postgres"
    pg_url = PG_DEFAULT if args.db in ("sqlite", "postgres") else args.db
    with scratch_database(kind, pg_url) as database_url:
        figures = asyncio.run(measure(database_url, args.calls))
    print(json.dumps({"db": kind, "calls": args.calls, **figures}), flush=True)
    return figures


if __name__ == "__main__":
    main()
