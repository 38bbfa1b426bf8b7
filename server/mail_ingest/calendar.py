"""iCalendar data (iTIP invites, replies, .ics files) -> provider-neutral `CalendarItem`s.

Meetings reach the CRM as text/calendar parts of emails (iTIP, RFC 5546), as .ics files, and
later from Graph/EWS. This module turns the first two into one `CalendarItem` per VEVENT, pure and
without a database; `server.crm.itip` decides what each item does to the stored meeting.

The contract, so that one hostile or broken invite never stops capture:

* Only data that is not iCalendar at all raises (`BadItem("not_icalendar")`); anything else is
  read as far as it goes and every repair is listed in `CalendarItem.notes`. No other exception
  escapes: a VEVENT that still fails is skipped and the others say so in their notes.
* Bounded: input capped at 10 MB, 500 VEVENTs per calendar object, 2,000 attendees kept per event
  (a 10,000-attendee all-hands invite parses in well under a second).

Representation decisions (the `Meeting` table stores these as they are):

* Times are aware datetimes in the event's own zone, so the wall time the organiser chose is
  kept; `time_zone` is its IANA name ("UTC" for UTC times). Outlook's Windows zone names,
  custom and broken VTIMEZONEs are resolved by `calendar_tz` (noted). A wall time that does not
  exist (inside a spring-forward gap) is moved forward by the gap, like zoneinfo's fold=0 reading
  (02:30 on a Berlin spring-forward day is 03:30 CEST); an ambiguous one is the first of the two.
* All-day events (DATE values): `all_day=True`, start and end at midnight UTC of their dates, end
  exclusive (RFC 5545), `time_zone=None`. A date is recovered with `.date()` without shifting.
* Floating times (no TZID, no Z): the wall time tagged as UTC, `time_zone=None`, `floating=True`
  and the note "floating time"; the display shows the wall time as it is. When the calendar
  names a zone in X-WR-TIMEZONE (Google exports) that zone is used instead, with a note.
* A VEVENT without DTSTART is kept with `start=None` and a note (replies and cancellations may
  legitimately omit it); one without UID gets a stable synthetic UID (hash of organizer, DTSTART
  and SUMMARY). A VEVENT with none of UID, DTSTART, SUMMARY, ORGANIZER or ATTENDEE carries
  nothing to key or show and is dropped; the other events of the calendar note it.
* `recurrence_id` (the original start of one occurrence) follows the same rules; a DATE one sets
  `recurrence_all_day`. `recurrence_key` renders it as the key the Meeting table uses.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone, tzinfo

from server.mail_ingest.calendar_lines import (
    MAX_EVENTS,
    Component,
    Prop,
    decode_calendar,
    read_components,
)
from server.mail_ingest.calendar_recur import expand_occurrences
from server.mail_ingest.calendar_tz import Zone, ZoneResolver, zone_by_name
from server.mail_ingest.calendar_values import (
    address_of,
    meeting_url,
    parse_duration,
    parse_int,
    parse_stamp,
    unescape_text,
)
from server.mail_ingest.errors import BadItem
from server.mail_ingest.items import CalendarItem, Participant, Response

__all__ = ["METHODS", "expand_occurrences", "parse_calendar", "recurrence_key"]

METHODS = frozenset(
    {"PUBLISH", "REQUEST", "REPLY", "ADD", "CANCEL", "REFRESH", "COUNTER", "DECLINECOUNTER"}
)
_RESPONSES: dict[str, Response] = {
    "ACCEPTED": "accepted",
    "TENTATIVE": "tentative",
    "DECLINED": "declined",
    "NEEDS-ACTION": "needs_action",
    "DELEGATED": "delegated",
}
_STATUSES = {"CONFIRMED": "confirmed", "TENTATIVE": "tentative", "CANCELLED": "cancelled"}
_NOT_PEOPLE = frozenset({"ROOM", "RESOURCE"})
_CONFERENCE_PROPS = (
    "X-MICROSOFT-SKYPETEAMSMEETINGURL",  # Outlook with Teams
    "X-MICROSOFT-ONLINEMEETINGEXTERNALLINK",  # Outlook with Skype for Business
    "X-GOOGLE-CONFERENCE",  # Google Meet
    "CONFERENCE",  # RFC 7986 (Apple, Fastmail)
)
_ALL_DAY_FLAGS = ("X-MICROSOFT-CDO-ALLDAYEVENT", "X-MICROSOFT-MSNCALENDAR-ALLDAYEVENT")
MAX_TEXT = 1000  # summary, location: the Meeting/Activity columns' size
MAX_DESCRIPTION = 100_000
MAX_UID = 500
MAX_RRULE = 1000
MAX_DATES = 1000  # EXDATE/RDATE values kept
MAX_NOTES = 50


def recurrence_key(item: CalendarItem) -> str:
    """The occurrence part of a meeting's key: "" for a series or single event, else the original
    start as a UTC instant ("20261203T090000Z"), or as a date ("20261203") for all-day ones."""
    rid = item.recurrence_id
    if rid is None:
        return ""
    utc = rid.astimezone(UTC) if rid.tzinfo is not None else rid
    if item.recurrence_all_day or (item.all_day and utc.time() == datetime.min.time()):
        return f"{utc.year:04d}{utc.month:02d}{utc.day:02d}"
    return f"{utc.year:04d}{utc.month:02d}{utc.day:02d}T{utc:%H%M%S}Z"


def parse_calendar(data: bytes, *, provider_id: str = "", folder: str = "") -> list[CalendarItem]:
    """One `CalendarItem` per VEVENT of `data` (an iCalendar object, or several concatenated).

    Raises `BadItem("not_icalendar")` when `data` is not iCalendar; never anything else.
    """
    try:
        return _parse_calendar(data, provider_id, folder)
    except BadItem:
        raise
    except Exception as exc:  # the promise above: a bug must not stop capture either
        raise BadItem("not_icalendar", f"calendar could not be read: {exc!r}") from exc


def _parse_calendar(data: bytes, provider_id: str, folder: str) -> list[CalendarItem]:
    notes: list[str] = []
    text = decode_calendar(bytes(data), notes)
    if text is None:
        raise BadItem("not_icalendar", "no BEGIN:VCALENDAR or BEGIN:VEVENT line: not iCalendar")
    top = read_components(text, notes)
    calendars = [c for c in top if c.name == "VCALENDAR"]
    loose = [c for c in top if c.name == "VEVENT"]
    if loose:
        notes.append("VEVENT outside any VCALENDAR")
        calendars.append(Component("VCALENDAR", children=loose))
    if not calendars:
        raise BadItem("not_icalendar", "no VCALENDAR or VEVENT component: not iCalendar")
    items: list[CalendarItem] = []
    skipped = 0
    failed: list[str] = []
    for cal in calendars:
        cal_notes = list(notes)
        method = cal.value("METHOD").strip().upper()
        if method and method not in METHODS:
            cal_notes.append(f"unknown METHOD {method[:40]!r} ignored")
            method = ""
        if cal.dropped.get("VEVENT"):
            cal_notes.append(f"more than {MAX_EVENTS} VEVENTs: {cal.dropped['VEVENT']} ignored")
        resolver = ZoneResolver([c for c in cal.children if c.name == "VTIMEZONE"])
        x_wr = zone_by_name(cal.value("X-WR-TIMEZONE")) if cal.first("X-WR-TIMEZONE") else None
        for event in (c for c in cal.children if c.name == "VEVENT"):
            if len(items) >= MAX_EVENTS:
                skipped += 1
                continue
            try:
                item = _EventReader(event, method, resolver, x_wr, cal_notes).read()
            except Exception as exc:  # one VEVENT that defeats the reader costs only itself
                failed.append(type(exc).__name__)
                continue
            if item is None:
                skipped += 1
                continue
            item.provider_id, item.folder = provider_id, folder
            items.append(item)
    extra = []
    if skipped:
        extra.append(f"{skipped} VEVENT(s) without UID, DTSTART, SUMMARY or people skipped")
    if failed:
        extra.append(f"{len(failed)} unreadable VEVENT(s) skipped ({', '.join(set(failed))})")
    for item in items:
        for note in extra:
            _add_note(item.notes, note)
    return items


def _add_note(notes: list[str], note: str | None) -> None:
    if note and note not in notes and len(notes) < MAX_NOTES:
        notes.append(note)


class _EventReader:
    """Reads one VEVENT; holds what its properties share (zone resolver, notes)."""

    def __init__(
        self,
        event: Component,
        method: str,
        resolver: ZoneResolver,
        x_wr: Zone | None,
        cal_notes: list[str],
    ) -> None:
        self.event = event
        self.method = method
        self.resolver = resolver
        self.x_wr = x_wr
        self.notes: list[str] = []
        for note in cal_notes:
            self.note(note)

    def note(self, note: str | None) -> None:
        _add_note(self.notes, note)

    def text(self, name: str, cap: int = MAX_TEXT) -> str:
        value = unescape_text(self.event.value(name)).strip()
        if len(value) > cap:
            self.note(f"{name} cut to {cap} characters")
            value = value[:cap]
        return value

    def read(self) -> CalendarItem | None:
        ev = self.event
        if not any(ev.first(n) for n in ("UID", "DTSTART", "SUMMARY", "ORGANIZER", "ATTENDEE")):
            return None
        if ev.unclosed:
            self.note("VEVENT without END (truncated?)")
        summary = self.text("SUMMARY")
        participants = self.participants()
        organizer = next((p.address for p in participants if p.role == "organizer"), "")
        start_prop = ev.first("DTSTART")
        start, start_date, time_zone, floating = self.when(start_prop)
        if start_prop is None:
            self.note("missing DTSTART")
        end = self.end(start, start_date)
        if start is not None and not start_date and self.outlook_all_day(start, end):
            # Outlook writes some all-day events as local midnight-to-midnight times.
            start = datetime(start.year, start.month, start.day, tzinfo=UTC)
            end = datetime(end.year, end.month, end.day, tzinfo=UTC) if end else None
            start_date, time_zone = True, None
            self.note("Outlook all-day event written as midnight times")
        rid_prop = ev.first("RECURRENCE-ID")
        recurrence_id, rid_date, _, _ = self.when(rid_prop)
        if rid_prop is not None and rid_prop.params.get("RANGE", "").upper() == "THISANDFUTURE":
            self.note("RANGE=THISANDFUTURE read as this occurrence only")
        location = self.text("LOCATION")
        description = self.text("DESCRIPTION", MAX_DESCRIPTION)
        explicit = [p.value for name in _CONFERENCE_PROPS for p in ev.all(name)]
        url = meeting_url(explicit, ev.value("URL"), location, description) or ""
        method_status = "cancelled" if self.method == "CANCEL" else None
        status_text = ev.value("STATUS").strip().upper()
        status = _STATUSES.get(status_text)
        if status_text and status is None:
            self.note(f"unknown STATUS {status_text[:40]!r} read as confirmed")
        private = ev.value("CLASS").strip().upper() in ("PRIVATE", "CONFIDENTIAL")
        return CalendarItem(
            uid=self.uid(organizer, start_prop, summary),
            method=self.method,
            sequence=self.sequence(),
            dtstamp=self.dtstamp(),
            recurrence_id=recurrence_id,
            recurrence_all_day=rid_date,
            summary=summary,
            start=start,
            end=end,
            time_zone=time_zone,
            all_day=start_date,
            floating=floating,
            location=location,
            online_meeting_url=url,
            status=method_status or status or "confirmed",
            rrule=self.rrule(),
            exdates=self.dates("EXDATE", start, start_date),
            rdates=self.dates("RDATE", start, start_date),
            participants=participants,
            description=description,
            comment="\n".join(unescape_text(p.value).strip() for p in ev.all("COMMENT"))[:MAX_TEXT],
            private=private,
            notes=self.notes,
        )

    def uid(self, organizer: str, start: Prop | None, summary: str) -> str:
        uid = self.event.value("UID").strip()
        if not uid:
            seed = "\x1f".join((organizer, start.value.strip() if start else "", summary))
            self.note("missing UID: synthesised from organizer, DTSTART and SUMMARY")
            return "rapport-" + hashlib.sha256(seed.encode()).hexdigest()[:32] + "@synthetic"
        if len(uid) > MAX_UID:
            self.note(f"UID longer than {MAX_UID} characters: replaced by its SHA-256")
            return "sha256:" + hashlib.sha256(uid.encode()).hexdigest()
        return uid

    def sequence(self) -> int:
        prop = self.event.first("SEQUENCE")
        if prop is None:
            # Outlook keeps its own counter; older Exchange servers omit SEQUENCE but keep it.
            prop = self.event.first("X-MICROSOFT-CDO-APPT-SEQUENCE")
        if prop is None:
            return 0
        value = parse_int(prop.value)
        if value is None or value < 0:
            self.note(f"bad SEQUENCE {prop.value[:40]!r} read as 0")
            return 0
        return min(value, 2**31 - 1)

    def dtstamp(self) -> datetime | None:
        for name in ("DTSTAMP", "LAST-MODIFIED", "CREATED"):
            prop = self.event.first(name)
            when = self.when(prop)[0] if prop is not None else None
            if when is not None:
                if name != "DTSTAMP":
                    self.note(f"missing DTSTAMP: {name} used")
                return when.astimezone(UTC)
        self.note("missing DTSTAMP")
        return None

    def when(self, prop: Prop | None) -> tuple[datetime | None, bool, str | None, bool]:
        """(aware datetime, is a date, IANA zone name, floating) of a DATE/DATE-TIME property."""
        if prop is None:
            return None, False, None, False
        stamp = parse_stamp(prop.value, prop.params.get("VALUE", ""))
        if stamp is None:
            self.note(f"unreadable {prop.name} {prop.value[:40]!r}")
            return None, False, None, False
        if stamp.is_date:
            return stamp.local.replace(tzinfo=UTC), True, None, False
        tzid = prop.params.get("TZID", "").strip()
        if stamp.utc_offset is not None:
            instant = stamp.local.replace(tzinfo=timezone(stamp.utc_offset)).astimezone(UTC)
            named = zone_by_name(tzid) if tzid else None
            if named is not None:
                return instant.astimezone(named.tz), False, named.name, False
            return instant, False, "UTC", False
        if tzid:
            zone = self.resolver.resolve(tzid, stamp.local)
            self.note(zone.note)
            return self.wall(stamp.local, zone.tz), False, zone.name, False
        if self.x_wr is not None:
            # Google exports floating times and names the calendar's zone in X-WR-TIMEZONE.
            self.note("floating time read in the calendar's X-WR-TIMEZONE")
            return self.wall(stamp.local, self.x_wr.tz), False, self.x_wr.name, False
        self.note("floating time")
        return stamp.local.replace(tzinfo=UTC), False, None, True

    def wall(self, local: datetime, tz: tzinfo) -> datetime:
        aware = local.replace(tzinfo=tz)
        real = aware.astimezone(UTC).astimezone(tz)
        if real.replace(tzinfo=None) != local:
            self.note(
                f"local time {local:%Y-%m-%d %H:%M} does not exist (DST gap): read as {real:%H:%M}"
            )
            return real
        return aware

    def end(self, start: datetime | None, start_date: bool) -> datetime | None:
        if start is None:
            return None
        end_prop = self.event.first("DTEND")
        end, end_date, _, _ = self.when(end_prop)
        if end is None and (duration_prop := self.event.first("DURATION")) is not None:
            duration = parse_duration(duration_prop.value)
            if duration is None:
                self.note(f"unreadable DURATION {duration_prop.value[:40]!r}")
            elif start_date:
                end = start + timedelta(days=max(duration.days, 1))
            else:
                end = start + duration
        if end is None:
            # RFC 5545: a dated event lasts the day; a timed one without end is an instant.
            return start + timedelta(days=1) if start_date else start
        if start_date and not end_date:
            end = datetime(end.year, end.month, end.day, tzinfo=UTC)
            self.note("DTEND is a time on an all-day event: its date used")
        elif end_date and not start_date:
            self.note("DTEND is a date on a timed event: ignored")
            return start
        if end < start or (start_date and end == start):
            self.note("DTEND before DTSTART: repaired")
            return start + timedelta(days=1) if start_date else start
        return end

    def outlook_all_day(self, start: datetime, end: datetime | None) -> bool:
        flagged = any(self.event.value(n).strip().upper() == "TRUE" for n in _ALL_DAY_FLAGS)
        midnight = datetime.min.time()
        return (
            flagged
            and start.time() == midnight
            and end is not None
            and end.time() == midnight
            and end > start
        )

    def rrule(self) -> str | None:
        rules = self.event.all("RRULE")
        if not rules:
            return None
        if len(rules) > 1:
            self.note("several RRULEs: only the first kept")
        text = rules[0].value.strip()
        if len(text) > MAX_RRULE:
            self.note("RRULE too long: ignored")
            return None
        return text or None

    def dates(self, name: str, start: datetime | None, start_date: bool) -> list[datetime]:
        found: set[datetime] = set()
        for prop in self.event.all(name):
            for value in prop.value.split(","):
                # RDATE;VALUE=PERIOD:start/end: the start is the occurrence.
                piece = Prop(name, prop.params, value.split("/")[0])
                when, is_date, _, _ = self.when(piece)
                if when is None:
                    continue
                if is_date and start is not None and not start_date:
                    # A date excluding an occurrence of a timed series: that day's occurrence.
                    local = start.replace(year=when.year, month=when.month, day=when.day)
                    when = self.wall(local.replace(tzinfo=None), start.tzinfo or UTC)
                    self.note(f"{name} given as a date on a timed series")
                found.add(when)
                if len(found) >= MAX_DATES:
                    self.note(f"more than {MAX_DATES} {name} values: the rest ignored")
                    return sorted(found)
        return sorted(found)

    def participants(self) -> list[Participant]:
        out: list[Participant] = []
        ev = self.event
        prop = ev.first("ORGANIZER")
        if prop is not None:
            address = address_of(prop.value, prop.params)
            if address is None:
                self.note("ORGANIZER without a usable address")
            else:
                out.append(Participant(address, "organizer", _name(prop, address)))
        seen: set[str] = set()
        unusable = rooms = 0
        for prop in ev.all("ATTENDEE"):
            if prop.params.get("CUTYPE", "").upper() in _NOT_PEOPLE:
                rooms += 1  # meeting rooms and equipment are not contacts
                continue
            address = address_of(prop.value, prop.params)
            if address is None:
                unusable += 1
                continue
            if address in seen:
                continue
            seen.add(address)
            partstat = prop.params.get("PARTSTAT", "").upper()
            response = _RESPONSES.get(partstat, "needs_action")
            out.append(Participant(address, "attendee", _name(prop, address), response))
        for name, count in ev.dropped.items():
            if name == "ATTENDEE":
                kept = len(ev.all("ATTENDEE"))
                self.note(f"{kept + count} attendees: kept the first {kept}")
            elif name == "LINES":
                self.note(f"VEVENT too long: {count} lines ignored")
            else:
                self.note(f"{count} more {name[:40]} ignored")
        if unusable:
            self.note(f"{unusable} attendee(s) without a usable address skipped")
        if rooms:
            self.note(f"{rooms} room/resource attendee(s) skipped")
        return out


def _name(prop: Prop, address: str) -> str:
    name = prop.params.get("CN", "").strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"":
        name = name[1:-1].strip()  # CN='Tom Clark': quotes some producers add around names
    return "" if name.lower() == address else name[:300]
