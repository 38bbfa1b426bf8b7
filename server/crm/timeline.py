"""The timeline: emails, meetings and notes about people or a company, newest first, paged.

What a viewer sees of each entry is cut to the capture level of the mailboxes through which they
may see it (a metadata-level link shows who and when, not what). Pages are keyset-paged on
(occurred_at, id), so a page costs the same however deep into history it is.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, tuple_
from sqlalchemy.orm import Session

from server.crm.errors import DomainError
from server.crm.meetings import meeting_state, occurrences
from server.crm.viewer import Viewer, visible_to
from server.mail_ingest.items import CAPTURE_LEVELS
from server.models import (
    Activity,
    ActivityParticipant,
    Contact,
    MailboxLink,
    MailboxObservation,
    Meeting,
)

PAGE_SIZE_MAX = 100


@dataclass
class ParticipantView:
    role: str
    address: str | None
    name: str
    contact_id: int | None
    response: str | None


@dataclass
class ActivityView:
    id: int
    kind: str
    occurred_at: datetime
    direction: str
    thread_id: int | None
    level: str
    subject: str
    snippet: str
    body: str | None
    sender_address: str
    sender_name: str
    has_attachments: bool
    participants: list[ParticipantView] = field(default_factory=list)
    meeting: dict[str, object] | None = None
    deal_id: int | None = None
    company_id: int | None = None
    author_id: int | None = None


@dataclass
class TimelinePage:
    items: list[ActivityView]
    next_cursor: str | None


def encode_cursor(occurred_at: datetime, activity_id: int) -> str:
    raw = f"{occurred_at.isoformat()}|{activity_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, ident = raw.partition("|")
        number = int(ident)
        if not 0 < number < 2**62:
            raise ValueError(ident)
        moment = datetime.fromisoformat(when)
        if moment.tzinfo is None:
            raise ValueError(when)
        return moment, number
    except (ValueError, UnicodeDecodeError):
        raise DomainError("the cursor is not one this API gave out", field="cursor") from None


def timeline(
    session: Session,
    viewer: Viewer,
    *,
    contact_ids: Collection[int] = (),
    company_id: int | None = None,
    addresses: Collection[str] = (),
    limit: int = 20,
    cursor: str | None = None,
) -> TimelinePage:
    """Activities involving these contacts, this company's people, or these bare addresses."""
    limit = max(1, min(limit, PAGE_SIZE_MAX))
    about: list[ColumnElement[bool]] = []
    if contact_ids:
        about.append(
            Activity.id.in_(
                select(ActivityParticipant.activity_id).where(
                    ActivityParticipant.contact_id.in_(list(contact_ids))
                )
            )
        )
    if addresses:
        about.append(
            Activity.id.in_(
                select(ActivityParticipant.activity_id).where(
                    ActivityParticipant.address.in_(list(addresses))
                )
            )
        )
    if company_id is not None:
        people = select(Contact.id).where(Contact.company_id == company_id)
        about.append(
            Activity.id.in_(
                select(ActivityParticipant.activity_id).where(
                    ActivityParticipant.contact_id.in_(people)
                )
            )
        )
        about.append(Activity.company_id == company_id)
    if not about:
        return TimelinePage([], None)
    query = (
        select(Activity)
        .where(or_(*about), visible_to(viewer))
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        when, ident = decode_cursor(cursor)
        query = query.where(tuple_(Activity.occurred_at, Activity.id) < tuple_(when, ident))
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    views = present(session, viewer, rows)
    next_cursor = encode_cursor(rows[-1].occurred_at, rows[-1].id) if more and rows else None
    return TimelinePage(views, next_cursor)


def viewer_levels(
    session: Session, viewer: Viewer, activities: Sequence[Activity]
) -> dict[int, str]:
    """The capture level each activity may be shown at to this viewer."""
    ids = [a.id for a in activities]
    levels: dict[int, int] = {}
    private = {a.id for a in activities if a.is_private}
    if ids:
        rows = session.execute(
            select(
                MailboxObservation.activity_id,
                MailboxLink.capture_level,
                MailboxLink.owner_user_id,
                MailboxLink.visibility,
            )
            .join(MailboxLink, MailboxLink.id == MailboxObservation.link_id)
            .where(MailboxObservation.activity_id.in_(ids))
        )
        seen = set()
        for activity_id, level, owner, visibility in rows:
            seen.add(activity_id)
            mine = owner == viewer.id
            if mine or (visibility == "team" and activity_id not in private):
                rank = CAPTURE_LEVELS.index(level) if level in CAPTURE_LEVELS else 0
                levels[activity_id] = max(levels.get(activity_id, 0), rank)
        for activity_id in ids:
            if activity_id not in seen:
                levels[activity_id] = len(CAPTURE_LEVELS) - 1  # not captured: notes and calls
    result: dict[int, str] = {}
    for activity in activities:
        rank = min(levels.get(activity.id, 0), CAPTURE_LEVELS.index(activity.content_level))
        result[activity.id] = CAPTURE_LEVELS[rank]
    return result


def present(session: Session, viewer: Viewer, activities: Sequence[Activity]) -> list[ActivityView]:
    """Activity rows as the viewer may see them (participants and meetings loaded in bulk)."""
    if not activities:
        return []
    ids = [a.id for a in activities]
    levels = viewer_levels(session, viewer, activities)
    participants: dict[int, list[ParticipantView]] = {}
    for p in session.scalars(
        select(ActivityParticipant)
        .where(ActivityParticipant.activity_id.in_(ids))
        .order_by(ActivityParticipant.id)
    ):
        participants.setdefault(p.activity_id, []).append(
            ParticipantView(p.role, p.address, p.name, p.contact_id, p.response)
        )
    meetings = {
        m.activity_id: m
        for m in session.scalars(select(Meeting).where(Meeting.activity_id.in_(ids)))
    }
    views = []
    for a in activities:
        level = levels[a.id]
        rank = CAPTURE_LEVELS.index(level)
        meeting = meetings.get(a.id)
        views.append(
            ActivityView(
                id=a.id,
                kind=a.kind,
                occurred_at=a.occurred_at,
                direction=a.direction,
                thread_id=a.thread_id,
                level=level,
                subject=a.subject if rank >= 1 else "",
                snippet=a.snippet if rank >= 2 else "",
                body=a.body_text if rank >= 2 else None,
                sender_address=a.sender_address,
                sender_name=a.sender_name,
                has_attachments=a.has_attachments,
                participants=participants.get(a.id, []),
                meeting=_meeting_view(session, meeting, rank, a.subject)
                if meeting is not None
                else None,
                deal_id=a.deal_id,
                company_id=a.company_id,
                author_id=a.author_id,
            )
        )
    return views


def _meeting_view(session: Session, meeting: Meeting, rank: int, subject: str) -> dict[str, object]:
    """Times and people at every level; place and link only at full. A series shows its rule,
    its exceptions and its next occurrences, computed now (occurrences are never stored)."""
    state = meeting.state or {}
    responses: dict[str, int] = {}
    for attendee in (state.get("attendees") or {}).values():
        answer = str(attendee.get("response") or "needs_action")
        responses[answer] = responses.get(answer, 0) + 1
    view: dict[str, object] = {
        "uid": meeting.uid,
        "recurrence_key": meeting.recurrence_key,
        "sequence": meeting.sequence,
        "starts_at": meeting.starts_at,
        "ends_at": meeting.ends_at,
        "time_zone": meeting.time_zone,
        "all_day": meeting.all_day,
        "floating": bool(state.get("floating")),
        "status": meeting.status,
        "organizer": meeting.organizer_address,
        "recurring": bool(meeting.rrule),
        "rrule": meeting.rrule,
        "exdates": list(meeting.exdates),
        "placeholder": bool(state.get("placeholder")),
        "responses": responses,
        "proposals": list(state.get("proposals") or []),
    }
    if rank >= 2:
        view["location"] = meeting.location
        view["online_meeting_url"] = meeting.online_meeting_url
    if meeting.rrule and not meeting.recurrence_key:
        exceptions = list(
            session.scalars(
                select(Meeting).where(Meeting.uid == meeting.uid, Meeting.recurrence_key != "")
            )
        )
        view["exceptions"] = [
            {"activity_id": e.activity_id, "starts_at": e.starts_at, "status": e.status}
            for e in exceptions
        ]
        now = datetime.now(UTC)
        upcoming = occurrences(
            meeting_state(meeting, subject),
            [meeting_state(e, "") for e in exceptions],
            start=now,
            end=now + timedelta(days=366),
            limit=3,
        )
        view["next_occurrences"] = [
            {"start": o.start, "end": o.end, "status": o.status} for o in upcoming
        ]
    return view
