"""Turn what the exchange recorded and what the database holds into the benchmark's figures.

Pure. Latency uses the exchange's one clock only: the send of the price event that crossed
a rule (the reference says which step of its token's path) to the receipt of that rule's
order. The send is when the frame carrying the event was handed to the worker's socket;
``queued_latencies_ms`` count from when the exchange queued it instead (before round 11's
figures, the only measure: it adds the exchange's own work between the two, such as
finishing the request that moved the price). Correctness: the fired set against the
brute-force reference, one order per rule.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench.common import percentile
from bench.scenario import Scenario


@dataclass(frozen=True, slots=True)
class Sample:
    """The worker's progress at one instant (``perf_counter_ns``, the same clock on Linux)."""

    ts_ns: int
    consumed: int


@dataclass
class Checked:
    latencies_ms: list[float] = field(default_factory=list)
    queued_latencies_ms: list[float] = field(default_factory=list)
    fired: int = 0
    orders: int = 0
    missed: list[str] = field(default_factory=list)  # expected, never fired
    unexpected: list[str] = field(default_factory=list)  # fired, not expected
    wrong_order_count: list[str] = field(default_factory=list)  # fired, orders != 1
    unattributed_orders: int = 0
    unmatched_sends: int = 0  # crossing events the exchange did not record
    # rule id → (its crossing event's write, its order's receipt), exchange clock, ns
    crossings: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def mismatches(self) -> int:
        return (
            len(self.missed)
            + len(self.unexpected)
            + len(self.wrong_order_count)
            + self.unattributed_orders
        )


def check_run(
    scenario: Scenario,
    timing: dict[str, Any],
    fired_ids: set[str],
    order_rule: dict[str, str],
) -> Checked:
    """Compare the run with the reference; ``order_rule``: exchange order id → rule id."""
    checked = Checked(fired=len(fired_ids))
    expected = scenario.expected
    checked.missed = sorted(set(expected) - fired_ids)
    checked.unexpected = sorted(fired_ids - set(expected))
    receipts = timing["order_receipts"]
    checked.orders = len(receipts)
    per_rule: dict[str, list[int]] = defaultdict(list)
    for receipt in receipts:
        rule_id = order_rule.get(receipt["order_id"])
        if rule_id is None:
            checked.unattributed_orders += 1
            continue
        per_rule[rule_id].append(receipt["ts_receive_ns"])
    counts = Counter({rule_id: len(times) for rule_id, times in per_rule.items()})
    checked.wrong_order_count = sorted(r for r in fired_ids if counts[r] != 1)
    # The k-th price_change of a token is step k of its path (every step moves the book).
    # (queued, written) per step; written is queued when the exchange has no write time.
    steps: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for send in sorted(timing["price_sends"], key=lambda s: s["seq"]):
        if send["event_type"] == "price_change":
            written = send.get("ts_written_ns")
            queued = send["ts_send_ns"]
            steps[send["token_id"]].append((queued, queued if written is None else written))
    token_of = {rule.id: rule.token_id for rule in scenario.rules}
    for rule_id in sorted(fired_ids & set(expected)):
        if counts[rule_id] != 1:
            continue
        sends = steps.get(token_of[rule_id], [])
        step = expected[rule_id]
        if not 1 <= step <= len(sends):
            checked.unmatched_sends += 1
            continue
        queued, written = sends[step - 1]
        received = per_rule[rule_id][0]
        checked.crossings[rule_id] = (written, received)
        checked.latencies_ms.append((received - written) / 1e6)
        checked.queued_latencies_ms.append((received - queued) / 1e6)
    return checked


def ingest(
    timing: dict[str, Any], samples: list[Sample], consumed_total: int
) -> tuple[float, int, int]:
    """Sustained ingest: (events/s from first send to last consumed, max backlog, final).

    Backlog at a sample = events the exchange had sent by then minus events consumed.
    """
    sends = sorted(s["ts_send_ns"] for s in timing["price_sends"])
    if not sends or not samples:
        return 0.0, 0, 0
    done = next((s for s in samples if s.consumed >= consumed_total), samples[-1])
    elapsed_s = max((done.ts_ns - sends[0]) / 1e9, 1e-9)
    backlog_max = 0
    index = 0
    for sample in samples:
        while index < len(sends) and sends[index] <= sample.ts_ns:
            index += 1
        backlog_max = max(backlog_max, index - sample.consumed)
    final = len(sends) - samples[-1].consumed
    return done.consumed / elapsed_s, backlog_max, final


def latency_summary(latencies_ms: list[float]) -> dict[str, float]:
    """p50/p90/p99/max, and the first order's latency (``min_ms``: in a burst, the first
    order out; ``max_ms`` is then the last)."""
    return {
        "p50_ms": round(percentile(latencies_ms, 50), 3),
        "p90_ms": round(percentile(latencies_ms, 90), 3),
        "p99_ms": round(percentile(latencies_ms, 99), 3),
        "max_ms": round(max(latencies_ms, default=0.0), 3),
        "min_ms": round(min(latencies_ms, default=0.0), 3),
    }
