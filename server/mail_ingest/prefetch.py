"""Fetching the next page of a mailbox while the page before it is parsed and written.

A sync's pages come from the network (IMAP FETCH, Graph, EWS) and go to the parse workers and
the database; done one after the other, the worker waits on the server while nothing is
written, then writes while nothing is fetched. `Prefetch` runs the page iterator in a thread of
its own, at most `ahead` pages in front of the caller: the source is only ever used from that
thread while the caller iterates, errors reach the caller in order, and leaving early stops the
thread and closes the iterator (a generator's cleanup runs in the thread that ran it).

`in_order` is the same idea one level down: items fetched one request each (a Graph message
with attachments, its MIME on its own) are asked for several at once, as many as the service
lets one mailbox have in flight, and handed back in the order asked.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")
POLL_SECONDS = 0.1  # how soon a stopped producer notices, while its queue is full


class Prefetch(Generic[T]):
    """`with Prefetch(pages) as fetched: for page in fetched: ...`"""

    def __init__(self, items: Iterable[T], *, ahead: int = 1) -> None:
        self._items = items
        self._queue: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=ahead)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="prefetch", daemon=True)

    def __enter__(self) -> Prefetch[T]:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        while self._thread.is_alive():  # make room for a producer blocked on a full queue
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=POLL_SECONDS)
        self._thread.join()

    def __iter__(self) -> Iterator[T]:
        while True:
            kind, value = self._queue.get()
            if kind == "item":
                yield cast(T, value)
            elif kind == "error":
                assert isinstance(value, BaseException)
                raise value
            else:
                return

    def _produce(self) -> None:
        iterator = iter(self._items)
        try:
            for item in iterator:
                if not self._put("item", item):
                    return
            self._put("end", None)
        except BaseException as exc:  # handed to the caller, who raises it where it iterates
            self._put("error", exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def _put(self, kind: str, value: object) -> bool:
        while not self._stopped.is_set():
            try:
                self._queue.put((kind, value), timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False


def in_order(fetch: Callable[[T], R], items: Iterable[T], *, width: int) -> Iterator[R]:
    """`fetch(item)` for every item, `width` at a time in threads, results in the items' order.

    At most `width` calls run or wait unread at once, so memory stays bounded by `width`
    results; an error is raised where its item comes; leaving early cancels the calls not yet
    started and waits for those running."""
    if width <= 1:
        yield from map(fetch, items)
        return
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="fetch") as pool:
        running: deque[Future[R]] = deque()
        try:
            for item in items:
                if len(running) >= width:
                    yield running.popleft().result()
                running.append(pool.submit(fetch, item))
            while running:
                yield running.popleft().result()
        finally:
            for future in running:
                future.cancel()
