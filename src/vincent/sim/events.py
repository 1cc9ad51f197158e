"""Market WebSocket event payloads in Polymarket's production shapes.

Pure builders: each returns the dict that goes on the wire (prices and sizes as strings,
timestamps as epoch-millisecond strings).
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any


def now_ms() -> str:
    return str(int(time.time() * 1000))


def price_text(price: Decimal | None) -> str:
    return "" if price is None else str(price)


def book_event(
    market: str,
    asset_id: str,
    bids: list[dict[str, str]],
    asks: list[dict[str, str]],
    book_hash: str,
) -> dict[str, Any]:
    return {
        "event_type": "book",
        "asset_id": asset_id,
        "market": market,
        "bids": bids,
        "asks": asks,
        "timestamp": now_ms(),
        "hash": book_hash,
    }


def price_change_event(market: str, changes: list[dict[str, str]]) -> dict[str, Any]:
    """Current (since September 2025) form: several level changes of one market."""
    return {
        "event_type": "price_change",
        "market": market,
        "price_changes": changes,
        "timestamp": now_ms(),
    }


def price_change_text(
    market: str,
    asset_id: str,
    changes: list[tuple[str, Decimal, str]],
    change_hash: str,
    best_bid: Decimal | None,
    best_ask: Decimal | None,
) -> str:
    """``price_change_event`` of one asset's (side, price, size) changes, as the feed's
    ``json.dumps`` would write it (compact, ASCII), built as text: the exchange publishes
    one per price step, and the dicts and their encoding were a good part of a step's CPU.
    Ids that JSON would escape (not printable ASCII, quotes, backslashes) take the dicts."""
    if not (_plain(market) and _plain(asset_id) and _plain(change_hash)):
        entries = [
            price_change_entry(asset_id, price, size, side, change_hash, best_bid, best_ask)
            for side, price, size in changes
        ]
        return json.dumps(price_change_event(market, entries), separators=(",", ":"))
    tail = (
        f'","hash":"{change_hash}","best_bid":"{price_text(best_bid)}"'
        f',"best_ask":"{price_text(best_ask)}"}}'
    )
    head = f'{{"asset_id":"{asset_id}","price":"'
    entries_text = ",".join(
        f'{head}{price!s}","size":"{size}","side":"{side}{tail}' for side, price, size in changes
    )
    return (
        f'{{"event_type":"price_change","market":"{market}","price_changes":[{entries_text}]'
        f',"timestamp":"{now_ms()}"}}'
    )


def _plain(text: str) -> bool:
    """True when ``json.dumps`` writes ``text`` as is between its quotes."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def price_change_entry(
    asset_id: str,
    price: Decimal,
    size: str,
    side: str,
    change_hash: str,
    best_bid: Decimal | None,
    best_ask: Decimal | None,
) -> dict[str, str]:
    return {
        "asset_id": asset_id,
        "price": str(price),
        "size": size,
        "side": side,
        "hash": change_hash,
        "best_bid": price_text(best_bid),
        "best_ask": price_text(best_ask),
    }


def last_trade_price_event(
    market: str, asset_id: str, price: Decimal, side: str, size: str
) -> dict[str, Any]:
    return {
        "event_type": "last_trade_price",
        "asset_id": asset_id,
        "market": market,
        "price": str(price),
        "side": side,
        "size": size,
        "fee_rate_bps": "0",
        "timestamp": now_ms(),
    }


def tick_size_change_event(
    market: str, asset_id: str, old_tick: Decimal, new_tick: Decimal
) -> dict[str, Any]:
    return {
        "event_type": "tick_size_change",
        "asset_id": asset_id,
        "market": market,
        "old_tick_size": str(old_tick),
        "new_tick_size": str(new_tick),
        "timestamp": now_ms(),
    }


def best_bid_ask_text(
    market: str, asset_id: str, best_bid: Decimal | None, best_ask: Decimal | None
) -> str:
    """``best_bid_ask_event`` as ``json.dumps`` writes it, built as text (one per price step
    for a custom-feature subscriber, as the worker is); see ``price_change_text``."""
    if not (_plain(market) and _plain(asset_id)):
        event = best_bid_ask_event(market, asset_id, best_bid, best_ask)
        return json.dumps(event, separators=(",", ":"))
    spread = "" if best_bid is None or best_ask is None else str(best_ask - best_bid)
    return (
        f'{{"event_type":"best_bid_ask","asset_id":"{asset_id}","market":"{market}"'
        f',"best_bid":"{price_text(best_bid)}","best_ask":"{price_text(best_ask)}"'
        f',"spread":"{spread}","timestamp":"{now_ms()}"}}'
    )


def best_bid_ask_event(
    market: str, asset_id: str, best_bid: Decimal | None, best_ask: Decimal | None
) -> dict[str, Any]:
    spread = "" if best_bid is None or best_ask is None else str(best_ask - best_bid)
    return {
        "event_type": "best_bid_ask",
        "asset_id": asset_id,
        "market": market,
        "best_bid": price_text(best_bid),
        "best_ask": price_text(best_ask),
        "spread": spread,
        "timestamp": now_ms(),
    }


def market_resolved_event(
    market: str, assets_ids: list[str], winning_asset_id: str, winning_outcome: str
) -> dict[str, Any]:
    return {
        "event_type": "market_resolved",
        "market": market,
        "assets_ids": assets_ids,
        "winning_asset_id": winning_asset_id,
        "winning_outcome": winning_outcome,
        "timestamp": now_ms(),
    }
