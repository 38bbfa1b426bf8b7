"""Signals in the database: load what the rules read, run them, store what they say.

A recompute is per subject — a contact, a deal, a company — and replaces that subject's rows
whole, so recomputing any set of subjects, in any order, leaves the same rows as recomputing
everything (`tests/unit/test_signals_property.py` checks it). What a contact's signals read:

- the contact (stage, owner, addresses), the emails, meetings and calls they took part in (the
  latest `HISTORY` of them);
- the other emails of their recent threads (a reply from a colleague of theirs, an answer of
  ours to someone else on the thread);
- the first emails sent after their recent meetings to the other outside attendees.

"Recent" is the rules' horizon (`Context.horizon`): older mail cannot make a signal that is still
shown. So when mail arrives, the contacts to recompute are the ones on it (`SignalDirty`), the
contacts on their recent threads, and those who shared a recent meeting with them
(`affected_contacts`); and the deals those contacts are on.

Activities a person unlogged, or whose content a rule removed, are not on anyone's timeline and
count for nothing here either.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, Table, and_, delete, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from server.batching import weighed_batches
from server.crm.settings import get_setting, set_setting
from server.crm.signals import dirty
from server.crm.signals.config import SETTING_KEY, SignalSettings, from_stored, updated
from server.crm.signals.model import (
    CompanyFacts,
    ContactFacts,
    ContactTimeline,
    DealFacts,
    Item,
    Person,
    Team,
    WonDeal,
)
from server.crm.signals.model import Signal as Found
from server.crm.signals.rules import Context, contact_signals, deal_rotting, top_customer
from server.crm.sql import dialect_of, insert_for, insert_ignore
from server.models import (
    Activity,
    ActivityParticipant,
    CaptureRule,
    Company,
    Contact,
    ContactEmail,
    Deal,
    DealContact,
    MailboxLink,
    Meeting,
    Signal,
    SignalEvidence,
    Stage,
    User,
    utcnow,
)

CHUNK = 500  # ids per IN (...) list
CONTACTS_PER_BATCH = 500  # contacts loaded and recomputed together, at most
# ... and fewer when their timelines are long: what a batch holds in memory is its activities.
ACTIVITIES_PER_BATCH = 20_000
# A contact's signals read their latest activities only: a contact that active has answered
# (or been answered) since, and their rhythm is their recent one. This bounds the cost of a new
# email from the most prolific correspondent (a million-email mailbox has some with 100,000).
HISTORY = 1000
FOLLOW_UPS_READ = 50  # emails to an attendee after a meeting: the first few tell
TIMELINE_KINDS = ("email", "meeting", "call")
DEAL_ACTIVITY_KINDS = ("email", "meeting", "call", "note")
AP = ActivityParticipant
T = TypeVar("T")
SIGNALS = cast(Table, Signal.__table__)


def _on_timeline() -> ColumnElement[bool]:
    return and_(Activity.unlogged_at.is_(None), Activity.content_removed_reason.is_(None))


def _chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[list[T]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


# -- settings, team, zones ----------------------------------------------------------------------


def load_settings(session: Session) -> SignalSettings:
    return from_stored(get_setting(session, SETTING_KEY))


def save_settings(session: Session, changes: dict[str, Any]) -> SignalSettings:
    """Apply an admin's changes (checked; DomainError names a bad field) and store them."""
    settings = updated(load_settings(session), changes)
    set_setting(session, SETTING_KEY, settings.changed_from_default())
    return settings


def load_team(session: Session) -> Team:
    domains = frozenset(
        session.scalars(select(CaptureRule.value).where(CaptureRule.kind == "internal_domain"))
    )
    users: dict[str, int] = {}
    shared: set[str] = set()
    for link in session.execute(
        select(MailboxLink.owner_address, MailboxLink.aliases, MailboxLink.owner_user_id)
    ):
        addresses = [link.owner_address, *(a for a in link.aliases if isinstance(a, str))]
        for address in addresses:
            if link.owner_user_id is not None:
                users.setdefault(address.lower(), link.owner_user_id)
            else:
                shared.add(address.lower())
    for user_id, email in session.execute(select(User.id, User.email)):
        users[email.lower()] = user_id
    return Team(domains=domains, users=users, addresses=frozenset(shared - set(users)))


def load_zones(session: Session) -> dict[int, tzinfo]:
    zones: dict[int, tzinfo] = {}
    for user_id, name in session.execute(select(User.id, User.time_zone)):
        try:
            zones[user_id] = ZoneInfo(name or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return zones


def load_context(session: Session, now: datetime | None = None) -> Context:
    return Context(
        settings=load_settings(session),
        team=load_team(session),
        now=now or utcnow(),
        zones=load_zones(session),
    )


# -- contact timelines --------------------------------------------------------------------------


@dataclass
class _Pool:
    """Activities loaded for a batch of contacts, each once, with their participants."""

    items: dict[int, Item] = field(default_factory=dict)
    raw: dict[int, Any] = field(default_factory=dict)  # activity rows not yet turned into items
    meetings: dict[int, Any] = field(default_factory=dict)
    people: dict[int, list[Person]] = field(default_factory=dict)

    def add_rows(self, rows: Iterable[Any]) -> list[int]:
        added = []
        for row in rows:
            if row.id not in self.raw:
                self.raw[row.id] = row
                added.append(row.id)
        return added

    def item(self, activity_id: int) -> Item:
        found = self.items.get(activity_id)
        if found is None:
            row = self.raw[activity_id]
            meeting = self.meetings.get(activity_id)
            found = Item(
                id=row.id,
                kind=row.kind,
                at=row.occurred_at,
                sender=row.sender_address or "",
                people=tuple(self.people.get(row.id, ())),
                thread_id=row.thread_id,
                subject=row.subject or "",
                ends_at=meeting.ends_at if meeting is not None else None,
                status=meeting.status if meeting is not None else "confirmed",
                recurring=bool(meeting.rrule) if meeting is not None else False,
            )
            self.items[activity_id] = found
        return found


_ACTIVITY_COLUMNS = (
    Activity.id,
    Activity.kind,
    Activity.occurred_at,
    Activity.thread_id,
    Activity.subject,
    Activity.sender_address,
)


def _load_activities(session: Session, ids: Sequence[int], pool: _Pool) -> list[int]:
    added: list[int] = []
    for chunk in _chunks(sorted(set(ids) - pool.raw.keys())):
        added += pool.add_rows(
            session.execute(
                select(*_ACTIVITY_COLUMNS).where(
                    Activity.id.in_(chunk), Activity.kind.in_(TIMELINE_KINDS), _on_timeline()
                )
            )
        )
    return added


def _load_people(session: Session, ids: Sequence[int], pool: _Pool) -> None:
    for chunk in _chunks(sorted(ids)):
        rows = session.execute(
            select(AP.activity_id, AP.role, AP.address, AP.contact_id, AP.response)
            .where(AP.activity_id.in_(chunk))
            .order_by(AP.activity_id, AP.id)
        )
        for row in rows:
            pool.people.setdefault(row.activity_id, []).append(
                Person(row.address or "", row.role, row.contact_id, row.response)
            )


def _load_meetings(session: Session, ids: Sequence[int], pool: _Pool) -> None:
    meeting_ids = [i for i in ids if pool.raw[i].kind == "meeting"]
    for chunk in _chunks(sorted(meeting_ids)):
        for row in session.execute(
            select(Meeting.activity_id, Meeting.ends_at, Meeting.status, Meeting.rrule).where(
                Meeting.activity_id.in_(chunk)
            )
        ):
            pool.meetings[row.activity_id] = row


def contact_timelines(
    session: Session, contact_ids: Sequence[int], ctx: Context
) -> list[ContactTimeline]:
    """The timelines of these contacts (existing ones, in id order), as the rules read them."""
    ids = sorted(set(contact_ids))
    facts: dict[int, ContactFacts] = {}
    addresses: dict[int, set[str]] = {}
    own: dict[int, set[int]] = {}
    for chunk in _chunks(ids):
        for contact_id, address in session.execute(
            select(ContactEmail.contact_id, ContactEmail.address).where(
                ContactEmail.contact_id.in_(chunk)
            )
        ):
            addresses.setdefault(contact_id, set()).add(address)
        for found in session.execute(
            select(Contact.id, Contact.name, Contact.lifecycle_stage, Contact.owner_id).where(
                Contact.id.in_(chunk)
            )
        ):
            facts[found.id] = ContactFacts(
                id=found.id,
                name=found.name,
                addresses=frozenset(addresses.get(found.id, ())),
                lifecycle_stage=found.lifecycle_stage,
                owner_id=found.owner_id,
            )
        latest = (
            select(
                AP.contact_id,
                AP.activity_id,
                func.row_number()
                .over(
                    partition_by=AP.contact_id,
                    order_by=(AP.occurred_at.desc(), AP.activity_id.desc()),
                )
                .label("n"),
            )
            .where(AP.contact_id.in_(chunk))
            .subquery()
        )
        for taking_part, activity_id in session.execute(
            select(latest.c.contact_id, latest.c.activity_id).where(latest.c.n <= HISTORY)
        ):
            if taking_part is not None:
                own.setdefault(taking_part, set()).add(activity_id)

    pool = _Pool()
    first = _load_activities(session, [a for s in own.values() for a in s], pool)
    _load_meetings(session, first, pool)

    # the other emails of recent threads
    recent_threads = {
        pool.raw[a].thread_id
        for a in first
        if pool.raw[a].kind == "email"
        and pool.raw[a].thread_id is not None
        and pool.raw[a].occurred_at >= ctx.horizon
    }
    by_thread: dict[int, list[int]] = {}
    for chunk in _chunks(sorted(recent_threads)):
        rows = list(
            session.execute(
                select(*_ACTIVITY_COLUMNS).where(
                    Activity.thread_id.in_(chunk),
                    Activity.kind == "email",
                    Activity.occurred_at >= ctx.horizon,
                    _on_timeline(),
                )
            )
        )
        pool.add_rows(rows)
        for email in rows:
            by_thread.setdefault(email.thread_id, []).append(email.id)
    _load_people(session, list(pool.raw), pool)

    # our emails after recent meetings, to anyone who was there
    recent_meetings = [
        a
        for a in first
        if a in pool.meetings
        and pool.meetings[a].ends_at is not None
        and pool.meetings[a].ends_at >= ctx.horizon
        and not pool.meetings[a].rrule
    ]
    after_meetings: dict[int, set[int]] = {}  # meeting -> our first emails to those there
    for meeting_id in recent_meetings:
        ends = pool.meetings[meeting_id].ends_at
        for person in pool.people.get(meeting_id, ()):
            if not person.address or ctx.team.is_team(person.address):
                continue
            after_meetings.setdefault(meeting_id, set()).update(
                session.scalars(
                    select(AP.activity_id)
                    .where(
                        AP.address == person.address,
                        AP.role.in_(("to", "cc", "bcc")),
                        AP.occurred_at > ends,
                    )
                    .order_by(AP.occurred_at, AP.activity_id)
                    .limit(FOLLOW_UPS_READ)
                )
            )
    extra = _load_activities(session, [a for found in after_meetings.values() for a in found], pool)
    _load_people(session, extra, pool)

    timelines: list[ContactTimeline] = []
    for contact_id in ids:
        contact = facts.get(contact_id)
        if contact is None:
            continue
        chosen = {a for a in own.get(contact_id, ()) if a in pool.raw}
        for a in list(chosen):
            row = pool.raw[a]
            if row.kind == "email" and row.occurred_at >= ctx.horizon and row.thread_id:
                chosen.update(by_thread.get(row.thread_id, ()))
            chosen.update(e for e in after_meetings.get(a, ()) if e in pool.raw)
        items = sorted((pool.item(a) for a in chosen), key=lambda i: i.order)
        timelines.append(ContactTimeline(contact, tuple(items)))
    return timelines


def affected_contacts(session: Session, contact_ids: Iterable[int], ctx: Context) -> list[int]:
    """The contacts whose signals new mail of these contacts can change: themselves, those on
    their recent threads, those who shared a recent meeting with them."""
    ids = sorted(set(contact_ids))
    found = set(ids)
    for chunk in _chunks(ids):
        threads = (
            select(Activity.thread_id)
            .join(AP, AP.activity_id == Activity.id)
            .where(
                AP.contact_id.in_(chunk),
                AP.occurred_at >= ctx.horizon,
                Activity.kind == "email",
                Activity.thread_id.is_not(None),
            )
            .distinct()
        )
        found.update(
            session.scalars(
                select(AP.contact_id)
                .join(Activity, Activity.id == AP.activity_id)
                .where(
                    Activity.thread_id.in_(threads),
                    AP.occurred_at >= ctx.horizon,
                    AP.contact_id.is_not(None),
                )
                .distinct()
            )
        )
        meetings = (
            select(AP.activity_id)
            .join(Meeting, Meeting.activity_id == AP.activity_id)
            .where(AP.contact_id.in_(chunk), Meeting.ends_at >= ctx.horizon)
        )
        found.update(
            session.scalars(
                select(AP.contact_id)
                .where(AP.activity_id.in_(meetings), AP.contact_id.is_not(None))
                .distinct()
            )
        )
    return sorted(c for c in found if c is not None)


# -- deals and companies ----------------------------------------------------------------------


def deal_facts(session: Session, deal_ids: Sequence[int] | None, ctx: Context) -> list[DealFacts]:
    """Open deals (all, or these), with their latest activity when their stage can rot."""
    query = (
        select(
            Deal.id,
            Deal.title,
            Deal.status,
            Deal.stage_id,
            Stage.name,
            Stage.rot_days,
            Deal.stage_entered_at,
            Deal.owner_id,
        )
        .join(Stage, Stage.id == Deal.stage_id)
        .where(Deal.status == "open")
        .order_by(Deal.id)
    )
    rows: list[Any] = []
    if deal_ids is None:
        rows = list(session.execute(query))
    else:
        for chunk in _chunks(sorted(set(deal_ids))):
            rows += session.execute(query.where(Deal.id.in_(chunk)))
    found: list[DealFacts] = []
    for row in rows:
        rot_days = row.rot_days
        last: tuple[datetime, int] | None = None
        if rot_days is not None or ctx.settings.deal_rot_days is not None:
            last = _last_deal_activity(session, row.id)
        found.append(
            DealFacts(
                id=row.id,
                title=row.title,
                status=row.status,
                stage_id=row.stage_id,
                stage_name=row.name,
                rot_days=rot_days,
                stage_entered_at=row.stage_entered_at,
                owner_id=row.owner_id,
                last_activity_at=last[0] if last else None,
                last_activity_id=last[1] if last else None,
            )
        )
    return found


def _last_deal_activity(session: Session, deal_id: int) -> tuple[datetime, int] | None:
    on_deal = session.execute(
        select(Activity.occurred_at, Activity.id)
        .where(Activity.deal_id == deal_id, Activity.kind.in_(DEAL_ACTIVITY_KINDS), _on_timeline())
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(1)
    ).first()
    with_contacts = session.execute(
        select(AP.occurred_at, AP.activity_id)
        .join(DealContact, DealContact.contact_id == AP.contact_id)
        .join(Activity, Activity.id == AP.activity_id)
        .where(
            DealContact.deal_id == deal_id,
            Activity.kind.in_(DEAL_ACTIVITY_KINDS),
            _on_timeline(),
        )
        .order_by(AP.occurred_at.desc(), AP.activity_id.desc())
        .limit(1)
    ).first()
    candidates = [(r[0], r[1]) for r in (on_deal, with_contacts) if r is not None]
    return max(candidates) if candidates else None


def company_facts(
    session: Session, company_ids: Sequence[int] | None, ctx: Context
) -> list[CompanyFacts]:
    """Companies with won deals (or, with a top-customer field set, every company)."""
    won: dict[int, list[WonDeal]] = {}
    query = select(
        Deal.id,
        Deal.company_id,
        Deal.amount,
        Deal.currency,
        Deal.closed_at,
        Deal.updated_at,
        Deal.owner_id,
    ).where(Deal.status == "won", Deal.company_id.is_not(None), Deal.amount.is_not(None))
    chunks: list[list[int] | None] = (
        [None] if company_ids is None else list(_chunks(sorted(set(company_ids))))
    )
    for chunk in chunks:
        part = query if chunk is None else query.where(Deal.company_id.in_(chunk))
        for row in session.execute(part):
            won.setdefault(row.company_id, []).append(
                WonDeal(
                    row.id,
                    Decimal(row.amount),
                    row.currency,
                    row.closed_at or row.updated_at,
                    row.owner_id,
                )
            )
    field_key = ctx.settings.top_customer_field
    wanted: list[int] | None
    if field_key:
        wanted = None if company_ids is None else sorted(set(company_ids))
    else:
        wanted = sorted(won) if company_ids is None else sorted(set(company_ids) & set(won))
    columns = select(
        Company.id, Company.name, Company.owner_id, Company.updated_at, Company.custom_fields
    ).order_by(Company.id)
    rows: list[Any] = []
    if wanted is None:
        rows = list(session.execute(columns))
    else:
        for chunk_ids in _chunks(wanted):
            rows += session.execute(columns.where(Company.id.in_(chunk_ids)))
    return [
        CompanyFacts(
            id=row.id,
            name=row.name,
            owner_id=row.owner_id,
            won=tuple(won.get(row.id, ())),
            custom_fields=row.custom_fields if field_key else {},
            updated_at=row.updated_at,
        )
        for row in rows
    ]


def deals_of_contacts(session: Session, contact_ids: Sequence[int]) -> list[int]:
    found: set[int] = set()
    for chunk in _chunks(sorted(set(contact_ids))):
        found.update(
            session.scalars(
                select(DealContact.deal_id).where(DealContact.contact_id.in_(chunk)).distinct()
            )
        )
    return sorted(found)


# -- writing ----------------------------------------------------------------------------------


def recompute_contacts(session: Session, contact_ids: Sequence[int], ctx: Context) -> int:
    """Recompute these contacts' signals; returns how many they have now."""
    ids = sorted(set(contact_ids))
    written = 0
    for batch in _batches(session, ids):
        found = [s for t in contact_timelines(session, batch, ctx) for s in contact_signals(t, ctx)]
        written += _replace(session, Signal.contact_id, batch, found, ctx.now)
    return written


def _batches(session: Session, ids: Sequence[int]) -> Iterator[list[int]]:
    """The contacts in batches of at most CONTACTS_PER_BATCH whose timelines (each read up to
    HISTORY) add up to at most ACTIVITIES_PER_BATCH: a worker that recomputes after a mailbox's
    first sync holds one batch's activities at a time, however many its correspondents have."""
    for chunk in _chunks(ids, CONTACTS_PER_BATCH):
        counted = session.execute(
            select(AP.contact_id, func.count())
            .where(AP.contact_id.in_(chunk))
            .group_by(AP.contact_id)
        )
        held = {contact_id: min(count, HISTORY) for contact_id, count in counted}
        sizes = {contact_id: held.get(contact_id, 0) for contact_id in chunk}
        yield from weighed_batches(chunk, sizes.__getitem__, most_weight=ACTIVITIES_PER_BATCH)


def recompute_deals(
    session: Session, deal_ids: Sequence[int] | None, ctx: Context
) -> tuple[int, int]:
    """Recompute deal signals (of these deals, or of all deals): (open deals, signals)."""
    facts = deal_facts(session, deal_ids, ctx)
    found = [s for deal in facts for s in deal_rotting(deal, ctx)]
    if deal_ids is None:
        session.execute(delete(Signal).where(Signal.deal_id.is_not(None)))
        return len(facts), _replace(session, Signal.deal_id, [], found, ctx.now)
    return len(facts), _replace(session, Signal.deal_id, sorted(set(deal_ids)), found, ctx.now)


def recompute_companies(
    session: Session, company_ids: Sequence[int] | None, ctx: Context
) -> tuple[int, int]:
    """Recompute company signals: (companies looked at, signals). A new top customer is also
    tagged (tags are only added: a person may have tagged one by hand)."""
    facts = company_facts(session, company_ids, ctx)
    found = [s for company in facts for s in top_customer(company, ctx)]
    insert_ignore(
        session,
        "company_tags",
        ["company_id", "tag"],
        [
            {"company_id": s.company_id, "tag": ctx.settings.top_customer_tag}
            for s in found
            if s.kind == "top_customer"
        ],
    )
    if company_ids is None:
        session.execute(delete(Signal).where(Signal.company_id.is_not(None)))
        return len(facts), _replace(session, Signal.company_id, [], found, ctx.now)
    ids = sorted(set(company_ids))
    return len(facts), _replace(session, Signal.company_id, ids, found, ctx.now)


def _replace(
    session: Session,
    subject: InstrumentedAttribute[int | None],
    subject_ids: Sequence[int],
    found: Sequence[Found],
    now: datetime,
) -> int:
    """Make these subjects' rows exactly `found` (a key another subject held moves here)."""
    for chunk in _chunks(subject_ids):
        session.execute(delete(Signal).where(subject.in_(chunk)))
    unique: dict[str, Found] = {}
    for signal in found:
        unique.setdefault(signal.key, signal)
    if not unique:
        return 0
    rows = [
        {
            "key": s.key,
            "kind": s.kind,
            "contact_id": s.contact_id,
            "deal_id": s.deal_id,
            "company_id": s.company_id,
            "owner_id": s.owner_id,
            "due_at": s.due_at,
            "expires_at": s.expires_at,
            "reason": s.reason.to_json(),
            "evidence_count": len(set(s.reason.activity_ids)),
            "computed_at": now,
        }
        for s in unique.values()
    ]
    make = insert_for(dialect_of(session))
    stmt = make(SIGNALS)
    stmt = stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={c: stmt.excluded[c] for c in rows[0] if c != "key"},
    ).returning(SIGNALS.c.id, SIGNALS.c.key)
    ids: dict[str, int] = {}
    for start in range(0, len(rows), CHUNK):
        for signal_id, key in session.connection().execute(stmt, rows[start : start + CHUNK]):
            ids[key] = signal_id
    for chunk in _chunks(sorted(ids.values())):
        session.execute(delete(SignalEvidence).where(SignalEvidence.signal_id.in_(chunk)))
    evidence = [
        {"signal_id": ids[key], "activity_id": activity_id}
        for key, signal in unique.items()
        for activity_id in sorted(set(signal.reason.activity_ids))
    ]
    insert_ignore(session, "signal_evidence", ["signal_id", "activity_id"], evidence)
    return len(unique)


# -- whole runs -------------------------------------------------------------------------------


@dataclass
class RecomputeStats:
    contacts: int = 0
    deals: int = 0
    companies: int = 0
    signals: int = 0
    seconds: float = 0.0

    def add(self, other: RecomputeStats) -> None:
        self.contacts += other.contacts
        self.deals += other.deals
        self.companies += other.companies
        self.signals += other.signals


def refresh_dirty(session: Session, *, limit: int, now: datetime | None = None) -> RecomputeStats:
    """Recompute what the marked contacts' new mail can change, then clear the marks seen."""
    started = time.perf_counter()
    seen = dirty.take(session, limit)
    stats = RecomputeStats()
    if not seen:
        return stats
    ctx = load_context(session, now)
    contacts = affected_contacts(session, [c for c, _ in seen], ctx)
    deals = deals_of_contacts(session, contacts)
    stats.signals += recompute_contacts(session, contacts, ctx)
    stats.deals, deal_signals = recompute_deals(session, deals, ctx)
    stats.signals += deal_signals
    stats.contacts = len(contacts)
    dirty.clear(session, seen)
    stats.seconds = time.perf_counter() - started
    return stats


def recompute_everything(
    session_scope: Callable[[], Any],
    *,
    now: datetime | None = None,
    batch: int = CONTACTS_PER_BATCH,
    between: Callable[[Session], None] | None = None,
    progress: Callable[[RecomputeStats], None] | None = None,
) -> RecomputeStats:
    """Recompute every signal, committing batch by batch (`session_scope()` gives a unit of
    work; `between` runs in each one first: a job's heartbeat). Marks older than the run are
    cleared: it covers them."""
    started = time.perf_counter()
    now = now or utcnow()
    stats = RecomputeStats()
    with session_scope() as session:
        if between is not None:
            between(session)
        seen = dirty.take(session, 10**9)
        ctx = load_context(session, now)
        stats.deals, deal_signals = recompute_deals(session, None, ctx)
        stats.companies, company_signals = recompute_companies(session, None, ctx)
        stats.signals += deal_signals + company_signals
        contact_ids = list(session.scalars(select(Contact.id).order_by(Contact.id)))
    for ids in _chunks(contact_ids, batch):
        with session_scope() as session:
            if between is not None:
                between(session)
            stats.signals += recompute_contacts(session, ids, ctx)
            stats.contacts += len(ids)
        if progress is not None:
            progress(stats)
    with session_scope() as session:
        dirty.clear(session, seen)
    stats.seconds = time.perf_counter() - started
    return stats
