"""What a message sent to a drop address means: whose it is, and which message to capture."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest

from server.mail_ingest.mime import parse_message
from server.mail_ingest.sources.drop import (
    drop_address,
    drop_content,
    drop_token,
    is_bcc_copy,
    unwrap_forward,
)
from tests.support.mail import make_email

MAIL = Path(__file__).parent.parent / "data" / "mail"
DOMAIN = "drop.rapport.test"
OWNER = "anna@acme.example"
DROP = drop_address("k7q2m9x4", DOMAIN)


def load(name: str) -> bytes:
    return (MAIL / name).read_bytes()


@pytest.mark.parametrize(
    ("address", "token"),
    [
        ("crm+k7q2m9x4@drop.rapport.test", "k7q2m9x4"),
        ("CRM+K7Q2M9X4@Drop.Rapport.Test", "k7q2m9x4"),  # mail servers may change the case
        ("<crm+k7q2m9x4@drop.rapport.test>", "k7q2m9x4"),
        ("crm+k7q2m9x4@drop.rapport.test.", "k7q2m9x4"),
        ("crm+k7q2m9x4@other.example", None),
        ("crm-k7q2m9x4@drop.rapport.test", None),  # only crm+<token>
        ("crm@drop.rapport.test", None),
        ("crm+@drop.rapport.test", None),
        ("crm+a/b@drop.rapport.test", None),
        ("sales@drop.rapport.test", None),
        ("not an address", None),
    ],
)
def test_drop_token(address: str, token: str | None) -> None:
    assert drop_token(address, DOMAIN) == token


def outgoing(**changes: str) -> bytes:
    values = {"sender": f"Anna Berg <{OWNER}>", "to": "Bob <bob@customer.example>"}
    values.update(changes)
    return make_email(sender=values["sender"], to=values["to"], subject="Your quote")


def test_own_outgoing_mail_with_drop_address_in_bcc_is_a_bcc_copy() -> None:
    assert is_bcc_copy(outgoing(), [OWNER])
    assert is_bcc_copy(outgoing(sender="ANNA@Acme.Example"), ["anna@acme.example"])


def test_mail_addressed_to_the_drop_address_is_not_a_bcc_copy() -> None:
    forward = outgoing(to=DROP)
    assert not is_bcc_copy(forward, [OWNER])
    with_cc = make_email(sender=OWNER, to="bob@customer.example", cc=[DROP])
    assert not is_bcc_copy(with_cc, [OWNER])


def test_mail_from_someone_else_is_not_a_bcc_copy() -> None:
    assert not is_bcc_copy(outgoing(sender="mallory@evil.example"), [OWNER])
    assert not is_bcc_copy(outgoing(), [])
    assert not is_bcc_copy(b"\x00\x01 not mail at all", [OWNER])


def test_attached_message_is_unwrapped_to_its_own_bytes() -> None:
    original = unwrap_forward(load("nested_forward_rfc822.eml"))
    assert original is not None
    item = parse_message(original)
    assert item.message_id == "inner-q1@customer.example"
    assert item.sender is not None
    assert item.sender.address == "bob@customer.example"
    assert [a.filename for a in item.attachments] == ["q1.csv"]


def test_outlook_inline_forward_is_rebuilt_as_a_message() -> None:
    original = unwrap_forward(load("outlook_inline_forward.eml"))
    assert original is not None
    parsed = message_from_bytes(original, policy=default_policy)
    assert parsed["From"] == "Marc Dupont <marc.dupont@prospect.example>"
    assert parsed["To"] == (
        "Anna Berg <anna@acme.example>, Sales <sales@acme.example>, Team <team@acme.example>"
    )
    assert parsed["Cc"] == "Luc <luc@prospect.example>"
    assert parsed["Subject"] == "Offer request"
    item = parse_message(original)
    assert item.date is not None
    assert item.date.isoformat() == "2024-03-11T17:42:00+00:00"
    assert item.text == "Hello Anna, could you send us an offer for 40 licences?\nMarc"
    assert item.message_id is not None
    assert item.message_id.startswith("fwd.")
    assert item.message_id.endswith("@rapport.invalid")


GMAIL_FORWARD = """\
Adding this one.

---------- Forwarded message ---------
From: *Bob Stone* <bob@customer.example>
Date: Mon, Mar 4, 2024 at 9:00 AM
Subject: Prices for 2025
To: Anna Berg <anna@acme.example>


Hi Anna,

what will the chairs cost next year?

Bob
"""


def test_gmail_inline_forward_is_rebuilt_as_a_message() -> None:
    raw = make_email(sender=OWNER, to=DROP, subject="Fwd: Prices for 2025", body=GMAIL_FORWARD)
    original = unwrap_forward(raw)
    assert original is not None
    item = parse_message(original)
    assert item.sender is not None
    assert (item.sender.name, item.sender.address) == ("Bob Stone", "bob@customer.example")
    assert item.subject == "Prices for 2025"
    assert item.text == "Hi Anna,\n\nwhat will the chairs cost next year?\n\nBob"


def test_html_only_outlook_forward_is_rebuilt_from_its_text() -> None:
    html = (
        "<html><body><p>FYI</p><hr><div><b>From:</b> Marc Dupont &lt;marc@prospect.example&gt;"
        "<br><b>Sent:</b> Monday, March 11, 2024 5:42 PM<br><b>To:</b> Anna Berg "
        "&lt;anna@acme.example&gt;<br><b>Subject:</b> Offer request</div><br>"
        "<p>Hello Anna, please send an offer.</p></body></html>"
    )
    raw = (
        f"From: {OWNER}\r\nTo: {DROP}\r\nSubject: FW: Offer request\r\n"
        "Message-ID: <html-fwd@acme.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n"
    ).encode()
    original = unwrap_forward(raw)
    assert original is not None
    item = parse_message(original)
    assert item.sender is not None
    assert item.sender.address == "marc@prospect.example"
    assert item.subject == "Offer request"
    assert item.text is not None
    assert "Hello Anna, please send an offer." in item.text


def test_rebuilt_forward_keeps_one_identity_whoever_forwards_it() -> None:
    first = make_email(sender=OWNER, to=DROP, subject="Fwd: Prices", body=GMAIL_FORWARD)
    again = make_email(
        sender="colleague@acme.example",
        to=DROP,
        subject="Fwd: x",
        body="see below\n" + GMAIL_FORWARD,
    )
    other = make_email(
        sender=OWNER, to=DROP, subject="Fwd: Prices", body=GMAIL_FORWARD.replace("chairs", "desks")
    )
    ids = [parse_message(unwrap_forward(raw) or b"").message_id for raw in (first, again, other)]
    assert ids[0] == ids[1]
    assert ids[0] != ids[2]


def test_a_plain_message_forwards_nothing() -> None:
    assert unwrap_forward(make_email(sender=OWNER, to=DROP, body="Call Bob on Monday.")) is None
    assert unwrap_forward(b"\x00\x01 not mail at all") is None


def test_drop_content_picks_what_to_capture() -> None:
    bcc = outgoing()
    assert drop_content(bcc, [OWNER]) == bcc
    forwarded = load("nested_forward_rfc822.eml").replace(b"crm-drop@acme.example", DROP.encode())
    inner = drop_content(forwarded, ["carol@shop.example"])
    assert parse_message(inner).message_id == "inner-q1@customer.example"
    note = make_email(sender=OWNER, to=DROP, body="Met Bob at the fair.")
    assert drop_content(note, [OWNER]) == note
