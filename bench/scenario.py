"""The engine benchmark's scenario: tokens, price paths, rules and the brute-force reference.

Pure and seeded: the same arguments give the same markets, paths and rules, so the index
and the naive mode see identical inputs. Triggers are placed against the paths so that a
known fraction of rules fire; which ones fire is then decided again by brute force (every
rule evaluated at every price of its token, in order), independently of the rule index.

Three shapes: ``build_scenario`` (every token walks at once, ~``fire_fraction`` fire),
``build_single_scenario`` (spaced steps, each crossing exactly one rule of a quiet book)
and ``build_burst_scenario`` (one step crossing many tenants' rules at the same price).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from vincent.db.base import new_id
from vincent.enums import TradeRuleType, TriggerSource
from vincent.services.trade_manager.evaluation import crosses, evaluate_rule
from vincent.services.trade_manager.types import ActionType, RuleAction, RuleSnapshot

TICK = Decimal("0.01")
HALF_TICK = TICK / 2
LOWEST_BID = Decimal("0.02")
HIGHEST_BID = Decimal("0.97")
SHARES_PER_SELL = Decimal(5)  # the local exchange's default minimum order size
TRAILING_PERCENTS = (1, 2, 3, 5, 10, 20, 30, 50)
_THOUSANDTH = Decimal("0.001")


@dataclass(frozen=True, slots=True)
class Market:
    condition_id: str
    token_ids: tuple[str, str]


@dataclass(frozen=True, slots=True)
class TokenPath:
    """A token's starting best bid and the best bids it steps through (one event each)."""

    token_id: str
    start_bid: Decimal
    steps: tuple[Decimal, ...]

    def prices(self, source: TriggerSource) -> list[Decimal]:
        """Prices a rule watching ``source`` sees: the snapshot's, then one per step."""
        bids = [self.start_bid, *self.steps]
        if source is TriggerSource.BEST_BID:
            return bids
        # One-tick spread: the midpoint is half a tick above the best bid.
        return [bid + HALF_TICK for bid in bids]


@dataclass(frozen=True, slots=True)
class Scenario:
    markets: tuple[Market, ...]
    paths: tuple[TokenPath, ...]
    tenants: int
    rules: tuple[RuleSnapshot, ...]
    tenant_of: dict[str, int]  # rule id → tenant number
    expected: dict[str, int]  # fired rule id → index of the crossing price (1 = first step)
    # Shares per quoted level of every book the exchange shows (start and steps).
    book_size: Decimal = Decimal(100)
    # None: every token walks its path at once. Otherwise the steps go out one at a time,
    # ``spacing_s`` apart, in ``sequence()`` order.
    spacing_s: float | None = None

    @property
    def events(self) -> int:
        return sum(len(p.steps) for p in self.paths)

    def sequence(self) -> list[tuple[str, Decimal]]:
        """Every (token, best bid) step, round-robin over tokens: step 1 of each, then 2…"""
        longest = max((len(p.steps) for p in self.paths), default=0)
        return [
            (path.token_id, path.steps[step])
            for step in range(longest)
            for path in self.paths
            if step < len(path.steps)
        ]

    def credits(self) -> dict[tuple[int, str], Decimal]:
        """Shares each (tenant, token) must hold so every expected sale can fill."""
        shares: Counter[tuple[int, str]] = Counter()
        by_id = {r.id: r for r in self.rules}
        for rule_id in self.expected:
            shares[(self.tenant_of[rule_id], by_id[rule_id].token_id)] += 1
        return {pair: SHARES_PER_SELL * count for pair, count in shares.items()}


def _token_id(rng: random.Random) -> str:
    # 76-digit ids outside the protocol-v2 position namespace, as the tests use.
    return str(rng.getrandbits(250) | (1 << 249))


def _walk(rng: random.Random, start: Decimal, steps: int) -> tuple[Decimal, ...]:
    # Every step moves one tick, so every step changes the book and publishes one event.
    prices = []
    price = start
    for _ in range(steps):
        move = TICK if rng.random() < 0.5 else -TICK
        if price + move < LOWEST_BID or price + move > HIGHEST_BID:
            move = -move
        price += move
        prices.append(price)
    return tuple(prices)


def _spread(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def build_scenario(
    *,
    rules: int,
    tokens: int,
    events: int,
    tenants: int,
    fire_fraction: float,
    seed: int,
    rules_per_position: int = 3,
) -> Scenario:
    """Markets, one seeded walk per token, ``rules`` rules spread over tokens and tenants.

    A tenant holds ``rules_per_position`` rules on each position it protects (a stop-loss,
    a take-profit and a trailing stop, say); positions of one token belong to different
    tenants as long as there are enough of them.
    """
    if min(rules, tokens, tenants) < 1 or events < tokens:
        raise ValueError(
            f"need rules, tokens, tenants >= 1 and events >= tokens, was "
            f"rules={rules} tokens={tokens} tenants={tenants} events={events}"
        )
    rng = random.Random(seed)
    markets, token_ids = _markets(rng, tokens)
    paths = []
    for token_id, steps in zip(token_ids, _spread(events, tokens), strict=True):
        start = Decimal(rng.randint(20, 80)) * TICK
        paths.append(TokenPath(token_id, start, _walk(rng, start, steps)))
    built: list[RuleSnapshot] = []
    tenant_of: dict[str, int] = {}
    expected: dict[str, int] = {}
    for index, (path, count) in enumerate(zip(paths, _spread(rules, tokens), strict=True)):
        owners = _owners(index, count, tenants, rules_per_position)
        pairs = Counter(owners)
        for tenant in owners:
            rule = _place_rule(rng, path, _action(pairs, tenant), rng.random() < fire_fraction)
            built.append(rule)
            tenant_of[rule.id] = tenant
            crossing = first_crossing(rule, path.prices(rule.trigger_source))
            if crossing is not None:
                expected[rule.id] = crossing
    return Scenario(tuple(markets), tuple(paths), tenants, tuple(built), tenant_of, expected)


def _markets(rng: random.Random, tokens: int) -> tuple[list[Market], list[str]]:
    markets = []
    token_ids: list[str] = []
    for _ in range(math.ceil(tokens / 2)):
        pair = (_token_id(rng), _token_id(rng))
        markets.append(Market("0x" + f"{rng.getrandbits(256):064x}", pair))
        token_ids.extend(pair)
    return markets, token_ids[:tokens]


def _owners(index: int, count: int, tenants: int, rules_per_position: int) -> list[int]:
    return [(index + r // rules_per_position) % tenants for r in range(count)]


def _action(owners: Counter[int], tenant: int) -> RuleAction:
    # One rule per (tenant, token) sells everything; several share the position.
    if owners[tenant] == 1:
        return RuleAction(ActionType.SELL_ALL)
    return RuleAction(ActionType.SELL_PARTIAL, SHARES_PER_SELL)


def _quiet_rule(rng: random.Random, path: TokenPath, action: RuleAction) -> RuleSnapshot:
    """A stop-loss below or a take-profit above every price the token will show."""
    source = TriggerSource.BEST_BID if rng.random() < 0.2 else TriggerSource.MIDPOINT
    prices = path.prices(source)
    distance = TICK * rng.randint(1, 30)
    if rng.random() < 0.5:
        trigger = max(min(prices) - distance, _THOUSANDTH)
        return _rule(path, TradeRuleType.STOP_LOSS, source, trigger, action)
    trigger = min(max(prices) + distance, Decimal("0.999"))
    return _rule(path, TradeRuleType.TAKE_PROFIT, source, trigger, action)


def _reference(paths: list[TokenPath], built: list[RuleSnapshot]) -> dict[str, int]:
    by_token = {path.token_id: path for path in paths}
    expected = {}
    for rule in built:
        crossing = first_crossing(rule, by_token[rule.token_id].prices(rule.trigger_source))
        if crossing is not None:
            expected[rule.id] = crossing
    return expected


MAX_FIRES_PER_TOKEN = 40  # one tick per fire, kept inside the book's 0.02 to 0.97 range


def build_single_scenario(
    *,
    rules: int,
    tokens: int,
    fires: int,
    tenants: int,
    seed: int,
    spacing_s: float,
    rules_per_position: int = 3,
) -> Scenario:
    """``fires`` single fires on a quiet book of ``rules`` rules, ``spacing_s`` apart.

    Each token moves one tick per step, down (stop-losses fire) or up (take-profits fire),
    and each step crosses exactly one rule; every other rule sits beyond the whole path.
    """
    if min(rules, tokens, tenants, fires) < 1 or fires > rules:
        raise ValueError(
            f"need rules, tokens, tenants, fires >= 1 and fires <= rules, was rules={rules} "
            f"tokens={tokens} tenants={tenants} fires={fires}"
        )
    if math.ceil(fires / tokens) > MAX_FIRES_PER_TOKEN:
        raise ValueError(
            f"at most {MAX_FIRES_PER_TOKEN} fires per token: need tokens >= "
            f"{math.ceil(fires / MAX_FIRES_PER_TOKEN)}, was {tokens}"
        )
    rng = random.Random(seed)
    markets, token_ids = _markets(rng, tokens)
    paths: list[TokenPath] = []
    built: list[RuleSnapshot] = []
    tenant_of: dict[str, int] = {}
    counts = zip(token_ids, _spread(fires, tokens), _spread(rules, tokens), strict=True)
    for index, (token_id, fire_count, rule_count) in enumerate(counts):
        falling = index % 2 == 0
        start = Decimal(rng.randint(50, 55)) * TICK
        move = -TICK if falling else TICK
        path = TokenPath(token_id, start, tuple(start + move * k for k in range(1, fire_count + 1)))
        paths.append(path)
        owners = _owners(index, rule_count, tenants, rules_per_position)
        pairs = Counter(owners)
        kind = TradeRuleType.STOP_LOSS if falling else TradeRuleType.TAKE_PROFIT
        for number, tenant in enumerate(owners):
            action = _action(pairs, tenant)
            if number < fire_count:
                source = TriggerSource.BEST_BID if rng.random() < 0.2 else TriggerSource.MIDPOINT
                trigger = path.prices(source)[number + 1]
                rule = _rule(path, kind, source, trigger, action)
            else:
                rule = _quiet_rule(rng, path, action)
            built.append(rule)
            tenant_of[rule.id] = tenant
    expected = _reference(paths, built)
    return Scenario(
        tuple(markets),
        tuple(paths),
        tenants,
        tuple(built),
        tenant_of,
        expected,
        spacing_s=spacing_s,
    )


def build_burst_scenario(
    *, burst: int, rules: int, tokens: int, tenants: int, seed: int
) -> Scenario:
    """``burst`` stop-losses of many tenants at one price on one token, crossed by one
    step, beside ``rules`` quiet rules over ``tokens`` tokens (the first one included).

    The books are deep enough for every sale to fill at the crossing price.
    """
    if min(burst, tokens, tenants) < 1 or rules < 0:
        raise ValueError(
            f"need burst, tokens, tenants >= 1 and rules >= 0, was burst={burst} "
            f"rules={rules} tokens={tokens} tenants={tenants}"
        )
    rng = random.Random(seed)
    markets, token_ids = _markets(rng, tokens)
    start = Decimal("0.60")
    paths = [TokenPath(token_ids[0], start, (start - TICK,))]
    paths += [TokenPath(token_id, start, ()) for token_id in token_ids[1:]]
    built: list[RuleSnapshot] = []
    tenant_of: dict[str, int] = {}
    owners = [number % tenants for number in range(burst)]
    pairs = Counter(owners)
    for tenant in owners:
        trigger = start - TICK
        rule = _rule(
            paths[0],
            TradeRuleType.STOP_LOSS,
            TriggerSource.BEST_BID,
            trigger,
            _action(pairs, tenant),
        )
        built.append(rule)
        tenant_of[rule.id] = tenant
    for index, (path, count) in enumerate(zip(paths, _spread(rules, tokens), strict=True)):
        quiet_owners = _owners(index, count, tenants, 3)
        quiet_pairs = Counter(quiet_owners)
        for tenant in quiet_owners:
            rule = _quiet_rule(rng, path, _action(quiet_pairs, tenant))
            built.append(rule)
            tenant_of[rule.id] = tenant
    expected = _reference(paths, built)
    return Scenario(
        tuple(markets),
        tuple(paths),
        tenants,
        tuple(built),
        tenant_of,
        expected,
        book_size=SHARES_PER_SELL * burst,
        spacing_s=0.0,
    )


def first_crossing(rule: RuleSnapshot, prices: list[Decimal]) -> int | None:
    """Brute force: the index of the first price that fires ``rule``, or None."""
    if rule.rule_type is not TradeRuleType.TRAILING_STOP:
        for index, price in enumerate(prices):
            if crosses(rule.rule_type, rule.trigger_price, price):
                return index
        return None
    current = rule
    for index, price in enumerate(prices):
        evaluation = evaluate_rule(current, price)
        if evaluation.should_trigger:
            return index
        if evaluation.new_trigger_price is not None:
            current = _with_trigger(current, evaluation.new_trigger_price)
    return None


def _with_trigger(rule: RuleSnapshot, trigger: Decimal) -> RuleSnapshot:
    return RuleSnapshot(
        id=rule.id,
        secret_id=rule.secret_id,
        rule_type=rule.rule_type,
        market_id=rule.market_id,
        token_id=rule.token_id,
        trigger_price=trigger,
        trailing_percent=rule.trailing_percent,
        action=rule.action,
        trigger_source=rule.trigger_source,
    )


def _rule(
    path: TokenPath,
    kind: TradeRuleType,
    source: TriggerSource,
    trigger: Decimal,
    action: RuleAction,
    trailing_percent: Decimal | None = None,
) -> RuleSnapshot:
    return RuleSnapshot(
        id=new_id(),
        secret_id="",  # set when the tenants exist
        rule_type=kind,
        market_id="",
        token_id=path.token_id,
        trigger_price=trigger,
        trailing_percent=trailing_percent,
        action=action,
        trigger_source=source,
    )


def _place_rule(
    rng: random.Random, path: TokenPath, action: RuleAction, fire: bool
) -> RuleSnapshot:
    """A rule whose trigger sits inside the path's excursion (fires) or beyond it (does not)."""
    source = TriggerSource.BEST_BID if rng.random() < 0.2 else TriggerSource.MIDPOINT
    prices = path.prices(source)
    start, low, high = prices[0], min(prices[1:]), max(prices[1:])
    roll = rng.random()
    if roll >= 0.7:
        rule = _trailing(rng, path, source, action, prices, fire)
        if rule is not None:
            return rule
    kind = TradeRuleType.STOP_LOSS if roll < 0.4 else TradeRuleType.TAKE_PROFIT
    if fire and kind is TradeRuleType.STOP_LOSS and low >= start:
        kind = TradeRuleType.TAKE_PROFIT
    if fire and kind is TradeRuleType.TAKE_PROFIT and high <= start:
        kind = TradeRuleType.STOP_LOSS if low < start else kind
        fire = low < start
    distance = TICK * rng.randint(1, 30)  # various distances beyond the excursion
    if kind is TradeRuleType.STOP_LOSS:
        if fire:
            # low <= trigger < start, in thousandths.
            lo, hi = math.ceil(low * 1000), math.ceil(start * 1000) - 1
            trigger = Decimal(rng.randint(lo, hi)) * _THOUSANDTH
        else:
            # Below every price the token will show, the snapshot's included.
            trigger = max(min(low, start) - distance, _THOUSANDTH)
    elif fire:
        # start < trigger <= high.
        lo, hi = math.floor(start * 1000) + 1, math.floor(high * 1000)
        trigger = Decimal(rng.randint(lo, hi)) * _THOUSANDTH
    else:
        trigger = min(max(high, start) + distance, Decimal("0.999"))
    return _rule(path, kind, source, trigger, action)


def _trailing(
    rng: random.Random,
    path: TokenPath,
    source: TriggerSource,
    action: RuleAction,
    prices: list[Decimal],
    fire: bool,
) -> RuleSnapshot | None:
    percents = list(TRAILING_PERCENTS)
    rng.shuffle(percents)
    for percent in percents:
        trailing = Decimal(percent)
        trigger = (prices[0] * (1 - trailing / 100)).quantize(
            Decimal("0.0001"), rounding=ROUND_DOWN
        )
        rule = _rule(path, TradeRuleType.TRAILING_STOP, source, trigger, action, trailing)
        if (first_crossing(rule, prices) is not None) == fire:
            return rule
    return None
