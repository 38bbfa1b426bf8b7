"""One campaign email as MIME: the rendered text and HTML, the recipient's own Message-ID, the
unsubscribe link in the body and in the RFC 2369 / RFC 8058 one-click headers, and the sender's
"log this email" marker (so capture files the copy in their Sent Items as this same activity,
although a List-Unsubscribe header otherwise marks mail as bulk)."""

from __future__ import annotations

import html
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from server.crm.templates import Rendered
from server.models import utcnow

LOG_HEADER = "X-Rapport-Log"


def unsubscribe_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/u/{token}"


def build_message(
    rendered: Rendered,
    *,
    sender_name: str,
    sender_address: str,
    to_name: str,
    to_address: str,
    message_id: str,
    unsubscribe: str,
    log_marker: str,
) -> bytes:
    message = EmailMessage()
    message["From"] = Address(sender_name, addr_spec=sender_address)
    message["To"] = Address(to_name, addr_spec=to_address)
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = message_id
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if log_marker:
        message[LOG_HEADER] = log_marker
    text = rendered.body_text.rstrip() + f"\n\n--\nTo stop receiving these emails: {unsubscribe}\n"
    message.set_content(text)
    link = html.escape(unsubscribe, quote=True)
    footer = (
        '<p style="font-size:small;color:#666">To stop receiving these emails, '
        f'<a href="{link}">unsubscribe</a>.</p>'
    )
    message.add_alternative(
        f"<!doctype html><html><body>{rendered.body_html}{footer}</body></html>", subtype="html"
    )
    return message.as_bytes(policy=SMTP)  # CRLF line ends, as SMTP DATA needs them
