"""Raw MIME stored without the attachments it carries, and rebuilt byte for byte on read.

An email's attachments are stored once each, decoded, by their own hash. Kept inside the raw
message as well, they were stored a second time, base64-encoded: more than half the bytes of a
full capture, written twice more through SQLite's WAL, hashed and compressed again. So a raw
message is stored as its skeleton (the message with the encoded bodies of those attachments cut
out) and a manifest saying where each body goes back and how it was encoded.

A body is cut out only when encoding its stored content again gives exactly the bytes it had
(base64 with the same line length, line ending and trailing whitespace, or a body sent
unencoded); anything else stays in the skeleton. The rebuilt message is checked against its
hash on every read, like any blob.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import pybase64

MIN_CUT = 2048  # smaller bodies stay in the skeleton: a manifest entry would not pay for itself
MAX_TAIL = 16  # whitespace after the last base64 line, kept verbatim
_LENGTH_BYTES = 4


@dataclass(frozen=True, slots=True)
class Cut:
    """One body taken out of the skeleton: where it goes back and how to encode it again."""

    at: int  # offset in the skeleton
    sha256: str  # the attachment's blob
    encoding: str  # "base64" or "identity"
    line: int = 0  # base64 characters per line
    eol: str = ""  # base64 line ending
    tail: str = ""  # whitespace after the last line


_CUT_FIELDS = tuple(f.name for f in fields(Cut))


@dataclass(frozen=True, slots=True)
class Span:
    """An attachment body inside a raw message, with the decoded content stored for it."""

    start: int
    end: int
    sha256: str
    content: bytes
    transfer_encoding: str


def encode(content: bytes, cut: Cut) -> bytes:
    """The body's bytes as they stood in the message."""
    if cut.encoding == "identity":
        return content
    encoded = pybase64.b64encode(content)
    step = cut.line
    lines = [encoded[i : i + step] for i in range(0, len(encoded), step)]
    return cut.eol.encode().join(lines) + cut.tail.encode()


def _cut_for(segment: bytes, span: Span, at: int) -> Cut | None:
    """How `segment` is rebuilt from the span's content, or None when it cannot be exactly."""
    if span.transfer_encoding in ("", "7bit", "8bit", "binary"):
        return Cut(at, span.sha256, "identity") if segment == span.content else None
    if span.transfer_encoding != "base64":
        return None
    newline = segment.find(b"\n")
    if newline < 0:
        eol, line = "\n", len(segment)  # one line: the line ending is never used
    else:
        eol = "\r\n" if newline > 0 and segment[newline - 1] == 0x0D else "\n"
        line = newline - len(eol) + 1
    if line <= 0 or line % 4:
        return None
    encoded = pybase64.b64encode(span.content)  # SIMD: 10x binascii's speed, the same bytes
    breaks = -(-len(encoded) // line) - 1
    separator = eol.encode()
    body = segment[: len(encoded) + breaks * len(separator)]
    tail = segment[len(body) :]
    if len(tail) > MAX_TAIL or tail.strip():
        return None
    # Same bytes as `encode` would write, checked with C-speed slicing rather than by building
    # the lines: a line ending at every `line` characters, and the characters between them.
    stride = line + len(separator)
    for offset, byte in enumerate(separator):
        if body[line + offset :: stride] != bytes([byte]) * breaks:
            return None
    if body.replace(separator, b"") != encoded:
        return None
    return Cut(at, span.sha256, "base64", line, eol, tail.decode("ascii"))


def split(raw: bytes, spans: Sequence[Span], *, min_cut: int = MIN_CUT) -> tuple[bytes, list[Cut]]:
    """The skeleton of `raw` and its cuts; spans that cannot be rebuilt exactly, or are shorter
    than `min_cut`, stay in it."""
    pieces: list[bytes] = []
    cuts: list[Cut] = []
    pos = 0
    length = 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start < pos or span.end > len(raw) or span.end - span.start < min_cut:
            continue
        piece = raw[pos : span.start]
        cut = _cut_for(raw[span.start : span.end], span, length + len(piece))
        if cut is None:
            continue
        pieces.append(piece)
        length += len(piece)
        cuts.append(cut)
        pos = span.end
    pieces.append(raw[pos:])
    return b"".join(pieces), cuts


def join(skeleton: bytes, cuts: Sequence[Cut], fetch: Callable[[str], bytes]) -> bytes:
    """The raw message again, each cut body encoded from its content (`fetch(sha256)`)."""
    out = bytearray()
    pos = 0
    for cut in cuts:
        out += skeleton[pos : cut.at]
        out += encode(fetch(cut.sha256), cut)
        pos = cut.at
    out += skeleton[pos:]
    return bytes(out)


def pack(skeleton: bytes, cuts: Sequence[Cut]) -> bytes:
    """Manifest and skeleton in one byte string (the blob's data before compression)."""
    # The fields by name, in order: `dataclasses.asdict` gives the same, copying each value
    # recursively, and was most of this function's time.
    entries = [{name: getattr(cut, name) for name in _CUT_FIELDS} for cut in cuts]
    manifest = json.dumps(entries, separators=(",", ":")).encode()
    return len(manifest).to_bytes(_LENGTH_BYTES, "big") + manifest + skeleton


def unpack(data: bytes) -> tuple[bytes, list[Cut]]:
    length = int.from_bytes(data[:_LENGTH_BYTES], "big")
    manifest = json.loads(data[_LENGTH_BYTES : _LENGTH_BYTES + length])
    return data[_LENGTH_BYTES + length :], [Cut(**entry) for entry in manifest]
