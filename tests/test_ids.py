"""Row ids: 25 characters, cuid-style, made one at a time or in batches."""

from __future__ import annotations

import os
import string
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vincent.db import base
from vincent.db.base import _base36_4, _base36_8, new_id, new_ids

_DIGITS = string.digits + string.ascii_lowercase


def _base36(number: int, width: int) -> str:
    # The reference: one digit per division (the writer before the two-digit table).
    digits = []
    for _ in range(width):
        number, rem = divmod(number, 36)
        digits.append(_DIGITS[rem])
    return "".join(reversed(digits))


def _parts(row_id: str) -> tuple[int, int, str, str]:
    """Milliseconds, counter, fingerprint and randomness of an id."""
    assert len(row_id) == 25
    assert row_id[0] == "c"
    assert set(row_id[1:]) <= set(_DIGITS)
    return int(row_id[1:9], 36), int(row_id[9:13], 36), row_id[13:17], row_id[17:]


def test_a_batch_reads_the_clock_once_and_counts_up_from_the_last_id() -> None:
    before_ms = int(time.time() * 1000)
    first = new_id()
    batch = new_ids(50)
    after_ms = int(time.time() * 1000)

    parts = [_parts(row_id) for row_id in [first, *batch]]
    assert {millis for millis, *_ in parts[1:]} <= set(range(before_ms, after_ms + 1))
    assert len({millis for millis, *_ in parts[1:]}) == 1
    counters = [counter for _, counter, *_ in parts]
    assert counters == [(counters[0] + i) % 36**4 for i in range(51)]
    fingerprint = _base36((os.getpid() * 2654435761) % 36**4, 4)
    assert {print_ for *_, print_, _ in parts} == {fingerprint}
    assert len({noise for *_, noise in parts}) == 51
    assert len(set(batch)) == 50


def test_no_ids_is_an_empty_batch() -> None:
    assert new_ids(0) == []


@given(st.integers(min_value=0, max_value=2**48 - 1))
def test_the_two_digit_writer_matches_one_digit_at_a_time(number: int) -> None:
    assert _base36_8(number) == _base36(number, 8)
    assert _base36_4(number) == _base36(number, 4)


def test_each_ids_randomness_is_its_six_bytes_and_the_counter_wraps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn = bytes(range(250, 256)) + bytes(range(6)) + b"\xff" * 6
    monkeypatch.setattr(base.secrets, "token_bytes", lambda n: drawn[:n])
    monkeypatch.setattr(base, "_counter", 36**4 - 2)  # the next two ids wrap past zz..

    ids = new_ids(3)

    parts = [_parts(row_id) for row_id in ids]
    assert [counter for _, counter, *_ in parts] == [36**4 - 1, 0, 1]
    assert [noise for *_, noise in parts] == [
        _base36(int.from_bytes(drawn[i : i + 6], "big") % 36**8, 8) for i in (0, 6, 12)
    ]
