"""Statements the benchmark process sends, timed on the client side (``--sql-timing``).

Stands in for ``pg_stat_statements`` where that extension cannot be loaded (it needs
``shared_preload_libraries`` and a server restart): SQLAlchemy's cursor events around
every statement of every engine in this process. Client-side wall time, so a statement's
time includes the round trip and any wait for the event loop to resume it. Statements run
inside a fire (``bench.fire_steps``) are counted apart.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench import fire_steps

_SPACES = re.compile(r"\s+")
_KEPT = 90


def _shape(statement: str) -> str:
    return _SPACES.sub(" ", statement).strip()[:_KEPT]


class SqlTiming:
    def __init__(self) -> None:
        self.ms: dict[tuple[bool, str], list[float]] = defaultdict(list)

    def clear(self) -> None:
        self.ms.clear()

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("bench_sql_started", []).append(time.perf_counter())

    def _after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started = conn.info["bench_sql_started"].pop()
        in_fire = fire_steps.in_fire()
        self.ms[(in_fire, _shape(statement))].append(1000 * (time.perf_counter() - started))

    def summary(self, top: int = 12) -> dict[str, Any]:
        """Per statement shape: count and total/mean ms, by total; in fires and outside."""
        result: dict[str, Any] = {}
        for in_fire, label in ((True, "in_fires"), (False, "outside_fires")):
            rows = [
                {
                    "statement": shape,
                    "count": len(values),
                    "total_ms": round(sum(values), 1),
                    "mean_ms": round(sum(values) / len(values), 3),
                }
                for (fire, shape), values in self.ms.items()
                if fire is in_fire
            ]
            rows.sort(key=lambda row: -row["total_ms"])
            result[label] = {
                "statements": sum(row["count"] for row in rows),
                "total_ms": round(sum(row["total_ms"] for row in rows), 1),
                "top": rows[:top],
            }
        return result

    @contextlib.contextmanager
    def installed(self) -> Iterator[SqlTiming]:
        sa.event.listen(Engine, "before_cursor_execute", self._before)
        sa.event.listen(Engine, "after_cursor_execute", self._after)
        try:
            yield self
        finally:
            sa.event.remove(Engine, "before_cursor_execute", self._before)
            sa.event.remove(Engine, "after_cursor_execute", self._after)
