"""Failover time: kill -9 the leading ``vincent worker``, cross a stop, time the new leader's sell.

    python -m bench.failover [--rounds 5] [--pg postgresql://postgres@127.0.0.1:5432/test]

Each round starts two real worker processes on a scratch PostgreSQL database and the local
exchange in this process, waits until one leads and the other stands by with its feed up,
kills the leader, moves the price across a fresh stop-loss at once, and measures from the
kill to the exchange receiving the order. Prints every round, the median and the worst,
and the takeovers the new leaders logged (lock taken → firing).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from cryptography.fernet import Fernet

from bench.common import PG_DEFAULT, percentile, scratch_database
from bench.worker_processes import WorkerProcesses, worker_processes
from vincent.config import Settings
from vincent.crypto import KeyBox
from vincent.db.models import Secret
from vincent.db.session import SessionFactory, create_engine, create_session_factory
from vincent.enums import TradeRuleType
from vincent.services.trade_manager.rule_manager import NewRule, create_rule
from vincent.services.trade_manager.types import ActionType, RuleAction
from vincent.sim import LocalExchange
from vincent.skills.polymarket.wallets import classify_wallet

ROUND_TIMEOUT_S = 60.0


async def add_stop(
    session_factory: SessionFactory, keybox: KeyBox, exchange: LocalExchange, number: int
) -> str:
    """A wallet holding 9 shares of a fresh market at 0.50 and a stop at 0.40; its token."""
    private_key = "0x" + secrets.token_hex(32)
    info = classify_wallet(private_key, None, 0)
    condition_id = "0x" + secrets.token_hex(32)
    yes, no = str(10**20 + number * 2), str(10**20 + number * 2 + 1)
    exchange.create_market(condition_id, [yes, no], title=f"failover {number}")
    exchange.step_price(yes, "0.50")
    exchange.credit(info.funder_address, token_id=yes, shares="9", avg_price="0.5")
    async with session_factory() as session, session.begin():
        secret = Secret(
            name=f"failover-{number}",
            encrypted_private_key=keybox.encrypt(private_key),
            eoa_address=info.eoa_address,
            funder_address=info.funder_address,
            signature_type=info.signature_type,
        )
        session.add(secret)
        await session.flush()
        new = NewRule(
            rule_type=TradeRuleType.STOP_LOSS,
            market_id=condition_id,
            token_id=yes,
            trigger_price=Decimal("0.40"),
            action=RuleAction(ActionType.SELL_ALL),
        )
        await create_rule(session, secret.id, new, max_active_rules=100)
    return yes


async def one_round(
    workers: WorkerProcesses, settings: Settings, key: str, exchange: LocalExchange, token: str
) -> tuple[float, float]:
    """(kill → order received, takeover_s as logged) for one failover."""
    receipts = len(exchange.order_receipts())
    connections = exchange.status()["websocket_connections"]
    leader = await workers.start("leader", settings, key)
    await leader.wait_for_log("trade_monitoring_worker.started", role="leader")
    standby = await workers.start("standby", settings, key)
    await standby.wait_for_log("trade_monitoring_worker.started", role="standby")
    while exchange.status()["websocket_connections"] < connections + 2:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    ts_kill = time.monotonic()
    leader.kill()
    exchange.step_price(token, "0.35")
    await exchange.wait_for_order_receipts(receipts + 1, timeout_s=ROUND_TIMEOUT_S)
    fired_s = time.monotonic() - ts_kill
    took_over = await standby.wait_for_log("worker.took_over")
    standby.terminate()
    await standby.wait()
    await leader.wait()
    return fired_s, float(took_over["takeover_s"])


async def run(database_url: str, rounds: int) -> None:
    key = Fernet.generate_key().decode()
    keybox = KeyBox(key)
    engine = create_engine(database_url)
    session_factory = create_session_factory(engine)
    fired: list[float] = []
    takeovers: list[float] = []
    try:
        async with LocalExchange.start(host="127.0.0.1", port=0) as exchange:
            settings = Settings(
                database_url=database_url,
                polymarket_clob_url=exchange.clob_url,
                polymarket_ws_url=exchange.ws_url,
                polymarket_data_api_url=exchange.data_api_url,
                polymarket_gamma_url=exchange.gamma_url,
                polymarket_relayer_url=exchange.relayer_url,
                polymarket_http_timeout_s=2.0,
                log_level="INFO",
            )
            with tempfile.TemporaryDirectory(prefix="vincent-failover-") as folder:
                for number in range(rounds):
                    token = await add_stop(session_factory, keybox, exchange, number)
                    async with (
                        asyncio.timeout(ROUND_TIMEOUT_S),
                        worker_processes(Path(folder)) as workers,
                    ):
                        fired_s, takeover_s = await one_round(
                            workers, settings, key, exchange, token
                        )
                    fired.append(fired_s)
                    takeovers.append(takeover_s)
                    print(
                        f"round {number + 1}: stop sold {fired_s:.3f} s after kill -9 "
                        f"(takeover {takeover_s:.3f} s)",
                        flush=True,
                    )
    finally:
        await engine.dispose()
    print(
        f"kill -9 → order at the exchange: median {percentile(fired, 50):.3f} s, "
        f"worst {max(fired):.3f} s over {rounds} rounds (target 5 s)"
    )
    print(
        f"takeover (lock taken → firing): median {percentile(takeovers, 50):.3f} s, "
        f"worst {max(takeovers):.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL server URL")
    args = parser.parse_args()
    with scratch_database("postgres", args.pg) as database_url:
        asyncio.run(run(database_url, args.rounds))


if __name__ == "__main__":
    main()
