"""Occurrences of a recurring meeting within a window: computed when shown, never stored.

`dateutil.rrule` does the RFC 5545 arithmetic; this module makes it safe on any RRULE a mail can
carry. Left alone, dateutil can spin for seconds: a rule no day satisfies (`BYMONTH=2;
BYMONTHDAY=30`) yields nothing and loops up to year 9999, and a series whose DTSTART lies
centuries back is walked from there. So:

* The RRULE is parsed here and checked part by part; a malformed or unsupported one yields no
  occurrences at all ([]), never an exception. A valid rule no date satisfies yields DTSTART
  alone (RFC 5545 counts DTSTART as the first occurrence).
* Without COUNT, DTSTART is moved forward to the period of the window's start (whole INTERVALs,
  with the defaults DTSTART implied made explicit), so the walk starts at the window.
* Then the whole problem is moved forward by whole 400-year Gregorian cycles (which repeat
  weekdays and leap days exactly) so that the window ends shortly before year 9999: dateutil's
  own stop at year 9999 then ends any fruitless search a few centuries after the window.
* A counted series (COUNT) must be walked from its DTSTART; one that started more than 400
  years before the window is not expanded, and at most 200,000 candidates are examined.

Recurrence is evaluated in the meeting's own wall-clock time, so a 09:00 New York meeting stays at
09:00 across DST; EXDATEs are compared as instants, RDATEs added. Moved or cancelled occurrences
are separate items (their own RECURRENCE-ID key) that the caller lays over these.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any, cast

from dateutil.rrule import (
    DAILY,
    HOURLY,
    MINUTELY,
    MONTHLY,
    SECONDLY,
    WEEKLY,
    YEARLY,
    rrule,
    weekday,
)

from server.mail_ingest.calendar_values import parse_stamp
from server.mail_ingest.items import CalendarItem

__all__ = ["expand_occurrences"]

_FREQS = {"YEARLY": YEARLY, "MONTHLY": MONTHLY, "WEEKLY": WEEKLY, "DAILY": DAILY,
          "HOURLY": HOURLY, "MINUTELY": MINUTELY, "SECONDLY": SECONDLY}  # fmt: skip
_DAYS = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}
_BYDAY = re.compile(r"([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)")
_NUMERIC = {  # part -> (lowest, highest, negative allowed)
    "BYSECOND": (0, 59, False), "BYMINUTE": (0, 59, False), "BYHOUR": (0, 23, False),
    "BYMONTHDAY": (1, 31, True), "BYYEARDAY": (1, 366, True), "BYWEEKNO": (1, 53, True),
    "BYMONTH": (1, 12, False), "BYSETPOS": (1, 366, True),
}  # fmt: skip
MAX_RULE_TEXT = 1000
MAX_INTERVAL = 100_000
MAX_TIMES_PER_DAY = 60  # BYHOUR x BYMINUTE x BYSECOND: meetings do not recur every minute
MAX_EXAMINED = 200_000
CYCLE_YEARS = 400  # the Gregorian calendar repeats exactly every 400 years
_LAST_YEAR = 9998


def _aware(local: datetime, tz: tzinfo) -> datetime:
    """`local` in `tz`, with a wall time inside a DST gap moved forward by the gap."""
    return local.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)


def _parse_rule(text: str) -> dict[str, str] | None:
    body = text.strip()
    if body[:6].upper() == "RRULE:":
        body = body[6:]
    if not body or len(body) > MAX_RULE_TEXT:
        return None
    parts: dict[str, str] = {}
    for piece in body.split(";"):
        if not piece.strip():
            continue
        key, sep, value = piece.partition("=")
        key = key.strip().upper()
        if not sep or key in parts:
            return None
        if not key.startswith("X-"):
            parts[key] = value.strip().upper()
    return parts


def _numbers(value: str, low: int, high: int, negative: bool) -> list[int] | None:
    out: set[int] = set()
    for piece in value.split(","):
        piece = piece.strip()
        if not re.fullmatch(r"[+-]?\d{1,4}", piece):
            return None
        number = int(piece)
        if not (low <= number <= high or (negative and -high <= number <= -low)):
            return None
        out.add(number)
    return sorted(out)


def _build(parts: dict[str, str], dtstart: datetime) -> dict[str, object] | None:
    """dateutil keyword arguments for `parts`, with DTSTART's implied defaults made explicit."""
    freq = _FREQS.get(parts.get("FREQ", ""))
    if freq is None:
        return None
    args: dict[str, object] = {"freq": freq}
    for key, value in parts.items():
        if key in _NUMERIC:
            numbers = _numbers(value, *_NUMERIC[key])
            if numbers is None:
                return None
            args[key.lower()] = numbers
        elif key == "BYDAY":
            days: list[weekday] = []
            for piece in value.split(","):
                match = _BYDAY.fullmatch(piece.strip())
                if match is None:
                    return None
                nth = int(match.group(1)) if match.group(1) else None
                if nth is not None and not 1 <= abs(nth) <= 53:
                    return None
                days.append(weekday(_DAYS[match.group(2)], nth))
            args["byweekday"] = days
        elif key == "WKST":
            if value not in _DAYS:
                return None
            args["wkst"] = _DAYS[value]
        elif key not in ("FREQ", "INTERVAL", "COUNT", "UNTIL"):
            return None
    # "nth weekday" counts within the month for MONTHLY, and for YEARLY with BYMONTH: at most 5
    # (dateutil indexes past its tables on BYDAY=10MO instead of finding nothing).
    monthly = freq == MONTHLY or (freq == YEARLY and "bymonth" in args)
    chosen_days = args.get("byweekday")
    if monthly and isinstance(chosen_days, list) and any(abs(d.n or 0) > 5 for d in chosen_days):
        return None
    interval = parts.get("INTERVAL", "1")
    if not interval.isdigit() or not 1 <= int(interval) <= MAX_INTERVAL:
        return None
    args["interval"] = int(interval)
    # What dateutil would derive from DTSTART (RFC 5545 3.3.10); explicit, so DTSTART can move.
    if not any(k in args for k in ("byweekno", "byyearday", "bymonthday", "byweekday")):
        if freq == YEARLY:
            args.setdefault("bymonth", [dtstart.month])
            args["bymonthday"] = [dtstart.day]
        elif freq == MONTHLY:
            args["bymonthday"] = [dtstart.day]
        elif freq == WEEKLY:
            args["byweekday"] = [weekday(dtstart.weekday())]
    for key, coarser, default in (
        ("byhour", HOURLY, dtstart.hour),
        ("byminute", MINUTELY, dtstart.minute),
        ("bysecond", SECONDLY, dtstart.second),
    ):
        if key not in args and freq < coarser:
            args[key] = [default]
    sizes = {
        key: len(v) if isinstance(v := args.get(key), list) else 1
        for key in ("byhour", "byminute", "bysecond")
    }
    if sizes["byhour"] * sizes["byminute"] * sizes["bysecond"] > MAX_TIMES_PER_DAY:
        return None
    return args


# Longest possible month, for rejecting BYMONTH/BYMONTHDAY pairs no year has (30 February).
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _satisfiable(args: dict[str, object]) -> bool:
    """False for the rules no date satisfies that real data produces; dateutil would search up to
    year 9999 for a first occurrence (this module bounds that, but a check is cheaper)."""
    months, monthdays = args.get("bymonth"), args.get("bymonthday")
    if (
        isinstance(months, list)
        and isinstance(monthdays, list)
        and not any(abs(d) <= _MONTH_DAYS[m - 1] for m in months for d in monthdays)
    ):
        return False
    positions = args.get("bysetpos")
    if isinstance(positions, list):
        # The most candidates one period can hold: BYSETPOS beyond that never selects anything.
        size = {k: len(v) if isinstance(v := args.get(k), list) else 1
                for k in ("byhour", "byminute", "bysecond")}  # fmt: skip
        per_day = size["byhour"] * size["byminute"] * size["bysecond"]
        freq = args["freq"]
        assert isinstance(freq, int)
        most = {YEARLY: 366 * per_day, MONTHLY: 31 * per_day, WEEKLY: 7 * per_day,
                DAILY: per_day, HOURLY: size["byminute"] * size["bysecond"],
                MINUTELY: size["bysecond"], SECONDLY: 1}[freq]  # fmt: skip
        if all(abs(p) > most for p in positions):
            return False
    return True


def _advance(dtstart: datetime, freq: int, interval: int, target: datetime, wkst: int) -> datetime:
    """The start of the latest period, whole INTERVALs after `dtstart`, at or before `target`."""
    if target <= dtstart:
        return dtstart
    if freq == YEARLY:
        k = (target.year - dtstart.year) // interval * interval
        return datetime(dtstart.year + k, 1, 1) if k > 0 else dtstart
    if freq == MONTHLY:
        months = (target.year - dtstart.year) * 12 + target.month - dtstart.month
        k = months // interval * interval
        index = dtstart.year * 12 + dtstart.month - 1 + k
        return datetime(index // 12, index % 12 + 1, 1) if k > 0 else dtstart
    if freq == WEEKLY:
        first = dtstart.date() - timedelta(days=(dtstart.weekday() - wkst) % 7)
        last = target.date() - timedelta(days=(target.weekday() - wkst) % 7)
        k = (last - first).days // 7 // interval * interval
        return datetime.combine(first + timedelta(weeks=k), time()) if k > 0 else dtstart
    if freq == DAILY:
        k = (target.date() - dtstart.date()).days // interval * interval
        return datetime.combine(dtstart.date() + timedelta(days=k), time()) if k > 0 else dtstart
    unit = {HOURLY: 3600, MINUTELY: 60, SECONDLY: 1}[freq]
    base = dtstart.replace(minute=0 if freq == HOURLY else dtstart.minute, second=0)
    if freq == SECONDLY:
        base = dtstart
    k = int((target - base).total_seconds()) // unit // interval * interval
    return base + timedelta(seconds=k * unit) if k > 0 else dtstart


def _shift(value: datetime, years: int) -> datetime:
    return value.replace(year=value.year + years)


def expand_occurrences(
    item: CalendarItem, *, start: datetime, end: datetime, limit: int = 500
) -> list[tuple[datetime, datetime | None]]:
    """(start, end) of each occurrence of `item` starting in [`start`, `end`), at most `limit`.

    A single event yields its one occurrence when it falls in the window. Naive window bounds
    are read as UTC. A malformed RRULE yields [] and nothing ever raises.
    """
    try:
        return _expand(item, start, end, limit)
    except Exception:  # the promise above; the tests run `_expand` itself to catch real bugs
        return []


def _expand(
    item: CalendarItem, start: datetime, end: datetime, limit: int
) -> list[tuple[datetime, datetime | None]]:
    first = item.start
    if first is None or limit <= 0:
        return []
    tz = first.tzinfo or UTC
    first = first if first.tzinfo is not None else first.replace(tzinfo=UTC)
    lo = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
    hi = end if end.tzinfo is not None else end.replace(tzinfo=UTC)
    if hi <= lo:
        return []
    duration = _as_aware(item.end) - first if item.end is not None else None
    excluded = {_as_aware(d).astimezone(UTC) for d in item.exdates}
    starts: set[datetime] = {first, *(_as_aware(d) for d in item.rdates)}
    if item.rrule:
        generated = _rule_starts(item.rrule, first, tz, (lo, hi), excluded, limit)
        if generated is None:
            return []  # a rule that cannot be read: no occurrences rather than wrong ones
        starts.update(generated)
    chosen = sorted(s for s in starts if lo <= s < hi and s.astimezone(UTC) not in excluded)
    return [(s, s + duration if duration is not None else None) for s in chosen[:limit]]


def _as_aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _local(value: datetime, tz: tzinfo) -> datetime:
    return value.astimezone(tz).replace(tzinfo=None)


def _rule_starts(
    text: str,
    first: datetime,
    tz: tzinfo,
    window: tuple[datetime, datetime],
    excluded: set[datetime],
    limit: int,
) -> list[datetime] | None:
    """Starts in `window` that `text` generates from `first`, at most `limit` not excluded;
    None when the rule is malformed or unsupported."""
    lo, hi = window
    parts = _parse_rule(text)
    dtstart = _local(first, tz)
    args = _build(parts, dtstart) if parts is not None else None
    if parts is None or args is None:
        return None
    if not _satisfiable(args):
        return []  # valid, but no date matches: DTSTART alone, as RFC 5545 counts it
    # Walk in wall-clock time, a day wider than the window (offsets differ by under a day).
    window_lo = _local(max(lo, first), tz) - timedelta(days=1)
    window_hi = _local(hi, tz) + timedelta(days=1)
    until = None
    if "UNTIL" in parts:
        stamp = parse_stamp(parts["UNTIL"])
        if stamp is None:
            return None
        if stamp.is_date:
            until = datetime.combine(stamp.local.date(), time(23, 59, 59))
        elif stamp.utc_offset is not None:
            until = _local(stamp.local.replace(tzinfo=UTC) - stamp.utc_offset, tz)
        else:
            until = stamp.local
        if until < window_lo:
            return []
    count = parts.get("COUNT")
    if count is not None:
        if not count.isdigit() or int(count) < 1:
            return None
        if window_lo.year - dtstart.year > CYCLE_YEARS:
            return []
        args["count"] = int(count)
    else:
        interval, wkst = args["interval"], args.get("wkst", 0)
        assert isinstance(interval, int) and isinstance(wkst, int)
        dtstart = _advance(dtstart, _FREQS[parts["FREQ"]], interval, window_lo, wkst)
    if window_hi.year > _LAST_YEAR or dtstart > window_hi:
        return []
    years = max(0, (_LAST_YEAR - window_hi.year) // CYCLE_YEARS) * CYCLE_YEARS
    # COUNT and UNTIL together break RFC 5545 (and make dateutil warn): UNTIL is applied here.
    stop = min(window_hi, until) if until is not None else window_hi
    shifted_stop = _shift(stop, years)
    out: list[datetime] = []
    try:
        # `_build` checked every part's type; dateutil's stubs type each keyword separately.
        rule = rrule(dtstart=_shift(dtstart, years), cache=False, **cast(dict[str, Any], args))
        for examined, occurrence in enumerate(rule):
            if occurrence > shifted_stop or examined >= MAX_EXAMINED:
                break
            aware = _aware(_shift(occurrence, -years), tz)
            if lo <= aware < hi and aware.astimezone(UTC) not in excluded:
                out.append(aware)
                if len(out) >= limit:
                    break
    except (ValueError, OverflowError, IndexError):
        # dateutil's verdict on some combinations ("Invalid combination of interval and
        # byhour"), arithmetic past year 9999, or one of its own table overruns on odd BY*
        # values: a bad rule.
        return None
    return out
