"""What the per-secret spend lock costs: parallel /bet BUYs of one wallet, with and without
a daily spending limit (the limit makes every bet decide and write under the lock).

    python -m bench.spend_lock [--db sqlite|postgres|both] [--bets 200] [--parallel 20]

In-process: the real skill against the local exchange on loopback (live mode: signed with
the SDK, posted, matched). Prints bets/s and p50/p99 latency per database and policy; the
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from decimal import Decimal
from typing import Any

from bench.common import percentile, scratch_database
from vincent.config import Settings
from vincent.crypto import KeyBox, generate_encryption_key
from vincent.db.models import Policy
from vincent.db.session import create_engine, create_session_factory
from vincent.enums import PolicyType
from vincent.services.secrets import create_secret
from vincent.sim import LocalExchange
from vincent.skills.polymarket import create_polymarket_skill
from vincent.skills.polymarket.types import BetRequest, BetStatus


async def run_case(
    database_url: str, exchange: LocalExchange, *, daily_limit: bool, bets: int, parallel: int
) -> dict[str, Any]:
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    keybox = KeyBox(generate_encryption_key())
    async with sessions() as session:
        created = await create_secret(
            session, keybox, name="bench", private_key="0x" + secrets.token_hex(32)
        )
        if daily_limit:
            session.add(
                Policy(
                    secret_id=created.secret.id,
                    policy_type=PolicyType.SPENDING_LIMIT_DAILY,
                    config={"maxUsd": 1_000_000_000},
                )
            )
        await session.commit()
    secret_id, funder = created.secret.id, created.secret.funder_address
    condition = "0x" + secrets.token_hex(32)
    yes, no = str(secrets.randbits(250) | (1 << 249)), str(secrets.randbits(250) | (1 << 249))
    exchange.create_market(condition, [yes, no], title="bench")
    exchange.set_book(yes, bids=[("0.49", "1000000")], asks=[("0.50", "1000000")])
    exchange.credit(funder, collateral=str(bets * 2))
    settings = Settings(
        database_url=database_url,
        polymarket_clob_url=exchange.clob_url,
        polymarket_ws_url=exchange.ws_url,
        polymarket_data_api_url=exchange.data_api_url,
        polymarket_gamma_url=exchange.gamma_url,
        polymarket_relayer_url=exchange.relayer_url,
    )
    skill = create_polymarket_skill(settings, sessions, keybox)
    latencies: list[float] = []
    executed = 0
    gate = asyncio.Semaphore(parallel)

    async def one() -> None:
        nonlocal executed
        async with gate:
            started = time.perf_counter()
            result = await skill.place_bet(
                BetRequest(secret_id=secret_id, token_id=yes, side="BUY", amount=Decimal(1))
            )
            latencies.append(time.perf_counter() - started)
            executed += result.status is BetStatus.EXECUTED

    try:
        await skill.place_bet(  # warm the SDK client and market info
            BetRequest(secret_id=secret_id, token_id=yes, side="BUY", amount=Decimal(1))
        )
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(bets)))
        elapsed = time.perf_counter() - started
    finally:
        await skill.aclose()
        await engine.dispose()
    return {
        "dailyLimit": daily_limit,
        "bets": bets,
        "executed": executed,
        "betsPerSecond": round(bets / elapsed, 1),
        "p50Ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p99Ms": round(percentile(latencies, 0.99) * 1000, 1),
    }


async def run_db(kind: str, database_url: str, bets: int, parallel: int) -> list[dict[str, Any]]:
    results = []
    async with LocalExchange.start(host="127.0.0.1", port=0) as exchange:
        for daily_limit in (False, True):
            case = await run_case(
                database_url, exchange, daily_limit=daily_limit, bets=bets, parallel=parallel
            )
            case["db"] = kind
            print(
                f"{kind:8} daily limit {'on ' if daily_limit else 'off'}: "
                f"{case['betsPerSecond']:7.1f} bets/s  p50 {case['p50Ms']:6.1f} ms  "
                f"p99 {case['p99Ms']:6.1f} ms  ({case['executed']}/{bets} executed)"
            )
            results.append(case)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--bets", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=20)
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results: list[dict[str, Any]] = []
    for kind in kinds:
        with scratch_database(kind) as url:
            results.extend(asyncio.run(run_db(kind, url, args.bets, args.parallel)))
    print(json.dumps({"parallel": args.parallel, "results": results}))


if __name__ == "__main__":
    main()
