"""Start the benchmark's price paths on the exchange from a process of their own.

    python -m bench.drive PLAN.json

The plan holds the control URL, the interval between steps and every token's prices
(``paths``: all tokens walk at once, each step ``interval_s`` after its token's last), or
one ``sequence`` of (token, best bid) steps sent one at a time, ``interval_s`` apart.
Posting thousands of paths is real CPU work; done from the measured process it would be
counted as the worker's. Exits once the exchange reports no path running.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx

CONCURRENCY = 16
POLL_S = 0.05


async def drive_sequence(plan: dict[str, Any]) -> None:
    """Each step on its own schedule (start + k * interval), never two at once."""
    async with httpx.AsyncClient(base_url=plan["control_url"], timeout=60) as client:
        started = time.perf_counter()
        for number, (token_id, price) in enumerate(plan["sequence"]):
            delay_s = started + number * plan["interval_s"] - time.perf_counter()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            body = {"best_bid": price, "size": plan["size"]}
            (await client.post(f"/prices/{token_id}", json=body)).raise_for_status()


async def drive(plan: dict[str, Any]) -> None:
    if "sequence" in plan:
        await drive_sequence(plan)
        return
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=plan["control_url"], timeout=60, limits=limits) as client:
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def start(token_id: str, prices: list[str]) -> None:
            body = {"prices": prices, "interval_s": plan["interval_s"], "burst": 1}
            async with semaphore:
                response = await client.post(f"/paths/{token_id}", json=body)
            response.raise_for_status()

        async with asyncio.TaskGroup() as group:
            for token_id, prices in plan["paths"].items():
                group.create_task(start(token_id, prices))
        while (await client.get("/status")).json()["price_paths_running"]:  # noqa: ASYNC110
            await asyncio.sleep(POLL_S)


def main() -> None:
    with open(sys.argv[1]) as file:
        plan = json.load(file)
    asyncio.run(drive(plan))


if __name__ == "__main__":
    main()
