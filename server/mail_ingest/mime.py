"""RFC 5322/MIME bytes -> `MailItem`, fast enough for bulk capture and tolerant of real mail.

File import, IMAP and the drop address all hand the capture pipeline raw message bytes; this
module is the one place that turns them into a provider-neutral `MailItem`. Two things shape it:

* Speed: capture aims at 800+ messages/s/core, and the stdlib's `email.policy.default` manages
  about 1,000/s for headers alone. So headers are read from the bytes directly and only the ones
  a capture level needs are decoded; the MIME tree is walked only from level "subject" on, and
  bodies are decoded only at "full" (see `mime_tree`, `mime_fields`, `mime_charset`).
* Robustness: mailboxes hold decades of broken mail. Anything that is recognisably an email
  parses as far as possible, with what was wrong listed in `MailItem.defects`; only bytes that
  are not an email at all raise `BadItem`, and no other exception ever escapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from server.mail_ingest.errors import BadItem
from server.mail_ingest.items import KEPT_HEADERS, AttachmentInfo, MailItem
from server.mail_ingest.mime_charset import decode_text
from server.mail_ingest.mime_fields import (
    parse_date,
    parse_id_list,
    parse_message_id,
    parse_participants,
)
from server.mail_ingest.mime_text import html_to_text, inline_forward_headers, reply_snippet, unflow
from server.mail_ingest.mime_tree import (
    HeaderBlock,
    Part,
    decode_payload,
    digest_payload,
    header_text,
    leaves,
    make_part,
    parse_header_block,
    walk,
)

__all__ = [
    "attached_messages",
    "calendar_parts",
    "inline_forward_headers",
    "parse_message",
    "parse_message_and_calendar",
]

DEFAULT_ATTACHMENT_CAP = 25 * 1024 * 1024
MAX_HEADER_VALUE = 2000
MAX_TEXT_BYTES = 2 * 1024 * 1024  # one plain-text body part; a CRM has no use for more
MAX_HTML_BYTES = 512 * 1024  # HTML to text runs at ~5 MB/s: newsletters can be megabytes
MAX_DEFECTS = 50

# Headers that make a block of "Name: value" lines an email (or a MIME entity) at all.
_EMAIL_HEADERS = frozenset(
    {
        "from", "sender", "reply-to", "to", "cc", "bcc", "date", "message-id", "subject",
        "mime-version", "content-type", "received", "return-path", "in-reply-to", "references",
        "delivered-to", "resent-from", "resent-to", "resent-date", "resent-message-id",
    }
)  # fmt: skip
_CHARSET_PARAM = re.compile(rb"""charset\s*=\s*["']?([A-Za-z0-9._:+-]{1,40})""", re.I)
_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9._:-]{1,40})""", re.I
)
_MESSAGE_TYPES = ("message/rfc822", "message/global")
_TNEF_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef", "application/x-tnef")
_CALENDAR_TYPES = ("text/calendar", "application/ics", "text/x-vcalendar")
_UNSAFE_FILENAME = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')
_EXTENSIONS = {
    "text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics", "application/pdf": ".pdf",
    "image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "message/rfc822": ".eml",
    "message/delivery-status": ".txt", "text/rfc822-headers": ".txt",
    "application/ms-tnef": ".dat",
}  # fmt: skip


def _start(raw: bytes, defects: list[str]) -> tuple[bytes, int]:
    """The bytes to parse and where the headers begin (after a BOM and leading blank lines)."""
    buf = raw
    head = raw[:8192]
    if b"\n" not in head and b"\r" in head:
        # Classic Mac OS line endings (bare CR): nothing else would find a single line.
        buf = raw.replace(b"\r", b"\n")
        defects.append("bare CR line endings")
    start = 3 if buf.startswith(b"\xef\xbb\xbf") else 0  # .eml files saved with a UTF-8 BOM
    while start < len(buf) and buf[start] in b" \t\r\n":
        start += 1  # exporters that prepend blank lines
    return buf, start


def _read_headers(raw: bytes, defects: list[str]) -> tuple[bytes, HeaderBlock, int]:
    """Parse the top header block, raising BadItem when the bytes are not an email at all."""
    if not raw.strip():
        raise BadItem("empty", "the message is empty (no bytes or only whitespace)")
    if raw.startswith(b"\xd0\xcf\x11\xe0"):
        raise BadItem("not_an_email", "an Outlook .msg (OLE) file, not RFC 5322 mail")
    buf, start = _start(raw, defects)
    block = parse_header_block(buf, start, len(buf), defects, top=True)
    if not block.fields:
        raise BadItem("not_an_email", "no header lines at the start of the data")
    if not block.fields.keys() & _EMAIL_HEADERS:
        names = ", ".join(sorted(block.fields)[:5])
        raise BadItem("not_an_email", f"no email headers (From/To/Date/Message-ID...); saw {names}")
    return buf, block, start


def _charset_hint(fields: dict[str, list[bytes]]) -> str | None:
    """The top-level body charset: the best guess for undeclared 8-bit bytes in headers."""
    for value in fields.get("content-type", ())[:1]:
        match = _CHARSET_PARAM.search(value)
        if match is not None:
            return match.group(1).decode("ascii")
    return None


def _fill_headers(item: MailItem, fields: dict[str, list[bytes]], want_subject: bool) -> None:
    defects = item.defects
    hint = _charset_hint(fields)
    message_id = header_text(fields, "message-id", defects, rfc2047=False)
    item.message_id = parse_message_id(message_id) if message_id is not None else None
    if item.message_id is None:
        defects.append("missing Message-ID header" if message_id is None else "empty Message-ID")
    for name, target in (("in-reply-to", item.in_reply_to), ("references", item.references)):
        value = header_text(fields, name, defects, rfc2047=False)
        if value:
            target.extend(parse_id_list(value))
    date = header_text(fields, "date", defects, rfc2047=False)
    if date is not None:
        item.date = parse_date(date, defects)
    else:
        received = header_text(fields, "received", defects, rfc2047=False)
        if received and ";" in received:
            # Drafts and some gateways omit Date; the newest Received stamp is the delivery time.
            item.date = parse_date(received.rpartition(";")[2], defects, "Received")
        defects.append("missing Date header" + (", used Received" if item.date else ""))
    item.participants = parse_participants(fields, hint, defects)
    for name in fields.keys() & KEPT_HEADERS:
        value = header_text(fields, name, defects, hint)
        if value is not None:
            item.headers[name] = value.strip()[:MAX_HEADER_VALUE]
    if want_subject:
        item.subject = (header_text(fields, "subject", defects, hint) or "").strip()


def _is_attachment_like(part: Part) -> bool:
    return part.disposition == "attachment" or bool(part.filename)


def _is_body(part: Part) -> bool:
    return part.content_type in ("text/plain", "text/html") and not _is_attachment_like(part)


def _is_calendar(part: Part) -> bool:
    return part.content_type in _CALENDAR_TYPES or part.filename.lower().endswith((".ics", ".vcs"))


def _has_text(buf: bytes, part: Part) -> bool:
    # Some mailers send an empty text/plain alternative next to the real HTML body.
    size = part.body_end - part.body_start
    return size > 4096 or bool(buf[part.body_start : part.body_end].strip())


def _preferred(buf: bytes, part: Part) -> int:
    """How good an alternative is as the body: plain text 2, HTML 1, anything else 0."""
    if part.children is None:
        if _is_body(part) and _has_text(buf, part):
            return 2 if part.content_type == "text/plain" else 1
        return 0
    return max((_preferred(buf, child) for child in part.children), default=0)


def _classify(buf: bytes, root: Part) -> tuple[list[Part], list[Part]]:
    """(body parts in order, attachment parts in order) for the part tree under `root`.

    In multipart/alternative only the chosen rendition gives body text (plain text first);
    the others contribute only their real attachments. In multipart/related the root part is
    the body and the rest are its inline images. message/rfc822 parts stay leaves.
    """
    bodies: list[Part] = []
    attachments: list[Part] = []
    _visit(buf, root, True, bodies, attachments)
    return bodies, attachments


def _visit(
    buf: bytes, part: Part, body_allowed: bool, bodies: list[Part], attachments: list[Part]
) -> None:
    """`_classify`'s walk; a module function, not a closure: a closure that calls itself is a
    reference cycle, and it kept each message's bytes alive until a garbage collection."""
    children = part.children
    if children is None:
        if _is_body(part) or (_is_calendar(part) and not _is_attachment_like(part)):
            if body_allowed and _is_body(part):
                bodies.append(part)
        else:
            attachments.append(part)
        return
    chosen: Part | None = None
    if part.content_type == "multipart/alternative" and children:
        ranked = [_preferred(buf, child) for child in children]
        chosen = children[ranked.index(max(ranked))]
    elif part.content_type == "multipart/related" and children:
        start = part.params.get("start", "").strip("<> ")
        chosen = next((c for c in children if start and c.content_id == start), children[0])
    for child in children:
        _visit(
            buf, child, body_allowed and (chosen is None or child is chosen), bodies, attachments
        )


def _drop_partial_utf8(data: bytes) -> bytes:
    """Drop a UTF-8 sequence cut in half at the end, so a cut body does not look mis-declared."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return data
        if byte >= 0xC0:
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data[:-back] if back < needed else data
    return data


def _part_text(buf: bytes, part: Part, defects: list[str]) -> str:
    is_html = part.content_type == "text/html"
    limit = MAX_HTML_BYTES if is_html else MAX_TEXT_BYTES
    data = decode_payload(buf, part, defects, limit)
    if len(data) == limit:
        data = _drop_partial_utf8(data)
    charset = part.charset
    if is_html and charset is None:
        match = _META_CHARSET.search(data, 0, 4096)  # HTML declares its charset in a <meta>
        charset = match.group(1).decode("ascii") if match else None
    text = decode_text(data, charset, defects, part.content_type)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    if is_html:
        return html_to_text(text)
    if part.params.get("format", "").lower() == "flowed":
        text = unflow(text, part.params.get("delsp", "").lower() == "yes")
    return text.strip("\n")


def _inner_subject(buf: bytes, part: Part) -> str:
    """The Subject of an attached message (for its filename); its own defects are not ours."""
    scratch: list[str] = []
    if part.transfer_encoding in ("", "7bit", "8bit", "binary"):
        data, start, end = buf, part.body_start, part.body_end
    else:
        data = decode_payload(buf, part, scratch, 65536)
        start, end = 0, len(data)
    block = parse_header_block(data, start, end, scratch, top=True)
    return header_text(block.fields, "subject", scratch) or ""


def _attachment(
    buf: bytes,
    part: Part,
    index: int,
    keep_up_to: int | None,
    defects: list[str],
    *,
    in_raw: bool,
) -> AttachmentInfo:
    content_type = part.content_type
    filename = part.filename
    if content_type in _TNEF_TYPES or filename.lower() == "winmail.dat":
        # Outlook's rich-text wrapper; the real attachments hide inside it.
        content_type = "application/ms-tnef"
        filename = filename or "winmail.dat"
    elif not filename and content_type in _MESSAGE_TYPES:
        subject = " ".join(_UNSAFE_FILENAME.sub("_", _inner_subject(buf, part)).split())
        filename = (subject[:120] or "forwarded message") + ".eml"
    if not filename:
        filename = f"attachment-{index}{_EXTENSIONS.get(content_type, '')}"
    part_defects: list[str] = []
    payload = digest_payload(buf, part, part_defects, keep_up_to)
    defects.extend(f"{filename}: {defect}" for defect in part_defects)
    return AttachmentInfo(
        filename=filename,
        content_type=content_type,
        size=payload.size,
        sha256=payload.sha256,
        inline=part.disposition == "inline" or (not part.disposition and bool(part.content_id)),
        content=payload.content,
        raw_body=(part.body_start, part.body_end, part.transfer_encoding)
        if in_raw and payload.content is not None
        else None,
    )


def _fill_structure(
    item: MailItem,
    buf: bytes,
    block: HeaderBlock,
    start: int,
    want_body: bool,
    cap: int | None,
    *,
    want_attachments: bool = True,
) -> Part:
    """Body, snippet and attachments from the part tree, which is returned."""
    defects = item.defects
    root = make_part(buf, start, len(buf), 0, defects, block=block)
    walk(buf, root, defects)
    if not want_attachments:
        return root  # only the tree (for calendar parts): nothing decoded
    bodies, attachments = _classify(buf, root)
    if want_body:
        texts = [_part_text(buf, part, defects) for part in bodies]
        item.text = "\n\n".join(text for text in texts if text.strip())
        item.snippet = reply_snippet(item.text) if item.text else ""
    keep_up_to = cap if want_body else -1  # -1: hash and measure, keep nothing
    in_raw = buf is item.raw  # offsets into `buf` are offsets into the raw bytes
    for index, part in enumerate(attachments, 1):
        item.attachments.append(_attachment(buf, part, index, keep_up_to, defects, in_raw=in_raw))
    return root


def _stage(item: MailItem, what: str, exc: Exception) -> None:
    item.defects.append(f"internal error while reading {what}: {type(exc).__name__}: {exc}"[:300])


def parse_message(
    raw: object,
    *,
    want_subject: bool = True,
    want_body: bool = True,
    attachment_content_cap: int | None = DEFAULT_ATTACHMENT_CAP,
    provider_id: str = "",
    folder: str = "",
) -> MailItem:
    """Parse one RFC 5322 message.

    Capture levels: metadata (want_subject=False: addresses, date, ids, kept headers only),
    subject (want_body=False: plus subject and attachment metadata), full (plus body text,
    snippet and attachment content up to `attachment_content_cap` bytes; None = no cap).
    Raises `BadItem` only for bytes that are not an email, or for what is not bytes at all
    (`raw` is typed `object` so the compiled parser checks it here too); other problems go to
    `defects`.
    """
    item, _ = parse_message_and_calendar(
        raw,
        want_subject=want_subject,
        want_body=want_body,
        attachment_content_cap=attachment_content_cap,
        provider_id=provider_id,
        folder=folder,
    )
    return item


def parse_message_and_calendar(
    raw: object,
    *,
    want_subject: bool = True,
    want_body: bool = True,
    attachment_content_cap: int | None = DEFAULT_ATTACHMENT_CAP,
    provider_id: str = "",
    folder: str = "",
    read_content: Callable[[MailItem], bool] | None = None,
) -> tuple[MailItem, list[bytes] | None]:
    """`parse_message`, with what `calendar_parts` would return for the message, taken from
    the part tree the parse walked anyway; None when it walked none (metadata level, or a
    broken structure), so the caller looks the slow way. Searching every message's bytes for
    calendar headers on top of the parse was 6% of a parse worker's time.

    `read_content` is asked once the headers are read: when it says no, neither bodies nor
    attachments are read (the part tree is still walked, for the calendar parts).
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise BadItem("not_bytes", f"expected message bytes, got {type(raw).__name__}")
    raw = bytes(raw)  # the same object when it already is bytes
    defects: list[str] = []
    try:
        buf, block, start = _read_headers(raw, defects)
    except BadItem:
        raise
    except Exception as exc:  # a parser bug must quarantine the item, not stop the import
        raise BadItem("parser_error", f"could not read the headers: {exc!r}"[:300]) from exc
    item = MailItem(
        message_id=None,
        subject="",
        date=None,
        participants=[],
        provider_id=provider_id,
        folder=folder,
        size=len(raw),
        raw=raw,
        defects=defects,
    )
    try:
        _fill_headers(item, block.fields, want_subject)
    except Exception as exc:
        _stage(item, "the headers", exc)
    calendar = None
    if want_subject:
        content = read_content is None or read_content(item)
        try:
            root = _fill_structure(
                item,
                buf,
                block,
                start,
                want_body and content,
                attachment_content_cap,
                want_attachments=content,
            )
            calendar = _calendar_payloads(buf, root)
        except Exception as exc:
            _stage(item, "the MIME structure", exc)
    # One broken part can repeat the same note hundreds of times.
    item.defects = list(dict.fromkeys(item.defects))[:MAX_DEFECTS]
    return item, calendar


def _structure(raw: bytes) -> tuple[bytes, Part] | None:
    """The walked part tree of `raw`, or None when it is not an email."""
    scratch: list[str] = []
    try:
        buf, block, start = _read_headers(bytes(raw), scratch)
    except BadItem:
        return None
    root = make_part(buf, start, len(buf), 0, scratch, block=block)
    walk(buf, root, scratch)
    return buf, root


def calendar_parts(raw: bytes) -> list[bytes]:
    """Transfer-decoded text/calendar payloads (and .ics attachments), duplicates dropped.

    Outlook sends an invitation twice, as a text/calendar alternative and as invite.ics; both
    count, but identical bytes are returned once. Parts of attached messages are not included.
    """
    try:
        parsed = _structure(raw)
        if parsed is None:
            return []
        return _calendar_payloads(*parsed)
    except Exception:  # a hint for the calendar parser only: never raise
        return []


def _calendar_payloads(buf: bytes, root: Part) -> list[bytes]:
    found = [decode_payload(buf, part, []) for part in leaves(root) if _is_calendar(part)]
    return list(dict.fromkeys(found))


def attached_messages(raw: bytes) -> list[bytes]:
    """Raw bytes of attached messages (message/rfc822 parts and .eml attachments), in order."""
    try:
        parsed = _structure(raw)
        if parsed is None:
            return []
        buf, root = parsed
        return [
            decode_payload(buf, part, [])
            for part in leaves(root)
            if (part.content_type in _MESSAGE_TYPES or part.filename.lower().endswith(".eml"))
        ]
    except Exception:  # used for forwards to the drop address: no message is better than a crash
        return []
