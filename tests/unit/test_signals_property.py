"""Signals kept current incrementally, as mail arrives, always equal a full recompute.

Hypothesis writes a small business's mail (emails both ways and internal, replies on threads,
auto-replies, a contact's second address, meetings, some declined or cancelled), captures it
through the real capture code in batches of any size, and after any of those batches recomputes
only what the batch marked (`refresh_dirty`). At the end the stored signals must be exactly what
a full recompute stores: same keys, owners, dates, reasons and cited activities.

Each example gets its own SQLite database, copied from the migrated template.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from server.crm.capture import Capturer
from server.crm.contacts import create_contact
from server.crm.deals import DealInput, create_deal
from server.crm.mailboxes import import_link, link_info
from server.crm.prepared import Prepared
from server.crm.rules import CapturePolicy
from server.crm.signals.store import recompute_everything, refresh_dirty, save_settings
from server.crm.users import add_user
from server.crm.viewer import Viewer
from server.db import Database
from server.mail_ingest.items import CalendarItem, MailItem, Participant
from server.mail_ingest.prepare import PrepareOptions, prepare_item
from server.models import Signal, SignalEvidence, Stage

NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)
DOMAIN = "northwind.example"
TEAM = [f"anna@{DOMAIN}", f"ben@{DOMAIN}"]
CLARA = ["clara@brightline.example", "clara.j@gmail.example"]  # one contact, two addresses
OUTSIDE = [*CLARA, "dan@brightline.example", "eve@other.example"]
PEOPLE = TEAM + OUTSIDE
POLICY = CapturePolicy(
    internal_domains=frozenset({DOMAIN}), skip_internal_only=False, skip_automated=False
)


@dataclass(frozen=True)
class Mail:
    sender: int
    to: tuple[int, ...]
    reply_to: int | None  # answers the email this many places earlier in the story, if any
    hours: int  # before NOW (negative: after)
    auto: bool


@dataclass(frozen=True)
class Invite:
    organizer: int  # a team member
    attendees: tuple[int, ...]
    hours: int
    declined: bool
    cancelled: bool


Event = Mail | Invite

anyone = st.integers(0, len(PEOPLE) - 1)
outsiders = st.lists(st.integers(len(TEAM), len(PEOPLE) - 1), min_size=1, max_size=3, unique=True)
mails = st.builds(
    Mail,
    sender=anyone,
    to=st.one_of(
        outsiders,  # ours to several contacts: whose signal is it, and who replied?
        st.lists(anyone, min_size=1, max_size=3, unique=True),
    ).map(tuple),
    reply_to=st.one_of(st.none(), st.integers(1, 3)),
    hours=st.integers(-48, 40 * 24),
    auto=st.sampled_from([False, False, False, True]),
)
invites = st.builds(
    Invite,
    organizer=st.integers(0, len(TEAM) - 1),
    attendees=st.lists(
        st.integers(len(TEAM), len(PEOPLE) - 1), min_size=1, max_size=3, unique=True
    ).map(tuple),
    hours=st.integers(-72, 30 * 24),
    declined=st.booleans(),
    cancelled=st.booleans(),
)
stories = st.lists(st.one_of(mails, mails, mails, invites), min_size=1, max_size=14)


@contextmanager
def fresh_database(template: Path) -> Iterator[Database]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "rapport.sqlite3"
        shutil.copyfile(template, path)
        db = Database(f"sqlite:///{path}")
        try:
            yield db
        finally:
            db.dispose()


def set_up(db: Database) -> None:
    """The team, Clara (two addresses) and Dan with a deal that rots in a week, and settings
    under which every kind of contact signal can appear for leads."""
    with db.session() as session:
        users = [add_user(session, a, role="member") for a in TEAM]
        for address in TEAM:
            import_link(session, address)
        viewer = Viewer.of(users[0])
        clara = create_contact(session, viewer, {"name": "Clara", "emails": list(CLARA)})
        dan = create_contact(session, viewer, {"name": "Dan", "emails": [OUTSIDE[2]]})
        create_deal(
            session,
            viewer,
            DealInput(
                title="Chairs",
                contact_ids=[clara.id, dan.id],
                given=frozenset({"title", "contact_ids"}),
            ),
        )
        session.execute(update(Stage).values(rot_days=7))
        save_settings(
            session,
            {
                "churn_stages": ["lead"],
                "churn_unanswered_emails": 2,
                "churn_min_before": 1,
                "going_cold_min_exchanges": 2,
                "going_cold_floor_days": 2,
            },
        )


def prepared(story: list[Event], position: int, owner: str) -> Prepared:
    event = story[position]
    if isinstance(event, Invite):
        start = NOW - timedelta(hours=event.hours)
        organizer = TEAM[event.organizer]
        people = [Participant(organizer, "organizer")] + [
            Participant(
                PEOPLE[a],
                "attendee",
                response="declined" if event.declined and n == 0 else "accepted",
            )
            for n, a in enumerate(event.attendees)
        ]
        item = CalendarItem(
            uid=f"meeting-{position}@test",
            method="REQUEST",
            dtstamp=start - timedelta(days=3),
            summary="Visit",
            start=start,
            end=start + timedelta(hours=1),
            status="cancelled" if event.cancelled else "confirmed",
            participants=people,
        )
        return Prepared(
            folder="Calendar",
            provider_id=f"ics-{position}",
            calendar=[item],
            message_key=f"ics:{position}",
        )
    sender = PEOPLE[event.sender]
    recipients = [PEOPLE[r] for r in event.to if PEOPLE[r] != sender] or [
        TEAM[0] if sender not in TEAM else OUTSIDE[0]
    ]
    parent = position - event.reply_to if event.reply_to is not None else None
    parent_id = f"m{parent}@test" if parent is not None and parent >= 0 else None
    mail = MailItem(
        message_id=f"m{position}@test",
        subject=("Automatic reply: " if event.auto else "")
        + ("Re: Chairs" if parent_id else "Chairs"),
        date=NOW - timedelta(hours=event.hours),
        participants=[
            Participant(sender, "from"),
            *(Participant(r, "to") for r in recipients),
        ],
        provider_id=f"p{position}",
        folder="Sent" if sender == owner else "INBOX",
        in_reply_to=[parent_id] if parent_id else [],
        references=[parent_id] if parent_id else [],
    )
    options = PrepareOptions("subject", POLICY.internal_domains, frozenset({owner}))
    return prepare_item(mail, options)


def owner_of(event: Event) -> str:
    """Whose mailbox saw it: the team sender's, else the first team recipient's."""
    if isinstance(event, Invite):
        return TEAM[event.organizer]
    people = [PEOPLE[event.sender], *(PEOPLE[r] for r in event.to)]
    return next((p for p in people if p in TEAM), TEAM[0])


def stored(db: Database) -> set[tuple[Any, ...]]:
    with db.read_session() as session:
        evidence: dict[int, set[int]] = {}
        for signal_id, activity_id in session.execute(
            select(SignalEvidence.signal_id, SignalEvidence.activity_id)
        ):
            evidence.setdefault(signal_id, set()).add(activity_id)
        return {
            (
                s.key,
                s.kind,
                s.contact_id,
                s.deal_id,
                s.company_id,
                s.owner_id,
                s.due_at,
                s.expires_at,
                repr(sorted(s.reason.items())),
                s.evidence_count,
                frozenset(evidence.get(s.id, ())),
            )
            for s in session.scalars(select(Signal))
        }


# The two ways new mail changes the signals of a contact who is not on it, spelled out:
# their colleague answers our email to both (it is no longer awaiting a reply), and we write to
# the other attendee of their meeting (the meeting was followed up).
COLLEAGUE_REPLIES = [
    Mail(sender=0, to=(2, 4), reply_to=None, hours=240, auto=False),
    Mail(sender=4, to=(0,), reply_to=1, hours=200, auto=False),
]
OTHER_ATTENDEE_WRITTEN_TO = [
    Invite(organizer=1, attendees=(2, 4), hours=300, declined=False, cancelled=False),
    Mail(sender=0, to=(4,), reply_to=None, hours=250, auto=False),
]


@example(story=COLLEAGUE_REPLIES, cuts=[1], refresh_after=[True] * 6)
@example(story=OTHER_ATTENDEE_WRITTEN_TO, cuts=[1], refresh_after=[True] * 6)
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    story=stories,
    cuts=st.lists(st.integers(1, 13), max_size=5, unique=True),
    refresh_after=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_incremental_updates_equal_a_full_recompute(
    sqlite_template: Path, story: list[Event], cuts: list[int], refresh_after: list[bool]
) -> None:
    with fresh_database(sqlite_template) as db:
        set_up(db)
        recompute_everything(db.session, now=NOW)  # the state before any mail
        bounds = [0, *sorted(c for c in cuts if c < len(story)), len(story)]
        for n, (start, end) in enumerate(itertools.pairwise(bounds)):
            for owner in TEAM:  # one capture batch per mailbox
                batch = [
                    prepared(story, position, owner)
                    for position in range(start, end)
                    if owner_of(story[position]) == owner
                ]
                if batch:
                    with db.session() as session:
                        info = link_info(import_link(session, owner))
                        Capturer(info, POLICY).capture_batch(session, batch)
            if refresh_after[n % len(refresh_after)]:
                with db.session() as session:
                    refresh_dirty(session, limit=1000, now=NOW)
        with db.session() as session:
            refresh_dirty(session, limit=1000, now=NOW)
        incremental = stored(db)
        recompute_everything(db.session, now=NOW)
        assert incremental == stored(db)
