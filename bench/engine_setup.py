"""Set the engine benchmark's stage: tenants and rules in the database, markets, books and
positions on the exchange, and warm SDK clients.

Rules are bulk-inserted (100k through the API would measure the API, not the engine).
Only the (tenant, token) pairs whose rules the reference says will fire get a position
and a warmed SDK market cache: those are the only ones that trade.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bench.exchange_process import ExchangeProcess, run_all
from bench.scenario import Scenario
from vincent.crypto import KeyBox
from vincent.db.models import Secret, TradeRule
from vincent.db.session import SessionFactory, is_postgresql
from vincent.enums import TradeRuleStatus
from vincent.skills.polymarket import PolymarketSkill
from vincent.skills.polymarket.wallets import classify_wallet

INSERT_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class Tenant:
    secret_id: str
    funder: str


async def create_tenants(
    session_factory: SessionFactory, keybox: KeyBox, count: int
) -> list[Tenant]:
    """``count`` secrets with fresh EOA keys, as ``secrets create`` would store them."""
    tenants = []
    async with session_factory() as session, session.begin():
        for number in range(count):
            private_key = "0x" + secrets.token_hex(32)
            info = classify_wallet(private_key, None, 0)
            secret = Secret(
                name=f"bench-{number}",
                encrypted_private_key=keybox.encrypt(private_key),
                eoa_address=info.eoa_address,
                funder_address=info.funder_address,
                signature_type=info.signature_type,
            )
            session.add(secret)
            await session.flush()
            tenants.append(Tenant(secret.id, info.funder_address))
    return tenants


async def insert_rules(
    session_factory: SessionFactory, scenario: Scenario, tenants: list[Tenant]
) -> None:
    """Bulk-insert every rule of the scenario as ACTIVE."""
    condition_of = {t: m.condition_id for m in scenario.markets for t in m.token_ids}
    base = datetime.now(UTC) - timedelta(hours=1)
    rows = [
        {
            "id": rule.id,
            "secret_id": tenants[scenario.tenant_of[rule.id]].secret_id,
            "rule_type": rule.rule_type,
            "market_id": condition_of[rule.token_id],
            "token_id": rule.token_id,
            "side": "BUY",
            "trigger_price": float(rule.trigger_price),
            "trailing_percent": (
                None if rule.trailing_percent is None else float(rule.trailing_percent)
            ),
            "action": json.dumps(rule.action.to_json(), separators=(",", ":")),
            "status": TradeRuleStatus.ACTIVE,
            "trigger_source": rule.trigger_source,
            "attempt_count": 0,
            "created_at": base + timedelta(microseconds=index),
            "updated_at": base,
        }
        for index, rule in enumerate(scenario.rules)
    ]
    for start in range(0, len(rows), INSERT_CHUNK):
        async with session_factory() as session, session.begin():
            await session.execute(sa.insert(TradeRule), rows[start : start + INSERT_CHUNK])
    if is_postgresql(session_factory):
        # The statistics a running database has (autovacuum analyzes a table after a bulk
        # change): without them the planner takes the freshly filled trade_rules for empty
        # and finds a fire's rule through its status index instead of its key.
        async with session_factory() as session:
            await session.execute(sa.text("ANALYZE"))


async def prepare_exchange(
    exchange: ExchangeProcess, scenario: Scenario, tenants: list[Tenant]
) -> None:
    """Markets, a starting book per token, and the positions the expected sales need."""
    await run_all(
        lambda m=m: exchange.call(
            "POST",
            "/markets",
            {"condition_id": m.condition_id, "token_ids": list(m.token_ids), "tick_size": "0.01"},
        )
        for m in scenario.markets
    )
    await run_all(
        lambda p=p: exchange.call(
            "POST",
            f"/prices/{p.token_id}",
            {"best_bid": str(p.start_bid), "size": str(scenario.book_size)},
        )
        for p in scenario.paths
    )
    await run_all(
        lambda pair=pair, shares=shares: exchange.call(
            "POST",
            "/credits",
            {
                "address": tenants[pair[0]].funder,
                "token_id": pair[1],
                "shares": str(shares),
                "avg_price": "0.5",
            },
        )
        for pair, shares in scenario.credits().items()
    )


async def warm_skill(skill: PolymarketSkill, scenario: Scenario, tenants: list[Tenant]) -> None:
    """Create each trading tenant's SDK client and cache its tokens' market info."""
    pairs = sorted(scenario.credits())
    # One client per secret first (≈0.3 s each, serialised per secret by the registry).
    first_pair = dict(reversed(pairs))
    await run_all(
        (
            lambda t=tenant, tok=token: skill.prepare(tenants[t].secret_id, tok)
            for tenant, token in first_pair.items()
        ),
        concurrency=8,
    )
    await run_all(
        (
            lambda t=tenant, tok=token: skill.prepare(tenants[t].secret_id, tok)
            for tenant, token in pairs
        ),
        concurrency=8,
    )


async def run_paths(exchange: ExchangeProcess, scenario: Scenario, rate_steps_per_s: float) -> None:
    """Walk every token along its path, driven by ``bench.drive`` in its own process.

    ``rate_steps_per_s`` is the total offered (0: as fast as the exchange can publish).
    A scenario with ``spacing_s`` sends its steps one at a time, that far apart, instead.
    Returns once every path has finished.
    """
    tokens = len(scenario.paths)
    plan: dict[str, object] = {"control_url": f"{exchange.base_url}/_sim"}
    if scenario.spacing_s is None:
        plan["interval_s"] = 0.0 if rate_steps_per_s <= 0 else tokens / rate_steps_per_s
        plan["paths"] = {p.token_id: [str(price) for price in p.steps] for p in scenario.paths}
    else:
        plan["interval_s"] = scenario.spacing_s
        plan["size"] = str(scenario.book_size)
        plan["sequence"] = [[token_id, str(price)] for token_id, price in scenario.sequence()]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(plan, file)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.drive", file.name
        )
        if await process.wait() != 0:
            raise RuntimeError(f"bench.drive exited with {process.returncode}")
    finally:
        os.unlink(file.name)
