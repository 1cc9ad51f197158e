"""The dashboard's live side: samples prices, notices rule and approval changes, and
publishes them to the pages' event streams.

One loop per process, once a second: it samples the worker's price history (when the
worker runs here), and while a page is listening, reads the rule events written since the
last look (a primary-key range scan: event ids start with their creation time) plus the
rules changed through this process's API, then renders each changed rule once. Pages read
the published entries from a bounded ring (``Broadcast``); a page that falls too far
behind is told to reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from vincent.api.state import AppState
from vincent.dashboard import read_models
from vincent.dashboard.charts import point_json, rule_line
from vincent.dashboard.price_history import PriceHistory
from vincent.dashboard.rendering import market_label, render_rule_row, templates
from vincent.db.base import utcnow
from vincent.services.trade_manager.types import RuleChangeListener, RuleSnapshot

logger = logging.getLogger(__name__)

STEP_INTERVAL_S = 1.0
# Rule events are looked for this far back on every step, so an event whose transaction
# committed up to this long after its id was made is still seen (ids already seen are
# skipped).
EVENT_OVERLAP_S = 10.0
RING_SIZE = 5000
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


class Audience(StrEnum):
    TOKEN = "token"  # price of a token: viewers with a rule on it
    SECRET = "secret"  # a rule of a secret: that agent and the owner
    OWNER = "owner"  # approvals, worker health


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    audience: Audience
    key: str
    event: str
    data: str  # JSON
    token_id: str | None = None  # the token a rule entry is about


class Broadcast:
    """A bounded, numbered log of published entries that readers follow by sequence."""

    def __init__(self, size: int = RING_SIZE) -> None:
        self._entries: deque[Entry] = deque(maxlen=size)
        self._changed = asyncio.Condition()
        self.head = 0  # sequence number of the newest entry (0: none yet)

    async def publish(
        self, audience: Audience, key: str, event: str, data: Any, token_id: str | None = None
    ) -> None:
        self.head += 1
        entry = Entry(self.head, audience, key, event, json.dumps(data), token_id)
        self._entries.append(entry)
        async with self._changed:
            self._changed.notify_all()

    async def wait_after(self, cursor: int, timeout_s: float) -> tuple[list[Entry], bool]:
        """Entries after ``cursor``, waiting up to ``timeout_s`` for one; bool: some were lost."""
        if self.head <= cursor:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s), self._changed:
                    await self._changed.wait_for(lambda: self.head > cursor)
        if self.head <= cursor:
            return [], False
        if not self._entries or self._entries[0].seq > cursor + 1:
            return [], True
        return [e for e in self._entries if e.seq > cursor], False


class _Tee:
    """The API's rule-change listener, told first; then the hub notes the rule."""

    def __init__(self, inner: RuleChangeListener, hub: DashboardHub) -> None:
        self._inner = inner
        self._hub = hub

    def rule_upserted(self, rule: RuleSnapshot) -> None:
        self._inner.rule_upserted(rule)
        self._hub.rule_changed(rule.id)

    def rule_removed(self, rule_id: str, token_id: str) -> None:
        self._inner.rule_removed(rule_id, token_id)
        self._hub.rule_changed(rule_id)


def id_floor(ts_s: float) -> str:
    """The smallest id ``new_id`` can make at ``ts_s`` (``c`` + milliseconds in base 36)."""
    number, digits = int(ts_s * 1000), []
    for _ in range(8):
        number, rem = divmod(number, 36)
        digits.append(_BASE36[rem])
    return "c" + "".join(reversed(digits))


class DashboardHub:
    """Publishes prices, rule changes, approvals and health for the dashboard's pages."""

    def __init__(self, state: AppState, history: PriceHistory | None = None) -> None:
        self._state = state
        self.history = history or PriceHistory()
        self.broadcast = Broadcast()
        self.listeners = 0
        self.owner_listeners = 0
        self._changed_rules: set[str] = set()
        self._seen_events: dict[str, float] = {}
        self._approvals: frozenset[str] | None = None
        self._health: str | None = None
        self._wake = asyncio.Event()

    def rule_changed(self, rule_id: str) -> None:
        """A rule changed in this process (API, dashboard): publish it on the next step."""
        self._changed_rules.add(rule_id)
        self._wake.set()

    def wake(self) -> None:
        """Run the next step now."""
        self._wake.set()

    def valued(self, rows: list[read_models.ApprovalRow]) -> list[read_models.ApprovalRow]:
        """Approvals without a USD value, estimated at their token's last best bid."""
        valued = []
        for row in rows:
            token_id = (row.approval.request_data or {}).get("tokenId")
            points = self.history.points(token_id) if isinstance(token_id, str) else []
            valued.append(row.with_estimate(points[-1].best_bid if points else None))
        return valued

    @contextlib.contextmanager
    def listening(self, *, owner: bool) -> Any:
        """Count a page's stream while it is open (the loop reads the database only then)."""
        self.listeners += 1
        self.owner_listeners += owner
        try:
            yield
        finally:
            self.listeners -= 1
            self.owner_listeners -= owner

    async def run(self, stopping: asyncio.Event) -> None:
        worker = self._state.worker

        def touch(token_ids: tuple[str, ...]) -> None:
            assert worker is not None
            self.history.touch(token_ids, worker.book_prices)

        if worker is not None:
            worker.price_listeners.append(touch)
        try:
            while not stopping.is_set():
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STEP_INTERVAL_S):
                        await self._wake.wait()
                if stopping.is_set():
                    return
                try:
                    await self.step()
                except Exception:  # contained: a failed step must not end the live updates
                    logger.exception("dashboard_step_failed")
        finally:
            if worker is not None:
                worker.price_listeners.remove(touch)

    async def step(self) -> None:
        """Sample prices; publish new points, changed rules, approvals and health."""
        if self._state.worker is not None:
            for token_id, point in self.history.sample(time.time()):
                data = {"tokenId": token_id, "point": point_json(point)}
                await self.broadcast.publish(Audience.TOKEN, token_id, "price", data)
        if not self.listeners:
            self._changed_rules.clear()
            self._approvals = None
            self._health = None
            return
        await self._publish_rules()
        if self.owner_listeners:
            await self._publish_owner_view()

    async def _publish_rules(self) -> None:
        now_s = time.time()
        async with self._state.session_factory() as session:
            changes = await read_models.changed_rules_since(
                session, id_floor(now_s - EVENT_OVERLAP_S)
            )
            rule_ids = set(self._changed_rules)
            self._changed_rules.clear()
            for change in changes:
                if change.event_id not in self._seen_events:
                    self._seen_events[change.event_id] = now_s
                    rule_ids.add(change.rule_id)
            horizon_s = now_s - 2 * EVENT_OVERLAP_S
            for event_id in [e for e, seen in self._seen_events.items() if seen < horizon_s]:
                del self._seen_events[event_id]
            if not rule_ids:
                return
            rows = await read_models.rules_by_id(session, None, rule_ids)
            events = await read_models.chart_events(session, [row.rule.id for row in rows])
        for row in sorted(rows, key=lambda r: (r.rule.created_at, r.rule.id)):
            rule = row.rule
            data = {
                "id": rule.id,
                "secretId": rule.secret_id,
                "tokenId": rule.token_id,
                "status": rule.status.value,
                "label": market_label(row),
                "html": render_rule_row(row),
                "line": rule_line(rule, events.get(rule.id, ())),
            }
            await self.broadcast.publish(
                Audience.SECRET, rule.secret_id, "rule", data, token_id=rule.token_id
            )

    async def _publish_owner_view(self) -> None:
        now = utcnow()
        async with self._state.session_factory() as session:
            pending = await read_models.pending_approval_ids(session, now)
            if pending != self._approvals:
                self._approvals = pending
                rows = self.valued(await read_models.pending_approvals(session, now))
                html = templates.env.get_template("_approvals.html").render(approvals=rows)
                await self.broadcast.publish(
                    Audience.OWNER, "", "approvals", {"html": html, "count": len(rows)}
                )
        health = templates.env.get_template("_health.html").render(
            status=self._state.worker_status(), has_worker=self._state.worker is not None
        )
        if health != self._health:
            self._health = health
            await self.broadcast.publish(Audience.OWNER, "", "health", {"html": health})


@contextlib.asynccontextmanager
async def running_hub(state: AppState) -> AsyncIterator[DashboardHub]:
    """Run the hub's loop for the lifespan; it sees API rule changes through a tee."""
    hub = DashboardHub(state)
    state.rule_listener = _Tee(state.rule_listener, hub)
    stopping = asyncio.Event()
    task = asyncio.create_task(hub.run(stopping), name="dashboard-hub")
    try:
        yield hub
    finally:
        stopping.set()
        hub.wake()  # the loop sees ``stopping`` at once
        await task
