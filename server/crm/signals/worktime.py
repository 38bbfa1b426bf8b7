"""Business time: "two business days after Friday 16:00" in the user's own time zone.

Working time is a window of hours on working days (Monday to Friday, 09:00-17:00 by default),
minus holidays, in the wall-clock time of a zone. Adding N business hours walks the windows from
the given instant; N business days are N times the length of a working day, so "2 business days
after Friday 16:00" is Tuesday 16:00 and "after Saturday 10:00" is Tuesday 17:00 (the clock only
runs during working hours). Each day's window is placed in the zone separately, so a daylight
saving change moves it with the local clock; the elapsed time inside a window is real time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

MAX_DAYS_WALKED = 3700  # ten years of days: a calendar with no working time never loops forever


@dataclass(frozen=True)
class WorkWeek:
    days: frozenset[int] = frozenset(range(5))  # Monday = 0
    start: time = time(9)
    end: time = time(17)
    holidays: frozenset[date] = frozenset()

    @property
    def day_hours(self) -> float:
        span = datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)
        return span.total_seconds() / 3600

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.days and day not in self.holidays

    def window(self, day: date, zone: tzinfo) -> tuple[datetime, datetime]:
        """That day's working window, in UTC."""
        start = datetime.combine(day, self.start, tzinfo=zone).astimezone(UTC)
        end = datetime.combine(day, self.end, tzinfo=zone).astimezone(UTC)
        return start, end

    def add_hours(self, when: datetime, hours: float, zone: tzinfo) -> datetime:
        """The instant `hours` of working time after `when` (which may be outside working time:
        the clock starts at the next window)."""
        remaining = timedelta(hours=hours)
        when = when.astimezone(UTC)
        day = when.astimezone(zone).date() - timedelta(days=1)  # a window may start the day before
        for _ in range(MAX_DAYS_WALKED):
            if self.is_working_day(day):
                start, end = self.window(day, zone)
                begin = max(start, when)
                if begin < end:
                    if remaining <= end - begin:
                        return begin + remaining
                    remaining -= end - begin
            day += timedelta(days=1)
        return when + timedelta(hours=hours)  # no working time at all: plain hours

    def add_days(self, when: datetime, days: float, zone: tzinfo) -> datetime:
        return self.add_hours(when, days * self.day_hours, zone)
