"""iTIP ordering rules: invite/update/reply/counter/cancel sequences from tests/data/calendar,
late and duplicate copies, replies before invites, and order independence (hypothesis)."""

from __future__ import annotations

import copy
import itertools
import zoneinfo
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.crm.itip import (
    MeetingState,
    Outcome,
    apply,
    occurrence_key,
    original_start,
    rebase,
    series_key,
)
from server.mail_ingest.calendar import parse_calendar
from server.mail_ingest.items import CalendarItem, Participant, Response

DATA = Path(__file__).resolve().parent.parent / "data" / "calendar"
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
UID = "040000008200E00074C5B7101A82E0080000000010E5E1F0A4D4DB01000000000000000010000000C0FFEE42"
ANNA, TOM, PRIYA = (
    "anna.berg@northwind.example",
    "tom.clark@contoso.example",
    "priya@fabrikam.example",
)


def fixture(name: str) -> list[CalendarItem]:
    return parse_calendar((DATA / name).read_bytes())


def item(
    method: str = "REQUEST",
    sequence: int = 0,
    stamp: int = 0,
    hour: int = 9,
    *,
    uid: str = "m1@example.com",
    people: dict[str, Response] | None = None,
    organizer: str = ANNA,
    recurrence: datetime | None = None,
    location: str = "Room 1",
) -> CalendarItem:
    """A calendar item; `stamp` is minutes after a fixed DTSTAMP base."""
    start = datetime(2026, 12, 3, hour, tzinfo=BERLIN)
    participants = [Participant(organizer, "organizer", "Anna")] if organizer else []
    default: dict[str, Response] = {TOM: "needs_action", PRIYA: "needs_action"}
    for address, response in (default if people is None else people).items():
        participants.append(Participant(address, "attendee", address.split("@")[0], response))
    return CalendarItem(
        uid=uid,
        method=method,
        sequence=sequence,
        dtstamp=datetime(2026, 11, 20, 10, tzinfo=UTC) + timedelta(minutes=stamp),
        recurrence_id=recurrence,
        summary="Sync",
        start=start,
        end=start + timedelta(minutes=30),
        time_zone="Europe/Berlin",
        location=location,
        participants=participants,
    )


class Store:
    """What the capture pipeline does: load the state of the item's key, apply, store."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str], MeetingState] = {}
        self.log: list[Outcome] = []

    def feed(self, *items: CalendarItem) -> list[str]:
        actions: list[str] = []
        for one in items:
            key = occurrence_key(one)
            outcome = apply(self.states.get(key), one, series=self.states.get(series_key(one)))
            if outcome.changed:
                assert outcome.state is not None
                self.states[key] = outcome.state
            self.log.append(outcome)
            actions.append(outcome.action)
        return actions

    def feed_files(self, *names: str) -> list[str]:
        return [action for name in names for action in self.feed(*fixture(name))]

    def get(self, uid: str = "m1@example.com", key: str = "") -> MeetingState:
        return self.states[(uid, key)]


def responses(state: MeetingState) -> dict[str, str]:
    return {address: a.response for address, a in state.attendees.items()}


# --- The whole life of a meeting, from real-looking messages ---------------------------------


def test_invite_update_accept_counter_cancel_one_cancel_all() -> None:
    store = Store()
    actions = store.feed_files(
        "series_invite.ics",
        "series_update_new_time.ics",
        "google_reply_accepted.ics",
        "counter_proposal.ics",
        "cancel_one_occurrence.ics",
        "cancel_series.ics",
    )
    assert actions == [
        "created",
        "updated",
        "reply_recorded",
        "counter_recorded",
        "cancelled",
        "cancelled",
    ]
    series = store.get(UID)
    assert series.status == "cancelled" and series.sequence == 3
    assert series.start == datetime(2026, 12, 3, 10, tzinfo=BERLIN)  # the update's time
    assert series.rrule == "FREQ=WEEKLY;BYDAY=TH;WKST=MO"
    assert responses(series) == {TOM: "accepted", PRIYA: "needs_action"}
    assert series.attendees[TOM].responded_at == datetime(2026, 11, 21, 12, tzinfo=UTC)
    # The counter is a proposal: recorded, the meeting did not move.
    [proposal] = series.proposals
    assert proposal.from_address == PRIYA
    assert proposal.start == datetime(2026, 12, 3, 11, tzinfo=BERLIN)
    assert "customer call" in proposal.comment
    # The one cancelled occurrence is its own state, keyed by its original start.
    occurrence = store.get(UID, "20261210T090000Z")
    assert occurrence.status == "cancelled"
    assert occurrence.start == datetime(2026, 12, 10, 10, tzinfo=BERLIN)
    # From the series, not Outlook's "Canceled: " subject of the CANCEL itself.
    assert occurrence.summary == "Weekly sync"
    assert set(store.states) == {(UID, ""), (UID, "20261210T090000Z")}


def test_late_older_update_changes_nothing() -> None:
    store = Store()
    actions = store.feed_files(
        "series_invite.ics", "series_update_new_time.ics", "series_invite.ics"
    )
    assert actions == ["created", "updated", "ignored_older"]
    assert store.get(UID).start == datetime(2026, 12, 3, 10, tzinfo=BERLIN)
    assert store.log[-1].state is store.get(UID) and not store.log[-1].changed


def test_reply_to_an_outdated_sequence_is_ignored() -> None:
    store = Store()
    actions = store.feed_files(
        "series_invite.ics", "series_update_new_time.ics", "reply_outdated_sequence.ics"
    )
    assert actions == ["created", "updated", "reply_ignored_outdated"]
    assert responses(store.get(UID))[PRIYA] == "needs_action"


def test_reply_before_the_invite_makes_a_placeholder_the_invite_replaces() -> None:
    store = Store()
    assert store.feed_files("google_reply_accepted.ics") == ["reply_recorded"]
    placeholder = store.get(UID)
    assert placeholder.placeholder and responses(placeholder) == {TOM: "accepted"}
    assert placeholder.organizer == ANNA and placeholder.summary == "Weekly sync"
    # The invite the reply answered arrives later: it replaces the placeholder (even with an
    # older DTSTAMP), and the reply, which answers this very version, is kept.
    assert store.feed_files("series_update_new_time.ics") == ["updated"]
    state = store.get(UID)
    assert not state.placeholder and state.location == "Microsoft Teams Meeting"
    assert responses(state) == {TOM: "accepted", PRIYA: "needs_action"}
    assert store.feed_files("series_invite.ics") == ["ignored_older"]


def test_moved_exception_is_its_own_meeting() -> None:
    store = Store()
    assert store.feed_files("series_with_moved_exception.ics") == ["created", "created"]
    master = store.get("7kq2m0c9l1@google.com")
    moved = store.get("7kq2m0c9l1@google.com", "20261109T200000Z")
    assert master.rrule and moved.rrule is None
    assert moved.start == datetime(2026, 11, 10, 16, tzinfo=zoneinfo.ZoneInfo("America/New_York"))
    assert master.start != moved.start
    # Updating the series later does not touch the exception.
    later = replace(fixture("series_with_moved_exception.ics")[0], sequence=1, summary="Renamed")
    assert store.feed(later) == ["updated"]
    assert (
        store.get("7kq2m0c9l1@google.com", "20261109T200000Z").summary == "Pipeline review (moved)"
    )


# --- Ordering rules, table-driven -----------------------------------------------------------

CASES: list[tuple[str, list[CalendarItem], list[str]]] = [
    ("duplicate copy", [item(), item()], ["created", "ignored_older"]),
    ("equal sequence, later stamp wins", [item(), item(stamp=5, hour=11)], ["created", "updated"]),
    ("equal sequence, older stamp loses", [item(stamp=5), item(hour=11)], ["created", "ignored_older"]),
    ("higher sequence wins over stamp", [item(stamp=9), item(sequence=1, hour=11)],
     ["created", "updated"]),
    ("publish", [item("PUBLISH"), item("", sequence=1)], ["published", "published"]),
    ("add is an update", [item(), item("ADD", sequence=1)], ["created", "updated"]),
    ("cancel then older request", [item(sequence=1), item("CANCEL", sequence=2), item(sequence=1)],
     ["created", "cancelled", "ignored_older"]),
    ("cancel then newer request reinstates",
     [item(), item("CANCEL", sequence=1), item(sequence=2)], ["created", "cancelled", "updated"]),
    ("cancel of an older version", [item(sequence=2), item("CANCEL", sequence=1)],
     ["created", "ignored_older"]),
    ("cancel with the same sequence", [item(sequence=1), item("CANCEL", sequence=1, stamp=3)],
     ["created", "cancelled"]),
    ("duplicate cancel", [item(), item("CANCEL", sequence=1), item("CANCEL", sequence=1)],
     ["created", "cancelled", "cancelled"]),
    ("cancel before the invite", [item("CANCEL", sequence=1), item(sequence=0)],
     ["cancelled", "ignored_older"]),
    ("refresh", [item(), item("REFRESH")], ["created", "ignored"]),
    ("reply without attendee", [item(), item("REPLY", people={})], ["created", "ignored"]),
    ("older reply of the same attendee arriving late",
     [item(), item("REPLY", stamp=9, people={TOM: "declined"}),
      item("REPLY", stamp=5, people={TOM: "accepted"})],
     ["created", "reply_recorded", "reply_ignored_outdated"]),
    ("reply to a version not seen yet", [item(), item("REPLY", sequence=1, people={TOM: "accepted"})],
     ["created", "reply_recorded"]),
    ("counter twice is recorded once",
     [item(), item("COUNTER", stamp=1, hour=11, people={PRIYA: "tentative"}),
      item("COUNTER", stamp=2, hour=11, people={PRIYA: "tentative"})],
     ["created", "counter_recorded", "counter_recorded"]),
    ("declinecounter", [item(), item("COUNTER", hour=11, people={PRIYA: "tentative"}),
                        item("DECLINECOUNTER", people={PRIYA: "needs_action"})],
     ["created", "counter_recorded", "counter_declined"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "items", "actions"), CASES, ids=[c[0] for c in CASES])
def test_ordering(name: str, items: list[CalendarItem], actions: list[str]) -> None:
    assert Store().feed(*items) == actions


def test_updates_keep_the_winning_version() -> None:
    store = Store()
    store.feed(item(stamp=5, hour=9), item(stamp=1, hour=10), item(sequence=1, hour=11))
    state = store.get()
    assert (state.sequence, state.start) == (1, datetime(2026, 12, 3, 11, tzinfo=BERLIN))


def test_cancel_keeps_the_meeting_in_history_and_a_new_request_reinstates_it() -> None:
    store = Store()
    store.feed(item(location="Room 7"), item("CANCEL", sequence=1, location=""))
    state = store.get()
    assert state.status == "cancelled" and state.location == "Room 7" and state.sequence == 1
    store.feed(item(sequence=2))
    assert store.get().status == "confirmed"


# --- Responses --------------------------------------------------------------------------


def test_time_change_resets_responses_except_the_organizers() -> None:
    store = Store()
    organizer_too: dict[str, Response] = {
        ANNA: "accepted",
        TOM: "needs_action",
        PRIYA: "needs_action",
    }
    asked: dict[str, Response] = dict.fromkeys(organizer_too, "needs_action")
    store.feed(
        item(people=organizer_too),
        item("REPLY", stamp=1, people={TOM: "accepted"}),
        item("REPLY", stamp=2, people={PRIYA: "declined"}),
    )
    assert responses(store.get()) == {ANNA: "accepted", TOM: "accepted", PRIYA: "declined"}
    # Same time, new location: answers stand.
    store.feed(
        item(
            sequence=1,
            stamp=3,
            location="Room 2",
            people=asked,
        )
    )
    assert responses(store.get()) == {ANNA: "accepted", TOM: "accepted", PRIYA: "declined"}
    kept = store.log[-1]
    assert not kept.responses_reset
    # New time: everyone is asked again, except the organizer.
    store.feed(item(sequence=2, stamp=4, hour=14, people=asked))
    reset = store.log[-1]
    assert reset.responses_reset
    assert responses(store.get()) == {ANNA: "accepted", TOM: "needs_action", PRIYA: "needs_action"}
    # A reply that already answered the new version (it overtook the update) is kept.
    store = Store()
    store.feed(
        item(),
        item("REPLY", sequence=1, stamp=5, people={TOM: "accepted"}),
        item(sequence=1, hour=15),
    )
    assert responses(store.get())[TOM] == "accepted"


def test_organizers_copy_carries_newer_responses() -> None:
    # Google's REQUESTs and provider calendars list every attendee's current PARTSTAT.
    store = Store()
    store.feed(item(), item("REPLY", stamp=1, people={TOM: "accepted"}))
    store.feed(item(sequence=1, stamp=9, people={TOM: "declined", PRIYA: "tentative"}))
    assert responses(store.get()) == {TOM: "declined", PRIYA: "tentative"}
    # ...but not a view older than an answer already recorded.
    store.feed(item("REPLY", sequence=1, stamp=20, people={TOM: "accepted"}))
    store.feed(item(sequence=1, stamp=15, people={TOM: "declined", PRIYA: "tentative"}))
    assert store.log[-1].action == "updated"
    assert responses(store.get())[TOM] == "accepted"


def test_attendee_list_follows_the_organizer() -> None:
    store = Store()
    store.feed(item(people={TOM: "needs_action", PRIYA: "needs_action"}))
    store.feed(item(sequence=1, people={TOM: "needs_action"}))
    assert set(store.get().attendees) == {TOM}
    # Someone the invite was forwarded to answered this version: kept though not listed.
    store.feed(item("REPLY", sequence=1, stamp=3, people={"guest@example.com": "accepted"}))
    store.feed(item(sequence=1, stamp=4, people={TOM: "needs_action"}))
    assert set(store.get().attendees) == {TOM, "guest@example.com"}


def test_reply_to_one_occurrence_starts_from_the_series() -> None:
    store = Store()
    series = replace(item(), rrule="FREQ=WEEKLY")
    original = datetime(2026, 12, 10, 9, tzinfo=BERLIN)
    store.feed(series, item("REPLY", stamp=2, recurrence=original, people={TOM: "declined"}))
    occurrence = store.get(key="20261210T080000Z")
    assert occurrence.start == original and occurrence.end == original + timedelta(minutes=30)
    assert occurrence.rrule is None and occurrence.summary == "Sync"
    assert responses(occurrence) == {TOM: "declined", PRIYA: "needs_action"}
    assert responses(store.get()) == {TOM: "needs_action", PRIYA: "needs_action"}
    assert store.log[-1].created


def test_counter_before_the_invite() -> None:
    store = Store()
    store.feed(item("COUNTER", hour=16, people={PRIYA: "tentative"}))
    placeholder = store.get()
    assert placeholder.placeholder and placeholder.start is None
    assert [p.start for p in placeholder.proposals] == [datetime(2026, 12, 3, 16, tzinfo=BERLIN)]
    store.feed(item())
    state = store.get()
    assert state.start == datetime(2026, 12, 3, 9, tzinfo=BERLIN) and len(state.proposals) == 1


# --- Keys and purity ------------------------------------------------------------------------


def test_keys() -> None:
    one = item(recurrence=datetime(2026, 12, 10, 9, tzinfo=BERLIN))
    assert occurrence_key(one) == ("m1@example.com", "20261210T080000Z")
    assert series_key(one) == ("m1@example.com", "")
    assert occurrence_key(item()) == ("m1@example.com", "")
    all_day = replace(item(), all_day=True, recurrence_id=datetime(2026, 12, 24, tzinfo=UTC))
    assert occurrence_key(all_day) == ("m1@example.com", "20261224")


def test_state_for_another_key_is_refused() -> None:
    state = apply(None, item()).state
    assert state is not None
    with pytest.raises(ValueError, match="is not for"):
        apply(state, item(uid="other@example.com"))


def test_apply_never_mutates_its_input() -> None:
    store = Store()
    store.feed(item(), item("REPLY", stamp=1, people={TOM: "accepted"}))
    state = store.get()
    before = copy.deepcopy(state)
    for incoming in [
        item(sequence=1, hour=12),
        item("REPLY", stamp=3, people={PRIYA: "accepted"}),
        item("COUNTER", stamp=4, hour=15, people={PRIYA: "tentative"}),
        item("CANCEL", sequence=2),
        item("DECLINECOUNTER", people={PRIYA: "needs_action"}),
    ]:
        apply(state, incoming)
        assert state == before


# --- Order independence ----------------------------------------------------------------------

VERSIONS = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 50), st.integers(8, 18)),
    min_size=1,
    max_size=6,
    unique_by=lambda v: (v[0], v[1]),
)


@settings(max_examples=200, deadline=None)
@given(VERSIONS, st.randoms(use_true_random=False))
def test_final_state_does_not_depend_on_arrival_order(
    versions: list[tuple[int, int, int]], rng: object
) -> None:
    items = [item(sequence=s, stamp=m, hour=h) for s, m, h in versions]
    shuffled = list(items)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    store = Store()
    store.feed(*shuffled)
    winner = max(versions, key=lambda v: (v[0], v[1]))
    state = store.get()
    assert (state.sequence, state.start) == (
        winner[0],
        datetime(2026, 12, 3, winner[2], tzinfo=BERLIN),
    )
    # A cancellation of the newest version wins whenever it arrives.
    cancel = item("CANCEL", sequence=winner[0], stamp=winner[1] + 1)
    store = Store()
    store.feed(*shuffled[:1], cancel, *shuffled[1:])
    assert store.get().status == "cancelled"


# --- Across keys: one occurrence's messages and the series, in any order -----------------------

LIFE = (
    "series_invite.ics",
    "series_update_new_time.ics",
    "google_reply_accepted.ics",
    "counter_proposal.ics",
    "cancel_one_occurrence.ics",
    "cancel_series.ics",
)


def shown(store: Store) -> dict[tuple[str, str], tuple[object, ...]]:
    """What each stored meeting shows: occurrences laid over their series (`rebase`). Titles
    and places are left out: which copy they come from is `server.crm.meetings`' rule."""
    out: dict[tuple[str, str], tuple[object, ...]] = {}
    for (uid, key), state in store.states.items():
        view = rebase(state, store.states.get((uid, ""))) if key else state
        out[(uid, key)] = (
            view.status,
            view.start,
            view.end,
            tuple(sorted(responses(view).items())),
            tuple((p.from_address, p.start) for p in view.proposals),
        )
    return out


def test_what_meetings_show_does_not_depend_on_arrival_order() -> None:
    expected = Store()
    expected.feed_files(*LIFE)
    want = shown(expected)
    assert want[(UID, "20261210T090000Z")][0] == "cancelled"
    assert want[(UID, "")][:2] == ("cancelled", datetime(2026, 12, 3, 10, tzinfo=BERLIN))
    for order in itertools.permutations(LIFE):
        store = Store()
        store.feed_files(*order)
        assert shown(store) == want, order


def test_a_cancelled_occurrence_arriving_first_takes_the_series_once_known() -> None:
    store = Store()
    store.feed_files("cancel_one_occurrence.ics")
    alone = store.get(UID, "20261210T090000Z")
    assert alone.derived and alone.summary == "Canceled: Weekly sync"
    assert rebase(alone, None) is alone
    store.feed_files("series_invite.ics")
    view = rebase(alone, store.get(UID))
    assert (view.summary, view.status) == ("Weekly sync", "cancelled")
    assert view.start == datetime(2026, 12, 10, 10, tzinfo=BERLIN)
    assert responses(view) == {TOM: "needs_action", PRIYA: "needs_action"}


def test_a_reply_to_the_version_a_cancellation_ended_still_counts() -> None:
    store = Store()
    assert store.feed(item("CANCEL", sequence=2, stamp=9)) == ["cancelled"]
    assert store.feed(item("REPLY", sequence=1, stamp=5, people={TOM: "accepted"})) == [
        "reply_recorded"
    ]
    assert responses(store.get())[TOM] == "accepted"
    # A REQUEST moves the bar: replies to versions before it are outdated.
    store = Store()
    store.feed(item(sequence=1), item("REPLY", sequence=0, people={TOM: "accepted"}))
    assert responses(store.get())[TOM] == "needs_action"


def test_a_cancellation_carries_the_newest_times() -> None:
    store = Store()
    store.feed(item(hour=9), item("CANCEL", sequence=2, stamp=3, hour=10), item(sequence=1))
    state = store.get()
    assert (state.status, state.start) == ("cancelled", datetime(2026, 12, 3, 10, tzinfo=BERLIN))


def test_original_start_reads_recurrence_keys() -> None:
    assert original_start("20261210T090000Z") == datetime(2026, 12, 10, 9, tzinfo=UTC)
    assert original_start("20261210") == datetime(2026, 12, 10, tzinfo=UTC)
    assert original_start("") is None and original_start("garbage") is None
