"""The market feed's bytes for a scripted run of price steps, book changes and snapshots,
pinned: round 13 builds ``price_change`` as text and caches quotes, and a subscriber must
receive exactly what the dicts and ``json.dumps`` gave before (``feed_wire_golden.json``,
written by the code before that change; timestamps masked)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from vincent.sim import events
from vincent.sim.exchange import Exchange
from vincent.sim.feed import Subscriber
from vincent.sim.markets import Market
from vincent.sim.pricepath import PriceMover, QuoteShape
from vincent.sim.timing import TimingRecorder

GOLDEN = Path(__file__).with_name("feed_wire_golden.json")
YES = "7132104567925221259462638553270691275033272857194253228963137931245558399256"
NO = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
FINE = "1" * 76
FINE_NO = "2222"


class _Socket:
    """Stands in for a connection: messages stay in the subscriber's queue."""

    async def send_text(self, text: str) -> None:
        raise AssertionError("not connected")


def _stamped(text: str) -> str:
    return re.sub(r'"timestamp":"\d+"', '"timestamp":"T"', text)


def _script() -> list[Any]:
    """Steps up and down, jumps, shapes, two ticks, a user order, snapshots, a resolution;
    what a plain and a custom-feature subscriber queue, and the timing records."""
    timing = TimingRecorder()
    exchange = Exchange(timing)
    exchange.create_market(Market("0x" + "ab" * 32, (YES, NO)))
    exchange.create_market(Market("0x" + "CD" * 32, (FINE, FINE_NO), tick_size=Decimal("0.001")))
    plain, custom = Subscriber(_Socket()), Subscriber(_Socket())  # type: ignore[arg-type]
    custom.custom = True
    by_asset = exchange.feed._by_asset
    for subscriber, assets in ((plain, [YES, NO, FINE]), (custom, [YES, FINE_NO])):
        subscriber.assets.update(assets)
        for asset in assets:
            by_asset.setdefault(asset, set()).add(subscriber)
    mover = PriceMover(exchange)
    mover.step(YES, "0.45")
    mover.step(YES, Decimal("0.46"))
    mover.step(YES, 0.5)
    mover.step(YES, "0.50")
    mover.step(YES, "0.47", QuoteShape(2, 4, Decimal("12.5")))
    mover.step(YES, "0.01")
    mover.step(YES, "0.98")
    mover.step(NO, "0.3", QuoteShape(1, 1, Decimal("0.000001")))
    mover.step(FINE, "0.123")
    mover.step(FINE, "0.124", QuoteShape(3, 2, Decimal("7")))
    mover.step(FINE_NO, "0.9")
    exchange.books[YES].rest("BUY", Decimal("0.97"), "order-1", "owner", 2_500_000)
    exchange.publish_levels(YES, [("BUY", Decimal("0.97"))])
    mover.step(YES, "0.96")
    exchange.set_book(YES, [("0.20", "10"), (0.21, 3.5)], [(Decimal("0.9"), 1)])
    exchange.set_book(YES, [], [])
    exchange.publish_book(YES)
    mover.step(FINE, "0.2")
    exchange.set_tick_size(FINE, Decimal("0.01"))
    mover.step(FINE, "0.2")  # the new tick: not the quote cached for 0.001
    exchange.resolve("0x" + "cd" * 32, FINE)
    sends = [[s.seq, s.token_id, s.event_type] for s in timing.price_sends()]
    return [
        [[_stamped(text), seq] for text, seq in plain.queue],
        [[_stamped(text), seq] for text, seq in custom.queue],
        sends,
    ]


def test_a_scripted_feed_is_byte_for_byte_what_it_was() -> None:
    assert _script() == json.loads(GOLDEN.read_text())


def test_ids_json_would_escape_take_the_dict_path() -> None:
    """A token id of non-ASCII digits (``isdigit`` accepts them) is written escaped, as
    ``json.dumps`` writes it."""
    token = "\u0661\u0662"
    market = "0x" + "ab" * 32
    changes = [("BUY", Decimal("0.5"), "10"), ("SELL", Decimal("0.51"), "0")]
    text = events.price_change_text(market, token, changes, "0x01", Decimal("0.5"), Decimal("0.52"))
    entries = [
        events.price_change_entry(token, price, size, side, "0x01", Decimal("0.5"), Decimal("0.52"))
        for side, price, size in changes
    ]
    expected = json.dumps(events.price_change_event(market, entries), separators=(",", ":"))
    assert _stamped(text) == _stamped(expected)
    assert "\\u0661" in text
    bid_ask = events.best_bid_ask_text(market, token, Decimal("0.5"), None)
    expected = json.dumps(
        events.best_bid_ask_event(market, token, Decimal("0.5"), None), separators=(",", ":")
    )
    assert _stamped(bid_ask) == _stamped(expected)
