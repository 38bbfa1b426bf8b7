"""capture(items) → database: batched, idempotent, with parsing spread over the machine's cores.

Sources hand over raw messages (or ready `MailItem`s); `server.mail_ingest.prepare` turns each
into a `Prepared` on a pool of worker processes; the capture core then writes each batch in one
transaction. Re-running over the same input captures nothing new, so a crash or Ctrl-C at any
point is repaired by running again. Bad input is quarantined with its reason; a bug of ours on
one item is recorded for that item (reason "internal_error") and the rest of the batch still
lands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from server.crm.blob_rows import unpack_blob_row
from server.crm.capture import CaptureCounts, Capturer, LinkInfo
from server.crm.prepared import Prepared
from server.crm.rules import CapturePolicy, content_skips
from server.db import Database
from server.jobs import LeaseLost
from server.mail_ingest.parse_pool import CHUNK_SIZE, ChunkStream, ParsePool
from server.mail_ingest.prepare import (
    Failures,
    Fetchable,
    PrepareOptions,
    fetch_and_prepare,
    prepare_chunk,
    prepare_loaded,
    prepare_raw,
    quarantine,
)
from server.mail_ingest.sources.files import RawMessage
from server.models import MailboxLink, utcnow

log = logging.getLogger(__name__)

# Each commit writes every page the batch touched (index pages of random keys mostly), and
# capture reloads the threads and contacts it forgot after the last one. Against 400 messages
# and 8 MB, 10 paired imports took 5% less time and main-process CPU at 600 and 12 MB; 800 and
# 16 MB gained about as much but took a 100,000-message import's peak from 137 to 153 MB.
BATCH_SIZE = 600
# A batch is also committed once it holds this many bytes of packed blobs: a mailbox of large
# attachments would otherwise keep hundreds of megabytes in memory before a commit.
BATCH_BYTES = 12 * 1024 * 1024


def prepare_options(link: LinkInfo, policy: CapturePolicy) -> PrepareOptions:
    """What the parse workers need of a link and the capture rules."""
    return PrepareOptions(
        level=link.capture_level,
        internal_domains=policy.internal_domains,
        owner_addresses=link.owner_addresses,
        skips=content_skips(policy),
    )


def prepared_stream(
    messages: Iterator[RawMessage],
    options: PrepareOptions,
    *,
    jobs: int,
    started: ChunkStream | None = None,
) -> Iterator[Prepared]:
    """Prepare messages in order, on `jobs` worker processes, with a bounded window in flight;
    or go on with the `started` stream (given the messages already), retargeted to `options`."""
    if started is not None:
        started.retarget(options)
        yield from started
    elif jobs <= 1:
        for message in messages:
            yield prepare_loaded(message, options)
    else:
        yield from ChunkStream(messages, options, jobs)


class Preparer:
    """Prepares pages of messages on a pool of worker processes kept for a whole sync."""

    def __init__(self, options: PrepareOptions, *, jobs: int) -> None:
        self.options = options
        self.jobs = jobs
        self._pool: ParsePool | None = None

    def __enter__(self) -> Preparer:
        if self.jobs > 1:
            self._pool = ParsePool(self.jobs)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    @property
    def parallel(self) -> bool:
        return self._pool is not None

    def start(self, messages: list[RawMessage]) -> Callable[[], list[Prepared]]:
        """Start preparing a page on the pool and return what waits for it: the caller writes
        the page before meanwhile. Without a pool (or for a few messages) the work is done
        when the result is asked for, in the caller's process."""
        if self._pool is None or len(messages) < CHUNK_SIZE:
            return lambda: [prepare_raw(m, self.options) for m in messages]
        size = self._part_size(len(messages))
        futures = [
            self._pool.submit(prepare_chunk, messages[i : i + size], self.options)
            for i in range(0, len(messages), size)
        ]
        return lambda: [p for future in futures for p in future.result()]

    def start_fetch(self, pending: Fetchable) -> Callable[[], tuple[list[Prepared], Failures]]:
        """Like `start`, for messages the workers fetch themselves (needs the pool)."""
        assert self._pool is not None, "pending pages are only made for a parallel Preparer"
        parts = pending.split(self._part_size(len(pending)))
        futures = [self._pool.submit(fetch_and_prepare, part, self.options) for part in parts]

        def result() -> tuple[list[Prepared], Failures]:
            prepared: list[Prepared] = []
            failures: Failures = []
            for future in futures:
                done, failed = future.result()
                prepared += done
                failures += failed
            return prepared, failures

        return result

    def _part_size(self, messages: int) -> int:
        """Two parts per worker (one parsed while the other's result travels), never tiny."""
        return max(CHUNK_SIZE // 2, -(-messages // (self.jobs * 2)))


@dataclass
class CaptureRun:
    """Counts and timing of one capture run, for the summary and the benchmark."""

    counts: CaptureCounts = field(default_factory=CaptureCounts)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        return self.counts.total / self.elapsed if self.elapsed > 0 else 0.0


def capture(
    db: Database,
    link: LinkInfo,
    policy: CapturePolicy,
    prepared: Iterable[Prepared],
    *,
    since: datetime | None = None,
    on_progress: Callable[[CaptureCounts], None] | None = None,
) -> CaptureRun:
    """Capture prepared items for one link, committing batch by batch."""
    run = CaptureRun()
    capturer = Capturer(link, policy, since=since)
    batch: list[Prepared] = []
    weight = 0
    with db.background_checkpoints():
        for item in prepared:
            batch.append(item)
            weight += item.weight
            if len(batch) >= BATCH_SIZE or weight >= BATCH_BYTES:
                _commit_batch(db, capturer, batch, run, on_progress)
                batch, weight = [], 0
        if batch:
            _commit_batch(db, capturer, batch, run, on_progress)
    run.finished = time.monotonic()
    return run


def _commit_batch(
    db: Database,
    capturer: Capturer,
    batch: list[Prepared],
    run: CaptureRun,
    on_progress: Callable[[CaptureCounts], None] | None,
) -> None:
    counts = commit_batch(db, capturer, batch)
    run.counts.add(counts)
    if on_progress is not None:
        on_progress(counts)


# Failures that say nothing about one item: stop, do not isolate.
_STOP = (OperationalError, LeaseLost)


def commit_batch(
    db: Database,
    capturer: Capturer,
    batch: list[Prepared],
    *,
    also: Callable[[Session], None] | None = None,
) -> CaptureCounts:
    """Capture a batch in one transaction, together with `also` (a sync checkpoint, a lease
    check). If one item breaks the batch, the items are captured one by one (the culprit is
    recorded as an internal error), and `also` runs in a last transaction of its own."""
    try:
        return _write(db, capturer, batch, also)
    except _STOP:
        capturer.forget()
        raise  # the database or the lease is gone: nothing to isolate, stop with the error
    except Exception:
        capturer.forget()
        log.exception("capture batch failed; isolating the failing item")
    counts = CaptureCounts()
    for prepared in batch:
        try:
            counts.add(_write(db, capturer, [prepared], None))
        except _STOP:
            capturer.forget()
            raise
        except Exception as exc:
            capturer.forget()
            log.exception("capture failed for one item", extra={"key": prepared.message_key})
            counts.add(_write(db, capturer, [_as_internal_error(prepared, exc)], None))
    if also is not None:
        with db.session() as session:
            also(session)
    return counts


def _write(
    db: Database,
    capturer: Capturer,
    batch: list[Prepared],
    also: Callable[[Session], None] | None,
) -> CaptureCounts:
    with db.session() as session:
        if also is not None:
            also(session)
        counts = capturer.capture_batch(session, batch)
        session.execute(
            update(MailboxLink)
            .where(MailboxLink.id == capturer.link.id)
            .values(
                messages_captured=MailboxLink.messages_captured + counts.captured,
                last_success_at=utcnow(),
            )
        )
        return counts


def _as_internal_error(prepared: Prepared, exc: Exception) -> Prepared:
    """Record a bug of ours on one item; the raw bytes are kept when the level stored them, and
    either way the item is tried again by the next run over the same source."""
    raw = unpack_blob_row(prepared.raw_blob) if prepared.raw_blob else b""
    raw = raw or f"capture failed for {prepared.message_key}".encode()
    quarantined = quarantine(
        raw, prepared.folder, prepared.provider_id, "internal_error", repr(exc)[:2000]
    )
    quarantined.message_key = prepared.message_key or quarantined.message_key
    return quarantined
