"""The page prefetcher of a sync (server/mail_ingest/prefetch.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from server.mail_ingest.prefetch import Prefetch, in_order


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


# -- in_order: several single fetches at once --------------------------------------------------


class Gauge:
    """How many calls run at once, at most."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.peak = 0
        self.started: list[int] = []

    def fetch(self, n: int) -> int:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            self.started.append(n)
        time.sleep(0.02 if n % 3 else 0.05)  # some answer later than the ones after them
        with self.lock:
            self.now -= 1
        return n * n


def test_in_order_runs_width_calls_at_once_and_answers_in_the_order_asked() -> None:
    gauge = Gauge()
    assert list(in_order(gauge.fetch, range(20), width=4)) == [n * n for n in range(20)]
    assert gauge.peak == 4


def test_in_order_with_width_one_calls_one_at_a_time_in_the_caller() -> None:
    threads: set[str] = set()

    def fetch(n: int) -> int:
        threads.add(threading.current_thread().name)
        return n

    assert list(in_order(fetch, range(5), width=1)) == [0, 1, 2, 3, 4]
    assert threads == {threading.current_thread().name}


def test_in_order_raises_an_error_where_its_item_comes() -> None:
    def fetch(n: int) -> int:
        if n == 5:
            raise ConnectionError("message 5 is gone")
        return n

    seen: list[int] = []
    with pytest.raises(ConnectionError, match="message 5"):
        seen.extend(in_order(fetch, range(10), width=3))
    assert seen == [0, 1, 2, 3, 4]


def test_leaving_in_order_early_starts_no_more_calls() -> None:
    gauge = Gauge()
    results = in_order(gauge.fetch, range(100), width=4)
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    results.close()
    assert gauge.now == 0, "the calls running were waited for"
    assert len(gauge.started) <= 3 + 4
