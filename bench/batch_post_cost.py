"""CPU per order of ``POST /orders`` (k orders in one request) against k ``POST /order``
(issue 14, round 14).

    python -m bench.batch_post_cost [--tenants 100] [--per-tenant 10] [--rounds 2]

Both sides of an order's HTTP: the worker's (the SDK's ``post_order`` / ``post_orders`` on
clients whose CLOB calls go through the worker's ``ExchangeLink``, as the skill posts) and
the local exchange's (``python -m vincent.sim`` in its own process, as ``bench.engine``
runs it). Each tenant has its own API key; its ``per-tenant`` FOK SELLs are signed first
(not measured), then posted tenant by tenant: one ``POST /order`` each, or all of a
tenant's in one ``POST /orders`` (a batch is per API key). Rounds alternate the two ways,
each on fresh orders. Reports µs of CPU per order: this process's thread time (the worker
side) and the exchange process's user + system time (psutil). The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import psutil
from eth_account import Account
from polymarket import AsyncSecureClient
from polymarket.models.clob.order_response import AcceptedOrder
from polymarket.models.clob.orders import SignedOrder

from bench.exchange_process import ExchangeProcess, exchange_process, run_all
from vincent.skills.polymarket.environment import ExchangeUrls, build_environment
from vincent.skills.polymarket.exchange_link import ExchangeLink

CONDITION_ID = "0x" + "c1" * 32
YES = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NO = "52114319501245915516055106046884209969926127482827954674443846427813813222426"


async def _clients(
    exchange: ExchangeProcess, link: ExchangeLink, tenants: int, shares: int
) -> list[AsyncSecureClient]:
    await exchange.call("POST", "/markets", {"condition_id": CONDITION_ID, "token_ids": [YES, NO]})
    depth = str(10 * shares * tenants)
    await exchange.call("PUT", f"/books/{YES}", {"bids": [["0.48", depth]], "asks": []})
    base = exchange.base_url
    environment = build_environment(
        ExchangeUrls(
            clob_url=base,
            ws_url=exchange.ws_url,
            data_api_url=f"{base}/data-api",
            gamma_url=f"{base}/gamma",
            relayer_url=f"{base}/relayer",
        )
    )
    accounts = [Account.create() for _ in range(tenants)]
    await run_all(
        lambda a=a: exchange.call(
            "POST",
            "/credits",
            {"address": a.address, "token_id": YES, "shares": str(shares), "avg_price": "0.5"},
        )
        for a in accounts
    )
    clients = []
    for account in accounts:
        client = await AsyncSecureClient.create(
            private_key=account.key.hex(), wallet=account.address, environment=environment
        )
        await link.adopt(client)
        clients.append(client)
    return clients


async def _signed(client: AsyncSecureClient, count: int) -> list[SignedOrder]:
    return [
        await client.create_market_order(
            token_id=YES, side="SELL", shares="5", min_price="0.45", order_type="FOK"
        )
        for _ in range(count)
    ]


def _check(answers: Any) -> None:
    for answer in answers:
        if not isinstance(answer, AcceptedOrder) or answer.status != "matched":
            raise RuntimeError(f"order not matched: {answer!r}")


async def _round(
    exchange: ExchangeProcess,
    clients: list[AsyncSecureClient],
    per_tenant: int,
    *,
    batch: bool,
) -> tuple[float, float]:
    orders = [await _signed(client, per_tenant) for client in clients]
    process = psutil.Process(exchange.pid)
    before = process.cpu_times()
    started = time.thread_time()
    for client, signed in zip(clients, orders, strict=True):
        if batch:
            _check(await client.post_orders(signed))
        else:
            _check([await client.post_order(one) for one in signed])
    worker_s = time.thread_time() - started
    after = process.cpu_times()
    exchange_s = (after.user - before.user) + (after.system - before.system)
    count = len(clients) * per_tenant
    return 1e6 * worker_s / count, 1e6 * exchange_s / count


async def _run(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    figures: dict[str, dict[str, list[float]]] = {
        way: {"worker_us": [], "exchange_us": []} for way in ("single", "batch")
    }
    shares = 5 * (2 * args.per_tenant * args.rounds + 3)  # the warm-up posts 3 a tenant
    async with exchange_process() as exchange:
        link = ExchangeLink(exchange.base_url)
        clients = await _clients(exchange, link, args.tenants, shares)
        try:
            # Warm-up: every client's market metadata, the connections, both routes.
            await _round(exchange, clients, 1, batch=False)
            await _round(exchange, clients[:10], 2, batch=True)
            for _ in range(args.rounds):
                for way in ("single", "batch"):
                    worker_us, exchange_us = await _round(
                        exchange, clients, args.per_tenant, batch=way == "batch"
                    )
                    figures[way]["worker_us"].append(round(worker_us, 1))
                    figures[way]["exchange_us"].append(round(exchange_us, 1))
        finally:
            for client in clients:
                link.release(client)
                await client.close()
            await link.aclose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--per-tenant", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    figures = asyncio.run(_run(args))
    for way, sides in figures.items():
        print(
            f"{way}: worker {sides['worker_us']} µs, exchange {sides['exchange_us']} µs "
            "of CPU per order"
        )
    print(json.dumps({"tenants": args.tenants, "per_tenant": args.per_tenant} | figures))


if __name__ == "__main__":
    main()
