"""RFC 5322/MIME parsing: real-world breakage from tests/data/mail, capture levels, limits, fuzzing."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.mail_ingest.errors import BadItem
from server.mail_ingest.items import MailItem
from server.mail_ingest.mime import (
    attached_messages,
    calendar_parts,
    inline_forward_headers,
    parse_message,
)
from server.mail_ingest.mime_charset import parse_params
from server.mail_ingest.mime_text import strip_quoted
from server.mail_ingest.mime_tree import HeaderBlock, _header_lines, _well_formed_block

MAIL = Path(__file__).resolve().parent.parent / "data" / "mail"
CPYTHON = MAIL / "cpython"
# (want_subject, want_body) for the capture levels metadata, subject and full.
LEVELS = [(False, False), (True, False), (True, True)]


def load(name: str) -> bytes:
    return (MAIL / name).read_bytes()


def has_defect(item: MailItem, fragment: str) -> bool:
    return any(fragment in defect for defect in item.defects)


def simple(headers: str, body: str = "Body.\n") -> bytes:
    base = "From: a@example.com\nTo: b@example.com\nDate: Tue, 05 Mar 2024 10:00:00 +0000\n"
    return (base + headers + "\n" + body).encode("utf-8")


# --- Fixtures named after the problem they cover --------------------------------------------


@dataclass
class Expect:
    """What a fixture must parse to; None/empty fields (and message_id "unchecked") are skipped."""

    subject: str | None = None
    message_id: str | None = "unchecked"
    date: datetime | None = None
    participants: list[tuple[str, str, str]] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    text_contains: list[str] = field(default_factory=list)
    snippet: str | None = None
    snippet_excludes: list[str] = field(default_factory=list)
    attachments: list[tuple[str, str]] | None = None


FIXTURES: dict[str, tuple[str, Expect]] = {
    "missing_message_id_is_none_with_defect": (
        "missing_message_id.eml",
        Expect(
            subject="Order 4711 status",
            message_id=None,
            date=datetime(2024, 3, 5, 15, 20, tzinfo=UTC),
            defects=["missing Message-ID header"],
            snippet="Hi, when will order 4711 ship? Carol",
        ),
    ),
    "undeclared_8bit_latin1_headers_decode_as_windows_1252": (
        "undeclared_8bit_latin1_headers.eml",
        Expect(
            subject="Grüße aus Köln",
            participants=[
                ("from", "juergen.mueller@example.de", "Jürgen Müller"),
                ("to", "vertrieb@acme.example", "Vertrieb"),
            ],
            defects=["undeclared 8-bit characters in subject header"],
            text_contains=["Schöne Grüße aus Köln", "die Äpfel und das Öl"],
        ),
    ),
    "wrong_declared_charset_falls_back_to_detection": (
        "wrong_declared_charset.eml",
        Expect(
            defects=["declared 'utf-8' did not fit"],
            text_contains=["révisé pour l'été", "Très cordialement, à bientôt", "120 €"],
        ),
    ),
    "latin1_label_on_utf8_body_reads_utf8": (
        "latin1_declared_but_utf8_body.eml",
        Expect(
            defects=["but the bytes are utf-8"],
            text_contains=["Bonjour, voici le devis révisé pour l'été."],
        ),
    ),
    "rfc2047_broken_encoded_words_decode_as_far_as_possible": (
        "rfc2047_encoded_words_broken.eml",
        Expect(
            subject="Grüße aus Köln café and =?utf-8?B?!!!?= end",
            participants=[
                ("from", "jm@example.de", "Müller, Jürgen"),
                ("to", "yamada@example.jp", "山田太郎"),
                ("to", "cafe@example.fr", "Café Team"),
            ],
            defects=["broken encoded word in subject header", "'x-unknown' did not fit"],
        ),
    ),
    "html_only_body_gives_text_and_unquoted_snippet": (
        "html_only_body.eml",
        Expect(
            text_contains=["Hello Anna,", "café beans", "delivery is free."],
            snippet_excludes=["Please send me the price list", "wrote:", "<p>"],
        ),
    ),
    "nested_forward_is_an_eml_attachment_named_after_its_subject": (
        "nested_forward_rfc822.eml",
        Expect(
            subject="Fwd: Quarterly numbers",
            snippet="FYI, see the forwarded mail from Bob.",
            attachments=[("Quarterly numbers.eml", "message/rfc822")],
        ),
    ),
    "winmail_dat_is_a_tnef_attachment": (
        "winmail_dat_tnef.eml",
        Expect(
            snippet="Please find the contract draft attached.",
            attachments=[("winmail.dat", "application/ms-tnef")],
        ),
    ),
    "broken_date_header_with_gmt_offset_is_read_leniently": (
        "broken_date_header.eml",
        Expect(
            date=datetime(2024, 3, 11, 9, 30, tzinfo=UTC),
            defects=["broken Date header"],
        ),
    ),
    "outlook_inline_forward_snippet_stops_at_forwarded_block": (
        "outlook_inline_forward.eml",
        Expect(
            snippet="Please add this lead.",
            text_contains=["Hello Anna, could you send us an offer for 40 licences?"],
        ),
    ),
    "invite_body_is_the_plain_alternative_and_only_the_ics_file_is_an_attachment": (
        "invite_with_text_calendar.eml",
        Expect(
            snippet="Let's review the pricing together.",
            attachments=[("invite.ics", "application/ics")],
        ),
    ),
    "bad_base64_body_decodes_what_it_can": (
        "bad_base64_body.eml",
        Expect(
            defects=["bad base64"],
            snippet="Hello Anna, there is the report.",
            attachments=[("report.pdf", "application/pdf")],
        ),
    ),
    "reply_snippet_drops_quoted_history_and_signature": (
        "reply_with_quoted_history.eml",
        Expect(
            message_id="CAB+reply-1@mail.customer.example",
            date=datetime(2024, 3, 14, 20, 45, tzinfo=UTC),
            snippet=(
                "Hi Anna, thanks, the new price works for us. "
                "Please send the contract to our legal team this week."
            ),
            snippet_excludes=["90 EUR", "Best regards"],
        ),
    ),
    "idn_punycode_addresses_are_lower_case_unicode": (
        "idn_punycode_addresses.eml",
        Expect(
            participants=[
                ("from", "info@müller.example", "Jörg Bäcker"),
                ("reply_to", "joerg@müller.example", "Jörg"),
                ("to", "kontakt@bücher.example", ""),
                ("to", "bestellung@bücher.example", ""),
                ("cc", "weird@example.com", ""),
                ("cc", "sales@acme.example", "Sales Team"),
            ],
            defects=["1 cc entries without a usable address skipped"],
        ),
    ),
}


@pytest.mark.parametrize(("fixture", "expect"), FIXTURES.values(), ids=FIXTURES.keys())
def test_fixture_parses_to_expected_item(fixture: str, expect: Expect) -> None:
    raw = load(fixture)
    item = parse_message(raw)

    assert item.size == len(raw)
    assert item.raw == raw
    if expect.subject is not None:
        assert item.subject == expect.subject
    if expect.message_id != "unchecked":
        assert item.message_id == expect.message_id
    if expect.date is not None:
        assert item.date == expect.date
    if expect.participants:
        assert [(p.role, p.address, p.name) for p in item.participants] == expect.participants
    for fragment in expect.defects:
        assert has_defect(item, fragment), (fragment, item.defects)
    for fragment in expect.text_contains:
        assert item.text is not None
        assert fragment in item.text
    if expect.snippet is not None:
        assert item.snippet == expect.snippet
    for fragment in expect.snippet_excludes:
        assert fragment not in item.snippet
    if expect.attachments is not None:
        assert [(a.filename, a.content_type) for a in item.attachments] == expect.attachments


def test_clean_message_has_no_defects_and_utc_date() -> None:
    item = parse_message(load("reply_with_quoted_history.eml"))

    assert item.defects == []
    assert item.date is not None
    assert item.date.tzinfo is UTC


def test_reply_threading_headers_are_id_lists() -> None:
    item = parse_message(load("reply_with_quoted_history.eml"))

    assert item.in_reply_to == ["CAA+orig-1@acme.example"]
    assert item.references == ["CAA+start-0@acme.example", "CAA+orig-1@acme.example"]


def test_html_only_body_gives_text_snippet() -> None:
    item = parse_message(load("html_only_body.eml"))

    assert item.snippet.startswith("Hello Anna, our prices for café beans drop by 5")
    assert item.snippet.endswith("delivery is free.")


def test_kept_headers_only_and_decoded() -> None:
    item = parse_message(load("outlook_inline_forward.eml"))

    assert item.headers == {
        "content-type": 'text/plain; charset="utf-8"',
        "thread-topic": "Offer request",
        "thread-index": "AQHZdGhpcyBpcyBhIHRlc3Q=",
    }


def test_headerless_digest_fragment_is_not_an_email() -> None:
    with pytest.raises(BadItem) as caught:
        parse_message(load("headerless_digest_fragment.eml"))

    assert caught.value.reason == "not_an_email"


# --- Attachments, forwards, calendars -------------------------------------------------------


def test_tnef_attachment_metadata_matches_decoded_payload() -> None:
    raw = load("winmail_dat_tnef.eml")
    payload = b"\x78\x9f\x3e\x22" + bytes(range(256)) * 4

    (attachment,) = parse_message(raw).attachments

    assert attachment.size == len(payload)
    assert attachment.sha256 == hashlib.sha256(payload).hexdigest()
    assert attachment.content == payload
    assert attachment.inline is False


def test_attachment_content_only_at_full_level_metadata_always() -> None:
    raw = load("bad_base64_body.eml")

    full = parse_message(raw)
    subject = parse_message(raw, want_body=False)
    capped = parse_message(raw, attachment_content_cap=10)

    assert full.attachments[0].content is not None
    assert full.attachments[0].content.startswith(b"%PDF-1.4")
    assert subject.attachments[0].content is None
    assert capped.attachments[0].content is None
    for item in (subject, capped):
        assert item.attachments[0].size == full.attachments[0].size == 15
        assert item.attachments[0].sha256 == full.attachments[0].sha256


def test_attached_messages_returns_the_forwarded_message_bytes() -> None:
    (inner,) = attached_messages(load("nested_forward_rfc822.eml"))
    forwarded = parse_message(inner)

    assert forwarded.subject == "Quarterly numbers"
    assert forwarded.message_id == "inner-q1@customer.example"
    assert forwarded.sender is not None
    assert forwarded.sender.address == "bob@customer.example"
    assert [a.filename for a in forwarded.attachments] == ["q1.csv"]


def test_forwarded_message_attachments_are_not_the_outer_messages() -> None:
    item = parse_message(load("nested_forward_rfc822.eml"))

    assert [a.filename for a in item.attachments] == ["Quarterly numbers.eml"]
    assert item.attachments[0].content is not None
    assert item.attachments[0].content.startswith(b"From: Bob Stone")


def test_calendar_parts_finds_the_invite_once() -> None:
    parts = calendar_parts(load("invite_with_text_calendar.eml"))

    assert len(parts) == 1  # the alternative and invite.ics carry identical bytes
    assert parts[0].startswith(b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST")
    assert b"UID:040000008200E00074C5B7101A82E0080000000012345" in parts[0]


def test_invite_leaves_item_calendar_empty() -> None:
    assert parse_message(load("invite_with_text_calendar.eml")).calendar == []


def test_calendar_and_forward_helpers_return_empty_for_plain_or_broken_input() -> None:
    assert calendar_parts(load("missing_message_id.eml")) == []
    assert attached_messages(load("missing_message_id.eml")) == []
    assert calendar_parts(b"") == []
    assert attached_messages(b"\x00\xff garbage") == []


def test_eml_file_attachment_counts_as_attached_message() -> None:
    raw = simple(
        'Content-Type: multipart/mixed; boundary="b"\n',
        "--b\nContent-Type: text/plain\n\nSee attached.\n--b\n"
        'Content-Type: application/octet-stream; name="old.eml"\n'
        "Content-Transfer-Encoding: base64\n\n"
        + base64.encodebytes(b"Subject: Old\nFrom: x@y.z\n\nold body\n").decode()
        + "--b--\n",
    )

    assert attached_messages(raw) == [b"Subject: Old\nFrom: x@y.z\n\nold body\n"]


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        (
            "attachment; filename*=UTF-8''Angebot%20f%C3%BCr%20M%C3%BCller.pdf",
            "Angebot für Müller.pdf",
        ),
        ("attachment; filename*0*=UTF-8''Lang%C3%A9; filename*1=\"_name.pdf\"", "Langé_name.pdf"),
        ('attachment; filename="=?utf-8?B?UHLDpHNlbnRhdGlvbi5wcHR4?="', "Präsentation.pptx"),
        ('attachment; filename="C:\\\\Users\\\\anna\\\\Report.pdf"', "Report.pdf"),
        ('attachment; filename="a;b.txt"', "a;b.txt"),
    ],
    ids=["rfc2231", "rfc2231_continuation", "rfc2047_in_quotes", "windows_path", "semicolon"],
)
def test_attachment_filename_quirks(disposition: str, expected: str) -> None:
    raw = simple(
        'Content-Type: multipart/mixed; boundary="b"\n',
        "--b\nContent-Type: text/plain\n\nHi\n--b\nContent-Type: application/octet-stream\n"
        f"Content-Disposition: {disposition}\n\nDATA\n--b--\n",
    )

    (attachment,) = parse_message(raw).attachments

    assert attachment.filename == expected
    assert attachment.content == b"DATA"


def test_related_inline_image_is_an_inline_attachment() -> None:
    raw = simple(
        'Content-Type: multipart/related; boundary="r"\n',
        "--r\nContent-Type: text/html; charset=utf-8\n\n<p>Logo below</p><img src=cid:logo>\n"
        "--r\nContent-Type: image/png\nContent-ID: <logo>\nContent-Transfer-Encoding: base64\n\n"
        "iVBORw0KGgo=\n--r--\n",
    )

    item = parse_message(raw)

    assert item.text == "Logo below"
    assert [(a.filename, a.content_type, a.inline) for a in item.attachments] == [
        ("attachment-1.png", "image/png", True)
    ]


def test_empty_plain_alternative_falls_back_to_html() -> None:
    raw = simple(
        'Content-Type: multipart/alternative; boundary="a"\n',
        "--a\nContent-Type: text/plain\n\n\n--a\nContent-Type: text/html\n\n"
        "<p>Real content</p>\n--a--\n",
    )

    assert parse_message(raw).text == "Real content"


# --- Capture levels -----------------------------------------------------------------------


def test_metadata_level_skips_subject_and_body_work() -> None:
    item = parse_message(load("winmail_dat_tnef.eml"), want_subject=False, want_body=False)

    assert item.subject == ""
    assert item.text is None
    assert item.snippet == ""
    assert item.attachments == []
    assert item.message_id == "tnef@legacy.example"
    assert [p.address for p in item.participants] == ["user@legacy.example", "anna@acme.example"]


def test_subject_level_keeps_subject_and_attachment_metadata_without_text() -> None:
    item = parse_message(load("winmail_dat_tnef.eml"), want_body=False)

    assert item.subject == "Contract draft"
    assert item.text is None
    assert item.snippet == ""
    assert [(a.filename, a.size, a.content) for a in item.attachments] == [
        ("winmail.dat", 1028, None)
    ]


# --- Header fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected", "defect"),
    [
        ("Tue, 05 Mar 2024 16:20:00 +0100", datetime(2024, 3, 5, 15, 20, tzinfo=UTC), None),
        ("Tue, 05 Mar 2024 16:20:00 +0100 (CET)", datetime(2024, 3, 5, 15, 20, tzinfo=UTC), None),
        ("Tue, 5 Mar 2024 16:20:00 -0000", datetime(2024, 3, 5, 16, 20, tzinfo=UTC), None),
        ("5 Mar 24 16:20 EST", datetime(2024, 3, 5, 21, 20, tzinfo=UTC), None),
        ("Tue, 5 Mar 2024 16:20:00 UTC+1", datetime(2024, 3, 5, 15, 20, tzinfo=UTC), "broken"),
        ("Tuesday, March 5, 2024 4:20 PM", datetime(2024, 3, 5, 16, 20, tzinfo=UTC), "broken"),
        ("2024-03-05T16:20:00+02:00", datetime(2024, 3, 5, 14, 20, tzinfo=UTC), "broken"),
        ("05.03.2024 16:20", datetime(2024, 3, 5, 16, 20, tzinfo=UTC), "broken"),
        ("Di, 5. Mär 2024 16:20:00 +0100", datetime(2024, 3, 5, 15, 20, tzinfo=UTC), "broken"),
        ("not a date", None, "unparseable Date header"),
        ("Tue, 32 Mar 2024 16:20:00 +0000", None, "unparseable Date header"),
    ],
)
def test_date_header_variants(value: str, expected: datetime | None, defect: str | None) -> None:
    raw = f"From: a@example.com\nDate: {value}\nMessage-ID: <d@x>\n\nBody\n".encode()

    item = parse_message(raw)

    assert item.date == expected
    assert has_defect(item, defect) if defect else item.defects == []


def test_missing_date_falls_back_to_received_timestamp() -> None:
    raw = (
        b"Received: from a by b; Tue, 05 Mar 2024 10:00:00 +0100\n"
        b"From: a@example.com\nMessage-ID: <r@x>\n\nBody\n"
    )

    item = parse_message(raw)

    assert item.date == datetime(2024, 3, 5, 9, 0, tzinfo=UTC)
    assert has_defect(item, "missing Date header, used Received")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<ABC.123@Mail.Example>", "ABC.123@Mail.Example"),
        ("  < abc@x.example >  ", "abc@x.example"),
        ("abc@x.example", "abc@x.example"),
        ("<abc@x.example> (added by postmaster)", "abc@x.example"),
    ],
)
def test_message_id_variants(value: str, expected: str) -> None:
    assert parse_message(simple(f"Message-ID: {value}\n")).message_id == expected


def test_empty_message_id_is_none_with_defect() -> None:
    item = parse_message(simple("Message-ID:   \n"))

    assert item.message_id is None
    assert has_defect(item, "empty Message-ID")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<a@x>,<b@x>", ["a@x", "b@x"]),
        ("<a@x>\n <b@x>\n\t<c@x>", ["a@x", "b@x", "c@x"]),
        ("a@x, b@x", ["a@x", "b@x"]),
        ("<a@x> <a@x>", ["a@x"]),
        ("Your message of Mon, 4 Mar 2024 <a@x>", ["a@x"]),
        ("garbage without ids", []),
    ],
)
def test_references_tolerate_commas_missing_brackets_and_garbage(
    value: str, expected: list[str]
) -> None:
    assert parse_message(simple(f"References: {value}\n")).references == expected


def test_address_names_are_decoded_and_dropped_when_equal_to_address() -> None:
    raw = simple(
        'Cc: "bob@example.com" <Bob@Example.com>, "Smith, John" <js@x.example>,\n'
        " 'Quoted Name' <q@x.example>, js@x.example (Duplicate), undisclosed-recipients:;\n"
    )

    item = parse_message(raw)

    assert [(p.address, p.name) for p in item.participants if p.role == "cc"] == [
        ("bob@example.com", ""),
        ("js@x.example", "Smith, John"),
        ("q@x.example", "Quoted Name"),
    ]


def test_addresses_with_control_characters_are_skipped() -> None:
    # Found by fuzzing capture on PostgreSQL, which refuses NUL in text: the whole batch failed.
    raw = b"From: 0@\x00 <anna@northwind.example>\nTo: a\x01b@x.example, c@x.example\n\nHi\n"

    item = parse_message(raw)

    assert [(p.role, p.address) for p in item.participants] == [
        ("from", "anna@northwind.example"),
        ("to", "c@x.example"),
    ]
    assert "1 from entries without a usable address skipped" in item.defects
    assert "1 to entries without a usable address skipped" in item.defects


def test_kept_header_values_are_unfolded_and_truncated() -> None:
    raw = simple(
        "List-Unsubscribe: <mailto:unsub@list.example>,\n\t<https://list.example/u>\n"
        f"X-Mailer: {'m' * 5000}\nX-Not-Kept: secret\n"
    )

    headers = parse_message(raw).headers

    assert headers["list-unsubscribe"] == "<mailto:unsub@list.example>, <https://list.example/u>"
    assert len(headers["x-mailer"]) == 2000
    assert "x-not-kept" not in headers
    assert "from" not in headers


# --- Framing quirks and not-an-email ------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"\xef\xbb\xbfFrom: a@example.com\r\nSubject: BOM\r\n\r\nbody\r\n",
        b"\r\n\r\nFrom: a@example.com\nSubject: BOM\n\nbody\n",
        b"From a@example.com Tue Mar  5 10:00:00 2024\nFrom: a@example.com\nSubject: BOM\n\nbody\n",
        b"From: a@example.com\rSubject: BOM\r\rbody\r",
    ],
    ids=["utf8_bom", "leading_blank_lines", "mbox_from_line", "bare_cr_line_endings"],
)
def test_framing_quirks_still_parse(raw: bytes) -> None:
    item = parse_message(raw)

    assert item.subject == "BOM"
    assert item.text == "body"
    assert [p.address for p in item.participants] == ["a@example.com"]


def test_missing_blank_line_between_headers_and_body_is_a_defect() -> None:
    item = parse_message(b"From: a@example.com\nSubject: x\nthis is the body\n")

    assert item.text == "this is the body"
    assert has_defect(item, "no blank line between headers and body")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b" \r\n\t\n", "empty"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500), "not_an_email"),
        (b"hello world, this is just text\n", "not_an_email"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "not_an_email"),
        (b"Foo: bar\nBaz: qux\n\nno email headers at all\n", "not_an_email"),
    ],
    ids=["empty", "whitespace", "outlook_msg_ole", "plain_text", "png", "unrelated_headers"],
)
def test_non_email_bytes_raise_bad_item(raw: bytes, reason: str) -> None:
    with pytest.raises(BadItem) as caught:
        parse_message(raw)

    assert caught.value.reason == reason
    assert caught.value.message


def test_non_bytes_input_is_a_bad_item() -> None:
    with pytest.raises(BadItem) as caught:
        parse_message("From: a@example.com\n\nbody")  # type: ignore[arg-type]

    assert caught.value.reason == "not_bytes"


# --- Limits ---------------------------------------------------------------------------------


def test_message_with_1000_mime_parts_stops_at_the_limit() -> None:
    parts = "".join(f'--b\nContent-Type: text/csv; name="f{i}.csv"\n\n{i}\n' for i in range(1500))
    raw = simple('Content-Type: multipart/mixed; boundary="b"\n', parts + "--b--\n")

    item = parse_message(raw)

    assert has_defect(item, "too many MIME parts, stopped at 1000")
    assert 990 <= len(item.attachments) < 1000
    assert item.attachments[0].filename == "f0.csv"


def test_deep_mime_nesting_stops_at_depth_limit() -> None:
    body = "Content-Type: text/plain\n\ndeep text\n"
    for level in range(60):
        body = (
            f'Content-Type: multipart/mixed; boundary="n{level}"\n\n'
            f"--n{level}\n{body}\n--n{level}--\n"
        )
    raw = simple(body.split("\n\n", 1)[0] + "\n", body.split("\n\n", 1)[1])

    item = parse_message(raw)

    assert has_defect(item, "MIME nesting deeper than 20 levels")
    assert item.text == ""


def test_megabyte_garbled_address_header_is_capped() -> None:
    valid = ", ".join(f"user{i}@example.com" for i in range(3000))
    garbage = bytes(range(33, 127)) * 11_000
    raw = b"From: a@example.com\nTo: " + valid.encode() + b", " + garbage + b"\n\nBody\n"

    item = parse_message(raw)

    assert len(item.participants) == 1000
    assert item.participants[1].address == "user0@example.com"
    assert has_defect(item, "to header longer than 64 KB, cut")
    assert has_defect(item, "more than 1000 addresses")


def test_huge_base64_attachment_is_hashed_without_keeping_content() -> None:
    payload = bytes(range(256)) * 20_000  # 5 MB, decoded in streaming chunks
    raw = simple(
        'Content-Type: multipart/mixed; boundary="b"\n',
        "--b\nContent-Type: text/plain\n\nbig file\n--b\n"
        'Content-Type: application/zip; name="big.zip"\nContent-Transfer-Encoding: base64\n\n'
        + base64.encodebytes(payload).decode()
        + "--b--\n",
    )

    (attachment,) = parse_message(raw, attachment_content_cap=1024 * 1024).attachments

    assert attachment.size == len(payload)
    assert attachment.sha256 == hashlib.sha256(payload).hexdigest()
    assert attachment.content is None


# --- Snippets and inline forwards -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "Sounds good.\n\n-----Original Message-----\nFrom: A\nSent: Monday\nSubject: x\n\nold",
            "Sounds good.",
        ),
        (
            "Passt.\n\nAm 04.03.2024 um 10:00 schrieb Anna Berg <anna@acme.example>:\n> alt",
            "Passt.",
        ),
        ("Dzięki.\n\nDnia 4 marca 2024 Anna napisał(a):\n> stare", "Dzięki."),
        (
            "Díky.\n\nOd: Anna Berg\nOdesláno: 4. března 2024\nKomu: Bob\nPředmět: Nabídka\n\nstaré",
            "Díky.",
        ),
        (
            "Dziękuję.\n\nOd: Anna Berg <anna@acme.example>\nWysłano: poniedziałek, 4 marca 2024\n"
            "Do: Bob\nDW: Team\nTemat: Oferta\n\nstara treść",
            "Dziękuję.",
        ),
        (
            "Tack.\n\nFrån: Anna Berg\nSkickat: den 4 mars 2024 09:00\nTill: Bob\nÄmne: Offert\n\ngammal",
            "Tack.",
        ),
        (
            "감사합니다.\n\n보낸 사람: Anna Berg\n보낸 날짜: 2024년 3월 4일\n받는 사람: Bob\n제목: 견적\n\n이전",
            "감사합니다.",
        ),
        ("Agenda:\n- pricing\n- contract\n\nThanks,\nBob", "Agenda: - pricing - contract"),
        ("Top line\n> quoted line\nbottom line\n-- \nsignature", "Top line bottom line"),
        ("> only quoted text\n> nothing new", "only quoted text nothing new"),
    ],
    ids=[
        "outlook_original_message",
        "german_wrote_line",
        "polish_wrote_line_from_library",
        "czech_header_block",
        "polish_outlook_header_block",
        "swedish_outlook_header_block",
        "korean_header_block_via_library",
        "bullet_lists_are_not_signatures",
        "interleaved_quotes_and_sig_dash",
        "fully_quoted_falls_back_to_text",
    ],
)
def test_snippet_is_the_reply_without_quotes(body: str, expected: str) -> None:
    raw = simple("Content-Type: text/plain; charset=utf-8\n", body)

    assert parse_message(raw).snippet == expected


def test_snippet_is_about_280_characters_cut_at_a_word() -> None:
    raw = simple("", " ".join(["word"] * 200))

    snippet = parse_message(raw).snippet

    assert 200 < len(snippet) <= 280
    assert snippet.endswith("word")


_SNIPPET_LINES = st.sampled_from(
    [
        "",
        "Thanks for the offer, we will sign on Monday.",
        "> quoted line",
        "On Mon, 4 Mar 2024, Anna Berg <anna@acme.example> wrote:",
        "-----Original Message-----",
        "From: Anna Berg",
        "Sent: Monday, March 4, 2024 9:00 AM",
        "-- ",
        "x" * 500,
    ]
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_SNIPPET_LINES, max_size=40), limit=st.integers(0, 1500))
def test_strip_quoted_with_a_limit_is_the_start_of_the_whole(lines: list[str], limit: int) -> None:
    text = "\n".join(lines)

    assert strip_quoted(text, limit) == strip_quoted(text)[:limit]


def test_inline_forward_headers_from_outlook_block_without_dashes() -> None:
    item = parse_message(load("outlook_inline_forward.eml"))

    assert item.text is not None
    assert inline_forward_headers(item.text) == {
        "from": "Marc Dupont <marc.dupont@prospect.example>",
        "date": "Monday, March 11, 2024 5:42 PM",
        "to": "Anna Berg <anna@acme.example>; Sales <sales@acme.example>; Team <team@acme.example>",
        "cc": "Luc <luc@prospect.example>",
        "subject": "Offer request",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "FYI\n\n-----Original Message-----\nFrom: Bob <bob@x.example>\n"
            "Sent: Monday, March 4, 2024 9:00 AM\nTo: Anna\nSubject: Prices\n\nold body",
            {"from": "Bob <bob@x.example>", "date": "Monday, March 4, 2024 9:00 AM",
             "to": "Anna", "subject": "Prices"},
        ),
        (
            "---------- Forwarded message ---------\nFrom: *Bob* <bob@x.example>\n"
            "Date: Mon, Mar 4, 2024 at 9:00 AM\nSubject: Prices\nTo: <anna@acme.example>\n\nbody",
            {"from": "Bob <bob@x.example>", "date": "Mon, Mar 4, 2024 at 9:00 AM",
             "subject": "Prices", "to": "<anna@acme.example>"},
        ),
        (
            "Begin forwarded message:\n\nFrom: Bob <bob@x.example>\nSubject: Prices\n"
            "Date: 4 March 2024 at 09:00:00 CET\nTo: Anna <anna@acme.example>\n\nbody",
            {"from": "Bob <bob@x.example>", "subject": "Prices",
             "date": "4 March 2024 at 09:00:00 CET", "to": "Anna <anna@acme.example>"},
        ),
        (
            "-----Ursprüngliche Nachricht-----\nVon: Bob <bob@x.example>\n"
            "Gesendet: Montag, 4. März 2024 09:00\nAn: Anna\nCc: Team\nBetreff: Preise\n",
            {"from": "Bob <bob@x.example>", "date": "Montag, 4. März 2024 09:00",
             "to": "Anna", "cc": "Team", "subject": "Preise"},
        ),
        (
            "-----Wiadomość oryginalna-----\nOd: Bob <bob@x.example>\n"
            "Wysłano: poniedziałek, 4 marca 2024 09:00\nDo: Anna\nDW: Team\nTemat: Ceny\n",
            {"from": "Bob <bob@x.example>", "date": "poniedziałek, 4 marca 2024 09:00",
             "to": "Anna", "cc": "Team", "subject": "Ceny"},
        ),
        (
            "Fra: Bob <bob@x.example>\nSendt: 4. marts 2024 09:00\nTil: Anna\nEmne: Priser\n\nbody",
            {"from": "Bob <bob@x.example>", "date": "4. marts 2024 09:00", "to": "Anna",
             "subject": "Priser"},
        ),
        ("Just a normal reply.\nFrom: me\nThanks", None),
        ("From: Bob\nTo: Anna\n\nno Sent or Date line, so not a forward block", None),
    ],
    ids=[
        "outlook_dashes", "gmail", "apple", "german_outlook", "polish_outlook", "danish_outlook",
        "no_block", "from_without_date",
    ],
)  # fmt: skip
def test_inline_forward_headers_styles(text: str, expected: dict[str, str] | None) -> None:
    assert inline_forward_headers(text) == expected


# --- CPython's email test corpus ------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(CPYTHON.glob("msg_*.txt")), ids=lambda p: p.name)
def test_cpython_sample_parses_at_every_level(path: Path) -> None:
    raw = path.read_bytes()

    for want_subject, want_body in LEVELS:
        item = parse_message(raw, want_subject=want_subject, want_body=want_body)
        assert isinstance(item, MailItem)
        assert item.size == len(raw)


def test_cpython_samples_are_present() -> None:
    assert len(list(CPYTHON.glob("msg_*.txt"))) >= 40
    assert (CPYTHON / "README.md").is_file()


def test_cpython_same_boundary_nested_multipart_still_finds_text() -> None:
    item = parse_message((CPYTHON / "msg_15.txt").read_bytes())

    assert item.snippet.startswith("Some removed test.")


def test_cpython_gif_attachment_metadata() -> None:
    item = parse_message((CPYTHON / "msg_07.txt").read_bytes())

    assert [(a.filename, a.content_type) for a in item.attachments] == [
        ("dingusfish.gif", "image/gif")
    ]
    assert item.attachments[0].content is not None
    assert item.attachments[0].content.startswith(b"GIF8")


# --- Fuzzing --------------------------------------------------------------------------------


def parse_or_reason(raw: bytes, want_subject: bool, want_body: bool) -> MailItem | str:
    """The item, or the BadItem reason; any other exception propagates and fails the test."""
    try:
        return parse_message(raw, want_subject=want_subject, want_body=want_body)
    except BadItem as exc:
        return exc.reason


def assert_parses_or_bad_item(raw: bytes) -> None:
    for want_subject, want_body in LEVELS:
        item = parse_or_reason(raw, want_subject, want_body)
        if isinstance(item, str):
            assert item in ("empty", "not_an_email")
            continue
        assert isinstance(item, MailItem)
        assert item.size == len(raw)
        assert item.date is None or item.date.tzinfo is not None
        assert len(item.participants) <= 1000
    assert isinstance(calendar_parts(raw), list)
    assert isinstance(attached_messages(raw), list)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000))
def test_arbitrary_bytes_parse_or_raise_bad_item(raw: bytes) -> None:
    assert_parses_or_bad_item(raw)


HEADER_NAMES = st.sampled_from(
    [
        "From", "To", "Cc", "Bcc", "Sender", "Reply-To", "Subject", "Date", "Message-ID",
        "In-Reply-To", "References", "Content-Type", "Content-Transfer-Encoding",
        "Content-Disposition", "List-Id", "X-Mailer", "Received", "MIME-Version",
    ]
) | st.from_regex(r"[!-9;-~]{1,20}", fullmatch=True)  # fmt: skip
HEADER_VALUES = st.one_of(
    st.text(max_size=80).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=80),
    st.sampled_from(
        [
            b"=?utf-8?B?R3LDvMOf?=", b"=?bogus?Q?a=ZZ?=", b"=?utf-8?q?", b"<a@b>, <c@d",
            b'"x, y" <x@y>', b"Mon, 99 Foo 2024 25:61:61 +9999", b"multipart/mixed; boundary=",
            b"text/plain; charset=unicode-escape", b"base64", b"quoted-printable",
            b"attachment; filename*0*=x''%ZZ; filename*1=y", b"message/rfc822",
            b"text/calendar; method=REQUEST", b"<<<>>>@@@", b"a@xn--zz--.example",
        ]
    ),
)  # fmt: skip
LINE_ENDINGS = st.sampled_from([b"\n", b"\r\n"])


@st.composite
def headers(draw: st.DrawFn) -> bytes:
    pairs = draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=12))
    eol = draw(LINE_ENDINGS)
    lines = [name.encode() + b": " + value.replace(b"\n", eol + b" ") for name, value in pairs]
    if draw(st.booleans()):
        lines.append(b"From: a@example.com")
    return eol.join(lines) + eol


LEAF_TYPES = st.sampled_from(
    [
        b"text/plain; charset=utf-8", b"text/html", b"text/plain; charset=x-bogus",
        b"text/calendar; method=REQUEST", b"application/pdf; name=a.pdf", b"message/rfc822",
        b"application/ms-tnef", b"image/png", b"garbage", b"text/plain; format=flowed",
    ]
)  # fmt: skip
ENCODINGS = st.sampled_from([b"", b"base64", b"quoted-printable", b"8bit", b"x-uuencode", b"zz"])


@st.composite
def leaf(draw: st.DrawFn) -> bytes:
    return (
        b"Content-Type: " + draw(LEAF_TYPES) + b"\n"
        b"Content-Transfer-Encoding: " + draw(ENCODINGS) + b"\n\n" + draw(st.binary(max_size=200))
    )


def multipart(children: st.SearchStrategy[list[bytes]]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        boundary = draw(st.sampled_from([b"b", b"bb", b"b b", b"=_x", b""]))
        subtype = draw(st.sampled_from([b"mixed", b"alternative", b"related", b"digest"]))
        parts = draw(children)
        body = b"".join(b"--" + boundary + b"\n" + part + b"\n" for part in parts)
        if draw(st.booleans()):
            body += b"--" + boundary + b"--\n"
        return b"Content-Type: multipart/" + subtype + b'; boundary="' + boundary + b'"\n\n' + body

    return build()


MIME_TREES = st.recursive(
    leaf(), lambda inner: multipart(st.lists(inner, max_size=4)), max_leaves=12
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers(), MIME_TREES)
def test_garbled_structured_messages_parse_or_raise_bad_item(head: bytes, tree: bytes) -> None:
    assert_parses_or_bad_item(head + tree)


def same_block(a: HeaderBlock, b: HeaderBlock) -> bool:
    return (a.fields, a.body_start, a.count) == (b.fields, b.body_start, b.count)


@pytest.mark.parametrize(
    ("raw", "one_pass"),
    [
        (b"From: a@example.com\nSubject: x\n\nbody\n", True),
        (b"From: a@example.com\r\nSubject: x\r\n\r\nbody\r\n", True),
        (b"Received: from a\n\tby b;\n Tue, 5 Mar 2024\nSubject : spaced\n\nbody", True),
        (b"X-A: 1\nx-a: 2\nX-Empty:\n\n", True),
        (b"From a@example.com Tue Mar  5 10:00:00 2024\nSubject: x\n\nbody", False),
        (b" stray continuation\nSubject: x\n\nbody", False),
        (b"Subject: x\nthis is the body\n\nmore body", False),
        (b"Subject: x\nno blank line at all", False),
        (b"\nbody only\n\nmore", False),
        (b"Sub ject: x\n\n", False),
        (b"Subj\xe9ct: x\n\n", False),
    ],
    ids=[
        "lf", "crlf", "folded_and_spaced", "repeated_and_empty", "mbox_from_line",
        "leading_continuation", "no_blank_line", "no_blank_line_at_end", "no_headers",
        "space_in_name", "non_ascii_name",
    ],
)  # fmt: skip
def test_header_block_read_in_one_pass_or_line_by_line_alike(raw: bytes, one_pass: bool) -> None:
    """The one-pass read takes the usual block and leaves every other to the line-by-line
    read, and where it takes one both read the same fields and the same body start."""
    fast = _well_formed_block(raw, 0, len(raw))
    slow = _header_lines(raw, 0, len(raw), [], top=True)

    assert (fast is not None) == one_pass
    assert fast is None or same_block(fast, slow)


@settings(max_examples=300, deadline=None)
@given(headers(), LINE_ENDINGS, st.binary(max_size=60))
def test_header_block_one_pass_agrees_with_line_by_line(
    head: bytes, eol: bytes, body: bytes
) -> None:
    raw = head + eol + body
    defects: list[str] = []
    fast = _well_formed_block(raw, 0, len(raw))
    slow = _header_lines(raw, 0, len(raw), defects, top=False)

    assert fast is None or (same_block(fast, slow) and not defects)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_inline_forward_headers_never_raises(text: str) -> None:
    result = inline_forward_headers(text)

    assert result is None or set(result) <= {"from", "date", "to", "cc", "subject"}


def test_a_parameter_list_read_again_is_the_same_and_its_defects_are_said_each_time() -> None:
    """`parse_params` keeps what it read cleanly; a caller changing its answer changes nothing
    kept, and a value with a defect is read (and reported) every time."""
    value = 'text/plain; charset="utf-8"; format=flowed'
    first = parse_params(value, [], "content-type")
    first[1]["charset"] = "changed by a caller"
    assert parse_params(value, [], "content-type") == (
        "text/plain",
        {"charset": "utf-8", "format": "flowed"},
    )
    broken = "attachment; filename*0*=x''%ZZ%C3; filename*1=y"
    for _ in range(2):
        defects: list[str] = []
        parse_params(broken, defects, "disposition")
        assert defects
    boundary = 'multipart/mixed; boundary="b1"'
    assert parse_params(boundary, [], "content-type") == ("multipart/mixed", {"boundary": "b1"})
