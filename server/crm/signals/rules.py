"""The signal rules: pure functions from a timeline (or a deal, or a company) to signals.

Each rule answers "is there something to act on, from when, until when, and why", as a function
of the data and the moment `now` only, so the same input always gives the same signals — which is
what lets `server.crm.signals.store` recompute a few contacts when mail arrives and still agree
with a full recompute. A signal that becomes due later (a reply is not overdue yet) is returned
with its future `due_at`: time passing shows it without any recompute.

Who is who. An address is ours when `Team.is_team` says so (internal domains, users and their
mailboxes); an email is the contact's when it comes from any of their addresses (a reply from
their other address counts), ours when a team address sent it. Emails sent by machines
(auto-replies, out-of-office, no-reply senders; `Item.automatic`) are never a reply, an answer
or a follow-up. Internal-only mail (team to team) is neither.

- awaiting reply: our latest email to the contact in a thread got no reply — no later email in
  the thread from anyone outside the team, and none from the contact anywhere — within
  `awaiting_reply_days` business days. One signal per email, for its first "to" contact.
- unanswered: the contact's latest email in a thread got no answer — no later email of ours in
  the thread to someone outside, and none of ours to the contact anywhere — within
  `unanswered_hours` business hours of their first unanswered email.
- going cold: the contact last engaged (wrote to us, met us, had a call) longer ago than their
  own rhythm (`going_cold_multiple` x the median gap between their exchanges, at least
  `going_cold_floor_days`, once they have `going_cold_min_exchanges` exchanges) or than their
  lifecycle stage's fixed limit, whichever is shorter; only once we have written to them too.
- churn risk (contacts at `churn_stages`): our last `churn_unanswered_emails` emails to them all
  went unanswered, or the days they engaged in the last `churn_window_days` fell by
  `churn_drop_share` against the window before (which had at least `churn_min_before`).
- meeting without follow-up: a meeting ended and none of our emails reached any of its outside
  attendees within `meeting_follow_up_days` business days. One signal per meeting, for its
  first outside attendee. Meeting series are left out (occurrences are not stored one by one).
- deal rotting: an open deal with no activity (on the deal or with its contacts) for its stage's
  rot days (or `deal_rot_days` for stages without their own).
- top customer: a company's won deals in one currency (or a money/number custom field) reach
  `top_customer_threshold`.

Business days and hours are the signal owner's (`User.time_zone`, else the settings' zone).
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from functools import cached_property

from server.crm.signals.config import SignalSettings
from server.crm.signals.model import (
    MEETING_ROLES,
    CompanyFacts,
    ContactTimeline,
    DealFacts,
    Item,
    Person,
    Reason,
    Signal,
    Team,
    WonDeal,
)
from server.crm.signals.worktime import WorkWeek

# Anchors older than this before `now - expire_after_days` cannot give a live signal: even the
# longest business delay the settings allow (30 business days, plus holidays) is shorter.
HORIZON_MARGIN = timedelta(days=120)
BURST = timedelta(days=1)  # engagements closer than this are one exchange
MAX_EVIDENCE = 10


@dataclass(frozen=True)
class Context:
    """What every rule needs besides its subject: settings, who is in the team, the moment, and
    each user's time zone."""

    settings: SignalSettings
    team: Team
    now: datetime
    zones: Mapping[int, tzinfo] = field(default_factory=dict)

    @cached_property
    def week(self) -> WorkWeek:
        return self.settings.work_week

    @cached_property
    def default_zone(self) -> tzinfo:
        return self.settings.zone

    @cached_property
    def expire_after(self) -> timedelta:
        return timedelta(days=self.settings.expire_after_days)

    @cached_property
    def horizon(self) -> datetime:
        """Anchors (emails, meetings) before this cannot make a signal that is still shown."""
        return self.now - self.expire_after - HORIZON_MARGIN

    def zone(self, user_id: int | None) -> tzinfo:
        if user_id is None:
            return self.default_zone
        return self.zones.get(user_id, self.default_zone)


# -- contacts ---------------------------------------------------------------------------------


def contact_signals(timeline: ContactTimeline, ctx: Context) -> list[Signal]:
    """Every contact-level signal of this contact that is due now or later, and not expired."""
    lens = _Lens(timeline, ctx)
    settings = ctx.settings
    found: list[Signal] = []
    if settings.is_enabled("awaiting_reply"):
        found += lens.awaiting_reply()
    if settings.is_enabled("unanswered"):
        found += lens.unanswered()
    if settings.is_enabled("going_cold"):
        found += lens.going_cold()
    if settings.is_enabled("churn_risk"):
        found += lens.churn_risk()
    if settings.is_enabled("meeting_without_follow_up"):
        found += lens.meetings_without_follow_up()
    return [s for s in found if s.expires_at is None or s.expires_at > ctx.now]


def awaiting_reply(timeline: ContactTimeline, ctx: Context) -> list[Signal]:
    return _live(_Lens(timeline, ctx).awaiting_reply(), ctx)


def unanswered(timeline: ContactTimeline, ctx: Context) -> list[Signal]:
    return _live(_Lens(timeline, ctx).unanswered(), ctx)


def going_cold(timeline: ContactTimeline, ctx: Context) -> list[Signal]:
    return _live(_Lens(timeline, ctx).going_cold(), ctx)


def churn_risk(timeline: ContactTimeline, ctx: Context) -> list[Signal]:
    return _live(_Lens(timeline, ctx).churn_risk(), ctx)


def meetings_without_follow_up(timeline: ContactTimeline, ctx: Context) -> list[Signal]:
    return _live(_Lens(timeline, ctx).meetings_without_follow_up(), ctx)


def _live(signals: Iterable[Signal], ctx: Context) -> list[Signal]:
    return [s for s in signals if s.expires_at is None or s.expires_at > ctx.now]


Order = tuple[datetime, int]
NEVER: Order = (datetime.min.replace(tzinfo=UTC), 0)


class _Lens:
    """One contact's timeline, classified once: whose each email is, and the indexes the rules
    look things up in."""

    def __init__(self, timeline: ContactTimeline, ctx: Context) -> None:
        self.ctx = ctx
        self.team = ctx.team
        self.contact = timeline.contact
        self.items = sorted(timeline.items, key=lambda i: i.order)
        self.emails = [i for i in self.items if i.kind == "email"]
        self.threads: dict[int, list[Item]] = {}
        for email in self.emails:
            self.threads.setdefault(email.thread, []).append(email)
        # the contact's own emails (not automatic), anywhere
        self.theirs = [e for e in self.emails if self.from_contact(e) and not e.automatic]
        self.their_orders = [e.order for e in self.theirs]
        # our emails (not automatic) to the contact, anywhere
        self.ours_to_them = [
            e for e in self.emails if self.from_us(e) and self.to_contact(e) and not e.automatic
        ]
        self.our_orders = [e.order for e in self.ours_to_them]

    # -- who is who ---------------------------------------------------------------------------

    def is_contact(self, person: Person) -> bool:
        return person.contact_id == self.contact.id or (
            person.contact_id is None and person.address in self.contact.addresses
        )

    def contact_of(self, person: Person) -> int | None:
        if person.contact_id is not None:
            return person.contact_id
        return self.contact.id if person.address in self.contact.addresses else None

    def from_contact(self, item: Item) -> bool:
        if item.sender in self.contact.addresses:
            return True
        return any(p.role == "from" and p.contact_id == self.contact.id for p in item.people)

    def from_us(self, item: Item) -> bool:
        return self.team.is_team(item.sender)

    def from_outside(self, item: Item) -> bool:
        return bool(item.sender) and not self.team.is_team(item.sender)

    def to_contact(self, item: Item) -> bool:
        return any(self.is_contact(p) for p in item.recipients())

    def to_outside(self, item: Item) -> bool:
        return any(not self.team.is_team(p.address) for p in item.recipients())

    def primary_recipient(self, item: Item) -> int | None:
        """The contact an email of ours is for: its first "to" contact (lowest id), else cc,
        else bcc — so that one email gives one signal however many contacts it went to."""
        for role in ("to", "cc", "bcc"):
            ids = [
                c
                for p in item.people
                if p.role == role and not self.team.is_team(p.address)
                for c in [self.contact_of(p)]
                if c is not None
            ]
            if ids:
                return min(ids)
        return None

    @cached_property
    def owner(self) -> int | None:
        """Whose to-do the contact's signals are: the contact's owner, else the user who was
        last in touch with them."""
        if self.contact.owner_id is not None:
            return self.contact.owner_id
        for item in reversed(self.items):
            user = self.user_in(item)
            if user is not None:
                return user
        return None

    def user_in(self, item: Item) -> int | None:
        """The team user on this item of the contact's: who sent it, else who received it."""
        if item.kind == "email":
            if self.from_us(item) and self.to_contact(item):
                return self.team.user_of(item.sender)
            if self.from_contact(item):
                return self.first_user(item.recipients())
            return None
        if any(self.is_contact(p) for p in item.people):
            organizer = [p for p in item.people if p.role == "organizer"]
            return self.first_user(organizer) or self.first_user(item.people)
        return None

    def first_user(self, people: Iterable[Person]) -> int | None:
        for role in ("to", "cc", "bcc", "organizer", "attendee"):
            for person in people:
                user = self.team.user_of(person.address) if person.role == role else None
                if user is not None:
                    return user
        return None

    # -- awaiting reply -----------------------------------------------------------------------

    def awaiting_reply(self) -> list[Signal]:
        ctx, settings = self.ctx, self.ctx.settings
        found: list[Signal] = []
        for thread, emails in self.threads.items():
            ours = [e for e in emails if self.from_us(e) and self.to_contact(e) and not e.automatic]
            if not ours or ours[-1].at < ctx.horizon:
                continue
            last = ours[-1]
            if self.primary_recipient(last) != self.contact.id:
                continue
            replies = [e.order for e in emails if self.from_outside(e) and not e.automatic]
            if self.latest_before(replies, self.their_orders, None) > last.order:
                continue  # answered
            answered_until = self.latest_before(replies, self.their_orders, last.order)
            waiting = [e for e in ours if e.order > answered_until]
            owner = self.team.user_of(last.sender) or self.owner
            zone = ctx.zone(owner)
            due = ctx.week.add_days(last.at, settings.awaiting_reply_days, zone)
            again = f" and again on {_day(last.at, zone)}" if len(waiting) > 1 else ""
            found.append(
                Signal(
                    key=f"awaiting_reply:{last.id}",
                    kind="awaiting_reply",
                    due_at=due,
                    expires_at=due + ctx.expire_after,
                    contact_id=self.contact.id,
                    owner_id=owner,
                    reason=Reason(
                        summary=(
                            f"No reply to the email sent on {_day(waiting[0].at, zone)}{again}: "
                            f"{_count(settings.awaiting_reply_days, 'business day')} without an "
                            "answer."
                        ),
                        activity_ids=_ids(waiting),
                        facts={
                            "sent_at": _iso(waiting[0].at),
                            "last_sent_at": _iso(last.at),
                            "emails": len(waiting),
                            "business_days": settings.awaiting_reply_days,
                            "thread_id": thread if thread > 0 else None,
                        },
                    ),
                )
            )
        return found

    @staticmethod
    def latest_before(a: Sequence[Order], b: Sequence[Order], before: Order | None) -> Order:
        """The latest order in either sorted list, before `before` (None: at all)."""
        best = NEVER
        for orders in (a, b):
            at = len(orders) if before is None else bisect.bisect_left(orders, before)
            if at:
                best = max(best, orders[at - 1])
        return best

    # -- unanswered ---------------------------------------------------------------------------

    def unanswered(self) -> list[Signal]:
        ctx, settings = self.ctx, self.ctx.settings
        found: list[Signal] = []
        for thread, emails in self.threads.items():
            theirs = [e for e in emails if self.from_contact(e) and not e.automatic]
            if not theirs or theirs[-1].at < ctx.horizon:
                continue
            last = theirs[-1]
            answers = [
                e.order
                for e in emails
                if self.from_us(e) and not e.automatic and self.to_outside(e)
            ]
            if self.latest_before(answers, self.our_orders, None) > last.order:
                continue
            answered_until = self.latest_before(answers, self.our_orders, last.order)
            waiting = [e for e in theirs if e.order > answered_until]
            owner = self.first_user(last.recipients()) or self.owner
            zone = ctx.zone(owner)
            due = ctx.week.add_hours(waiting[0].at, settings.unanswered_hours, zone)
            more = f" ({len(waiting)} emails)" if len(waiting) > 1 else ""
            found.append(
                Signal(
                    key=f"unanswered:{last.id}",
                    kind="unanswered",
                    due_at=due,
                    expires_at=due + ctx.expire_after,
                    contact_id=self.contact.id,
                    owner_id=owner,
                    reason=Reason(
                        summary=(
                            f"Wrote on {_day(waiting[0].at, zone)}{more} and nobody in the team "
                            f"has answered within {_count(settings.unanswered_hours, 'business hour')}."
                        ),
                        activity_ids=_ids(waiting),
                        facts={
                            "received_at": _iso(waiting[0].at),
                            "last_received_at": _iso(last.at),
                            "emails": len(waiting),
                            "business_hours": settings.unanswered_hours,
                            "thread_id": thread if thread > 0 else None,
                        },
                    ),
                )
            )
        return found

    # -- engagement: going cold and churn risk --------------------------------------------------

    @cached_property
    def engagements(self) -> list[Item]:
        """When the contact engaged with us: their emails, meetings they did not decline, calls."""
        found = list(self.theirs)
        for item in self.items:
            if item.kind == "meeting" and item.status != "cancelled":
                if any(self.is_contact(p) and p.response != "declined" for p in item.people):
                    found.append(item)
            elif item.kind == "call" and any(self.is_contact(p) for p in item.people):
                found.append(item)
        return sorted(found, key=lambda i: i.order)

    @cached_property
    def exchanges(self) -> list[Item]:
        """Engagements with bursts (less than a day apart) counted once."""
        kept: list[Item] = []
        for item in self.engagements:
            if not kept or item.at - kept[-1].at >= BURST:
                kept.append(item)
        return kept

    def going_cold(self) -> list[Signal]:
        ctx, settings = self.ctx, self.ctx.settings
        stage = self.contact.lifecycle_stage
        if stage not in settings.going_cold_stages or not self.exchanges or not self.ours_to_them:
            return []
        last = self.engagements[-1]
        limits: dict[str, float] = {}
        gaps = [
            (b.at - a.at).total_seconds() / 86400
            for a, b in zip(self.exchanges, self.exchanges[1:], strict=False)
        ]
        median: float | None = None
        if len(self.exchanges) >= settings.going_cold_min_exchanges and gaps:
            median = statistics.median(gaps)
            limits["rhythm"] = max(
                float(settings.going_cold_floor_days), settings.going_cold_multiple * median
            )
        if stage in settings.going_cold_stage_days:
            limits["stage"] = float(settings.going_cold_stage_days[stage])
        if not limits:
            return []
        why = min(limits, key=lambda k: limits[k])
        days = limits[why]
        due = last.at + timedelta(days=days)
        zone = ctx.zone(self.owner)
        if why == "rhythm":
            assert median is not None
            usual = (
                f"they usually engage every {_count(round(median, 1), 'day')}, so after "
                f"{_count(round(days, 1), 'day')} of silence they are going cold"
            )
        else:
            article = "an" if stage[:1] in "aeiou" else "a"
            usual = f"past the {_count(round(days, 1), 'day')} {article} {stage} may stay quiet"
        return [
            Signal(
                key=f"going_cold:{self.contact.id}:{last.id}",
                kind="going_cold",
                due_at=due,
                expires_at=due + ctx.expire_after,
                contact_id=self.contact.id,
                owner_id=self.owner,
                reason=Reason(
                    summary=f"Last exchange on {_day(last.at, zone)}: {usual}.",
                    activity_ids=(last.id,),
                    facts={
                        "last_exchange_at": _iso(last.at),
                        "limit_days": round(days, 2),
                        "limit_from": why,
                        "median_gap_days": None if median is None else round(median, 2),
                        "exchanges": len(self.exchanges),
                        "lifecycle_stage": stage,
                    },
                ),
            )
        ]

    def churn_risk(self) -> list[Signal]:
        settings = self.ctx.settings
        if self.contact.lifecycle_stage not in settings.churn_stages:
            return []
        silent = self.churn_silent()
        if silent is not None:
            return [silent]
        drop = self.churn_drop()
        return [] if drop is None else [drop]

    def churn_silent(self) -> Signal | None:
        ctx, settings = self.ctx, self.ctx.settings
        since = self.engagements[-1].order if self.engagements else NEVER
        unanswered = [e for e in self.ours_to_them if e.order > since]
        k = settings.churn_unanswered_emails
        if len(unanswered) < k or unanswered[-1].at < ctx.horizon:
            return None
        zone = ctx.zone(self.owner)
        return Signal(
            key=f"churn_risk:{self.contact.id}:silent:{unanswered[0].id}",
            kind="churn_risk",
            due_at=unanswered[k - 1].at,
            expires_at=unanswered[-1].at + ctx.expire_after,
            contact_id=self.contact.id,
            owner_id=self.owner,
            reason=Reason(
                summary=(
                    f"No reply to our last {len(unanswered)} emails, sent from "
                    f"{_day(unanswered[0].at, zone)} to {_day(unanswered[-1].at, zone)}."
                ),
                activity_ids=_ids(unanswered),
                facts={
                    "cause": "unanswered",
                    "emails": len(unanswered),
                    "first_sent_at": _iso(unanswered[0].at),
                    "last_sent_at": _iso(unanswered[-1].at),
                    "last_engaged_at": _iso(self.engagements[-1].at) if self.engagements else None,
                },
            ),
        )

    def churn_drop(self) -> Signal | None:
        """The stretch of time (the current or next one) in which engagement, counted in days
        with an exchange, is down by the set share against the window before.

        The counts only change at an exchange, a window length after it, and two window lengths
        after it, so the condition is checked on the segments between those instants."""
        ctx, settings = self.ctx, self.ctx.settings
        times = [e.at for e in self.exchanges]
        if len(times) < settings.churn_min_before:
            return None
        window = timedelta(days=settings.churn_window_days)
        breaks = sorted({t + k * window for t in times for k in (0, 1, 2)})

        def counts(at: datetime) -> tuple[int, int]:
            now_count = bisect.bisect_right(times, at) - bisect.bisect_right(times, at - window)
            before = bisect.bisect_right(times, at - window) - bisect.bisect_right(
                times, at - 2 * window
            )
            return before, now_count

        def holds(at: datetime) -> bool:
            before, after = counts(at)
            return before >= settings.churn_min_before and after <= before * (
                1 - settings.churn_drop_share
            )

        # segment i is [breaks[i], breaks[i + 1]); after the last instant every count is 0 and
        # the condition never holds, so the last segment is never the one found
        first = next(
            (i for i in range(len(breaks) - 1) if breaks[i + 1] > ctx.now and holds(breaks[i])),
            None,
        )
        if first is None:
            return None
        begin = first
        while begin > 0 and holds(breaks[begin - 1]):
            begin -= 1
        end = first
        while end + 2 < len(breaks) and holds(breaks[end + 1]):
            end += 1
        start, stop = breaks[begin], breaks[end + 1]
        before, after = counts(start)
        zone = ctx.zone(self.owner)
        last = self.engagements[-1]
        return Signal(
            key=f"churn_risk:{self.contact.id}:drop:{int(start.timestamp())}",
            kind="churn_risk",
            due_at=start,
            expires_at=stop,
            contact_id=self.contact.id,
            owner_id=self.owner,
            reason=Reason(
                summary=(
                    f"Engagement dropped: {_count(after, 'day')} with an exchange in the "
                    f"{settings.churn_window_days} days to {_day(start, zone)}, against "
                    f"{before} in the {settings.churn_window_days} days before."
                ),
                activity_ids=(last.id,),
                facts={
                    "cause": "drop",
                    "days_before": before,
                    "days_after": after,
                    "window_days": settings.churn_window_days,
                    "last_engaged_at": _iso(last.at),
                },
            ),
        )

    # -- meetings -----------------------------------------------------------------------------

    def meetings_without_follow_up(self) -> list[Signal]:
        ctx, settings = self.ctx, self.ctx.settings
        found: list[Signal] = []
        ours = [e for e in self.emails if self.from_us(e) and not e.automatic]
        our_orders = [e.order for e in ours]
        for meeting in self.items:
            if (
                meeting.kind != "meeting"
                or meeting.status == "cancelled"
                or meeting.recurring
                or meeting.ends_at is None
                or meeting.ends_at < ctx.horizon
            ):
                continue
            outside = [
                p
                for p in meeting.people
                if p.role in MEETING_ROLES
                and p.response != "declined"
                and not self.team.is_team(p.address)
            ]
            ids = [c for p in outside for c in [self.contact_of(p)] if c is not None]
            if not ids or min(ids) != self.contact.id:
                continue
            addresses = {p.address for p in outside}
            contacts = set(ids)
            after = bisect.bisect_right(our_orders, (meeting.ends_at, 2**62))
            if any(
                p.address in addresses or (p.contact_id is not None and p.contact_id in contacts)
                for email in ours[after:]
                for p in email.recipients()
            ):
                continue
            organizer = [p for p in meeting.people if p.role == "organizer"]
            owner = self.first_user(organizer) or self.first_user(meeting.people) or self.owner
            zone = ctx.zone(owner)
            due = ctx.week.add_days(meeting.ends_at, settings.meeting_follow_up_days, zone)
            found.append(
                Signal(
                    key=f"meeting_without_follow_up:{meeting.id}",
                    kind="meeting_without_follow_up",
                    due_at=due,
                    expires_at=due + ctx.expire_after,
                    contact_id=self.contact.id,
                    owner_id=owner,
                    reason=Reason(
                        summary=(
                            f"Met on {_day(meeting.at, zone)} and no email has gone to "
                            f"{'the attendees' if len(addresses) > 1 else 'them'} within "
                            f"{_count(settings.meeting_follow_up_days, 'business day')}."
                        ),
                        activity_ids=(meeting.id,),
                        facts={
                            "started_at": _iso(meeting.at),
                            "ended_at": _iso(meeting.ends_at),
                            "attendees": len(addresses),
                            "business_days": settings.meeting_follow_up_days,
                        },
                    ),
                )
            )
        return found


# -- deals and companies ----------------------------------------------------------------------


def deal_rotting(deal: DealFacts, ctx: Context) -> list[Signal]:
    settings = ctx.settings
    if deal.status != "open" or not settings.is_enabled("deal_rotting"):
        return []
    days = deal.rot_days if deal.rot_days is not None else settings.deal_rot_days
    if days is None:
        return []
    last = deal.stage_entered_at
    evidence: tuple[int, ...] = ()
    if deal.last_activity_at is not None and deal.last_activity_at > last:
        last = deal.last_activity_at
        evidence = (deal.last_activity_id,) if deal.last_activity_id is not None else ()
    zone = ctx.zone(deal.owner_id)
    what = "last activity" if evidence else f"moved to {deal.stage_name}"
    return [
        Signal(
            key=f"deal_rotting:{deal.id}:{deal.stage_id}:{int(last.timestamp())}",
            kind="deal_rotting",
            due_at=last + timedelta(days=days),
            deal_id=deal.id,
            owner_id=deal.owner_id,
            reason=Reason(
                summary=(
                    f"Nothing has happened on this deal in {deal.stage_name} for "
                    f"{_count(days, 'day')} ({what} on {_day(last, zone)})."
                ),
                activity_ids=evidence,
                facts={
                    "stage": deal.stage_name,
                    "stage_entered_at": _iso(deal.stage_entered_at),
                    "last_activity_at": _iso(deal.last_activity_at)
                    if deal.last_activity_at
                    else None,
                    "rot_days": days,
                },
            ),
        )
    ]


def top_customer(company: CompanyFacts, ctx: Context) -> list[Signal]:
    settings = ctx.settings
    if not settings.is_enabled("top_customer"):
        return []
    threshold = settings.top_customer_threshold
    if settings.top_customer_field:
        amount, currency = _money(company.custom_fields.get(settings.top_customer_field))
        if amount is None or amount < threshold:
            return []
        money = f"{amount:,.2f}" + (f" {currency}" if currency else "")
        return [
            _top(
                company,
                company.updated_at or ctx.now,
                f"{settings.top_customer_field} is {money}, at or above {threshold:,.2f}.",
                {"field": settings.top_customer_field, "amount": str(amount), "currency": currency},
            )
        ]
    by_currency: dict[str, list[WonDeal]] = {}
    for deal in sorted(company.won, key=lambda d: (d.closed_at, d.id)):
        by_currency.setdefault(deal.currency, []).append(deal)
    crossings = []
    for currency, deals in by_currency.items():
        total = Decimal(0)
        for deal in deals:
            total += deal.amount
            if total >= threshold:
                full = sum((d.amount for d in deals), Decimal(0))
                crossings.append((deal.closed_at, deal.id, currency, full, len(deals), deal))
                break
    if not crossings:
        return []
    at, _, currency, total, count, crossing = min(crossings, key=lambda c: c[:2])
    return [
        _top(
            company,
            at,
            f"{_count(count, 'won deal')} worth {total:,.2f} {currency}, at or above "
            f"{threshold:,.2f}.",
            {"won_deals": count, "amount": str(total), "currency": currency},
            owner=crossing.owner_id,
        )
    ]


def _top(
    company: CompanyFacts,
    at: datetime,
    summary: str,
    facts: Mapping[str, str | int | None],
    *,
    owner: int | None = None,
) -> Signal:
    """The alert goes to the company's owner, else to whoever won the deal that made it one."""
    return Signal(
        key=f"top_customer:{company.id}",
        kind="top_customer",
        due_at=at,
        company_id=company.id,
        owner_id=company.owner_id if company.owner_id is not None else owner,
        reason=Reason(summary=f"A top customer: {summary}", facts=dict(facts)),
    )


def _money(value: object) -> tuple[Decimal | None, str | None]:
    """A money custom field ({"amount": "12.50", "currency": "EUR"}) or a plain number."""
    currency = None
    if isinstance(value, Mapping):
        currency = value.get("currency") if isinstance(value.get("currency"), str) else None
        value = value.get("amount")
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None, None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None, None
    return (amount, currency) if amount.is_finite() else (None, None)


# -- wording ----------------------------------------------------------------------------------


def _day(when: datetime, zone: tzinfo) -> str:
    local = when.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y}"


def _count(number: float, unit: str) -> str:
    shown = int(number) if float(number).is_integer() else number
    return f"{shown} {unit}{'' if shown == 1 else 's'}"


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


def _ids(items: Sequence[Item]) -> tuple[int, ...]:
    """The activities a reason cites: all of them, or the first and the latest few."""
    if len(items) <= MAX_EVIDENCE:
        return tuple(i.id for i in items)
    return (items[0].id, *(i.id for i in items[-(MAX_EVIDENCE - 1) :]))


__all__ = [
    "Context",
    "awaiting_reply",
    "churn_risk",
    "contact_signals",
    "deal_rotting",
    "going_cold",
    "meetings_without_follow_up",
    "top_customer",
    "unanswered",
]
