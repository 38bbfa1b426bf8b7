"""Calendar parsing: producers' quirks from tests/data/calendar, time zones and DST, limits,
occurrence expansion, and fuzzing (nothing but BadItem ever escapes)."""

from __future__ import annotations

import time
import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.mail_ingest import calendar as calendar_module
from server.mail_ingest import calendar_recur
from server.mail_ingest.calendar import expand_occurrences, parse_calendar, recurrence_key
from server.mail_ingest.calendar_tz import windows_zones
from server.mail_ingest.errors import BadItem
from server.mail_ingest.items import CalendarItem

DATA = Path(__file__).resolve().parent.parent / "data" / "calendar"
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def one(data: bytes | str) -> CalendarItem:
    items = parse_calendar(data.encode() if isinstance(data, str) else data)
    assert len(items) == 1, items
    return items[0]


def ics(*event_lines: str, method: str = "REQUEST", head: tuple[str, ...] = ()) -> str:
    """A small calendar around one VEVENT (CRLF, as the RFC wants)."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    lines += [f"METHOD:{method}"] if method else []
    lines += [*head, "BEGIN:VEVENT", *event_lines, "END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(lines)


BASIC = ("UID:u1@example.com", "DTSTAMP:20261120T100000Z", "DTSTART:20261203T090000Z")


def has_note(item: CalendarItem, fragment: str) -> bool:
    return any(fragment in note for note in item.notes)


# --- Fixtures named after the case they cover -----------------------------------------------


@dataclass
class Expect:
    """What the first (or `index`th) item of a fixture must hold; None/empty means unchecked."""

    index: int = 0
    count: int = 1
    method: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    time_zone: str | None = "unchecked"
    all_day: bool = False
    floating: bool = False
    status: str | None = None
    key: str | None = None
    sequence: int | None = None
    rrule: str | None = None
    url_prefix: str | None = None
    people: list[tuple[str, str, str | None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    no_notes: bool = False


FIXTURES: dict[str, Expect] = {
    "outlook_request_w_europe_tz.ics": Expect(
        method="REQUEST",
        start=datetime(2026, 12, 3, 9, tzinfo=BERLIN),
        end=datetime(2026, 12, 3, 10, tzinfo=BERLIN),
        time_zone="Europe/Berlin",
        status="confirmed",
        key="",
        url_prefix="https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc",
        people=[
            ("anna.berg@northwind.example", "organizer", None),
            ("tom.clark@contoso.example", "attendee", "needs_action"),
            ("priya@fabrikam.example", "attendee", "needs_action"),
        ],
        notes=["1 room/resource attendee(s) skipped"],
    ),
    "google_reply_accepted.ics": Expect(
        method="REPLY",
        start=datetime(2026, 12, 3, 9, tzinfo=UTC),
        time_zone="UTC",
        sequence=1,
        people=[
            ("anna.berg@northwind.example", "organizer", None),
            ("tom.clark@contoso.example", "attendee", "accepted"),
        ],
        no_notes=True,
    ),
    "cancel_one_occurrence.ics": Expect(
        method="CANCEL",
        status="cancelled",
        key="20261210T090000Z",
        start=datetime(2026, 12, 10, 10, tzinfo=BERLIN),
        sequence=2,
    ),
    "counter_proposal.ics": Expect(
        method="COUNTER",
        start=datetime(2026, 12, 3, 11, tzinfo=BERLIN),
        end=datetime(2026, 12, 3, 11, 30, tzinfo=BERLIN),
        people=[
            ("anna.berg@northwind.example", "organizer", None),
            ("priya@fabrikam.example", "attendee", "tentative"),
        ],
    ),
    "missing_uid.ics": Expect(notes=["missing UID: synthesised"]),
    "broken_vtimezone.ics": Expect(
        start=datetime(2026, 12, 3, 9, tzinfo=UTC),
        time_zone="UTC",
        notes=["broken VTIMEZONE 'Customized Time Zone': read as UTC"],
    ),
    "custom_vtimezone.ics": Expect(
        start=datetime(2026, 7, 15, 9, tzinfo=BERLIN),
        time_zone="Europe/Berlin",
        notes=["matched to Europe/Berlin by its VTIMEZONE"],
    ),
    "infinite_rrule.ics": Expect(
        method="PUBLISH",
        rrule="FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR",
        time_zone="Europe/Berlin",
        no_notes=True,
    ),
    "floating_time.ics": Expect(
        method="",
        start=datetime(2026, 12, 3, 9, tzinfo=UTC),
        end=datetime(2026, 12, 3, 9, 45, tzinfo=UTC),
        time_zone=None,
        floating=True,
        notes=["floating time"],
    ),
    "all_day_event.ics": Expect(
        start=datetime(2026, 12, 24, tzinfo=UTC),
        end=datetime(2026, 12, 27, tzinfo=UTC),
        time_zone=None,
        all_day=True,
        rrule="FREQ=YEARLY",
        no_notes=True,
    ),
    "series_with_moved_exception.ics": Expect(
        count=2,
        start=datetime(2026, 10, 19, 15, tzinfo=NEW_YORK),
        key="",
        rrule="FREQ=WEEKLY;BYDAY=MO",
        url_prefix="https://meet.google.com/abc-defg-hij",
    ),
    "dst_gap_berlin.ics": Expect(
        start=datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN),
        notes=["does not exist (DST gap): read as 03:30"],
    ),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture(name: str) -> None:
    want = FIXTURES[name]
    items = parse_calendar(load(name), provider_id="p1", folder="Inbox")
    assert len(items) == want.count
    item = items[want.index]
    assert (item.provider_id, item.folder) == ("p1", "Inbox")
    assert item.uid
    if want.method is not None:
        assert item.method == want.method
    if want.start is not None:
        assert item.start == want.start
        assert item.start is not None and item.start.utcoffset() == want.start.utcoffset()
    if want.end is not None:
        assert item.end == want.end
    if want.time_zone != "unchecked":
        assert item.time_zone == want.time_zone
    assert item.all_day is want.all_day
    assert item.floating is want.floating
    if want.status is not None:
        assert item.status == want.status
    if want.key is not None:
        assert recurrence_key(item) == want.key
    if want.sequence is not None:
        assert item.sequence == want.sequence
    if want.rrule is not None:
        assert item.rrule == want.rrule
    if want.url_prefix is not None:
        assert item.online_meeting_url.startswith(want.url_prefix)
    if want.people:
        assert [(p.address, p.role, p.response) for p in item.participants] == want.people
    for fragment in want.notes:
        assert has_note(item, fragment), item.notes
    if want.no_notes:
        assert item.notes == []


def test_every_fixture_is_listed() -> None:
    assert {p.name for p in DATA.glob("*.ics")} - set(FIXTURES) <= {
        "series_invite.ics",
        "series_update_new_time.ics",
        "reply_outdated_sequence.ics",
        "cancel_series.ics",
    }


def test_synthetic_uid_is_stable() -> None:
    first, second = one(load("missing_uid.ics")), one(load("missing_uid.ics"))
    assert first.uid == second.uid and first.uid.startswith("rapport-")
    other = one(load("missing_uid.ics").replace(b"Intro call", b"Other call"))
    assert other.uid != first.uid


def test_moved_exception_is_its_own_key_with_its_own_start() -> None:
    master, moved = parse_calendar(load("series_with_moved_exception.ics"))
    assert (master.uid, recurrence_key(master)) == ("7kq2m0c9l1@google.com", "")
    assert moved.uid == master.uid
    # Original start 9 Nov 15:00 New York (EST, after the DST change) is 20:00 UTC.
    assert recurrence_key(moved) == "20261109T200000Z"
    assert moved.start == datetime(2026, 11, 10, 16, tzinfo=NEW_YORK)
    assert moved.summary == "Pipeline review (moved)"
    assert master.exdates == [datetime(2026, 10, 26, 15, tzinfo=NEW_YORK)]


# --- Time zones ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tzid", "zone", "note"),
    [
        ("W. Europe Standard Time", "Europe/Berlin", None),
        ("Pacific Standard Time", "America/Los_Angeles", None),
        ("GMT Standard Time", "Europe/London", None),
        ("Romance Standard Time", "Europe/Paris", None),
        ("India Standard Time", "Asia/Calcutta", None),
        ("w. europe standard time", "Europe/Berlin", None),
        ("Eastern Standard Time 1", "America/New_York", "read as America/New_York"),
        ('"Europe/Berlin"', "Europe/Berlin", None),
        ("/mozilla.org/20070129_1/Europe/Berlin", "Europe/Berlin", None),
        ("/softwarestudio.org/Olson_20011030_5/America/New_York", "America/New_York", None),
        ("tzone://Microsoft/Utc", "UTC", None),
        ("UTC", "UTC", None),
        # Outlook's display names, quoted as they must be (they hold ':' and ',').
        (
            '"(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna"',
            "Europe/Amsterdam",
            "unknown time zone",
        ),
        ('"(UTC-05:00) Eastern Time (US & Canada)"', "Etc/GMT+5", "unknown time zone"),
        ("Mars Standard Time", "UTC", "unknown time zone 'Mars Standard Time': read as UTC"),
    ],
)
def test_tzid_names(tzid: str, zone: str, note: str | None) -> None:
    item = one(ics("UID:tz@example.com", f"DTSTART;TZID={tzid}:20261203T090000"))
    assert item.time_zone == zone
    assert item.start == datetime(2026, 12, 3, 9, tzinfo=zoneinfo.ZoneInfo(zone))
    if note is None:
        assert item.notes == ["missing DTSTAMP"]
    else:
        assert has_note(item, note), item.notes


def test_every_cldr_windows_zone_resolves() -> None:
    table = windows_zones()
    assert len(table) > 130
    available = zoneinfo.available_timezones()
    assert all(name in available for name in table.values())


def vtimezone(tzid: str, standard: str, daylight: str | None) -> tuple[str, ...]:
    lines = ["BEGIN:VTIMEZONE", f"TZID:{tzid}", "BEGIN:STANDARD", "DTSTART:16010101T030000"]
    lines += [f"TZOFFSETFROM:{daylight or standard}", f"TZOFFSETTO:{standard}"]
    if daylight:
        lines += ["RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10", "END:STANDARD", "BEGIN:DAYLIGHT"]
        lines += ["DTSTART:16010101T020000", f"TZOFFSETFROM:{standard}", f"TZOFFSETTO:{daylight}"]
        lines += ["RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3", "END:DAYLIGHT"]
    else:
        lines += ["END:STANDARD"]
    return (*lines, "END:VTIMEZONE")


@pytest.mark.parametrize(
    ("standard", "daylight", "local", "offset", "zone"),
    [
        # No IANA zone has these offsets: the VTIMEZONE's offset at the event's time, fixed.
        ("+0317", None, datetime(2026, 7, 1, 9), timedelta(hours=3, minutes=17), None),
        ("+0317", "+0417", datetime(2026, 7, 1, 9), timedelta(hours=4, minutes=17), None),
        ("+0317", "+0417", datetime(2026, 1, 10, 9), timedelta(hours=3, minutes=17), None),
        # DST edges read from the VTIMEZONE rules: the gap moves forward, the overlap is early.
        ("+0317", "+0417", datetime(2026, 3, 29, 2, 30), timedelta(hours=3, minutes=17), None),
        ("+0317", "+0417", datetime(2026, 10, 25, 2, 30), timedelta(hours=4, minutes=17), None),
        # A fixed whole-hour offset matches the zone CLDR lists first for it.
        ("+0400", None, datetime(2026, 7, 1, 9), timedelta(hours=4), "Asia/Dubai"),
        # Offsets and rules of a real zone: that zone (Outlook's "Customized Time Zone").
        ("-0500", "-0400", datetime(2026, 7, 1, 9), timedelta(hours=-4), "America/New_York"),
    ],
)
def test_custom_vtimezone(
    standard: str, daylight: str | None, local: datetime, offset: timedelta, zone: str | None
) -> None:
    if zone == "America/New_York":
        # US rules: second Sunday in March, first in November.
        block = [
            line.replace("BYDAY=-1SU;BYMONTH=10", "BYDAY=1SU;BYMONTH=11").replace(
                "BYDAY=-1SU;BYMONTH=3", "BYDAY=2SU;BYMONTH=3"
            )
            for line in vtimezone("Customized Time Zone", standard, daylight)
        ]
    else:
        block = list(vtimezone("Customized Time Zone", standard, daylight))
    item = one(
        ics(
            "UID:custom@example.com",
            f"DTSTART;TZID=Customized Time Zone:{local:%Y%m%dT%H%M%S}",
            head=tuple(block),
        )
    )
    assert item.start is not None
    assert item.start.utcoffset() == offset
    assert item.time_zone == zone
    if local.hour == 2 and local.month == 3:
        assert item.start.astimezone(UTC) == (local - offset).replace(tzinfo=UTC)


def test_dst_edges_iana() -> None:
    # Spring forward in Berlin: 02:30 does not exist; it is 03:30 CEST = 01:30 UTC.
    gap = one(load("dst_gap_berlin.ics"))
    assert gap.start is not None
    assert gap.start.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    # Fall back in Berlin: 02:30 happens twice; the first (CEST) is taken.
    twice = one(ics("UID:x@example.com", "DTSTART;TZID=Europe/Berlin:20261025T023000"))
    assert twice.start is not None
    assert twice.start.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    # New York across spring forward: 01:00 EST to 04:00 EDT is two real hours.
    across = one(
        ics(
            "UID:y@example.com",
            "DTSTART;TZID=Eastern Standard Time:20260308T010000",
            "DTEND;TZID=Eastern Standard Time:20260308T040000",
        )
    )
    assert across.start is not None and across.end is not None
    assert across.end.astimezone(UTC) - across.start.astimezone(UTC) == timedelta(hours=2)


def test_utc_time_with_tzid_keeps_the_instant_and_names_the_zone() -> None:
    item = one(ics("UID:z@example.com", "DTSTART;TZID=Europe/Berlin:20261203T080000Z"))
    assert item.start == datetime(2026, 12, 3, 9, tzinfo=BERLIN)
    assert item.time_zone == "Europe/Berlin"


def test_x_wr_timezone_gives_floating_times_a_zone() -> None:
    item = one(ics(*BASIC[:2], "DTSTART:20261203T090000", head=("X-WR-TIMEZONE:Europe/Berlin",)))
    assert item.start == datetime(2026, 12, 3, 9, tzinfo=BERLIN)
    assert not item.floating and has_note(item, "X-WR-TIMEZONE")


# --- Values and producers' quirks ----------------------------------------------------------


@pytest.mark.parametrize(
    ("partstat", "response"),
    [
        ("ACCEPTED", "accepted"),
        ("TENTATIVE", "tentative"),
        ("DECLINED", "declined"),
        ("NEEDS-ACTION", "needs_action"),
        ("DELEGATED", "delegated"),
        ("accepted", "accepted"),
        ("X-UNKNOWN", "needs_action"),
        (None, "needs_action"),
    ],
)
def test_partstat(partstat: str | None, response: str) -> None:
    param = f";PARTSTAT={partstat}" if partstat else ""
    item = one(ics(*BASIC, f"ATTENDEE{param}:mailto:a@example.com"))
    assert [p.response for p in item.participants] == [response]


@pytest.mark.parametrize(
    ("line", "address", "name"),
    [
        (
            "ATTENDEE;CN=Tom Clark:mailto:Tom.Clark@Contoso.example",
            "tom.clark@contoso.example",
            "Tom Clark",
        ),
        (
            'ATTENDEE;CN="Clark, Tom":MAILTO:tom@contoso.example',
            "tom@contoso.example",
            "Clark, Tom",
        ),
        ("ATTENDEE;CN=^'Sam^' Lee:mailto:sam@example.com", "sam@example.com", '"Sam" Lee'),
        # Apple iCloud: a principal URN with the address in EMAIL.
        ("ATTENDEE;CN=Jo;EMAIL=jo@icloud.com:urn:uuid:5f1c-44", "jo@icloud.com", "Jo"),
        # Some Exchange versions: no scheme at all.
        ("ATTENDEE;CN=Bo:bo@example.com", "bo@example.com", "Bo"),
        ("ATTENDEE:mailto:jo%40example.com", "jo@example.com", ""),
        ("ATTENDEE;CN=x@example.com:mailto:x@example.com", "x@example.com", ""),
    ],
)
def test_addresses(line: str, address: str, name: str) -> None:
    item = one(ics(*BASIC, line))
    assert [(p.address, p.name) for p in item.participants] == [(address, name)]


def test_attendees_deduplicated_and_unusable_ones_noted() -> None:
    item = one(
        ics(
            *BASIC,
            "ORGANIZER:mailto:boss@example.com",
            "ATTENDEE;PARTSTAT=ACCEPTED:mailto:boss@example.com",
            "ATTENDEE:mailto:a@example.com",
            "ATTENDEE:MAILTO:A@example.com",
            "ATTENDEE:mailto:not an address",
            "ATTENDEE;CUTYPE=RESOURCE:mailto:projector@example.com",
        )
    )
    assert [(p.address, p.role) for p in item.participants] == [
        ("boss@example.com", "organizer"),
        ("boss@example.com", "attendee"),
        ("a@example.com", "attendee"),
    ]
    assert has_note(item, "1 attendee(s) without a usable address")
    assert has_note(item, "1 room/resource attendee(s) skipped")


@pytest.mark.parametrize(
    ("lines", "url"),
    [
        (("X-MICROSOFT-SKYPETEAMSMEETINGURL:https://teams.microsoft.com/l/meetup-join/1",),
         "https://teams.microsoft.com/l/meetup-join/1"),
        (("X-GOOGLE-CONFERENCE:https://meet.google.com/abc-defg-hij",),
         "https://meet.google.com/abc-defg-hij"),
        (("LOCATION:https://us02web.zoom.us/j/8123456789?pwd=abc",),
         "https://us02web.zoom.us/j/8123456789?pwd=abc"),
        (("DESCRIPTION:Join Zoom Meeting\\nhttps://acme.zoom.us/j/555 (passcode 1)",),
         "https://acme.zoom.us/j/555"),
        # Outlook Safe Links wrap the Teams link in the description.
        (("DESCRIPTION:Join: <https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2F"
          "teams.microsoft.com%2Fl%2Fmeetup-join%2F42&data=x>",),
         "https://teams.microsoft.com/l/meetup-join/42"),
        (("URL:https://example.com/event/1", "LOCATION:https://meet.google.com/xyz-abcd-efg"),
         "https://meet.google.com/xyz-abcd-efg"),
        (("URL:https://example.com/event/1",), "https://example.com/event/1"),
        (("LOCATION:Room 4 https://example.com/not-a-meeting",), ""),
    ],
)  # fmt: skip
def test_online_meeting_url(lines: tuple[str, ...], url: str) -> None:
    assert one(ics(*BASIC, *lines)).online_meeting_url == url


@pytest.mark.parametrize(
    ("method", "status", "want"),
    [
        ("REQUEST", "TENTATIVE", "tentative"),
        ("REQUEST", "CANCELLED", "cancelled"),
        ("REQUEST", None, "confirmed"),
        ("CANCEL", None, "cancelled"),
        ("CANCEL", "CONFIRMED", "cancelled"),
        ("PUBLISH", "BOGUS", "confirmed"),
    ],
)
def test_status(method: str, status: str | None, want: str) -> None:
    extra = (f"STATUS:{status}",) if status else ()
    assert one(ics(*BASIC, *extra, method=method)).status == want


def test_unknown_method_is_empty_with_a_note() -> None:
    item = one(ics(*BASIC, method="X-WHATEVER"))
    assert item.method == "" and has_note(item, "unknown METHOD")


def test_outlook_all_day_written_as_midnights() -> None:
    item = one(
        ics(
            *BASIC[:2],
            "DTSTART;TZID=W. Europe Standard Time:20261224T000000",
            "DTEND;TZID=W. Europe Standard Time:20261225T000000",
            "X-MICROSOFT-CDO-ALLDAYEVENT:TRUE",
        )
    )
    assert item.all_day and item.time_zone is None
    assert (item.start, item.end) == (
        datetime(2026, 12, 24, tzinfo=UTC),
        datetime(2026, 12, 25, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("lines", "start", "end", "note"),
    [
        (("DTSTART:20261203T090000Z", "DURATION:PT1H30M"),
         datetime(2026, 12, 3, 9, tzinfo=UTC), datetime(2026, 12, 3, 10, 30, tzinfo=UTC), None),
        (("DTSTART:20261203T090000Z",),
         datetime(2026, 12, 3, 9, tzinfo=UTC), datetime(2026, 12, 3, 9, tzinfo=UTC), None),
        (("DTSTART;VALUE=DATE:20261203",),
         datetime(2026, 12, 3, tzinfo=UTC), datetime(2026, 12, 4, tzinfo=UTC), None),
        (("DTSTART:20261203", "DURATION:P2D"),
         datetime(2026, 12, 3, tzinfo=UTC), datetime(2026, 12, 5, tzinfo=UTC), None),
        (("DTSTART:20261203T090000Z", "DTEND:20261203T080000Z"),
         datetime(2026, 12, 3, 9, tzinfo=UTC), datetime(2026, 12, 3, 9, tzinfo=UTC),
         "DTEND before DTSTART"),
        (("DTSTART:20261203T090000Z", "DTEND:garbage"),
         datetime(2026, 12, 3, 9, tzinfo=UTC), datetime(2026, 12, 3, 9, tzinfo=UTC),
         "unreadable DTEND"),
        (("DTSTART:2026-12-03T09:00:00Z",),
         datetime(2026, 12, 3, 9, tzinfo=UTC), datetime(2026, 12, 3, 9, tzinfo=UTC), None),
        (("DTSTART:20261203T090060Z",),
         datetime(2026, 12, 3, 9, 0, 59, tzinfo=UTC), None, None),
        (("DTSTART:20261303T090000Z", "SUMMARY:x"), None, None, "unreadable DTSTART"),
        (("SUMMARY:no start",), None, None, "missing DTSTART"),
    ],
)  # fmt: skip
def test_start_and_end(
    lines: tuple[str, ...], start: datetime | None, end: datetime | None, note: str | None
) -> None:
    item = one(ics("UID:t@example.com", "DTSTAMP:20261120T100000Z", *lines))
    assert item.start == start
    if end is not None or start is None:
        assert item.end == end
    if note:
        assert has_note(item, note), item.notes


def test_exdates_rdates_and_recurrence_ids() -> None:
    item = one(
        ics(
            "UID:r@example.com",
            "DTSTART;TZID=Europe/Berlin:20261203T090000",
            "RRULE:FREQ=DAILY",
            "EXDATE;TZID=Europe/Berlin:20261204T090000,20261205T090000",
            "EXDATE;VALUE=DATE:20261206",
            "RDATE;VALUE=PERIOD:20261231T120000Z/PT1H",
        )
    )
    assert item.exdates == [datetime(2026, 12, d, 9, tzinfo=BERLIN) for d in (4, 5, 6)]
    assert item.rdates == [datetime(2026, 12, 31, 12, tzinfo=UTC)]
    assert has_note(item, "EXDATE given as a date on a timed series")
    day = one(
        ics("UID:r@example.com", "RECURRENCE-ID;VALUE=DATE:20261224", "DTSTART;VALUE=DATE:20261224")
    )
    assert recurrence_key(day) == "20261224" and day.recurrence_all_day
    moved = one(
        ics("UID:r@example.com", "RECURRENCE-ID;VALUE=DATE:20261224", "DTSTART:20261224T100000Z")
    )
    assert recurrence_key(moved) == "20261224"
    future = one(ics(*BASIC, "RECURRENCE-ID;RANGE=THISANDFUTURE:20261210T090000Z"))
    assert recurrence_key(future) == "20261210T090000Z" and has_note(future, "THISANDFUTURE")


def test_sequence_dtstamp_text_and_class() -> None:
    item = one(
        ics(
            "UID:s@example.com",
            "SEQUENCE:-3",
            "LAST-MODIFIED:20261120T100000Z",
            "DTSTART:20261203T090000Z",
            "SUMMARY:Q4\\, planning\\; part 1\\nand more",
            "CLASS:PRIVATE",
            "COMMENT:See you",
        )
    )
    assert item.sequence == 0 and has_note(item, "bad SEQUENCE")
    assert item.dtstamp == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert has_note(item, "missing DTSTAMP: LAST-MODIFIED used")
    assert item.summary == "Q4, planning; part 1\nand more"
    assert item.private and item.comment == "See you"
    outlook = one(ics("UID:s@example.com", "X-MICROSOFT-CDO-APPT-SEQUENCE:4", "DTSTART:20261203"))
    assert outlook.sequence == 4
    long_uid = one(ics("UID:" + "x" * 600, "DTSTART:20261203"))
    assert long_uid.uid.startswith("sha256:") and has_note(long_uid, "UID longer")


@pytest.mark.parametrize(
    ("data", "note"),
    [
        # Bare LF line ends (Apple, Google, Unix tools).
        (ics(*BASIC, "SUMMARY:LF").replace("\r\n", "\n").encode(), None),
        # Folded inside a UTF-8 sequence (Outlook folds at 75 octets): "Müller".
        (ics(*BASIC).replace("UID:u1", "SUMMARY:M\xfcller\r\nUID:u1").encode().replace(
            b"M\xc3\xbcller", b"M\xc3\r\n \xbcller"), None),
        (ics(*BASIC, "SUMMARY:M\xfcller").encode("utf-16"), "UTF-16"),
        (ics(*BASIC, "SUMMARY:M\xfcller").encode("cp1252"), "Windows-1252"),
        (("\ufeff" + ics(*BASIC, "SUMMARY:M\xfcller")).encode(), None),
        (ics(*BASIC, "SUMMARY:M\xfcller").replace("END:VEVENT\r\nEND:VCALENDAR\r\n", "").encode(),
         "without END:VCALENDAR"),
        (ics(*BASIC, "SUMMARY:M\xfcller", "this is not a property").encode(), "1 line(s)"),
        (ics(*BASIC, "SUMMARY:M\xfcller", "END:VALARM").encode(), "mismatched END"),
        ("\r\n".join(["BEGIN:VEVENT", *BASIC, "SUMMARY:M\xfcller", "END:VEVENT"]).encode(),
         "outside any VCALENDAR"),
    ],
)  # fmt: skip
def test_encodings_and_broken_structure(data: bytes, note: str | None) -> None:
    item = one(data)
    assert item.uid == "u1@example.com"
    assert item.start == datetime(2026, 12, 3, 9, tzinfo=UTC)
    if "SUMMARY" in data.decode("utf-16" if data[:2] == b"\xff\xfe" else "latin-1"):
        assert item.summary in ("M\xfcller", "LF")
    if note:
        assert has_note(item, note), item.notes


def test_valarm_properties_stay_out_of_the_event() -> None:
    item = one(
        ics(
            *BASIC,
            "SUMMARY:Event",
            "BEGIN:VALARM",
            "DESCRIPTION:Reminder",
            "SUMMARY:Alarm",
            "END:VALARM",
            "DESCRIPTION:Real",
        )
    )
    assert (item.summary, item.description) == ("Event", "Real")


def test_empty_event_is_skipped_and_noted() -> None:
    data = ics(*BASIC).replace("BEGIN:VEVENT", "BEGIN:VEVENT\r\nEND:VEVENT\r\nBEGIN:VEVENT")
    item = one(data)
    assert has_note(item, "1 VEVENT(s) without UID")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        b"%PDF-1.7\n\x00\x01",
        b"From: a@b.c\r\nSubject: hi\r\n\r\nBEGIN:VCALENDAR? no",
    ],
)
def test_not_icalendar(data: bytes) -> None:
    with pytest.raises(BadItem) as raised:
        parse_calendar(data)
    assert raised.value.reason == "not_icalendar"


def test_calendar_without_events() -> None:
    assert (
        parse_calendar(b"BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:x\r\nEND:VTODO\r\nEND:VCALENDAR")
        == []
    )


# --- Limits -------------------------------------------------------------------------------


def test_ten_thousand_attendees() -> None:
    # Named like the fixtures (ten_thousand_attendees.ics) but generated: 1.2 MB is no fixture.
    people = [
        f"ATTENDEE;CN=Person {i};PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:p{i}@example.com"
        for i in range(10_000)
    ]
    data = ics(*BASIC, "ORGANIZER:mailto:ceo@example.com", *people, method="REQUEST").encode()
    started = time.perf_counter()
    item = one(data)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, elapsed
    attendees = [p for p in item.participants if p.role == "attendee"]
    assert len(attendees) == 2000 and attendees[-1].address == "p1999@example.com"
    assert has_note(item, "10000 attendees: kept the first 2000")


def test_at_most_500_events() -> None:
    events = "".join(
        f"BEGIN:VEVENT\r\nUID:e{i}\r\nDTSTART:20261203T090000Z\r\nEND:VEVENT\r\n"
        for i in range(600)
    )
    items = parse_calendar(f"BEGIN:VCALENDAR\r\n{events}END:VCALENDAR\r\n".encode())
    assert len(items) == 500 and has_note(items[0], "100 ignored")
    twice = parse_calendar(f"BEGIN:VCALENDAR\r\n{events}END:VCALENDAR\r\n".encode() * 2)
    assert len(twice) == 500


def test_input_capped_at_10_mb() -> None:
    padding = "X-PAD:" + "x" * 70 + "\r\n"
    data = ics(*BASIC, padding * (11 * 1024 * 1024 // len(padding))).encode()
    item = one(data)
    assert has_note(item, "input capped at 10 MB") and has_note(item, "without END")


def test_deep_nesting_is_bounded() -> None:
    nested = "BEGIN:X\r\n" * 5000 + "END:X\r\n" * 5000
    item = one(ics(*BASIC).replace("END:VEVENT", nested + "END:VEVENT"))
    assert item.uid == "u1@example.com"


# --- Occurrences ---------------------------------------------------------------------------


def expand(
    item: CalendarItem, *, start: datetime, end: datetime, limit: int = 500
) -> list[tuple[datetime, datetime | None]]:
    """`expand_occurrences` without its last-resort net, so a bug shows up as the bug it is."""
    strict = calendar_recur._expand(item, start, end, limit)
    assert strict == expand_occurrences(item, start=start, end=end, limit=limit)
    return strict


def test_expand_infinite_rrule_honours_exdates() -> None:
    item = one(load("infinite_rrule.ics"))
    window = (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    started = time.perf_counter()
    found = expand(item, start=window[0], end=window[1])
    assert time.perf_counter() - started < 0.5
    weekdays = [d for d in range(1, 32) if datetime(2026, 12, d).weekday() < 5]
    want = [datetime(2026, 12, d, 9, 15, tzinfo=BERLIN) for d in weekdays if d not in (24, 25)]
    assert [start for start, _ in found] == want
    assert all(end - start == timedelta(minutes=15) for start, end in found if end)
    assert len(expand(item, start=window[0], end=window[1], limit=3)) == 3


def test_expand_keeps_wall_time_across_dst() -> None:
    master = parse_calendar(load("series_with_moved_exception.ics"))[0]
    found = expand(
        master, start=datetime(2026, 10, 1, tzinfo=UTC), end=datetime(2026, 11, 24, tzinfo=UTC)
    )
    starts = [start for start, _ in found]
    # 26 Oct is excluded; 9 Nov is still the series' (the moved exception is laid over it).
    assert [s.day for s in starts] == [19, 2, 9, 16, 23]
    assert all(s.hour == 15 and s.tzinfo is NEW_YORK for s in starts)
    assert [s.utcoffset() for s in starts] == [timedelta(hours=-4)] + [timedelta(hours=-5)] * 4
    berlin = one(
        ics(
            "UID:b@example.com",
            "DTSTART;TZID=Europe/Berlin:20260326T023000",
            "RRULE:FREQ=DAILY;COUNT=4",
        )
    )
    days = expand(
        berlin, start=datetime(2026, 3, 1, tzinfo=UTC), end=datetime(2026, 4, 1, tzinfo=UTC)
    )
    # 29 March 02:30 does not exist in Berlin: that occurrence is at 03:30 CEST.
    assert [(s.day, s.hour) for s, _ in days] == [(26, 2), (27, 2), (28, 2), (29, 3)]


@pytest.mark.parametrize(
    ("lines", "window", "count"),
    [
        (("DTSTART;VALUE=DATE:20261224", "RRULE:FREQ=YEARLY"), (2027, 2031), 4),
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=WEEKLY;COUNT=3"), (2026, 2028), 3),
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=WEEKLY;UNTIL=20261217T090000Z"), (2026, 2028), 3),
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=WEEKLY;UNTIL=20261217"), (2026, 2028), 3),
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=WEEKLY;COUNT=5;UNTIL=20261217T090000Z"),
         (2026, 2028), 3),
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=MONTHLY;BYDAY=-1FR"), (2027, 2028), 12),
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"),
         (2027, 2028), 12),
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=YEARLY;INTERVAL=2;BYMONTH=3;BYDAY=2SU"),
         (2027, 2033), 3),
        (("DTSTART:20000229T090000Z", "RRULE:FREQ=YEARLY"), (2026, 2033), 2),
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=DAILY;INTERVAL=3"), (2100, 2101), 121),
        (("DTSTART:16010101T090000Z", "RRULE:FREQ=DAILY"), (2026, 2027), 365),
        (("DTSTART:20261203T090000Z",), (2026, 2027), 1),
        (("DTSTART:20261203T090000Z",), (2027, 2028), 0),
        (("DTSTART:20261203T090000Z", "RDATE:20270105T090000Z"), (2026, 2028), 2),
        # Valid rules no date satisfies: DTSTART alone (RFC 5545 counts it).
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"), (2026, 2030), 1),
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=31"), (2026, 2030), 1),
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6"), (2026, 2030), 1),
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=YEARLY;BYYEARDAY=1;BYMONTH=2"), (2026, 2030), 1),
        # Malformed or unsupported rules: nothing.
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=FORTNIGHTLY"), (2026, 2030), 0),
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=DAILY;BYHOUR=25"), (2026, 2030), 0),
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=DAILY;COUNT=0"), (2026, 2030), 0),
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=DAILY;UNTIL=tomorrow"), (2026, 2030), 0),
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=MONTHLY;BYDAY=10MO"), (2026, 2030), 0),
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=DAILY;BYDAY=MO;BYDAY=TU"), (2026, 2030), 0),
        (("DTSTART:20261203T090000Z", "RRULE:FREQ=MINUTELY;BYSECOND=0,1,2,3,4,5,6,7,8,9,10,11,"
          "12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,"
          "41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59;BYHOUR=1,2"), (2026, 2030), 0),
        (("DTSTART:20261203T090000Z", "RRULE:garbage"), (2026, 2030), 0),
        # A counted series that began in year 1 is not walked to the window.
        (("DTSTART:00010101T090000Z", "RRULE:FREQ=DAILY;COUNT=99999999"), (2026, 2027), 0),
    ],
)  # fmt: skip
def test_expand(lines: tuple[str, ...], window: tuple[int, int], count: int) -> None:
    item = one(ics("UID:x@example.com", *lines))
    lo = datetime(window[0], 1, 1, tzinfo=UTC)
    hi = datetime(window[1], 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    found = expand(item, start=lo, end=hi)
    assert time.perf_counter() - started < 2.0
    assert len(found) == count, found
    assert all(lo <= s < hi for s, _ in found)
    assert [s for s, _ in found] == sorted(s for s, _ in found)


def test_expand_edge_inputs() -> None:
    item = one(load("infinite_rrule.ics"))
    lo, hi = datetime(2026, 12, 1), datetime(2026, 12, 8)  # naive: read as UTC
    assert len(expand(item, start=lo, end=hi)) == 5
    assert expand(item, start=hi, end=lo) == []
    assert expand(item, start=lo, end=hi, limit=0) == []
    assert expand(CalendarItem(uid="x", method=""), start=lo, end=hi) == []
    far = datetime(9999, 1, 1, tzinfo=UTC)
    assert expand(item, start=datetime(9998, 1, 1, tzinfo=UTC), end=far) == []


# --- Fuzzing ------------------------------------------------------------------------------

SAMPLES = [load(name) for name in sorted(FIXTURES)]
VOCABULARY = [
    "BEGIN:VCALENDAR", "END:VCALENDAR", "BEGIN:VEVENT", "END:VEVENT", "BEGIN:VTIMEZONE",
    "END:VTIMEZONE", "BEGIN:STANDARD", "END:STANDARD", "BEGIN:DAYLIGHT", "END:DAYLIGHT",
    "METHOD:CANCEL", "METHOD:REPLY", "UID:x", "DTSTART:20261203T090000Z", "DTSTART;VALUE=DATE:2026",
    "DTSTART;TZID=X:20260329T023000", "DTEND;TZID=W. Europe Standard Time:20261203T100000",
    "TZID:X", "TZOFFSETFROM:+0100", "TZOFFSETTO:+0200", "TZOFFSETTO:-2400", "DTSTART:16010101T020000",
    "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3", "RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
    "RDATE:20260101T000000,bad", "RECURRENCE-ID;VALUE=DATE:20261224", "DURATION:P99999999W",
    "ATTENDEE;CN=\"a:b\";PARTSTAT=ACCEPTED:mailto:a@b.example", "ORGANIZER:MAILTO:", "SEQUENCE:999999999999",
    "EXDATE;VALUE=DATE:20261203", "X-MICROSOFT-CDO-ALLDAYEVENT:TRUE", "DTSTAMP:99991231T235960Z",
    "STATUS:CANCELLED", "LOCATION:https://zoom.us/j/1", "X-WR-TIMEZONE:Nowhere/Else", " folded",
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "line"]))
        if kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif kind == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        else:
            data[at:at] = (draw(st.sampled_from(VOCABULARY)) + "\r\n").encode()
    return bytes(data)


def parse_strictly(data: bytes) -> list[CalendarItem]:
    """The parser without its last-resort net, so a bug shows up as the bug it is."""
    reason = ""
    try:
        return calendar_module._parse_calendar(data, "", "")
    except BadItem as exc:
        reason = exc.reason
    assert reason == "not_icalendar"
    return []


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    parse_strictly(data)
    parse_strictly(b"BEGIN:VCALENDAR\r\n" + data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fuzz_mutated_calendars(data: bytes) -> None:
    for item in parse_strictly(data):
        assert item.uid
        assert not any("unreadable VEVENT" in note for note in item.notes)
        expand(
            item,
            start=datetime(2026, 1, 1, tzinfo=UTC),
            end=datetime(2027, 1, 1, tzinfo=UTC),
            limit=50,
        )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(VOCABULARY), max_size=40))
def test_fuzz_calendar_shaped_text(lines: list[str]) -> None:
    parse_strictly("\r\n".join(["BEGIN:VCALENDAR", "BEGIN:VEVENT", *lines]).encode())


RULE_PARTS = st.one_of(
    st.sampled_from(["FREQ=YEARLY", "FREQ=MONTHLY", "FREQ=WEEKLY", "FREQ=DAILY", "FREQ=HOURLY",
                     "FREQ=MINUTELY", "FREQ=SECONDLY", "FREQ=NEVER", "WKST=SU", "WKST=XX"]),
    st.builds(lambda k, v: f"{k}={v}",
              st.sampled_from(["INTERVAL", "COUNT", "BYMONTH", "BYMONTHDAY", "BYYEARDAY",
                               "BYWEEKNO", "BYSETPOS", "BYHOUR", "BYMINUTE", "BYSECOND"]),
              st.lists(st.one_of(st.integers(-60, 60), st.integers(-400, 400)), min_size=1, max_size=4).map(
                  lambda xs: ",".join(map(str, xs)))),
    st.builds(lambda n, d: f"BYDAY={n}{d}", st.sampled_from(["", "1", "-1", "5", "+2", "53", "0"]),
              st.sampled_from(["MO", "SU", "XX"])),
    st.sampled_from(["UNTIL=20270101T000000Z", "UNTIL=20261201", "UNTIL=2026", "X-FOO=1", "=", ""]),
    st.text(max_size=10),
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.lists(RULE_PARTS, max_size=6),
    st.sampled_from(["DTSTART:20261203T090000Z", "DTSTART;VALUE=DATE:20240229",
                     "DTSTART;TZID=Europe/Berlin:20260329T023000", "DTSTART:20261203T090000"]),
    st.integers(0, 30),
)  # fmt: skip
def test_fuzz_expand_random_rules(parts: list[str], start: str, limit: int) -> None:
    item = one(ics("UID:f@example.com", start))
    item.rrule = ";".join(parts)
    started = time.perf_counter()
    found = expand(
        item,
        start=datetime(2026, 1, 1, tzinfo=UTC),
        end=datetime(2028, 1, 1, tzinfo=UTC),
        limit=limit,
    )
    assert time.perf_counter() - started < 3.0
    assert len(found) <= limit
    assert all(s.tzinfo is not None for s, _ in found)


def test_parse_calendar_turns_internal_errors_into_bad_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(data: bytes, notes: list[str]) -> str:
        raise RuntimeError("bug")

    monkeypatch.setattr(calendar_module, "decode_calendar", broken)
    with pytest.raises(BadItem):
        parse_calendar(b"BEGIN:VCALENDAR")


def test_fixed_offset_zone_type() -> None:
    item = one(ics("UID:o@example.com", "DTSTART:20261203T090000+0530"))
    assert item.start == datetime(2026, 12, 3, 3, 30, tzinfo=UTC)
    assert item.start is not None and item.start.tzinfo is UTC
    assert item.time_zone == "UTC"


@st.composite
def valid_rules(draw: st.DrawFn) -> str:
    freq = draw(st.sampled_from(["YEARLY", "MONTHLY", "WEEKLY", "DAILY"]))
    parts = [f"FREQ={freq}", f"INTERVAL={draw(st.integers(1, 5))}"]
    days = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
    if draw(st.booleans()):
        chosen = draw(st.lists(st.sampled_from(days), min_size=1, max_size=3, unique=True))
        if freq in ("MONTHLY", "YEARLY") and draw(st.booleans()):
            chosen = [f"{draw(st.sampled_from([1, 2, -1, 4]))}{d}" for d in chosen]
        parts.append("BYDAY=" + ",".join(chosen))
    if draw(st.booleans()):
        parts.append(f"BYMONTHDAY={draw(st.sampled_from([1, 2, 15, 28, 31, -1]))}")
    if draw(st.booleans()):
        parts.append(f"BYMONTH={draw(st.integers(1, 12))}")
    if draw(st.booleans()):
        parts.append(f"BYSETPOS={draw(st.sampled_from([1, 2, -1]))}")
    if draw(st.booleans()):
        parts.append(f"WKST={draw(st.sampled_from(days))}")
    if draw(st.booleans()):
        parts.append(f"COUNT={draw(st.integers(1, 300))}")
    return ";".join(parts)


@settings(max_examples=200, deadline=None)
@given(
    valid_rules(),
    st.datetimes(datetime(2015, 1, 1), datetime(2027, 1, 1)).map(lambda d: d.replace(second=0)),
    st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1)),
    st.integers(1, 400),
)
def test_expand_matches_plain_dateutil(rule: str, first: datetime, lo: datetime, days: int) -> None:
    """Starting the walk at the window (with DTSTART's defaults made explicit) changes nothing.

    The reference walks from the real DTSTART. Both run 400-year cycles ahead (which changes no
    date), so that a rule no date satisfies ends at year 9999 within a few centuries.
    """
    from dateutil.rrule import rrulestr  # type: ignore[import-untyped, unused-ignore]

    item = CalendarItem(uid="u", method="", start=first.replace(tzinfo=BERLIN), rrule=rule)
    window = (lo.replace(tzinfo=UTC), (lo + timedelta(days=days)).replace(tzinfo=UTC))
    found = [s for s, _ in expand(item, start=window[0], end=window[1], limit=10_000)]
    years = 400 * ((9990 - window[1].year) // 400)
    plain = rrulestr(rule, dtstart=first.replace(year=first.year + years))
    before, after = lo - timedelta(days=2), lo + timedelta(days=days + 2)
    between = plain.between(
        before.replace(year=before.year + years), after.replace(year=after.year + years), inc=True
    )
    local = [first, *(d.replace(year=d.year - years) for d in between)]
    want = sorted(
        {s for d in local if window[0] <= (s := calendar_recur._aware(d, BERLIN)) < window[1]}
    )
    assert found == want
