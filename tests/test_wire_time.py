"""The wire format of dates: ``Date.toJSON()`` of the same instant, whatever its zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from vincent.wire_time import iso, iso_millis


def test_utc_and_other_zones_render_the_same_instant() -> None:
    moment = datetime(2026, 2, 21, 12, 21, 27, 123456, tzinfo=UTC)
    assert iso_millis(moment) == "2026-02-21T12:21:27.123Z"
    plus_two = moment.astimezone(timezone(timedelta(hours=2)))
    assert iso_millis(plus_two) == "2026-02-21T12:21:27.123Z"
    assert iso_millis(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"
    assert iso(None) is None


@given(st.datetimes(timezones=st.timezones()))
def test_matches_the_reference_rendering(moment: datetime) -> None:
    reference = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    assert iso_millis(moment) == reference.replace("+00:00", "Z")
