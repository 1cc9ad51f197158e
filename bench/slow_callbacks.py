"""What holds the event loop: every callback the loop runs, timed (bench instrumentation).

While started, ``asyncio.events.Handle._run`` (every ``call_soon``/``call_later`` callback:
task steps, future wake-ups, transports' reads) and ``BaseEventLoop._run_once`` (one pass
of the loop) are wrapped with a timer. Reported, for the callbacks over ``threshold_ms``,
count / total / max grouped by name (a task step by its coroutine's name, a transport's
read by its protocol), how much of that was the garbage collector, and the loop's passes
whose callbacks took longer than ``pass_threshold_ms`` in all (a timer due during such a
pass runs after it: that is the loop lag), with the names that filled them, and how many of
those passes also took that long in the loop thread's CPU (``real_holds``: the rest were
long on the wall clock only, the thread waiting for a core or the GIL). Also every GC pause
in the window, per generation, with the collecting thread's CPU per pause; the loop thread's
CPU of every callback by name (the loop's budget); and the passes over
``SLOW_CALLBACKS_HEAVY_PASS_MS`` (4) ms of the loop thread's CPU, the ones a loop-lag p99
sample is made of, by task step with the GC's CPU inside each. With
``SLOW_CALLBACKS_ALL_STEPS=1``, every task step's CPU by where it began and ended (a fire's
budget step by step). The wrappers cost a few microseconds per callback.

With ``SLOW_CALLBACKS_GC_CENSUS=1`` each young (gen0/gen1) collection is preceded by a census
of what it walks: how many objects, and the largest built-in containers among them (a
container's traversal visits every item). The census is not in the pause, but it is in the
callback the collection fell in: a diagnostic run, not one to take times from.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
from asyncio.base_events import BaseEventLoop
from collections import deque
from collections.abc import Callable
from typing import Any

# Handles shorter than this are not named (naming costs more than the handle).
_NAMED_S = 0.0002


def suspended_at(task: asyncio.Task[Any]) -> str:
    """Where a task waits: the innermost frame of our own code (``vincent``, ``bench``) in
    its await chain, as ``qualname:line`` (``-`` when it has not started or has finished)."""
    awaitable: Any = task.get_coro()
    where = None
    while awaitable is not None:
        frame = next(
            (getattr(awaitable, a) for a in _FRAMES if getattr(awaitable, a, None) is not None),
            None,
        )
        if frame is None:
            break
        if where is None or any(part in frame.f_code.co_filename for part in _OURS):
            where = frame
        awaitable = next(
            (getattr(awaitable, a) for a in _AWAITS if getattr(awaitable, a, None) is not None),
            None,
        )
    return "-" if where is None else f"{where.f_code.co_qualname}:{where.f_lineno}"


_OURS = ("/vincent/", "/bench/")
_FRAMES = ("cr_frame", "ag_frame", "gi_frame")
_AWAITS = ("cr_await", "ag_await", "gi_yieldfrom")


def callback_name(callback: Callable[..., Any]) -> str:
    """A task step or wake-up by its coroutine, a transport's callback by its protocol."""
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        return f"task {getattr(coro, '__qualname__', type(coro).__qualname__)}"
    name = getattr(callback, "__qualname__", None) or type(callback).__qualname__
    protocol = getattr(owner, "_protocol", None)
    if protocol is not None:
        name += f" [{type(protocol).__qualname__}]"
    return name


class _Row:
    __slots__ = ("count", "cpu_max_s", "cpu_s", "gc_s", "max_s", "total_s")

    def __init__(self) -> None:
        self.count = 0
        self.total_s = 0.0
        self.max_s = 0.0
        self.gc_s = 0.0
        self.cpu_s = 0.0
        self.cpu_max_s = 0.0

    def add(self, elapsed_s: float, gc_s: float = 0.0, cpu_s: float = 0.0) -> None:
        self.count += 1
        self.total_s += elapsed_s
        self.max_s = max(self.max_s, elapsed_s)
        self.gc_s += gc_s
        self.cpu_s += cpu_s
        self.cpu_max_s = max(self.cpu_max_s, cpu_s)

    def figures(self) -> dict[str, float]:
        return {
            "count": self.count,
            "total_ms": round(1000 * self.total_s, 1),
            "max_ms": round(1000 * self.max_s, 2),
            "cpu_ms": round(1000 * self.cpu_s, 1),
            "cpu_max_ms": round(1000 * self.cpu_max_s, 2),
            "gc_ms": round(1000 * self.gc_s, 1),
        }


class SlowCallbacks:
    """Times the loop's callbacks and passes between ``start`` and ``stop``."""

    def __init__(self, threshold_ms: float = 1.0, pass_threshold_ms: float = 2.0) -> None:
        self._threshold_s = threshold_ms / 1000
        self._pass_threshold_s = pass_threshold_ms / 1000
        self._clock = time.perf_counter
        self.handles = 0
        self.handles_s = 0.0
        self.slow: dict[str, _Row] = {}
        self.steps: dict[str, _Row] = {}  # slow task steps by where they began and ended
        self.passes = 0
        self.busy_passes = _Row()
        self.busy_pass_names: dict[str, _Row] = {}
        self._pass_s = 0.0
        self._pass_cpu_s = 0.0
        self._pass_gc_s = 0.0
        # Every busy pass: (wall, CPU) seconds of its callbacks.
        self.busy_pass_times: list[tuple[float, float]] = []
        # This pass's callbacks over ``_NAMED_S``: callback, wall, CPU, GC CPU, step name.
        self._pass_handles: list[tuple[Callable[..., Any], float, float, float, str | None]] = []
        self.gc_pauses_ms: list[list[float]] = [[], [], []]
        self._gc_s = 0.0  # GC time so far (attributed to the callback it fell in)
        self._gc_started = 0.0
        self._gc_cpu_started = 0.0
        self.gc_cpu_ms = [0.0, 0.0, 0.0]  # the collecting thread's CPU, per generation
        self.gc_cpu_pauses_ms: list[list[float]] = [[], [], []]  # and per pause
        self._originals: tuple[Any, Any] | None = None
        # Passes over ``heavy_pass_ms`` of the loop thread's CPU (the ones a loop-lag p99
        # sample is made of): how many, and per callback (a task step by where it began
        # and ended) its CPU in them and the GC's CPU inside it.
        self._heavy_pass_s = float(os.environ.get("SLOW_CALLBACKS_HEAVY_PASS_MS", "4")) / 1000
        self.heavy_passes = _Row()
        self.heavy_pass_names: dict[str, _Row] = {}
        self._gc_cpu_s = 0.0  # the GC's CPU so far
        # Every callback's CPU by name (the loop's budget: what keeps it busy in all).
        self.cpu_by_name: dict[str, _Row] = {}
        # With SLOW_CALLBACKS_ALL_STEPS=1: every task step's CPU, by where it began and ended.
        self._all_steps = os.environ.get("SLOW_CALLBACKS_ALL_STEPS") == "1"
        self.cpu_by_step: dict[str, _Row] = {}
        self._census = os.environ.get("SLOW_CALLBACKS_GC_CENSUS") == "1"
        # Per young generation: objects walked, per collection; the largest containers seen.
        self.census_objects: list[list[int]] = [[], []]
        self.census_largest: dict[str, int] = {}
        self._thread = 0

    def start(self) -> None:
        handle_run = asyncio.events.Handle._run
        run_once = BaseEventLoop._run_once  # type: ignore[attr-defined]
        self._originals = (handle_run, run_once)
        self._thread = threading.get_ident()
        clock = self._clock
        threshold_s = self._threshold_s
        # Only this thread's loop (the worker's lock thread runs a loop of its own).
        thread = threading.get_ident()
        get_ident = threading.get_ident

        cpu_clock = time.thread_time

        def timed_run(handle: asyncio.Handle) -> None:
            if get_ident() != thread:
                return handle_run(handle)
            callback = handle._callback  # type: ignore[attr-defined]
            owner = getattr(callback, "__self__", None)
            step_from = suspended_at(owner) if isinstance(owner, asyncio.Task) else None
            gc_before = self._gc_s
            gc_cpu_before = self._gc_cpu_s
            cpu_started = cpu_clock()
            started = clock()
            try:
                handle_run(handle)
            finally:
                elapsed = clock() - started
                cpu_s = cpu_clock() - cpu_started
                self.handles += 1
                self.handles_s += elapsed
                by_name = self.cpu_by_name.setdefault(callback_name(callback), _Row())
                by_name.add(elapsed, cpu_s=cpu_s)
                self._pass_s += elapsed
                self._pass_cpu_s += cpu_s
                step = None
                if step_from is not None and (
                    self._all_steps or elapsed >= _NAMED_S or cpu_s >= _NAMED_S
                ):
                    assert isinstance(owner, asyncio.Task)
                    step = f"{callback_name(callback)}: {step_from} -> {suspended_at(owner)}"
                    if self._all_steps:
                        self.cpu_by_step.setdefault(step, _Row()).add(elapsed, cpu_s=cpu_s)
                if elapsed >= _NAMED_S or cpu_s >= _NAMED_S:
                    gc_cpu_s = self._gc_cpu_s - gc_cpu_before
                    self._pass_handles.append((callback, elapsed, cpu_s, gc_cpu_s, step))
                    if elapsed >= threshold_s:
                        gc_s = self._gc_s - gc_before
                        name = callback_name(callback)
                        self.slow.setdefault(name, _Row()).add(elapsed, gc_s, cpu_s)
                        if step is not None:
                            self.steps.setdefault(step, _Row()).add(elapsed, gc_s, cpu_s)

        def timed_run_once(loop: BaseEventLoop) -> None:
            if get_ident() != thread:
                return run_once(loop)
            self._pass_s = 0.0
            self._pass_cpu_s = 0.0
            gc_before = self._gc_s
            self._pass_handles.clear()
            run_once(loop)
            self.passes += 1
            if self._pass_s >= self._pass_threshold_s:
                self.busy_passes.add(self._pass_s, self._gc_s - gc_before, self._pass_cpu_s)
                self.busy_pass_times.append((self._pass_s, self._pass_cpu_s))
                for callback, elapsed, *_ in self._pass_handles:
                    self.busy_pass_names.setdefault(callback_name(callback), _Row()).add(elapsed)
            if self._pass_cpu_s >= self._heavy_pass_s:
                self.heavy_passes.add(self._pass_s, cpu_s=self._pass_cpu_s)
                for callback, elapsed, cpu_s, gc_cpu_s, step in self._pass_handles:
                    name = step or callback_name(callback)
                    self.heavy_pass_names.setdefault(name, _Row()).add(elapsed, gc_cpu_s, cpu_s)

        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
        BaseEventLoop._run_once = timed_run_once  # type: ignore[attr-defined]
        gc.callbacks.append(self._gc_callback)

    def stop(self) -> None:
        if self._originals is None:
            return
        handle_run, run_once = self._originals
        asyncio.events.Handle._run = handle_run  # type: ignore[method-assign]
        BaseEventLoop._run_once = run_once  # type: ignore[attr-defined]
        gc.callbacks.remove(self._gc_callback)
        self._originals = None

    def _gc_callback(self, phase: str, info: dict[str, int]) -> None:
        # Any thread's collection: it holds the GIL, so the loop waits for it too.
        now = self._clock()
        cpu_now = time.thread_time()
        if phase == "start":
            if self._census and info["generation"] < 2:
                self._take_census(info["generation"])
                now = self._clock()
                cpu_now = time.thread_time()
            self._gc_started = now
            self._gc_cpu_started = cpu_now
        else:
            pause = now - self._gc_started
            self._gc_s += pause
            self.gc_pauses_ms[info["generation"]].append(1000 * pause)
            cpu_ms = 1000 * (cpu_now - self._gc_cpu_started)
            self.gc_cpu_ms[info["generation"]] += cpu_ms
            self._gc_cpu_s += cpu_ms / 1000
            self.gc_cpu_pauses_ms[info["generation"]].append(cpu_ms)

    def _take_census(self, generation: int) -> None:
        # A gen1 collection walks gen0 too.
        objects = [item for younger in range(generation + 1) for item in gc.get_objects(younger)]
        self.census_objects[generation].append(len(objects))
        largest = self.census_largest
        for item in objects:
            if type(item) in _CONTAINERS:
                size = len(item)
                if size >= 1000:
                    key = f"gen{generation} {type(item).__name__} of {size // 1000}k"
                    largest[key] = largest.get(key, 0) + 1
        del objects

    def figures(self, top: int = 15) -> dict[str, Any]:
        """The JSON figures: the slowest names first (by total time over the threshold)."""

        def table(
            rows: dict[str, _Row], by_cpu: bool = False, limit: int = top
        ) -> list[dict[str, Any]]:
            ordered = sorted(
                rows.items(), key=lambda item: -(item[1].cpu_s if by_cpu else item[1].total_s)
            )
            return [{"name": name, **row.figures()} for name, row in ordered[:limit]]

        return {
            "handles": self.handles,
            "handles_ms": round(1000 * self.handles_s, 1),
            "passes": self.passes,
            "slow_callbacks": table(self.slow),
            "slow_task_steps": table(self.steps),
            "busy_passes": self.busy_passes.figures(),
            "busy_pass_holds": _holds(self.busy_pass_times, self._pass_threshold_s),
            "busy_pass_callbacks": table(self.busy_pass_names),
            "cpu_by_callback": table(self.cpu_by_name, by_cpu=True),
            **(
                {"cpu_by_step": table(self.cpu_by_step, by_cpu=True, limit=3 * top)}
                if self._all_steps
                else {}
            ),
            "heavy_pass_ms": round(1000 * self._heavy_pass_s, 2),
            "heavy_passes": self.heavy_passes.figures(),
            # Here ``gc_ms`` is the GC's CPU inside the callback, not its wall time.
            "heavy_pass_callbacks": table(self.heavy_pass_names, by_cpu=True),
            **({"gc_census": self._census_figures()} if self._census else {}),
            "gc": [
                {
                    "generation": generation,
                    "count": len(pauses),
                    "total_ms": round(sum(pauses), 1),
                    "max_ms": round(max(pauses, default=0.0), 2),
                    "over_1ms": sum(1 for pause in pauses if pause >= 1.0),
                    "cpu_ms": round(self.gc_cpu_ms[generation], 1),
                    **_cpu_per_pause(self.gc_cpu_pauses_ms[generation]),
                }
                for generation, pauses in enumerate(self.gc_pauses_ms)
            ],
        }

    def _census_figures(self) -> dict[str, Any]:
        walked = {
            f"gen{generation}": {
                "collections": len(counts),
                "mean_objects": round(sum(counts) / len(counts)) if counts else 0,
                "max_objects": max(counts, default=0),
            }
            for generation, counts in enumerate(self.census_objects)
        }
        largest = sorted(self.census_largest.items(), key=lambda item: -item[1])[:20]
        return {**walked, "containers_over_1k": dict(largest)}

    def print_table(self, figures: dict[str, Any]) -> None:
        """The figures as a small table on stderr."""
        out = sys.stderr
        threshold_ms = 1000 * self._threshold_s
        print(f"callbacks over {threshold_ms:g} ms (of {figures['handles']}):", file=out)
        _print_rows(figures["slow_callbacks"])
        print("slow task steps, by where they began -> ended:", file=out)
        _print_rows(figures["slow_task_steps"])
        busy = figures["busy_passes"]
        print(
            f"loop passes over {1000 * self._pass_threshold_s:g} ms of callbacks: "
            f"{busy['count']} of {figures['passes']}, {busy['total_ms']} ms, "
            f"max {busy['max_ms']} ms; their callbacks over {1000 * _NAMED_S:g} ms:",
            file=out,
        )
        holds = figures["busy_pass_holds"]
        print(
            f"  of them {holds['real_holds']} also over {1000 * self._pass_threshold_s:g} ms of "
            f"the loop thread's CPU; wall p50/p99 {holds['wall_p50_ms']}/{holds['wall_p99_ms']} "
            f"ms, CPU p50/p99 {holds['cpu_p50_ms']}/{holds['cpu_p99_ms']} ms",
            file=out,
        )
        _print_rows(figures["busy_pass_callbacks"])
        print("every callback, by the loop thread's CPU:", file=out)
        _print_rows(figures["cpu_by_callback"])
        if "cpu_by_step" in figures:
            print("every task step, by the loop thread's CPU:", file=out)
            _print_rows(figures["cpu_by_step"])
        heavy = figures["heavy_passes"]
        print(
            f"loop passes over {figures['heavy_pass_ms']:g} ms of the loop thread's CPU: "
            f"{heavy['count']}, cpu {heavy['cpu_ms']} ms; their callbacks over "
            f"{1000 * _NAMED_S:g} ms (gc: the GC's CPU in them):",
            file=out,
        )
        _print_rows(figures["heavy_pass_callbacks"])
        for row in figures["gc"]:
            print(
                f"gc gen{row['generation']}: {row['count']} pauses {row['total_ms']} ms, "
                f"max {row['max_ms']} ms, {row['over_1ms']} over 1 ms, cpu {row['cpu_ms']} ms "
                f"(a pause p50/p99/max {row['cpu_p50_ms']}/{row['cpu_p99_ms']}/"
                f"{row['cpu_max_ms']} ms)",
                file=out,
            )


_CONTAINERS = (list, dict, set, frozenset, tuple, deque)


def _holds(times: list[tuple[float, float]], threshold_s: float) -> dict[str, float]:
    """Busy passes on the wall clock against the loop thread's CPU in them."""
    walls = sorted(wall for wall, _ in times)
    cpus = sorted(cpu for _, cpu in times)

    def rank(ordered: list[float], q: float) -> float:
        return round(1000 * ordered[round(q * (len(ordered) - 1))], 2) if ordered else 0.0

    return {
        "real_holds": sum(1 for _, cpu in times if cpu >= threshold_s),
        "wall_p50_ms": rank(walls, 0.5),
        "wall_p99_ms": rank(walls, 0.99),
        "cpu_p50_ms": rank(cpus, 0.5),
        "cpu_p99_ms": rank(cpus, 0.99),
    }


def _cpu_per_pause(pauses_ms: list[float]) -> dict[str, float]:
    """The collecting thread's CPU of one pause: p50/p99 (nearest rank) and max."""
    ordered = sorted(pauses_ms)

    def rank(q: float) -> float:
        return round(ordered[round(q * (len(ordered) - 1))], 2) if ordered else 0.0

    return {"cpu_p50_ms": rank(0.5), "cpu_p99_ms": rank(0.99), "cpu_max_ms": rank(1.0)}


def _print_rows(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        print(
            f"  {row['count']:>7} {row['total_ms']:>9.1f} ms  max {row['max_ms']:>7.2f} ms"
            f"  cpu {row['cpu_ms']:>8.1f} ms  max {row['cpu_max_ms']:>6.2f} ms"
            f"  gc {row['gc_ms']:>7.1f} ms  {row['name']}",
            file=sys.stderr,
        )
