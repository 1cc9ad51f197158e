"""CPU per order of the local exchange's own work, without HTTP (issue 14, round 11).

    python -m bench.sim_order_cost [--orders 1000] [--tenants 100] [--rounds 3] [--http]

What the exchange does for one ``POST /order`` after uvicorn and Starlette: the L2 check
(HMAC over the body), settlement moved on (twice, as ``require_l2`` and the route each
do), the body parsed, the order verified (signature against its digest, wallet, key) and
placed (a FOK SELL of 5 shares filled against the book's bids, its trade settled and
published to a feed with no subscriber). Orders are signed beforehand with eth_account, one
API key per tenant, tenants taking turns as in ``bench.engine --burst``.

Prints µs of CPU (this process's time) per order for the whole step and for verify and
place alone, over all orders and over the first and last fifth (a step that grows with
the orders already placed shows there); the best of R rounds, each on a fresh exchange.
Runs against any tree (``PYTHONPATH=<tree>/src``): it uses only ``placing.verify``,
``placing.place``, ``placing.advance``, ``parse_post`` and ``ApiKeyStore.l2``. The last line
is one JSON object.

``--http`` (round 12): the same orders through HTTP instead, to the exchange in its own
process (``python -m vincent.sim``, as ``bench.engine`` runs it): API keys made over L1, the
orders posted one at a time on one keep-alive connection, each followed by its trade's
lookup (``GET /data/trades?id=``, as a fire follows its settlement). Reports that process's
CPU per order and lookup (user + system, psutil): uvicorn, the routing, the L2 checks, the
order itself.
``--http --callgrind DIR`` runs the exchange under callgrind with instrumentation on only
while the orders are posted, and reports its instructions per order (a count that the
machine's load does not change; the CPU figures above do, several-fold at load 6).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import subprocess
import time
from typing import Any

import psutil
from eth_account import Account
from eth_account.messages import encode_typed_data

from bench.exchange_process import ExchangeProcess, exchange_process
from vincent.sim import placing, signatures
from vincent.sim.auth import ApiCredentials, ApiKeyStore, hmac_signature
from vincent.sim.exchange import Exchange
from vincent.sim.markets import Market
from vincent.sim.orders import parse_post
from vincent.sim.timing import TimingRecorder

CONDITION_ID = "0x" + "c1" * 32
YES = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NO = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
_ORDER_FIELDS = [
    {"name": "salt", "type": "uint256"},
    {"name": "maker", "type": "address"},
    {"name": "signer", "type": "address"},
    {"name": "tokenId", "type": "uint256"},
    {"name": "makerAmount", "type": "uint256"},
    {"name": "takerAmount", "type": "uint256"},
    {"name": "side", "type": "uint8"},
    {"name": "signatureType", "type": "uint8"},
    {"name": "timestamp", "type": "uint256"},
    {"name": "metadata", "type": "bytes32"},
    {"name": "builder", "type": "bytes32"},
]
_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_ZERO32 = "0x" + "00" * 32


def _signed_body(key: bytes, address: str, owner: str, salt: int) -> str:
    """A V2 FOK SELL of 5 shares at any price, as the SDK posts it."""
    message = {
        "salt": salt,
        "maker": address,
        "signer": address,
        "tokenId": int(YES),
        "makerAmount": 5_000_000,
        "takerAmount": 50_000,
        "side": 1,
        "signatureType": 0,
        "timestamp": 1_765_000_000_000 + salt,
        "metadata": bytes(32),
        "builder": bytes(32),
    }
    signable = encode_typed_data(
        full_message={
            "types": {"EIP712Domain": _DOMAIN_FIELDS, "Order": _ORDER_FIELDS},
            "primaryType": "Order",
            "domain": {
                "name": "Polymarket CTF Exchange",
                "version": "2",
                "chainId": 137,
                "verifyingContract": signatures.EXCHANGE_V2,
            },
            "message": message,
        }
    )
    signature = Account.sign_message(signable, private_key=key).signature
    order = {
        **{name: str(value) for name, value in message.items() if name not in ("side",)},
        "side": "SELL",
        "signatureType": 0,
        "metadata": _ZERO32,
        "builder": _ZERO32,
        "expiration": "0",
        "signature": "0x" + bytes(signature).hex(),
    }
    return json.dumps(
        {"order": order, "owner": owner, "orderType": "FOK", "postOnly": False},
        separators=(",", ":"),
    )


def _prepare(args: argparse.Namespace) -> tuple[list[tuple[bytes, str]], list[int]]:
    """Tenant keys (fixed) and the order of tenants: round robin, as a burst's fires come."""
    keys = [(number + 1).to_bytes(32, "big") for number in range(args.tenants)]
    tenants = [(key, Account.from_key(key).address) for key in keys]
    return tenants, [number % args.tenants for number in range(args.orders)]


def _fresh_exchange(
    tenants: list[tuple[bytes, str]], args: argparse.Namespace
) -> tuple[Exchange, ApiKeyStore, list[ApiCredentials]]:
    exchange = Exchange(TimingRecorder())
    exchange.create_market(Market(CONDITION_ID, (YES, NO)))
    # Bids deep enough for every order (5 shares each).
    exchange.set_book(YES, bids=[("0.48", 10 * args.orders), ("0.47", 10 * args.orders)], asks=[])
    keys = ApiKeyStore()
    creds = []
    for _, address in tenants:
        creds.append(keys.create(address, 0))
        exchange.credit(address, token_id=YES, shares=5 * args.orders, avg_price="0.5")
    return exchange, keys, creds


def _run_round(
    tenants: list[tuple[bytes, str]], turns: list[int], args: argparse.Namespace
) -> dict[str, float]:
    exchange, keys, creds = _fresh_exchange(tenants, args)
    bodies = [
        _signed_body(tenants[tenant][0], tenants[tenant][1], creds[tenant].key, number + 1)
        for number, tenant in enumerate(turns)
    ]
    step_s: list[float] = []
    verify_s = place_s = 0.0
    clock = time.process_time
    for tenant, body in zip(turns, bodies, strict=True):
        cred = creds[tenant]
        timestamp = str(int(time.time()))
        headers = {
            "poly_address": cred.address,
            "poly_api_key": cred.key,
            "poly_passphrase": cred.passphrase,
            "poly_timestamp": timestamp,
            "poly_signature": hmac_signature(cred.secret, timestamp, "POST", "/order", body),
        }
        started = clock()
        placing.advance(exchange, time.monotonic())
        checked = keys.l2(headers, "POST", "/order", body, time.time())
        placing.advance(exchange, time.monotonic())
        posted = parse_post(json.loads(body))
        verify_from = clock()
        order_id = placing.verify(exchange, posted, checked.address)
        place_from = clock()
        answer: dict[str, Any] = placing.place(exchange, posted, order_id, checked.key)
        ended = clock()
        if answer["status"] != "matched":
            raise RuntimeError(f"order {order_id} was not matched: {answer}")
        step_s.append(ended - started)
        verify_s += place_from - verify_from
        place_s += ended - place_from
    fifth = max(len(step_s) // 5, 1)
    return {
        "us_per_order": 1e6 * sum(step_s) / len(step_s),
        "us_verify": 1e6 * verify_s / len(step_s),
        "us_place": 1e6 * place_s / len(step_s),
        "us_first_fifth": 1e6 * sum(step_s[:fifth]) / fifth,
        "us_last_fifth": 1e6 * sum(step_s[-fifth:]) / fifth,
        "trades": len(exchange.trades),
    }


def _l1_headers(key: bytes, address: str) -> dict[str, str]:
    """ClobAuth (L1) headers for ``POST /auth/api-key`` (nonce 0)."""
    timestamp = str(int(time.time()))
    signable = signatures.clob_auth_message(address, timestamp, 0)
    signature = "0x" + bytes(Account.sign_message(signable, private_key=key).signature).hex()
    return {
        "POLY_ADDRESS": address,
        "POLY_TIMESTAMP": timestamp,
        "POLY_NONCE": "0",
        "POLY_SIGNATURE": signature,
    }


async def _http_setup(
    exchange: ExchangeProcess, tenants: list[tuple[bytes, str]], args: argparse.Namespace
) -> list[dict[str, str]]:
    await exchange.call("POST", "/markets", {"condition_id": CONDITION_ID, "token_ids": [YES, NO]})
    depth = str(10 * args.orders)
    bids = [["0.48", depth], ["0.47", depth]]
    await exchange.call("PUT", f"/books/{YES}", {"bids": bids, "asks": []})
    creds = []
    for key, address in tenants:
        shares = {"address": address, "token_id": YES, "shares": str(5 * args.orders)}
        await exchange.call("POST", "/credits", shares | {"avg_price": "0.5"})
        answer = await exchange.control.post(
            f"{exchange.base_url}/auth/api-key", headers=_l1_headers(key, address)
        )
        creds.append(answer.json() | {"address": address})
    return creds


def _raw_post(cred: dict[str, str], body: str, host: str) -> bytes:
    timestamp = str(int(time.time()))
    signature = hmac_signature(cred["secret"], timestamp, "POST", "/order", body)
    raw = body.encode()
    head = (
        f"POST /order HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(raw)}\r\npoly_address: {cred['address']}\r\n"
        f"poly_api_key: {cred['apiKey']}\r\npoly_passphrase: {cred['passphrase']}\r\n"
        f"poly_timestamp: {timestamp}\r\npoly_signature: {signature}\r\n\r\n"
    )
    return head.encode() + raw


def _raw_trade_lookup(cred: dict[str, str], trade_id: str, host: str) -> bytes:
    timestamp = str(int(time.time()))
    signature = hmac_signature(cred["secret"], timestamp, "GET", "/data/trades", "")
    return (
        f"GET /data/trades?id={trade_id} HTTP/1.1\r\nhost: {host}\r\n"
        f"poly_address: {cred['address']}\r\npoly_api_key: {cred['apiKey']}\r\n"
        f"poly_passphrase: {cred['passphrase']}\r\npoly_timestamp: {timestamp}\r\n"
        f"poly_signature: {signature}\r\n\r\n"
    ).encode()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    fields = (line.partition(":") for line in lines[1:])
    length = next(int(value) for name, _, value in fields if name.lower() == "content-length")
    return status, await reader.readexactly(length)


async def _http_round(
    tenants: list[tuple[bytes, str]], turns: list[int], args: argparse.Namespace
) -> dict[str, float]:
    wrapper: tuple[str, ...] = ()
    if args.callgrind:
        out = os.path.join(args.callgrind, "callgrind.out.%p")
        wrapper = ("valgrind", "--tool=callgrind", "--instr-atstart=no")
        wrapper += (f"--callgrind-out-file={out}",)
    async with exchange_process(wrapper=wrapper) as exchange:
        creds = await _http_setup(exchange, tenants, args)
        netloc = exchange.base_url.removeprefix("http://")
        requests = []
        for number, tenant in enumerate(turns):
            key, address = tenants[tenant]
            body = _signed_body(key, address, creds[tenant]["apiKey"], number + 1)
            requests.append((creds[tenant], body))
        host, port = netloc.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        if args.callgrind:
            _callgrind(exchange.pid, "--instr=on")
        process = psutil.Process(exchange.pid)
        before = process.cpu_times()
        wall_before = time.perf_counter()
        for cred, body in requests:
            # Signed (L2) as it goes: the exchange refuses a timestamp 30 s old.
            writer.write(_raw_post(cred, body, netloc))
            status, answer = await _read_answer(reader)
            placed = json.loads(answer)
            if status != 200 or placed["status"] != "matched":
                raise RuntimeError(f"order not matched: {status} {answer[:300]!r}")
            # As a fire follows its sale's settlement: its trade by id.
            writer.write(_raw_trade_lookup(cred, placed["tradeIDs"][0], netloc))
            status, answer = await _read_answer(reader)
            if status != 200 or json.loads(answer)["count"] != 1:
                raise RuntimeError(f"trade not found: {status} {answer[:300]!r}")
        wall_s = time.perf_counter() - wall_before
        after = process.cpu_times()
        instructions = 0.0
        if args.callgrind:
            _callgrind(exchange.pid, "--instr=off")
            _callgrind(exchange.pid, "--dump")
            instructions = _dumped_instructions(args.callgrind, exchange.pid)
        user_s, system_s = after.user - before.user, after.system - before.system
        writer.close()
    return {
        "us_per_order": 1e6 * (user_s + system_s) / len(requests),
        "us_user_per_order": 1e6 * user_s / len(requests),
        "instructions_per_order": instructions / len(requests),
        "us_wall_per_order": 1e6 * wall_s / len(requests),
    }


def _callgrind(pid: int, command: str) -> None:
    subprocess.run(["callgrind_control", command, str(pid)], check=True, capture_output=True)


def _dumped_instructions(directory: str, pid: int) -> float:
    """Instructions counted in the process's dumps (``summary:`` / ``totals:`` lines)."""
    total = 0.0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        dumps = glob.glob(os.path.join(directory, f"callgrind.out.{pid}.*"))
        if dumps:
            break
        time.sleep(0.2)
    for path in dumps:
        with open(path) as file:
            for line in file:
                if line.startswith(("summary:", "totals:")):
                    total = max(total, float(line.split()[1]))
    return total


def _main_http(args: argparse.Namespace) -> None:
    tenants, turns = _prepare(args)
    rounds = [asyncio.run(_http_round(tenants, turns, args)) for _ in range(args.rounds)]
    for number, figures in enumerate(rounds, 1):
        print(
            f"round {number}: {figures['us_per_order']:.0f} µs of exchange CPU per order "
            f"({figures['us_user_per_order']:.0f} user; "
            f"{figures['us_wall_per_order']:.0f} µs wall; "
            f"{figures['instructions_per_order'] / 1000:.0f}k instructions)"
        )
    best = min(rounds, key=lambda r: r["us_per_order"])
    print(
        json.dumps(
            {"orders": args.orders, "tenants": args.tenants, "rounds": len(rounds), "http": True}
            | {key: round(value, 1) for key, value in best.items()}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--http", action="store_true", help="through HTTP, exchange in a process")
    parser.add_argument("--callgrind", metavar="DIR", help="with --http: exchange under callgrind")
    args = parser.parse_args()
    if args.http:
        _main_http(args)
        return
    tenants, turns = _prepare(args)
    rounds = [_run_round(tenants, turns, args) for _ in range(args.rounds)]
    best = min(rounds, key=lambda r: r["us_per_order"])
    for number, figures in enumerate(rounds, 1):
        print(
            f"round {number}: {figures['us_per_order']:.0f} µs/order "
            f"(verify {figures['us_verify']:.0f}, place {figures['us_place']:.0f}; "
            f"first fifth {figures['us_first_fifth']:.0f}, last fifth "
            f"{figures['us_last_fifth']:.0f}), {figures['trades']:.0f} trades"
        )
    print(
        json.dumps(
            {"orders": args.orders, "tenants": args.tenants, "rounds": len(rounds)}
            | {key: round(value, 1) for key, value in best.items()}
        )
    )


if __name__ == "__main__":
    main()
