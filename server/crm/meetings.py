"""Meetings: calendar items seen in a linked mailbox → one meeting activity per event, in its
true final state, however many copies arrive, in whatever order.

Meetings reach Rapport as text/calendar parts of emails (invites, replies, counter-proposals,
cancellations), as .ics files, and later as Graph/EWS calendar events. The capture core
(`server.crm.capture`) hands every calendar item of a batch here, after the batch's emails, and
this module turns each into a change of one stored meeting:

1. Rules, the same as for email: the owner's never-log list and blocked addresses/domains over
   organizer and attendees; an item carried by an email that a bulk, list or block rule skipped
   is skipped with it; internal-only meetings (every participant internal) and meetings without
   any participant are skipped, checked on the organizer's copies (REQUEST, PUBLISH, CANCEL,
   .ics), which carry the whole attendee list. A reply or counter-proposal for a meeting not
   seen yet is kept as a placeholder unless its invite was already skipped; an invite that turns
   out internal-only then removes that placeholder, so the outcome does not depend on order.
2. iTIP (RFC 5546) through `server.crm.itip.apply`: the stored state of the item's key (and of
   its series, for one occurrence) is loaded, the item applied, the result stored. COUNTER
   becomes its own `meeting_proposal` activity (who proposed which time) and does not move the
   meeting; CANCEL marks the meeting, or the one occurrence, cancelled and keeps it.
3. Storage: one `Activity` (kind "meeting") + `Meeting` row per (UID, recurrence key), with
   `identity` = `meeting_key(uid, recurrence_key)`; participants are the organizer and the
   attendees with their responses (external ones linked to contacts via `People`); each
   sighting is a `MailboxObservation` and a `CaptureDecision` keyed by the same `ical:` key.
   Occurrences of a series are never stored one by one: only moved or cancelled ones (their own
   key), and `occurrences()` computes the rest when shown.

Order does not matter. Besides `itip`'s rules: title, place, link and description follow the
newest organizer's copy seen (a "Canceled: ..." cancellation stored first gives way to any
invite); a moved or cancelled occurrence stores only what was said about it alone and shows its
series laid over it (`itip.rebase`), so it is right whether it or the series came first.

Capture levels cut what is stored, as for email: metadata keeps times and people, subject adds
the title, full adds location, online-meeting link and description (CLASS:PRIVATE and private
emails: metadata). A sparser mailbox never blanks what a fuller one stored, and a fuller one
fills in what a sparser one left out when it sees the same version.

On PostgreSQL the meeting rows of a batch are locked (FOR UPDATE) while it is applied, so two
workers capturing replies to one meeting cannot lose either; SQLite serialises writers anyway.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.orm import Session

from server.crm.addresses import choose_display_name
from server.crm.direction import direction as classify_direction
from server.crm.itip import (
    AttendeeState,
    MeetingState,
    Outcome,
    Proposal,
    apply,
    occurrence_key,
    rebase,
    series_key,
)
from server.crm.people import People, Sighting
from server.crm.rules import CapturePolicy, in_domains, matches_entry
from server.crm.sql import dialect_of, insert_ignore_returning
from server.mail_ingest.calendar import expand_occurrences
from server.mail_ingest.calendar_tz import zone_by_name
from server.mail_ingest.items import CAPTURE_LEVELS, CalendarItem, Participant, Response
from server.models import Activity, ActivityParticipant, CaptureDecision, Meeting, utcnow

if TYPE_CHECKING:
    from server.crm.capture import LinkInfo

__all__ = [
    "CalendarSighting",
    "MeetingBatch",
    "MeetingCapture",
    "Occurrence",
    "dump_state",
    "load_state",
    "meeting_key",
    "meeting_state",
    "occurrences",
]

KEY_PREFIX = "ical:"
PROPOSAL_PREFIX = "ical-proposal:"
# Methods whose VEVENT is the organizer's: it names every attendee (an .ics export has method "").
ORGANIZER_METHODS = frozenset({"REQUEST", "PUBLISH", "ADD", "CANCEL", ""})
CONTENT_METHODS = frozenset({"REQUEST", "PUBLISH", "ADD", ""})
# Rules that skipped the email carrying an item skip the item too: its people are blocked, or it
# is list or marketing mail (webinars). Not "automated_sender": booking tools send real meetings
# from no-reply addresses; internal_only is decided on the meeting's own participants.
CARRIED_RULES = frozenset(
    {"never_log", "blocked_address", "blocked_domain", "mailing_list", "bulk"}
)
# An invite skipped by one of these also skips the replies to it that arrive later.
STICKY_RULES = frozenset(
    {"internal_only", "blocked_address", "blocked_domain", "mailing_list", "bulk"}
)
MAX_CREATED_CONTACTS = 100  # more external attendees: a webinar; link existing contacts only
MAX_NOTES = 50
SNIPPET_CHARS = 300
_NO_STAMP = datetime.min.replace(tzinfo=UTC)  # a copy without DTSTAMP: older than any with one
# The capture level (index in CAPTURE_LEVELS) each content field needs.
_CONTENT_RANK = {"summary": 1, "location": 2, "online_meeting_url": 2}
_RESPONSES: frozenset[str] = frozenset(
    {"accepted", "tentative", "declined", "needs_action", "delegated"}
)

_PeopleMap = dict[tuple[str, str], tuple[str, str | None]]  # (role, address) -> (name, response)

MEETINGS = cast(Table, Meeting.__table__)
ACTIVITIES = cast(Table, Activity.__table__)
PARTICIPANTS = cast(Table, ActivityParticipant.__table__)


def meeting_key(uid: str, recurrence_key: str = "") -> str:
    """A meeting's identity and capture-trace key: `ical:<UID>|<original start>`.

    The series (or a single event) is `ical:<UID>|`; one occurrence adds its original start as
    `server.mail_ingest.calendar.recurrence_key` renders it. Every source must key this way so
    the same meeting seen as an invite, an .ics file or a calendar event is one activity: Graph
    gives each occurrence its own `iCalUId`, so its adapter uses the event's series `uid` and
    `originalStart` (EWS: `UID` and `OriginalStart`), never the per-occurrence id.
    """
    return f"{KEY_PREFIX}{uid}|{recurrence_key}"


@dataclass(frozen=True, slots=True)
class CalendarSighting:
    """One calendar item seen in a linked mailbox folder."""

    item: CalendarItem
    folder: str
    provider_id: str
    carrier_rule: str | None = None  # the rule that skipped the email carrying it, if any


@dataclass
class MeetingBatch:
    """What capturing a batch of sightings produced, for the capture core to write and count.

    `outcomes` has one entry per sighting: "captured" (a new meeting), "known" (a stored meeting,
    changed or not) or the rule that skipped it. Decision and observation rows are written by
    the caller with the email rows of the batch (one statement per table).
    """

    outcomes: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    decisions: list[dict[str, object]] = field(default_factory=list)
    known_decisions: list[dict[str, object]] = field(default_factory=list)
    observations: list[dict[str, object]] = field(default_factory=list)


@dataclass
class _Stored:
    """A stored (or, during the batch, just created) meeting and what was last written of it."""

    activity_id: int
    state: MeetingState
    description: str
    content_level: str
    is_private: bool
    hidden: bool  # unlogged, or content removed by a rule: no content comes back
    direction: str
    occurred_at: datetime
    notes: list[str]
    # (SEQUENCE, DTSTAMP) of the organizer's copy the content came from; None: only a reply or
    # a cancellation has been seen, whose title is no match for any invite's
    content_version: tuple[int, datetime] | None = None
    written_meeting: dict[str, object] | None = None  # None: no Meeting row yet
    written_activity: dict[str, object] = field(default_factory=dict)
    written_people: tuple[_PeopleMap, datetime] | None = None  # None: no participant rows yet


class MeetingCapture:
    """Captures calendar items for one linked mailbox, batch after batch."""

    def __init__(
        self,
        link: LinkInfo,
        policy: CapturePolicy,
        people: People,
        *,
        since: datetime | None = None,
    ) -> None:
        self.link = link
        self.policy = policy
        self.people = people
        self.since = since
        self._reset()

    def _reset(self) -> None:
        self._stored: dict[tuple[str, str], _Stored] = {}
        self._skipped_here: dict[str, str] = {}
        self._deleted: set[int] = set()
        self._result = MeetingBatch()

    def forget(self) -> None:
        """Drop what the batch loaded after its transaction rolled back."""
        self._reset()

    # -- the batch ------------------------------------------------------------------------------

    def capture(self, session: Session, sightings: Sequence[CalendarSighting]) -> MeetingBatch:
        """Apply every sighting in order; write meetings and participants; return the rest."""
        self._reset()
        if not sightings:
            return self._result
        self._load(session, {s.item.uid for s in sightings})
        self.people.prefetch(
            session,
            (
                p.address
                for s in sightings
                for p in s.item.participants
                if p.address and self._is_external(p.address)
            ),
        )
        for sighting in sightings:
            outcome = self._capture_one(session, sighting)
            self._result.outcomes.append(outcome)
        self._flush(session)
        result = self._result
        if self._deleted:
            result.observations = [
                o for o in result.observations if o["activity_id"] not in self._deleted
            ]
            for row in (*result.decisions, *result.known_decisions):
                if row["activity_id"] in self._deleted:
                    row["activity_id"] = None
        self._reset()
        return result

    def _capture_one(self, session: Session, sighting: CalendarSighting) -> str:
        item = sighting.item
        key = occurrence_key(item)
        stored = self._stored.get(key)
        series = self._stored.get(series_key(item)) if key[1] else None
        rule = self._skip_rule(session, sighting, stored, series)
        if rule is not None:
            self._skip(session, sighting, stored, rule)
            return rule
        level = self._level(item, stored)
        lean = at_level(item, level)
        outcome = apply(
            stored.state if stored else None, lean, series=series.state if series else None
        )
        way = self._direction(outcome.state or lean)
        if stored is None:
            if outcome.state is None:
                self._decide(sighting, "skipped", "nothing_to_record", None, outcome.note)
                self._result.counts["skipped"] += 1
                return "nothing_to_record"
            created = self._create(session, sighting, outcome.state, lean, level, way)
            if created is None:  # another process stored this meeting a moment ago
                return self._capture_one(session, sighting)
            self._proposals(session, sighting, created, None, level, way)
            self._observe(sighting, created.activity_id, way)
            self._decide(sighting, "captured", None, created.activity_id, _detail(outcome, item))
            self._result.counts["new"] += 1
            return "captured"
        before = stored.state
        self._update(stored, outcome.state if outcome.changed else None, lean, level)
        self._proposals(session, sighting, stored, before, level, way)
        self._observe(sighting, stored.activity_id, way)
        detail = _detail(outcome, item)
        self._decide(sighting, "known", None, stored.activity_id, detail, only_new=True)
        self._result.counts["updated" if stored.state != before else "unchanged"] += 1
        return "known"

    # -- rules ----------------------------------------------------------------------------------

    def _skip_rule(
        self,
        session: Session,
        sighting: CalendarSighting,
        stored: _Stored | None,
        series: _Stored | None,
    ) -> str | None:
        item = sighting.item
        if sighting.carrier_rule in CARRIED_RULES:
            return sighting.carrier_rule
        people = [p for p in item.participants if p.address]
        never = self.policy.never_log.get(self.link.owner_user_id or -1, frozenset())
        if never and any(matches_entry(p.address, never) for p in people):
            return "never_log"
        for p in people:
            if p.address in self.policy.blocked_addresses:
                return "blocked_address"
            if in_domains(p.address, self.policy.blocked_domains):
                return "blocked_domain"
        real = [m for m in (stored, series) if m is not None and not m.state.placeholder]
        if real:
            return None  # a captured meeting: every later message about it counts
        if self.since is not None and not item.rrule:
            last = item.end or item.start
            if last is not None and last < self.since:
                return "older_than_since"
        method = item.method.upper()
        if method not in ORGANIZER_METHODS:
            if stored is None and series is None:
                return self._skipped_before(session, item)
            return None
        if not people:
            return "no_participants"
        if self.policy.skip_internal_only and self._direction_of(people) == "internal":
            return "internal_only"
        return None

    def _skipped_before(self, session: Session, item: CalendarItem) -> str | None:
        """The rule that skipped this meeting's invite, for a reply arriving after it."""
        uid, rk = occurrence_key(item)
        keys = list(dict.fromkeys((meeting_key(uid, rk), meeting_key(uid))))
        for key in keys:
            if key in self._skipped_here:
                return self._skipped_here[key]
        rule = session.scalar(
            select(CaptureDecision.rule)
            .where(
                CaptureDecision.message_key.in_(keys),
                CaptureDecision.decision == "skipped",
                CaptureDecision.rule.in_(sorted(STICKY_RULES)),
            )
            .limit(1)
        )
        return str(rule) if rule is not None else None

    def _skip(
        self, session: Session, sighting: CalendarSighting, stored: _Stored | None, rule: str
    ) -> None:
        item = sighting.item
        key = occurrence_key(item)
        organizers_copy = item.method.upper() in ORGANIZER_METHODS
        if organizers_copy and rule in STICKY_RULES:
            self._skipped_here[meeting_key(*key)] = rule
            # Only replies had been seen; the invite shows the meeting is not to be kept.
            doomed = [
                k
                for k, s in self._stored.items()
                if s.state.placeholder and (k == key or (not key[1] and k[0] == key[0]))
            ]
            for k in doomed:
                self._remove(session, k, self._stored[k])
            if key in doomed:
                stored = None
        # A skipped reply to a captured meeting must not hide how the meeting was captured.
        self._decide(sighting, "skipped", rule, None, only_new=stored is not None)
        self._result.counts["skipped"] += 1

    def _remove(self, session: Session, key: tuple[str, str], stored: _Stored) -> None:
        ids = [stored.activity_id]
        ids += session.scalars(
            select(Activity.id).where(
                Activity.message_key == meeting_key(*key), Activity.kind == "meeting_proposal"
            )
        )
        session.execute(delete(Activity).where(Activity.id.in_(ids)))
        self._deleted.update(ids)
        del self._stored[key]

    def _is_external(self, address: str) -> bool:
        return address not in self.link.owner_addresses and not in_domains(
            address, self.policy.internal_domains
        )

    def _direction_of(self, people: Sequence[Participant]) -> str:
        organizer = next((p.address for p in people if p.role == "organizer"), None)
        return classify_direction(
            organizer,
            people,
            owner_addresses=self.link.owner_addresses,
            internal_domains=self.policy.internal_domains,
        )

    def _direction(self, state: MeetingState | CalendarItem) -> str:
        if isinstance(state, CalendarItem):
            return self._direction_of(state.participants)
        return self._direction_of(_participants(state))

    def _level(self, item: CalendarItem, stored: _Stored | None) -> str:
        if item.private or (stored is not None and stored.hidden):
            return "metadata"
        return self.link.capture_level

    # -- applying -------------------------------------------------------------------------------

    def _create(
        self,
        session: Session,
        sighting: CalendarSighting,
        state: MeetingState,
        item: CalendarItem,
        level: str,
        way: str,
    ) -> _Stored | None:
        """Insert the activity of a new meeting; None when another process inserted it first
        (its stored state is then loaded, and the item is applied to that)."""
        now = utcnow()
        stored = _Stored(
            activity_id=0,
            state=state,
            description=item.description if _rank(level) >= 2 else "",
            content_level=level,
            is_private=item.private,
            hidden=False,
            direction=way,
            occurred_at=now,
            notes=list(item.notes[:MAX_NOTES]),
            content_version=_version(item) if item.method.upper() in CONTENT_METHODS else None,
        )
        self._refresh_occurred_at(stored)
        values = self._activity_values(stored)
        key = meeting_key(state.uid, state.recurrence_key)
        inserted = insert_ignore_returning(
            session,
            "activities",
            ["identity"],
            ["id"],
            [
                {
                    **values,
                    "kind": "meeting",
                    "identity": key,
                    "message_key": key,
                    "thread_id": None,
                    "direction": way,
                    "body_blob": None,
                    "raw_blob": None,
                    "has_attachments": False,
                    "size": 0,
                    "details": {},
                    "created_at": now,
                    "updated_at": now,
                    "version": 1,
                }
            ],
        )
        if not inserted:
            self._load(session, {state.uid})
            if (state.uid, state.recurrence_key) not in self._stored:
                raise RuntimeError(f"activity {key!r} exists without its meeting row")
            return None
        stored.activity_id = int(inserted[0][0])
        stored.written_activity = values
        self._stored[(state.uid, state.recurrence_key)] = stored
        return stored

    def _update(
        self,
        stored: _Stored,
        new: MeetingState | None,
        item: CalendarItem,
        level: str,
    ) -> None:
        """Take `apply`'s new state (None: unchanged), with the content rule below."""
        before = stored.state
        state = new if new is not None else before
        if new is not None:
            stored.notes = _merge_notes(stored.notes, item.notes)
        if not state.derived:
            state = self._content(stored, before, state, item, level)
        stored.state = state
        stored.is_private = stored.is_private or item.private
        if not stored.hidden and not item.private and _rank(level) > _rank(stored.content_level):
            stored.content_level = level

    def _content(
        self,
        stored: _Stored,
        before: MeetingState,
        state: MeetingState,
        item: CalendarItem,
        level: str,
    ) -> MeetingState:
        """Title, place, link and description follow the newest organizer's copy (REQUEST,
        PUBLISH, .ics) seen, whatever the order: a cancellation stored first ("Canceled: ...")
        gives way to any invite; a sparser mailbox never blanks what a fuller one kept, and a
        fuller one fills in the same version. `item` is already cut to `level`."""
        keep = {f: getattr(before, f) for f in _CONTENT_RANK}
        if item.method.upper() not in CONTENT_METHODS:
            return replace(state, **keep)
        rank = _rank(level)
        version = _version(item)
        current = stored.content_version
        if current is not None and version < current:
            return replace(state, **keep)
        if current is not None and version == current:
            filled = {
                f: getattr(item, f) if rank >= need and not value else value
                for f, need in _CONTENT_RANK.items()
                for value in (getattr(before, f),)
            }
            if rank >= 2 and not stored.description:
                stored.description = item.description
            return replace(state, **filled)
        stored.content_version = version
        if item.private:  # CLASS:PRIVATE: this version keeps times and people only
            stored.description, stored.content_level = "", "metadata"
            return replace(state, summary="", location="", online_meeting_url="")
        if rank >= 2:
            stored.description = item.description
        return replace(
            state,
            **{
                f: getattr(item, f) if rank >= need else keep[f]
                for f, need in _CONTENT_RANK.items()
            },
        )

    def _proposals(
        self,
        session: Session,
        sighting: CalendarSighting,
        stored: _Stored,
        before: MeetingState | None,
        level: str,
        way: str,
    ) -> None:
        """A new counter-proposal becomes a `meeting_proposal` activity; a declined one says so."""
        known = {(p.from_address, p.start, p.end): p for p in (before.proposals if before else [])}
        for proposal in stored.state.proposals:
            earlier = known.get((proposal.from_address, proposal.start, proposal.end))
            if earlier is None:
                self._add_proposal(session, sighting, stored, proposal, level)
            elif proposal.declined and not earlier.declined:
                session.execute(
                    update(Activity)
                    .where(Activity.identity == _proposal_identity(stored.state, proposal))
                    .values(
                        details=_proposal_details(stored, proposal),
                        updated_at=utcnow(),
                        version=Activity.version + 1,
                    )
                )

    def _add_proposal(
        self,
        session: Session,
        sighting: CalendarSighting,
        stored: _Stored,
        proposal: Proposal,
        level: str,
    ) -> None:
        state = self._shown(stored)
        rank = _rank(level)
        proposer = state.attendees.get(proposal.from_address)
        name = proposer.name if proposer is not None else ""
        people = [Participant(proposal.from_address, "from", name)]
        if state.organizer and state.organizer != proposal.from_address:
            people.append(Participant(state.organizer, "to", state.organizer_name))
        way = classify_direction(
            proposal.from_address,
            people,
            owner_addresses=self.link.owner_addresses,
            internal_domains=self.policy.internal_domains,
        )
        now = utcnow()
        when = proposal.dtstamp or now
        title = _proposal_title(state.summary)
        comment = proposal.comment if rank >= 2 else ""
        identity = _proposal_identity(state, proposal)
        inserted = insert_ignore_returning(
            session,
            "activities",
            ["identity"],
            ["id"],
            [
                {
                    "kind": "meeting_proposal",
                    "identity": identity,
                    "message_key": meeting_key(state.uid, state.recurrence_key),
                    "thread_id": None,
                    "occurred_at": when,
                    "direction": way,
                    "subject": title if rank >= 1 else "",
                    "snippet": _snippet(comment),
                    "body_text": comment or None,
                    "body_blob": None,
                    "raw_blob": None,
                    "sender_address": proposal.from_address,
                    "sender_name": name[:300],
                    "content_level": level,
                    "is_private": stored.is_private,
                    "has_attachments": False,
                    "size": 0,
                    "details": _proposal_details(stored, proposal),
                    "created_at": now,
                    "updated_at": now,
                    "version": 1,
                }
            ],
        )
        if not inserted:
            return  # recorded by another process a moment ago
        activity_id = int(inserted[0][0])
        rows = []
        for p in people:
            rows.append(self._participant_row(session, activity_id, p, None, when, way, True))
        session.connection().execute(insert(PARTICIPANTS), rows)
        self._observe(sighting, activity_id, way)

    # -- writing --------------------------------------------------------------------------------

    def _flush(self, session: Session) -> None:
        """Write every meeting the batch changed: its row, its activity, its participants."""
        changed_people: list[_Stored] = []
        for stored in self._stored.values():
            self._refresh_occurred_at(stored)
            meeting = self._meeting_values(stored)
            if stored.written_meeting is None:
                session.connection().execute(
                    insert(MEETINGS), [{"activity_id": stored.activity_id, **meeting}]
                )
            elif meeting != stored.written_meeting:
                session.execute(
                    update(MEETINGS)
                    .where(MEETINGS.c.activity_id == stored.activity_id)
                    .values(**meeting)
                )
            stored.written_meeting = meeting
            activity = self._activity_values(stored)
            if activity != stored.written_activity:
                session.execute(
                    update(Activity)
                    .where(Activity.id == stored.activity_id)
                    .values(**activity, updated_at=utcnow(), version=Activity.version + 1)
                )
                if activity["subject"] != stored.written_activity.get("subject"):
                    self._retitle_proposals(session, stored, str(activity["subject"]))
                stored.written_activity = activity
            if (_people(self._shown(stored)), stored.occurred_at) != stored.written_people:
                changed_people.append(stored)
        self.people.prefetch(
            session,
            (
                address
                for stored in changed_people
                for _, address in _people(self._shown(stored))
                if self._is_external(address)
            ),
        )
        for stored in changed_people:
            self._write_participants(session, stored)

    def _retitle_proposals(self, session: Session, stored: _Stored, summary: str) -> None:
        """Proposals name the meeting by its title as it stands (a counter-proposal may have
        arrived while only a "Canceled: ..." copy was known)."""
        if not summary:
            return
        session.execute(
            update(Activity)
            .where(
                Activity.message_key == meeting_key(stored.state.uid, stored.state.recurrence_key),
                Activity.kind == "meeting_proposal",
                Activity.content_level != "metadata",
                Activity.content_removed_reason.is_(None),
                Activity.unlogged_at.is_(None),
            )
            .values(subject=_proposal_title(summary))
        )

    def _write_participants(self, session: Session, stored: _Stored) -> None:
        """Bring the activity's participants in line with the state (a reply changes one row)."""
        wanted = _people(self._shown(stored))
        when = stored.occurred_at
        existing: dict[tuple[str, str], Any] = {}
        if stored.written_people is not None:
            for row in session.execute(
                select(
                    ActivityParticipant.id,
                    ActivityParticipant.role,
                    ActivityParticipant.address,
                    ActivityParticipant.name,
                    ActivityParticipant.response,
                    ActivityParticipant.contact_id,
                    ActivityParticipant.occurred_at,
                ).where(ActivityParticipant.activity_id == stored.activity_id)
            ):
                existing[(row.role, row.address or "")] = row
        gone = [r.id for key, r in existing.items() if key not in wanted]
        if gone:
            session.execute(delete(ActivityParticipant).where(ActivityParticipant.id.in_(gone)))
        externals = sum(1 for _, address in wanted if self._is_external(address))
        may_create = externals <= MAX_CREATED_CONTACTS
        new_rows = []
        for (role, address), (name, response) in wanted.items():
            person = Participant(address, "organizer" if role == "organizer" else "attendee", name)
            found = existing.get((role, address))
            if found is None:
                new_rows.append(
                    self._participant_row(
                        session,
                        stored.activity_id,
                        person,
                        response,
                        when,
                        stored.direction,
                        may_create or role == "organizer",
                    )
                )
                continue
            shown = choose_display_name([(name, when)], address)[:300] or found.name
            values: dict[str, object] = {}
            if (found.response, found.occurred_at, found.name) != (response, when, shown):
                values.update(response=response, occurred_at=when, name=shown)
            if found.contact_id is None and self._is_external(address):
                contact_id = self._contact(session, person, when, stored.direction, may_create)
                if contact_id is not None:
                    values["contact_id"] = contact_id
            if values:
                session.execute(
                    update(ActivityParticipant)
                    .where(ActivityParticipant.id == found.id)
                    .values(**values)
                )
        if new_rows:
            session.connection().execute(insert(PARTICIPANTS), new_rows)
        stored.written_people = (wanted, when)

    def _participant_row(
        self,
        session: Session,
        activity_id: int,
        person: Participant,
        response: str | None,
        when: datetime,
        way: str,
        may_create: bool,
    ) -> dict[str, object]:
        name = choose_display_name([(person.name, when)], person.address)
        contact_id = None
        if self._is_external(person.address):
            contact_id = self._contact(session, person, when, way, may_create)
        return {
            "activity_id": activity_id,
            "role": person.role,
            "address": person.address,
            "name": name[:300],
            "contact_id": contact_id,
            "response": response,
            "occurred_at": when,
        }

    def _contact(
        self, session: Session, person: Participant, when: datetime, way: str, may_create: bool
    ) -> int | None:
        # A meeting ahead is not contact yet: last-contacted dates never lie in the future.
        seen = Sighting(person.address, person.name, person.role, way, min(when, utcnow()))
        self.people.prefetch(session, [person.address])  # a no-op for what the batch fetched
        return self.people.contact_for(session, seen, may_create=may_create)

    def _series_of(self, stored: _Stored) -> _Stored | None:
        if not stored.state.derived:
            return None
        return self._stored.get((stored.state.uid, ""))

    def _shown(self, stored: _Stored) -> MeetingState:
        """The state the meeting shows: an occurrence's own messages laid over its series."""
        series = self._series_of(stored)
        return rebase(stored.state, series.state) if series is not None else stored.state

    def _refresh_occurred_at(self, stored: _Stored) -> None:
        stored.occurred_at = _occurred_at(self._shown(stored), stored.occurred_at)

    def _meeting_values(self, stored: _Stored) -> dict[str, object]:
        """The Meeting row: what the meeting shows, plus its own iTIP state as JSON."""
        state = self._shown(stored)
        return {
            "uid": state.uid,
            "recurrence_key": state.recurrence_key,
            "sequence": state.sequence,
            "dtstamp": state.dtstamp,
            "starts_at": state.start,
            "ends_at": state.end,
            "time_zone": (state.time_zone or None) and state.time_zone[:64],
            "all_day": state.all_day,
            "location": state.location[:1000],
            "online_meeting_url": state.online_meeting_url[:2000],
            "status": state.status[:20],
            "rrule": state.rrule,
            "exdates": [_iso(d) for d in state.exdates],
            "organizer_address": state.organizer[:320],
            "notes": stored.notes,
            "state": {
                **dump_state(stored.state),
                "content_version": _dump_version(stored.content_version),
            },
        }

    def _activity_values(self, stored: _Stored) -> dict[str, object]:
        """The activity row; an occurrence shown over its series has the series' content."""
        state = self._shown(stored)
        content = self._series_of(stored) if state is not stored.state else None
        source = content or stored
        return {
            "occurred_at": stored.occurred_at,
            "subject": state.summary[:1000],
            "snippet": _snippet(source.description),
            "body_text": source.description or None,
            "sender_address": state.organizer[:320],
            "sender_name": state.organizer_name[:300],
            "content_level": source.content_level,
            "is_private": stored.is_private or source.is_private,
        }

    # -- reading --------------------------------------------------------------------------------

    def _load(self, session: Session, uids: Iterable[str]) -> None:
        """Load (and on PostgreSQL lock) the stored meetings of these UIDs, exceptions included."""
        wanted = sorted(set(uids))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = (
                select(
                    MEETINGS,
                    ACTIVITIES.c.subject,
                    ACTIVITIES.c.body_text,
                    ACTIVITIES.c.content_level,
                    ACTIVITIES.c.is_private,
                    ACTIVITIES.c.unlogged_at,
                    ACTIVITIES.c.content_removed_reason,
                    ACTIVITIES.c.direction,
                    ACTIVITIES.c.occurred_at,
                )
                .join(ACTIVITIES, ACTIVITIES.c.id == MEETINGS.c.activity_id)
                .where(MEETINGS.c.uid.in_(chunk))
                .order_by(MEETINGS.c.uid, MEETINGS.c.recurrence_key)
            )
            if dialect_of(session) == "postgresql":
                query = query.with_for_update(of=MEETINGS)
            loaded: list[_Stored] = []
            for row in session.execute(query):
                state = load_state(row._mapping, row.subject or "")
                stored = _Stored(
                    activity_id=row.activity_id,
                    state=state,
                    description=row.body_text or "",
                    content_level=row.content_level,
                    is_private=row.is_private,
                    hidden=row.unlogged_at is not None or row.content_removed_reason is not None,
                    direction=row.direction,
                    occurred_at=row.occurred_at,
                    notes=list(row.notes or [])[:MAX_NOTES],
                    content_version=_load_version((row.state or {}).get("content_version")),
                )
                self._stored[(state.uid, state.recurrence_key)] = stored
                loaded.append(stored)
            for stored in loaded:  # once the series of every occurrence is there
                stored.written_meeting = self._meeting_values(stored)
                stored.written_activity = self._activity_values(stored)
                stored.written_people = (_people(self._shown(stored)), stored.occurred_at)

    # -- trace ----------------------------------------------------------------------------------

    def _observe(self, sighting: CalendarSighting, activity_id: int, way: str) -> None:
        self._result.observations.append(
            {
                "activity_id": activity_id,
                "link_id": self.link.id,
                "folder": sighting.folder,
                "provider_id": sighting.provider_id[:500],
                "direction": way,
                "seen_at": utcnow(),
                "deleted_at": None,
            }
        )

    def _decide(
        self,
        sighting: CalendarSighting,
        decision: str,
        rule: str | None,
        activity_id: int | None,
        detail: str = "",
        *,
        only_new: bool = False,
    ) -> None:
        row: dict[str, object] = {
            "link_id": self.link.id,
            "folder": sighting.folder,
            "message_key": meeting_key(*occurrence_key(sighting.item)),
            "provider_id": sighting.provider_id[:500],
            "decision": decision,
            "rule": rule,
            "detail": detail[:4000],
            "activity_id": activity_id,
            "quarantined_item_id": None,
            "decided_at": utcnow(),
        }
        (self._result.known_decisions if only_new else self._result.decisions).append(row)


# -- the state, stored ------------------------------------------------------------------------


def dump_state(state: MeetingState) -> dict[str, Any]:
    """A `MeetingState` as JSON, all but its content (title, place, link), which lives in columns
    that removing an activity's content clears.

    The JSON is the state `apply` works on; the columns hold what the meeting shows, which for
    a derived occurrence is its series laid over it (`itip.rebase`). Times keep their offset.
    Proposal comments are content too: they live on the proposal's own activity.
    """
    return {
        "v": 1,
        "sequence": state.sequence,
        "dtstamp": _iso(state.dtstamp),
        "start": _iso(state.start),
        "end": _iso(state.end),
        "time_zone": state.time_zone,
        "all_day": state.all_day,
        "floating": state.floating,
        "status": state.status,
        "rrule": state.rrule,
        "exdates": [_iso(d) for d in state.exdates],
        "rdates": [_iso(d) for d in state.rdates],
        "organizer": state.organizer,
        "organizer_name": state.organizer_name,
        "placeholder": state.placeholder,
        "derived": state.derived,
        "answers_from": state.answers_from,
        "attendees": {
            address: {
                "name": a.name,
                "response": a.response,
                "responded_at": _iso(a.responded_at),
                "sequence": a.sequence,
            }
            for address, a in state.attendees.items()
        },
        "proposals": [
            {
                "from": p.from_address,
                "start": _iso(p.start),
                "end": _iso(p.end),
                "dtstamp": _iso(p.dtstamp),
                "sequence": p.sequence,
                "declined": p.declined,
            }
            for p in state.proposals
        ],
    }


def meeting_state(meeting: Meeting, summary: str) -> MeetingState:
    """The `MeetingState` of a stored meeting; `summary` is its activity's subject (already cut
    to what the viewer may see, or the stored one)."""
    return load_state({c.key: getattr(meeting, c.key) for c in MEETINGS.columns}, summary)


def load_state(columns: Mapping[Any, Any], summary: str) -> MeetingState:
    """The `MeetingState` held by a Meeting row's columns and its activity's subject (the JSON
    `state` wins; the columns fill in what it lacks)."""
    data: Mapping[str, Any] = columns["state"] or {}

    def value(name: str, column: str) -> Any:
        return data[name] if name in data else columns[column]

    time_zone = value("time_zone", "time_zone")
    all_day = bool(value("all_day", "all_day"))
    floating = bool(data.get("floating"))
    zone = zone_by_name(time_zone) if time_zone and not all_day and not floating else None

    def local(text: object, fallback: datetime | None = None) -> datetime | None:
        moment = _parse(text) if isinstance(text, str) else fallback
        return moment.astimezone(zone.tz) if moment is not None and zone is not None else moment

    attendees = {
        str(address): AttendeeState(
            str(a.get("name", "")),
            _response(a.get("response")),
            _parse(a.get("responded_at")),
            int(a.get("sequence") or 0),
        )
        for address, a in (data.get("attendees") or {}).items()
        if isinstance(a, dict)
    }
    proposals = [
        Proposal(
            str(p.get("from", "")),
            local(p.get("start")),
            local(p.get("end")),
            _parse(p.get("dtstamp")),
            "",
            int(p.get("sequence") or 0),
            bool(p.get("declined")),
        )
        for p in (data.get("proposals") or [])
        if isinstance(p, dict)
    ]
    dtstamp = data.get("dtstamp")
    return MeetingState(
        uid=columns["uid"],
        recurrence_key=columns["recurrence_key"],
        sequence=int(value("sequence", "sequence") or 0),
        dtstamp=_parse(dtstamp) if "dtstamp" in data else columns["dtstamp"],
        summary=summary,
        start=local(data.get("start"), columns["starts_at"]),
        end=local(data.get("end"), columns["ends_at"]),
        time_zone=time_zone,
        all_day=all_day,
        location=columns["location"],
        online_meeting_url=columns["online_meeting_url"],
        status=str(value("status", "status")),
        rrule=value("rrule", "rrule"),
        exdates=[d for d in (_parse(x) for x in value("exdates", "exdates") or []) if d],
        organizer=str(value("organizer", "organizer_address")),
        attendees=attendees,
        proposals=proposals,
        placeholder=bool(data.get("placeholder")),
        organizer_name=str(data.get("organizer_name", "")),
        floating=floating,
        rdates=[d for d in (_parse(x) for x in data.get("rdates") or []) if d is not None],
        derived=bool(data.get("derived")),
        answers_from=int(data.get("answers_from") or 0),
    )


# -- occurrences, computed when shown -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence of a meeting: from its series' rule, or a moved/cancelled exception."""

    recurrence_key: str
    start: datetime
    end: datetime | None
    status: str


def occurrences(
    series: MeetingState,
    exceptions: Sequence[MeetingState] = (),
    *,
    start: datetime,
    end: datetime,
    limit: int = 50,
) -> list[Occurrence]:
    """The occurrences of `series` starting in [`start`, `end`), with its stored exceptions
    (moved or cancelled occurrences, same UID) laid over the rule's dates; at most `limit`."""
    as_item = CalendarItem(
        uid=series.uid,
        method="",
        start=series.start,
        end=series.end,
        all_day=series.all_day,
        rrule=series.rrule,
        exdates=list(series.exdates),
        rdates=list(series.rdates),
    )
    by_key = {e.recurrence_key: e for e in exceptions if e.uid == series.uid and e.recurrence_key}
    found: dict[str, Occurrence] = {}
    for when, until in expand_occurrences(as_item, start=start, end=end, limit=limit):
        key = _occurrence_key(when, series.all_day)
        moved = by_key.get(key)
        if moved is None:
            found[key] = Occurrence(key, when, until, series.status)
        elif moved.start is not None and start <= moved.start < end:
            found[key] = Occurrence(key, moved.start, moved.end, moved.status)
    for key, moved in by_key.items():
        if key not in found and moved.start is not None and start <= moved.start < end:
            found[key] = Occurrence(key, moved.start, moved.end, moved.status)  # moved into view
    return sorted(found.values(), key=lambda o: o.start)[:limit]


# -- small pieces -------------------------------------------------------------------------------


def at_level(item: CalendarItem, level: str) -> CalendarItem:
    """`item` with only the content `level` keeps: metadata none, subject the title, full all."""
    rank = _rank(level)
    if rank >= 2:
        return item
    return replace(
        item,
        summary=item.summary if rank >= 1 else "",
        location="",
        online_meeting_url="",
        description="",
        comment="",
    )


def _rank(level: str) -> int:
    return CAPTURE_LEVELS.index(level) if level in CAPTURE_LEVELS else 0


def _participants(state: MeetingState) -> list[Participant]:
    people = [Participant(state.organizer, "organizer")] if state.organizer else []
    people += [Participant(a, "attendee") for a in state.attendees]
    return people


def _people(state: MeetingState) -> _PeopleMap:
    """(role, address) -> (name, response) of the participants a state stores."""
    people: _PeopleMap = {}
    if state.organizer:
        people[("organizer", state.organizer)] = (state.organizer_name, None)
    for address, attendee in state.attendees.items():
        people[("attendee", address)] = (attendee.name, attendee.response)
    return people


def _occurred_at(state: MeetingState, fallback: datetime) -> datetime:
    """Where the meeting sits on the timeline: its start (a series: the first occurrence)."""
    return state.start or state.dtstamp or fallback


def _occurrence_key(when: datetime, all_day: bool) -> str:
    utc = when.astimezone(UTC)
    if all_day:
        return f"{utc:%Y%m%d}"
    return f"{utc:%Y%m%dT%H%M%S}Z"


def _proposal_title(summary: str) -> str:
    return ("New time proposed" + (f": {summary}" if summary else ""))[:1000]


def _proposal_identity(state: MeetingState, proposal: Proposal) -> str:
    seed = "\x1f".join(
        (
            state.uid,
            state.recurrence_key,
            proposal.from_address,
            _iso(proposal.start and proposal.start.astimezone(UTC)) or "",
            _iso(proposal.end and proposal.end.astimezone(UTC)) or "",
        )
    )
    return PROPOSAL_PREFIX + hashlib.sha256(seed.encode()).hexdigest()


def _proposal_details(stored: _Stored, proposal: Proposal) -> dict[str, object]:
    return {
        "meeting_activity_id": stored.activity_id,
        "uid": stored.state.uid,
        "recurrence_key": stored.state.recurrence_key,
        "proposed_start": _iso(proposal.start),
        "proposed_end": _iso(proposal.end),
        "time_zone": stored.state.time_zone,
        "declined": proposal.declined,
    }


def _detail(outcome: Outcome, item: CalendarItem) -> str:
    parts = [f"{item.method or 'calendar event'}: {outcome.action.replace('_', ' ')}"]
    if outcome.note:
        parts.append(outcome.note)
    if outcome.responses_reset:
        parts.append("the time changed: responses asked again")
    if item.notes:
        parts.append("read with repairs: " + "; ".join(item.notes[:10]))
    return "; ".join(parts)


def _version(item: CalendarItem) -> tuple[int, datetime]:
    return item.sequence, item.dtstamp or _NO_STAMP


def _dump_version(version: tuple[int, datetime] | None) -> list[object] | None:
    return None if version is None else [version[0], _iso(version[1])]


def _load_version(value: object) -> tuple[int, datetime] | None:
    if not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], int):
        return None
    return value[0], _parse(value[1]) or _NO_STAMP


def _merge_notes(notes: list[str], more: Iterable[str]) -> list[str]:
    merged = list(notes)
    for note in more:
        if note not in merged and len(merged) < MAX_NOTES:
            merged.append(note)
    return merged


def _snippet(text: str) -> str:
    return " ".join(text.split())[:SNIPPET_CHARS]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _response(value: object) -> Response:
    return cast(Response, value) if value in _RESPONSES else "needs_action"
