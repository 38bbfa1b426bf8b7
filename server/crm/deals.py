"""Deals: what a team hopes to sell, moving through a pipeline's stages.

A deal's status is its stage's outcome (open, won, lost), so moving it to "Won" is what closes it;
every move is recorded (`DealStageChange`: who, when, from, to), creation included (from nothing),
so the history answers "how long did it sit in Proposal?". The board's undo reverts the caller's
own last move for a few minutes, and only that: after someone else moved the deal, or later, an
undo would overwrite their work.

The deal page's timeline is the timeline of its people and company (`server.crm.timeline`) merged
with what was filed on the deal itself (notes about the deal), under one cursor.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from sqlalchemy import ColumnElement, String, cast, delete, func, select
from sqlalchemy.orm import Session, selectinload

from server.crm import webhooks
from server.crm.companies import may_remove
from server.crm.custom_fields import (
    check_cursor,
    check_owner,
    clean_text,
    custom_field_conditions,
    merge_custom_fields,
    valid_id,
    validate_custom_fields,
)
from server.crm.errors import Conflict, DomainError, NotFound
from server.crm.followups import refresh_next_follow_up
from server.crm.paging import Page, keyset_page
from server.crm.paging import _decode as decode_keyset_cursor
from server.crm.pipelines import (
    ensure_default_pipeline,
    first_stage,
    get_pipeline,
    get_stage,
    status_for,
)
from server.crm.signals.changes import deals_changed
from server.crm.timeline import (
    PAGE_SIZE_MAX,
    ActivityView,
    TimelinePage,
    decode_cursor,
    encode_cursor,
    present,
    timeline,
)
from server.crm.viewer import Viewer, visible_to
from server.models import (
    Activity,
    Company,
    Contact,
    Deal,
    DealContact,
    DealStageChange,
    FollowUp,
    Stage,
    utcnow,
)

UNDO_WINDOW = timedelta(minutes=10)
CENT = Decimal("0.01")
MAX_AMOUNT = Decimal(10) ** 12
NO_AMOUNT = Decimal("-1")  # a deal without an amount sorts below every amount
MAX_CONTACTS = 100
# Amounts fit Numeric(14, 2): up to 12 digits before the point and 2 after.
_AMOUNT = re.compile(r"\d{1,12}(\.\d{1,2})?")
# ISO 4217 currency codes in use (funds and precious metals left out: nobody quotes a deal in XAU).
_ISO_4217 = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
    KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
    MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
    SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
    UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
"""
CURRENCIES = frozenset(_ISO_4217.split())

Sort = Literal[
    "updated_at",
    "-updated_at",
    "amount",
    "-amount",
    "expected_close",
    "-expected_close",
    "title",
    "-title",
]


@dataclass
class DealInput:
    """Fields of a deal as a client gave them; `given` names those present in the request, so
    that an explicit null (clear the company) differs from a field left out (keep it)."""

    title: str | None = None
    amount: str | None = None
    currency: str | None = None
    owner_id: int | None = None
    company_id: int | None = None
    contact_ids: list[int] | None = None
    expected_close: date | None = None
    custom_fields: dict[str, Any] | None = None
    given: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DealFilters:
    pipeline_id: int | None = None
    stage_id: int | None = None
    status: Literal["open", "won", "lost"] | None = None
    owner_id: int | None = None
    company_id: int | None = None
    contact_id: int | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    expected_close_from: date | None = None
    expected_close_to: date | None = None
    # `cf.<key>` (and `cf.<key>.gte` / `.lte`) query parameters, as given
    custom_fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class StageChangeView:
    id: int
    from_stage: Stage | None
    to_stage: Stage
    changed_by_id: int | None
    changed_at: datetime


@dataclass
class DealDetail:
    deal: Deal
    contacts: list[Contact]
    company: Company | None
    history: list[StageChangeView]
    timeline: TimelinePage


# -- reading --------------------------------------------------------------------------------------


def get_deal(session: Session, deal_id: int) -> Deal:
    deal = (
        session.get(Deal, deal_id, options=[selectinload(Deal.stage)])
        if valid_id(deal_id)
        else None
    )
    if deal is None:
        raise NotFound(f"no deal {deal_id}")
    return deal


def deal_detail(
    session: Session, viewer: Viewer, deal_id: int, *, limit: int = 20, cursor: str | None = None
) -> DealDetail:
    deal = get_deal(session, deal_id)
    contacts = deal_contacts(session, deal.id)
    company = session.get(Company, deal.company_id) if deal.company_id is not None else None
    stages = {s.id: s for s in _stages_in_history(session, deal)}
    history = [
        StageChangeView(
            id=change.id,
            from_stage=stages.get(change.from_stage_id) if change.from_stage_id else None,
            to_stage=stages[change.to_stage_id],
            changed_by_id=change.changed_by_id,
            changed_at=change.changed_at,
        )
        for change in deal.history
    ]
    page = deal_timeline(session, viewer, deal, limit=limit, cursor=cursor)
    return DealDetail(deal, contacts, company, history, page)


def deal_contacts(session: Session, deal_id: int) -> list[Contact]:
    return list(
        session.scalars(
            select(Contact)
            .join(DealContact, DealContact.contact_id == Contact.id)
            .where(DealContact.deal_id == deal_id)
            .options(selectinload(Contact.emails))
            .order_by(Contact.name, Contact.id)
        )
    )


def deal_timeline(
    session: Session, viewer: Viewer, deal: Deal, *, limit: int = 20, cursor: str | None = None
) -> TimelinePage:
    """The timeline of the deal's people and company, plus what was filed on the deal itself.

    Both sources are paged by the same (occurred_at, id) cursor, so taking each one's next
    `limit` entries after the cursor and keeping the newest `limit` of the union is exact.
    """
    limit = max(1, min(limit, PAGE_SIZE_MAX))
    check_timeline_cursor(cursor)
    people = [c.id for c in deal_contacts(session, deal.id)]
    around = timeline(
        session, viewer, contact_ids=people, company_id=deal.company_id, limit=limit, cursor=cursor
    )
    query = (
        select(Activity)
        .where(Activity.deal_id == deal.id, visible_to(viewer))
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        when, ident = decode_cursor(cursor)
        query = query.where(
            (Activity.occurred_at < when) | ((Activity.occurred_at == when) & (Activity.id < ident))
        )
    filed = list(session.scalars(query))
    more = around.next_cursor is not None or len(filed) > limit
    merged: dict[int, ActivityView] = {v.id: v for v in around.items}
    for view in present(session, viewer, filed[:limit]):
        merged.setdefault(view.id, view)
    ordered = sorted(merged.values(), key=lambda v: (v.occurred_at, v.id), reverse=True)
    more = more or len(ordered) > limit
    items = ordered[:limit]
    next_cursor = encode_cursor(items[-1].occurred_at, items[-1].id) if more and items else None
    return TimelinePage(items, next_cursor)


def list_deals(
    session: Session,
    filters: DealFilters,
    *,
    sort: Sort = "-updated_at",
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Deal]:
    """Deals matching every filter given, keyset-paged in the chosen order.

    The cursor carries the sort it was made for: one reused with another sort is refused rather
    than compared against the wrong column.
    """
    query = select(Deal).options(selectinload(Deal.stage))
    for condition in _conditions(session, filters):
        query = query.where(condition)
    name = sort.lstrip("-")
    inner: str | None = None
    if cursor:
        prefix, _, inner = cursor.partition("~")
        if prefix != sort or not inner:
            raise DomainError(
                "this cursor belongs to another sort order; start again without it",
                field="cursor",
            )
        _check_sort_cursor(name, inner)
    page: Page[Deal] = keyset_page(
        session,
        query,
        sort=_sort_key(name),
        ident=Deal.id,
        descending=sort.startswith("-"),
        limit=limit,
        cursor=inner,
    )
    if page.next_cursor is not None:
        page.next_cursor = f"{sort}~{page.next_cursor}"
    return page


def _sort_key(name: str) -> Any:
    if name == "amount":
        return func.coalesce(Deal.amount, NO_AMOUNT)
    if name == "expected_close":
        # As ISO text (a cursor holds strings, not dates); no date sorts after every date.
        return func.coalesce(cast(Deal.expected_close, String), "9999-12-31")
    if name == "title":
        return func.lower(Deal.title)
    return Deal.updated_at


def _check_sort_cursor(name: str, cursor: str) -> None:
    """A hand-made cursor whose value SQL could not compare with the sort key is a 400."""
    if name != "amount":
        check_cursor(cursor, "datetime" if name == "updated_at" else str)
        return
    value, ident = decode_keyset_cursor(cursor)
    if not (
        isinstance(value, Decimal)
        and value.is_finite()
        and NO_AMOUNT <= value < MAX_AMOUNT
        and valid_id(ident)
    ):
        raise DomainError("the cursor is not one this API gave out for this sort", field="cursor")


def _conditions(session: Session, filters: DealFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.pipeline_id is not None:
        conditions.append(Deal.pipeline_id == filters.pipeline_id)
    if filters.stage_id is not None:
        conditions.append(Deal.stage_id == filters.stage_id)
    if filters.status is not None:
        conditions.append(Deal.status == filters.status)
    if filters.owner_id is not None:
        conditions.append(Deal.owner_id == filters.owner_id)
    if filters.company_id is not None:
        conditions.append(Deal.company_id == filters.company_id)
    if filters.contact_id is not None:
        conditions.append(
            Deal.id.in_(
                select(DealContact.deal_id).where(DealContact.contact_id == filters.contact_id)
            )
        )
    if filters.amount_min is not None:
        conditions.append(Deal.amount >= filters.amount_min)
    if filters.amount_max is not None:
        conditions.append(Deal.amount <= filters.amount_max)
    if filters.expected_close_from is not None:
        conditions.append(Deal.expected_close >= filters.expected_close_from)
    if filters.expected_close_to is not None:
        conditions.append(Deal.expected_close <= filters.expected_close_to)
    conditions += custom_field_conditions(
        session, "deal", Deal.custom_fields, filters.custom_fields
    )
    return conditions


# -- writing --------------------------------------------------------------------------------------


def create_deal(
    session: Session,
    viewer: Viewer,
    data: DealInput,
    *,
    pipeline_id: int | None = None,
    stage_id: int | None = None,
    now: datetime | None = None,
) -> Deal:
    """A new deal in the given stage (default: the first stage of the given, else the default,
    pipeline); its creation is the first entry of its stage history."""
    now = now or utcnow()
    if stage_id is not None:
        stage = get_stage(session, stage_id, pipeline_id=pipeline_id, field="stage_id")
    else:
        pipeline = (
            get_pipeline(session, pipeline_id, field="pipeline_id")
            if pipeline_id is not None
            else ensure_default_pipeline(session)
        )
        stage = first_stage(session, pipeline)
    if data.title is None:
        raise DomainError("a deal needs a title", field="title")
    status = status_for(stage)
    deal = Deal(
        title=_title(data.title),
        amount=parse_amount(data.amount),
        currency=_currency(data.currency or "EUR"),
        pipeline_id=stage.pipeline_id,
        stage_id=stage.id,
        status=status,
        owner_id=check_owner(session, viewer.id if data.owner_id is None else data.owner_id),
        company_id=_company(session, data.company_id),
        expected_close=data.expected_close,
        closed_at=now if status != "open" else None,
        stage_entered_at=now,
        custom_fields=merge_custom_fields(
            {}, validate_custom_fields(session, "deal", data.custom_fields or {})
        ),
        created_at=now,
        updated_at=now,
    )
    session.add(deal)
    session.flush()
    _set_contacts(session, deal, data.contact_ids or [])
    session.add(
        DealStageChange(
            deal_id=deal.id,
            from_stage_id=None,
            to_stage_id=stage.id,
            changed_by_id=viewer.id,
            changed_at=now,
        )
    )
    session.flush()
    deals_changed(session, [deal.id], [deal.company_id])
    return deal


def update_deal(session: Session, deal_id: int, data: DealInput) -> Deal:
    """Change the fields given (the stage moves through `move_stage`, which keeps history);
    custom fields merge: a key given as null is removed, keys not given are kept."""
    deal = get_deal(session, deal_id)
    company_before = deal.company_id
    given = data.given
    if "title" in given:
        if data.title is None:
            raise DomainError("a deal needs a title", field="title")
        deal.title = _title(data.title)
    if "amount" in given:
        deal.amount = parse_amount(data.amount)
    if "currency" in given:
        if data.currency is None:
            raise DomainError("a deal needs a currency", field="currency")
        deal.currency = _currency(data.currency)
    if "owner_id" in given:
        deal.owner_id = check_owner(session, data.owner_id)
    if "company_id" in given:
        deal.company_id = _company(session, data.company_id)
    if "expected_close" in given:
        deal.expected_close = data.expected_close
    if "custom_fields" in given and data.custom_fields:
        changes = validate_custom_fields(session, "deal", data.custom_fields)
        deal.custom_fields = merge_custom_fields(deal.custom_fields, changes)
    if "contact_ids" in given:
        deal.updated_at = utcnow()  # the people changed: a new version of the deal (one bump)
        _set_contacts(session, deal, data.contact_ids or [])
    session.flush()
    deals_changed(session, [deal.id], [company_before, deal.company_id])
    return deal


def move_stage(
    session: Session, viewer: Viewer, deal_id: int, stage_id: int, *, now: datetime | None = None
) -> Deal:
    """Move the deal to a stage (of any pipeline); moving to the stage it is in changes nothing."""
    deal = get_deal(session, deal_id)
    stage = get_stage(session, stage_id, field="stage_id")
    if stage.id == deal.stage_id:
        return deal
    now = now or utcnow()
    session.add(
        DealStageChange(
            deal_id=deal.id,
            from_stage_id=deal.stage_id,
            to_stage_id=stage.id,
            changed_by_id=viewer.id,
            changed_at=now,
        )
    )
    from_stage_id = deal.stage_id
    _enter(deal, stage, entered_at=now)
    session.flush()
    deals_changed(session, [deal.id], [deal.company_id])
    _stage_event(session, deal, from_stage_id)
    return deal


def undo_stage_move(
    session: Session, viewer: Viewer, deal_id: int, *, now: datetime | None = None
) -> Deal:
    """Revert the last stage move, if the caller made it within `UNDO_WINDOW`."""
    deal = get_deal(session, deal_id)
    changes = list(
        session.scalars(
            select(DealStageChange)
            .where(DealStageChange.deal_id == deal.id)
            .order_by(DealStageChange.id.desc())
            .limit(2)
        )
    )
    last = changes[0] if changes else None
    if last is None or last.from_stage_id is None:
        raise Conflict("this deal has no stage move to undo")
    if last.changed_by_id != viewer.id:
        raise Conflict("the last stage move was someone else's; move the deal yourself instead")
    if (now or utcnow()) - last.changed_at > UNDO_WINDOW:
        minutes = int(UNDO_WINDOW.total_seconds() // 60)
        raise Conflict(f"a stage move can be undone for {minutes} minutes; move the deal instead")
    previous = get_stage(session, last.from_stage_id)
    # The deal entered the stage it returns to when the move before this one happened.
    entered = changes[1].changed_at if len(changes) > 1 else deal.created_at
    from_stage_id = deal.stage_id
    session.delete(last)
    _enter(deal, previous, entered_at=entered)
    session.flush()
    deals_changed(session, [deal.id], [deal.company_id])
    _stage_event(session, deal, from_stage_id)
    return deal


def _stage_event(session: Session, deal: Deal, from_stage_id: int | None) -> None:
    payload = {
        "deal_id": deal.id,
        "title": deal.title,
        "from_stage_id": from_stage_id,
        "to_stage_id": deal.stage_id,
        "status": deal.status,
    }
    webhooks.emit(session, "deal.stage_changed", payload)


def delete_deal(session: Session, viewer: Viewer, deal_id: int) -> None:
    """The deal, its history and its follow-ups go; so do the notes filed on it alone. That
    destroys the record (and colleagues' notes) for everyone: its owner or an admin only, as
    for contacts and companies."""
    deal = get_deal(session, deal_id)
    may_remove(viewer, deal.owner_id, "deal")
    contacts = list(
        session.scalars(
            select(FollowUp.contact_id).where(
                FollowUp.deal_id == deal.id, FollowUp.contact_id.is_not(None)
            )
        )
    )
    session.execute(delete(FollowUp).where(FollowUp.deal_id == deal.id))
    session.execute(
        delete(Activity)
        .where(Activity.deal_id == deal.id, Activity.kind == "note")
        .execution_options(synchronize_session=False)
    )
    company_id = deal.company_id
    session.delete(deal)
    session.flush()
    refresh_next_follow_up(session, contacts)
    deals_changed(session, [], [company_id])  # its own signals went with it (cascade)


# -- pieces ---------------------------------------------------------------------------------------


def parse_amount(raw: str | None) -> Decimal | None:
    """A decimal string ("1200", "1200.50"); never a float, so no cent is lost on the way."""
    if raw is None:
        return None
    text = raw.strip()
    if not _AMOUNT.fullmatch(text):
        raise DomainError(
            'amount is a decimal string with up to 12 digits and 2 decimals, e.g. "1200.50"',
            field="amount",
        )
    try:
        return Decimal(text).quantize(CENT)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        raise DomainError("amount is not a number", field="amount") from None


def _enter(deal: Deal, stage: Stage, *, entered_at: datetime) -> None:
    status = status_for(stage)
    deal.stage_id = stage.id
    deal.stage = stage
    deal.pipeline_id = stage.pipeline_id
    deal.status = status
    deal.closed_at = entered_at if status != "open" else None
    deal.stage_entered_at = entered_at


def _stages_in_history(session: Session, deal: Deal) -> list[Stage]:
    ids = {c.to_stage_id for c in deal.history} | {
        c.from_stage_id for c in deal.history if c.from_stage_id is not None
    }
    if not ids:
        return []
    return list(session.scalars(select(Stage).where(Stage.id.in_(sorted(ids)))))


def _set_contacts(session: Session, deal: Deal, contact_ids: Sequence[int]) -> None:
    wanted = list(dict.fromkeys(contact_ids))
    if len(wanted) > MAX_CONTACTS:
        raise DomainError(f"at most {MAX_CONTACTS} contacts per deal", field="contact_ids")
    valid = [c for c in wanted if valid_id(c)]
    found = (
        set(session.scalars(select(Contact.id).where(Contact.id.in_(valid)))) if valid else set()
    )
    missing = [c for c in wanted if c not in found]
    if missing:
        raise DomainError(
            f"there is no contact {', '.join(map(str, missing))}", field="contact_ids"
        )
    session.execute(delete(DealContact).where(DealContact.deal_id == deal.id))
    session.add_all(DealContact(deal_id=deal.id, contact_id=c) for c in wanted)


def check_timeline_cursor(cursor: str | None) -> None:
    """Refuse a timeline cursor SQL could not compare (a naive time, an id out of range) with a
    400 before it reaches the database."""
    if cursor:
        when, ident = decode_cursor(cursor)
        if when.tzinfo is None or not valid_id(ident):
            raise DomainError("the cursor is not one this API gave out", field="cursor")


def _title(raw: str) -> str:
    return " ".join(clean_text(raw, "title", max_length=300, required=True).split())


def _currency(raw: str) -> str:
    code = raw.strip().upper()
    if code not in CURRENCIES:
        raise DomainError(f"'{raw}' is not an ISO 4217 currency code", field="currency")
    return code


def _company(session: Session, company_id: int | None) -> int | None:
    if company_id is None:
        return None
    if not valid_id(company_id) or session.get(Company, company_id) is None:
        raise DomainError(f"there is no company {company_id}", field="company_id")
    return company_id
