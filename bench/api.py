"""API benchmark: concurrent agents across many tenants against a running server.

    python -m bench.api [--db sqlite|postgres] [--tenants 50] [--clients 32] [--seconds 10]
                        [--server-workers N] [--markets-per-tenant K] [--exchange local|none]

Starts ``vincent serve`` (``--api-workers N`` with ``--server-workers N``) in a subprocess
on a scratch database (worker off: this measures the API), creates the tenants, then runs
three phases — a realistic mix (create, list, get, patch, cancel, events), pure creates,
pure reads — and reports req/s and p50/p99 per endpoint, errors (must be 0), the server's
CPU (all its processes) as a share of one core and in ms per request, and the benchmark
client's own CPU. With ``--markets-per-tenant K`` each tenant's rules go on K positions
(as agents bracket what they hold), so the server's per-market caches (the token's market,
the Gamma slug) are hit after the first create on each; with 0 every create names a new
market.

``--exchange local`` (the default) runs the local exchange (``python -m vincent.sim``) in a
process of its own with the tenants' markets registered, and points the server's CLOB and
Gamma at it: a create asks it which market its token belongs to and the market's slug,
once per market (4 markets per tenant unless ``--markets-per-tenant`` says otherwise).
``--exchange none`` points them at a closed port instead: every create then waits for the
token lookup's retries (about 170 ms: three tries, 50 and 100 ms apart), so the create
phase measures that wait, not the API's cost. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import psutil
from pydantic import SecretStr

from bench.common import free_port, percentile, scratch_database, server_process
from bench.exchange_process import ExchangeProcess, exchange_process, run_all
from bench.raw_http import RawHttpConnection
from vincent.crypto import KeyBox, generate_encryption_key
from vincent.db.session import create_engine, create_session_factory
from vincent.services.secrets import create_secret

RULES = "/api/skills/polymarket/rules"

MIX = [
    ("create", 20),
    ("list", 20),
    ("get", 25),
    ("patch", 10),
    ("cancel", 5),
    ("events", 15),
    ("status", 5),
]
READS = [("list", 30), ("get", 50), ("events", 20)]


@dataclass
class Agent:
    key: str
    secret_id: str = ""
    rule_ids: list[str] = field(default_factory=list)
    created: int = 0  # rules created (GET /rules lists them all, canceled ones too)
    # (market id, token id) the agent holds; empty: every create names a new market.
    positions: list[tuple[str, str]] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class Phase:
    name: str
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: int = 0
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    server_system_cpu_s: float = 0.0  # the kernel's share (socket writes and reads)
    client_cpu_s: float = 0.0
    # With --callgrind: the server's instructions in the phase (0: not counted).
    server_instructions: float = 0.0
    # What a list returns (and so what a read costs) grows with the rules made so far.
    rules_per_tenant_at_start: float = 0.0

    def summary(self) -> dict[str, Any]:
        total = sum(len(v) for v in self.latencies_ms.values())
        return {
            "requests": total,
            "req_per_s": round(total / self.wall_s, 1) if self.wall_s else 0.0,
            "errors": self.errors,
            "server_cpu_percent": round(100 * self.server_cpu_s / self.wall_s, 1)
            if self.wall_s
            else 0.0,
            "server_cpu_ms_per_req": round(1000 * self.server_cpu_s / total, 2) if total else 0.0,
            "server_system_cpu_ms_per_req": round(1000 * self.server_system_cpu_s / total, 2)
            if total
            else 0.0,
            "server_instructions_per_req": round(self.server_instructions / total) if total else 0,
            "client_cpu_percent": round(100 * self.client_cpu_s / self.wall_s, 1)
            if self.wall_s
            else 0.0,
            "rules_per_tenant_at_start": round(self.rules_per_tenant_at_start, 1),
            "endpoints": {
                name: {
                    "count": len(values),
                    "req_per_s": round(len(values) / self.wall_s, 1),
                    "p50_ms": round(percentile(values, 50), 2),
                    "p99_ms": round(percentile(values, 99), 2),
                }
                for name, values in sorted(self.latencies_ms.items())
            },
        }


def _position(rng: random.Random) -> tuple[str, str]:
    return "0x" + f"{rng.getrandbits(256):064x}", str(rng.getrandbits(64))


async def _register_markets(exchange: ExchangeProcess, agents: list[Agent]) -> None:
    """Each agent's positions as markets of the local exchange (the other outcome's token
    is the position's token + 1)."""
    calls = [
        lambda market=market, token=token: exchange.call(
            "POST",
            "/markets",
            {"condition_id": market, "token_ids": [token, str(int(token) + 1)]},
        )
        for agent in agents
        for market, token in agent.positions
    ]
    await run_all(calls)


def _body(rng: random.Random, agent: Agent | None = None) -> dict[str, Any]:
    kind = rng.choice(["STOP_LOSS", "TAKE_PROFIT", "TRAILING_STOP"])
    market_id, token_id = (
        rng.choice(agent.positions) if agent and agent.positions else _position(rng)
    )
    body: dict[str, Any] = {
        "ruleType": kind,
        "marketId": market_id,
        "tokenId": token_id,
        "triggerPrice": round(rng.uniform(0.05, 0.95), 2),
        "action": {"type": "SELL_ALL"},
    }
    if kind == "TRAILING_STOP":
        body["trailingPercent"] = rng.choice([2, 5, 10])
    return body


class _HttpxConnection:
    """``RawHttpConnection``'s interface over one shared ``httpx.AsyncClient``."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> tuple[int, bytes]:
        response = await self._client.request(method, path, json=body, headers=headers)
        return response.status_code, response.content


Connection = RawHttpConnection | _HttpxConnection


async def _request(
    client: Connection, agent: Agent, op: str, rng: random.Random
) -> tuple[int, set[int]]:
    headers = agent.headers
    if op == "create" or (op in {"get", "patch", "cancel"} and not agent.rule_ids):
        status, body = await client.request("POST", RULES, headers, _body(rng, agent))
        if status == 201:
            agent.rule_ids.append(json.loads(body)["data"]["id"])
            agent.created += 1
        return status, {201}
    if op == "list":
        return (await client.request("GET", RULES, headers))[0], {200}
    if op == "get":
        rule_id = rng.choice(agent.rule_ids)
        return (await client.request("GET", f"{RULES}/{rule_id}", headers))[0], {200}
    if op == "patch":
        rule_id = rng.choice(agent.rule_ids)
        patch = {"triggerPrice": round(rng.uniform(0.05, 0.95), 2)}
        status, _ = await client.request("PATCH", f"{RULES}/{rule_id}", headers, patch)
        return status, {200, 400}  # 400: the rule was canceled meanwhile
    if op == "cancel":
        rule_id = agent.rule_ids.pop(rng.randrange(len(agent.rule_ids)))
        return (await client.request("DELETE", f"{RULES}/{rule_id}", headers))[0], {200}
    if op == "events":
        return (await client.request("GET", RULES + "/events?limit=50", headers))[0], {200}
    return (await client.request("GET", RULES + "/status", headers))[0], {200}


async def run_phase(
    name: str,
    base_url: str,
    agents: list[Agent],
    clients: int,
    seconds: float,
    weights: list[tuple[str, int]],
    server: psutil.Process,
    seed: int,
    http_client: str = "raw",
    callgrind: str | None = None,
) -> Phase:
    """One phase; server CPU sums the server process and its children (API workers).

    ``callgrind``: the server runs under callgrind (its dumps in that folder) with
    instrumentation off; it is on for the phase alone, and the phase's instructions are read
    from the dump made at its end."""
    phase = Phase(name)
    phase.rules_per_tenant_at_start = sum(a.created for a in agents) / len(agents)
    ops = [op for op, _ in weights]
    cum = [w for _, w in weights]
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client_loop(index: int, client: Connection) -> None:
        rng = random.Random(seed * 1000 + index)
        while time.perf_counter() < deadline:
            agent = agents[rng.randrange(len(agents))]
            op = rng.choices(ops, weights=cum)[0]
            started = time.perf_counter()
            status, expected = await _request(client, agent, op, rng)
            phase.latencies_ms[op].append((time.perf_counter() - started) * 1000)
            if status not in expected:
                phase.errors += 1

    processes = [server, *server.children(recursive=True)]
    if callgrind:
        await _callgrind(server.pid, "--zero", base_url, callgrind)
        await _callgrind(server.pid, "--instr=on", base_url, callgrind)
    cpu_before = _cpu_s(processes)
    system_before = _cpu_s(processes, system_only=True)
    client_before = time.process_time()
    started = time.perf_counter()
    if http_client == "raw":
        url = httpx.URL(base_url)
        assert url.port is not None
        connections = [RawHttpConnection(url.host, url.port) for _ in range(clients)]
        try:
            await asyncio.gather(*(client_loop(i, c) for i, c in enumerate(connections)))
        finally:
            for connection in connections:
                await connection.close()
    else:
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as shared:
            await asyncio.gather(
                *(client_loop(i, _HttpxConnection(shared)) for i in range(clients))
            )
    phase.wall_s = time.perf_counter() - started
    phase.server_cpu_s = _cpu_s(processes) - cpu_before
    phase.server_system_cpu_s = _cpu_s(processes, system_only=True) - system_before
    phase.client_cpu_s = time.process_time() - client_before
    if callgrind:
        await _callgrind(server.pid, "--instr=off", base_url, callgrind)
        phase.server_instructions = await _dumped_instructions(callgrind, server.pid, base_url)
    return phase


def _vgdb_prefix(directory: str) -> str:
    """Valgrind's control pipes, in the dump folder (not shared with other runs' in /tmp)."""
    return os.path.join(directory, "vgdb-pipe")


async def _callgrind(pid: int, command: str, base_url: str, directory: str) -> None:
    """``callgrind_control command pid``. Valgrind reads commands only while the server runs
    code, so the server is sent /health requests until the command is done."""
    control = await asyncio.create_subprocess_exec(
        "callgrind_control",
        f"--vgdb-prefix={_vgdb_prefix(directory)}",
        command,
        str(pid),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        # Valgrind names its pipes after $HOST, which the server's environment sets.
        env={**os.environ, "HOST": "127.0.0.1"},
    )
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client, asyncio.timeout(120):
        while control.returncode is None:
            with contextlib.suppress(httpx.HTTPError):
                await client.get("/health")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(control.wait(), 0.2)
    assert control.stdout is not None
    answer = (await control.stdout.read()).decode(errors="replace")
    if control.returncode != 0 or "OK" not in answer:
        raise RuntimeError(f"callgrind_control {command} {pid} failed: {answer.strip()}")


async def _dumped_instructions(directory: str, pid: int, base_url: str) -> float:
    """The instructions in a new dump of ``pid`` (counted since the last ``--zero``)."""
    pattern = os.path.join(directory, f"callgrind.out.{pid}.*")
    before = set(glob.glob(pattern))
    await _callgrind(pid, "--dump", base_url, directory)
    new = set(glob.glob(pattern)) - before
    if len(new) != 1:
        raise RuntimeError(f"callgrind wrote {len(new)} dumps, expected 1")
    total = 0.0
    with open(new.pop()) as file:  # noqa: ASYNC230 - the phase is over
        for line in file:
            if line.startswith(("summary:", "totals:")):
                total = max(total, float(line.split()[1]))
    return total


def _cpu_s(processes: list[psutil.Process], *, system_only: bool = False) -> float:
    """User + system CPU seconds of ``processes`` (system alone with ``system_only``)."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.system if system_only else times.user + times.system
    return total


async def _wait_for_children(pid: int, workers: int) -> None:
    """Every API worker process started (the first answer may come from the first one)."""
    deadline = time.monotonic() + 60
    parent = psutil.Process(pid)
    while len([c for c in parent.children() if "spawn" in " ".join(c.cmdline())]) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{workers} API workers did not start in 60 s")
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)  # let each worker finish its lifespan before the clock starts


async def _make_agents(database_url: str, encryption_key: str, count: int) -> list[Agent]:
    from eth_account import Account

    engine = create_engine(database_url)
    keybox = KeyBox(encryption_key)
    agents = []
    try:
        async with create_session_factory(engine)() as session:
            for i in range(count):
                created = await create_secret(
                    session, keybox, name=f"agent-{i}", private_key=Account.create().key.hex()
                )
                agents.append(Agent(created.api_key.key, created.secret.id))
            await session.commit()
    finally:
        await engine.dispose()
    return agents


async def _seed_rules(database_url: str, agents: list[Agent], per_tenant: int) -> None:
    """``per_tenant`` rules (and their RULE_CREATED events) per agent, written through the
    service before the server starts: the read phase then lists a known number of rules
    whatever the earlier phases managed to create."""
    from vincent.enums import TradeRuleType
    from vincent.services.trade_manager import rule_manager
    from vincent.services.trade_manager.types import ActionType, RuleAction

    rng = random.Random(11)
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            for agent in agents:
                for _ in range(per_tenant):
                    body = _body(rng, agent)
                    new = rule_manager.NewRule(
                        rule_type=TradeRuleType(body["ruleType"]),
                        market_id=body["marketId"],
                        token_id=body["tokenId"],
                        trigger_price=Decimal(str(body["triggerPrice"])),
                        action=RuleAction(ActionType.SELL_ALL),
                        trailing_percent=(
                            Decimal(body["trailingPercent"]) if "trailingPercent" in body else None
                        ),
                    )
                    rule = await rule_manager.create_rule(
                        session, agent.secret_id, new, max_active_rules=10**9, payload=body
                    )
                    agent.rule_ids.append(rule.id)
                    agent.created += 1
            await session.commit()
    finally:
        await engine.dispose()


async def bench(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    encryption_key = generate_encryption_key()
    agents = await _make_agents(database_url, encryption_key, args.tenants)
    positions_rng = random.Random(7)
    for agent in agents:
        agent.positions = [_position(positions_rng) for _ in range(args.markets_per_tenant)]
    if args.seed_rules:
        await _seed_rules(database_url, agents, args.seed_rules)
    port = free_port()
    async with contextlib.AsyncExitStack() as stack:
        closed = "http://127.0.0.1:9"
        clob_url = gamma_url = closed
        if args.exchange == "local":
            exchange = await stack.enter_async_context(exchange_process())
            await _register_markets(exchange, agents)
            clob_url, gamma_url = exchange.base_url, f"{exchange.base_url}/gamma"
        return await _bench_server(
            args, database_url, encryption_key, agents, port, clob_url, gamma_url
        )


async def _bench_server(
    args: argparse.Namespace,
    database_url: str,
    encryption_key: str,
    agents: list[Agent],
    port: int,
    clob_url: str,
    gamma_url: str,
) -> dict[str, Any]:
    closed = "http://127.0.0.1:9"
    env = {
        "DATABASE_URL": database_url,
        "VINCENT_ENCRYPTION_KEY": SecretStr(encryption_key).get_secret_value(),
        "TRADE_MANAGER_ENABLED": "false",
        "TRADE_MANAGER_MAX_RULES_PER_SECRET": "1000000",
        # Every client is 127.0.0.1: the per-IP limit (100 a minute) would refuse the run.
        "RATE_LIMIT_MAX_REQUESTS": "0",
        "POLYMARKET_GAMMA_URL": gamma_url,
        "POLYMARKET_CLOB_URL": clob_url,
        "POLYMARKET_DATA_API_URL": closed,
        "POLYMARKET_RELAYER_URL": closed,
    }
    base_url = f"http://127.0.0.1:{port}"
    wrapper: tuple[str, ...] = ()
    if args.callgrind:
        out = os.path.join(args.callgrind, "callgrind.out.%p")
        wrapper = ("valgrind", "--tool=callgrind", "--instr-atstart=no")
        wrapper += (f"--callgrind-out-file={out}", f"--vgdb-prefix={_vgdb_prefix(args.callgrind)}")
    serve_args = ("--api-workers", str(args.server_workers))
    async with server_process(env, port, *serve_args, wrapper=wrapper) as process:
        if args.server_workers > 1:
            await _wait_for_children(process.pid, args.server_workers)
        server = psutil.Process(process.pid)
        mixes = {"mix": MIX, "create": [("create", 1)], "read": READS}
        phases = [
            await run_phase(
                name,
                base_url,
                agents,
                args.clients,
                args.seconds,
                mixes[name],
                server,
                seed,
                args.http_client,
                args.callgrind,
            )
            for seed, name in enumerate(args.phases, start=1)
        ]
    return {
        "benchmark": "api",
        "db": args.db,
        "tenants": args.tenants,
        "clients": args.clients,
        "server_workers": args.server_workers,
        "markets_per_tenant": args.markets_per_tenant,
        "exchange": args.exchange,
        "seconds_per_phase": args.seconds,
        "seed_rules": args.seed_rules,
        "http_client": args.http_client,
        "phases": {p.name: p.summary() for p in phases},
        "errors": sum(p.errors for p in phases),
    }


def _print_table(result: dict[str, Any]) -> None:
    print(
        f"API benchmark on {result['db']}: {result['tenants']} tenants, {result['clients']} "
        f"clients, {result['server_workers']} server process(es)"
    )
    for name, phase in result["phases"].items():
        print(
            f"  {name:<7} {phase['req_per_s']:>8.1f} req/s  errors {phase['errors']}  "
            f"server CPU {phase['server_cpu_percent']}% "
            f"({phase['server_cpu_ms_per_req']} ms/req, system "
            f"{phase['server_system_cpu_ms_per_req']})"
            + (
                f"  {phase['server_instructions_per_req'] / 1000:.0f}k instructions/req"
                if phase["server_instructions_per_req"]
                else ""
            )
            + f"  client CPU {phase['client_cpu_percent']}%"
            f"  rules/tenant {phase['rules_per_tenant_at_start']}"
        )
        for endpoint, figures in phase["endpoints"].items():
            print(
                f"      {endpoint:<8} {figures['req_per_s']:>8.1f}/s  "
                f"p50 {figures['p50_ms']:>7.2f} ms  p99 {figures['p99_ms']:>7.2f} ms"
            )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--pg-url", default=None, help="PostgreSQL server to create a scratch DB on"
    )
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--server-workers", type=int, default=1, help="API processes (vincent serve --api-workers)"
    )
    parser.add_argument(
        "--markets-per-tenant",
        type=int,
        default=None,
        help="rules go on this many positions per tenant (0: a new market every create; "
        "default 4 with --exchange local, else 0)",
    )
    parser.add_argument(
        "--exchange",
        choices=["local", "none"],
        default="local",
        help="local: the local exchange answers the server's market lookups; none: a closed "
        "port (every create waits for the token lookup's retries)",
    )
    parser.add_argument(
        "--phases",
        type=lambda text: text.split(","),
        default=["mix", "create", "read"],
        help="comma-separated, in order, from mix, create, read (default all three)",
    )
    parser.add_argument(
        "--http-client",
        choices=["raw", "httpx"],
        default="raw",
        help="the load's HTTP client: raw (bench/raw_http.py, ~0.1 ms CPU a request) or httpx "
        "(~0.7 ms: the client used before round 5, whose CPU the server then did not get)",
    )
    parser.add_argument(
        "--seed-rules",
        type=int,
        default=0,
        help="rules per tenant written before the server starts (a fixed size for reads)",
    )
    parser.add_argument(
        "--callgrind",
        metavar="DIR",
        help="run the server under callgrind (dumps in DIR) and count its instructions per "
        "request in each phase (a measure the machine's load does not move; the server runs "
        "~50 times slower, so every client's request is in it at once)",
    )
    args = parser.parse_args(argv)
    if args.callgrind and args.server_workers != 1:
        parser.error("--callgrind counts one server process: --server-workers 1")
    if args.callgrind:
        args.callgrind = os.path.abspath(args.callgrind)
    if not set(args.phases) <= {"mix", "create", "read"}:
        parser.error(f"--phases takes mix, create, read; was {','.join(args.phases)}")
    if args.markets_per_tenant is None:
        args.markets_per_tenant = 4 if args.exchange == "local" else 0
    if args.exchange == "local" and args.markets_per_tenant < 1:
        parser.error("--exchange local needs --markets-per-tenant >= 1 (markets are registered)")
    options = {"pg_url": args.pg_url} if args.pg_url else {}
    with scratch_database(args.db, **options) as database_url:
        result = asyncio.run(bench(args, database_url))
    _print_table(result)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
