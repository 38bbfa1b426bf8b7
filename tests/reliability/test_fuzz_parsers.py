"""The MIME and iCalendar parsers under hostile input: no crash (only `BadItem`, their
documented error, with a reason), no hang (a 10 s watchdog per input, not a timing assertion).

The long form is `python -m bench.reliability --fuzz N` (the same tests with N inputs each) and
the atheris harnesses bench/fuzz_mime.py and bench/fuzz_calendar.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from hypothesis import HealthCheck, given, settings

from server.mail_ingest.calendar import expand_occurrences, parse_calendar
from server.mail_ingest.errors import BadItem
from server.mail_ingest.mime import (
    attached_messages,
    calendar_parts,
    parse_message,
    parse_message_and_calendar,
)
from tests.reliability import scale
from tests.reliability.strategies import calendars, emails, invitation
from tests.reliability.watchdog import within_watchdog

EXAMPLES = scale.fuzz_inputs(250)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAIL_REASONS = {"empty", "not_an_email", "not_bytes", "parser_error"}
WINDOW = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))
_tried = {"mime": 0, "calendar": 0}


def rejection(parse: Callable[[], object]) -> BadItem | None:
    """The `BadItem` a parse raised, or None; any other exception propagates (a crash)."""
    try:
        parse()
    except BadItem as exc:
        return exc
    return None


def parse_every_level(raw: bytes) -> None:
    for want_subject, want_body in ((False, False), (True, False), (True, True)):
        level = {"want_subject": want_subject, "want_body": want_body}
        rejected = rejection(partial(parse_message, raw, **level))
        if rejected is not None:
            assert rejected.reason in MAIL_REASONS and str(rejected), rejected.reason
            assert rejected.reason != "parser_error", f"a parser bug, caught: {rejected}"
            continue
        item, walked = parse_message_and_calendar(raw, **level)
        assert item.size == len(raw)
        assert not any("internal error" in d for d in item.defects), item.defects
        # The calendar parts the parse met on its walk are the ones the byte search finds.
        assert walked is None if not want_subject else walked == calendar_parts(raw)
    calendar_parts(raw)
    attached_messages(raw)


def parse_and_expand(data: bytes) -> None:
    rejected = rejection(lambda: parse_calendar(data))
    if rejected is not None:
        assert rejected.reason == "not_icalendar" and str(rejected), rejected.reason
        assert "could not be read" not in str(rejected), f"a parser bug, caught: {rejected}"
        return
    for item in parse_calendar(data):
        expand_occurrences(item, start=WINDOW[0], end=WINDOW[1])


@FUZZ
@given(emails)
def _hostile_mail(raw: bytes) -> None:
    within_watchdog(lambda: parse_every_level(raw), raw)
    _tried["mime"] += 1


@FUZZ
@given(invitation())
def _hostile_invitations(raw: bytes) -> None:
    within_watchdog(lambda: parse_every_level(raw), raw)
    _tried["mime"] += 1


@FUZZ
@given(calendars)
def _hostile_calendars(data: bytes) -> None:
    within_watchdog(lambda: parse_and_expand(data), data)
    _tried["calendar"] += 1


def fuzz(run: Callable[[], None], kind: str, case: str) -> None:
    """Run one hypothesis search, check it tried inputs, and record how many (for the bench).
    Each test counts its own inputs: test processes share no counters."""
    before = _tried[kind]
    run()
    tried = _tried[kind] - before
    assert tried > 0 or EXAMPLES == 0
    scale.record("fuzz", f"parsers (hypothesis): {case}", **{kind: tried})


def test_hostile_mail_parses_or_is_a_bad_item() -> None:
    fuzz(_hostile_mail, "mime", "mail")


def test_hostile_invitations_parse_or_are_bad_items() -> None:
    fuzz(_hostile_invitations, "mime", "invitations")


def test_hostile_calendars_parse_and_expand_or_are_bad_items() -> None:
    fuzz(_hostile_calendars, "calendar", "calendars")
