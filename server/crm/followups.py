"""Follow-ups: tasks in the future about a contact or a deal ("call Clara back on Tuesday").

Days are the user's days: "due today" means between midnight and midnight in the owner's time
zone (`User.time_zone`), not UTC's, or a salesperson in California would see tomorrow's calls
from 17:00 on. The three windows do not overlap:

  overdue  — due before the start of the user's today (and not done);
  today    — due during the user's today (earlier today included: still today's work);
  upcoming — due from the start of the user's tomorrow.

Snoozing moves `due_at` to the new time (and records `snoozed_until`), so one column decides when
a follow-up is due: the filters, the order and `Contact.next_follow_up_at` all read that one column.

`Contact.next_follow_up_at` is derived (the earliest open follow-up's `due_at`) and kept up to date
here, by every change to a follow-up; it is written without bumping the contact's version, so
adding a follow-up never makes someone's open edit of that contact stale.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from enum import Enum
from typing import Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from server.crm.custom_fields import check_cursor, check_owner, clean_text, valid_id
from server.crm.errors import Conflict, DomainError, NotFound
from server.crm.paging import Page, keyset_page
from server.crm.viewer import Viewer
from server.models import Contact, Deal, FollowUp, User, utcnow

Due = Literal["today", "overdue", "upcoming"]
State = Literal["open", "done", "all"]
CONTACTS = cast(Table, Contact.__table__)


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP  # "leave as it is", for fields where None is a value


@dataclass(frozen=True)
class FollowUpFilters:
    owner_id: int | None = None
    due: Due | None = None
    state: State = "open"
    contact_id: int | None = None
    deal_id: int | None = None


def user_zone(session: Session, user_id: int) -> tzinfo:
    """The user's time zone; UTC when unset or not a zone this machine knows."""
    name = session.scalar(select(User.time_zone).where(User.id == user_id)) or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def day_bounds(now: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    """Start of the user's today and of their tomorrow, in UTC (DST days are 23 or 25 hours)."""
    local_today = now.astimezone(zone).date()
    start = datetime.combine(local_today, time(0), tzinfo=zone)
    end = datetime.combine(local_today + timedelta(days=1), time(0), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def list_follow_ups(
    session: Session,
    viewer: Viewer,
    filters: FollowUpFilters,
    *,
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | None = None,
) -> Page[FollowUp]:
    """Follow-ups by due time, soonest first; "today" is the viewer's today."""
    query = select(FollowUp)
    if filters.owner_id is not None:
        query = query.where(FollowUp.owner_id == filters.owner_id)
    if filters.contact_id is not None:
        query = query.where(FollowUp.contact_id == filters.contact_id)
    if filters.deal_id is not None:
        query = query.where(FollowUp.deal_id == filters.deal_id)
    if filters.state == "open":
        query = query.where(FollowUp.done_at.is_(None))
    elif filters.state == "done":
        query = query.where(FollowUp.done_at.is_not(None))
    if filters.due is not None:
        start, end = day_bounds(now or utcnow(), user_zone(session, viewer.id))
        if filters.due == "overdue":
            query = query.where(FollowUp.due_at < start, FollowUp.done_at.is_(None))
        elif filters.due == "today":
            query = query.where(FollowUp.due_at >= start, FollowUp.due_at < end)
        else:
            query = query.where(FollowUp.due_at >= end)
    check_cursor(cursor, "datetime")
    return keyset_page(
        session, query, sort=FollowUp.due_at, ident=FollowUp.id, limit=limit, cursor=cursor
    )


def get_follow_up(session: Session, follow_up_id: int) -> FollowUp:
    follow_up = session.get(FollowUp, follow_up_id) if valid_id(follow_up_id) else None
    if follow_up is None:
        raise NotFound(f"no follow-up {follow_up_id}")
    return follow_up


def create_follow_up(
    session: Session,
    viewer: Viewer,
    *,
    title: str,
    due_at: datetime,
    contact_id: int | None = None,
    deal_id: int | None = None,
    owner_id: int | None = None,
) -> FollowUp:
    if contact_id is None and deal_id is None:
        raise DomainError("a follow-up is about a contact or a deal: give contact_id or deal_id")
    follow_up = FollowUp(
        title=_title(title),
        due_at=_aware(due_at, "due_at"),
        contact_id=_contact(session, contact_id),
        deal_id=_deal(session, deal_id),
        owner_id=check_owner(session, viewer.id if owner_id is None else owner_id),
    )
    session.add(follow_up)
    session.flush()
    refresh_next_follow_up(session, [follow_up.contact_id])
    return follow_up


def update_follow_up(
    session: Session,
    follow_up_id: int,
    *,
    title: str | None = None,
    due_at: datetime | None = None,
    contact_id: int | _Keep | None = KEEP,
    deal_id: int | _Keep | None = KEEP,
    owner_id: int | _Keep | None = KEEP,
    done: bool | None = None,
    now: datetime | None = None,
) -> FollowUp:
    """Change what was given; `done` False reopens a follow-up ticked off by mistake."""
    follow_up = get_follow_up(session, follow_up_id)
    before = follow_up.contact_id
    if title is not None:
        follow_up.title = _title(title)
    if due_at is not None:
        follow_up.due_at = _aware(due_at, "due_at")
        follow_up.snoozed_until = None
        follow_up.notified_at = None
    if contact_id is not KEEP:
        follow_up.contact_id = _contact(session, contact_id)
    if deal_id is not KEEP:
        follow_up.deal_id = _deal(session, deal_id)
    if follow_up.contact_id is None and follow_up.deal_id is None:
        raise DomainError("a follow-up is about a contact or a deal: keep one of them")
    if owner_id is not KEEP:
        follow_up.owner_id = check_owner(session, owner_id)
    if done is True and follow_up.done_at is None:
        follow_up.done_at = now or utcnow()
    elif done is False:
        follow_up.done_at = None
    session.flush()
    refresh_next_follow_up(session, [before, follow_up.contact_id])
    return follow_up


def mark_done(session: Session, follow_up_id: int, *, now: datetime | None = None) -> FollowUp:
    """Tick it off (doing it twice keeps the first time it was done)."""
    follow_up = get_follow_up(session, follow_up_id)
    if follow_up.done_at is None:
        follow_up.done_at = now or utcnow()
        session.flush()
        refresh_next_follow_up(session, [follow_up.contact_id])
    return follow_up


def snooze(
    session: Session,
    follow_up_id: int,
    until: datetime,
    *,
    now: datetime | None = None,
) -> FollowUp:
    follow_up = get_follow_up(session, follow_up_id)
    until = _aware(until, "until")
    if follow_up.done_at is not None:
        raise Conflict("this follow-up is done; reopen it before snoozing it")
    if until <= (now or utcnow()):
        raise DomainError("snooze until a time in the future", field="until")
    follow_up.due_at = until
    follow_up.snoozed_until = until
    follow_up.notified_at = None
    session.flush()
    refresh_next_follow_up(session, [follow_up.contact_id])
    return follow_up


def delete_follow_up(session: Session, follow_up_id: int) -> None:
    follow_up = get_follow_up(session, follow_up_id)
    contact_id = follow_up.contact_id
    session.delete(follow_up)
    session.flush()
    refresh_next_follow_up(session, [contact_id])


def refresh_next_follow_up(session: Session, contact_ids: Iterable[int | None]) -> None:
    """Set each contact's `next_follow_up_at` to its earliest open follow-up's due time.

    A Core UPDATE on the table: the contact's version and `updated_at` stay as they are, since
    nothing a person typed about the contact changed.
    """
    ids = sorted({c for c in contact_ids if c is not None})
    if not ids:
        return
    earliest = (
        select(func.min(FollowUp.due_at))
        .where(FollowUp.contact_id == CONTACTS.c.id, FollowUp.done_at.is_(None))
        .scalar_subquery()
    )
    session.execute(
        update(CONTACTS)
        .where(CONTACTS.c.id.in_(ids))
        .values(next_follow_up_at=earliest, updated_at=CONTACTS.c.updated_at)
    )
    # Contacts already loaded in this session must not keep showing the old value.
    for contact_id in ids:
        loaded = session.identity_map.get(identity_key(Contact, contact_id))
        if loaded is not None:
            session.expire(loaded, ["next_follow_up_at"])


def _title(raw: str) -> str:
    return " ".join(clean_text(raw, "title", max_length=300, required=True).split())


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise DomainError(
            "give a time with its offset (e.g. 2026-03-10T09:00:00-07:00)", field=field
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 9999 at a western offset is past the end of the calendar
        raise DomainError("that time is out of range", field=field) from None


def _contact(session: Session, contact_id: int | None) -> int | None:
    if contact_id is None:
        return None
    if not valid_id(contact_id) or session.get(Contact, contact_id) is None:
        raise DomainError(f"there is no contact {contact_id}", field="contact_id")
    return contact_id


def _deal(session: Session, deal_id: int | None) -> int | None:
    if deal_id is None:
        return None
    if not valid_id(deal_id) or session.get(Deal, deal_id) is None:
        raise DomainError(f"there is no deal {deal_id}", field="deal_id")
    return deal_id
