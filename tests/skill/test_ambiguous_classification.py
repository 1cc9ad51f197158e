"""Which answers to an order POST leave its outcome unknown. Pure, exhaustive over statuses."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from polymarket.errors import RequestRejectedError, TransportError, UnexpectedResponseError

from vincent.skills.polymarket.errors import (
    ExchangeUnavailable,
    SkillError,
    UnknownOutcome,
    is_retryable,
)
from vincent.skills.polymarket.exchange_errors import classify_sdk_error, is_ambiguous_status


@given(st.integers(min_value=400, max_value=599))
def test_a_posted_order_answered_5xx_408_or_425_has_an_unknown_outcome(status: int) -> None:
    error = RequestRejectedError("upstream trouble", status=status)

    mapped = classify_sdk_error(error, order_sent=True)

    ambiguous = status >= 500 or status in (408, 425)
    assert isinstance(mapped, UnknownOutcome) is ambiguous
    assert is_ambiguous_status(status) is ambiguous


@given(st.integers(min_value=500, max_value=599))
def test_a_5xx_to_a_read_is_plainly_unavailable(status: int) -> None:
    mapped = classify_sdk_error(RequestRejectedError("down", status=status), order_sent=False)
    assert isinstance(mapped, ExchangeUnavailable)
    assert is_retryable(mapped)


def _transport(cause: Exception) -> TransportError:
    error = TransportError("transport failed")
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        # The connection never opened: nothing reached the exchange, safe to retry.
        (httpx.ConnectError("refused"), ExchangeUnavailable),
        (httpx.ConnectTimeout("slow connect"), ExchangeUnavailable),
        # The request was written, then the connection went: it may have been matched.
        (httpx.RemoteProtocolError("server disconnected"), UnknownOutcome),
        (httpx.ReadError("reset"), UnknownOutcome),
        (httpx.ReadTimeout("no answer"), UnknownOutcome),
        (httpx.WriteError("broken pipe"), UnknownOutcome),
    ],
)
def test_a_dropped_connection_is_unknown_only_once_the_order_was_written(
    cause: Exception, expected: type[SkillError]
) -> None:
    assert type(classify_sdk_error(_transport(cause), order_sent=True)) is expected


def test_an_unreadable_answer_to_a_posted_order_is_unknown() -> None:
    mapped = classify_sdk_error(UnexpectedResponseError("not JSON"), order_sent=True)
    assert isinstance(mapped, UnknownOutcome)
