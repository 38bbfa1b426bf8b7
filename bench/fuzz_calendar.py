"""atheris harness for the iCalendar parser (server/mail_ingest/calendar.py): every input
parses (and its recurrences expand over ten years) or raises `BadItem("not_icalendar")`; never
another exception, never a hang.

    python -m bench.fuzz_calendar --runs 1000000
"""

from __future__ import annotations

import sys

from bench.fuzz_run import run

try:
    import atheris  # type: ignore[import-not-found]

    with atheris.instrument_imports(include=["server.mail_ingest"]):
        from tests.reliability.test_fuzz_parsers import parse_and_expand
except ImportError:
    from tests.reliability.test_fuzz_parsers import parse_and_expand

# Random bytes rarely start like a calendar, and the parser rejects them in microseconds; each
# input is also tried behind the lines that get it into the event reader.
PREFIX = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n"


def check(data: bytes) -> None:
    parse_and_expand(data)
    parse_and_expand(PREFIX + data)


if __name__ == "__main__":
    sys.exit(
        run(
            "calendar",
            check,
            "tests/reliability/test_fuzz_parsers.py"
            "::test_hostile_calendars_parse_and_expand_or_are_bad_items",
            sys.argv[1:],
        )
    )
