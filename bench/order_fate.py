"""How long the skill takes to learn a market SELL's fate, by the kind of answer it gets.

Runs the real skill against the in-process local exchange on a scratch database and
prints one JSON line per case: a plain fill, a 502 after the match (found by id), a 502
the matcher never saw (settle window, then the same order re-posted), an order answered
``delayed``, a stale balance cache (refresh, then one retry), and the settlement check
that follows every rule's fill.

    python -m bench.order_fate --db sqlite --runs 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

from cryptography.fernet import Fernet

from bench.common import percentile, scratch_database
from vincent.config import ExecutionMode, Settings
from vincent.crypto import KeyBox
from vincent.db.models import Secret
from vincent.db.session import create_engine, create_session_factory
from vincent.sim import LocalExchange
from vincent.skills.polymarket import PolymarketSkill, create_polymarket_skill
from vincent.skills.polymarket.types import BetRequest
from vincent.skills.polymarket.wallets import classify_wallet

Arm = Callable[[LocalExchange, str], None]
CASES: dict[str, Arm] = {
    "plain_fill": lambda ex, wallet: None,
    "502_after_match": lambda ex, wallet: ex.fail_after_next("/order", status=502),
    "502_before_matcher": lambda ex, wallet: ex.fail_next("/order", status=502, method="POST"),
    "delayed_0.2s": lambda ex, wallet: ex.defer_next_orders(answer="delayed", delay_s=0.2),
    "stale_balance_cache": lambda ex, wallet: ex.stale_balance_cache(wallet),
}


async def _timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


async def run(database_url: str, runs: int) -> list[dict[str, object]]:
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    keybox = KeyBox(Fernet.generate_key().decode())
    private_key = "0x" + secrets.token_hex(32)
    info = classify_wallet(private_key, None, 0)
    async with sessions() as session, session.begin():
        secret = Secret(
            name="bench",
            encrypted_private_key=keybox.encrypt(private_key),
            eoa_address=info.eoa_address,
            funder_address=info.funder_address,
            signature_type=info.signature_type,
        )
        session.add(secret)
        await session.flush()
        secret_id = secret.id
    results: list[dict[str, object]] = []
    async with LocalExchange.start() as exchange:
        settings = Settings(
            database_url=database_url,
            polymarket_clob_url=exchange.clob_url,
            polymarket_ws_url=exchange.ws_url,
            polymarket_data_api_url=exchange.data_api_url,
            polymarket_gamma_url=exchange.gamma_url,
            polymarket_relayer_url=exchange.relayer_url,
            execution_mode=ExecutionMode.LIVE,
        )
        skill: PolymarketSkill = create_polymarket_skill(settings, sessions, keybox)
        condition = "0x" + secrets.token_hex(32)
        yes, no = (str(secrets.randbits(250) | (1 << 249)) for _ in range(2))
        exchange.create_market(condition, [yes, no])
        exchange.set_book(yes, bids=[("0.50", 1_000_000)], asks=[("0.52", 1_000_000)])
        exchange.credit(info.funder_address, token_id=yes, shares=1_000_000)
        sell = BetRequest(secret_id=secret_id, token_id=yes, side="SELL", amount=Decimal(5))
        await skill.place_bet(sell)  # warm the SDK client and the market info
        try:
            for name, arm in CASES.items():
                samples = []
                for _ in range(runs):
                    arm(exchange, info.funder_address)
                    samples.append(await _timed(lambda: skill.place_bet(sell)))
                results.append(_figures(name, samples))
            last = await skill.place_bet(sell)
            follow = [
                await _timed(lambda: skill.follow_settlement(last.transaction_log_id))
                for _ in range(runs)
            ]
            results.append(_figures("follow_settlement", follow))
        finally:
            await skill.aclose()
            await engine.dispose()
    return results


def _figures(name: str, samples: list[float]) -> dict[str, object]:
    return {
        "case": name,
        "runs": len(samples),
        "p50_ms": round(percentile(samples, 50), 1),
        "max_ms": round(max(samples), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with scratch_database(args.db) as url:
        for line in asyncio.run(run(url, args.runs)):
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
