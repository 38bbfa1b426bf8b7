"""A sync parses pages while the page before them is written (server/mail_ingest/sync.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from server.mail_ingest.sync import PAGES_AHEAD, _parsed_ahead


class Recorder:
    """A preparer that notes when each page's parsing starts and when its result is taken."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def start(self, messages: list[str]) -> Callable[[], list[str]]:
        self.events.append(f"parse {messages[0]}")

        def result() -> list[str]:
            self.events.append(f"parsed {messages[0]}")
            return [m.upper() for m in messages]

        return result


class Page:
    def __init__(self, name: str) -> None:
        self.messages = [name]
        self.failures = [(f"id-{name}", "not sent")]


def test_each_page_comes_in_order_with_the_next_two_already_being_parsed() -> None:
    assert PAGES_AHEAD == 2
    recorder = Recorder()
    pages = [Page(n) for n in ("a", "b", "c", "d")]
    written = []
    for page, parsed, failures in _parsed_ahead(cast(Any, pages), cast(Any, recorder)):
        recorder.events.append(f"write {page.messages[0]}")
        written.append((parsed, failures))
    assert written == [([n.upper()], [(f"id-{n}", "not sent")]) for n in "abcd"]
    assert recorder.events == [
        "parse a",
        "parse b",
        "parse c",  # b and c are being parsed...
        "parsed a",
        "write a",  # ...while a is written
        "parse d",
        "parsed b",
        "write b",
        "parsed c",
        "write c",
        "parsed d",
        "write d",
    ]


def test_leaving_after_a_page_takes_no_result_of_the_next() -> None:
    recorder = Recorder()
    pages = _parsed_ahead(cast(Any, [Page("a"), Page("b"), Page("c")]), cast(Any, recorder))
    page, _, _ = next(pages)
    pages.close()  # the caller stops (SIGTERM) after writing page a
    assert page.messages == ["a"]
    assert "parsed b" not in recorder.events
