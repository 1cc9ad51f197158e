"""Summarise a ``py-spy record --format raw`` file (collapsed stacks) from ``--profile``.

    python -m bench.profile_report FILE [--top 25]

Prints the frames with the most samples on top of the stack (self) and, for the steps of
the worker named in ``MARKERS``, the share of samples with that frame anywhere on the
stack (inclusive; the steps nest, so the shares do not add up). Idle samples (the event
loop waiting in ``select``, aiosqlite's thread waiting for work) are counted apart: shares
are of the busy samples (every thread; SQLite itself runs in aiosqlite's thread).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

MARKERS = (
    ("frame handling (parse, book, index)", "FrameHandler.handle"),
    ("prices to rules (PriceDispatcher.on_prices)", "PriceDispatcher.on_prices"),
    ("a whole fire (execute_rule)", "RuleExecutor.execute_rule"),
    ("  holdings read", "PolymarketSkill.get_holdings"),
    ("  skill read (wallet, policies, attempt)", "read_bet_inputs"),
    ("  sign", "Executor.sign"),
    ("  durable write (claim + events + audit row)", "BetPipeline._claim_and_write"),
    ("  POST /order", "LiveOrders.post"),
    ("  settlement follow", "PolymarketSkill.follow_settlement"),
    ("  skill recording", "Executor._conclude"),
    ("  rule recording", "record_executed"),
    ("trailing flush", "TrailingLevels.flush"),
    ("poll tick", "PollTick.run"),
    ("skill warm-up", "SkillWarmup"),
    ("websockets protocol", "websockets/"),
    ("SQLAlchemy", "sqlalchemy/"),
    ("asyncpg", "asyncpg/"),
    ("aiosqlite / sqlite3 thread", "aiosqlite/"),
    ("httpx / httpcore", "httpcore/"),
    ("signing (eth / coincurve / poly_eip712)", "eip712"),
    ("benchmark's own sampler", "bench/engine.py:3"),
)
_LINE = re.compile(r"^(.*) (\d+)$")
# Leaves of a thread waiting: the event loop in epoll, aiosqlite's worker on its queue.
_IDLE = ("EpollSelector.select (", "select (selectors.py", "_connection_worker_thread (")


def _frame_name(frame: str) -> str:
    return frame.split(" (", 1)[0] + " (" + frame.split(" (", 1)[1].split(":")[0] + ")"


def report(path: str, top: int) -> str:
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    busy = idle = 0
    with open(path) as file:
        for line in file:
            match = _LINE.match(line.rstrip("\n"))
            if match is None:
                continue
            stack, count = match.group(1), int(match.group(2))
            frames = stack.split(";")
            if any(frames[-1].startswith(marker) for marker in _IDLE):
                idle += count
                continue
            busy += count
            self_counts[_frame_name(frames[-1]) if " (" in frames[-1] else frames[-1]] += count
            for label, marker in MARKERS:
                if marker in stack:
                    inclusive[label] += count
    total = max(busy, 1)
    lines = [f"{busy} busy samples, {idle} idle ({100 * idle / max(busy + idle, 1):.1f} %)"]
    lines.append("inclusive share of busy samples:")
    lines += [
        f"  {100 * inclusive[label] / total:5.1f} %  {label}"
        for label, _ in MARKERS
        if inclusive[label]
    ]
    lines.append(f"top {top} frames by self samples:")
    lines += [
        f"  {100 * count / total:5.1f} %  {name}" for name, count in self_counts.most_common(top)
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_report")
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(report(args.path, args.top))


if __name__ == "__main__":
    main()
