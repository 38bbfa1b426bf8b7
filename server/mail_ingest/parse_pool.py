"""Parse worker pools, and a stream of chunks prepared on one in order.

Free of SQLAlchemy and the capture core (like `prepare`), so that `rapport import` can set its
workers going while the main process is still importing those (a second of a 5,000-message
import's eight, with the second core idle).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from typing import Any, Generic, TypeVar

from server.crm.prepared import Prepared
from server.mail_ingest import parse_server, spool
from server.mail_ingest.prepare import PrepareOptions, prepare_chunk, start_worker
from server.mail_ingest.sources.files import RawMessage

CHUNK_SIZE = 32
# Messages handed to the parse processes and not yet taken by capture. About a batch (fewer
# messages than `pipeline.BATCH_SIZE`, but a batch of this corpus's mail fills its 12 MB first):
# the main process hands out no work while it writes a batch, and with only a few chunks in
# flight the parse processes ran dry and waited for it (half of a 5,000-message import's wall
# time).
WINDOW_MESSAGES = 512


def default_jobs() -> int:
    return max(1, min(4, (os.cpu_count() or 1)))


T = TypeVar("T")


class Pending(Generic[T]):
    """A call submitted to a `ParsePool`: a future whose result comes from the pool's spool."""

    __slots__ = ("_future",)

    def __init__(self, future: Future[Any]) -> None:
        self._future = future

    def done(self) -> bool:
        return self._future.done()

    def cancel(self) -> bool:
        return self._future.cancel()

    def result(self) -> T:
        result: T = spool.taken(self._future.result())
        return result


class ParsePool:
    """Parse worker processes, forked from the fork server, handing back what they made through
    a spool (`server.mail_ingest.spool`) rather than the result pipe."""

    def __init__(self, jobs: int) -> None:
        self._spool = spool.make_spool()
        self._executor = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=parse_server.context(),
            initializer=start_worker,
            initargs=(os.getpid(),),
        )

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def submit(self, fn: Callable[..., T], *args: Any) -> Pending[T]:
        return Pending(self._executor.submit(spool.run_spooled, self._spool, fn, *args))

    def shutdown(self, *, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=True)
        spool.remove_spool(self._spool)


class WindowSize:
    """How many chunks a stream keeps handed out: `window`, or more after a head start.

    After a head start the window is full of finished chunks while capture catches up (its
    start-up and first batch run alone). Cut back to `window` at once, the workers got nothing
    until capture had taken half of it, and both sat idle for a third of a second. So the
    finished chunks do not count against the window while the head start's limit lasts; the
    limit comes down a chunk for every four taken, so that a capture slower than its workers
    (PostgreSQL) soon holds no more than `window` again, and memory never more than the head
    start did.
    """

    def __init__(self, window: int, *, head_start: int = 0) -> None:
        self.window = window
        self.limit = max(window, head_start)
        self._taken = 0

    def after_take(self, finished: int) -> int:
        """The size to fill up to after a chunk was taken, `finished` of those left done."""
        if self.limit > self.window:
            self._taken += 1
            if self._taken % 4 == 0:
                self.limit -= 1
        return min(self.limit, finished + self.window)


class ChunkStream:
    """Messages prepared in chunks on a pool, a bounded window of them in flight, handed back
    in order. It can start before its final options are known (`retarget`)."""

    def __init__(
        self,
        messages: Iterator[RawMessage],
        options: PrepareOptions,
        jobs: int,
        *,
        ahead: int = WINDOW_MESSAGES,
    ) -> None:
        """`ahead`: messages handed out at the start, when that is more than the window (the
        head start of an import, which has the workers to itself for a second)."""
        self.options = options
        self._messages = messages
        self._pool = ParsePool(jobs)
        self._window: deque[tuple[list[RawMessage], Pending[list[Prepared]]]] = deque()
        self._exhausted = False
        self._size = WindowSize(
            max(jobs * 2, WINDOW_MESSAGES // CHUNK_SIZE), head_start=ahead // CHUNK_SIZE
        )
        self._fill(self._size.limit)

    def retarget(self, options: PrepareOptions) -> None:
        """Prepare with `options` from now on; chunks started with others start again."""
        if options == self.options:
            return
        self.options = options
        started = list(self._window)
        self._window.clear()
        for chunk, future in started:
            future.cancel()  # unless a worker has it already: then its result is dropped
            self._window.append((chunk, self._pool.submit(prepare_chunk, chunk, options)))

    def __iter__(self) -> Iterator[Prepared]:
        try:
            while self._window:
                _chunk, future = self._window.popleft()
                self._fill(self._size.after_take(sum(f.done() for _c, f in self._window)))
                yield from future.result()
        except BaseException:
            self.close(wait=False)
            raise
        self.close()

    def close(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)

    def _fill(self, size: int) -> None:
        while not self._exhausted and len(self._window) < size:
            chunk = list(islice(self._messages, CHUNK_SIZE))
            if len(chunk) < CHUNK_SIZE:
                self._exhausted = True
            if chunk:
                future = self._pool.submit(prepare_chunk, chunk, self.options)
                self._window.append((chunk, future))
