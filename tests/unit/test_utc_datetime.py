"""UTCDateTime's one-step SQLite binding writes exactly what SQLAlchemy's two steps wrote."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from server.models.base import UTCDateTime

SQLITE = sqlite.dialect()
OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
# Away from the calendar's ends, where a time zone shift would leave datetime's range.
AWARE = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS
)


@given(AWARE)
def test_sqlite_binding_matches_sqlalchemys_format_and_reads_back(value: datetime) -> None:
    ours = UTCDateTime().bind_processor(SQLITE)
    generic = DateTime().dialect_impl(SQLITE).bind_processor(SQLITE)
    read = DateTime().dialect_impl(SQLITE).result_processor(SQLITE, None)
    assert ours is not None and generic is not None and read is not None
    stored = ours(value)
    assert stored == generic(value.astimezone(UTC).replace(tzinfo=None))
    assert UTCDateTime().process_result_value(read(stored), SQLITE) == value


def test_sqlite_binding_refuses_naive_times_and_passes_none() -> None:
    ours = UTCDateTime().bind_processor(SQLITE)
    assert ours is not None
    assert ours(None) is None
    with pytest.raises(ValueError, match="naive datetime"):
        ours(datetime(2026, 11, 26, 13, 5))


def test_sqlite_binding_of_repeated_and_alternating_values_is_each_values_own() -> None:
    """The processor keeps the last value's text: a repeat gets it, anything else its own."""
    ours = UTCDateTime().bind_processor(SQLITE)
    assert ours is not None
    first = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    second = datetime(2026, 3, 1, 11, 0, tzinfo=timezone(timedelta(hours=2)))  # the same instant
    third = datetime(2026, 3, 2, 9, 0, 0, 5, tzinfo=UTC)
    values = [first, first, second, third, third, first, None, first, second]
    assert [ours(v) for v in values] == [
        "2026-03-01 09:00:00.000000",
        "2026-03-01 09:00:00.000000",
        "2026-03-01 09:00:00.000000",
        "2026-03-02 09:00:00.000005",
        "2026-03-02 09:00:00.000005",
        "2026-03-01 09:00:00.000000",
        None,
        "2026-03-01 09:00:00.000000",
        "2026-03-01 09:00:00.000000",
    ]
