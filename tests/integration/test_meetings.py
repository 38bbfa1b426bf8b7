"""Calendar capture through `rapport import`, on both databases: invites in emails and .ics files
become one meeting per event, in its final state whatever the arrival order, under the rules."""

from __future__ import annotations

import base64
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from server.config import Settings
from server.crm.meetings import meeting_key, meeting_state, occurrences
from server.crm.rule_admin import add_rule
from server.crm.trace import explain
from server.db import Database
from server.mail_ingest.importer import ImportResult, import_files
from server.mail_ingest.worker import capture_drop
from server.models import (
    Activity,
    ActivityParticipant,
    CaptureDecision,
    ContactEmail,
    MailboxLink,
    MailboxObservation,
    Meeting,
    QuarantinedItem,
)
from tests.conftest import Cli
from tests.support.calendar import LONDON, calendar_email, ics
from tests.support.mail import write_maildir

DATA = Path(__file__).resolve().parent.parent / "data" / "calendar"
ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
CLARA = "clara@brightline-dental.co.uk"
TOM = "tom@kestrelmoor-logistik.de"
UID = "040000008200E00074C5B7101A82E00800000000A11CE5EE@northwind-supplies.com"
ORGANIZER = ("Anna Berg", ANNA)
PEOPLE = {CLARA: ("Clara Jensen", "NEEDS-ACTION"), TOM: ("Tom Weber", "NEEDS-ACTION")}
FIRST = datetime(2026, 12, 3, 9, 0, tzinfo=LONDON)  # a Thursday
MOVED = FIRST + timedelta(hours=1)
TEAMS = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_sync%40thread.v2/0"
SERIES = {"rrule": "FREQ=WEEKLY;BYDAY=TH;COUNT=10", "location": "Teams", "url": TEAMS}


def stamp(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def organizer_mail(calendar: str, subject: str, when: datetime) -> bytes:
    return calendar_email(
        calendar, sender=f"Anna Berg <{ANNA}>", to=[CLARA, TOM], subject=subject, date=when
    )


def attendee_mail(calendar: str, sender: str, subject: str, when: datetime) -> bytes:
    return calendar_email(calendar, sender=sender, to=[ANNA], subject=subject, date=when)


def life_of_a_meeting() -> dict[str, bytes]:
    """Invite → update (new time) → Clara accepts → Tom proposes 11:00 → one occurrence
    cancelled → the series cancelled, as the emails in Anna's mailbox."""
    invite = ics(
        "REQUEST",
        uid=UID,
        organizer=ORGANIZER,
        attendees=PEOPLE,
        stamp=stamp(20, 10),
        start=FIRST,
        description="Agenda: open orders",
        **SERIES,  # type: ignore[arg-type]
    )
    update = ics(
        "REQUEST",
        uid=UID,
        organizer=ORGANIZER,
        attendees=PEOPLE,
        stamp=stamp(21, 9),
        sequence=1,
        start=MOVED,
        description="Agenda: open orders (moved to 10)",
        **SERIES,  # type: ignore[arg-type]
    )
    accept = ics(
        "REPLY",
        uid=UID,
        organizer=ORGANIZER,
        attendees={CLARA: ("Clara Jensen", "ACCEPTED")},
        stamp=stamp(21, 12),
        sequence=1,
        start=MOVED,
        rrule=SERIES["rrule"],
    )
    counter = ics(
        "COUNTER",
        uid=UID,
        organizer=ORGANIZER,
        attendees={TOM: ("Tom Weber", "TENTATIVE")},
        stamp=stamp(22, 8),
        sequence=1,
        start=MOVED + timedelta(hours=1),
        comment="Could we start at 11? I have a delivery at 10.",
    )
    cancelled_people = {**PEOPLE, CLARA: ("Clara Jensen", "ACCEPTED")}
    cancel_one = ics(
        "CANCEL",
        uid=UID,
        organizer=ORGANIZER,
        attendees=cancelled_people,
        stamp=stamp(25, 15),
        sequence=2,
        start=MOVED + timedelta(days=7),
        recurrence_id=MOVED + timedelta(days=7),
        summary="Canceled: Weekly sync",
        status="CANCELLED",
    )
    cancel_all = ics(
        "CANCEL",
        uid=UID,
        organizer=ORGANIZER,
        attendees=cancelled_people,
        stamp=stamp(28, 9),
        sequence=3,
        start=MOVED,
        rrule=SERIES["rrule"],
        summary="Canceled: Weekly sync",
        status="CANCELLED",
    )
    return {
        "invite": organizer_mail(invite, "Weekly sync", stamp(20, 10)),
        "update": organizer_mail(update, "Weekly sync (updated)", stamp(21, 9)),
        "accept": attendee_mail(
            accept, f"Clara Jensen <{CLARA}>", "Accepted: Weekly sync", stamp(21, 12)
        ),
        "counter": attendee_mail(
            counter, f"Tom Weber <{TOM}>", "New Time Proposed: Weekly sync", stamp(22, 8)
        ),
        "cancel_one": organizer_mail(cancel_one, "Canceled: Weekly sync", stamp(25, 15)),
        "cancel_all": organizer_mail(cancel_all, "Canceled: Weekly sync", stamp(28, 9)),
    }


OCCURRENCE_KEY = "20261210T100000Z"  # the original start of the cancelled occurrence, in UTC
EXPECTED_FINAL = {
    ("meeting", ""): {
        "subject": "Weekly sync",
        "status": "cancelled",
        "starts_at": MOVED,
        "ends_at": MOVED + timedelta(minutes=30),
        "time_zone": "Europe/London",
        "sequence": 3,
        "rrule": "FREQ=WEEKLY;BYDAY=TH;COUNT=10",
        "location": "Teams",
        "online_meeting_url": TEAMS,
        "body": "Agenda: open orders (moved to 10)",
        "people": {
            ("organizer", ANNA, None),
            ("attendee", CLARA, "accepted"),
            ("attendee", TOM, "needs_action"),
        },
    },
    ("meeting", OCCURRENCE_KEY): {
        "subject": "Weekly sync",
        "status": "cancelled",
        "starts_at": MOVED + timedelta(days=7),
        "ends_at": MOVED + timedelta(days=7, minutes=30),
        "time_zone": "Europe/London",
        "sequence": 3,  # an occurrence shown over its series shows the series' version
        "rrule": None,
        "location": "Teams",
        "online_meeting_url": TEAMS,
        "body": "Agenda: open orders (moved to 10)",
        "people": {
            ("organizer", ANNA, None),
            ("attendee", CLARA, "accepted"),
            ("attendee", TOM, "needs_action"),
        },
    },
    ("meeting_proposal", ""): {
        "subject": "New time proposed: Weekly sync",
        "sender": TOM,
        "proposed_start": (MOVED + timedelta(hours=1)).isoformat(),
        "body": "Could we start at 11? I have a delivery at 10.",
        "people": {("from", TOM, None), ("to", ANNA, None)},
    },
}


def run_import(
    db: Database, settings: Settings, path: Path, owner: str = ANNA, **kwargs: object
) -> ImportResult:
    return import_files(db, settings, [path], owner=owner, jobs=1, **kwargs)  # type: ignore[arg-type]


def count(db: Database, model: type, *where: object) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def final_meetings(db: Database) -> dict[tuple[str, str], dict[str, object]]:
    """What a user sees of every meeting and proposal, by (kind, recurrence key)."""
    out: dict[tuple[str, str], dict[str, object]] = {}
    with db.session() as session:
        activities = session.scalars(
            select(Activity).where(Activity.kind.in_(("meeting", "meeting_proposal")))
        ).all()
        for activity in activities:
            people = {
                (p.role, p.address, p.response)
                for p in session.scalars(
                    select(ActivityParticipant).where(
                        ActivityParticipant.activity_id == activity.id
                    )
                )
            }
            if activity.kind == "meeting_proposal":
                out[(activity.kind, activity.details["recurrence_key"])] = {
                    "subject": activity.subject,
                    "sender": activity.sender_address,
                    "proposed_start": activity.details["proposed_start"],
                    "body": activity.body_text,
                    "people": people,
                }
                continue
            meeting = session.get(Meeting, activity.id)
            assert meeting is not None
            out[(activity.kind, meeting.recurrence_key)] = {
                "subject": activity.subject,
                "status": meeting.status,
                "starts_at": meeting.starts_at,
                "ends_at": meeting.ends_at,
                "time_zone": meeting.time_zone,
                "sequence": meeting.sequence,
                "rrule": meeting.rrule,
                "location": meeting.location,
                "online_meeting_url": meeting.online_meeting_url,
                "body": activity.body_text,
                "people": people,
            }
    return out


# --- one meeting, in its final state ---------------------------------------------------------


def test_invite_email_is_an_email_and_a_meeting_with_attendees(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    invite = life_of_a_meeting()["invite"]
    result = run_import(db, settings, write_maildir(tmp_path / "anna", [invite], folder="Sent"))
    assert result.run.counts.captured == 1 and result.run.counts.meetings["new"] == 1
    with db.session() as session:
        kinds = sorted(session.scalars(select(Activity.kind)))
        assert kinds == ["email", "meeting"]
        meeting = session.scalars(select(Meeting)).one()
        activity = session.get(Activity, meeting.activity_id)
        assert activity is not None
        assert (meeting.uid, meeting.recurrence_key, meeting.status) == (UID, "", "confirmed")
        assert meeting.starts_at == FIRST and meeting.time_zone == "Europe/London"
        assert (activity.subject, activity.direction, activity.sender_address) == (
            "Weekly sync",
            "outgoing",
            ANNA,
        )
        people = {
            (p.role, p.address, p.response, p.contact_id is not None)
            for p in session.scalars(
                select(ActivityParticipant).where(ActivityParticipant.activity_id == activity.id)
            )
        }
        # External attendees are linked to contacts; the internal organizer is not a contact.
        assert people == {
            ("organizer", ANNA, None, False),
            ("attendee", CLARA, "needs_action", True),
            ("attendee", TOM, "needs_action", True),
        }
        observation = session.scalars(
            select(MailboxObservation).where(MailboxObservation.activity_id == activity.id)
        ).one()
        assert observation.folder == "Sent"
        decision = session.scalars(
            select(CaptureDecision).where(CaptureDecision.message_key == meeting_key(UID))
        ).one()
        assert (decision.decision, decision.activity_id) == ("captured", activity.id)
        assert any("captured as activity" in line for line in explain(session, meeting_key(UID)))


def test_invite_update_accept_counter_cancel_one_cancel_all(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    mail = life_of_a_meeting()
    for name, raw in mail.items():  # one import per message: each applies to the stored state
        run_import(db, settings, write_maildir(tmp_path / name, [raw]))
    assert final_meetings(db) == EXPECTED_FINAL
    assert count(db, Activity, Activity.kind == "email") == 6
    with db.session() as session:
        series = session.scalars(select(Meeting).where(Meeting.recurrence_key == "")).one()
        state = meeting_state(series, "Weekly sync")
        # The counter-proposal did not move the meeting; it is recorded on the meeting too.
        [proposal] = state.proposals
        assert proposal.from_address == TOM and proposal.start == MOVED + timedelta(hours=1)
        assert state.attendees[CLARA].responded_at == stamp(21, 12)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_final_state_does_not_depend_on_arrival_order(
    db: Database, settings: Settings, tmp_path: Path, seed: int
) -> None:
    messages = list(life_of_a_meeting().values())
    random.Random(seed).shuffle(messages)
    if seed % 2:
        for n, raw in enumerate(messages):  # one batch each, in the shuffled order
            run_import(db, settings, write_maildir(tmp_path / f"part{n}", [raw]))
    else:
        run_import(db, settings, write_maildir(tmp_path / "all", messages))  # one batch
    assert final_meetings(db) == EXPECTED_FINAL


def test_reverse_order_and_reimport_change_nothing(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    box = write_maildir(tmp_path / "anna", list(reversed(life_of_a_meeting().values())))
    first = run_import(db, settings, box)
    assert final_meetings(db) == EXPECTED_FINAL
    again = run_import(db, settings, box)
    assert again.run.counts.meetings["new"] == again.run.counts.meetings["updated"] == 0
    assert again.run.counts.meetings["unchanged"] == first.run.counts.meetings.total()
    assert final_meetings(db) == EXPECTED_FINAL
    assert count(db, Activity) == 6 + 3


def test_same_meeting_from_two_mailboxes_is_one_activity(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    mail = life_of_a_meeting()
    run_import(db, settings, write_maildir(tmp_path / "anna", [mail["invite"]], folder="Sent"))
    # Ben's calendar export of the same meeting: an .ics file, no METHOD, stamped when exported,
    # with Clara's answer in it.
    exported = ics(
        "",
        uid=UID,
        organizer=ORGANIZER,
        attendees={**PEOPLE, CLARA: ("Clara Jensen", "ACCEPTED")},
        stamp=stamp(22, 18),
        start=FIRST,
        **SERIES,  # type: ignore[arg-type]
    )
    ben = tmp_path / "ben" / "calendar"
    ben.mkdir(parents=True)
    (ben / "weekly-sync.ics").write_text(exported)
    result = run_import(db, settings, tmp_path / "ben", BEN)
    assert result.unreadable == [] and result.run.counts.known == 1
    assert count(db, Activity, Activity.kind == "meeting") == 1
    with db.session() as session:
        meeting_id = session.scalars(select(Meeting.activity_id)).one()
        observations = session.execute(
            select(MailboxObservation.link_id, MailboxObservation.folder).where(
                MailboxObservation.activity_id == meeting_id
            )
        ).all()
        assert len({link for link, _ in observations}) == 2
        responses = dict(
            session.execute(
                select(ActivityParticipant.address, ActivityParticipant.response).where(
                    ActivityParticipant.activity_id == meeting_id
                )
            ).all()
        )
        assert responses[CLARA] == "accepted"


# --- rules and levels ------------------------------------------------------------------------


@pytest.mark.parametrize("reply_first", [False, True])
def test_internal_only_meeting_is_skipped(
    db: Database, settings: Settings, tmp_path: Path, reply_first: bool
) -> None:
    uid = "internal-standup@northwind-supplies.com"
    invite = ics(
        "REQUEST",
        uid=uid,
        organizer=ORGANIZER,
        attendees={BEN: ("Ben", "NEEDS-ACTION")},
        stamp=stamp(20, 10),
        start=FIRST,
    )
    reply = ics(
        "REPLY",
        uid=uid,
        organizer=ORGANIZER,
        attendees={BEN: ("Ben", "ACCEPTED")},
        stamp=stamp(20, 11),
        start=FIRST,
    )
    invite_mail = calendar_email(invite, sender=ANNA, to=[BEN], subject="Standup", date=FIRST)
    reply_mail = calendar_email(reply, sender=BEN, to=[ANNA], subject="Accepted", date=FIRST)
    order = [reply_mail, invite_mail] if reply_first else [invite_mail, reply_mail]
    for n, raw in enumerate(order):
        run_import(db, settings, write_maildir(tmp_path / str(n), [raw]))
    assert count(db, Activity, Activity.kind == "meeting") == 0
    assert count(db, Meeting) == 0
    with db.session() as session:
        rules = set(
            session.scalars(
                select(CaptureDecision.rule).where(CaptureDecision.message_key == meeting_key(uid))
            )
        )
    assert rules == {"internal_only"}


def test_meeting_with_a_blocked_domain_is_skipped(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    with db.session() as session:
        add_rule(session, "block_domain", "kestrelmoor-logistik.de")
    # The .ics alone (no email around it) is judged on the meeting's own people.
    ics_file = tmp_path / "box" / "sync.ics"
    ics_file.parent.mkdir()
    ics_file.write_text(
        ics("", uid=UID, organizer=ORGANIZER, attendees=PEOPLE, stamp=stamp(20, 10), start=FIRST)
    )
    result = run_import(db, settings, tmp_path / "box")
    assert result.run.counts.skipped["blocked_domain"] == 1
    run_import(db, settings, write_maildir(tmp_path / "mail", [life_of_a_meeting()["invite"]]))
    assert count(db, Activity) == 0
    assert count(db, ContactEmail) == 0
    with db.session() as session:
        rules = set(
            session.scalars(
                select(CaptureDecision.rule).where(CaptureDecision.message_key == meeting_key(UID))
            )
        )
    assert rules == {"blocked_domain"}


@pytest.mark.parametrize(
    ("level", "subject", "location", "url", "body"),
    [
        ("metadata", "", "", "", None),
        ("subject", "Weekly sync", "", "", None),
        ("full", "Weekly sync", "Teams", TEAMS, "Agenda: open orders"),
    ],
)
def test_capture_levels(
    db: Database,
    settings: Settings,
    tmp_path: Path,
    level: str,
    subject: str,
    location: str,
    url: str,
    body: str | None,
) -> None:
    box = write_maildir(tmp_path / "anna", [life_of_a_meeting()["invite"]])
    run_import(db, settings, box, capture_level=level)
    with db.session() as session:
        meeting = session.scalars(select(Meeting)).one()
        activity = session.get(Activity, meeting.activity_id)
        assert activity is not None
        assert (activity.subject, meeting.location, meeting.online_meeting_url) == (
            subject,
            location,
            url,
        )
        assert activity.body_text == body and activity.content_level == level
        # Times and people are kept at every level.
        assert meeting.starts_at == FIRST
    assert count(db, ActivityParticipant, ActivityParticipant.activity_id == activity.id) == 3


def test_fuller_mailbox_fills_in_and_sparser_one_never_blanks(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    mail = life_of_a_meeting()
    run_import(
        db, settings, write_maildir(tmp_path / "a", [mail["invite"]]), capture_level="metadata"
    )
    run_import(db, settings, write_maildir(tmp_path / "b", [mail["invite"]]), BEN)  # full
    run_import(
        db, settings, write_maildir(tmp_path / "c", [mail["update"]]), capture_level="metadata"
    )
    with db.session() as session:
        meeting = session.scalars(select(Meeting)).one()
        activity = session.get(Activity, meeting.activity_id)
        assert activity is not None
        assert (activity.subject, meeting.location, activity.content_level) == (
            "Weekly sync",
            "Teams",
            "full",
        )
        assert meeting.starts_at == MOVED  # the sparser copy still moved the meeting


def test_private_meeting_keeps_metadata_only(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    calendar = ics(
        "REQUEST",
        uid=UID,
        organizer=ORGANIZER,
        attendees=PEOPLE,
        stamp=stamp(20, 10),
        start=FIRST,
        summary="Contract renegotiation",
        location="Anna's office",
        private=True,
    )
    run_import(db, settings, write_maildir(tmp_path / "a", [organizer_mail(calendar, "x", FIRST)]))
    with db.session() as session:
        meeting = session.scalars(select(Meeting)).one()
        activity = session.get(Activity, meeting.activity_id)
        assert activity is not None
        assert (activity.subject, meeting.location, activity.is_private) == ("", "", True)
        assert meeting.starts_at == FIRST


# --- bad input -------------------------------------------------------------------------------


def test_ics_that_is_not_icalendar_is_quarantined(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "cal"
    folder.mkdir()
    (folder / "broken.ics").write_bytes(b"\x00\x01 this is a spreadsheet, not a calendar")
    (folder / "good.ics").write_bytes((DATA / "series_invite.ics").read_bytes())
    result = run_import(db, settings, folder)
    assert result.run.counts.quarantined["not_icalendar"] == 1
    assert result.run.counts.captured == 1
    with db.session() as session:
        item = session.scalars(select(QuarantinedItem)).one()
        assert (item.reason, item.provider_id) == ("not_icalendar", "broken.ics")
    assert count(db, Meeting) == 1


def test_broken_ics_files_are_captured_as_far_as_safe(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "cal"
    folder.mkdir()
    for name in ("missing_uid.ics", "broken_vtimezone.ics"):
        (folder / name).write_bytes((DATA / name).read_bytes())
    organizer = ("Anna Berg", ANNA)
    bad = {
        "bad_rrule.ics": ics(
            "",
            uid="bad-rrule@x",
            organizer=organizer,
            attendees=PEOPLE,
            stamp=stamp(20, 10),
            start=FIRST,
            rrule="FREQ=SOMETIMES;BYDAY=XX",
        ),
        "unknown_tzid.ics": ics(
            "",
            uid="unknown-tz@x",
            organizer=organizer,
            attendees=PEOPLE,
            stamp=stamp(20, 10),
            extra=[
                "DTSTART;TZID=Middle Earth/Shire:20261203T090000",
                "DTEND;TZID=Middle Earth/Shire:20261203T100000",
            ],
        ),
        "endless.ics": ics(
            "",
            uid="endless@x",
            organizer=organizer,
            attendees=PEOPLE,
            stamp=stamp(20, 10),
            start=FIRST,
            rrule="FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR",
        ),
        "missing_dtstart.ics": ics(
            "REQUEST", uid="no-start@x", organizer=organizer, attendees=PEOPLE, stamp=stamp(20, 10)
        ),
    }
    for name, text in bad.items():
        (folder / name).write_text(text)
    started = time.monotonic()
    result = run_import(db, settings, folder)
    assert time.monotonic() - started < 30
    assert sum(result.run.counts.quarantined.values()) == 0
    assert result.run.counts.captured + sum(result.run.counts.skipped.values()) == 6
    with db.session() as session:
        by_uid = {m.uid: m for m in session.scalars(select(Meeting))}
    assert by_uid["bad-rrule@x"].rrule == "FREQ=SOMETIMES;BYDAY=XX"  # kept, expands to nothing
    assert by_uid["unknown-tz@x"].starts_at is not None
    assert any("Middle Earth" in note for note in by_uid["unknown-tz@x"].notes)
    assert by_uid["no-start@x"].starts_at is None
    assert any(uid.startswith("rapport-") for uid in by_uid)  # the synthesised UID
    # An endless series is stored once; its occurrences are computed, bounded, when shown.
    endless = by_uid["endless@x"]
    shown = occurrences(
        meeting_state(endless, ""),
        start=datetime(2020, 1, 1, tzinfo=UTC),
        end=datetime(9000, 1, 1, tzinfo=UTC),
        limit=50,
    )
    assert len(shown) == 50


def test_ten_thousand_attendee_invite_is_bounded(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    crowd = {
        f"guest{n}@audience-{n % 50}.example.org": (f"Guest {n}", "NEEDS-ACTION")
        for n in range(10_000)
    }
    calendar = ics(
        "REQUEST",
        uid="all-hands@x",
        organizer=("Host", "host@events-hq.example.org"),
        attendees=crowd,
        stamp=stamp(20, 10),
        start=FIRST,
    )
    raw = calendar_email(
        calendar, sender="host@events-hq.example.org", to=[ANNA], subject="All hands", date=FIRST
    )
    started = time.monotonic()
    run_import(db, settings, write_maildir(tmp_path / "a", [raw]))
    assert time.monotonic() - started < 60
    with db.session() as session:
        meeting = session.scalars(select(Meeting)).one()
        assert any("10000 attendees" in note for note in meeting.notes)
    kept = count(db, ActivityParticipant, ActivityParticipant.activity_id == meeting.activity_id)
    assert kept == 2001  # the organizer and the first 2,000 attendees
    # A webinar's audience does not become contacts; its host (and the email's sender) does.
    assert count(db, ContactEmail) == 1


def test_broken_calendar_part_leaves_the_email_captured(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    raw = calendar_email(
        "BEGIN:NOTHING\r\nthis is not a calendar\r\n",
        sender=f"Clara <{CLARA}>",
        to=[ANNA],
        subject="Meeting?",
        date=FIRST,
    )
    result = run_import(db, settings, write_maildir(tmp_path / "a", [raw]))
    assert result.run.counts.captured == 1
    with db.session() as session:
        email = session.scalars(select(Activity)).one()
        assert email.kind == "email"
        assert any("calendar part not read" in d for d in email.details["defects"])


# --- through the command ---------------------------------------------------------------------


def test_rapport_import_takes_ics_files_and_directories(
    db: Database, settings: Settings, tmp_path: Path, cli: Cli
) -> None:
    folder = tmp_path / "calendar"
    folder.mkdir()
    (folder / "moved.ics").write_bytes((DATA / "series_with_moved_exception.ics").read_bytes())
    single = tmp_path / "single.ics"
    single.write_bytes((DATA / "outlook_request_w_europe_tz.ics").read_bytes())
    result = cli("import", str(folder), str(single), "--mailbox", ANNA, "--jobs", "1")
    assert result.exit_code == 0, result.output
    assert "not available" not in result.output and "meetings" in result.output
    with db.session() as session:
        keys = sorted(session.execute(select(Meeting.uid, Meeting.recurrence_key)).all())
        series = session.scalars(
            select(Meeting).where(Meeting.uid.like("%google.com"), Meeting.recurrence_key == "")
        ).one()
        moved = session.scalars(
            select(Meeting).where(Meeting.uid.like("%google.com"), Meeting.recurrence_key != "")
        ).one()
        shown = occurrences(
            meeting_state(series, ""),
            [meeting_state(moved, "")],
            start=datetime(2026, 1, 1, tzinfo=UTC),
            end=datetime(2027, 6, 1, tzinfo=UTC),
        )
    assert len(keys) == 3  # the series, its moved occurrence, and the single meeting
    moved_one = next(o for o in shown if o.recurrence_key == moved.recurrence_key)
    assert moved_one.start == moved.starts_at
    assert len({o.recurrence_key for o in shown}) == len(shown)
    # Importing again captures nothing new.
    again = cli("import", str(folder), str(single), "--mailbox", ANNA, "--jobs", "1")
    assert again.exit_code == 0, again.output
    assert count(db, Meeting) == 3


def test_invite_forwarded_to_the_drop_address_becomes_a_meeting(db: Database, cli: Cli) -> None:
    drop_cli = Cli({**cli.env, "RAPPORT_DROP_DOMAIN": "in.northwind-supplies.com"})
    result = drop_cli("mailbox", "add", "drop", "--owner", ANNA)
    assert result.exit_code == 0, result.output
    raw = life_of_a_meeting()["invite"]
    with db.session() as session:
        link_id = session.scalars(select(MailboxLink.id).where(MailboxLink.kind == "drop")).one()
        capture_drop(session, {"link_id": link_id, "raw": base64.b64encode(raw).decode()})
    with db.session() as session:
        kinds = sorted(session.scalars(select(Activity.kind)))
        meeting = session.scalars(select(Meeting)).one()
        observed = session.scalars(
            select(MailboxObservation.link_id).where(
                MailboxObservation.activity_id == meeting.activity_id
            )
        ).all()
    assert kinds == ["email", "meeting"] and meeting.uid == UID
    assert observed == [link_id]
