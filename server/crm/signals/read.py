"""What a person sees of the signals, and their snoozes and dismissals.

A signal is shown to a viewer when it is due (between `due_at` and `expires_at`), they have not
dismissed it nor snoozed it past now, and they may see every activity its reason cites
(`server.crm.viewer.visible_to`): another member's private email never shows through a signal.
Contacts, companies and deals themselves are the team's. "Mine" is the signals whose owner the
viewer is (see `server.crm.signals.rules` for who owns which).

Snoozing and dismissing are per user and per signal key; a key names one occurrence (one email
awaiting a reply, one meeting), so a new email or a new situation comes back as a new signal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    union_all,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.crm.cards import ContactCard, DealCard
from server.crm.errors import DomainError, NotFound
from server.crm.paging import Page, keyset_page
from server.crm.signals.model import KINDS
from server.crm.sql import core_rows
from server.crm.viewer import Viewer, visible_to
from server.models import (
    Activity,
    Company,
    Contact,
    ContactEmail,
    Deal,
    DealContact,
    Signal,
    SignalEvidence,
    SignalState,
    utcnow,
)

STATES = ("snoozed", "dismissed")
LOOKUP_LIMIT = 50
STATEMENTS_KEPT = 256  # viewers whose lookup statement is kept built
Moment = datetime | ColumnElement[Any]  # a time, or a parameter bound to one per call


@dataclass(frozen=True)
class PersonRef:
    id: int
    name: str
    address: str | None


@dataclass(frozen=True)
class Named:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class SignalFacts:
    """A signal as `views` reads it, as plain values (the pane's lookup reads them so: loading
    `Signal` objects cost more than the query); the fields are `Signal`'s columns."""

    key: str
    kind: str
    due_at: datetime
    expires_at: datetime | None
    owner_id: int | None
    reason: dict[str, Any]
    contact_id: int | None
    deal_id: int | None
    company_id: int | None


@dataclass(frozen=True)
class SignalView:
    key: str
    kind: str
    due_at: datetime
    expires_at: datetime | None
    owner_id: int | None
    reason: dict[str, Any]
    contact: PersonRef | None
    company: Named | None
    deal: Named | None


@dataclass(frozen=True)
class StateView:
    key: str
    state: str
    until: datetime | None


# -- what a viewer sees -----------------------------------------------------------------------


def _shown_to(viewer: Viewer, now: Moment) -> ColumnElement[bool]:
    seen = (
        select(func.count())
        .select_from(SignalEvidence)
        .join(Activity, Activity.id == SignalEvidence.activity_id)
        .where(SignalEvidence.signal_id == Signal.id, visible_to(viewer))
        .scalar_subquery()
    )
    return or_(Signal.evidence_count == 0, Signal.evidence_count == seen)


def _due(now: Moment) -> ColumnElement[bool]:
    return and_(Signal.due_at <= now, or_(Signal.expires_at.is_(None), Signal.expires_at > now))


def _not_set_aside(viewer: Viewer, now: Moment) -> ColumnElement[bool]:
    return ~exists().where(
        SignalState.user_id == viewer.id,
        SignalState.signal_key == Signal.key,
        or_(
            SignalState.state == "dismissed",
            and_(SignalState.state == "snoozed", SignalState.until > now),
        ),
    )


def _listed(viewer: Viewer, now: Moment) -> Select[Signal]:
    return select(Signal).where(_due(now), _not_set_aside(viewer, now), _shown_to(viewer, now))


def list_signals(
    session: Session,
    viewer: Viewer,
    *,
    mine: bool = False,
    kinds: Sequence[str] = (),
    contact_id: int | None = None,
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | None = None,
) -> Page[SignalView]:
    """The viewer's to-do list (`mine`) or every signal they may see, the longest due first."""
    now = now or utcnow()
    query = _listed(viewer, now)
    if mine:
        query = query.where(Signal.owner_id == viewer.id)
    if kinds:
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise DomainError(f"'{unknown[0]}' is not a kind of signal", field="kind")
        query = query.where(Signal.kind.in_(list(kinds)))
    if contact_id is not None:
        query = query.where(Signal.contact_id == contact_id)
    page: Page[Signal] = keyset_page(
        session, query, sort=Signal.due_at, ident=Signal.id, limit=limit, cursor=cursor
    )
    return Page(views(session, page.items), page.next_cursor)


def signals_for_contacts(
    session: Session,
    viewer: Viewer,
    contacts: Sequence[ContactCard],
    *,
    deals: Sequence[DealCard] = (),
    now: datetime | None = None,
    limit: int = LOOKUP_LIMIT,
) -> list[SignalView]:
    """For the task pane's lookup: the signals about these contacts, their open deals and their
    companies that the viewer should see now, the longest due first. The contacts (with their
    addresses and companies) and deals the lookup already holds are not read again."""
    ids = sorted({c.id for c in contacts})
    if not ids:
        return []
    params = {"now": now or utcnow(), "ids": ids}
    found = [
        SignalFacts(*row) for row in core_rows(session, _about_contacts(viewer, limit), params)
    ]
    return views(session, found, known=Known.of(contacts, deals))


@lru_cache(maxsize=STATEMENTS_KEPT)
def _about_contacts(viewer: Viewer, limit: int) -> Select[*tuple[Any, ...]]:
    """`signals_for_contacts`'s statement, built once per viewer (building it cost more than
    running it: it is on every pane lookup); `now` and `ids` are bound per call."""
    now = bindparam("now", type_=Signal.due_at.type)
    ids: BindParameter[int] = bindparam("ids", expanding=True)
    # Three index lookups (one OR over three columns would read every due signal instead).
    about = union_all(
        select(Signal.id).where(Signal.contact_id.in_(ids)),
        select(Signal.id)
        .join(DealContact, DealContact.deal_id == Signal.deal_id)
        .where(DealContact.contact_id.in_(ids)),
        select(Signal.id)
        .join(Contact, Contact.company_id == Signal.company_id)
        .where(Contact.id.in_(ids)),
    )
    return (
        _listed(viewer, now)
        .with_only_columns(*(getattr(Signal, f.name) for f in fields(SignalFacts)))
        .where(Signal.id.in_(about))
        .order_by(Signal.due_at, Signal.id)
        .limit(limit)
    )


def get_shown(session: Session, viewer: Viewer, key: str, *, now: datetime | None = None) -> Signal:
    """The signal if this viewer may see it (due or not yet, snoozed or not); 404 otherwise."""
    now = now or utcnow()
    found = session.scalar(
        select(Signal).where(
            Signal.key == key,
            or_(Signal.expires_at.is_(None), Signal.expires_at > now),
            _shown_to(viewer, now),
        )
    )
    if found is None:
        raise NotFound(f"no signal {key}")
    return found


@dataclass
class Known:
    """Names `views` needs that the caller already holds, so they are not read again."""

    people: dict[int, tuple[str, int | None]] = field(default_factory=dict)  # name, company
    addresses: dict[int, str] = field(default_factory=dict)  # the primary, else the oldest
    company_names: dict[int, str] = field(default_factory=dict)
    deals: dict[int, tuple[str, int | None]] = field(default_factory=dict)  # title, company

    @classmethod
    def of(cls, contacts: Sequence[ContactCard], deals: Sequence[DealCard] = ()) -> Known:
        """From contacts loaded with their addresses and company (as the lookup loads them)."""
        known = cls(deals={d.id: (d.title, d.company_id) for d in deals})
        for contact in contacts:
            known.people[contact.id] = (contact.name, contact.company_id)
            emails = sorted(contact.emails, key=lambda e: (not e.is_primary, e.id))
            if emails:
                known.addresses[contact.id] = emails[0].address
            if contact.company is not None:
                known.company_names[contact.company.id] = contact.company.name
        return known


def views(
    session: Session, signals: Sequence[Signal | SignalFacts], *, known: Known | None = None
) -> list[SignalView]:
    """The signals with the contact (name and address), company and deal they are about."""
    known = known or Known()
    deal_ids = {s.deal_id for s in signals if s.deal_id is not None}
    deals = dict(known.deals)
    if deal_ids - deals.keys():
        wanted = deal_ids - deals.keys()
        deals |= {
            row.id: (row.title, row.company_id)
            for row in session.execute(
                select(Deal.id, Deal.title, Deal.company_id).where(Deal.id.in_(wanted))
            )
        }
    deal_contact: dict[int, int] = {}
    if deal_ids:
        for deal_id, contact_id in session.execute(
            select(DealContact.deal_id, func.min(DealContact.contact_id))
            .where(DealContact.deal_id.in_(deal_ids))
            .group_by(DealContact.deal_id)
        ):
            deal_contact[deal_id] = contact_id
    company_ids = {s.company_id for s in signals if s.company_id is not None}
    company_contact: dict[int, int] = {}
    if company_ids:
        for company_id, contact_id in session.execute(
            select(Contact.company_id, func.min(Contact.id))
            .where(Contact.company_id.in_(company_ids))
            .group_by(Contact.company_id)
        ):
            if company_id is not None:
                company_contact[company_id] = contact_id

    def contact_of(signal: Signal | SignalFacts) -> int | None:
        if signal.contact_id is not None:
            return signal.contact_id
        if signal.deal_id is not None:
            return deal_contact.get(signal.deal_id)
        if signal.company_id is not None:
            return company_contact.get(signal.company_id)
        return None

    contact_ids = {c for c in (contact_of(s) for s in signals) if c is not None}
    people = {c: known.people[c] for c in contact_ids if c in known.people}
    addresses = {c: known.addresses[c] for c in contact_ids if c in known.addresses}
    unread = contact_ids - people.keys()
    if unread:
        for row in session.execute(
            select(Contact.id, Contact.name, Contact.company_id).where(Contact.id.in_(unread))
        ):
            people[row.id] = (row.name, row.company_id)
        for contact_id, address in session.execute(
            select(ContactEmail.contact_id, ContactEmail.address)
            .where(ContactEmail.contact_id.in_(unread))
            .order_by(ContactEmail.is_primary.asc(), ContactEmail.id.desc())
        ):
            addresses[contact_id] = address  # the last one wins: the primary, else the oldest
    company_ids |= {
        company
        for company in (
            *(company for ident, (_, company) in deals.items() if ident in deal_ids),
            *(p[1] for p in people.values()),
        )
        if company is not None
    }
    names = {c: known.company_names[c] for c in company_ids if c in known.company_names}
    if company_ids - names.keys():
        wanted = company_ids - names.keys()
        names |= {
            row.id: row.name
            for row in session.execute(
                select(Company.id, Company.name).where(Company.id.in_(wanted))
            )
        }

    out: list[SignalView] = []
    for signal in signals:
        about = contact_of(signal)
        person = people.get(about) if about is not None else None
        contact = (
            PersonRef(about, person[0], addresses.get(about))
            if about is not None and person is not None
            else None
        )
        deal = deals.get(signal.deal_id) if signal.deal_id is not None else None
        company_id = signal.company_id or (deal[1] if deal else None)
        if company_id is None and person is not None:
            company_id = person[1]
        out.append(
            SignalView(
                key=signal.key,
                kind=signal.kind,
                due_at=signal.due_at,
                expires_at=signal.expires_at,
                owner_id=signal.owner_id,
                reason=dict(signal.reason),
                contact=contact,
                company=Named(company_id, names[company_id])
                if company_id is not None and company_id in names
                else None,
                deal=Named(signal.deal_id, deal[0])
                if signal.deal_id is not None and deal is not None
                else None,
            )
        )
    return out


# -- snoozes and dismissals -------------------------------------------------------------------


def snooze(
    session: Session, viewer: Viewer, key: str, until: datetime, *, now: datetime | None = None
) -> StateView:
    now = now or utcnow()
    if until.tzinfo is None or until.utcoffset() is None:
        raise DomainError(
            "give a time with its offset (e.g. 2026-03-10T09:00:00+01:00)", field="until"
        )
    try:
        until = until.astimezone(UTC)
    except OverflowError:  # year 9999 at a western offset is past the end of the calendar
        raise DomainError("that time is out of range", field="until") from None
    if until <= now:
        raise DomainError("snooze until a time in the future", field="until")
    get_shown(session, viewer, key, now=now)
    return _set(session, viewer, key, "snoozed", until)


def dismiss(
    session: Session, viewer: Viewer, key: str, *, now: datetime | None = None
) -> StateView:
    get_shown(session, viewer, key, now=now)
    return _set(session, viewer, key, "dismissed", None)


def undo(session: Session, viewer: Viewer, key: str, state: str) -> None:
    """Take back a snooze or a dismissal (nothing to take back is fine)."""
    session.execute(
        delete(SignalState).where(
            SignalState.user_id == viewer.id,
            SignalState.signal_key == key,
            SignalState.state == state,
        )
    )


def _set(
    session: Session, viewer: Viewer, key: str, state: str, until: datetime | None
) -> StateView:
    row = session.scalar(
        select(SignalState).where(SignalState.user_id == viewer.id, SignalState.signal_key == key)
    )
    if row is None:
        try:
            with session.begin_nested():
                row = SignalState(user_id=viewer.id, signal_key=key, state=state, until=until)
                session.add(row)
                session.flush()
        except IntegrityError:  # the same person's other request won the race
            row = session.scalar(
                select(SignalState).where(
                    SignalState.user_id == viewer.id, SignalState.signal_key == key
                )
            )
            assert row is not None
    row.state, row.until = state, until
    session.flush()
    return StateView(key, state, until)


def forget_stale_states(session: Session) -> int:
    """Snoozes and dismissals of signals that are gone (resolved): they cannot matter again."""
    result = session.execute(
        delete(SignalState).where(~exists().where(Signal.key == SignalState.signal_key))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
