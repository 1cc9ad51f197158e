"""The trailing-stop ratchet: the trigger follows the price up and never falls. No I/O.

Mirrors the seed (``monitoringWorker.ts``): candidate = price * (1 - trailing_percent/100),
capped at 0.99 and rounded to 4 decimals half up (JS ``Math.round`` on positive numbers).
A trail in price units (``trailing_amount``) uses candidate = price - amount, same rounding
and cap. A stop with an activation price is dormant until the price first reaches it.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

MAX_TRIGGER = Decimal("0.99")
STEP = Decimal("0.0001")
_HALF_STEP = STEP / 2
_HUNDRED = Decimal(100)
_ONE = Decimal(1)
# Thresholds are rounded down to this, so a price at or above the true threshold is never
# missed; a price in the sliver below it (more than 12 decimals) just finds nothing to raise.
_THRESHOLD_QUANTUM = Decimal("1E-12")
# Results already computed, by (price or trigger, percent): prices are few and percents
# fewer, so a busy token's raises are mostly lookups instead of Decimal division. Equal
# inputs written differently ("0.5", "0.50") give identical results (both are quantized).
# Past this many entries a memo starts again, which only costs time.
_MAX_REMEMBERED = 16_384
_candidates: dict[tuple[Decimal, Decimal], Decimal] = {}
_thresholds: dict[tuple[Decimal, Decimal], Decimal | None] = {}
# (candidate, the candidate's threshold) by (price, percent), for ``ratchet_step``; public
# so the rule index's per-raise loop looks it up inline (a miss calls ``step_at``, which
# computes and remembers). Cleared, never rebound.
RATCHET_STEPS: dict[tuple[Decimal, Decimal], tuple[Decimal, Decimal | None]] = {}


def trailing_candidate(price: Decimal, trailing_percent: Decimal) -> Decimal:
    """Return the trigger a trailing stop would have at ``price`` (4 dp, at most 0.99)."""
    key = (price, trailing_percent)
    candidate = _candidates.get(key)
    if candidate is None:
        if len(_candidates) >= _MAX_REMEMBERED:
            _candidates.clear()
        candidate = _candidates[key] = _candidate(price, trailing_percent)
    return candidate


def _candidate(price: Decimal, trailing_percent: Decimal) -> Decimal:
    candidate = min(MAX_TRIGGER, price * (_ONE - trailing_percent / _HUNDRED))
    return candidate.quantize(STEP, rounding=ROUND_HALF_UP)


def ratchet(current_trigger: Decimal, price: Decimal, trailing_percent: Decimal) -> Decimal | None:
    """Return the raised trigger, or None when it would not be strictly higher."""
    candidate = trailing_candidate(price, trailing_percent)
    return candidate if candidate > current_trigger else None


def ratchet_threshold(current_trigger: Decimal, trailing_percent: Decimal) -> Decimal | None:
    """Return a price at or below the lowest price that would raise the trigger.

    None when no price can raise it (the trigger is at the cap or the factor is not
    positive). The rule index orders trailing stops by this value, so a price event touches
    only the stops it can raise.
    """
    key = (current_trigger, trailing_percent)
    threshold = _thresholds.get(key, _ONE)
    if threshold is _ONE:
        if len(_thresholds) >= _MAX_REMEMBERED:
            _thresholds.clear()
        threshold = _thresholds[key] = _threshold(current_trigger, trailing_percent)
    return threshold


def ratchet_step(
    current_trigger: Decimal, price: Decimal, trailing_percent: Decimal
) -> tuple[Decimal, Decimal | None] | None:
    """``ratchet`` and the raised trigger's ``ratchet_threshold`` in one lookup.

    Return (raised trigger, its threshold), or None when the trigger would not be strictly
    higher. Both depend only on (price, percent), so one memo entry serves every stop of
    that percent that the price raises (the rule index's hot path).
    """
    step = RATCHET_STEPS.get((price, trailing_percent))
    if step is None:
        step = step_at(price, trailing_percent)
    return step if step[0] > current_trigger else None


def step_at(price: Decimal, trailing_percent: Decimal) -> tuple[Decimal, Decimal | None]:
    """The candidate at ``price`` and that candidate's ``ratchet_threshold``, whatever the
    current trigger (``ratchet_step`` before its test), remembered in ``RATCHET_STEPS``."""
    if len(RATCHET_STEPS) >= _MAX_REMEMBERED:
        RATCHET_STEPS.clear()
    candidate = trailing_candidate(price, trailing_percent)
    step = RATCHET_STEPS[(price, trailing_percent)] = (
        candidate,
        ratchet_threshold(candidate, trailing_percent),
    )
    return step


def _threshold(current_trigger: Decimal, trailing_percent: Decimal) -> Decimal | None:
    factor = _ONE - trailing_percent / _HUNDRED
    if factor <= 0 or current_trigger >= MAX_TRIGGER:
        return None
    # The smallest 4-dp value strictly above the trigger (which need not be on the grid).
    next_step = (current_trigger / STEP).to_integral_value(rounding=ROUND_FLOOR) * STEP + STEP
    # Half up: the candidate reaches next_step once price * factor >= next_step - half a step.
    return ((next_step - _HALF_STEP) / factor).quantize(_THRESHOLD_QUANTUM, rounding=ROUND_FLOOR)


# --------------------------------------------------------------------------- trail in price units

_amount_candidates: dict[tuple[Decimal, Decimal], Decimal] = {}


def amount_candidate(price: Decimal, trailing_amount: Decimal) -> Decimal:
    """Return the trigger a trailing stop ``trailing_amount`` below ``price`` would have.

    4 dp rounded half up (as the percent trail: a stop a sliver higher protects the holder),
    at most 0.99; may be zero or negative for a price under the trail (never a raise).
    """
    key = (price, trailing_amount)
    candidate = _amount_candidates.get(key)
    if candidate is None:
        if len(_amount_candidates) >= _MAX_REMEMBERED:
            _amount_candidates.clear()
        candidate = min(MAX_TRIGGER, price - trailing_amount).quantize(STEP, rounding=ROUND_HALF_UP)
        _amount_candidates[key] = candidate
    return candidate


def amount_threshold(current_trigger: Decimal, trailing_amount: Decimal) -> Decimal | None:
    """The lowest price that raises a trigger trailing by ``trailing_amount`` (exact).

    None when the trigger is already at the cap.
    """
    if current_trigger >= MAX_TRIGGER:
        return None
    next_step = (current_trigger / STEP).to_integral_value(rounding=ROUND_FLOOR) * STEP + STEP
    # Half up: price - amount reaches next_step once it is at least next_step - half a step.
    return next_step - _HALF_STEP + trailing_amount


# --------------------------------------------------------------------------- either trail


def trail_candidate(
    price: Decimal, trailing_percent: Decimal | None, trailing_amount: Decimal | None
) -> Decimal:
    """The candidate trigger at ``price`` for a percent trail or an amount trail."""
    if trailing_amount is not None:
        return amount_candidate(price, trailing_amount)
    if trailing_percent is None:
        raise ValueError("a trailing stop needs trailing_percent or trailing_amount")
    return trailing_candidate(price, trailing_percent)


def trail_ratchet(
    current_trigger: Decimal,
    price: Decimal,
    trailing_percent: Decimal | None,
    trailing_amount: Decimal | None,
) -> Decimal | None:
    """Return the raised trigger, or None when it would not be strictly higher."""
    candidate = trail_candidate(price, trailing_percent, trailing_amount)
    return candidate if candidate > current_trigger else None


def trail_threshold(
    current_trigger: Decimal, trailing_percent: Decimal | None, trailing_amount: Decimal | None
) -> Decimal | None:
    """A price at or below the lowest price that raises the trigger (None: nothing can)."""
    if trailing_amount is not None:
        return amount_threshold(current_trigger, trailing_amount)
    if trailing_percent is None:
        return None
    return ratchet_threshold(current_trigger, trailing_percent)


def activation_trigger(
    trigger_price: Decimal,
    price: Decimal,
    trailing_percent: Decimal | None,
    trailing_amount: Decimal | None,
) -> Decimal:
    """The trigger of a dormant stop activated at ``price``: the larger of its trigger and
    the price less the trail."""
    return max(trigger_price, trail_candidate(price, trailing_percent, trailing_amount))


def reaches_activation(activation_price: Decimal, price: Decimal) -> bool:
    """Whether ``price`` reaches the activation price (inclusive, like every trigger)."""
    return price >= activation_price
