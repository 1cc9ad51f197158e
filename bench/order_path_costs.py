"""CPU per request of two pieces of the order path, old way against new (issue 14, round 9).

    python -m bench.order_path_costs [--requests 2000] [--writes 500] [--rounds 2]

1. One HTTP request through ``httpx.AsyncClient`` to a loopback server that answers at once
   (a JSON body the size of an order's), with httpx's default transport (httpcore) and with
   ``http_transport.LeanTransport``, under httpx's client and under ``LeanClient`` (each URL
   merged once); and with ``httpx.MockTransport`` (no socket: httpx's
   client alone, the floor under any transport).
2. One autocommitted statement on PostgreSQL (a scratch database): through a one-statement
   session (``one_statement_session`` + ``execute_at_driver``, what the fire's durable write
   used) and at asyncpg itself (``write_at_driver``).

CPU is this process's thread time per operation (µs), the loopback server's share included
(it runs in the same loop: ~0.1 ms a request, the same for every transport). Rounds
alternate the variants. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import httpx
import sqlalchemy as sa

from bench.common import PG_DEFAULT, scratch_database
from vincent.db.driver_statement import execute_at_driver, write_at_driver
from vincent.db.session import create_engine, create_session_factory, one_statement_session
from vincent.skills.polymarket.http_transport import (
    LeanClient,
    LeanTransport,
    http11_default_tls,
)

_ANSWER_BODY = b'{"success":true,"orderID":"0x' + b"a" * 64 + b'","status":"matched"}'
_ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    % len(_ANSWER_BODY)
) + _ANSWER_BODY
_ORDER_BODY = b'{"order":{' + b'"field":"' + b"x" * 900 + b'"}}'
_HEADERS = {
    "POLY_ADDRESS": "0x" + "1" * 40,
    "POLY_SIGNATURE": "s" * 44,
    "POLY_TIMESTAMP": "1700000000",
    "POLY_API_KEY": "k" * 36,
    "POLY_PASSPHRASE": "p" * 64,
    "Content-Type": "application/json",
}


class _Answering(asyncio.Protocol):
    """Answers each request (head + Content-Length body) at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self.transport.write(_ANSWER)  # type: ignore[attr-defined]


async def _cpu_us(operation: Callable[[], Awaitable[object]], count: int) -> float:
    for _ in range(min(200, count)):
        await operation()
    started = time.thread_time()
    for _ in range(count):
        await operation()
    return round((time.thread_time() - started) / count * 1e6, 1)


async def http_costs(requests: int, rounds: int) -> dict[str, list[float]]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Answering, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    clients: dict[str, Callable[[], httpx.AsyncClient]] = {
        "httpx_default_transport": lambda: httpx.AsyncClient(base_url=url),
        "lean_transport": lambda: httpx.AsyncClient(
            base_url=url, transport=LeanTransport(tls_context=http11_default_tls)
        ),
        "lean_client_and_transport": lambda: LeanClient(
            base_url=url, transport=LeanTransport(tls_context=http11_default_tls)
        ),
        "httpx_client_alone": lambda: httpx.AsyncClient(
            base_url=url,
            transport=httpx.MockTransport(lambda _: httpx.Response(200, content=_ANSWER_BODY)),
        ),
    }
    figures: dict[str, list[float]] = {name: [] for name in clients}
    try:
        for _ in range(rounds):
            for name, make in clients.items():
                async with make() as client:

                    async def post(client: httpx.AsyncClient = client) -> object:
                        response = await client.post(
                            "/order", content=_ORDER_BODY, headers=_HEADERS
                        )
                        return response.json()

                    figures[name].append(await _cpu_us(post, requests))
    finally:
        server.close()
    return figures


async def write_costs(url: str, writes: int, rounds: int) -> dict[str, list[float]]:
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    statement = sa.select(sa.bindparam("value", type_=sa.String))

    async def through_a_session() -> object:
        async with one_statement_session(sessions) as session:
            return await execute_at_driver(session, statement, {"value": "v"})

    async def at_the_driver() -> object:
        return await write_at_driver(sessions, statement, {"value": "v"})

    figures: dict[str, list[float]] = {"one_statement_session": [], "write_at_driver": []}
    try:
        for _ in range(rounds):
            figures["one_statement_session"].append(await _cpu_us(through_a_session, writes))
            figures["write_at_driver"].append(await _cpu_us(at_the_driver, writes))
    finally:
        await engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--writes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pg-url", default=PG_DEFAULT)
    args = parser.parse_args()
    http = asyncio.run(http_costs(args.requests, args.rounds))
    for name, values in http.items():
        print(f"HTTP request, {name}: {values} µs of CPU each")
    with scratch_database("postgres", args.pg_url) as url:
        writes = asyncio.run(write_costs(url, args.writes, args.rounds))
    for name, values in writes.items():
        print(f"PostgreSQL statement, {name}: {values} µs of CPU each")
    print(json.dumps({"http_request_cpu_us": http, "statement_cpu_us": writes}))


if __name__ == "__main__":
    main()
