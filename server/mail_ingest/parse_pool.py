"""Parse worker pools, and a stream of chunks prepared on one in order.

Free of SQLAlchemy and the capture core (like `prepare`), so that `rapport import` can set its
workers going while the main process is still importing those (a second of a 5,000-message
import's eight, with the second core idle).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice

from server.crm.prepared import Prepared
from server.mail_ingest import parse_server
from server.mail_ingest.prepare import PrepareOptions, prepare_chunk, start_worker
from server.mail_ingest.sources.files import RawMessage

CHUNK_SIZE = 32
# Messages handed to the parse processes and not yet written. More than a batch holds: the main
# process hands out no work while it writes a batch, and with only a few chunks in flight the
# parse processes ran dry and waited for it (half of a 5,000-message import's wall time).
WINDOW_MESSAGES = 512


def default_jobs() -> int:
    return max(1, min(4, (os.cpu_count() or 1)))


def pool(jobs: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=parse_server.context(),
        initializer=start_worker,
        initargs=(os.getpid(),),
    )


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
        self._pool = pool(jobs)
        self._window: deque[tuple[list[RawMessage], Future[list[Prepared]]]] = deque()
        self._exhausted = False
        self._in_flight = max(jobs * 2, ahead // CHUNK_SIZE)
        self._fill()
        self._in_flight = max(jobs * 2, WINDOW_MESSAGES // CHUNK_SIZE)

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
                self._fill()
                yield from future.result()
        except BaseException:
            self.close(wait=False)
            raise
        self.close()

    def close(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def _fill(self) -> None:
        while not self._exhausted and len(self._window) < self._in_flight:
            chunk = list(islice(self._messages, CHUNK_SIZE))
            if len(chunk) < CHUNK_SIZE:
                self._exhausted = True
            if chunk:
                future = self._pool.submit(prepare_chunk, chunk, self.options)
                self._window.append((chunk, future))
