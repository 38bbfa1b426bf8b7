"""Byte-level MIME structure for the parser: header blocks, the part tree and payload decoding.

The stdlib parsers copy every part into strings line by line, cannot stop at a part or depth
limit, and build the whole tree even when only headers are needed. Real mailboxes hold messages
with thousands of parts and gigabyte attachments, so this module works on offsets into the
original bytes: it finds header blocks and boundaries with `bytes.find`, decodes a payload only
when asked, and streams base64/quoted-printable through hashing in chunks.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pybase64

from server.mail_ingest.mime_charset import decode_header_bytes, decode_rfc2047, parse_params

MAX_PARTS = 1000
MAX_DEPTH = 20
MAX_HEADER_BYTES = 64 * 1024  # decoded per single-valued header (Subject, Content-Type...)
_CHUNK = 1 << 20  # streaming unit for decoding big payloads
_MAX_FALSE_BOUNDARIES = 10_000  # "--boundary" hits not on a delimiter line before giving up

# One header field including its folded continuation lines. Names are printable ASCII without
# ':'; whitespace before the colon ("Subject : x") is tolerated as Outlook-era mailers send it.
_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)(?:\n|$)")
# Where a field ends: a line break not followed by a continuation line's whitespace.
_FIELD_BREAK = re.compile(rb"\n(?![ \t])")
_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*")
_DELIMITER_TAIL = re.compile(rb"(--)?[ \t]*\r?(?:\n|$)")
_CONTENT_TYPE = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")
_NON_BASE64 = bytes(b for b in range(256) if not (chr(b).isalnum() and b < 128) and b not in b"+/")
_WHITESPACE_AND_PAD = b" \t\r\n="


@dataclass(slots=True)
class HeaderBlock:
    """Header fields (lower-case name -> raw values in order) and where the body starts."""

    fields: dict[str, list[bytes]]
    body_start: int
    count: int = 0


def parse_header_block(
    buf: bytes, start: int, end: int, defects: list[str], *, top: bool = False
) -> HeaderBlock:
    """Read header fields from buf[start:end] up to the blank line.

    A line that is neither a field nor a continuation ends the headers there (the stdlib does
    the same): mailers that forget the blank line put the body straight after the headers.
    At the top of a message (`top`), mbox "From " envelope lines and a stray leading
    continuation line are skipped; inside a MIME part such a line is already body text.
    """
    block = _well_formed_block(buf, start, end)
    if block is None:
        block = _header_lines(buf, start, end, defects, top=top)
    return block


# Lower-case names of the header fields seen, by their raw bytes: a few hundred names cover a
# mailbox, and every message repeats them. Bounded, since names come from the mail.
_NAMES: dict[bytes, str] = {}
_MAX_NAMES = 4096


def _well_formed_block(buf: bytes, start: int, end: int) -> HeaderBlock | None:
    """The usual header block (every line a field or its continuation, then a blank line) read
    in one split; None when it is anything else, for `_header_lines` to read line by line.

    A received message carries ~8 KB of trace headers (Received, ARC-*, DKIM-Signature,
    X-MS-Exchange-*...): matching them field by field was a tenth of a parse worker's time.
    """
    blank = buf.find(b"\n\n", start, end)
    crlf_blank = buf.find(b"\n\r\n", start, end if blank < 0 else blank)
    stop = crlf_blank if crlf_blank >= 0 else blank
    if stop <= start or buf[start] in b" \t":
        return None
    fields: dict[str, list[bytes]] = {}
    count = 0
    for line in _FIELD_BREAK.split(buf[start:stop]):
        raw_name, colon, value = line.partition(b":")
        key = _NAMES.get(raw_name)
        if key is None:
            name = _FIELD_NAME.fullmatch(raw_name) if colon else None
            if name is None:
                return None
            key = name.group(1).lower().decode("ascii")
            if len(_NAMES) < _MAX_NAMES:
                _NAMES[raw_name] = key
        values = fields.get(key)
        if values is None:
            fields[key] = [value]
        else:
            values.append(value)
        count += 1
    return HeaderBlock(fields, stop + (3 if stop == crlf_blank else 2), count)


def _header_lines(
    buf: bytes, start: int, end: int, defects: list[str], *, top: bool
) -> HeaderBlock:
    """`parse_header_block` field by field, for the blocks `_well_formed_block` does not take."""
    fields: dict[str, list[bytes]] = {}
    pos = start
    count = 0
    first = True
    while pos < end:
        match = _FIELD.match(buf, pos, end)
        if match is not None:
            fields.setdefault(match.group(1).lower().decode("ascii"), []).append(match.group(2))
            count += 1
            pos = match.end()
            first = False
            continue
        if buf.startswith(b"\n", pos):
            return HeaderBlock(fields, pos + 1, count)
        if buf.startswith(b"\r\n", pos):
            return HeaderBlock(fields, pos + 2, count)
        newline = buf.find(b"\n", pos, end)
        line_end = end if newline < 0 else newline + 1
        if top and first and buf[pos : pos + 1] in (b" ", b"\t"):
            defects.append("first header line is a continuation line; skipped")
        elif top and (buf.startswith(b"From ", pos) or buf.startswith(b">From ", pos)):
            pass  # mbox envelope line, at the top or misplaced among headers
        else:
            if count:
                defects.append("no blank line between headers and body")
            return HeaderBlock(fields, pos, count)
        pos = line_end
    return HeaderBlock(fields, end, count)


def unfold(value: bytes) -> bytes:
    """Unfold a raw header value; continuation whitespace becomes one space (Outlook folds with a tab)."""
    if b"\n" not in value:
        return value.strip()
    return b" ".join(line.strip() for line in value.split(b"\n") if line.strip())


def header_text(
    fields: dict[str, list[bytes]],
    name: str,
    defects: list[str],
    hint: str | None = None,
    *,
    rfc2047: bool = True,
    limit: int = MAX_HEADER_BYTES,
) -> str | None:
    """The first `name` field as unfolded text (RFC 2047 decoded unless told otherwise).

    Only the first `limit` raw bytes are decoded: garbled multi-megabyte headers exist.
    """
    values = fields.get(name)
    if not values:
        return None
    raw = values[0]
    if len(raw) > limit:
        raw = raw[:limit]
        defects.append(f"{name} header longer than {limit // 1024} KB, cut")
    text = decode_header_bytes(unfold(raw), hint, defects, name)
    if rfc2047:
        text = decode_rfc2047(text, defects, name)
    return text.replace("\x00", "")


@dataclass(slots=True)
class Part:
    """One MIME entity, as offsets into the message bytes."""

    content_type: str
    params: dict[str, str]
    disposition: str
    disposition_params: dict[str, str]
    transfer_encoding: str
    content_id: str
    body_start: int
    body_end: int
    depth: int
    children: list[Part] | None = None  # None for leaves
    fields: dict[str, list[bytes]] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        name = self.disposition_params.get("filename") or self.params.get("name")
        if not name:
            return ""  # most parts: asked for every part, several times
        # Windows mailers send full paths ("C:\\Users\\x\\Report.pdf"); keep the last component.
        name = name.replace("\\", "/").rsplit("/", 1)[-1]
        return "".join(ch for ch in name if ch >= " " and ch != "\x7f").strip()[:255]

    @property
    def charset(self) -> str | None:
        return self.params.get("charset") or None


def make_part(
    buf: bytes,
    start: int,
    end: int,
    depth: int,
    defects: list[str],
    default_type: str = "text/plain",
    block: HeaderBlock | None = None,
) -> Part:
    """Read a part's headers and describe it; the body stays as offsets."""
    if block is None:
        block = parse_header_block(buf, start, end, defects)
    fields = block.fields
    content_type = default_type
    params: dict[str, str] = {}
    # Parameters are split before RFC 2047 decoding: a decoded filename may contain ';' or '"'.
    raw_type = header_text(fields, "content-type", defects, rfc2047=False)
    if raw_type is not None:
        main, params = parse_params(raw_type, defects, "content-type")
        if _CONTENT_TYPE.match(main):
            content_type = main
        elif main in ("text", ""):
            content_type = "text/plain"  # "Content-Type: text" exists in the wild
        else:
            defects.append(f"invalid content type {main[:60]!r}, read as {default_type}")
    disposition = ""
    disposition_params: dict[str, str] = {}
    raw_disposition = header_text(fields, "content-disposition", defects, rfc2047=False)
    if raw_disposition is not None:
        disposition, disposition_params = parse_params(raw_disposition, defects, "disposition")
    encoding = header_text(fields, "content-transfer-encoding", defects, rfc2047=False) or ""
    encoding = encoding.strip().lower()
    content_id = (header_text(fields, "content-id", defects) or "").strip().strip("<>")
    return Part(
        content_type=content_type,
        params=params,
        disposition=disposition,
        disposition_params=disposition_params,
        transfer_encoding=encoding,
        content_id=content_id,
        body_start=block.body_start,
        body_end=max(end, block.body_start),
        depth=depth,
        fields=fields,
    )


def _split_multipart(
    buf: bytes, start: int, end: int, boundary: str, defects: list[str]
) -> list[tuple[int, int]] | None:
    """Body ranges between "--boundary" delimiter lines; None when the boundary never occurs."""
    try:
        delimiter = b"--" + boundary.encode("utf-8")
    except UnicodeError:
        return None
    ranges: list[tuple[int, int]] = []
    pos = start
    current: int | None = None
    false_hits = 0
    while True:
        hit = buf.find(delimiter, pos, end)
        if hit < 0:
            break
        tail = _DELIMITER_TAIL.match(buf, hit + len(delimiter), end)
        # A delimiter starts a line and is followed only by "--" and/or whitespace; anything
        # else is a longer boundary of a nested part or text that happens to contain it.
        if (hit != start and buf[hit - 1] != 0x0A) or tail is None:
            false_hits += 1
            if false_hits > _MAX_FALSE_BOUNDARIES:
                defects.append("too many near-boundary lines; stopped splitting")
                break
            pos = hit + 1
            continue
        if current is not None:
            part_end = hit - 1 if hit > start else hit
            if part_end > current and buf[part_end - 1] == 0x0D:
                part_end -= 1
            ranges.append((current, max(part_end, current)))
            if len(ranges) > MAX_PARTS:
                return ranges
        if tail.group(1):
            return ranges
        current = tail.end()
        pos = current
    if current is None:
        return None
    defects.append("multipart without closing boundary")
    ranges.append((current, end))
    return ranges


@dataclass(slots=True)
class Tree:
    """The part tree of one message plus the walk's own defects."""

    root: Part
    part_count: int = 1
    defects: list[str] = field(default_factory=list)


def walk(buf: bytes, root: Part, defects: list[str]) -> Tree:
    """Expand multiparts below `root` within the part and depth limits (message/rfc822 stays a leaf)."""
    tree = Tree(root)
    stack = [root]
    stopped = False
    while stack and not stopped:
        part = stack.pop()
        if not part.content_type.startswith("multipart/"):
            continue
        boundary = part.params.get("boundary", "")
        if part.depth >= MAX_DEPTH:
            defects.append(f"MIME nesting deeper than {MAX_DEPTH} levels; inner parts skipped")
            part.children = []
            continue
        ranges = None
        if boundary:
            ranges = _split_multipart(buf, part.body_start, part.body_end, boundary, defects)
            if ranges is None and boundary.strip() != boundary:
                ranges = _split_multipart(
                    buf, part.body_start, part.body_end, boundary.strip(), defects
                )
        if ranges is None:
            # Without a usable boundary the body is best read as text: that is what mail
            # clients show for these broken messages.
            defects.append("multipart without a usable boundary, read as text")
            part.content_type = "text/plain"
            continue
        default = "message/rfc822" if part.content_type == "multipart/digest" else "text/plain"
        part.children = []
        for start, end in ranges:
            if tree.part_count >= MAX_PARTS:
                defects.append(f"too many MIME parts, stopped at {MAX_PARTS}")
                stopped = True
                break
            child = make_part(buf, start, end, part.depth + 1, defects, default)
            tree.part_count += 1
            part.children.append(child)
            stack.append(child)
    for part in stack:
        if part.content_type.startswith("multipart/") and part.children is None:
            part.children = []  # cut off by the part limit: not a leaf to list as attachment
    return tree


def leaves(part: Part) -> Iterator[Part]:
    """All leaf parts in document order."""
    stack = [part]
    while stack:
        current = stack.pop()
        if current.children is None:
            yield current
        else:
            stack.extend(reversed(current.children))


@dataclass(slots=True)
class Payload:
    """A decoded payload's size and SHA-256, with the bytes when they were kept."""

    size: int
    sha256: str
    content: bytes | None


def _base64_chunks(buf: bytes, start: int, end: int, defects: list[str]) -> Iterator[bytes]:
    if end - start <= _CHUNK:
        whole = _clean_base64(buf, start, end)
        if whole is not None:
            yield whole
            return
    yield from _base64_repaired(buf, start, end, defects)


def _clean_base64(buf: bytes, start: int, end: int) -> bytes | None:
    """The decoded body when it is clean base64, in one pass; None sends it the careful way.

    Clean: the alphabet in lines, padding only at the end. Counting proves it without the
    careful path's copies (two thirds of a worker's base64 time, and nearly every body is
    clean): the decoded length says how many alphabet characters were decoded, and the rest
    must be exactly the line breaks and the final padding. Junk, spaces, or data after a
    padding leave more bytes than that, and a wrong amount of padding is refused too: the
    careful path repairs it and says so.

    The decoder is `pybase64` (SIMD): it skips the line breaks seven times faster than
    `binascii.a2b_base64`, which was a tenth of a parse worker's time. The two differ only on
    what this check refuses (anything after a padding, a misplaced one).
    """
    try:
        data = pybase64.b64decode(memoryview(buf)[start:end])
    except (binascii.Error, ValueError):
        return None  # truncated or missing padding: repaired the careful way
    whole, rest = divmod(len(data), 3)
    other = end - start - (4 * whole + (rest + 1 if rest else 0))
    if other == 0:
        return data if rest == 0 else None
    last = buf[max(start, end - 64) : end].rstrip(b"\r\n")
    padding = len(last) - len(last.rstrip(b"="))
    if padding != (3 - rest if rest else 0):
        return None
    expected = padding + buf.count(b"\n", start, end)
    if other == expected or other == expected + buf.count(b"\r", start, end):
        return data
    return None


def _base64_repaired(buf: bytes, start: int, end: int, defects: list[str]) -> Iterator[bytes]:
    # Decode in chunks so a gigabyte attachment never exists twice in memory. Non-alphabet
    # bytes are dropped (mailers and gateways insert junk) and missing padding is repaired.
    carry = b""
    junk = False
    pos = start
    while pos < end:
        chunk = buf[pos : min(end, pos + _CHUNK)]
        pos += _CHUNK
        stripped = chunk.translate(None, _WHITESPACE_AND_PAD)
        clean = stripped.translate(None, _NON_BASE64)
        junk = junk or len(clean) != len(stripped)
        data = carry + clean
        usable = len(data) - len(data) % 4
        carry = data[usable:]
        if usable:
            yield binascii.a2b_base64(data[:usable])
    if junk:
        defects.append("bad base64: invalid characters skipped")
    if len(carry) == 1:
        defects.append("bad base64: truncated data")
    elif carry:
        yield binascii.a2b_base64(carry + b"=" * (4 - len(carry)))


def _qp_chunks(buf: bytes, start: int, end: int) -> Iterator[bytes]:
    pos = start
    while pos < end:
        stop = min(end, pos + _CHUNK)
        if stop < end:
            newline = buf.rfind(b"\n", pos, stop)
            stop = newline + 1 if newline > pos else stop
        yield binascii.a2b_qp(buf[pos:stop])
        pos = stop


def _uu_chunks(buf: bytes, start: int, end: int, defects: list[str]) -> Iterator[bytes]:
    inside = False
    for line in buf[start:end].splitlines():
        stripped = line.strip()
        if not inside:
            inside = line.startswith(b"begin ")
        elif stripped == b"end":
            return
        elif stripped and stripped != b"`":
            try:
                yield binascii.a2b_uu(line)
            except binascii.Error:
                defects.append("bad uuencoded line skipped")


def payload_chunks(buf: bytes, part: Part, defects: list[str]) -> Iterator[bytes]:
    """The part's body with its Content-Transfer-Encoding undone, in chunks."""
    start, end = part.body_start, part.body_end
    encoding = part.transfer_encoding
    if encoding == "base64":
        yield from _base64_chunks(buf, start, end, defects)
    elif encoding == "quoted-printable":
        yield from _qp_chunks(buf, start, end)
    elif encoding in ("x-uuencode", "uuencode", "x-uue"):
        yield from _uu_chunks(buf, start, end, defects)
    else:
        if encoding not in ("", "7bit", "8bit", "binary", "7-bit", "8-bit"):
            defects.append(f"unknown transfer encoding {encoding[:40]!r}, read as is")
        for pos in range(start, end, _CHUNK):
            yield buf[pos : min(end, pos + _CHUNK)]


def decode_payload(buf: bytes, part: Part, defects: list[str], limit: int | None = None) -> bytes:
    """The whole decoded body (text parts, embedded messages), optionally cut at `limit` bytes."""
    out = bytearray()
    for chunk in payload_chunks(buf, part, defects):
        out += chunk
        if limit is not None and len(out) >= limit:
            defects.append(f"part larger than {limit} bytes, cut")
            del out[limit:]
            break
    return bytes(out)


def digest_payload(buf: bytes, part: Part, defects: list[str], keep_up_to: int | None) -> Payload:
    """Size and SHA-256 of the decoded payload; the bytes too when `keep_up_to` allows.

    `keep_up_to` is the largest size to keep (-1 keeps nothing, None keeps everything).
    """
    encoding = part.transfer_encoding
    if encoding in ("", "7bit", "8bit", "binary"):
        # Plain payloads are hashed straight from the message bytes without a copy.
        view = memoryview(buf)[part.body_start : part.body_end]
        size = len(view)
        keep = keep_up_to is None or size <= keep_up_to
        return Payload(size, hashlib.sha256(view).hexdigest(), view.tobytes() if keep else None)
    digest = hashlib.sha256()
    kept: list[bytes] | None = [] if keep_up_to is None or keep_up_to >= 0 else None
    size = 0
    for chunk in payload_chunks(buf, part, defects):
        digest.update(chunk)
        size += len(chunk)
        if kept is not None:
            if keep_up_to is not None and size > keep_up_to:
                kept = None
            else:
                kept.append(chunk)
    return Payload(size, digest.hexdigest(), b"".join(kept) if kept is not None else None)
