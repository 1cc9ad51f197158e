"""CPU per published price event of the local exchange (issue 14, round 13).

    python -m bench.sim_feed_cost [--tokens 1000] [--steps 4] [--connections 1] [--rounds 3]
                                  [--interval-s 0] [--callgrind DIR] [--profile FILE]
                                  [--no-drive]

The exchange in its own process (``python -m vincent.sim``, as ``bench.engine`` runs it)
with ``--tokens`` tokens (tick 0.01, a 3-level book each) and ``--connections`` WebSocket
subscribers sharing the tokens (each subscribed to its slice, as the worker's connections
are). Every token then walks ``--steps`` one-tick steps flat out, started as
``bench.engine``'s ingest run starts them (``bench.drive``: one ``POST /_sim/paths`` per
token); the subscribers read until they have every message. Reports the exchange
process's CPU (user + system, psutil) per event (a price step: its ``price_change`` and,
for subscribers with the custom feature as the worker's, its ``best_bid_ask``; ``--plain``:
without): the paths' HTTP requests, the steps, the books, the messages, the fan-out and the
WebSocket writes.

``--interval-s`` spaces each token's steps (0: back to back, as the ingest run; a spacing
the exchange keeps up with gives about one event per frame, as the paced run).
``--no-drive`` posts the paths from this process instead of a ``bench.drive`` subprocess
(the same requests). ``--profile FILE``: py-spy on the exchange while the paths run
(``PY_SPY``: its path). ``--callgrind DIR`` runs the exchange under callgrind with
instrumentation on only while the paths run, and reports instructions per event (a count
the machine's load does not change; CPU figures move several-fold with load).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect

from bench.exchange_process import ExchangeProcess, exchange_process, run_all
from bench.sim_order_cost import _callgrind, _dumped_instructions

TICK = Decimal("0.01")


def _paths(tokens: int, steps: int, seed: int) -> dict[str, tuple[Decimal, list[Decimal]]]:
    """Token id -> (start bid, best bids): one-tick steps, never standing still."""
    rng = random.Random(seed)
    paths = {}
    for number in range(tokens):
        token_id = str(10**20 + number)
        start = Decimal(rng.randint(20, 80)) * TICK
        price, prices = start, []
        for _ in range(steps):
            price += TICK * rng.choice((-1, 1))
            prices.append(price)
        paths[token_id] = (start, prices)
    return paths


async def _setup(
    exchange: ExchangeProcess, paths: dict[str, tuple[Decimal, list[Decimal]]]
) -> None:
    tokens = list(paths)
    pairs = [tokens[i : i + 2] for i in range(0, len(tokens) - 1, 2)]
    await run_all(
        lambda number=number, pair=pair: exchange.call(
            "POST",
            "/markets",
            {"condition_id": f"0x{number:064x}", "token_ids": pair, "tick_size": str(TICK)},
        )
        for number, pair in enumerate(pairs, 1)
    )
    await run_all(
        lambda token=token, start=start: exchange.call(
            "POST", f"/prices/{token}", {"best_bid": str(start), "size": "100"}
        )
        for token, (start, _) in paths.items()
    )


class Reader:
    """One subscriber: counts the events it receives (a frame may be an array of them)."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.events = 0
        self.frames = 0
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.connection:
            self.frames += 1
            if isinstance(frame, str) and frame.startswith(("[", "{")):
                self.events += frame.count('"event_type":')


async def _subscribe(ws_url: str, assets: list[str], custom: bool) -> ClientConnection:
    connection = await connect(ws_url, max_size=None, compression=None)
    # As the worker subscribes: with the custom feature (a best_bid_ask after each step).
    request = {"assets_ids": assets, "type": "market", "custom_feature_enabled": custom}
    await connection.send(json.dumps(request))
    snapshots = json.loads(await connection.recv())
    if len(snapshots) != len(assets):
        raise RuntimeError(f"{len(snapshots)} snapshots for {len(assets)} assets")
    return connection


async def _post_paths(
    exchange: ExchangeProcess, paths: dict[str, list[str]], interval_s: float
) -> None:
    await run_all(
        lambda token=token, prices=prices: exchange.call(
            "POST", f"/paths/{token}", {"prices": prices, "interval_s": interval_s, "burst": 1}
        )
        for token, prices in paths.items()
    )


def _write_plan(exchange: ExchangeProcess, paths: dict[str, list[str]], interval_s: float) -> str:
    """``bench.drive``'s plan file: every path at once, steps ``interval_s`` apart."""
    plan = {"control_url": f"{exchange.base_url}/_sim", "interval_s": interval_s, "paths": paths}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(plan, file)
    return file.name


async def _drive(
    exchange: ExchangeProcess, paths: dict[str, list[str]], args: argparse.Namespace
) -> None:
    """Start every path: from ``bench.drive`` in its own process, as ``bench.engine`` does."""
    if args.no_drive:
        await _post_paths(exchange, paths, args.interval_s)
        return
    path = _write_plan(exchange, paths, args.interval_s)
    try:
        driver = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.drive", path)
        if await driver.wait() != 0:
            raise RuntimeError(f"bench.drive exited with {driver.returncode}")
    finally:
        os.unlink(path)


def _start_profiler(pid: int, path: str | None) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` on the exchange while the paths run (collapsed stacks in ``path``)."""
    if path is None:
        return None
    py_spy = os.environ.get("PY_SPY") or shutil.which("py-spy") or "py-spy"
    command = [py_spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw"]
    command += ["--output", path, "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait()


async def _round(args: argparse.Namespace) -> dict[str, float]:
    wrapper: tuple[str, ...] = ()
    if args.callgrind:
        out = os.path.join(args.callgrind, "callgrind.out.%p")
        wrapper = ("valgrind", "--tool=callgrind", "--instr-atstart=no")
        wrapper += (f"--callgrind-out-file={out}",)
    paths = _paths(args.tokens, args.steps, args.seed)
    async with exchange_process(wrapper=wrapper) as exchange:
        await _setup(exchange, paths)
        tokens = list(paths)
        per = -(-len(tokens) // args.connections)
        readers = [
            Reader(await _subscribe(exchange.ws_url, tokens[i : i + per], not args.plain))
            for i in range(0, len(tokens), per)
        ]
        published_before = (await exchange.call("GET", "/status"))["messages_published"]
        wanted = {token: [str(p) for p in prices] for token, (_, prices) in paths.items()}
        if args.callgrind:
            _callgrind(exchange.pid, "--instr=on")
        profiler = _start_profiler(exchange.pid, args.profile)
        process = psutil.Process(exchange.pid)
        before = process.cpu_times()
        wall_before = time.perf_counter()
        await _drive(exchange, wanted, args)
        status = await exchange.call("GET", "/status")
        while status["price_paths_running"]:
            await asyncio.sleep(0.05)
            status = await exchange.call("GET", "/status")
        published = status["messages_published"] - published_before
        deadline = time.monotonic() + 600
        while sum(r.events for r in readers) < published:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{sum(r.events for r in readers)} of {published} events read")
            await asyncio.sleep(0.01)
        wall_s = time.perf_counter() - wall_before
        after = process.cpu_times()
        _stop_profiler(profiler)
        instructions = 0.0
        if args.callgrind:
            _callgrind(exchange.pid, "--instr=off")
            _callgrind(exchange.pid, "--dump")
            instructions = _dumped_instructions(args.callgrind, exchange.pid)
        for reader in readers:
            reader.task.cancel()
            await reader.connection.close()
    user_s, system_s = after.user - before.user, after.system - before.system
    frames = sum(r.frames for r in readers)
    steps = args.tokens * args.steps
    return {
        "steps": steps,
        "messages": published,
        "frames": frames,
        "us_per_event": 1e6 * (user_s + system_s) / steps,
        "us_user_per_event": 1e6 * user_s / steps,
        "instructions_per_event": instructions / steps,
        "wall_s": wall_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=4, help="price steps per token")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--interval-s", type=float, default=0.0, help="between a token's steps (0: flat out)"
    )
    parser.add_argument("--plain", action="store_true", help="subscribe without the custom feature")
    parser.add_argument("--no-drive", action="store_true", help="post the paths from here")
    parser.add_argument("--profile", metavar="FILE", help="py-spy the exchange (raw stacks)")
    parser.add_argument("--callgrind", metavar="DIR", help="the exchange under callgrind")
    args = parser.parse_args()
    rounds: list[dict[str, Any]] = [asyncio.run(_round(args)) for _ in range(args.rounds)]
    for number, figures in enumerate(rounds, 1):
        print(
            f"round {number}: {figures['us_per_event']:.1f} µs of exchange CPU per event "
            f"({figures['us_user_per_event']:.1f} user; {figures['steps']} events, "
            f"{figures['messages']} messages in {figures['frames']} frames, "
            f"{figures['wall_s']:.2f} s; "
            f"{figures['instructions_per_event'] / 1000:.0f}k instructions)"
        )
    best = min(rounds, key=lambda r: r["us_per_event"])
    print(
        json.dumps(
            {"tokens": args.tokens, "steps": args.steps, "connections": args.connections}
            | {"rounds": len(rounds)}
            | {key: round(value, 1) for key, value in best.items()}
        )
    )


if __name__ == "__main__":
    main()
