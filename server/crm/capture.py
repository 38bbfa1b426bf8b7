"""The capture core: prepared mail items for one linked mailbox → activities, exactly once.

Identity. An email is one activity whatever mailbox or folder it was seen in, and however often:
its `identity` is its message key (normalised Message-ID, or a stable header hash when it has
none) plus its sender. A Message-ID reused by another sender is therefore another activity, and
one reused by the same sender at a clearly different date (a broken mailer) gets the date added.
Each sighting is a `MailboxObservation` (link, folder) → "the set of (mailbox, folder, message)
observations equals what the mailbox holds".

Levels. What an activity keeps depends on the capture level of the links that saw it (metadata:
participants and dates; subject: plus subject and attachment names; full: plus snippet, body,
raw MIME and attachment content). Messages marked private or confidential keep metadata only. A
fuller link seeing a known email fills in what a sparser one left out — unless a person unlogged
the email or a rule removed its content: both stick through any later resync or re-import.

Meetings. Calendar items (an email's text/calendar parts, .ics files) are captured after the
batch's emails by `server.crm.meetings`, with the same rules and levels; an email that carries an
invite is captured as an email and its meeting as a meeting.

Everything for a batch is written in the caller's transaction; the caches here are only valid
while that transaction's writes are (call `forget()` after a rollback).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from server.crm import privacy, webhooks
from server.crm.addresses import choose_display_name
from server.crm.blobs import put_blobs
from server.crm.bounces import record_bounces
from server.crm.meetings import CalendarSighting, MeetingBatch, MeetingCapture
from server.crm.people import People, Sighting
from server.crm.prepared import Prepared, effective_level
from server.crm.rules import CapturePolicy, in_domains, skip_reason
from server.crm.signals import dirty as signals_dirty
from server.crm.sql import (
    dialect_of,
    insert_for,
    insert_ignore,
    insert_ignore_returning,
    insert_rows,
    upsert,
)
from server.crm.sure_skips import header_verdict
from server.crm.thread_store import ThreadStore
from server.mail_ingest.items import CAPTURE_LEVELS, MailItem
from server.models import (
    Activity,
    Attachment,
    QuarantinedItem,
    utcnow,
)

SAME_EMAIL_DATE_TOLERANCE = timedelta(days=2)

# Statements every batch runs, built once with their lists as expanding parameters: built per
# batch, their IN lists stayed in reference cycles until a full garbage collection.
_KNOWN_EMAILS = select(
    Activity.id,
    Activity.identity,
    Activity.message_key,
    Activity.sender_address,
    Activity.occurred_at,
    Activity.content_level,
    Activity.unlogged_at,
    Activity.content_removed_reason,
).where(Activity.message_key.in_(bindparam("keys", expanding=True)), Activity.kind == "email")
STORED_ROLES = ("from", "to", "cc", "bcc")


@dataclass(frozen=True)
class LinkInfo:
    id: int
    owner_addresses: frozenset[str]
    owner_user_id: int | None
    capture_level: str


@dataclass
class CaptureCounts:
    captured: int = 0
    known: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    # What calendar items did: "new", "updated", "unchanged" or "skipped" meetings. Not part of
    # `total`, which counts messages and files (the progress bar's unit).
    meetings: Counter[str] = field(default_factory=Counter)

    def add(self, other: CaptureCounts) -> None:
        self.captured += other.captured
        self.known += other.known
        self.skipped.update(other.skipped)
        self.quarantined.update(other.quarantined)
        self.meetings.update(other.meetings)

    @property
    def total(self) -> int:
        return (
            self.captured + self.known + sum(self.skipped.values()) + sum(self.quarantined.values())
        )


@dataclass
class _Known:
    """An email activity, stored or about to be (then `id` is filled after the batch insert)."""

    id: int | None
    identity: str
    message_key: str
    sender: str
    occurred_at: datetime
    content_level: str
    hidden: bool
    values: dict[str, object] = field(default_factory=dict)
    blobs: list[dict[str, object]] = field(default_factory=list)
    raced: bool = False  # another process inserted the same identity first


@dataclass
class _Planned:
    prepared: Prepared
    outcome: str  # "captured", "known", or the rule that skips it
    way: str = "incoming"
    target: _Known | None = None


def email_identity(message_key: str, sender: str) -> str:
    """Message key and sender: the same email however many mailboxes saw it. A very long sender
    address is hashed so the identity always fits its column (700 characters)."""
    if len(message_key) + len(sender) > 640:
        sender = "sha256:" + hashlib.sha256(sender.encode()).hexdigest()
    return f"{message_key}|{sender}"


def level_index(level: str) -> int:
    return CAPTURE_LEVELS.index(level)


log = logging.getLogger(__name__)

ACTIVITIES = cast(Table, Activity.__table__)


class Capturer:
    """Captures prepared items seen in one linked mailbox, batch after batch."""

    def __init__(
        self, link: LinkInfo, policy: CapturePolicy, *, since: datetime | None = None
    ) -> None:
        self.link = link
        self.policy = policy
        self.since = since
        self.people = People(policy.auto_create)
        self.threads = ThreadStore()
        self.meetings = MeetingCapture(link, policy, self.people, since=since)
        self._external: dict[str, bool] = {}  # `_is_external`, for one batch

    def forget(self) -> None:
        """Drop cached ids after the batch's transaction rolled back."""
        self.people.forget()
        self.threads.forget()
        self.meetings.forget()

    # -- the batch ------------------------------------------------------------------------------

    def capture_batch(self, session: Session, batch: list[Prepared]) -> CaptureCounts:
        """Decide every email in order, insert the new activities in one statement, then the
        meetings the batch carries; write participants, attachments, observations and decisions
        in one statement each."""
        counts = CaptureCounts()
        for prepared in batch:
            if prepared.quarantine_reason is not None:
                self._quarantine(session, prepared)
                counts.quarantined[prepared.quarantine_reason] += 1
        live = [p for p in batch if p.quarantine_reason is None]
        for prepared in live:  # before the rules, which skip bounces as automated mail
            prepared.trace_note = record_bounces(session, prepared.report)
        # Erased people become their placeholders before anything is decided or stored.
        privacy.hide_erased_people(session, live)
        mails = [p for p in live if p.item is not None]
        calendars = [p for p in live if p.item is None or p.calendar]
        rows = _Rows()
        thread_stats: dict[int, tuple[datetime, datetime, int]] = {}
        skipped_by: dict[int, str] = {}
        if mails:
            skipped_by = self._capture_mails(session, mails, rows, counts, thread_stats)
            # The emails' new contacts, made together before the meetings look people up.
            self.people.create(session)
            for row in rows.participants:
                row["contact_id"] = self.people.resolve(row["contact_id"])  # type: ignore[arg-type]
        calendars = self._without_erased_meetings(calendars, rows, counts)
        if calendars:
            self._capture_meetings(session, calendars, skipped_by, rows, counts)
        rows.write(session)
        self.threads.touch(session, thread_stats)
        self.people.flush(session)
        signals_dirty.mark_touched(session, (a for _, a in rows.observations))
        seen = sorted({a for _, a in rows.observations})
        if seen:
            webhooks.emit(
                session, "activity.captured", {"activity_ids": seen, "link_id": self.link.id}
            )
        # Each batch prefetches what it needs; caches kept across batches would grow with the
        # mailbox (memory must stay flat from a thousand messages to a hundred thousand).
        self.threads.forget()
        self.people.trim()
        self._external.clear()
        return counts

    def _capture_mails(
        self,
        session: Session,
        mails: list[Prepared],
        rows: _Rows,
        counts: CaptureCounts,
        thread_stats: dict[int, tuple[datetime, datetime, int]],
    ) -> dict[int, str]:
        """Capture the emails; return the rule that skipped each skipped one (by `id()`)."""
        known = self._known_activities(session, {p.message_key for p in mails})
        self.threads.prefetch(session, (k for p in mails if p.keys for k in p.keys.all_keys()))
        self.people.prefetch(session, self._external_addresses(mails))

        plan = [self._plan(session, prepared, known, rows.now) for prepared in mails]
        new = [s.target for s in plan if s.outcome == "captured" and s.target is not None]
        self.threads.create(session)
        for target in new:  # threads started or merged while the batch was planned
            target.values["thread_id"] = self.threads.resolve(target.values["thread_id"])  # type: ignore[arg-type]
        put_blobs(session, [b for target in new for b in target.blobs])
        self._insert_activities(session, new)

        skipped_by: dict[int, str] = {}
        for step in plan:
            outcome = self._apply(session, step, rows, thread_stats)
            if outcome == "captured":
                counts.captured += 1
            elif outcome == "known":
                counts.known += 1
            else:
                counts.skipped[outcome] += 1
                skipped_by[id(step.prepared)] = outcome
        return skipped_by

    def _capture_meetings(
        self,
        session: Session,
        calendars: list[Prepared],
        skipped_by: dict[int, str],
        rows: _Rows,
        counts: CaptureCounts,
    ) -> None:
        """Capture the calendar items of emails and .ics files (an .ics file also counts as a
        message: captured when it brought a new meeting, known, or skipped by its first rule)."""
        sightings = [
            CalendarSighting(item, p.folder, p.provider_id, skipped_by.get(id(p)))
            for p in calendars
            for item in p.calendar
        ]
        result = self.meetings.capture(session, sightings)
        rows.add_meetings(result)
        counts.meetings.update(result.counts)
        position = 0
        for prepared in calendars:
            outcomes = result.outcomes[position : position + len(prepared.calendar)]
            position += len(prepared.calendar)
            if prepared.item is not None:
                continue  # the email carrying them was counted
            if "captured" in outcomes:
                counts.captured += 1
            elif "known" in outcomes:
                counts.known += 1
            else:
                counts.skipped[outcomes[0] if outcomes else "empty_calendar"] += 1

    def _without_erased_meetings(
        self, calendars: list[Prepared], rows: _Rows, counts: CaptureCounts
    ) -> list[Prepared]:
        """Calendar items whose only outside party was erased are not captured; an .ics file
        left with none is skipped by the rule "suppressed"."""
        kept = []
        for prepared in calendars:
            events = [
                event
                for event in prepared.calendar
                if not privacy.only_erased_people(
                    (p.address for p in event.participants), self._is_external
                )
            ]
            if prepared.item is None and prepared.calendar and not events:
                rows.decision(self.link.id, prepared, "skipped", "suppressed")
                counts.skipped["suppressed"] += 1
                continue
            prepared.calendar = events
            kept.append(prepared)
        return kept

    def _plan(
        self, session: Session, prepared: Prepared, known: dict[str, list[_Known]], now: datetime
    ) -> _Planned:
        """What to do with one item: skip it, note another sighting, or create an activity."""
        item = prepared.item
        assert item is not None
        assert prepared.keys is not None
        sender = item.sender.address if item.sender else ""
        occurred_at = item.date or utcnow()
        key = prepared.message_key
        if self.since is not None and item.date is not None and item.date < self.since:
            return _Planned(prepared, "older_than_since")
        outside = (p.address for p in item.participants if p.role in STORED_ROLES)
        if privacy.only_erased_people(outside, self._is_external):
            return _Planned(prepared, "suppressed")  # its only outside party was erased
        internal = self.policy.internal_domains
        verdict = prepared.verdict
        if verdict is None or not verdict.holds_for(internal, self.link.owner_addresses):
            verdict = header_verdict(
                item, internal_domains=internal, owner_addresses=self.link.owner_addresses
            )
        way = verdict.direction
        rule = skip_reason(
            item,
            self.policy,
            owner_user_id=self.link.owner_user_id,
            verdict=verdict,
            owner_addresses=self.link.owner_addresses,
        )
        if rule is not None:
            return _Planned(prepared, rule)
        match = _find_same_email(known.get(key, []), sender, item.date)
        if match is not None:
            return _Planned(prepared, "known", way, match)

        identity = email_identity(key, sender)
        if any(k.identity == identity for k in known.get(key, [])):
            identity = f"{identity}|{occurred_at:%Y%m%dT%H%M}"
        level = self._level(prepared, item)
        thread_id = self.threads.assign(
            session, prepared.keys, subject=item.subject, occurred_at=occurred_at
        )
        target = _Known(None, identity, key, sender, occurred_at, level, hidden=False)
        target.values = self._activity_values(
            prepared, identity, level, way, thread_id, occurred_at, now
        )
        if level == "full":
            target.blobs = [b for b in (prepared.raw_blob, prepared.body_blob) if b is not None]
        known.setdefault(key, []).append(target)
        return _Planned(prepared, "captured", way, target)

    def _level(self, prepared: Prepared, item: MailItem) -> str:
        """The level to capture `item` at: the link's, less for private mail, and at most
        "subject" when its parse worker did not read its content (`sure_skips`). That cannot
        happen while capture and its workers apply the same rules; if it does, the email is
        still captured, and says why its content is missing."""
        level = effective_level(item, self.link.capture_level)
        skipped_by = prepared.content_skipped_by
        if skipped_by is None or level_index(level) <= level_index("subject"):
            return level
        log.warning(
            "captured an email whose parse worker saw a rule skip it",
            extra={"message_key": prepared.message_key, "rule": skipped_by},
        )
        note = f"content not read: the parse worker expected rule {skipped_by} to skip it"
        prepared.trace_note = "; ".join(n for n in (prepared.trace_note, note) if n)
        return "subject"

    def _insert_activities(self, session: Session, new: list[_Known]) -> None:
        """One multi-row INSERT; an identity another process inserted a moment ago is looked up."""
        if not new:
            return
        inserted = insert_ignore_returning(
            session, "activities", ["identity"], ["identity", "id"], [t.values for t in new]
        )
        ids = dict(inserted)
        for target in new:
            target.id = ids.get(target.identity)
            if target.id is None:
                target.raced = True
                target.id = session.execute(
                    select(Activity.id).where(Activity.identity == target.identity)
                ).scalar_one()

    def _apply(
        self,
        session: Session,
        step: _Planned,
        rows: _Rows,
        thread_stats: dict[int, tuple[datetime, datetime, int]],
    ) -> str:
        prepared, target = step.prepared, step.target
        if step.outcome not in ("known", "captured"):
            rows.decision(self.link.id, prepared, "skipped", step.outcome)
            return step.outcome
        assert target is not None and target.id is not None
        self._observe(rows, prepared, target.id, step.way)
        if step.outcome == "known" or target.raced:
            detail = "unlogged or removed by a rule; kept that way" if target.hidden else ""
            rows.decision(self.link.id, prepared, "known", None, target.id, detail, only_new=True)
            if not target.hidden and not target.raced:
                self._maybe_fill_in(session, target, prepared)
            return "known"
        item = prepared.item
        assert item is not None
        thread_id = int(target.values["thread_id"])  # type: ignore[call-overload]
        first, last, added = thread_stats.get(
            thread_id, (target.occurred_at, target.occurred_at, 0)
        )
        thread_stats[thread_id] = (
            min(first, target.occurred_at),
            max(last, target.occurred_at),
            added + 1,
        )
        self._participants(session, rows, item, target.id, step.way, target.occurred_at)
        if level_index(target.content_level) >= 1:
            self._attachments(rows, prepared, target.id, target.content_level)
        rows.decision(self.link.id, prepared, "captured", None, target.id)
        return "captured"

    # -- pieces ---------------------------------------------------------------------------------

    def _known_activities(self, session: Session, keys: set[str]) -> dict[str, list[_Known]]:
        known: dict[str, list[_Known]] = {}
        key_list = sorted(keys)
        for start in range(0, len(key_list), 500):
            chunk = key_list[start : start + 500]
            rows = session.execute(_KNOWN_EMAILS, {"keys": chunk})
            for row in rows:
                known.setdefault(row.message_key, []).append(
                    _Known(
                        row.id,
                        row.identity,
                        row.message_key,
                        row.sender_address,
                        row.occurred_at,
                        row.content_level,
                        hidden=row.unlogged_at is not None
                        or row.content_removed_reason is not None,
                    )
                )
        return known

    def _external_addresses(self, mails: list[Prepared]) -> set[str]:
        addresses: set[str] = set()
        for prepared in mails:
            assert prepared.item is not None
            for p in prepared.item.participants:
                if p.address and p.role in STORED_ROLES and self._is_external(p.address):
                    addresses.add(p.address)
        return addresses

    def _is_external(self, address: str) -> bool:
        """Asked ~6 times an email for the same few hundred addresses of a batch: kept."""
        external = self._external.get(address)
        if external is None:
            external = address not in self.link.owner_addresses and not in_domains(
                address, self.policy.internal_domains
            )
            self._external[address] = external
        return external

    def _activity_values(
        self,
        prepared: Prepared,
        identity: str,
        level: str,
        way: str,
        thread_id: int,
        occurred_at: datetime,
        now: datetime,
    ) -> dict[str, object]:
        item = prepared.item
        assert item is not None
        rank = level_index(level)
        return {
            "kind": "email",
            "identity": identity,
            "message_key": prepared.message_key,
            "thread_id": thread_id,
            "occurred_at": occurred_at,
            "direction": way,
            "subject": item.subject[:1000] if rank >= 1 else "",
            "snippet": item.snippet if rank == 2 else "",
            "body_text": None,
            "body_blob": _sha(prepared.body_blob) if rank == 2 else None,
            "raw_blob": _sha(prepared.raw_blob) if rank == 2 else None,
            "sender_address": item.sender.address if item.sender else "",
            "sender_name": (item.sender.name if item.sender else "")[:300],
            "content_level": level,
            "is_private": effective_level(item, "full") == "metadata",
            "has_attachments": bool(item.attachments),
            "size": item.size,
            "details": {"defects": item.defects[:20]} if item.defects else {},
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }

    def _participants(
        self,
        session: Session,
        rows: _Rows,
        item: MailItem,
        activity_id: int,
        way: str,
        occurred_at: datetime,
    ) -> None:
        seen: set[tuple[str, str]] = set()
        for p in item.participants:
            if p.role not in STORED_ROLES or not p.address or (p.role, p.address) in seen:
                continue
            seen.add((p.role, p.address))
            contact_id = None
            name = choose_display_name([(p.name, occurred_at)], p.address)
            if self._is_external(p.address):
                sighting = Sighting(p.address, name, p.role, way, occurred_at)
                contact_id = self.people.contact_for(session, sighting, deferred=True)
            rows.participants.append(
                {
                    "activity_id": activity_id,
                    "role": p.role,
                    "address": p.address,
                    "name": name[:300],
                    "contact_id": contact_id,
                    "occurred_at": occurred_at,
                }
            )

    def _attachments(self, rows: _Rows, prepared: Prepared, activity_id: int, level: str) -> None:
        item = prepared.item
        assert item is not None
        for index, attachment in enumerate(item.attachments):
            blob = (
                prepared.attachment_blobs[index] if index < len(prepared.attachment_blobs) else None
            )
            if level == "full" and blob is not None:
                rows.blobs.append(blob)
            rows.attachments.append(
                {
                    "activity_id": activity_id,
                    "filename": attachment.filename[:500],
                    "content_type": attachment.content_type[:200],
                    "size": attachment.size,
                    "sha256": attachment.sha256,
                    "blob_sha256": _sha(blob) if level == "full" and blob is not None else None,
                    "inline": attachment.inline,
                }
            )

    def _observe(self, rows: _Rows, prepared: Prepared, activity_id: int, way: str) -> None:
        rows.observations[(prepared.folder, activity_id)] = {
            "activity_id": activity_id,
            "link_id": self.link.id,
            "folder": prepared.folder,
            "provider_id": prepared.provider_id[:500],
            "direction": way,
            "seen_at": rows.now,
            "deleted_at": None,
        }

    def _maybe_fill_in(self, session: Session, match: _Known, prepared: Prepared) -> None:
        """A fuller link saw an email a sparser one captured: keep the fuller content."""
        item = prepared.item
        assert item is not None
        assert match.id is not None
        level = self._level(prepared, item)
        if level_index(level) <= level_index(match.content_level):
            return
        values: dict[str, object] = {"content_level": level, "subject": item.subject[:1000]}
        if level == "full":
            blobs = [b for b in (prepared.raw_blob, prepared.body_blob) if b is not None]
            put_blobs(session, blobs)
            values.update(
                snippet=item.snippet,
                body_blob=_sha(prepared.body_blob),
                raw_blob=_sha(prepared.raw_blob),
            )
        session.execute(update(Activity).where(Activity.id == match.id).values(**values))
        has_rows = session.scalar(select(Attachment.id).where(Attachment.activity_id == match.id))
        if has_rows is None:
            rows_for_fill = _Rows()
            self._attachments(rows_for_fill, prepared, match.id, level)
            rows_for_fill.write(session)
        elif level == "full":
            contents = [b for b in prepared.attachment_blobs if b is not None]
            put_blobs(session, contents)
            for blob in contents:
                session.execute(
                    update(Attachment)
                    .where(
                        Attachment.activity_id == match.id,
                        Attachment.sha256 == blob["sha256"],
                        Attachment.blob_sha256.is_(None),
                    )
                    .values(blob_sha256=blob["sha256"])
                )
        match.content_level = level

    def _quarantine(self, session: Session, prepared: Prepared) -> None:
        blob = prepared.raw_blob
        assert blob is not None
        put_blobs(session, [blob])
        sha = _sha(blob)
        assert sha is not None
        item_id = session.scalar(
            insert_for(dialect_of(session))(QuarantinedItem)
            .values(
                link_id=self.link.id,
                folder=prepared.folder,
                provider_id=prepared.provider_id[:500],
                raw_sha256=sha,
                reason=prepared.quarantine_reason or "unreadable",
                detail=prepared.quarantine_detail[:4000],
                attempts=1,
                created_at=utcnow(),
            )
            .on_conflict_do_update(
                index_elements=["link_id", "raw_sha256"],
                set_={"attempts": QuarantinedItem.attempts + 1, "resolved_at": None},
            )
            .returning(QuarantinedItem.id)
        )
        row = _decision_row(
            self.link.id,
            prepared,
            "quarantined",
            prepared.quarantine_reason,
            None,
            prepared.quarantine_detail,
            decided_at=utcnow(),
        )
        row["quarantined_item_id"] = item_id
        _upsert_decisions(session, [row])


def _sha(blob: dict[str, object] | None) -> str | None:
    return None if blob is None else str(blob["sha256"])


def _find_same_email(candidates: list[_Known], sender: str, date: datetime | None) -> _Known | None:
    for known in candidates:
        if known.sender != sender:
            continue
        if date is None or abs(known.occurred_at - date) <= SAME_EMAIL_DATE_TOLERANCE:
            return known
    return None


def _decision_row(
    link_id: int,
    prepared: Prepared,
    decision: str,
    rule: str | None,
    activity_id: int | None = None,
    detail: str = "",
    *,
    decided_at: datetime,
) -> dict[str, object]:
    return {
        "link_id": link_id,
        "folder": prepared.folder,
        "message_key": prepared.message_key,
        "provider_id": prepared.provider_id[:500],
        "decision": decision,
        "rule": rule,
        "detail": "; ".join(d for d in (detail, prepared.trace_note) if d)[:4000],
        "activity_id": activity_id,
        "quarantined_item_id": None,
        "decided_at": decided_at,
    }


DECISION_KEY = ("link_id", "folder", "message_key")
DECISION_FIELDS = (
    "decision",
    "rule",
    "detail",
    "activity_id",
    "quarantined_item_id",
    "provider_id",
    "decided_at",
)


def _upsert_decisions(
    session: Session, rows: list[dict[str, object]], *, keep: bool = False
) -> None:
    if keep:
        insert_ignore(session, "capture_decisions", DECISION_KEY, rows)
    else:
        upsert(session, "capture_decisions", DECISION_KEY, DECISION_FIELDS, rows)


@dataclass
class _Rows:
    """Rows gathered during a batch, written with one multi-row statement per table."""

    # The batch's one timestamp (decisions, sightings, new activities): one object, formatted
    # once for its thousands of rows (see `UTCDateTime.bind_processor`).
    now: datetime = field(default_factory=utcnow)
    participants: list[dict[str, object]] = field(default_factory=list)
    attachments: list[dict[str, object]] = field(default_factory=list)
    blobs: list[dict[str, object]] = field(default_factory=list)
    observations: dict[tuple[str, int], dict[str, object]] = field(default_factory=dict)
    decisions: dict[tuple[str, str], dict[str, object]] = field(default_factory=dict)
    known_decisions: dict[tuple[str, str], dict[str, object]] = field(default_factory=dict)

    def decision(
        self,
        link_id: int,
        prepared: Prepared,
        decision: str,
        rule: str | None,
        activity_id: int | None = None,
        detail: str = "",
        *,
        only_new: bool = False,
    ) -> None:
        row = _decision_row(
            link_id, prepared, decision, rule, activity_id, detail, decided_at=self.now
        )
        self.add_decision(row, only_new=only_new)

    def add_meetings(self, batch: MeetingBatch) -> None:
        for observation in batch.observations:
            key = (str(observation["folder"]), int(observation["activity_id"]))  # type: ignore[call-overload]
            self.observations[key] = observation
        for row in batch.decisions:
            self.add_decision(row)
        for row in batch.known_decisions:
            self.add_decision(row, only_new=True)

    def add_decision(self, row: dict[str, object], *, only_new: bool = False) -> None:
        key = (str(row["folder"]), str(row["message_key"]))
        if only_new:
            # "Already known" must not overwrite the trace of how the email was first captured.
            if key not in self.decisions:
                self.known_decisions[key] = row
        else:
            self.known_decisions.pop(key, None)
            self.decisions[key] = row

    def write(self, session: Session) -> None:
        put_blobs(session, self.blobs)
        insert_rows(session, "activity_participants", self.participants)
        insert_rows(session, "attachments", self.attachments)
        upsert(
            session,
            "mailbox_observations",
            ("link_id", "folder", "activity_id"),
            ("provider_id", "deleted_at"),
            list(self.observations.values()),
        )
        _upsert_decisions(session, list(self.decisions.values()))
        _upsert_decisions(session, list(self.known_decisions.values()), keep=True)
