"""Delivery reports (bounces) → what they say: which message, which recipient, failed or delayed.

A campaign email that cannot be delivered comes back to its sender as a delivery status
notification, and it can arrive through any source (import, IMAP, Graph, EWS, the drop address).
`delivery_report(item)` reads it while the raw bytes are still at hand (the pipeline drops them
once an item is prepared), so `server.crm.bounces` can mark the campaign's recipient.

Forms understood:

* RFC 3464 `multipart/report; report-type=delivery-status` (Postfix, Exim, Sendmail, Gmail, and
  Exchange/Outlook NDRs, which are the same with the original as `message/rfc822`): one
  `RecipientStatus` per recipient block of the `message/delivery-status` part (also when that part
  is base64 or quoted-printable encoded, as some Exchange servers send it); the original's
  Message-ID from the returned `message/rfc822` or `text/rfc822-headers` part.
* A plain-text bounce (qmail's "failure notice", older Exim and Sendmail, gateways): from a
  mailer daemon or with a bounce subject; the status is the first enhanced status code (or SMTP
  reply code) in the text before the quoted original, and the Message-ID the quoted one.

Either way the report's own In-Reply-To and References come last among the candidate ids
(Exchange sets them to the original). Reading never raises: a report whose parts cannot be read
comes back with `problem` saying why, and mail that is no report at all gives None.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import logging
import quopri
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message

from server.mail_ingest.items import MailItem
from server.mail_ingest.mime_fields import normalise_address, parse_message_id

log = logging.getLogger(__name__)

MAX_REPORT_BYTES = 2 * 1024 * 1024  # the report and the returned headers come first
MAX_RECIPIENTS = 100
MAX_TEXT = 64 * 1024
MAX_DIAGNOSTIC = 300

# Local parts of the senders of bounces (Exchange's is MicrosoftExchange<hex>@...).
_DAEMONS = re.compile(
    r"^(?:mailer[-_]?daemon|mail-daemon|postmaster|microsoftexchange[0-9a-f]*)@",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undeliverable|undelivered mail|undeliverable mail|delivery status notification|"
    r"delivery failure|delivery has failed|delivery notification|mail delivery failed|"
    r"failure notice|returned mail|mail system error|non[- ]?delivery|unzustellbar|"
    r"non remis|no se puede entregar|onbestelbaar|non recapitabile)",
    re.IGNORECASE,
)
# Enhanced status codes (RFC 3463): in a Status field any class; in free text only 4 and 5 and
# not inside longer dotted numbers (IP addresses). Free text is read only up to the quoted
# original's headers, whose Received lines carry software versions ("Exim 4.94.2").
_STATUS_FIELD = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ENHANCED = re.compile(r"(?<![\d.])([45])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_SMTP_CODE = re.compile(r"(?:^|said:|\(|:)\s*([45][0-5]\d)[ -]", re.MULTILINE)
_QUOTED_ID = re.compile(
    r"^[ \t>]*message-id:[ \t]*(<[^<>\s]{1,998}>)", re.IGNORECASE | re.MULTILINE
)
_DELAY_WORDS = re.compile(
    r"delayed|will (?:keep )?(?:re)?try|still trying|not yet been delivered", re.IGNORECASE
)
# Where a plain-text bounce starts quoting the original's headers.
_QUOTED_START = re.compile(
    r"^[ \t>]*(?:return-path|received|message-id):", re.IGNORECASE | re.MULTILINE
)
_ADDRESS = re.compile(r"[^\s<>;:,\"'()]+@[^\s<>;:,\"'()]+")
_ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
_RETURNED_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers")


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """What the report says about one recipient."""

    recipient: str | None  # Final-Recipient, normalised (None: the report does not say)
    original_recipient: str | None
    action: str  # failed, delayed, delivered, relayed, expanded ("" when not said)
    status: str  # the enhanced status code, "5.1.1" ("" when not said)
    diagnostic: str = ""

    @property
    def permanent(self) -> bool:
        """A hard bounce: delivery failed for good. A 4.x.x failure (gave up after retrying)
        or a delay is not: the address may take mail tomorrow."""
        return self.action == "failed" and self.status.startswith("5.")


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    kind: str  # "dsn" (RFC 3464) or "text" (a plain-text bounce)
    message_ids: tuple[str, ...]  # the original's, best first
    recipients: tuple[RecipientStatus, ...]
    problem: str = ""  # why (part of) the report could not be read


def looks_like_report(item: MailItem) -> bool:
    """A cheap look at what every item keeps: the top content type, the sender, the subject."""
    top = item.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if top == "multipart/report":
        return "disposition-notification" not in item.headers.get("content-type", "").lower()
    sender = item.sender
    if sender is not None and _DAEMONS.match(sender.address):
        return True
    return bool(_BOUNCE_SUBJECT.match(item.subject or ""))


def delivery_report(item: MailItem) -> DeliveryReport | None:
    """The delivery report `item` is, or None when it is not one (or its bytes are gone)."""
    if item.raw is None or not looks_like_report(item):
        return None
    try:
        return read_report(item.raw, fallback_ids=(*item.in_reply_to, *item.references))
    except Exception as exc:  # hostile mail or a bug of ours: say so, never stop capture
        log.warning("delivery report not read", exc_info=True)
        problem = f"{type(exc).__name__}: {exc}"[:200]
        return DeliveryReport("dsn", (), (), problem=problem)


def read_report(raw: bytes, *, fallback_ids: tuple[str, ...] = ()) -> DeliveryReport | None:
    """Read the report in `raw` (see the module docstring); None when it says nothing."""
    message = email.message_from_bytes(raw[:MAX_REPORT_BYTES], policy=email.policy.default)
    is_dsn = message.get_content_type() == "multipart/report"
    report_type = str(message.get_param("report-type", "") or "").lower()
    if is_dsn and report_type not in ("", "delivery-status"):
        return None  # read receipts (disposition-notification), abuse reports: not bounces
    returned = _returned_ids(message)
    ids = tuple(dict.fromkeys([*returned, *fallback_ids]))
    problem = ""
    if is_dsn:
        recipients, problem = _dsn_recipients(message)
        if recipients:
            return DeliveryReport("dsn", ids, recipients)
    text = _plain_text(message)
    quoted = tuple(parse_message_id(m) or "" for m in _QUOTED_ID.findall(text))
    ids = tuple(i for i in dict.fromkeys([*returned, *quoted, *fallback_ids]) if i)
    status = _text_status(text)
    if status is not None:
        return DeliveryReport("text", ids, (status,))
    if is_dsn or ids:
        return DeliveryReport(
            "dsn" if is_dsn else "text", ids, (), problem or "no delivery status found"
        )
    return None


def _header(message: Message, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:  # a header the typed policy cannot parse
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def _returned_ids(message: Message) -> list[str]:
    """Message-IDs of the returned message (or its headers) in the report."""
    ids: list[str] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind not in _RETURNED_TYPES:
            continue
        if kind == "text/rfc822-headers":
            headers = email.message_from_string(_text_of(part), policy=email.policy.default)
            found = _header(headers, "message-id")
        else:
            inner = part.get_payload()
            first = inner[0] if isinstance(inner, list) and inner else None
            found = _header(first, "message-id") if isinstance(first, Message) else ""
        parsed = parse_message_id(found) if found else None
        if parsed:
            ids.append(parsed)
    return ids


def _dsn_recipients(message: Message) -> tuple[tuple[RecipientStatus, ...], str]:
    part = next(
        (p for p in message.walk() if p.get_content_type() == "message/delivery-status"), None
    )
    if part is None:
        return (), "no message/delivery-status part"
    blocks = _field_blocks(_status_text(part))
    if len(blocks) < 2:
        return (), "the delivery-status part has no recipient fields"
    found = []
    for fields in blocks[1 : MAX_RECIPIENTS + 1]:  # the first block is about the message
        status = _status(fields)
        if status is not None:
            found.append(status)
    return tuple(found), "" if found else "no recipient has an Action or Status"


def _status_text(part: Message) -> str:
    """The delivery-status fields as text. The parser reads the part as blocks of headers; an
    encoded part (Exchange has sent base64) arrives as one block of encoded text instead."""
    payload = part.get_payload()
    blocks = payload if isinstance(payload, list) else []
    text = "\n\n".join(
        "\n".join(f"{name}: {value}" for name, value in block.items())
        + ("\n" + str(block.get_payload()) if not block.is_multipart() else "")
        for block in blocks
        if isinstance(block, Message)
    )
    if isinstance(payload, str):
        text = payload
    encoding = _header(part, "content-transfer-encoding").lower()
    if encoding == "base64":
        try:
            return base64.b64decode("".join(text.split())).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return ""
    if encoding == "quoted-printable":
        return quopri.decodestring(text.encode("utf-8", "replace")).decode("utf-8", "replace")
    return text


def _field_blocks(text: str) -> list[dict[str, str]]:
    """RFC 3464 fields: blocks separated by blank lines, "Name: value" lines, folded values."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, ""
        elif line[0] in " \t" and last:
            current[last] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            last = name.strip().lower()
            current[last] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def _typed_address(value: str) -> str | None:
    """`rfc822; someone@example.com` → the normalised address (None when it is none)."""
    address = value.partition(";")[2] if ";" in value else value
    return normalise_address(address.strip().strip("<>")) if address.strip() else None


def _status(fields: dict[str, str]) -> RecipientStatus | None:
    code = _STATUS_FIELD.search(fields.get("status", ""))
    status = ".".join(code.groups()) if code else ""
    action = fields.get("action", "").split()[0].lower() if fields.get("action") else ""
    if action not in _ACTIONS:
        # Some MTAs leave Action out: the status class still says what happened.
        action = {"5": "failed", "4": "delayed", "2": "delivered"}.get(status[:1], "")
    if not action and not status:
        return None
    diagnostic = fields.get("diagnostic-code", "")
    diagnostic = diagnostic.partition(";")[2].strip() if ";" in diagnostic else diagnostic
    return RecipientStatus(
        recipient=_typed_address(fields.get("final-recipient", "")),
        original_recipient=_typed_address(fields.get("original-recipient", "")),
        action=action,
        status=status,
        diagnostic=diagnostic[:MAX_DIAGNOSTIC],
    )


def _text_of(part: Message) -> str:
    try:
        content = part.get_content() if isinstance(part, EmailMessage) else part.get_payload()
        return str(content)[:MAX_TEXT]
    except (LookupError, ValueError, AttributeError):  # unknown charset, broken encoding
        data = part.get_payload(decode=True)
        return data.decode("utf-8", "replace")[:MAX_TEXT] if isinstance(data, bytes) else ""


def _plain_text(message: EmailMessage) -> str:
    """The report's human-readable text: its text/plain parts (and quoted headers), outside
    any returned message."""
    texts: list[str] = []

    def visit(part: EmailMessage) -> None:
        kind = part.get_content_type()
        if kind in ("text/plain", "text/rfc822-headers"):
            if part.get_content_disposition() != "attachment":
                texts.append(_text_of(part))
        elif kind.startswith("multipart/") and part.is_multipart():
            for child in part.iter_parts():
                visit(child)  # type: ignore[arg-type]
        elif kind.startswith("multipart/"):
            texts.append(str(part.get_payload())[:MAX_TEXT])  # its boundary is broken: all text

    visit(message)
    return "\n\n".join(texts)[:MAX_TEXT]


def _first_code(head: str) -> tuple[str, int] | None:
    """The first enhanced status code in `head` (else an SMTP reply code as "5.0.0"), and where."""
    found = _ENHANCED.search(head)
    if found is not None:
        return ".".join(found.groups()), found.start()
    reply = _SMTP_CODE.search(head)
    if reply is not None:
        return f"{reply.group(1)[0]}.0.0", reply.start(1)
    return None


def _text_status(text: str) -> RecipientStatus | None:
    """The status a plain-text bounce states before its quoted original: the first status
    code, else "delayed" words; the recipient is the last address named before the code."""
    quoted = _QUOTED_START.search(text)
    head = text[: quoted.start()] if quoted else text
    code = _first_code(head)
    if code is None:
        return RecipientStatus(None, None, "delayed", "") if _DELAY_WORDS.search(head) else None
    status, at = code
    line_start = head.rfind("\n", 0, at) + 1
    line_end = head.find("\n", at)
    line = head[line_start : line_end if line_end >= 0 else len(head)].strip()
    named = _ADDRESS.findall(head[:at])
    return RecipientStatus(
        recipient=normalise_address(named[-1]) if named else None,
        original_recipient=None,
        action="failed" if status.startswith("5") else "delayed",
        status=status,
        diagnostic=line[:MAX_DIAGNOSTIC],
    )
