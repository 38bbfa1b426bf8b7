"""iTIP (RFC 5546) semantics: what one incoming calendar item does to a stored meeting.

Invites, updates, replies, counter-proposals and cancellations arrive in any order, several
times (one copy per mailbox that saw them) and sometimes years late (an import of an old PST).
The CRM must still end with one meeting per event in its true final state. The capture pipeline
loads the stored state for the item's key, calls `apply`, and stores what comes back; everything
here is a pure function of (state, item), so the ordering rules are tested without a database.

Keys: a series (or single event) is (UID, ""); one occurrence of a series is (UID, its original
start rendered by `calendar.recurrence_key`), because Graph gives each occurrence its own id but
every producer keeps UID + RECURRENCE-ID. A moved or cancelled occurrence is its own state.

Rules, and the decisions the RFC leaves open:

* REQUEST, PUBLISH, ADD (and a plain calendar event, method "") create or replace the state. An
  update wins only when its SEQUENCE is higher, or equal with a later DTSTAMP; older or duplicate
  copies change nothing ("ignored_older"). The organizer's attendee list replaces the stored one.
* Responses survive updates unless the start or end changed: then every attendee's response that
  answered an older SEQUENCE goes back to needs_action (Outlook and Google ask again when a
  meeting moves), except the organizer's. A non-needs_action PARTSTAT in the organizer's copy
  (Google includes everyone's) is taken when it is at least as recent as what is stored.
* REPLY sets only the replying attendee's response (every ATTENDEE of the REPLY: one, or two when
  delegating). A reply to a SEQUENCE older than the stored version's is ignored, RFC 5546 3.2.3,
  as is an older reply of the same attendee arriving after a newer one. "The stored version" is
  the last REQUEST applied (`answers_from`): a CANCEL raises SEQUENCE but asks nobody anything,
  so a reply to the version it cancelled still counts, whichever of the two arrives first.
* A REPLY (or COUNTER) for a meeting not seen yet creates a *placeholder* state from what the
  reply carries (summary, times, organizer, the replier's response). The organizer's REQUEST then
  always replaces it, whatever its SEQUENCE/DTSTAMP, keeping the replies that answer its version.
  This needs no separate "pending replies" store, and the reply is visible on the timeline.
* COUNTER is a proposal only: it is recorded (once per attendee and proposed time) and the
  meeting does not move. DECLINECOUNTER marks that attendee's proposals declined.
* CANCEL marks the event cancelled (or, with RECURRENCE-ID, only that occurrence): the meeting
  stays in history, at the times the cancellation gives (the organizer's newest copy). A CANCEL
  older than the stored version is ignored. RFC 5546's "CANCEL to some attendees only" cannot
  be told apart from the mailbox's point of view: it cancels too.
* A REPLY, COUNTER or CANCEL for one occurrence with no stored occurrence state starts from the
  series state, when the caller passes it as `series` (same summary, people, duration).
* Such an occurrence state is *derived*: it holds only what was said about that occurrence alone
  (who answered what, proposals, that it is cancelled, with the SEQUENCE/DTSTAMP of those
  messages), never the series' answers or status. `rebase` lays it over the series as the series
  stands now, so what is shown does not depend on whether the series, the occurrence's messages
  or a series update arrived first. A cancellation of one occurrence is never "older" than the
  series (the series' versions are not the occurrence's); it is undone only by a newer REQUEST
  for that occurrence, which also makes it a full (moved) occurrence of its own again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from server.mail_ingest.calendar import recurrence_key
from server.mail_ingest.items import CalendarItem, Participant, Response

__all__ = [
    "Action",
    "AttendeeState",
    "MeetingState",
    "Outcome",
    "Proposal",
    "apply",
    "occurrence_key",
    "original_start",
    "rebase",
    "series_key",
]

Action = Literal[
    "created",
    "updated",
    "published",
    "ignored_older",
    "reply_recorded",
    "reply_ignored_outdated",
    "counter_recorded",
    "counter_declined",
    "cancelled",
    "ignored",
]
MAX_PROPOSALS = 50


@dataclass(frozen=True, slots=True)
class AttendeeState:
    """One attendee's standing: `responded_at` is the DTSTAMP of the message that set `response`
    and `sequence` the meeting version it answers (None/0 when nobody has answered)."""

    name: str = ""
    response: Response = "needs_action"
    responded_at: datetime | None = None
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class Proposal:
    """A COUNTER: an attendee asked for another time (the meeting did not move)."""

    from_address: str
    start: datetime | None
    end: datetime | None
    dtstamp: datetime | None
    comment: str = ""
    sequence: int = 0
    declined: bool = False


@dataclass(slots=True)
class MeetingState:
    """What is stored for one (uid, recurrence_key); `apply` never mutates one."""

    uid: str
    recurrence_key: str = ""
    sequence: int = 0
    dtstamp: datetime | None = None
    summary: str = ""
    start: datetime | None = None
    end: datetime | None = None
    time_zone: str | None = None
    all_day: bool = False
    location: str = ""
    online_meeting_url: str = ""
    status: str = "confirmed"
    rrule: str | None = None
    exdates: list[datetime] = field(default_factory=list)
    organizer: str = ""
    attendees: dict[str, AttendeeState] = field(default_factory=dict)
    proposals: list[Proposal] = field(default_factory=list)
    placeholder: bool = False  # built from a REPLY/COUNTER before the organizer's invite arrived
    organizer_name: str = ""
    floating: bool = False  # wall-clock times without a zone (see server.mail_ingest.calendar)
    rdates: list[datetime] = field(default_factory=list)  # extra occurrences of a series
    derived: bool = False  # one occurrence's replies/counters/cancellation only: see `rebase`
    answers_from: int = 0  # the SEQUENCE replies must answer: the last REQUEST's (0 if none)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What `apply` did: the state to store (the given one when `changed` is False)."""

    action: Action
    state: MeetingState | None
    changed: bool
    created: bool = False  # no state was stored for this key before
    responses_reset: bool = False  # the time changed and answers went back to needs_action
    note: str = ""


def occurrence_key(item: CalendarItem) -> tuple[str, str]:
    """(uid, recurrence_key) of the state `item` applies to."""
    return item.uid, recurrence_key(item)


def series_key(item: CalendarItem) -> tuple[str, str]:
    """(uid, "") of the series (or single event) `item` belongs to."""
    return item.uid, ""


def apply(
    state: MeetingState | None, item: CalendarItem, *, series: MeetingState | None = None
) -> Outcome:
    """Apply one calendar item to the stored state of its key (None when nothing is stored).

    `series` is the stored series state, used only when `state` is None and `item` is a reply,
    counter or cancellation for one occurrence. Raises ValueError if `state` is for another key.
    """
    key = occurrence_key(item)
    if state is not None and (state.uid, state.recurrence_key) != key:
        raise ValueError(f"state {state.uid!r}/{state.recurrence_key!r} is not for {key!r}")
    method = item.method.upper() or "PUBLISH"
    if method in ("REQUEST", "PUBLISH", "ADD"):
        return _update(state, item, method)
    base, created = state, state is None
    if base is None and series is not None and key[1] and series.uid == item.uid:
        base = _occurrence_of(series, item, key[1])
    if method == "DECLINECOUNTER":
        return _decline_counter(state, item)
    if method == "REPLY":
        outcome = _reply(base, item, created)
    elif method == "COUNTER":
        outcome = _counter(base, item, created)
    elif method == "CANCEL":
        outcome = _cancel(base, item, created)
    else:
        return Outcome("ignored", state, False, note=f"method {method} changes nothing")
    if key[1] and (base is None or base.derived):
        return _as_derived(outcome, base, method)
    return outcome


def _as_derived(outcome: Outcome, base: MeetingState | None, method: str) -> Outcome:
    """Keep an occurrence state derived: what it says about people is only their own answers."""
    if outcome.state is None or not outcome.changed:
        return outcome
    new = replace(outcome.state, derived=True)
    if method == "CANCEL":
        # The PARTSTATs in a cancellation are the organizer's copy of the series' answers.
        unanswered = {a: AttendeeState(x.name) for a, x in new.attendees.items()}
        new.attendees = {**unanswered, **(base.attendees if base is not None else {})}
    return replace(outcome, state=new)


def original_start(key: str) -> datetime | None:
    """The original start a recurrence key names (`calendar.recurrence_key`'s inverse), in UTC."""
    for pattern in ("%Y%m%dT%H%M%SZ", "%Y%m%d"):
        try:
            return datetime.strptime(key, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def rebase(occurrence: MeetingState, series: MeetingState | None) -> MeetingState:
    """What a derived occurrence shows: the series as it stands now (title, place, people,
    duration, status), at the occurrence's original start, with the occurrence's own answers,
    proposals and cancellation laid over it. Anything else is returned as it is: a full (moved)
    occurrence, or one whose series is unknown or only a placeholder."""
    if not occurrence.derived or series is None or series.placeholder or series.start is None:
        return occurrence
    start = original_start(occurrence.recurrence_key)
    if start is None:
        return occurrence
    if not series.all_day and not series.floating:
        start = start.astimezone(series.start.tzinfo)
    attendees = dict(series.attendees)
    for address, own in occurrence.attendees.items():
        theirs = attendees.get(address)
        if own.responded_at is None:
            continue
        if theirs is None or theirs.responded_at is None or own.responded_at >= theirs.responded_at:
            attendees[address] = replace(own, name=own.name or (theirs.name if theirs else ""))
    return replace(
        series,
        recurrence_key=occurrence.recurrence_key,
        start=start,
        end=start + (series.end - series.start) if series.end is not None else None,
        rrule=None,
        exdates=[],
        rdates=[],
        status="cancelled" if occurrence.status == "cancelled" else series.status,
        attendees=attendees,
        proposals=list(occurrence.proposals),
        derived=True,
    )


def _unchanged(action: Action, state: MeetingState | None, created: bool, note: str) -> Outcome:
    """Nothing to store; a state derived from the series for this call is not handed back."""
    return Outcome(action, None if created else state, False, note=note)


def _newer(item: CalendarItem, state: MeetingState, *, or_same: bool = False) -> bool:
    """Whether `item` is a later version than `state` (RFC 5546 2.1.5: SEQUENCE, then DTSTAMP)."""
    if item.sequence != state.sequence:
        return item.sequence > state.sequence
    if item.dtstamp is None or state.dtstamp is None:
        return or_same or (item.dtstamp is not None and state.dtstamp is None)
    return item.dtstamp > state.dtstamp or (or_same and item.dtstamp == state.dtstamp)


def _attendees(item: CalendarItem) -> list[Participant]:
    return [p for p in item.participants if p.role == "attendee"]


def _organizer(item: CalendarItem) -> str:
    return next((p.address for p in item.participants if p.role == "organizer"), "")


def _from_item(item: CalendarItem, *, with_times: bool = True) -> MeetingState:
    """A state holding exactly what `item` says (responses stamped with its DTSTAMP)."""
    attendees = {
        p.address: AttendeeState(
            p.name,
            p.response or "needs_action",
            item.dtstamp if (p.response or "needs_action") != "needs_action" else None,
            item.sequence,
        )
        for p in _attendees(item)
    }
    return MeetingState(
        uid=item.uid,
        recurrence_key=recurrence_key(item),
        sequence=item.sequence,
        dtstamp=item.dtstamp,
        summary=item.summary,
        start=item.start if with_times else None,
        end=item.end if with_times else None,
        time_zone=item.time_zone if with_times else None,
        all_day=item.all_day if with_times else False,
        location=item.location,
        online_meeting_url=item.online_meeting_url,
        status=item.status,
        rrule=item.rrule,
        exdates=list(item.exdates),
        organizer=_organizer(item),
        attendees=attendees,
        organizer_name=next((p.name for p in item.participants if p.role == "organizer"), ""),
        floating=item.floating if with_times else False,
        rdates=list(item.rdates),
        answers_from=item.sequence,
    )


def _occurrence_of(series: MeetingState, item: CalendarItem, key: str) -> MeetingState:
    """The derived state one occurrence of `series` has before anything was said about it alone:
    the series' title, people and duration, but no answers, status or version of its own."""
    start = item.recurrence_id
    end = None
    if start is not None and series.start is not None and series.end is not None:
        end = start + (series.end - series.start)
    return replace(
        series,
        recurrence_key=key,
        sequence=0,
        dtstamp=None,
        start=start,
        end=end,
        status="confirmed",
        rrule=None,
        exdates=[],
        rdates=[],
        attendees={a: AttendeeState(x.name) for a, x in series.attendees.items()},
        proposals=[],
        placeholder=False,
        derived=True,
        answers_from=0,
    )


def _update(state: MeetingState | None, item: CalendarItem, method: str) -> Outcome:
    action: Action = "published" if method == "PUBLISH" else "updated"
    if state is None:
        new = _from_item(item)
        return Outcome("published" if method == "PUBLISH" else "created", new, True, created=True)
    if not state.placeholder and not _newer(item, state):
        return Outcome("ignored_older", state, False, note="not newer than the stored version")
    new = _from_item(item)
    moved = (state.start, state.end, state.all_day) != (new.start, new.end, new.all_day)
    reset = False
    attendees: dict[str, AttendeeState] = {}
    for address, offered in new.attendees.items():
        old = state.attendees.get(address)
        if old is None:
            attendees[address] = offered
            continue
        kept = old
        if moved and old.sequence < item.sequence and address != new.organizer:
            if old.response != "needs_action":
                reset = True
            kept = AttendeeState(old.name, "needs_action", None, item.sequence)
        if offered.response != "needs_action" and (
            kept.responded_at is None
            or (offered.responded_at is not None and offered.responded_at >= kept.responded_at)
        ):
            kept = offered
        attendees[address] = replace(kept, name=offered.name or old.name)
    for address, old in state.attendees.items():
        # Someone who answered this version (a forwarded invite) stays though the list omits them.
        answered = old.responded_at is not None and old.sequence >= item.sequence
        if address not in attendees and answered:
            attendees[address] = old
    new.attendees = attendees
    new.proposals = list(state.proposals)
    if item.dtstamp is None:
        new.dtstamp = state.dtstamp
    changed = new != state
    return Outcome(action, new, changed, responses_reset=reset)


def _reply(state: MeetingState | None, item: CalendarItem, created: bool) -> Outcome:
    repliers = _attendees(item)
    if not repliers:
        return _unchanged("ignored", state, created, "REPLY without an ATTENDEE")
    if state is None:
        new = _from_item(item)
        new.placeholder, new.status, new.answers_from = True, "confirmed", 0
        return Outcome("reply_recorded", new, True, created=True, note="reply before the invite")
    if item.sequence < state.answers_from:
        note = f"reply to version {item.sequence}, stored {state.answers_from}"
        return _unchanged("reply_ignored_outdated", state, created, note)
    attendees = dict(state.attendees)
    recorded = False
    for person in repliers:
        old = attendees.get(person.address)
        if (
            old is not None
            and old.responded_at is not None
            and (old.sequence, old.responded_at) > (item.sequence, item.dtstamp or old.responded_at)
        ):
            continue  # this attendee already answered later
        recorded = True
        name = person.name or (old.name if old is not None else "")
        response = person.response or "needs_action"
        attendees[person.address] = AttendeeState(name, response, item.dtstamp, item.sequence)
    if not recorded:
        note = "a later reply of this attendee is stored"
        return _unchanged("reply_ignored_outdated", state, created, note)
    new = replace(state, attendees=attendees)
    return Outcome("reply_recorded", new, created or new != state, created=created)


def _proposer(item: CalendarItem) -> str:
    people = _attendees(item)
    answered = [p for p in people if (p.response or "needs_action") != "needs_action"]
    return (answered or people)[0].address if people else ""


def _counter(state: MeetingState | None, item: CalendarItem, created: bool) -> Outcome:
    proposer = _proposer(item)
    if not proposer:
        return _unchanged("ignored", state, created, "COUNTER without an ATTENDEE")
    proposal = Proposal(proposer, item.start, item.end, item.dtstamp, item.comment, item.sequence)
    if state is None:
        # The proposed times are not the meeting's: the placeholder has none yet.
        new = _from_item(item, with_times=False)
        new.placeholder, new.status, new.attendees, new.answers_from = True, "confirmed", {}, 0
        new.proposals = [proposal]
        return Outcome("counter_recorded", new, True, created=True, note="counter before invite")
    same = [
        p
        for p in state.proposals
        if (p.from_address, p.start, p.end) == (proposer, proposal.start, proposal.end)
    ]
    if same:
        return _unchanged("counter_recorded", state, created, "proposal already recorded")
    proposals = [*state.proposals, proposal][-MAX_PROPOSALS:]
    return Outcome("counter_recorded", replace(state, proposals=proposals), True, created=created)


def _decline_counter(state: MeetingState | None, item: CalendarItem) -> Outcome:
    people = {p.address for p in _attendees(item)}
    if state is None or not people:
        return Outcome("ignored", state, False, note="DECLINECOUNTER for nothing stored")
    proposals = [
        replace(p, declined=True) if p.from_address in people else p for p in state.proposals
    ]
    new = replace(state, proposals=proposals)
    return Outcome("counter_declined", new, new != state)


def _cancel(state: MeetingState | None, item: CalendarItem, created: bool) -> Outcome:
    if state is None:
        new = _from_item(item)
        new.status, new.answers_from = "cancelled", 0
        return Outcome("cancelled", new, True, created=True, note="cancellation before the invite")
    if not state.placeholder and not _newer(item, state, or_same=True):
        return _unchanged("ignored_older", state, created, "cancellation of an older version")
    base = state
    if state.placeholder:
        base = _from_item(item)
        base.attendees = {**base.attendees, **state.attendees}
        base.proposals = list(state.proposals)
    elif item.start is not None and not state.derived:
        # The organizer's newest copy: its times are the meeting's (an update moving it may
        # arrive after the cancellation, and is then older and ignored).
        base = replace(
            state,
            start=item.start,
            end=item.end,
            time_zone=item.time_zone,
            all_day=item.all_day,
            floating=item.floating,
        )
    new = replace(
        base,
        status="cancelled",
        sequence=max(state.sequence, item.sequence),
        dtstamp=item.dtstamp or state.dtstamp,
        placeholder=False,
        answers_from=state.answers_from,
    )
    return Outcome("cancelled", new, created or new != state, created=created)
