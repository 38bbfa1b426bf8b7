"""Dates and durations as people type them: `2026-01-31`, `90d`, `12h`, `6w`."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """`90d` → 90 days; minutes, hours, days and weeks; ValueError with a readable message."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a duration like 30m, 12h, 90d or 6w")
    amount, unit = int(match.group(1)), match.group(2).lower()
    return timedelta(**{_UNITS[unit]: amount})


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """A point in time: an ISO date (`2026-01-31`, midnight UTC), a datetime, or `90d` ago."""
    now = now or datetime.now(UTC)
    if _DURATION.match(text):
        return now - parse_duration(text)
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"'{text}' is not a date (2026-01-31) or an age (90d)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
