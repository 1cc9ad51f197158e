"""A bounded in-memory price history per watched token, for the dashboard's charts. No I/O.

The worker's feed tells ``touch`` which tokens' books changed and ``touch`` notes their
prices (one dict write per token on the hot path: the book may be gone by the next sample,
when the last rule on a token fires); ``sample``, called about once a second, turns the
noted prices into at most one point per token per ``resolution_s``. A token keeps
``window_s`` of points, plus its newest one however old (the price still holds); past
``max_tokens`` tokens, the one updated longest ago is forgotten. Memory is bounded by
``max_tokens * window_s / resolution_s`` points whatever the feed does.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

# Three hours at one point a second, for at most 1,000 tokens (~10.8 M points worst case;
# a quiet token costs nothing: a point is kept only when a price changed).
DEFAULT_WINDOW_S = 3 * 3600.0
DEFAULT_RESOLUTION_S = 1.0
DEFAULT_MAX_TOKENS = 1000

BookPrices = tuple[Decimal | None, Decimal | None, Decimal | None]
PriceLookup = Callable[[str], BookPrices | None]


@dataclass(frozen=True, slots=True)
class PricePoint:
    """One sample: wall time in seconds since the epoch and the book's three prices."""

    ts_s: float
    best_bid: Decimal | None
    best_ask: Decimal | None
    last_trade: Decimal | None

    @property
    def prices(self) -> BookPrices:
        return (self.best_bid, self.best_ask, self.last_trade)


class PriceHistory:
    """Recent prices of the tokens the feed updates, sampled and bounded."""

    def __init__(
        self,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        resolution_s: float = DEFAULT_RESOLUTION_S,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        if window_s <= 0 or resolution_s <= 0 or max_tokens < 1:
            raise ValueError("window_s, resolution_s and max_tokens must be positive")
        self.window_s = window_s
        self.resolution_s = resolution_s
        self.max_tokens = max_tokens
        self._max_points = max(1, int(window_s / resolution_s))
        self._latest: dict[str, BookPrices] = {}
        # Least recently updated first: the eviction order.
        self._series: OrderedDict[str, deque[PricePoint]] = OrderedDict()

    def touch(self, token_ids: Iterable[str], prices: PriceLookup) -> None:
        """Note the current prices of tokens whose book changed (the feed's callback)."""
        latest = self._latest
        for token_id in token_ids:
            current = prices(token_id)
            if current is not None:
                latest[token_id] = current

    def sample(self, now_s: float) -> list[tuple[str, PricePoint]]:
        """Record the noted prices at ``now_s``; return the points added or replaced.

        Within one ``resolution_s`` bucket a newer price replaces the bucket's point, so the
        last price of a burst is never lost. A price equal to the previous point adds nothing.
        """
        noted, self._latest = self._latest, {}
        added: list[tuple[str, PricePoint]] = []
        for token_id, current in noted.items():
            if current == (None, None, None):
                continue
            series = self._series.get(token_id)
            if series is None:
                series = deque(maxlen=self._max_points)
                self._series[token_id] = series
            elif series[-1].prices == current:
                continue
            point = PricePoint(now_s, *current)
            if series and self._bucket(series[-1].ts_s) == self._bucket(now_s):
                series[-1] = point
            else:
                series.append(point)
            self._series.move_to_end(token_id)
            added.append((token_id, point))
        while len(self._series) > self.max_tokens:
            self._series.popitem(last=False)
        self._expire(now_s)
        return added

    def points(self, token_id: str, since_s: float | None = None) -> list[PricePoint]:
        """The token's points, oldest first. With ``since_s``: those from then on, led by the
        price that held at ``since_s`` (the last earlier point, moved to ``since_s``)."""
        series = self._series.get(token_id)
        if series is None:
            return []
        if since_s is None:
            return list(series)
        found = [p for p in series if p.ts_s >= since_s]
        earlier = len(series) - len(found)
        if earlier:
            held = series[earlier - 1]
            found.insert(0, PricePoint(since_s, *held.prices))
        return found

    def tokens(self) -> list[str]:
        return list(self._series)

    def __len__(self) -> int:
        """Points held, all tokens together."""
        return sum(len(series) for series in self._series.values())

    def _bucket(self, ts_s: float) -> int:
        return int(ts_s // self.resolution_s)

    def _expire(self, now_s: float) -> None:
        # The newest point stays, however old: it is the token's price until the next change.
        oldest_s = now_s - self.window_s
        for series in self._series.values():
            while len(series) > 1 and series[0].ts_s < oldest_s:
                series.popleft()
