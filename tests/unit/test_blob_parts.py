"""A raw message stored without its attachments comes back byte for byte, or is kept whole."""

from __future__ import annotations

import base64
import functools
import hashlib
from email.message import EmailMessage

import pytest

from server.crm import blob_parts
from server.crm.blob_parts import Span
from server.crm.blob_rows import blob_row, raw_blob_row, unpack_blob_row
from server.mail_ingest.mime import parse_message

CONTENT = bytes(range(256)) * 40  # 10 KB that no line-length choice can make regular by chance


def lines(content: bytes, width: int, eol: bytes) -> bytes:
    encoded = base64.b64encode(content)
    return eol.join(encoded[i : i + width] for i in range(0, len(encoded), width))


def message(
    body: bytes, encoding: str = "base64", eol: bytes = b"\r\n", content: bytes = CONTENT
) -> tuple[bytes, Span]:
    head = eol.join(
        [
            b"From: clara@brightline-dental.co.uk",
            b"Content-Type: application/pdf; name=plan.pdf",
            b"Content-Transfer-Encoding: " + encoding.encode(),
            b"",
            b"",
        ]
    )
    raw = head + body + eol + b"-- end" + eol
    span = Span(len(head), len(head) + len(body), sha(content), content, encoding)
    return raw, span


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rebuilt(raw: bytes, spans: list[Span]) -> tuple[bytes, list[blob_parts.Cut]]:
    skeleton, cuts = blob_parts.split(raw, spans)
    contents = {s.sha256: s.content for s in spans}
    packed = blob_parts.pack(skeleton, cuts)
    skeleton_again, cuts_again = blob_parts.unpack(packed)
    assert (skeleton_again, cuts_again) == (skeleton, cuts)
    return blob_parts.join(skeleton, cuts, contents.__getitem__), cuts


@pytest.mark.parametrize(
    ("body", "eol"),
    [
        (lines(CONTENT, 76, b"\r\n"), b"\r\n"),  # what most mailers write
        (lines(CONTENT, 76, b"\n"), b"\n"),  # Maildir files from Unix tools
        (lines(CONTENT, 72, b"\n"), b"\n"),
        (lines(CONTENT, 64, b"\r\n"), b"\r\n"),
        (lines(CONTENT, 76, b"\r\n") + b"\r\n", b"\r\n"),  # a blank line before the boundary
        (lines(CONTENT, 76, b"\n") + b"\n\n", b"\n"),
        (base64.b64encode(CONTENT), b"\n"),  # one long line
        (lines(CONTENT[: 57 * 60], 76, b"\r\n"), b"\r\n"),  # the last line is full
    ],
    ids=["76-crlf", "76-lf", "72-lf", "64-crlf", "blank-after", "two-blanks", "one-line", "full"],
)
def test_base64_bodies_are_cut_out_and_rebuilt_exactly(body: bytes, eol: bytes) -> None:
    content = base64.b64decode(body)
    raw, span = message(body, eol=eol, content=content)
    again, cuts = rebuilt(raw, [span])
    assert again == raw
    assert len(cuts) == 1
    skeleton, _ = blob_parts.split(raw, [span])
    assert len(skeleton) == len(raw) - len(body)


def irregular_lines() -> bytes:
    regular = lines(CONTENT, 76, b"\r\n").split(b"\r\n")
    regular[3:5] = [regular[3] + regular[4][:4], regular[4][4:]]  # 80 then 72 characters
    return b"\r\n".join(regular)


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        (irregular_lines(), "base64"),
        (lines(CONTENT, 76, b"\r\n").replace(b"A", b"A ", 1), "base64"),  # a stray space
        (lines(CONTENT, 74, b"\r\n"), "base64"),  # not a whole number of quanta per line
        (lines(CONTENT, 76, b"\r\n") + b"\r\n--junk", "base64"),  # text after the last line
        (lines(CONTENT, 76, b"\r\n"), "quoted-printable"),  # only base64 and plain are rebuilt
        (lines(CONTENT, 76, b"\r\n")[:-4] + b"====", "base64"),  # content other than stored
    ],
    ids=["irregular", "stray-space", "74-wide", "trailing-text", "qp", "different"],
)
def test_bodies_that_would_not_come_back_exactly_stay_in_the_skeleton(
    body: bytes, encoding: str
) -> None:
    raw, span = message(body, encoding)
    again, cuts = rebuilt(raw, [span])
    assert cuts == []
    assert again == raw


def test_unencoded_bodies_are_cut_out_when_they_are_the_content() -> None:
    raw, span = message(CONTENT, "binary")
    again, cuts = rebuilt(raw, [span])
    assert again == raw and [c.encoding for c in cuts] == ["identity"]
    other = Span(span.start, span.end, sha(b"x" * len(CONTENT)), b"x" * len(CONTENT), "binary")
    assert rebuilt(raw, [other])[1] == []


def test_the_manifest_is_the_format_stored_blobs_hold() -> None:
    """Blobs written by earlier versions must still unpack: the manifest's text is fixed."""
    cut = blob_parts.Cut(12, "ab" * 32, "base64", 76, "\r\n", "\n")
    packed = blob_parts.pack(b"skeleton", [cut])
    manifest = (
        b'[{"at":12,"sha256":"' + b"ab" * 32 + b'","encoding":"base64","line":76,'
        b'"eol":"\\r\\n","tail":"\\n"}]'
    )
    assert packed == len(manifest).to_bytes(4, "big") + manifest + b"skeleton"
    assert blob_parts.unpack(packed) == (b"skeleton", [cut])


def test_small_and_overlapping_spans_are_left_alone() -> None:
    raw, span = message(lines(CONTENT, 76, b"\r\n"))
    small = Span(0, blob_parts.MIN_CUT - 1, sha(b""), b"", "base64")
    inside = Span(span.start + 4, span.end, span.sha256, span.content, "base64")
    again, cuts = rebuilt(raw, [inside, span, small])
    assert again == raw and [c.at for c in cuts] == [span.start]


def parsed_spans(raw: bytes) -> tuple[list[Span], dict[str, dict[str, object]]]:
    item = parse_message(raw)
    spans, rows = [], {}
    for attachment in item.attachments:
        assert attachment.raw_body is not None and attachment.content is not None
        start, end, encoding = attachment.raw_body
        spans.append(Span(start, end, attachment.sha256, attachment.content, encoding))
        rows[attachment.sha256] = blob_row(attachment.content, attachment.sha256)
    return spans, rows


@pytest.mark.parametrize("linesep", ["\r\n", "\n"])
def test_a_parsed_message_is_stored_in_parts_and_read_back_whole(linesep: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "clara@brightline-dental.co.uk", "anna@x.com", "Plans"
    msg.set_content("Both drawings attached.")
    msg.add_attachment(CONTENT, maintype="application", subtype="pdf", filename="a.pdf")
    msg.add_attachment(CONTENT[::-1], maintype="image", subtype="png", filename="b.png")
    msg.add_attachment(CONTENT, maintype="application", subtype="pdf", filename="copy.pdf")
    raw = msg.as_bytes(policy=msg.policy.clone(linesep=linesep))
    spans, rows = parsed_spans(raw)
    assert len(spans) == 3

    row = raw_blob_row(raw, spans, rows)
    assert str(row["compression"]).startswith("parts")
    assert row["sha256"] == sha(raw) and row["size"] == len(raw)
    assert [p["sha256"] for p in row["parts"]] == [sha(CONTENT), sha(CONTENT[::-1])]  # type: ignore[attr-defined, index]
    assert len(row["data"]) < len(raw) // 10  # type: ignore[arg-type]
    assert unpack_blob_row(row) == raw


def test_a_message_without_attachments_is_an_ordinary_blob() -> None:
    raw = b"From: a@b.c\r\nSubject: hi\r\n\r\nHello\r\n"
    row = raw_blob_row(raw, [], {})
    assert row == blob_row(raw)
    assert unpack_blob_row(row) == raw


def test_every_sample_message_reads_back_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    """The project's nasty-mail samples (tests/data/mail), with every attachment body cut out
    however small: whatever was cut out comes back."""
    from pathlib import Path

    from server.mail_ingest import prepare
    from server.mail_ingest.prepare import PrepareOptions, prepare_raw
    from server.mail_ingest.sources.files import FileWalk, RawMessage

    monkeypatch.setattr(prepare, "raw_blob_row", functools.partial(raw_blob_row, min_cut=1))
    options = PrepareOptions("full", frozenset(), frozenset({"anna@northwind-supplies.com"}))
    samples = Path(__file__).resolve().parent.parent / "data" / "mail"
    in_parts = 0
    for message in FileWalk([samples]).messages():
        assert isinstance(message, RawMessage)
        prepared = prepare_raw(message, options)
        if prepared.raw_blob is None:
            continue
        in_parts += str(prepared.raw_blob["compression"]).startswith("parts")
        assert unpack_blob_row(prepared.raw_blob) == message.raw, message.provider_id
    assert in_parts >= 3  # the samples with attachments
