"""Where a fire's time goes: wall time of each step of the order path (``--fire-steps``).

Benchmark instrumentation only: for the benchmark process, it wraps the calls one fire
makes, from the crossing price to the recorded outcome, and keeps each call's wall time.
Wall time, awaits included: waiting for the database, the exchange or a busy event loop is
the fire's time too (a CPU profile does not see it). The product never imports this.

Steps (``FireSteps.summary()``; ms, min / p50 / p99 / mean / count; a burst's first fire
is its minimum):
- ``queue``: crossing event handled (``Trigger.ts_event``) → ``execute_rule`` entered
  (the task start and the wait for an execution slot);
- ``claim``: the claim (UPDATE + the events' INSERT), inside the durable write, when it
  runs in a session's transaction (a trailing raise to store, an OCO group): a plain rule's
  is part of ``durable_write``'s one statement (PostgreSQL) or one call (SQLite);
- ``holdings``: the position read (Data API), only when the worker holds none for the secret;
- ``skill_read``: wallet + policies + earlier attempt (``read_bet_inputs``);
- ``prepare``: market info, book for value, size (``BetPipeline._prepare``);
- ``sign``: the SDK signing the order;
- ``durable_write``: claim + the audit row with the signed order, one commit;
- ``post``: ``POST /order`` and its answer;
- ``before_post``: crossing event handled → the POST starts (the hot path proper);
- ``settlement``: following the fill to its trades' settlement;
- ``skill_record``: the skill recording the fill on its audit row;
- ``rule_record``: the rule's outcome transaction (executed or settling);
- ``fire``: ``execute_rule`` entered → returned;
- ``feed_in``: the exchange's send of the crossing event → handled by the worker;
- ``post_in``: the POST started → received by the exchange's handler (with ``feed_in`` and
  ``before_post``, the whole of the benchmark's latency);
- ``lane``: waiting for a slot of the pre-POST lane (``FireLanes.before_post``).

``first_fires()``: for the first ``FIRST_FIRES`` fires to start (a burst's first orders),
when each step began (``step>``) and ended (``step<``), in ms from the crossing event
handled, in the order they happened: what the first order waited for.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from bench.common import percentile
from vincent.services.trade_manager import rule_executor
from vincent.services.trade_manager.fire_lanes import FireLanes
from vincent.services.trade_manager.rule_executor import RuleExecutor
from vincent.skills.polymarket import bets
from vincent.skills.polymarket.bets import BetPipeline
from vincent.skills.polymarket.execution import Executor
from vincent.skills.polymarket.orders import LiveOrders
from vincent.skills.polymarket.skill import PolymarketSkill

_ts_event: contextvars.ContextVar[float | None] = contextvars.ContextVar("ts_event", default=None)
_rule_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("rule_id", default=None)

# (step, owner, attribute): owner is a class or a module whose attribute is an async callable.
_WRAPPED: tuple[tuple[str, Any, str], ...] = (
    ("claim", RuleExecutor, "claim_in"),  # inside the durable write since issue 14
    ("holdings", PolymarketSkill, "get_holdings"),
    ("skill_read", bets, "read_bet_inputs"),
    ("prepare", BetPipeline, "_prepare"),
    ("sign", Executor, "sign"),
    ("durable_write", BetPipeline, "_decide_and_write"),  # claim + audit row, one commit
    ("lane", FireLanes, "before_post"),
    ("settlement", PolymarketSkill, "follow_settlement"),
    ("skill_record", Executor, "_conclude"),
    ("rule_record", rule_executor, "record_executed"),
    ("rule_record", rule_executor, "record_settling"),
)


# Fires whose steps are stamped on a timeline (``FireSteps.first_fires``).
FIRST_FIRES = 4


def in_fire() -> bool:
    """Whether the running task is part of a fire (set while ``FireSteps`` is installed)."""
    return _ts_event.get() is not None


class FireSteps:
    """Wall time per step, in milliseconds, over every fire while installed."""

    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = defaultdict(list)
        # Per rule, on the clock the exchange uses too (CLOCK_MONOTONIC, in ns): when its
        # crossing event was handled, and when its POST started (``add_crossings``).
        self.event_ns: dict[str, int] = {}
        self.post_ns: dict[str, int] = {}
        # The first fires' steps: rule id → (step> or step<, ms from its event handled).
        self._timelines: dict[str, list[tuple[str, float]]] = {}

    def clear(self) -> None:
        self.ms.clear()
        self.event_ns.clear()
        self.post_ns.clear()
        self._timelines.clear()

    def _stamp(self, mark: str) -> None:
        timeline = self._timelines.get(_rule_id.get() or "")
        ts_event = _ts_event.get()
        if timeline is not None and ts_event is not None:
            timeline.append((mark, round(1000 * (time.monotonic() - ts_event), 3)))

    def first_fires(self) -> list[list[tuple[str, float]]]:
        """The first fires' timelines, in the order they started."""
        return [list(timeline) for timeline in self._timelines.values()]

    def add_crossings(self, sent_received_ns: dict[str, tuple[int, int]]) -> None:
        """The two steps only both processes see, from the exchange's send of each rule's
        crossing event and receipt of its order: ``feed_in`` (sent → handled by the
        worker: the exchange's queue, the WebSocket, the frame's parse and dispatch) and
        ``post_in`` (POST started → received by the exchange's handler)."""
        for rule_id, (sent_ns, received_ns) in sent_received_ns.items():
            if rule_id in self.event_ns:
                self.ms["feed_in"].append((self.event_ns[rule_id] - sent_ns) / 1e6)
            if rule_id in self.post_ns:
                self.ms["post_in"].append((received_ns - self.post_ns[rule_id]) / 1e6)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            step: {
                "min": round(min(values), 3),
                "p50": round(percentile(values, 50), 3),
                "p99": round(percentile(values, 99), 3),
                "mean": round(sum(values) / len(values), 3),
                "count": len(values),
            }
            for step, values in sorted(self.ms.items())
        }

    def _timed(self, step: str, call: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(call)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            if _ts_event.get() is None:  # not part of a fire (poll tick, warm-up)
                return await call(*args, **kwargs)
            self._stamp(step + ">")
            started = time.perf_counter()
            try:
                return await call(*args, **kwargs)
            finally:
                self.ms[step].append(1000 * (time.perf_counter() - started))
                self._stamp(step + "<")

        return timed

    def _fire(self, call: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(call)
        async def fire(executor: RuleExecutor, rule: Any, trigger: Any, **kwargs: Any) -> Any:
            # The worker's clock is time.monotonic (SystemClock).
            self.ms["queue"].append(1000 * (time.monotonic() - trigger.ts_event))
            self.event_ns.setdefault(rule.id, round(trigger.ts_event * 1e9))
            token = _ts_event.set(trigger.ts_event)
            rule_token = _rule_id.set(rule.id)
            if len(self._timelines) < FIRST_FIRES:
                self._timelines.setdefault(rule.id, [])
            self._stamp("enter")
            started = time.perf_counter()
            try:
                return await call(executor, rule, trigger, **kwargs)
            finally:
                self.ms["fire"].append(1000 * (time.perf_counter() - started))
                _ts_event.reset(token)
                _rule_id.reset(rule_token)

        return fire

    def _post(self, call: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(call)
        async def post(*args: Any, **kwargs: Any) -> Any:
            ts_event = _ts_event.get()
            if ts_event is not None:
                self.ms["before_post"].append(1000 * (time.monotonic() - ts_event))
                rule_id = _rule_id.get()
                if rule_id is not None:
                    self.post_ns.setdefault(rule_id, time.perf_counter_ns())
                self._stamp("post>")
            started = time.perf_counter()
            try:
                return await call(*args, **kwargs)
            finally:
                self.ms["post"].append(1000 * (time.perf_counter() - started))

        return post

    @contextlib.contextmanager
    def installed(self) -> Iterator[FireSteps]:
        originals = [(owner, name, getattr(owner, name)) for _, owner, name in _WRAPPED]
        originals.append((RuleExecutor, "execute_rule", RuleExecutor.execute_rule))
        originals.append((LiveOrders, "post", LiveOrders.post))
        try:
            for step, owner, name in _WRAPPED:
                setattr(owner, name, self._timed(step, getattr(owner, name)))
            RuleExecutor.execute_rule = self._fire(RuleExecutor.execute_rule)  # type: ignore[method-assign]
            LiveOrders.post = self._post(LiveOrders.post)  # type: ignore[method-assign]
            yield self
        finally:
            for owner, name, original in originals:
                setattr(owner, name, original)
