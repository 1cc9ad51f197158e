"""Declarative base, naming convention, id and clock helpers shared by every table."""

from __future__ import annotations

import os
import secrets
import struct
import threading
import time
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Named constraints let Alembic alter tables on SQLite (batch mode) as well as PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both engines (SQLite stores naive text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
# Every two-digit base-36 string, so a number is written two digits per division: ids are
# made for every event row the trailing flush writes, thousands a second.
_PAIRS = tuple(high + low for high in _BASE36 for low in _BASE36)
_PAIR = 36**2
_counter_lock = threading.Lock()
_counter = int.from_bytes(os.urandom(3), "big")


def _base36_4(number: int) -> str:
    return _PAIRS[number // _PAIR % _PAIR] + _PAIRS[number % _PAIR]


def _base36_8(number: int) -> str:
    return _base36_4(number // _PAIR**2) + _base36_4(number)


def new_id() -> str:
    """Return a 25-character cuid-style id: 'c', time, counter, fingerprint, randomness."""
    return new_ids(1)[0]


def new_ids(count: int) -> list[str]:
    """Return ``count`` fresh ids, as ``count`` calls of ``new_id`` would, with one clock
    read, one lock and one draw of random bytes (their counters are consecutive)."""
    global _counter
    with _counter_lock:
        first = _counter + 1
        _counter = (_counter + count) % 36**4
    millis = int(time.time() * 1000)
    fingerprint = (os.getpid() * 2654435761) % 36**4
    head = "c" + _base36_8(millis)
    tail = _base36_4(fingerprint)
    # Each id's randomness is 6 random bytes read as one big-endian number (2 + 4 bytes
    # here), below 36**8; its counter is the batch's next. Written inline, two digits a
    # lookup: ids are made for every event row the trailing flush writes.
    pairs = _PAIRS
    ids = []
    for counter, (high, low) in enumerate(
        struct.iter_unpack(">HI", secrets.token_bytes(6 * count)), first
    ):
        counter %= _PAIR**2
        noise = ((high << 32) | low) % _PAIR**4
        ids.append(
            f"{head}{pairs[counter // _PAIR]}{pairs[counter % _PAIR]}{tail}"
            f"{pairs[noise // _PAIR**3]}{pairs[noise // _PAIR**2 % _PAIR]}"
            f"{pairs[noise // _PAIR % _PAIR]}{pairs[noise % _PAIR]}"
        )
    return ids
