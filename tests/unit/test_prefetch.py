"""The page prefetcher of a sync (server/mail_ingest/prefetch.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from server.mail_ingest.prefetch import Prefetch


def test_items_arrive_in_order_each_once() -> None:
    with Prefetch(range(100)) as fetched:
        assert list(fetched) == list(range(100))


def test_the_source_runs_in_another_thread_at_most_one_item_ahead() -> None:
    produced: list[int] = []
    threads: set[str] = set()

    def source() -> Iterator[int]:
        for n in range(5):
            threads.add(threading.current_thread().name)
            produced.append(n)
            yield n

    with Prefetch(source()) as fetched:
        seen = []
        for item in fetched:
            time.sleep(0.05)  # the caller is slow: the producer waits on the queue
            # one item in the caller's hands, one in the queue, one ready to be put
            assert len(produced) - len(seen) <= 3
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]
    assert threads == {"prefetch"}


def test_an_error_of_the_source_reaches_the_caller_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ConnectionError("the server went away")

    seen: list[int] = []

    def consume() -> None:
        with Prefetch(source()) as fetched:
            seen.extend(fetched)

    with pytest.raises(ConnectionError, match="went away"):
        consume()
    assert seen == [1, 2]


def test_leaving_early_stops_the_thread_and_closes_the_source() -> None:
    closed = threading.Event()
    produced: list[int] = []

    def source() -> Iterator[int]:
        try:
            for n in range(1_000):
                produced.append(n)
                yield n
        finally:
            closed.set()

    prefetch = Prefetch(source())
    with prefetch as fetched:
        for item in fetched:
            if item == 2:
                break
    assert closed.is_set()
    assert not prefetch._thread.is_alive()
    assert len(produced) <= 6  # it stopped instead of running to the end
