"""The wire format of dates: JS ``Date.toJSON()`` — UTC, milliseconds, a literal ``Z``. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_millis(moment: datetime) -> str:
    """``2026-02-21T12:21:27.123Z`` for an aware datetime."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" → "Z"


def iso(value: datetime | None) -> str | None:
    """``iso_millis``, passing None through (nullable columns)."""
    return None if value is None else iso_millis(value)
