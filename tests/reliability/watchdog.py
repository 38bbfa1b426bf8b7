"""A generous per-input watchdog for the fuzz tests: it fails only on a real hang.

Hypothesis's `deadline` would make timing an assertion (and flaky on two busy cores); this runs
each input in a thread and waits up to WATCHDOG_SECONDS, far beyond any honest parse, so only
an input that never finishes (a catastrophic regex, an endless recurrence) fails the test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
WATCHDOG_SECONDS = 10.0


def within_watchdog(work: Callable[[], T], what: bytes) -> T:
    """`work()`'s result or exception; AssertionError if it is still running after the limit."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed back to the test's thread as it was
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="fuzz-input", daemon=True)
    thread.start()
    thread.join(WATCHDOG_SECONDS)
    assert not thread.is_alive(), f"hung over {WATCHDOG_SECONDS:.0f} s on input {what[:300]!r}"
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
