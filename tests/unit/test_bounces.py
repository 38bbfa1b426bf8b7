"""Reading delivery reports: CPython's own sample bounces, the forms Postfix, Exchange and qmail
send, delays, read receipts, and broken reports that must never stop capture."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.mail_ingest.dsn import DeliveryReport, RecipientStatus, delivery_report
from server.mail_ingest.mime import parse_message
from tests.support.bounces import exchange_ndr, postfix_dsn, qmail_failure_notice
from tests.support.mail import make_email

CPYTHON = Path(__file__).resolve().parent.parent / "data" / "mail" / "cpython"
ANNA = "anna@northwind-supplies.com"
CLARA = "clara@brightline-dental.co.uk"
ORIGINAL_ID = "<rapport-c7-12-a1b2c3d4e5f6@northwind-supplies.com>"
LEVELS = [(False, False), (True, False), (True, True)]  # metadata, subject, full


def report_of(raw: bytes, *, want_subject: bool = True, want_body: bool = True) -> DeliveryReport:
    """As capture reads it: parsed into an item at a capture level, the report read from it."""
    item = parse_message(raw, want_subject=want_subject, want_body=want_body)
    report = delivery_report(item)
    assert report is not None
    return report


def original() -> bytes:
    return make_email(sender=ANNA, to=CLARA, subject="Your renewal", message_id=ORIGINAL_ID)


# -- CPython's sample reports (Lib/test/test_email/data, copied to tests/data/mail/cpython) ----


def test_cpython_sims_report_names_the_returned_message_and_a_hard_failure() -> None:
    report = report_of((CPYTHON / "msg_16.txt").read_bytes())
    assert report.kind == "dsn"
    assert report.message_ids[0] == "002001c144a6$8752e060$56104586@oxy.edu"
    (status,) = report.recipients
    assert status.recipient == "jangel1@cougar.noc.ucla.edu"
    assert (status.action, status.status, status.permanent) == ("failed", "5.0.0", True)


def test_cpython_spam_firewall_report_lists_every_recipient_and_the_returned_headers() -> None:
    report = report_of((CPYTHON / "msg_43.txt").read_bytes())
    assert report.message_ids[0] == "edab.7804f5cb8070@python.org"  # from text/rfc822-headers
    assert len(report.recipients) == 25
    assert {s.status for s in report.recipients} == {"5.7.1"}
    assert report.recipients[0].diagnostic.startswith("550 5.7.1 Message content rejected")


def test_cpython_report_with_a_broken_boundary_is_read_as_text() -> None:
    report = report_of((CPYTHON / "msg_25.txt").read_bytes())
    assert report.kind == "text"
    assert report.message_ids == ("01040616033903.00962@server",)
    (status,) = report.recipients
    assert (status.status, status.permanent, status.recipient) == (
        "5.4.6",
        True,
        "scoffman@wellpartner.com",
    )


def test_cpython_report_without_a_status_part_says_so() -> None:
    report = report_of((CPYTHON / "msg_05.txt").read_bytes())
    assert report.recipients == ()
    assert report.problem == "no message/delivery-status part"


def test_no_other_cpython_sample_is_taken_for_a_bounce() -> None:
    reports = {
        path.name
        for path in sorted(CPYTHON.glob("msg_*.txt"))
        if delivery_report(parse_message(path.read_bytes())) is not None
    }
    assert reports == {"msg_05.txt", "msg_16.txt", "msg_25.txt", "msg_43.txt"}


# -- what servers send -----------------------------------------------------------------------


@pytest.mark.parametrize(("want_subject", "want_body"), LEVELS)
def test_postfix_bounce_at_every_capture_level(want_subject: bool, want_body: bool) -> None:
    raw = postfix_dsn(original(), CLARA, to=ANNA)
    report = report_of(raw, want_subject=want_subject, want_body=want_body)
    assert report.message_ids[0] == ORIGINAL_ID.strip("<>")
    (status,) = report.recipients
    assert status == RecipientStatus(
        recipient=CLARA,
        original_recipient=CLARA,
        action="failed",
        status="5.1.1",
        diagnostic=f"550 5.1.1 <{CLARA}>: Recipient address rejected: User unknown in "
        "virtual mailbox table",
    )


def test_a_delay_warning_is_not_a_hard_bounce() -> None:
    raw = postfix_dsn(original(), CLARA, to=ANNA, action="delayed", status="4.4.1")
    report = report_of(raw)
    assert report.message_ids[0] == ORIGINAL_ID.strip("<>")  # from the returned headers
    (status,) = report.recipients
    assert (status.action, status.status, status.permanent) == ("delayed", "4.4.1", False)


def test_a_failure_with_a_temporary_status_is_not_a_hard_bounce() -> None:
    raw = postfix_dsn(original(), CLARA, to=ANNA, status="4.4.7")
    (status,) = report_of(raw).recipients
    assert (status.action, status.permanent) == ("failed", False)


@pytest.mark.parametrize("encoded", [False, True])
def test_exchange_ndr_with_its_status_part_plain_or_base64(encoded: bool) -> None:
    raw = exchange_ndr(original(), CLARA, to=ANNA, original_message_id=ORIGINAL_ID, encoded=encoded)
    report = report_of(raw)
    assert report.kind == "dsn"
    assert report.message_ids == (ORIGINAL_ID.strip("<>"),)  # returned and In-Reply-To agree
    (status,) = report.recipients
    assert (status.recipient, status.status, status.permanent) == (CLARA, "5.1.10", True)
    assert status.diagnostic.startswith("550 5.1.10 RESOLVER.ADR.RecipientNotFound")


def test_exchange_ndr_without_the_original_is_matched_by_in_reply_to() -> None:
    raw = exchange_ndr(b"", CLARA, to=ANNA, original_message_id=ORIGINAL_ID)
    raw = raw.replace(b"Content-Type: message/rfc822", b"Content-Type: text/plain")
    assert report_of(raw).message_ids == (ORIGINAL_ID.strip("<>"),)


def test_qmail_failure_notice_in_plain_text() -> None:
    report = report_of(qmail_failure_notice(original(), CLARA, to=ANNA))
    assert report.kind == "text"
    assert report.message_ids == (ORIGINAL_ID.strip("<>"),)
    (status,) = report.recipients
    assert (status.recipient, status.status, status.permanent) == (CLARA, "5.1.1", True)
    assert status.diagnostic.startswith("Remote host said: 550 5.1.1")


def test_plain_text_bounce_with_only_an_smtp_reply_code() -> None:
    raw = (
        f"From: Mail Delivery System <Mailer-Daemon@mx.example.net>\nTo: {ANNA}\n"
        "Subject: Mail delivery failed: returning message to sender\n"
        "Message-ID: <exim-1@mx.example.net>\n\n"
        "This message was created automatically by mail delivery software.\n\n"
        f"  {CLARA}\n    SMTP error from remote mail server after RCPT TO:<{CLARA}>:\n"
        "    550 No such user here\n\n"
        "------ This is a copy of the message, including all the headers. ------\n\n"
        "Received: from anna by mail.northwind-supplies.com with esmtp (Exim 4.94.2)\n"
        f"Message-ID: {ORIGINAL_ID}\nSubject: Your renewal\n\nHello\n"
    ).encode()
    (status,) = report_of(raw).recipients
    assert (status.status, status.permanent, status.recipient) == ("5.0.0", True, CLARA)


def test_read_receipts_and_person_mail_are_no_bounces() -> None:
    receipt = (
        f"From: {CLARA}\nTo: {ANNA}\nSubject: Read: Your renewal\nMessage-ID: <r1@x.example>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nRead.\n--b\n"
        "Content-Type: message/disposition-notification\n\nDisposition: manual-action/"
        "MDN-sent-manually; displayed\n--b--\n"
    ).encode()
    assert delivery_report(parse_message(receipt)) is None
    reply = make_email(sender=CLARA, to=ANNA, subject="Re: Your renewal", in_reply_to=ORIGINAL_ID)
    assert delivery_report(parse_message(reply)) is None


def test_an_item_without_its_bytes_gives_no_report() -> None:
    item = parse_message(postfix_dsn(original(), CLARA, to=ANNA))
    item.raw = None  # Graph's JSON items below capture level full have no MIME
    assert delivery_report(item) is None


# -- broken reports --------------------------------------------------------------------------


def test_a_garbled_status_part_falls_back_to_the_notice_text() -> None:
    raw = postfix_dsn(original(), CLARA, to=ANNA)
    start, end = raw.index(b"Reporting-MTA"), raw.index(b"Diagnostic-Code")
    report = report_of(raw[:start] + b"\x00\xff\xfe garbage ::: \n\n\n;;;\n" + raw[end:])
    assert report.kind == "text"
    (status,) = report.recipients
    assert (status.status, status.permanent, status.recipient) == ("5.1.1", True, CLARA)


def test_a_status_part_with_junk_in_its_base64_is_still_read() -> None:
    raw = exchange_ndr(original(), CLARA, to=ANNA, original_message_id=ORIGINAL_ID, encoded=True)
    junk = raw.replace(b"base64\n\n", b"base64\n\n!!*\n", 1)
    (status,) = report_of(junk).recipients
    assert status.status == "5.1.10"


def test_a_report_whose_status_part_says_nothing_comes_with_its_reason() -> None:
    raw = postfix_dsn(original(), CLARA, to=ANNA, diagnostic="rejected")
    start, end = raw.index(b"Reporting-MTA"), raw.index(b"--=_report", raw.index(b"Reporting"))
    report = report_of(raw[:start] + b"Reporting-MTA: dns; x\n\nX-Note: nothing\n\n" + raw[end:])
    assert report.recipients == () and report.kind == "dsn"
    assert report.problem == "no recipient has an Action or Status"
    assert report.message_ids[0] == ORIGINAL_ID.strip("<>")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0, max_value=4000), noise=st.binary(max_size=64))
def test_a_cut_or_mangled_report_never_raises(cut: int, noise: bytes) -> None:
    raw = exchange_ndr(original(), CLARA, to=ANNA, original_message_id=ORIGINAL_ID)
    mangled = raw[:cut] + noise + raw[cut + len(noise) :]
    try:
        item = parse_message(mangled)
    except Exception:  # not an email at all: the pipeline quarantines it before we look
        return
    report = delivery_report(item)
    assert report is None or isinstance(report, DeliveryReport)
