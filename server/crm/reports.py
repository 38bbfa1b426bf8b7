"""The few numbers a small business can act on, over a period (default: the last 90 days).

- Response time: how long customers wait for an answer. For each customer email (from outside
  the team) that a team member answered in the same conversation, the time from the first of
  their unanswered emails to the team's first later email there; the median (and the 90th percentile) per person who answered, and for the team. An
  email nobody answered is counted as unanswered, not as a time.
- Activity: emails sent, meetings and notes per ISO week, per person (who sent, organised or
  wrote them).
- New contacts per ISO week.
- Pipeline: open deals by stage — how many and their value, per currency (values in different
  currencies are never added together).
- Win rate and deal cycle: of the deals closed in the period, the share won, and the median and
  mean days from creation to winning.
- Top customers: companies by the value of the deals they won in the period, per currency.

What a person may see of mail decides what is counted of it (`server.crm.viewer.visible_to`):
another member's private mailbox never shows, not even as a number. Deals and contacts are the
team's. Everything is computed in SQL except the response time, which pairs emails within their
threads: the period's emails (only ids, threads, times and senders) are read once, in order.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.crm.errors import DomainError
from server.crm.signals.store import load_team
from server.crm.viewer import Viewer, visible_to
from server.models import Activity, Company, Contact, Deal, Stage, User, utcnow

DEFAULT_DAYS = 90
# Reports reach a little past their period (answers after its end, whole weeks): dates near
# the ends of the calendar are refused as mistakes, not met with an overflow.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
MAX_DAYS = 366 * 3
TOP = 10
SHARED = "a shared mailbox"  # team mail no user sent (info@, sales@)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    @classmethod
    def of(
        cls, start: datetime | None, end: datetime | None, *, now: datetime | None = None
    ) -> Period:
        end = end or now or utcnow()
        if not EARLIEST < end < LATEST:
            raise DomainError(f"to must be between {EARLIEST:%Y} and {LATEST:%Y}", field="to")
        start = start or end - timedelta(days=DEFAULT_DAYS)
        if start < EARLIEST:
            raise DomainError(f"from must be after {EARLIEST:%Y}", field="from")
        if start >= end:
            raise DomainError("the period must start before it ends", field="from")
        if end - start > timedelta(days=MAX_DAYS):
            raise DomainError(f"a period is at most {MAX_DAYS} days", field="from")
        return cls(start, end)


# -- response time ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseTimes:
    user_id: int | None  # None: the whole team
    name: str
    answered: int
    median_hours: float | None
    p90_hours: float | None


@dataclass(frozen=True)
class ResponseReport:
    team: ResponseTimes
    people: list[ResponseTimes]
    unanswered: int


def response_times(session: Session, viewer: Viewer, period: Period) -> ResponseReport:
    team = load_team(session)
    rows = session.execute(
        select(Activity.thread_id, Activity.occurred_at, Activity.sender_address)
        .where(
            Activity.kind == "email",
            Activity.thread_id.is_not(None),
            Activity.occurred_at >= period.start,
            Activity.occurred_at < period.end + timedelta(days=14),  # answers after the period
            visible_to(viewer),
        )
        .order_by(Activity.thread_id, Activity.occurred_at, Activity.id)
    ).all()
    waits: dict[int | None, list[float]] = defaultdict(list)
    unanswered = 0
    waiting_since: datetime | None = None
    thread: int | None = None
    for row in rows:
        if row.thread_id != thread:
            unanswered += waiting_since is not None and waiting_since < period.end
            thread, waiting_since = row.thread_id, None
        if not team.is_team(row.sender_address.lower()):
            if waiting_since is None:
                waiting_since = row.occurred_at  # the first of their unanswered emails
        elif waiting_since is not None:
            if waiting_since < period.end:
                hours = (row.occurred_at - waiting_since).total_seconds() / 3600
                waits[team.user_of(row.sender_address.lower())].append(hours)
            waiting_since = None
    unanswered += waiting_since is not None and waiting_since < period.end
    names = _user_names(session, [u for u in waits if u is not None])
    everyone = [h for hours in waits.values() for h in hours]
    people = [
        _times(user_id, names.get(user_id, SHARED) if user_id else SHARED, hours)
        for user_id, hours in sorted(waits.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
    ]
    return ResponseReport(_times(None, "team", everyone), people, int(unanswered))


def _times(user_id: int | None, name: str, hours: list[float]) -> ResponseTimes:
    if not hours:
        return ResponseTimes(user_id, name, 0, None, None)
    ordered = sorted(hours)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return ResponseTimes(
        user_id, name, len(hours), round(statistics.median(ordered), 2), round(p90, 2)
    )


# -- activity and new contacts per week -----------------------------------------------------------


@dataclass(frozen=True)
class WeekCount:
    week: date  # the Monday
    user_id: int | None
    name: str
    emails_sent: int = 0
    meetings: int = 0
    notes: int = 0


def activity_by_week(session: Session, viewer: Viewer, period: Period) -> list[WeekCount]:
    team = load_team(session)
    counts: dict[tuple[date, int | None], dict[str, int]] = defaultdict(
        lambda: {"email": 0, "meeting": 0, "note": 0}
    )
    for row in session.execute(
        select(
            Activity.kind, Activity.occurred_at, Activity.sender_address, Activity.author_id
        ).where(
            Activity.kind.in_(("email", "meeting", "note")),
            Activity.occurred_at >= period.start,
            Activity.occurred_at < period.end,
            visible_to(viewer),
        )
    ):
        if row.kind == "note":
            who = row.author_id
        else:
            address = row.sender_address.lower()
            if not team.is_team(address):
                continue  # a customer's email or meeting: not our activity
            who = team.user_of(address)
        counts[_monday(row.occurred_at), who][row.kind] += 1
    names = _user_names(session, [who for _, who in counts if who is not None])
    return [
        WeekCount(
            week,
            who,
            names.get(who, SHARED) if who else SHARED,
            emails_sent=c["email"],
            meetings=c["meeting"],
            notes=c["note"],
        )
        for (week, who), c in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0))
    ]


@dataclass(frozen=True)
class NewContacts:
    week: date
    contacts: int


def new_contacts_by_week(session: Session, period: Period) -> list[NewContacts]:
    weeks: dict[date, int] = defaultdict(int)
    for created in session.scalars(
        select(Contact.created_at).where(
            Contact.created_at >= period.start, Contact.created_at < period.end
        )
    ):
        weeks[_monday(created)] += 1
    return [NewContacts(week, n) for week, n in sorted(weeks.items())]


# -- deals ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageValue:
    pipeline_id: int
    stage_id: int
    stage: str
    position: int
    currency: str
    deals: int
    value: Decimal


def pipeline_value(session: Session, pipeline_id: int | None = None) -> list[StageValue]:
    query = (
        select(
            Stage.pipeline_id,
            Stage.id,
            Stage.name,
            Stage.position,
            Deal.currency,
            func.count(Deal.id),
            func.coalesce(func.sum(Deal.amount), 0),
        )
        .join(Deal, Deal.stage_id == Stage.id)
        .where(Deal.status == "open")
        .group_by(Stage.pipeline_id, Stage.id, Stage.name, Stage.position, Deal.currency)
        .order_by(Stage.pipeline_id, Stage.position, Deal.currency)
    )
    if pipeline_id is not None:
        query = query.where(Stage.pipeline_id == pipeline_id)
    return [
        StageValue(p, s, name, pos, currency, int(n), Decimal(value or 0))
        for p, s, name, pos, currency, n, value in session.execute(query)
    ]


@dataclass(frozen=True)
class WinRate:
    won: int
    lost: int
    rate: float | None  # won / (won + lost)
    cycle_median_days: float | None
    cycle_mean_days: float | None


def win_rate(session: Session, period: Period) -> WinRate:
    rows = session.execute(
        select(Deal.status, Deal.created_at, Deal.closed_at).where(
            Deal.status.in_(("won", "lost")),
            Deal.closed_at >= period.start,
            Deal.closed_at < period.end,
        )
    ).all()
    won = [r for r in rows if r.status == "won"]
    lost = len(rows) - len(won)
    cycles = [(r.closed_at - r.created_at).total_seconds() / 86400 for r in won if r.closed_at]
    return WinRate(
        won=len(won),
        lost=lost,
        rate=round(len(won) / len(rows), 4) if rows else None,
        cycle_median_days=round(statistics.median(cycles), 1) if cycles else None,
        cycle_mean_days=round(statistics.fmean(cycles), 1) if cycles else None,
    )


@dataclass(frozen=True)
class CustomerValue:
    company_id: int
    name: str
    currency: str
    deals: int
    value: Decimal


def top_customers(session: Session, period: Period, *, limit: int = TOP) -> list[CustomerValue]:
    value = func.coalesce(func.sum(Deal.amount), 0)
    rows = session.execute(
        select(Company.id, Company.name, Deal.currency, func.count(Deal.id), value)
        .join(Deal, Deal.company_id == Company.id)
        .where(Deal.status == "won", Deal.closed_at >= period.start, Deal.closed_at < period.end)
        .group_by(Company.id, Company.name, Deal.currency)
        .order_by(value.desc(), Company.id)
        .limit(limit)
    )
    return [CustomerValue(c, name, cur, int(n), Decimal(v or 0)) for c, name, cur, n, v in rows]


# -- pieces ----------------------------------------------------------------------------------------


def _monday(moment: datetime) -> date:
    day = moment.date()
    return day - timedelta(days=day.weekday())


def _user_names(session: Session, ids: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return {
        user_id: name or email
        for user_id, name, email in session.execute(
            select(User.id, User.name, User.email).where(User.id.in_(wanted))
        )
    }
