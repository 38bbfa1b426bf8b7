"""The pure parts of meeting capture: keys, the stored state round trip, levels, occurrences,
and finding the calendar parts of emails."""

from __future__ import annotations

import time
import zoneinfo
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from server.crm.itip import AttendeeState, MeetingState, Proposal, apply
from server.crm.meetings import (
    MEETINGS,
    at_level,
    dump_state,
    load_state,
    meeting_key,
    occurrences,
)
from server.mail_ingest.calendar import parse_calendar, recurrence_key
from server.mail_ingest.mime import calendar_parts, parse_message_and_calendar
from server.mail_ingest.prepare import (
    PrepareOptions,
    carried_calendar,
    mentions_calendar,
    prepare_raw,
)
from server.mail_ingest.sources.files import RawMessage
from tests.support.calendar import calendar_email

DATA = Path(__file__).resolve().parent.parent / "data" / "calendar"
LONDON = zoneinfo.ZoneInfo("Europe/London")
START = datetime(2026, 12, 3, 9, 0, tzinfo=LONDON)


def stored_columns(state: MeetingState) -> dict[str, object]:
    """The Meeting row `MeetingCapture` writes for a state (UTC columns, JSON state)."""
    columns: dict[str, object] = {c.key: None for c in MEETINGS.columns}
    columns.update(
        uid=state.uid,
        recurrence_key=state.recurrence_key,
        sequence=state.sequence,
        dtstamp=state.dtstamp,
        starts_at=state.start.astimezone(UTC) if state.start else None,
        ends_at=state.end.astimezone(UTC) if state.end else None,
        time_zone=state.time_zone,
        all_day=state.all_day,
        location=state.location,
        online_meeting_url=state.online_meeting_url,
        status=state.status,
        rrule=state.rrule,
        exdates=[d.isoformat() for d in state.exdates],
        organizer_address=state.organizer,
        state=dump_state(state),
    )
    return columns


def test_meeting_key_is_uid_and_original_start() -> None:
    [item] = parse_calendar((DATA / "cancel_one_occurrence.ics").read_bytes())
    assert meeting_key(item.uid) == f"ical:{item.uid}|"
    assert meeting_key(item.uid, recurrence_key(item)) == f"ical:{item.uid}|20261210T090000Z"


def test_stored_state_round_trips() -> None:
    state = MeetingState(
        uid="m1@example.com",
        sequence=2,
        dtstamp=datetime(2026, 11, 20, 10, tzinfo=UTC),
        summary="Sync",
        start=START,
        end=START + timedelta(minutes=30),
        time_zone="Europe/London",
        location="Room 1",
        rrule="FREQ=WEEKLY",
        exdates=[START + timedelta(days=7)],
        organizer="anna@northwind.example",
        organizer_name="Anna",
        attendees={
            "tom@contoso.example": AttendeeState(
                "Tom", "accepted", datetime(2026, 11, 21, tzinfo=UTC), 2
            ),
            "priya@fabrikam.example": AttendeeState("Priya"),
        },
        proposals=[
            Proposal(
                "priya@fabrikam.example",
                START + timedelta(hours=2),
                START + timedelta(hours=2, minutes=30),
                datetime(2026, 11, 22, tzinfo=UTC),
                "",
                2,
                True,
            )
        ],
        rdates=[START + timedelta(days=2)],
        answers_from=1,
    )
    loaded = load_state(stored_columns(state), "Sync")
    assert loaded == state
    assert loaded.start is not None and loaded.start.tzinfo == LONDON  # the wall time is kept


def test_stored_derived_and_floating_states_round_trip() -> None:
    floating = MeetingState(
        uid="f@x",
        start=datetime(2026, 12, 3, 9, tzinfo=UTC),
        floating=True,
        placeholder=True,
    )
    assert load_state(stored_columns(floating), "") == floating
    derived = MeetingState(uid="d@x", recurrence_key="20261210T090000Z", derived=True)
    assert load_state(stored_columns(derived), "") == derived


def test_unreadable_json_falls_back_to_the_columns() -> None:
    state = MeetingState(uid="m@x", start=START, time_zone="Europe/London", status="cancelled")
    columns = stored_columns(state)
    columns["state"] = {"attendees": {"x@y": "not a dict"}, "proposals": [1], "start": "junk"}
    loaded = load_state(columns, "")
    assert (loaded.status, loaded.attendees, loaded.proposals) == ("cancelled", {}, [])


@pytest.mark.parametrize(
    ("level", "summary", "location", "description"),
    [
        ("metadata", "", "", ""),
        ("subject", "Weekly sync", "", ""),
        ("full", "Weekly sync", "Microsoft Teams Meeting", ""),
    ],
)
def test_levels_cut_content_never_times_or_people(
    level: str, summary: str, location: str, description: str
) -> None:
    [item] = parse_calendar((DATA / "series_invite.ics").read_bytes())
    lean = at_level(item, level)
    assert (lean.summary, lean.location, lean.description) == (summary, location, description)
    assert bool(lean.online_meeting_url) == (level == "full")
    assert (lean.start, lean.end, lean.participants) == (item.start, item.end, item.participants)


def test_occurrences_lay_exceptions_over_the_rule() -> None:
    items = parse_calendar((DATA / "series_with_moved_exception.ics").read_bytes())
    states = [apply(None, i).state for i in items]
    series = next(s for s in states if s is not None and not s.recurrence_key)
    moved = next(s for s in states if s is not None and s.recurrence_key)
    cancelled = replace(
        moved,
        recurrence_key="20261116T200000Z",
        start=datetime(2026, 11, 16, 20, tzinfo=UTC),
        end=datetime(2026, 11, 16, 21, tzinfo=UTC),
        status="cancelled",
    )
    window = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    plain = occurrences(series, start=window[0], end=window[1])
    shown = occurrences(series, [moved, cancelled], start=window[0], end=window[1])
    assert len(shown) == len(plain)
    by_key = {o.recurrence_key: o for o in shown}
    assert by_key[moved.recurrence_key].start == moved.start != series.start
    assert by_key["20261116T200000Z"].status == "cancelled"
    assert [o.start for o in shown] == sorted(o.start for o in shown)


def test_an_endless_series_yields_a_bounded_list_quickly() -> None:
    series = MeetingState(
        uid="daily@x",
        start=START,
        end=START + timedelta(minutes=15),
        time_zone="Europe/London",
        rrule="FREQ=DAILY",
    )
    started = time.monotonic()
    shown = occurrences(
        series,
        start=datetime(2026, 1, 1, tzinfo=UTC),
        end=datetime(3000, 1, 1, tzinfo=UTC),
        limit=20,
    )
    assert len(shown) == 20 and time.monotonic() - started < 2
    # Across the DST change the wall time stays 09:00 in London.
    assert {o.start.astimezone(LONDON).hour for o in shown} == {9}


# --- calendar parts of emails, found cheaply ---------------------------------------------------

PLAIN = b"From: a@b.example\nTo: c@d.example\nSubject: lunch\n\nSee you at the .ics bar\n"
OUTLOOK_CAPS = (
    b"From: a@b.example\r\nCONTENT-TYPE: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
    b'CONTENT-DISPOSITION: attachment;\r\n\tfilename="Invite.ICS"\r\n\r\nQkVHSU4=\r\n--x--\r\n'
)
CALENDAR_ONLY = (
    b"From: a@b.example\nContent-Type: text/calendar; method=REQUEST\n\nBEGIN:VCALENDAR\n"
)
NEWSLETTER = (
    b"From: a@b.example\nContent-Type: multipart/alternative; boundary=y\n\n--y\n"
    b"Content-Type: text/plain\n\nOur calendar of events is online.\n--y--\n"
)


@pytest.mark.parametrize(
    ("raw", "found"),
    [
        (PLAIN, False),  # single part, not a calendar: the body is not even looked at
        (OUTLOOK_CAPS, True),
        (CALENDAR_ONLY, True),
        (NEWSLETTER, True),  # a false positive costs a look at the MIME tree, nothing more
    ],
)
def test_mentions_calendar(raw: bytes, found: bool) -> None:
    assert mentions_calendar(raw) is found


def outlook_invite(headers: dict[str, str] | None = None) -> bytes:
    """Anna's weekly-sync invite as Outlook sends it: a text/calendar part and invite.ics."""
    return calendar_email(
        (DATA / "series_invite.ics").read_text(),
        sender="anna.berg@northwind.example",
        to=["tom.clark@contoso.example"],
        subject="Weekly sync",
        date=START,
        attach_ics=True,
        headers=headers,
    )


def test_outlooks_two_copies_of_an_invite_are_one_item_and_private_mail_makes_it_private() -> None:
    raw = outlook_invite({"Sensitivity": "Private"})
    options = PrepareOptions("full", frozenset(), frozenset({"anna.berg@northwind.example"}))
    prepared = prepare_raw(RawMessage(raw, "Sent", "1"), options)
    assert prepared.item is not None and prepared.item.calendar == []
    [item] = prepared.calendar
    assert item.uid.endswith("C0FFEE42") and item.private
    assert carried_calendar(NEWSLETTER, prepared.item) == []  # mentions, but has none


@pytest.mark.parametrize("level", ["full", "subject", "metadata"])
def test_every_level_finds_the_invite_the_byte_search_finds(level: str) -> None:
    raw = outlook_invite()
    walked = parse_message_and_calendar(
        raw, want_subject=level != "metadata", want_body=level == "full"
    )[1]
    # The parse hands over the payloads it met on its walk; metadata walks nothing.
    assert walked == (None if level == "metadata" else calendar_parts(raw))
    assert len(calendar_parts(raw)) == 1  # the alternative and invite.ics: the same bytes
    options = PrepareOptions(level, frozenset(), frozenset({"anna.berg@northwind.example"}))
    [item] = prepare_raw(RawMessage(raw, "Sent", "1"), options).calendar
    assert item.uid.endswith("C0FFEE42")
    for plain in (PLAIN, NEWSLETTER):
        assert parse_message_and_calendar(plain)[1] == []
