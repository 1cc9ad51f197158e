"""Hot-path benchmark of the in-memory rule state: ``RuleRegistry.apply_price``, no I/O.

    python -m bench.registry [--rules 10000] [--tokens 200] [--prices 200000] [--repeat 3]
                             [--dormant-fraction 0] [--oco-fraction 0] [--seed 7]

N rules over T tokens (a third each: stop-losses below 0.40, take-profits above 0.60,
10 % trailing stops; optionally a fraction of the trailing stops dormant until 0.55, and a
fraction of the stops and take-profits paired into OCO groups), then P prices as small
seeded random walks around 0.5. Fired rules are not re-armed. Prints the best of R runs
in CPU time (process time: steadier than wall time on a shared machine) as prices per
second, with the rules fired and the trailing raises; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import replace
from decimal import Decimal
from typing import Any

from vincent.enums import TradeRuleType, TriggerSource
from vincent.services.trade_manager.rule_registry import RuleRegistry
from vincent.services.trade_manager.types import ActionType, RuleAction, RuleSnapshot

_TYPES = (TradeRuleType.STOP_LOSS, TradeRuleType.TAKE_PROFIT, TradeRuleType.TRAILING_STOP)


def build(args: argparse.Namespace) -> RuleRegistry:
    rng = random.Random(args.seed)
    registry = RuleRegistry()
    for number in range(args.rules):
        rule_type = _TYPES[number % 3]
        low, high = (6000, 8000) if rule_type is TradeRuleType.TAKE_PROFIT else (2000, 4000)
        rule = RuleSnapshot(
            id=f"r{number:07d}",
            secret_id="s",
            rule_type=rule_type,
            market_id="m",
            token_id=f"t{number % args.tokens}",
            trigger_price=Decimal(rng.randint(low, high)).scaleb(-4),
            trailing_percent=Decimal(10) if rule_type is TradeRuleType.TRAILING_STOP else None,
            action=RuleAction(ActionType.SELL_ALL),
        )
        if rule_type is TradeRuleType.TRAILING_STOP and rng.random() < args.dormant_fraction:
            rule = replace(rule, activation_price=Decimal("0.55"))
        elif rule_type is not TradeRuleType.TRAILING_STOP and rng.random() < args.oco_fraction:
            rule = replace(rule, oco_group_id=f"g{number // 6}")
        registry.upsert(rule)
    return registry


def prices(args: argparse.Namespace) -> list[tuple[str, Decimal]]:
    rng = random.Random(args.seed + 1)
    level = {f"t{i}": 5000 for i in range(args.tokens)}
    path = []
    for _ in range(args.prices):
        token_id = f"t{rng.randrange(args.tokens)}"
        level[token_id] = min(9900, max(100, level[token_id] + rng.randint(-30, 30)))
        path.append((token_id, Decimal(level[token_id]).scaleb(-4)))
    return path


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=10_000)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--prices", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dormant-fraction", type=float, default=0.0)
    parser.add_argument("--oco-fraction", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    path = prices(args)
    best_s = float("inf")
    fired = raised = 0
    for _ in range(args.repeat):
        registry = build(args)
        fired = raised = 0
        started = time.process_time()
        for token_id, price in path:
            outcome = registry.apply_price(token_id, TriggerSource.MIDPOINT, price)
            fired += len(outcome.fired)
            raised += len(outcome.ratcheted)
        best_s = min(best_s, time.process_time() - started)
    result = {
        "rules": args.rules,
        "prices": args.prices,
        "prices_per_s": round(args.prices / best_s),
        "fired": fired,
        "raised": raised,
    }
    print(f"{result['prices_per_s']:,} prices/s (best of {args.repeat}, CPU time)")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
