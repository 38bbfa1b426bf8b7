"""Raw messages and files → `Prepared` items: parsed at the depth the capture level needs, keyed,
blobs packed, calendar parts and .ics files read into `CalendarItem`s.

Pure work that runs in the parse worker processes. This module and what it imports stay free of
SQLAlchemy and the models, so the fork server the workers start from imports only the parser
(`server.mail_ingest.parse_server`): ready sooner, and smaller.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from server.crm.blob_parts import Span
from server.crm.blob_rows import blob_row, raw_blob_row
from server.crm.prepared import Prepared, effective_level
from server.crm.sure_skips import HeaderVerdict, header_verdict, sure_skip
from server.crm.threads import message_key, normalise_message_id, thread_keys
from server.mail_ingest.calendar import parse_calendar, recurrence_key
from server.mail_ingest.dsn import delivery_report
from server.mail_ingest.errors import BadItem
from server.mail_ingest.items import CalendarItem, MailItem
from server.mail_ingest.mime import calendar_parts, parse_message_and_calendar
from server.mail_ingest.sources.files import RawMessage, Unreadable

log = logging.getLogger(__name__)

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
    # rules capture will apply whose emails need not be read whole (`server.crm.sure_skips`)
    skips: frozenset[str] = frozenset()


def quarantine(raw: bytes, folder: str, provider_id: str, reason: str, detail: str) -> Prepared:
    """The item for bytes that go to quarantine, keyed by their Message-ID when one is found."""
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
        return quarantine(
            message.raw,
            message.folder,
            message.provider_id,
            "too_large",
            "message over 200 MB; its first megabyte is kept",
        )
    if message.kind == "calendar":
        return prepare_calendar_file(message)
    skipped_by: str | None = None
    verdict: HeaderVerdict | None = None

    def read_content(item: MailItem) -> bool:
        nonlocal skipped_by, verdict
        verdict = header_verdict(
            item, internal_domains=options.internal_domains, owner_addresses=options.owner_addresses
        )
        skipped_by = sure_skip(item, verdict, skips=options.skips)
        return skipped_by is None

    try:
        item, calendar = parse_message_and_calendar(
            message.raw,
            want_subject=options.level != "metadata",
            want_body=options.level == "full",
            provider_id=message.provider_id,
            folder=message.folder,
            read_content=read_content if options.skips else None,
        )
    except BadItem as exc:
        return quarantine(message.raw, message.folder, message.provider_id, exc.reason, exc.message)
    except Exception as exc:  # a bug of ours: keep the bytes, say so loudly
        log.exception("parser failed", extra={"provider_id": message.provider_id})
        return quarantine(
            message.raw, message.folder, message.provider_id, "internal_error", repr(exc)[:2000]
        )
    item.calendar = carried_calendar(message.raw, item, calendar)
    return prepare_item(item, options, skipped_by=skipped_by, verdict=verdict)


def prepare_calendar_file(message: RawMessage) -> Prepared:
    """An .ics file: its events, or the quarantine when it is not iCalendar at all."""
    try:
        items = parse_calendar(message.raw, provider_id=message.provider_id, folder=message.folder)
    except BadItem as exc:
        return quarantine(message.raw, message.folder, message.provider_id, exc.reason, exc.message)
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


def prepare_item(
    item: MailItem,
    options: PrepareOptions,
    *,
    skipped_by: str | None = None,
    verdict: HeaderVerdict | None = None,
) -> Prepared:
    """Key and pack a parsed item (from `prepare_raw`, or straight from an API-based source);
    nothing is packed for an item capture is sure to skip (`skipped_by`, a rule)."""
    full = options.level == "full" and skipped_by is None
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
        content_skipped_by=skipped_by,
        verdict=verdict,
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


def prepare_chunk(chunk: list[RawMessage], options: PrepareOptions) -> list[Prepared]:
    return [prepare_loaded(m, options) for m in chunk]


Failures = list[tuple[str, str]]  # (provider id, why the server would not send it)


class Fetchable(Protocol):
    """Messages a source named without fetching them (an IMAP `Pending`): fetched where they
    are parsed, so their bytes never cross a process boundary."""

    def __len__(self) -> int: ...

    def split(self, size: int) -> Sequence[Fetchable]: ...

    def fetch(self) -> tuple[list[RawMessage], Failures]: ...


def fetch_and_prepare(part: Fetchable, options: PrepareOptions) -> tuple[list[Prepared], Failures]:
    """Fetch and prepare a part of a page (runs in a worker process)."""
    messages, failures = part.fetch()
    return [prepare_raw(m, options) for m in messages], failures


def prepare_loaded(message: RawMessage, options: PrepareOptions) -> Prepared:
    """`prepare_raw` for a message that may still be only a path (read here, in the worker)."""
    loaded = message.loaded()
    if isinstance(loaded, Unreadable):
        return quarantine(
            f"unreadable file {loaded.path}".encode(),
            message.folder,
            message.provider_id,
            "unreadable",
            loaded.reason,
        )
    return prepare_raw(loaded, options)


# Added to a parse worker's niceness: the usual value for background work.
PARSE_WORKER_NICENESS = 10


def start_worker(parent_pid: int) -> None:
    """A parse worker yields the CPU to the process that writes (and to the API), puts what it
    inherited from the fork server (the parser's modules, imported once) out of the garbage
    collector's sight, and exits when the process that started it is gone (killed with SIGKILL,
    say) instead of lingering with its pool's fork server.

    Parsing is the work that can wait: the writer is the one process every message goes
    through, and with two parse workers on two cores it was waiting for a turn on a core.
    """
    os.nice(PARSE_WORKER_NICENESS)
    gc.freeze()  # collections then walk only what the worker made: ~3% of its CPU

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
