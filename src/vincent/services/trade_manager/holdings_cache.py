"""The wallets' positions as last read, so a fire plans its sell without a network call. No I/O.

Filled by the poll tick's position refresh and by the reads fires make themselves; our own
fills take their shares off (``sold``), and a sale whose fill is not known forgets the
secret. A read older than ``max_age_s`` is not used. A position that grew since it was
read (an agent's BUY through Vincent) is caught by the skill, which refuses the stale size
before signing (``StaleHoldings``) and the fire reads it again; a size too large for what
is really held (an agent's sale) is refused by the exchange and re-read by the skill.
What this cannot see is shares moved in from outside Vincent since the last read: the
poll tick's next refresh sees them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from vincent.skills.polymarket.types import Holding

DEFAULT_MAX_AGE_S = 300.0


@dataclass(frozen=True, slots=True)
class HeldPositions:
    holdings: tuple[Holding, ...]
    read_at: datetime  # when the read that produced them started


class HoldingsCache:
    """Positions per secret id, with when they were read."""

    def __init__(self, *, max_age_s: float = DEFAULT_MAX_AGE_S) -> None:
        self._max_age = timedelta(seconds=max_age_s)
        self._held: dict[str, HeldPositions] = {}
        # When each secret was last forgotten: a read started before then is out of date.
        self._forgotten: dict[str, datetime] = {}
        self._swept_at: datetime | None = None

    def __len__(self) -> int:
        return len(self._held)

    def remember(self, secret_id: str, holdings: Sequence[Holding], read_at: datetime) -> None:
        """Keep a read unless a newer one is held, or the secret was forgotten after the
        read started (reads may finish out of order, and after one of our sells)."""
        self._sweep(read_at)
        forgotten = self._forgotten.get(secret_id)
        if forgotten is not None and read_at < forgotten:
            return
        current = self._held.get(secret_id)
        if current is None or current.read_at <= read_at:
            self._held[secret_id] = HeldPositions(tuple(holdings), read_at)

    def get(self, secret_id: str, now: datetime) -> HeldPositions | None:
        """The last read of ``secret_id``'s positions, unless it is older than the limit."""
        held = self._held.get(secret_id)
        if held is None or now - held.read_at > self._max_age:
            return None
        return held

    def forget(self, secret_id: str, at: datetime) -> None:
        """The secret's positions changed at ``at``: drop what was read before."""
        self._held.pop(secret_id, None)
        self._forgotten[secret_id] = at

    def sold(self, secret_id: str, token_id: str, shares: Decimal) -> None:
        """One of our sells of ``token_id`` filled ``shares``: the position is that smaller."""
        held = self._held.get(secret_id)
        if held is None:
            return
        holdings = tuple(
            replace(h, shares=max(h.shares - shares, Decimal(0))) if h.token_id == token_id else h
            for h in held.holdings
        )
        self._held[secret_id] = HeldPositions(holdings, held.read_at)

    def _sweep(self, now: datetime) -> None:
        """Drop what is too old to be used (a secret whose rules are gone is not read again
        by the poll tick): once per ``max_age_s``, so memory stays bounded by the secrets
        read within it."""
        if self._swept_at is not None and now - self._swept_at < self._max_age:
            return
        self._swept_at = now
        horizon = now - self._max_age
        for secret_id in [s for s, held in self._held.items() if held.read_at < horizon]:
            del self._held[secret_id]
        for secret_id in [s for s, at in self._forgotten.items() if at < horizon]:
            del self._forgotten[secret_id]
