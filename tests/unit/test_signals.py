"""The signal rules over hand-built timelines: every kind, and the edges people trip over — time
zones, weekends, daylight saving, holidays, a contact's other address, auto-replies in several
languages, internal-only threads, a reply from a colleague."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from server.crm.errors import DomainError
from server.crm.signals.config import DEFAULTS, SignalSettings, from_stored, updated
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
from server.crm.signals.rules import (
    Context,
    awaiting_reply,
    churn_risk,
    contact_signals,
    deal_rotting,
    going_cold,
    meetings_without_follow_up,
    top_customer,
    unanswered,
)
from server.crm.signals.worktime import WorkWeek

ANNA, BEN = "anna@northwind-supplies.com", "ben@northwind-supplies.com"
CLARA, CLARA_GMAIL = "clara@brightline-dental.co.uk", "clara.jensen@gmail.com"
DAN = "dan@brightline-dental.co.uk"
EVE = "eve@other-customer.example"
CONTACT_IDS = {CLARA: 10, CLARA_GMAIL: 10, DAN: 11, EVE: 12}
TEAM = Team(domains=frozenset({"northwind-supplies.com"}), users={ANNA: 1, BEN: 2})
CLARA_FACTS = ContactFacts(
    id=10, name="Clara Jensen", addresses=frozenset({CLARA, CLARA_GMAIL}), lifecycle_stage="lead"
)
DAN_FACTS = ContactFacts(id=11, name="Dan", addresses=frozenset({DAN}), lifecycle_stage="lead")
LONDON, LA, BERLIN = (
    ZoneInfo("Europe/London"),
    ZoneInfo("America/Los_Angeles"),
    ZoneInfo("Europe/Berlin"),
)


def at(day: int, hour: float = 10, month: int = 3, zone: Any = UTC) -> datetime:
    """A moment in March 2026 (2 March is a Monday)."""
    minutes = round(hour * 60)
    return datetime(2026, month, day, minutes // 60, minutes % 60, tzinfo=zone)


def person(address: str, role: str, response: str | None = None) -> Person:
    return Person(address, role, CONTACT_IDS.get(address), response)


def email(
    id: int,
    when: datetime,
    sender: str,
    to: Sequence[str],
    *,
    cc: Sequence[str] = (),
    thread: int | None = 1,
    subject: str = "Quote for 40 chairs",
    headers: Sequence[tuple[str, str]] = (),
) -> Item:
    people = (
        person(sender, "from"),
        *(person(a, "to") for a in to),
        *(person(a, "cc") for a in cc),
    )
    return Item(
        id=id,
        kind="email",
        at=when,
        sender=sender,
        people=people,
        thread_id=thread,
        subject=subject,
        headers=tuple(headers),
    )


def meeting(
    id: int,
    start: datetime,
    hours: float,
    attendees: Sequence[str],
    *,
    organizer: str = ANNA,
    status: str = "confirmed",
    recurring: bool = False,
    declined: Sequence[str] = (),
) -> Item:
    people = (
        person(organizer, "organizer"),
        *(person(a, "attendee", "declined" if a in declined else "accepted") for a in attendees),
    )
    return Item(
        id=id,
        kind="meeting",
        at=start,
        people=people,
        ends_at=start + timedelta(hours=hours),
        status=status,
        recurring=recurring,
    )


def ctx(now: datetime, zones: dict[int, Any] | None = None, **changes: Any) -> Context:
    return Context(updated(DEFAULTS, changes), TEAM, now, zones or {})


def timeline(*items: Item, contact: ContactFacts = CLARA_FACTS) -> ContactTimeline:
    return ContactTimeline(contact, tuple(sorted(items, key=lambda i: i.order)))


def shown(signals: Sequence[Any], now: datetime) -> list[Any]:
    return [s for s in signals if s.due_at <= now and (s.expires_at is None or s.expires_at > now)]


# -- business time ----------------------------------------------------------------------------

WEEK = WorkWeek()


@pytest.mark.parametrize(
    ("start", "hours", "zone", "expected"),
    [
        pytest.param(at(2, 10), 16, UTC, at(4, 10), id="two days from Monday morning"),
        pytest.param(at(6, 16), 16, UTC, at(10, 16), id="Friday afternoon: over the weekend"),
        pytest.param(at(7, 10), 16, UTC, at(10, 17), id="Saturday: the clock starts Monday 9:00"),
        pytest.param(at(2, 20), 1, UTC, at(3, 10), id="after hours: starts next morning"),
        pytest.param(at(2, 6), 2, UTC, at(2, 11), id="before hours: starts at 9:00"),
        pytest.param(at(2, 10), 0, UTC, at(2, 10), id="nothing to add inside working time"),
        pytest.param(at(7, 10), 0, UTC, at(9, 9), id="nothing to add at a weekend: Monday 9:00"),
        # US daylight saving starts Sunday 8 March 2026: Friday 16:00 PST is 00:00 UTC, the
        # Tuesday 16:00 PDT it is due at is 23:00 UTC: 95 hours later, not 96
        pytest.param(at(6, 16, zone=LA), 16, LA, at(10, 16, zone=LA), id="US spring forward"),
        # Europe moves on 29 March: Friday 27 March 15:00 CET -> Tuesday 31 March 15:00 CEST
        pytest.param(
            at(27, 15, zone=BERLIN), 16, BERLIN, at(31, 15, zone=BERLIN), id="EU spring forward"
        ),
        # and back on 25 October: Friday 23 October 12:00 CEST -> Tuesday 27 October 12:00 CET
        pytest.param(
            at(23, 12, 10, BERLIN),
            16,
            BERLIN,
            at(27, 12, 10, BERLIN),
            id="EU fall back",
        ),
    ],
)
def test_business_hours(start: datetime, hours: float, zone: Any, expected: datetime) -> None:
    assert WEEK.add_hours(start, hours, zone) == expected


def test_business_days_skip_holidays_and_use_the_configured_week() -> None:
    easter = WorkWeek(holidays=frozenset({date(2026, 4, 3), date(2026, 4, 6)}))
    assert easter.add_days(at(2, 10, 4), 2, UTC) == at(8, 10, 4)  # Thu -> Wed after Easter
    sunday_to_thursday = WorkWeek(days=frozenset({6, 0, 1, 2, 3}), start=time(8), end=time(16))
    assert sunday_to_thursday.add_days(at(5, 15), 1, UTC) == at(8, 15)  # Thu -> Sun
    assert WEEK.add_days(at(2, 10, zone=LA), 1, LA) == at(3, 10, zone=LA)


def test_the_user_zone_decides_what_business_hours_are() -> None:
    """Monday 18:00 in London is 10:00 in Los Angeles: still working time there."""
    sent = at(2, 18, zone=LONDON)
    assert WEEK.add_hours(sent, 1, LONDON) == at(3, 10, zone=LONDON)
    assert WEEK.add_hours(sent, 1, LA) == sent + timedelta(hours=1)


# -- awaiting reply ---------------------------------------------------------------------------


def test_awaiting_reply_is_due_after_two_business_days() -> None:
    sent = email(1, at(6, 16), ANNA, [CLARA])  # Friday 16:00
    signals = awaiting_reply(timeline(sent), ctx(at(9, 12)))
    assert [(s.key, s.kind, s.contact_id, s.owner_id) for s in signals] == [
        ("awaiting_reply:1", "awaiting_reply", 10, 1)
    ]
    (signal,) = signals
    assert signal.due_at == at(10, 16)  # Tuesday 16:00, not Sunday 16:00
    assert shown(signals, at(10, 15 + 59 / 60)) == []
    assert shown(signals, at(10, 16 + 1 / 60)) == signals
    assert signal.reason.activity_ids == (1,)
    assert "Fri 6 Mar 2026" in signal.reason.summary
    assert signal.reason.facts["sent_at"] == at(6, 16).isoformat()


def test_awaiting_reply_in_the_senders_time_zone_across_daylight_saving() -> None:
    sent = email(1, at(6, 16, zone=LA), ANNA, [CLARA])
    (signal,) = awaiting_reply(timeline(sent), ctx(at(12), zones={1: LA}))
    assert signal.due_at == at(10, 16, zone=LA)
    assert signal.due_at - sent.at == timedelta(hours=95)
    assert "Fri 6 Mar 2026" in signal.reason.summary  # 00:00 UTC Saturday, Friday in LA


AUTO_SUBJECTS = [
    "Automatic reply: Quote for 40 chairs",
    "Automatische Antwort: Quote for 40 chairs",
    "Réponse automatique : Quote for 40 chairs",
    "Odpowiedź automatyczna: Quote for 40 chairs",
    "Respuesta automática: Quote for 40 chairs",
    "Risposta automatica: Quote for 40 chairs",
    "Autosvar: Quote for 40 chairs",
    "Out of Office: Quote for 40 chairs",
    "自动回复: Quote for 40 chairs",
]


@pytest.mark.parametrize(
    ("reply", "still_waiting"),
    [
        pytest.param(email(2, at(3), CLARA, [ANNA]), False, id="the contact replied"),
        pytest.param(
            email(2, at(3), CLARA_GMAIL, [ANNA]), False, id="from the contact's other address"
        ),
        pytest.param(email(2, at(3), CLARA_GMAIL, [ANNA], thread=7), False, id="in a new thread"),
        pytest.param(email(2, at(3), DAN, [ANNA]), False, id="their colleague on the thread"),
        pytest.param(email(2, at(3), DAN, [ANNA], thread=7), True, id="colleague, other thread"),
        pytest.param(email(2, at(3), BEN, [CLARA]), True, id="a colleague of ours"),
        pytest.param(email(2, at(3), BEN, [ANNA]), True, id="internal mail on the thread"),
        pytest.param(email(2, at(1), CLARA, [ANNA]), True, id="their email came before ours"),
        *(
            pytest.param(email(2, at(3), CLARA, [ANNA], subject=s), True, id=s.split(":")[0])
            for s in AUTO_SUBJECTS
        ),
        pytest.param(
            email(2, at(3), CLARA, [ANNA], headers=[("auto-submitted", "auto-replied")]),
            True,
            id="Auto-Submitted",
        ),
        pytest.param(
            email(
                2,
                at(3),
                CLARA,
                [ANNA],
                subject="Away this week - out of office",
                headers=[("x-auto-response-suppress", "All")],
            ),
            True,
            id="X-Auto-Response-Suppress with an out-of-office subject",
        ),
        pytest.param(
            email(2, at(3), CLARA, [ANNA], subject="Away this week - out of office"),
            False,
            id="a person writing about being away",
        ),
        pytest.param(
            email(2, at(3), "no-reply@brightline-dental.co.uk", [ANNA]), True, id="noreply"
        ),
    ],
)
def test_what_counts_as_a_reply(reply: Item, still_waiting: bool) -> None:
    sent = email(1, at(2), ANNA, [CLARA], cc=[DAN])
    signals = awaiting_reply(timeline(sent, reply), ctx(at(9)))
    assert bool(signals) is still_waiting


def test_one_email_to_several_contacts_is_one_signal_for_the_first_to() -> None:
    sent = email(1, at(2), ANNA, [DAN, CLARA], cc=[EVE])
    assert awaiting_reply(timeline(sent), ctx(at(9)))[0].contact_id == 10  # lowest id in To
    assert awaiting_reply(timeline(sent, contact=DAN_FACTS), ctx(at(9))) == []


def test_internal_only_threads_are_not_conversations() -> None:
    internal = email(1, at(2), ANNA, [BEN], subject="Clara's quote")
    assert contact_signals(timeline(internal), ctx(at(20))) == []


def test_a_follow_up_restarts_the_clock_and_keeps_the_first_date() -> None:
    first = email(1, at(2), ANNA, [CLARA])
    again = email(2, at(5), BEN, [CLARA])
    (signal,) = awaiting_reply(timeline(first, again), ctx(at(12)))
    assert signal.key == "awaiting_reply:2"
    assert signal.owner_id == 2  # who wrote last
    assert signal.due_at == at(9)
    assert signal.reason.activity_ids == (1, 2)
    assert signal.reason.facts["sent_at"] == at(2).isoformat()


def test_old_emails_leave_the_list() -> None:
    sent = email(1, at(2), ANNA, [CLARA])
    (signal,) = awaiting_reply(timeline(sent), ctx(at(9)))
    assert signal.expires_at == signal.due_at + timedelta(days=30)
    assert awaiting_reply(timeline(sent), ctx(signal.expires_at)) == []


# -- unanswered -------------------------------------------------------------------------------


def test_unanswered_within_business_hours() -> None:
    came = email(1, at(2, 10), CLARA, [BEN])
    (signal,) = unanswered(timeline(came), ctx(at(9)))
    assert (signal.key, signal.owner_id) == ("unanswered:1", 2)  # Ben got it
    assert signal.due_at == at(3, 10)  # 7 hours on Monday, 1 on Tuesday
    assert "Mon 2 Mar 2026" in signal.reason.summary


@pytest.mark.parametrize(
    ("later", "answered"),
    [
        pytest.param(email(2, at(3), ANNA, [CLARA]), True, id="we answered"),
        pytest.param(email(2, at(3), BEN, [CLARA]), True, id="a colleague answered"),
        pytest.param(email(2, at(3), ANNA, [CLARA_GMAIL], thread=9), True, id="new thread"),
        pytest.param(email(2, at(3), ANNA, [DAN]), True, id="to their colleague on the thread"),
        pytest.param(email(2, at(3), ANNA, [BEN]), False, id="only an internal forward"),
        pytest.param(email(2, at(3), ANNA, [EVE], thread=9), False, id="someone else"),
        pytest.param(
            email(2, at(3), ANNA, [CLARA], subject="Automatic reply: Quote for 40 chairs"),
            False,
            id="our out-of-office",
        ),
    ],
)
def test_what_counts_as_an_answer(later: Item, answered: bool) -> None:
    came = email(1, at(2), CLARA, [ANNA], cc=[DAN])
    assert bool(unanswered(timeline(came, later), ctx(at(20)))) is not answered


def test_an_auto_reply_from_the_customer_needs_no_answer() -> None:
    auto = email(1, at(2), CLARA, [ANNA], subject="Réponse automatique : Devis")
    assert unanswered(timeline(auto), ctx(at(20))) == []


def test_unanswered_counts_from_their_first_waiting_email() -> None:
    first = email(1, at(2, 10), CLARA, [ANNA])
    second = email(2, at(3, 16), CLARA_GMAIL, [ANNA])
    (signal,) = unanswered(timeline(first, second), ctx(at(20)))
    assert signal.key == "unanswered:2"
    assert signal.due_at == at(3, 10)
    assert signal.reason.activity_ids == (1, 2)


# -- going cold -------------------------------------------------------------------------------


def exchanges(days: Sequence[int], *, start: int = 1) -> list[Item]:
    """Clara writes on each of these days (of January, at noon), we answer an hour later."""
    items: list[Item] = []
    for n, day in enumerate(days):
        when = datetime(2026, 1, 1, 12, tzinfo=UTC) + timedelta(days=day)
        items.append(email(start + 2 * n, when, CLARA, [ANNA], thread=100 + n))
        items.append(
            email(start + 2 * n + 1, when + timedelta(hours=1), ANNA, [CLARA], thread=100 + n)
        )
    return items


def test_going_cold_by_their_own_rhythm() -> None:
    items = exchanges([0, 7, 14, 21, 28])  # every week
    customer = replace(CLARA_FACTS, lifecycle_stage="customer")
    (signal,) = going_cold(timeline(*items, contact=customer), ctx(at(1)))
    last = datetime(2026, 1, 29, 12, tzinfo=UTC)
    assert signal.due_at == last + timedelta(days=14)  # 2 x 7 days (the floor is 14)
    assert signal.reason.facts["limit_from"] == "rhythm"
    assert signal.reason.facts["median_gap_days"] == 7
    assert signal.key == f"going_cold:10:{items[-2].id}"
    assert signal.reason.activity_ids == (items[-2].id,)


def test_going_cold_by_the_floor_and_by_the_stage_limit() -> None:
    daily = exchanges([0, 1, 2, 3, 4])
    early = ctx(datetime(2026, 1, 10, tzinfo=UTC))
    (floor,) = going_cold(timeline(*daily), early)  # a lead: stage limit 30, floor 14
    assert floor.due_at - daily[-2].at == timedelta(days=14)
    sparse = exchanges([0, 40])  # too little history for a rhythm: the lead's 30 days
    (stage,) = going_cold(timeline(*sparse), ctx(at(1)))
    assert stage.due_at - sparse[-2].at == timedelta(days=30)
    assert stage.reason.facts["limit_from"] == "stage"
    assert "past the 30 days a lead may stay quiet" in stage.reason.summary
    opportunity = dataclasses.replace(CLARA_FACTS, lifecycle_stage="opportunity")
    (quiet,) = going_cold(timeline(*sparse, contact=opportunity), ctx(at(1)))
    assert "past the 14 days an opportunity may stay quiet" in quiet.reason.summary
    assert going_cold(timeline(*sparse), ctx(at(1), going_cold_stage_days={})) == []


@pytest.mark.parametrize(
    ("items", "stage", "expected"),
    [
        pytest.param([email(1, at(2), ANNA, [CLARA])], "lead", False, id="only we wrote"),
        pytest.param([email(1, at(2), CLARA, [ANNA])], "lead", False, id="only they wrote"),
        pytest.param(exchanges([0, 40]), "former", False, id="a former customer"),
        pytest.param(exchanges([0, 40]), "customer", True, id="a customer"),
        pytest.param(
            [email(1, at(2), ANNA, [CLARA]), meeting(2, at(3), 1, [CLARA])],
            "lead",
            True,
            id="a meeting is an exchange",
        ),
        pytest.param(
            [email(1, at(2), ANNA, [CLARA]), meeting(2, at(3), 1, [CLARA], declined=[CLARA])],
            "lead",
            False,
            id="not a meeting they declined",
        ),
    ],
)
def test_who_can_go_cold(items: list[Item], stage: str, expected: bool) -> None:
    contact = replace(CLARA_FACTS, lifecycle_stage=stage)
    assert bool(going_cold(timeline(*items, contact=contact), ctx(at(20)))) is expected


def test_a_burst_of_emails_is_one_exchange() -> None:
    burst = [email(n, at(2, 9 + n), CLARA, [ANNA], thread=n) for n in range(1, 6)]
    items = [*exchanges([0, 7, 14]), *burst, email(9, at(2, 16), ANNA, [CLARA])]
    (signal,) = going_cold(timeline(*items), ctx(at(20)))
    assert signal.reason.facts["exchanges"] == 4


# -- churn risk -------------------------------------------------------------------------------

CUSTOMER = replace(CLARA_FACTS, lifecycle_stage="customer")


def test_churn_risk_when_our_last_emails_go_unanswered() -> None:
    items = [
        email(1, at(2), CLARA, [ANNA]),
        email(2, at(3), ANNA, [CLARA], thread=2),
        email(3, at(10), ANNA, [CLARA], thread=3),
        email(4, at(17), BEN, [CLARA_GMAIL], thread=4),
    ]
    (signal,) = churn_risk(timeline(*items, contact=CUSTOMER), ctx(at(20)))
    assert signal.key == "churn_risk:10:silent:2"
    assert signal.due_at == at(17)
    assert signal.reason.activity_ids == (2, 3, 4)
    assert signal.reason.facts["cause"] == "unanswered"
    assert churn_risk(timeline(*items[:3], contact=CUSTOMER), ctx(at(20))) == []
    assert churn_risk(timeline(*items, contact=CLARA_FACTS), ctx(at(20))) == []  # a lead


def test_churn_risk_when_engagement_drops() -> None:
    start = datetime(2025, 6, 1, 12, tzinfo=UTC)
    busy = [start + timedelta(days=10 * n) for n in range(8)]  # 8 exchange days, 1 Jun-11 Aug
    quiet = [start + timedelta(days=100)]  # then one in the next 90 days
    items = [email(n + 1, t, CLARA, [ANNA], thread=n) for n, t in enumerate(busy + quiet)]
    items.append(email(99, start - timedelta(days=1), ANNA, [CLARA], thread=99))
    now = start + timedelta(days=170)
    (signal,) = churn_risk(timeline(*items, contact=CUSTOMER), ctx(now))
    assert signal.reason.facts["cause"] == "drop"
    assert signal.due_at <= now < signal.expires_at  # type: ignore[operator]
    before, after = signal.reason.facts["days_before"], signal.reason.facts["days_after"]
    assert isinstance(before, int) and isinstance(after, int)
    assert before >= 4 and after <= before / 2
    # the stretch in which it holds is exact: a moment earlier or at its end it does not
    window = timedelta(days=90)

    def holds(t: datetime, items: Sequence[Item] = items) -> bool:
        times = [i.at for i in items if i.sender == CLARA]
        now_count = sum(t - window < x <= t for x in times)
        before_count = sum(t - 2 * window < x <= t - window for x in times)
        return before_count >= 4 and now_count <= before_count * 0.5

    assert holds(signal.due_at) and not holds(signal.due_at - timedelta(seconds=1))
    assert signal.expires_at is not None and not holds(signal.expires_at)
    assert holds(signal.expires_at - timedelta(seconds=1))
    # a steady customer has none now; if they fall silent, it comes when the count has dropped
    steady = [
        email(n + 1, start + timedelta(days=10 * n), CLARA, [ANNA], thread=n) for n in range(18)
    ]
    steady.append(email(99, start - timedelta(days=1), ANNA, [CLARA], thread=99))
    now = start + timedelta(days=175)
    (later,) = churn_risk(timeline(*steady, contact=CUSTOMER), ctx(now))
    assert shown([later], now) == [] and holds(later.due_at, steady)
    assert later.due_at == steady[-2].at + timedelta(days=50)  # 4 of 9 left: 4 <= 9 / 2


# -- meetings ---------------------------------------------------------------------------------


def test_meeting_without_follow_up() -> None:
    met = meeting(1, at(5, 14), 1, [CLARA, DAN])  # Thursday 14:00-15:00
    (signal,) = meetings_without_follow_up(timeline(met), ctx(at(20)))
    assert (signal.key, signal.contact_id, signal.owner_id) == (
        "meeting_without_follow_up:1",
        10,
        1,
    )
    assert signal.due_at == at(9, 15)  # two business days: Monday 15:00
    assert signal.reason.activity_ids == (1,)
    assert meetings_without_follow_up(timeline(met, contact=DAN_FACTS), ctx(at(20))) == []


@pytest.mark.parametrize(
    ("extra", "followed_up"),
    [
        pytest.param(email(2, at(6), ANNA, [CLARA]), True, id="we wrote to them"),
        pytest.param(email(2, at(6), BEN, [DAN]), True, id="a colleague wrote to another attendee"),
        pytest.param(email(2, at(5, 13), ANNA, [CLARA]), False, id="before it ended"),
        pytest.param(email(2, at(6), CLARA, [ANNA]), False, id="they wrote to us"),
        pytest.param(email(2, at(6), ANNA, [BEN]), False, id="internal mail"),
        pytest.param(
            email(2, at(6), ANNA, [CLARA], subject="Automatic reply: Notes"), False, id="our auto"
        ),
        pytest.param(email(2, at(12), ANNA, [CLARA]), True, id="late but done"),
    ],
)
def test_what_counts_as_a_follow_up(extra: Item, followed_up: bool) -> None:
    met = meeting(1, at(5, 14), 1, [CLARA, DAN])
    found = meetings_without_follow_up(timeline(met, extra), ctx(at(20)))
    assert bool(found) is not followed_up


@pytest.mark.parametrize(
    "met",
    [
        pytest.param(meeting(1, at(5, 14), 1, [CLARA], status="cancelled"), id="cancelled"),
        pytest.param(meeting(1, at(5, 14), 1, [CLARA], recurring=True), id="a series"),
        pytest.param(meeting(1, at(5, 14), 1, [CLARA], declined=[CLARA]), id="declined"),
        pytest.param(meeting(1, at(5, 14), 1, [BEN]), id="internal"),
    ],
)
def test_meetings_that_need_no_follow_up(met: Item) -> None:
    assert meetings_without_follow_up(timeline(met), ctx(at(20))) == []


def test_a_future_meeting_is_due_after_it_ends() -> None:
    met = meeting(1, at(20, 9), 2, [CLARA])  # a Friday
    (signal,) = meetings_without_follow_up(timeline(met), ctx(at(2)))
    assert signal.due_at == at(24, 11)
    assert shown([signal], at(2)) == []


# -- deals and companies ----------------------------------------------------------------------


def deal(**changes: Any) -> DealFacts:
    base = DealFacts(
        id=5,
        title="40 chairs",
        status="open",
        stage_id=3,
        stage_name="Proposal",
        rot_days=14,
        stage_entered_at=at(2),
        owner_id=2,
    )
    return replace(base, **changes)


def test_deal_rotting_per_stage() -> None:
    (signal,) = deal_rotting(deal(), ctx(at(20)))
    assert (signal.key, signal.deal_id, signal.owner_id) == (
        f"deal_rotting:5:3:{int(at(2).timestamp())}",
        5,
        2,
    )
    assert signal.due_at == at(16)
    assert "Proposal" in signal.reason.summary and signal.reason.activity_ids == ()
    (later,) = deal_rotting(deal(last_activity_at=at(10), last_activity_id=77), ctx(at(20)))
    assert later.due_at == at(24) and later.reason.activity_ids == (77,)
    (stale,) = deal_rotting(deal(last_activity_at=at(1), last_activity_id=77), ctx(at(20)))
    assert stale.due_at == at(16)  # activity before the stage move does not count
    assert deal_rotting(deal(status="won"), ctx(at(20))) == []
    assert deal_rotting(deal(rot_days=None), ctx(at(20))) == []  # the stage never rots
    (default,) = deal_rotting(deal(rot_days=None), ctx(at(20), deal_rot_days=7))
    assert default.due_at == at(9)


def test_top_customer_from_won_deals_in_one_currency() -> None:
    won = (
        WonDeal(1, Decimal(30000), "EUR", at(2)),
        WonDeal(2, Decimal(40000), "GBP", at(3)),
        WonDeal(3, Decimal(25000), "EUR", at(4)),
        WonDeal(4, Decimal(1000), "EUR", at(5)),
    )
    company = CompanyFacts(id=8, name="Brightline Dental", owner_id=1, won=won)
    (signal,) = top_customer(company, ctx(at(20)))
    assert (signal.key, signal.company_id, signal.owner_id) == ("top_customer:8", 8, 1)
    assert signal.due_at == at(4)  # the deal that crossed 50,000
    assert signal.reason.facts == {"won_deals": 3, "amount": "56000", "currency": "EUR"}
    assert top_customer(replace(company, won=won[:2]), ctx(at(20))) == []


def test_top_customer_from_a_money_field() -> None:
    company = CompanyFacts(
        id=8,
        name="Brightline Dental",
        custom_fields={"annual_value": {"amount": "75000.00", "currency": "EUR"}},
        updated_at=at(3),
    )
    settings: dict[str, Any] = {"top_customer_field": "annual_value"}
    (signal,) = top_customer(company, ctx(at(20), **settings))
    assert signal.due_at == at(3) and signal.reason.facts["field"] == "annual_value"
    low = replace(company, custom_fields={"annual_value": 1200})
    assert top_customer(low, ctx(at(20), **settings)) == []
    assert top_customer(replace(company, custom_fields={}), ctx(at(20), **settings)) == []


# -- everything together, and the settings ------------------------------------------------------


def test_disabled_kinds_are_not_computed() -> None:
    items = [email(1, at(2), ANNA, [CLARA]), email(2, at(2, 12), CLARA, [ANNA], thread=2)]
    kinds = {s.kind for s in contact_signals(timeline(*items), ctx(at(9)))}
    assert kinds == {"unanswered", "going_cold"}
    only = ctx(at(9), enabled=["going_cold"])
    assert {s.kind for s in contact_signals(timeline(*items), only)} == {"going_cold"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"awaiting_reply_days": -1}, "awaiting_reply_days"),
        ({"awaiting_reply_days": "soon"}, "awaiting_reply_days"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"work_days": []}, "work_days"),
        ({"work_days": [7]}, "work_days"),
        ({"work_start": "18:00"}, "work_end"),
        ({"work_end": "25:00"}, "work_end"),
        ({"holidays": ["next friday"]}, "holidays"),
        ({"going_cold_stage_days": {"vip": 3}}, "going_cold_stage_days"),
        ({"enabled": ["gossip"]}, "enabled"),
        ({"churn_drop_share": 2}, "churn_drop_share"),
        ({"top_customer_threshold": "-5"}, "top_customer_threshold"),
        ({"expire_after_days": 1.5}, "expire_after_days"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_settings_are_checked(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(DomainError) as raised:
        updated(DEFAULTS, changes)
    assert raised.value.field == field


def test_settings_round_trip_and_a_broken_stored_value_falls_back() -> None:
    changed = updated(
        DEFAULTS,
        {"time_zone": "Europe/Berlin", "work_days": [4, 0, 1], "top_customer_threshold": "1e5"},
    )
    assert changed.work_days == (0, 1, 4) and changed.top_customer_threshold == Decimal(100000)
    assert changed.changed_from_default() == {
        "time_zone": "Europe/Berlin",
        "work_days": [0, 1, 4],
        "top_customer_threshold": "1E+5",
    }
    assert from_stored(changed.changed_from_default()) == changed
    assert from_stored({"awaiting_reply_days": "x", "unknown": 1}) == DEFAULTS
    assert from_stored(None) == DEFAULTS
    assert isinstance(DEFAULTS, SignalSettings)
