"""TZID values of calendar data -> real time zones, without ever failing.

A meeting's instant is only right if its TZID is understood, and producers disagree on TZIDs:

* Outlook and Exchange write Windows names (`W. Europe Standard Time`); they map to IANA through
  the Unicode CLDR table in `data/windows_zones.json`. Exchange appends " 1", " 2" when one
  calendar carries two different definitions under one name (`Eastern Standard Time 1`).
* Outlook also writes "Customized Time Zone" or its display names ("(UTC+01:00) Amsterdam,
  Berlin, Bern, Rome, Stockholm, Vienna") and relies on the VTIMEZONE block alone.
* Thunderbird/Lightning and Evolution prefix IANA names (`/mozilla.org/20070129_1/Europe/Berlin`,
  `/softwarestudio.org/Olson_20011030_5/America/New_York`).
* Google and Apple write IANA names, as RFC 5545 expects.

For a name that is none of these, the VTIMEZONE block decides: its rules are compared with the
IANA zones Windows names map to, preferring a zone whose city the TZID mentions; the first zone
with the same offsets all year is used (a real zone keeps recurring meetings right across DST).
When nothing matches, the offset the VTIMEZONE gives at the event's own local time is used as a
fixed offset; without a usable VTIMEZONE, an offset written in the TZID ("UTC+01:00"), else UTC.
Every such repair is noted on the item.
"""

from __future__ import annotations

import calendar
import json
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import cache, lru_cache
from importlib import resources

from server.mail_ingest.calendar_lines import Component

__all__ = ["Zone", "ZoneResolver", "fixed_zone", "windows_zones", "zone_by_name"]

_WEEKDAYS = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}
_BYDAY = re.compile(r"([+-]?\d{0,2})(MO|TU|WE|TH|FR|SA|SU)")
_OFFSET = re.compile(r"([+-])(\d{2})(\d{2})(\d{2})?")
_TEXT_OFFSET = re.compile(r"(?:UTC|GMT)\s*(?:([+-])\s*(\d{1,2})(?:[:.]?(\d{2}))?)?", re.I)
_PREFIXED = re.compile(r"^/[^/]+/[^/]+/(.+)$")  # /mozilla.org/20070129_1/Europe/Berlin
_UTC_NAMES = frozenset({"z", "utc", "gmt", "etc/utc", "etc/gmt", "tzone://microsoft/utc"})
_MAX_RDATES = 200
# Tried first when matching a VTIMEZONE, so that a custom zone with central European rules reads
# as Europe/Berlin rather than the first equivalent zone in CLDR's alphabetical order (Budapest).
_PREFERRED = (
    "Europe/London", "Europe/Berlin", "Europe/Paris", "Europe/Helsinki", "America/New_York",
    "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
    "America/Sao_Paulo", "Asia/Kolkata", "Asia/Shanghai", "Asia/Tokyo", "Australia/Sydney",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Zone:
    """A resolved TZID: the tzinfo, its IANA name (None for a bare offset), and any repair note."""

    tz: tzinfo
    name: str | None
    note: str | None = None


@cache
def windows_zones() -> dict[str, str]:
    """The CLDR Windows-name -> IANA table, keys lower-cased (Outlook's case varies)."""
    raw = resources.files("server.mail_ingest").joinpath("data/windows_zones.json").read_text()
    zones: dict[str, str] = json.loads(raw)["zones"]
    return {key.lower(): value for key, value in zones.items()}


@cache
def _zone(name: str) -> zoneinfo.ZoneInfo:
    """ZoneInfo keeps only a few zones alive; matching tries ~150, so they are kept here."""
    return zoneinfo.ZoneInfo(name)


@cache
def _iana() -> dict[str, str]:
    """Every IANA name tzdata knows, by lower-cased name."""
    return {name.lower(): name for name in zoneinfo.available_timezones()}


@cache
def _cities() -> dict[str, str]:
    """City part of each regional IANA name ("new york") -> the name, for hints in display names."""
    cities: dict[str, str] = {}
    for name in sorted(zoneinfo.available_timezones()):
        area, _, rest = name.partition("/")
        if rest and area in {"Africa", "America", "Asia", "Atlantic", "Australia", "Europe"}:
            cities.setdefault(rest.rsplit("/", 1)[-1].replace("_", " ").lower(), name)
    return cities


def fixed_zone(offset: timedelta) -> Zone:
    """A fixed-offset zone; named `Etc/GMT±N` when the offset is whole hours (IANA's own names)."""
    hours, rest = divmod(int(offset.total_seconds()), 3600)
    if offset == timedelta(0):
        return Zone(UTC, "UTC")
    if rest == 0 and -12 <= hours <= 14:
        # IANA's Etc zones have POSIX signs: Etc/GMT-1 is one hour *ahead* of UTC.
        return Zone(_zone(f"Etc/GMT{-hours:+d}"), f"Etc/GMT{-hours:+d}")
    return Zone(timezone(offset), None)


@lru_cache(maxsize=1024)
def zone_by_name(tzid: str) -> Zone | None:
    """The zone a TZID names (IANA, Windows, prefixed IANA, UTC spellings), or None."""
    key = tzid.strip().strip('"').strip()
    lower = key.lower()
    if len(key) > 200:
        return None
    if lower in _UTC_NAMES:
        return Zone(UTC, "UTC")
    iana = _iana().get(lower) or windows_zones().get(lower)
    note = None
    if iana is None:
        numbered = re.fullmatch(r"(.+?)\s+\d{1,2}", lower)
        if numbered is not None:
            # Exchange numbers a second definition of one Windows zone: "Eastern Standard Time 1".
            iana = windows_zones().get(numbered.group(1))
            note = f"time zone {key!r} read as {iana}" if iana else None
    if iana is None:
        prefixed = _PREFIXED.match(key)
        if prefixed is not None:
            iana = _iana().get(prefixed.group(1).lower())
    if iana is None:
        return None
    if iana.lower() in {"etc/utc", "utc"}:
        return Zone(UTC, "UTC", note)
    return Zone(_zone(iana), iana, note)


def _offset(value: str) -> timedelta | None:
    match = _OFFSET.fullmatch(value.strip())
    if match is None:
        return None
    sign, hours, minutes, seconds = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds or 0))
    if delta >= timedelta(hours=24):
        return None
    return -delta if sign == "-" else delta


def _local(value: str) -> datetime | None:
    match = re.fullmatch(r"(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})?)?Z?", value.strip())
    if match is None:
        return None
    y, mo, d, h, mi, s = (int(g) if g else 0 for g in match.groups())
    try:
        return datetime(y, mo, d, min(h, 23), min(mi, 59), min(s, 59))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Observance:
    """One STANDARD or DAYLIGHT block: when it starts (local wall time before the change)."""

    start: datetime
    offset_from: timedelta
    offset_to: timedelta
    rule: tuple[int, int, int, tuple[int, ...]] | None  # month, nth weekday, weekday, monthdays
    until: datetime | None
    rdates: tuple[datetime, ...]


def _rule(text: str) -> tuple[int, int, int, tuple[int, ...]] | None:
    """A VTIMEZONE RRULE as (month, nth, weekday, monthdays); None if absent or unusable.

    Every producer writes yearly rules of the "nth/last weekday of a month" kind (Outlook writes
    BYDAY=5SU for "last Sunday"); the US rule of old was written as BYMONTHDAY=8,...,14;BYDAY=SU.
    """
    parts = dict(p.partition("=")[::2] for p in text.upper().split(";") if "=" in p)
    if parts.get("FREQ") != "YEARLY" or not parts.get("BYMONTH", "").isdigit():
        return None
    month = int(parts["BYMONTH"])
    days = tuple(int(d) for d in parts.get("BYMONTHDAY", "").split(",") if d.lstrip("-").isdigit())
    byday = _BYDAY.fullmatch(parts.get("BYDAY", ""))
    if not 1 <= month <= 12 or (byday is None and len(days) != 1):
        return None
    if byday is None:
        return (month, 0, -1, days)
    nth = int(byday.group(1)) if byday.group(1) not in ("", "+", "-") else 0
    if not -5 <= nth <= 5:
        return None
    return (month, nth, _WEEKDAYS[byday.group(2)], days)


def _onset(year: int, rule: tuple[int, int, int, tuple[int, ...]]) -> date | None:
    month, nth, weekday, monthdays = rule
    first = date(year, month, 1)
    length = calendar.monthrange(year, month)[1]
    if weekday < 0:
        day = monthdays[0] if monthdays[0] > 0 else length + 1 + monthdays[0]
        return first.replace(day=day) if 1 <= day <= length else None
    if monthdays:
        for day in monthdays:
            if 1 <= day <= length and first.replace(day=day).weekday() == weekday:
                return first.replace(day=day)
        return None
    if nth < 0:
        last = first.replace(day=length)
        day = length - (last.weekday() - weekday) % 7 + 7 * (nth + 1)
    else:
        day = 1 + (weekday - first.weekday()) % 7 + 7 * (max(nth, 1) - 1)
        if day > length:
            day -= 7  # Outlook's "5th" weekday means the last one
    return first.replace(day=day) if 1 <= day <= length else None


def _observances(vtimezone: Component) -> list[_Observance]:
    found: list[_Observance] = []
    for block in vtimezone.children:
        if block.name not in ("STANDARD", "DAYLIGHT"):
            continue
        start = _local(block.value("DTSTART"))
        offset_from = _offset(block.value("TZOFFSETFROM"))
        offset_to = _offset(block.value("TZOFFSETTO"))
        if start is None or offset_to is None:
            continue
        rrule = block.value("RRULE").strip()
        rule = _rule(rrule)
        until = None
        if rrule:
            until_text = dict(p.partition("=")[::2] for p in rrule.upper().split(";")).get("UNTIL")
            until = _local(until_text) if until_text else None
        rdates = tuple(
            parsed
            for prop in block.all("RDATE")[:_MAX_RDATES]
            for value in prop.value.split(",")
            if (parsed := _local(value.split("/")[0])) is not None
        )
        found.append(
            _Observance(
                start,
                offset_from if offset_from is not None else offset_to,
                offset_to,
                rule,
                until,
                rdates,
            )
        )
    return found


def _transitions(observances: Sequence[_Observance], year: int) -> list[tuple[datetime, timedelta]]:
    """(UTC instant, offset after) of every onset that can matter around `year`, sorted."""
    out: list[tuple[datetime, timedelta]] = []
    for obs in observances:
        onsets = [obs.start, *obs.rdates]
        if obs.rule is not None:
            years = {year - 1, year, year + 1}
            if obs.until is not None:
                years |= {obs.until.year - 1, obs.until.year}
            for y in sorted(years):
                if y < obs.start.year or not 1 < y < 9999:
                    continue
                day = _onset(y, obs.rule)
                if day is not None and datetime.combine(day, obs.start.time()) > obs.start:
                    onsets.append(datetime.combine(day, obs.start.time()))
        for local in onsets:
            instant = local - obs.offset_from
            if obs.until is not None and instant > obs.until and local != obs.start:
                continue
            out.append((instant, obs.offset_to))
    out.sort(key=lambda t: t[0])
    return out


def _offset_at(
    transitions: list[tuple[datetime, timedelta]],
    observances: Sequence[_Observance],
    instant: datetime,
) -> timedelta:
    current = None
    for when, offset in transitions:
        if when > instant:
            break
        current = offset
    if current is not None:
        return current
    earliest = min(observances, key=lambda o: o.start)
    return earliest.offset_from


def _offset_for_local(observances: list[_Observance], local: datetime) -> timedelta:
    """The UTC offset a VTIMEZONE gives a local wall time (earlier one when ambiguous)."""
    transitions = _transitions(observances, local.year)
    offsets = {o.offset_to for o in observances} | {o.offset_from for o in observances}
    valid = [o for o in offsets if _offset_at(transitions, observances, local - o) == o]
    if valid:
        return max(valid)  # ambiguous (clocks going back): the first of the two, like fold=0
    # Inside a gap (clocks going forward): the offset before the change, as zoneinfo does.
    return _offset_at(transitions, observances, local - max(offsets))


class ZoneResolver:
    """Resolves the TZIDs of one calendar object, using its VTIMEZONE blocks when it must."""

    def __init__(self, vtimezones: list[Component]) -> None:
        self._blocks: dict[str, Component] = {}
        for block in vtimezones:
            tzid = block.value("TZID").strip().strip('"').strip()
            if tzid:
                self._blocks.setdefault(tzid.lower(), block)
        self._observances: dict[str, list[_Observance]] = {}
        self._matched: dict[tuple[str, int], str | None] = {}

    def resolve(self, tzid: str, local: datetime) -> Zone:
        """The zone for `tzid` at the wall time `local` (the fallbacks depend on the date)."""
        key = tzid.strip().strip('"').strip()
        named = zone_by_name(key)
        if named is not None:
            return named
        lower = key.lower()
        block = self._blocks.get(lower)
        if block is not None:
            if lower not in self._observances:
                self._observances[lower] = _observances(block)
            observances = self._observances[lower]
            if observances:
                matched = self._match(key, observances, local.year)
                if matched is not None:
                    note = f"time zone {key!r} matched to {matched} by its VTIMEZONE"
                    return Zone(_zone(matched), matched, note)
                offset = _offset_for_local(observances, local)
                zone = fixed_zone(offset)
                note = f"time zone {key!r} read as the fixed offset {_fmt(offset)} of its VTIMEZONE"
                return Zone(zone.tz, zone.name, note)
        why = "broken VTIMEZONE" if block is not None else "unknown time zone"
        hinted = _hinted(key)
        if hinted is not None:
            return Zone(hinted.tz, hinted.name, f"{why} {key!r}: read as {hinted.name or 'offset'}")
        return Zone(UTC, "UTC", f"{why} {key!r}: read as UTC")

    def _match(self, tzid: str, observances: list[_Observance], year: int) -> str | None:
        cache_key = (tzid.lower(), year)
        if cache_key not in self._matched:
            hints = tuple(_city_hints(tzid))
            self._matched[cache_key] = _match_iana(hints, tuple(observances), year)
        return self._matched[cache_key]


def _fmt(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _city_hints(text: str) -> list[str]:
    """IANA zones whose city appears in `text`, in order of appearance."""
    lower = text.lower()
    found: list[tuple[int, str]] = []
    for word in re.finditer(r"[a-z][a-z .'-]{2,}", lower):
        for piece in re.split(r"\s*[,;/()]\s*|\s+-\s+", word.group(0)):
            zone = _cities().get(piece.strip(" ."))
            if zone is not None:
                found.append((word.start(), zone))
    return [zone for _, zone in sorted(found)]


@lru_cache(maxsize=256)
def _match_iana(
    hints: tuple[str, ...], observances: tuple[_Observance, ...], year: int
) -> str | None:
    """An IANA zone with the same UTC offsets as the VTIMEZONE all through `year`, if any.

    Cached by content: Outlook repeats the same custom definition under many names and mails.
    """
    if not 1900 <= year <= 2200:
        return None
    transitions = _transitions(observances, year)
    samples = [datetime(year, month, day, 12) for month in range(1, 13) for day in (1, 15)]
    samples += [
        when + delta
        for when, _ in transitions
        if when.year == year
        for delta in (timedelta(hours=-2), timedelta(hours=2))
    ]
    expected = [_offset_at(transitions, observances, s) for s in samples]
    candidates = dict.fromkeys([*hints, *_PREFERRED, *windows_zones().values()])
    for name in candidates:
        zone = _zone(name)
        if all(
            s.replace(tzinfo=UTC).astimezone(zone).utcoffset() == want
            for s, want in zip(samples, expected, strict=True)
        ):
            return name
    return None


def _hinted(tzid: str) -> Zone | None:
    """A zone from the TZID text itself: "(UTC+01:00) Amsterdam, Berlin..." or "GMT+0530"."""
    match = _TEXT_OFFSET.search(tzid)
    offset = None
    if match is not None:
        sign, hours, minutes = match.groups()
        offset = timedelta(hours=int(hours or 0), minutes=int(minutes or 0))
        offset = -offset if sign == "-" else offset
        if offset >= timedelta(hours=15) or offset <= timedelta(hours=-15):
            offset = None
    for name in _city_hints(tzid):
        zone = _zone(name)
        standard = min(
            datetime(2025, 1, 15, tzinfo=zone).utcoffset() or timedelta(0),
            datetime(2025, 7, 15, tzinfo=zone).utcoffset() or timedelta(0),
        )
        if offset is None or standard == offset:
            return Zone(zone, name)
    return fixed_zone(offset) if offset is not None else None
