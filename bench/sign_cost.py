"""CPU per signed order: the SDK's ``create_market_order`` through an ``OrderIdSigner`` (round 12).

    python -m bench.sign_cost [--orders 300] [--rounds 5]

What a fire's sign step costs before its durable write: the SDK builds a FOK SELL against
a local exchange's market (its metadata cached after the warm-up) and signs it through the
``OrderIdSigner`` the exchange link gives each client, whose order id is then taken (as
``LiveOrders.sign`` does). Prints µs of this process's CPU per order, the best of R rounds.
Runs against any tree (``PYTHONPATH=<tree>/src``). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from eth_account import Account
from polymarket import AsyncSecureClient

from vincent.sim import LocalExchange
from vincent.skills.polymarket.environment import ExchangeUrls, build_environment
from vincent.skills.polymarket.signed_orders import OrderIdSigner

CONDITION_ID = "0x" + "c1" * 32
YES = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NO = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
WARM_UP_ORDERS = 50


async def _run(args: argparse.Namespace) -> list[float]:
    async with LocalExchange.start() as exchange:
        exchange.create_market(CONDITION_ID, [YES, NO])
        exchange.set_book(YES, bids=[("0.48", 10_000)], asks=[])
        account = Account.create()
        client = await AsyncSecureClient.create(
            private_key=account.key.hex(),
            wallet=account.address,
            environment=build_environment(
                ExchangeUrls(
                    clob_url=exchange.clob_url,
                    ws_url=exchange.ws_url,
                    data_api_url=exchange.data_api_url,
                    gamma_url=exchange.gamma_url,
                    relayer_url=exchange.relayer_url,
                )
            ),
        )
        signer = OrderIdSigner(client._ctx.signer)
        object.__setattr__(client._ctx, "signer", signer)
        try:
            rounds = []
            for number in range(args.rounds + 1):
                orders = WARM_UP_ORDERS if number == 0 else args.orders
                started = time.process_time()
                for _ in range(orders):
                    signed = await client.create_market_order(
                        token_id=YES, side="SELL", shares="10", min_price="0.45", order_type="FOK"
                    )
                    signer.order_id(signed)
                if number > 0:
                    rounds.append(1e6 * (time.process_time() - started) / orders)
            return rounds
        finally:
            await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rounds = asyncio.run(_run(args))
    for number, us in enumerate(rounds, 1):
        print(f"round {number}: {us:.0f} µs per signed order")
    print(
        json.dumps(
            {"orders": args.orders, "rounds": len(rounds), "us_per_order": round(min(rounds), 1)}
        )
    )


if __name__ == "__main__":
    main()
