"""Benchmark clock: when each price message was published, when it was first written to a
subscriber's socket, and when each order was received.

One clock for all (``time.perf_counter_ns`` in the exchange process). Appending is the
only work on the hot path; readers get immutable snapshots.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PriceSend:
    """A published price message: global sequence number, token, event type, when it was
    queued to its subscribers (``ts_send_ns``) and when the frame carrying it was first
    handed to a subscriber's socket (``ts_written_ns``; None: not written yet, or no
    subscriber)."""

    seq: int
    token_id: str
    event_type: str
    ts_send_ns: int
    ts_written_ns: int | None = None


@dataclass(frozen=True, slots=True)
class OrderReceipt:
    """A received ``POST /order``: receive time and what it asked for."""

    ts_receive_ns: int
    order_id: str
    token_id: str
    side: str
    size: str
    order_type: str


class TimingRecorder:
    """Collects price sends and order receipts; ``clear()`` starts a new measurement."""

    def __init__(self) -> None:
        self._sends: list[tuple[int, str, str, int]] = []
        """(seq, token, event type, ts_send_ns): ``PriceSend``s are built when read."""
        self._orders: list[OrderReceipt] = []
        self._written: dict[int, int] = {}
        self._seq = 0
        self.order_recorded = asyncio.Event()
        """Set whenever an order receipt is recorded (waiters clear it)."""

    @staticmethod
    def now_ns() -> int:
        return time.perf_counter_ns()

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def record_send(self, seq: int, token_id: str, event_type: str, ts_send_ns: int) -> None:
        self._sends.append((seq, token_id, event_type, ts_send_ns))

    def record_written(self, seqs: Iterable[int]) -> None:
        """The frame carrying these messages is being written to a socket (first write
        of each counts)."""
        now = self.now_ns()
        for seq in seqs:
            self._written.setdefault(seq, now)

    def record_order(self, receipt: OrderReceipt) -> None:
        self._orders.append(receipt)
        self.order_recorded.set()

    def price_sends(self) -> tuple[PriceSend, ...]:
        written = self._written
        return tuple(
            PriceSend(seq, token_id, event_type, ts_send_ns, written.get(seq))
            for seq, token_id, event_type, ts_send_ns in self._sends
        )

    def order_receipts(self) -> tuple[OrderReceipt, ...]:
        return tuple(self._orders)

    def clear(self) -> None:
        self._sends.clear()
        self._orders.clear()
        self._written.clear()

    def snapshot(self) -> dict[str, Any]:
        return {
            "clock": "perf_counter_ns",
            "price_sends": [asdict(s) for s in self.price_sends()],
            "order_receipts": [asdict(o) for o in self._orders],
        }
