"""A leader whose event loop stalls: does it keep the lock? And what guarding it costs.

    python -m bench.leader_stall [--stalls 1,2,3,4,6] [--after-s 2] [--idle-s 20] [--pg URL]

For each stall length S, on a fresh scratch PostgreSQL database: leader "A" (``Leadership``
on this process's main loop) and standby "B" (a ``Leadership`` on a thread with its own
event loop, as another process would be). A's main loop is blocked for S seconds by one
callback (``time.sleep``: a stall, not a wait), then runs for ``--after-s`` more; reported:
whether A still leads under its first epoch, whether B took over, A's deposition reason.
Then A leads alone for ``--idle-s`` seconds: the CPU of the process, of its main thread and
of the lock thread (``vincent-worker-leadership``, absent before issue 14's round 10).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from typing import Any

from bench.common import PG_DEFAULT, scratch_database
from vincent.services.trade_manager.leadership import Election, Leadership
from vincent.services.trade_manager.types import SystemClock


class StandbyThread:
    """Worker "B": campaigns on its own thread and loop until ``stop``."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self.opened = threading.Event()
        self.elected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._campaign()))

    def start(self) -> None:
        self._thread.start()
        self.opened.wait(30.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30.0)

    async def _campaign(self) -> None:
        leadership = Leadership(self._database_url, "B", SystemClock())
        try:
            await leadership.open()
            leadership.start(lambda _e: self.elected.set(), lambda _r: None)
            self.opened.set()
            await asyncio.to_thread(self._stop.wait)
        finally:
            await leadership.close()


async def stall_once(database_url: str, stall_s: float, after_s: float) -> dict[str, Any]:
    depositions: list[str] = []
    a = Leadership(database_url, "A", SystemClock())
    try:
        first = await a.open()
        assert first is not None
        a.start(lambda _e: None, depositions.append)
        b = StandbyThread(database_url)
        b.start()
        try:
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            loop.call_soon(lambda: (time.sleep(stall_s), done.set_result(None)))
            await done
            await asyncio.sleep(after_s)
            return {
                "stall_s": stall_s,
                "kept": a.is_leader and a.epoch == first.epoch,
                "standby_took_over": b.elected.is_set(),
                "deposed": depositions[0] if depositions else None,
            }
        finally:
            b.stop()
    finally:
        await a.close()


async def idle_cost(database_url: str, idle_s: float) -> dict[str, Any]:
    a = Leadership(database_url, "A", SystemClock())
    try:
        assert isinstance(await a.open(), Election)
        a.start(lambda _e: None, lambda _r: None)
        lock_threads = [t for t in threading.enumerate() if t.name == "vincent-worker-leadership"]
        clock_id = time.pthread_getcpuclockid(lock_threads[0].ident) if lock_threads else None

        def lock_thread_cpu_s() -> float:
            return 0.0 if clock_id is None else time.clock_gettime(clock_id)

        cpu0, main0, lock0 = time.process_time(), time.thread_time(), lock_thread_cpu_s()
        await asyncio.sleep(idle_s)
        cpu1, main1, lock1 = time.process_time(), time.thread_time(), lock_thread_cpu_s()
    finally:
        await a.close()
    per_minute = 60.0 / idle_s
    return {
        "idle_s": idle_s,
        "process_cpu_ms_per_min": round((cpu1 - cpu0) * 1000 * per_minute, 1),
        "main_thread_cpu_ms_per_min": round((main1 - main0) * 1000 * per_minute, 1),
        "lock_thread_cpu_ms_per_min": round((lock1 - lock0) * 1000 * per_minute, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stalls", default="1,2,3,4,6")
    parser.add_argument("--after-s", type=float, default=2.0)
    parser.add_argument("--idle-s", type=float, default=20.0)
    parser.add_argument("--pg", default=PG_DEFAULT)
    args = parser.parse_args()
    stalls = []
    for stall_s in (float(s) for s in args.stalls.split(",")):
        with scratch_database("postgres", args.pg) as url:
            result = asyncio.run(stall_once(url, stall_s, args.after_s))
        print(
            f"stall {stall_s:4.1f} s: kept {result['kept']!s:5}  "
            f"standby took over {result['standby_took_over']!s:5}  deposed: {result['deposed']}"
        )
        stalls.append(result)
    with scratch_database("postgres", args.pg) as url:
        cost = asyncio.run(idle_cost(url, args.idle_s))
    print(
        f"leading alone {args.idle_s:.0f} s: process {cost['process_cpu_ms_per_min']} ms CPU/min, "
        f"main thread {cost['main_thread_cpu_ms_per_min']}, "
        f"lock thread {cost['lock_thread_cpu_ms_per_min']}"
    )
    print(json.dumps({"stalls": stalls, "idle": cost}))


if __name__ == "__main__":
    main()
