"""The timeline: emails, meetings and notes about people or a company, newest first, paged.

What a viewer sees of each entry is cut to the capture level of the mailboxes through which they
may see it (a metadata-level link shows who and when, not what). Pages are keyset-paged on
(occurred_at, id), so a page costs the same however deep into history it is.

The timeline of people (the task pane's lookup, a contact's page) is one statement whatever
their history: participants carry a copy of `occurred_at`, and the index (contact_id or address,
occurred_at, activity_id) hands out each person's activities newest first, so the database
reads the page's rows and stops — a contact with a hundred thousand emails costs what one with
three does. For several people, each person's newest `limit + 1` visible activities are taken
(a branch each, walked on the index) and their union cut to the page, which is exact: an
activity in the page is among the newest `limit + 1` of each person it involves. The statement
is built once per number of people and bound per call (the viewer's id included), and it also
returns what `viewer_levels` needs, so a page is three statements: the page, its participants,
and (only when it holds a meeting) the meetings.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import (
    JSON,
    ColumnElement,
    FunctionElement,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    or_,
    select,
    tuple_,
    union,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.compiler import SQLCompiler

from server.crm.blobs import get_blob
from server.crm.errors import DomainError
from server.crm.meetings import meeting_state, occurrences
from server.crm.sql import core_rows
from server.crm.viewer import VIEWER_ID, Viewer, visible_to, visible_to_bound_viewer
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
# More people than this in one call take the general statement (one shape per count otherwise).
PEOPLE_BRANCHES_MAX = 60
STATEMENTS_KEPT = 128
# Kinds that never have a Meeting row: a page of only these needs no meetings query.
KINDS_WITHOUT_MEETING = frozenset({"email", "call", "note", "form", "meeting_proposal"})
PARTICIPANT_FIELDS = ("role", "address", "name", "contact_id", "response")
# Kinds whose text a person wrote in Rapport (a note, a logged call, a web form's message): lists
# carry it. An email's or a meeting's body only comes one activity at a time, through
# `present(..., bodies=True)`, so that every read of one is an audit event (server/api/audit.py).
OWN_WORDS_KINDS = frozenset({"note", "call", "form"})


class participants_json(FunctionElement[Any]):
    """An activity's participants as a JSON array of [role, address, name, contact_id, response]
    arrays in `ActivityParticipant.id` order, so that the people's page brings them along
    instead of costing a statement (and a round trip to PostgreSQL) of its own."""

    type = JSON()
    name = "participants_json"
    inherit_cache = True


@compiles(participants_json)
def _participants_subquery(element: participants_json, compiler: SQLCompiler, **kw: Any) -> str:
    activity_id = compiler.process(element.clauses, **kw)
    fields = ", ".join(f"page_people.{f}" for f in PARTICIPANT_FIELDS)
    if compiler.dialect.name == "postgresql":
        return (
            f"(SELECT json_agg(json_build_array({fields}) ORDER BY page_people.id) "  # noqa: S608 - constants only
            f"FROM activity_participants AS page_people WHERE page_people.activity_id = {activity_id})"
        )
    # SQLite's json_group_array keeps the order of the rows it is given.
    return (
        f"(SELECT json_group_array(json_array({fields})) FROM (SELECT * FROM "  # noqa: S608 - constants only
        f"activity_participants AS page_people WHERE page_people.activity_id = {activity_id} "
        "ORDER BY page_people.id) AS page_people)"
    )


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


class Shown(Protocol):
    """What `present` reads of an activity: an `Activity` row, or a row of the people's page."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def direction(self) -> str: ...
    @property
    def thread_id(self) -> int | None: ...
    @property
    def subject(self) -> str: ...
    @property
    def snippet(self) -> str: ...
    @property
    def body_text(self) -> str | None: ...
    @property
    def sender_address(self) -> str: ...
    @property
    def sender_name(self) -> str: ...
    @property
    def has_attachments(self) -> bool: ...
    @property
    def deal_id(self) -> int | None: ...
    @property
    def company_id(self) -> int | None: ...
    @property
    def author_id(self) -> int | None: ...


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
    contacts, bare = sorted(set(contact_ids)), sorted(set(addresses))
    if company_id is None and 0 < len(contacts) + len(bare) <= PEOPLE_BRANCHES_MAX:
        after = decode_cursor(cursor) if cursor else None
        return _people_timeline(session, viewer, contacts, bare, limit, after)
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


def _people_timeline(
    session: Session,
    viewer: Viewer,
    contacts: Sequence[int],
    bare: Sequence[str],
    limit: int,
    after: tuple[datetime, int] | None,
) -> TimelinePage:
    """`timeline` of contacts and bare addresses (each once): one statement, read off the
    timeline indexes."""
    params: dict[str, Any] = {VIEWER_ID: viewer.id, "n": limit + 1}
    params.update({f"contact_{i}": ident for i, ident in enumerate(contacts)})
    params.update({f"address_{i}": address for i, address in enumerate(bare)})
    if after is not None:
        params["after_at"], params["after_id"] = after
    statement = _people_page(len(contacts), len(bare), after is not None)
    rows = core_rows(session, statement, params)
    more = len(rows) > limit
    rows = rows[:limit]
    levels = {
        row.id: shown_level(row.content_level, row.captured, row.visible_rank) for row in rows
    }
    participants = {row.id: [ParticipantView(*p) for p in row.participants or ()] for row in rows}
    views = _views(session, rows, levels, participants)
    next_cursor = encode_cursor(rows[-1].occurred_at, rows[-1].id) if more and rows else None
    return TimelinePage(views, next_cursor)


@lru_cache(maxsize=STATEMENTS_KEPT)
def _people_page(contacts: int, addresses: int, paged: bool) -> Select[*tuple[Any, ...]]:
    """The page statement for this many contacts and bare addresses (parameters `contact_<i>`,
    `address_<i>`, `viewer_id`, `n`, and `after_at`/`after_id` when paged)."""
    who = [ActivityParticipant.contact_id == bindparam(f"contact_{i}") for i in range(contacts)]
    who += [ActivityParticipant.address == bindparam(f"address_{i}") for i in range(addresses)]
    branches = [_newest_of(person, paged) for person in who]
    if len(branches) == 1:
        about = branches[0].subquery("about")
    else:
        # SQLite takes no ORDER BY/LIMIT in a compound's members, so each is a subquery; UNION
        # (not ALL): an activity of two of these people is in two branches. The page is cut
        # from the ids, so that what is read per activity below is read for the page only
        # (SQLite computes every output column before it sorts).
        members = [b.subquery(f"person_{i}") for i, b in enumerate(branches)]
        everyone = union(*(select(m.c.activity_id, m.c.occurred_at) for m in members)).subquery(
            "everyone"
        )
        about = (
            select(everyone.c.activity_id, everyone.c.occurred_at)
            .order_by(everyone.c.occurred_at.desc(), everyone.c.activity_id.desc())
            .limit(bindparam("n"))
            .subquery("about")
        )
    return (
        select(*_shown_columns())
        .join_from(about, Activity, Activity.id == about.c.activity_id)
        .order_by(about.c.occurred_at.desc(), about.c.activity_id.desc())
    )


def shown(session: Session, viewer: Viewer, ids: Sequence[int]) -> list[ActivityView]:
    """These activities as the viewer may see them, in the order of `ids`, in one statement
    (what the timeline reads per activity); the caller has checked that they are visible."""
    if not ids:
        return []
    rows = core_rows(session, _shown_by_id(), {VIEWER_ID: viewer.id, "ids": list(ids)})
    order = {ident: n for n, ident in enumerate(ids)}
    rows = sorted(rows, key=lambda row: order[row.id])
    levels = {
        row.id: shown_level(row.content_level, row.captured, row.visible_rank) for row in rows
    }
    participants = {row.id: [ParticipantView(*p) for p in row.participants or ()] for row in rows}
    return _views(session, rows, levels, participants)


@lru_cache(maxsize=1)
def _shown_by_id() -> Select[*tuple[Any, ...]]:
    return select(*_shown_columns()).where(Activity.id.in_(bindparam("ids", expanding=True)))


def _shown_columns() -> list[Any]:
    """What a timeline entry shows, with the viewer's level (parameter `viewer_id`) and the
    participants as JSON."""
    observation, link = aliased(MailboxObservation), aliased(MailboxLink)
    rank = case(
        *((link.capture_level == level, n) for n, level in enumerate(CAPTURE_LEVELS)), else_=0
    )
    # The SQL form of `viewer_levels`: the best capture level among the mailboxes this viewer
    # may see it through, and whether any mailbox captured it at all.
    visible_rank = (
        select(func.max(rank))
        .select_from(observation)
        .join(link, link.id == observation.link_id)
        .where(
            observation.activity_id == Activity.id,
            or_(
                link.owner_user_id == bindparam(VIEWER_ID),
                and_(link.visibility == "team", Activity.is_private.is_(False)),
            ),
        )
        .scalar_subquery()
    )
    captured = exists(select(1).where(MailboxObservation.activity_id == Activity.id))
    return [
        Activity.id,
        Activity.kind,
        Activity.occurred_at,
        Activity.direction,
        Activity.thread_id,
        Activity.subject,
        Activity.snippet,
        case((Activity.kind.in_(OWN_WORDS_KINDS), Activity.body_text)).label("body_text"),
        Activity.sender_address,
        Activity.sender_name,
        Activity.has_attachments,
        Activity.deal_id,
        Activity.company_id,
        Activity.author_id,
        Activity.content_level,
        visible_rank.label("visible_rank"),
        captured.label("captured"),
        participants_json(Activity.id).label("participants"),
    ]


def _newest_of(person: ColumnElement[bool], paged: bool) -> Select[*tuple[Any, ...]]:
    """One person's newest visible activities (`n` of them, after the cursor when paged), in the
    order of the timeline index, so the database stops after `n` visible ones."""
    p = ActivityParticipant
    query = (
        select(p.activity_id, p.occurred_at)
        .join(Activity, Activity.id == p.activity_id)
        .where(person, visible_to_bound_viewer())
        # A person may be on an activity twice (From and Reply-To, two of their addresses).
        .distinct()
        .order_by(p.occurred_at.desc(), p.activity_id.desc())
        .limit(bindparam("n"))
    )
    if paged:
        # (occurred_at, id) < cursor, spelled so that its first half is an index range.
        after_at = bindparam("after_at", type_=p.occurred_at.type)
        query = query.where(
            p.occurred_at <= after_at,
            or_(p.occurred_at < after_at, p.activity_id < bindparam("after_id")),
        )
    return query


def shown_level(content_level: str, captured: bool, visible_rank: int | None) -> str:
    """The level an activity is shown at: the best level of the mailboxes the viewer sees it
    through (a note or call no mailbox captured: full), never more than its content holds."""
    rank = (visible_rank or 0) if captured else len(CAPTURE_LEVELS) - 1
    return CAPTURE_LEVELS[min(rank, CAPTURE_LEVELS.index(content_level))]


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


def present(
    session: Session, viewer: Viewer, activities: Sequence[Activity], *, bodies: bool = False
) -> list[ActivityView]:
    """Activity rows as the viewer may see them (participants and meetings loaded in bulk);
    emails' and meetings' bodies only when `bodies` (the caller then records the read)."""
    if not activities:
        return []
    levels = viewer_levels(session, viewer, activities)
    return _views(session, activities, levels, bodies=bodies)


@lru_cache(maxsize=1)
def _participants_of() -> Select[*tuple[Any, ...]]:
    p = ActivityParticipant
    return (
        select(p.activity_id, p.role, p.address, p.name, p.contact_id, p.response)
        .where(p.activity_id.in_(bindparam("ids", expanding=True)))
        .order_by(p.id)
    )


def _views(
    session: Session,
    activities: Sequence[Shown],
    levels: Mapping[int, str],
    participants: Mapping[int, list[ParticipantView]] | None = None,
    *,
    bodies: bool = False,
) -> list[ActivityView]:
    """The views of these activities at these levels, with their participants (loaded here
    unless given) and meetings; bodies of emails and meetings only when `bodies`."""
    if not activities:
        return []
    ids = [a.id for a in activities]
    if participants is None:
        loaded: dict[int, list[ParticipantView]] = {}
        for p in core_rows(session, _participants_of(), {"ids": ids}):
            loaded.setdefault(p.activity_id, []).append(
                ParticipantView(p.role, p.address, p.name, p.contact_id, p.response)
            )
        participants = loaded
    meetings = (
        {}
        if all(a.kind in KINDS_WITHOUT_MEETING for a in activities)
        else {
            m.activity_id: m
            for m in session.scalars(select(Meeting).where(Meeting.activity_id.in_(ids)))
        }
    )
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
                body=_body(session, a)
                if rank >= 2 and (bodies or a.kind in OWN_WORDS_KINDS)
                else None,
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


def _body(session: Session, activity: Shown) -> str | None:
    """The text: written here (notes, logged emails) or, for captured mail, its stored blob."""
    if activity.body_text is not None:
        return activity.body_text
    blob = getattr(activity, "body_blob", None)  # the timeline's rows select no blob
    return get_blob(session, blob).decode("utf-8", "replace") if blob else None


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
