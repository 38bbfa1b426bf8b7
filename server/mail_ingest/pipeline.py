"""capture(items) → database: batched, idempotent, with parsing spread over the machine's cores.

Sources hand over raw messages (or ready `MailItem`s); `prepare_*` turns each into a `Prepared`
(parsed at the depth the capture level needs, keyed, blobs compressed, calendar parts and .ics
files read into `CalendarItem`s) — pure work that runs in worker processes; the capture core
then writes each batch in one transaction. Re-running over
the same input captures nothing new, so a crash or Ctrl-C at any point is repaired by running
again. Bad input is quarantined with its reason; a bug of ours on one item is recorded for that
item (reason "internal_error") and the rest of the batch still lands.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from server.crm.blob_parts import Span
from server.crm.blobs import blob_row, raw_blob_row, unpack_blob_row
from server.crm.capture import CaptureCounts, Capturer, LinkInfo, Prepared, effective_level
from server.crm.rules import CapturePolicy
from server.crm.threads import message_key, normalise_message_id, thread_keys
from server.db import Database
from server.jobs import LeaseLost
from server.mail_ingest import parse_server
from server.mail_ingest.calendar import parse_calendar, recurrence_key
from server.mail_ingest.dsn import delivery_report
from server.mail_ingest.errors import BadItem
from server.mail_ingest.items import CalendarItem, MailItem
from server.mail_ingest.mime import calendar_parts, parse_message_and_calendar
from server.mail_ingest.sources.files import RawMessage, Unreadable
from server.models import MailboxLink, utcnow

log = logging.getLogger(__name__)

BATCH_SIZE = 400
# A batch is also committed once it holds this many bytes of packed blobs: a mailbox of large
# attachments would otherwise keep hundreds of megabytes in memory before a commit.
BATCH_BYTES = 8 * 1024 * 1024
CHUNK_SIZE = 32
# Messages handed to the parse processes and not yet written. More than a batch holds: the main
# process hands out no work while it writes a batch, and with only a few chunks in flight the
# parse processes ran dry and waited for it (half of a 5,000-message import's wall time).
WINDOW_MESSAGES = 512
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*<?([^\s>]+)>?", re.IGNORECASE | re.MULTILINE)
# Only messages with a MIME header naming one of these are searched for calendar parts. The
# headers are found by "ontent-" (Content-Type, Content-Disposition; never in base64), so a
# message is scanned once, not once per hint: walking every message's MIME tree twice, or
# searching it for each hint, would cost a good part of the import rate.
_HEADER_MARKS = (b"ontent-", b"ONTENT-")
_CALENDAR_HINTS = (b"calendar", b"/ics", b".ics", b".vcs")
_HEADER_WINDOW = 400  # a header with its folded continuation lines
MAX_CALENDAR_ITEMS = 500  # per message, all its calendar parts together


@dataclass(frozen=True)
class PrepareOptions:
    level: str
    internal_domains: frozenset[str]
    owner_addresses: frozenset[str]


def _quarantined(raw: bytes, folder: str, provider_id: str, reason: str, detail: str) -> Prepared:
    blob = blob_row(raw)
    header_end = raw.find(b"\n\n")
    found = _MESSAGE_ID.search(raw[: header_end if header_end > 0 else 65536])
    # Normalised as a parsed message's id is: a NUL, a control character or a thousand
    # characters in what a broken message calls its Message-ID must not break storing the
    # quarantine itself (PostgreSQL refuses NUL in text and overlong keys).
    normalised = normalise_message_id(found.group(1).decode("ascii", "replace")) if found else None
    key = f"mid:{normalised}" if normalised else f"raw:{blob['sha256']}"
    return Prepared(
        folder=folder,
        provider_id=provider_id,
        message_key=key,
        raw_blob=blob,
        quarantine_reason=reason,
        quarantine_detail=detail,
    )


def prepare_raw(message: RawMessage, options: PrepareOptions) -> Prepared:
    """Parse, key and pack one raw message (runs in a worker process)."""
    if message.too_large:
        return _quarantined(
            message.raw,
            message.folder,
            message.provider_id,
            "too_large",
            "message over 200 MB; its first megabyte is kept",
        )
    if message.kind == "calendar":
        return prepare_calendar_file(message)
    try:
        item, calendar = parse_message_and_calendar(
            message.raw,
            want_subject=options.level != "metadata",
            want_body=options.level == "full",
            provider_id=message.provider_id,
            folder=message.folder,
        )
    except BadItem as exc:
        return _quarantined(
            message.raw, message.folder, message.provider_id, exc.reason, exc.message
        )
    except Exception as exc:  # a bug of ours: keep the bytes, say so loudly
        log.exception("parser failed", extra={"provider_id": message.provider_id})
        return _quarantined(
            message.raw, message.folder, message.provider_id, "internal_error", repr(exc)[:2000]
        )
    item.calendar = carried_calendar(message.raw, item, calendar)
    return prepare_item(item, options)


def prepare_calendar_file(message: RawMessage) -> Prepared:
    """An .ics file: its events, or the quarantine when it is not iCalendar at all."""
    try:
        items = parse_calendar(message.raw, provider_id=message.provider_id, folder=message.folder)
    except BadItem as exc:
        return _quarantined(
            message.raw, message.folder, message.provider_id, exc.reason, exc.message
        )
    return Prepared(
        folder=message.folder,
        provider_id=message.provider_id,
        calendar=items,
        message_key=f"ics:{blob_row(message.raw)['sha256']}",
    )


def mentions_calendar(raw: bytes) -> bool:
    """Whether a MIME header of `raw` names a calendar part (text/calendar, application/ics, an
    .ics or .vcs file). False positives only cost a look at the MIME tree."""
    top = _top_headers(raw)
    if b"multipart/" not in top.lower():
        return any(hint in top.lower() for hint in _CALENDAR_HINTS)
    # Mailers write MIME headers one way; look for capitals only where the top ones have them.
    marks = [mark for mark in _HEADER_MARKS if mark == _HEADER_MARKS[0] or mark in top]
    for mark in marks:
        at = raw.find(mark)
        while at >= 0:
            header = raw[at : at + _HEADER_WINDOW].lower()
            if any(hint in header for hint in _CALENDAR_HINTS):
                return True
            at = raw.find(mark, at + len(mark))
    return False


def _top_headers(raw: bytes) -> bytes:
    first = raw.find(b"\n", 0, 65536)
    blank = b"\r\n\r\n" if first > 0 and raw[first - 1] == 13 else b"\n\n"
    end = raw.find(blank, 0, 65536)
    return raw[:end] if end >= 0 else raw[:65536]


def carried_calendar(
    raw: bytes, item: MailItem, parts: list[bytes] | None = None
) -> list[CalendarItem]:
    """The meetings an email carries (invite, reply, cancellation...), identical copies once.

    `parts` are its calendar payloads when the parse found them already; without them the
    raw bytes are searched. Outlook sends an invite both as a text/calendar alternative and as
    invite.ics; a part that is not iCalendar is noted on the email, captured either way.
    """
    if parts is None:
        parts = calendar_parts(raw) if mentions_calendar(raw) else []
    found: dict[tuple[object, ...], CalendarItem] = {}
    for part in parts:
        try:
            events = parse_calendar(part, provider_id=item.provider_id, folder=item.folder)
        except BadItem as exc:
            item.defects.append(f"calendar part not read: {exc.message}"[:300])
            continue
        for event in events:
            key = (
                event.uid,
                recurrence_key(event),
                event.method,
                event.sequence,
                event.dtstamp,
                event.start,
                event.end,
                tuple(event.participants),
            )
            found.setdefault(key, event)
            if len(found) >= MAX_CALENDAR_ITEMS:
                item.defects.append(
                    f"more than {MAX_CALENDAR_ITEMS} calendar events: the rest ignored"
                )
                return list(found.values())
    return list(found.values())


def prepare_item(item: MailItem, options: PrepareOptions) -> Prepared:
    """Key and pack a parsed item (from `prepare_raw`, or straight from an API-based source)."""
    full = options.level == "full"
    attachment_blobs = [
        blob_row(a.content, a.sha256) if full and a.content is not None else None
        for a in item.attachments
    ]
    prepared = Prepared(
        folder=item.folder,
        provider_id=item.provider_id,
        item=item,
        keys=thread_keys(
            item,
            internal_domains=options.internal_domains,
            owner_addresses=options.owner_addresses,
        ),
        message_key=message_key(item),
        raw_blob=_raw_blob(item, attachment_blobs) if full and item.raw else None,
        body_blob=blob_row(item.text.encode("utf-8")) if full and item.text else None,
        attachment_blobs=attachment_blobs,
    )
    prepared.calendar, item.calendar = item.calendar, []
    prepared.report = delivery_report(item)  # needs the raw bytes, dropped below
    if effective_level(item, "full") == "metadata":
        for event in prepared.calendar:
            event.private = True  # an invite in a private email is a private meeting
    # What crosses back from the worker process is only what capture needs.
    item.raw = None
    item.text = None
    item.attachments = [
        type(a)(a.filename, a.content_type, a.size, a.sha256, a.inline) for a in item.attachments
    ]
    return prepared


def _raw_blob(
    item: MailItem, attachment_blobs: list[dict[str, object] | None]
) -> dict[str, object]:
    """The raw message's row, without the bodies of the attachments stored on their own."""
    assert item.raw is not None
    spans = []
    rows: dict[str, dict[str, object]] = {}
    for attachment, row in zip(item.attachments, attachment_blobs, strict=True):
        if row is None or attachment.raw_body is None or attachment.content is None:
            continue
        start, end, encoding = attachment.raw_body
        spans.append(Span(start, end, attachment.sha256, attachment.content, encoding))
        rows[attachment.sha256] = row
    return raw_blob_row(item.raw, spans, rows)


def _prepare_chunk(chunk: list[RawMessage], options: PrepareOptions) -> list[Prepared]:
    return [prepare_loaded(m, options) for m in chunk]


def prepare_loaded(message: RawMessage, options: PrepareOptions) -> Prepared:
    """`prepare_raw` for a message that may still be only a path (read here, in the worker)."""
    loaded = message.loaded()
    if isinstance(loaded, Unreadable):
        return _quarantined(
            f"unreadable file {loaded.path}".encode(),
            message.folder,
            message.provider_id,
            "unreadable",
            loaded.reason,
        )
    return prepare_raw(loaded, options)


def _start_worker(parent_pid: int) -> None:
    """A parse worker puts what it inherited from the fork server (the parser's modules, imported
    once) out of the garbage collector's sight, and exits when the process that started it is
    gone (killed with SIGKILL, say) instead of lingering with its pool's fork server."""
    gc.freeze()  # collections then walk only what the worker made: ~3% of its CPU

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _pool(jobs: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=parse_server.context(),
        initializer=_start_worker,
        initargs=(os.getpid(),),
    )


def prepared_stream(
    messages: Iterable[RawMessage], options: PrepareOptions, *, jobs: int
) -> Iterator[Prepared]:
    """Prepare messages in order, on `jobs` worker processes, with a bounded window in flight."""
    if jobs <= 1:
        for message in messages:
            yield prepare_loaded(message, options)
        return
    in_flight = max(jobs * 2, WINDOW_MESSAGES // CHUNK_SIZE)
    with _pool(jobs) as pool:
        window: deque[Future[list[Prepared]]] = deque()
        chunk: list[RawMessage] = []
        try:
            for message in messages:
                chunk.append(message)
                if len(chunk) >= CHUNK_SIZE:
                    window.append(pool.submit(_prepare_chunk, chunk, options))
                    chunk = []
                    if len(window) >= in_flight:
                        yield from window.popleft().result()
            if chunk:
                window.append(pool.submit(_prepare_chunk, chunk, options))
            while window:
                yield from window.popleft().result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


class Preparer:
    """Prepares pages of messages on a pool of worker processes kept for a whole sync."""

    def __init__(self, options: PrepareOptions, *, jobs: int) -> None:
        self.options = options
        self.jobs = jobs
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Preparer:
        if self.jobs > 1:
            self._pool = _pool(self.jobs)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def prepare(self, messages: list[RawMessage]) -> list[Prepared]:
        return self.start(messages)()

    def start(self, messages: list[RawMessage]) -> Callable[[], list[Prepared]]:
        """Start preparing a page on the pool and return what waits for it: the caller writes
        the page before meanwhile. Without a pool (or for a few messages) the work is done
        when the result is asked for, in the caller's process."""
        if self._pool is None or len(messages) < CHUNK_SIZE:
            return lambda: [prepare_raw(m, self.options) for m in messages]
        size = max(CHUNK_SIZE // 2, -(-len(messages) // (self.jobs * 2)))
        futures = [
            self._pool.submit(_prepare_chunk, messages[i : i + size], self.options)
            for i in range(0, len(messages), size)
        ]
        return lambda: [p for future in futures for p in future.result()]


def default_jobs() -> int:
    return max(1, min(4, (os.cpu_count() or 1)))


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
    batch_size: int = BATCH_SIZE,
    on_progress: Callable[[CaptureCounts], None] | None = None,
) -> CaptureRun:
    """Capture prepared items for one link, committing batch by batch."""
    run = CaptureRun()
    capturer = Capturer(link, policy, since=since)
    batch: list[Prepared] = []
    weight = 0
    for item in prepared:
        batch.append(item)
        weight += item.weight
        if len(batch) >= batch_size or weight >= BATCH_BYTES:
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
    quarantined = _quarantined(
        raw, prepared.folder, prepared.provider_id, "internal_error", repr(exc)[:2000]
    )
    quarantined.message_key = prepared.message_key or quarantined.message_key
    return quarantined
