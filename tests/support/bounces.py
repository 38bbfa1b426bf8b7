"""Delivery reports as real mail servers write them, around an original message: Postfix's RFC
3464 report, an Exchange Online NDR, qmail's plain-text "failure notice" and a delay warning."""

from __future__ import annotations

import base64
import itertools

_unique = itertools.count(1)
DATE = "Mon, 02 Mar 2026 09:15:00 +0000"


def _report(headers: str, parts: list[tuple[str, str]]) -> bytes:
    boundary = f"=_report_{next(_unique)}"
    body = "".join(f"--{boundary}\n{head}\n\n{content}\n" for head, content in parts)
    top = (
        f"{headers}MIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\n'
    )
    return f"{top}\n{body}--{boundary}--\n".encode()


def _headers_of(original: bytes) -> str:
    head = original.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    return head.decode("utf-8", "replace")


def _text(original: bytes) -> str:
    return original.replace(b"\r\n", b"\n").decode("utf-8", "replace").rstrip("\n")


def postfix_dsn(
    original: bytes,
    recipient: str,
    *,
    to: str,
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "",
) -> bytes:
    """Postfix's bounce (or, with action "delayed" and a 4.x.x status, its delay warning)."""
    diagnostic = diagnostic or (
        f"550 {status} <{recipient}>: Recipient address rejected: User unknown in virtual "
        "mailbox table"
    )
    failed = action == "failed"
    headers = (
        "From: MAILER-DAEMON@mail.northwind-supplies.com (Mail Delivery System)\n"
        f"Subject: {'Undelivered Mail Returned to Sender' if failed else 'Delayed Mail'}\n"
        f"To: {to}\nAuto-Submitted: auto-replied\nDate: {DATE}\n"
        f"Message-Id: <20260302091500.{next(_unique)}@mail.northwind-supplies.com>\n"
    )
    notice = (
        "This is the mail system at host mail.northwind-supplies.com.\n\n"
        + (
            "I'm sorry to have to inform you that your message could not\n"
            "be delivered to one or more recipients.\n\n"
            if failed
            else "####################################################################\n"
            "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
            "####################################################################\n\n"
            "Your message could not be delivered for 4 hours.\n"
            "It will be retried until it is 5 days old.\n\n"
        )
        + f"<{recipient}>: host mx.example.net[192.0.2.10] said: {diagnostic}\n"
        "    (in reply to RCPT TO command)"
    )
    status_fields = (
        "Reporting-MTA: dns; mail.northwind-supplies.com\n"
        "X-Postfix-Queue-ID: 4F3A21C0B2\n"
        "X-Postfix-Sender: rfc822; anna@northwind-supplies.com\n"
        f"Arrival-Date: {DATE}\n\n"
        f"Final-Recipient: rfc822; {recipient}\n"
        f"Original-Recipient: rfc822;{recipient}\n"
        f"Action: {action}\nStatus: {status}\n"
        "Remote-MTA: dns; mx.example.net\n"
        f"Diagnostic-Code: smtp; {diagnostic}"
    )
    returned = (
        ("Content-Description: Undelivered Message\nContent-Type: message/rfc822", _text(original))
        if failed
        else (
            "Content-Description: Undelivered Message Headers\nContent-Type: text/rfc822-headers",
            _headers_of(original),
        )
    )
    return _report(
        headers,
        [
            ("Content-Description: Notification\nContent-Type: text/plain; charset=us-ascii", notice),
            ("Content-Description: Delivery report\nContent-Type: message/delivery-status", status_fields),
            returned,
        ],
    )  # fmt: skip


def exchange_ndr(
    original: bytes, recipient: str, *, to: str, original_message_id: str, encoded: bool = False
) -> bytes:
    """Exchange Online's NDR: In-Reply-To the original, a text and an HTML explanation, the
    status part (base64 when `encoded`, as some Exchange servers send it) and the original."""
    headers = (
        "From: Microsoft Outlook\n <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@"
        "northwind-supplies.com>\n"
        f"To: <{to}>\nDate: {DATE}\n"
        f"Subject: Undeliverable: Your renewal\nContent-Language: en-US\n"
        f"Message-ID: <{next(_unique)}b5c1e2f0a3@DB9PR01MB1234.eurprd01.prod.exchangelabs.com>\n"
        f"In-Reply-To: {original_message_id}\nReferences: {original_message_id}\n"
        "Thread-Topic: Your renewal\nAuto-Submitted: auto-replied\n"
        "X-MS-Exchange-Message-Is-Ndr:\nX-MS-PublicTrafficType: Email\n"
    )
    diagnostic = (
        "smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
    )
    fields = (
        "Reporting-MTA: dns;DB9PR01MB1234.eurprd01.prod.exchangelabs.com\n"
        f"Received-From-MTA: dns;DB9PR01MB1234.eurprd01.prod.exchangelabs.com\n"
        f"Arrival-Date: {DATE}\n\n"
        f"Final-Recipient: rfc822;{recipient}\nAction: failed\nStatus: 5.1.10\n"
        f"Diagnostic-Code: {diagnostic}\nX-Display-Name: {recipient}\n"
    )
    boundary = f"=_alt_{next(_unique)}"
    explanation = (
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        f"--{boundary}\nContent-Type: text/plain; charset=us-ascii\n\n"
        f"Your message to {recipient} couldn't be delivered.\n"
        f"{recipient.split('@')[0]} wasn't found at {recipient.split('@')[1]}.\n\n"
        "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not "
        "found by SMTP address lookup'\n"
        f"--{boundary}\nContent-Type: text/html; charset=us-ascii\n\n"
        f"<html><body><p>Your message to {recipient} couldn't be delivered.</p></body></html>\n"
        f"--{boundary}--",
    )
    if encoded:
        status = (
            "Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64",
            base64.encodebytes(fields.encode()).decode().rstrip("\n"),
        )
    else:
        status = ("Content-Type: message/delivery-status", fields)
    returned = ("Content-Type: message/rfc822", _text(original))
    return _report(headers, [explanation, status, returned])


def qmail_failure_notice(original: bytes, recipient: str, *, to: str) -> bytes:
    """qmail's plain-text bounce, quoting the original below its notice."""
    return (
        f"From: MAILER-DAEMON@mx.example.net\nTo: {to}\nDate: {DATE}\n"
        f"Subject: failure notice\nMessage-ID: <{next(_unique)}.qmail@mx.example.net>\n\n"
        "Hi. This is the qmail-send program at mx.example.net.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        f"<{recipient}>:\n192.0.2.10 does not like recipient.\n"
        f"Remote host said: 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown\n"
        "Giving up on 192.0.2.10.\n\n"
        "--- Below this line is a copy of the message.\n\n" + _text(original) + "\n"
    ).encode()
