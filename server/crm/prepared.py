"""What a parse worker hands to capture: an item parsed, keyed and its blobs packed.

Its own module, free of SQLAlchemy and the models, so that the parse worker processes (and the
fork server they start from) import only the parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from server.crm.sure_skips import HeaderVerdict
from server.crm.threads import ThreadKeys
from server.mail_ingest.dsn import DeliveryReport
from server.mail_ingest.items import CalendarItem, MailItem

PRIVATE_SENSITIVITIES = frozenset({"private", "company-confidential", "confidential", "personal"})


@dataclass
class Prepared:
    """An item ready for capture: parsed, keyed, and its blobs computed (in a worker process).

    `item` is the email (None for an .ics file); `calendar` the meetings it carries, or the
    file's events."""

    folder: str
    provider_id: str
    item: MailItem | None = None
    calendar: list[CalendarItem] = field(default_factory=list)
    keys: ThreadKeys | None = None
    message_key: str = ""
    raw_blob: dict[str, object] | None = None
    body_blob: dict[str, object] | None = None
    attachment_blobs: list[dict[str, object] | None] = field(default_factory=list)
    # set when the bytes could not be read as an email: they go to quarantine
    quarantine_reason: str | None = None
    quarantine_detail: str = ""
    # a bounce: what it says, read while the raw bytes were at hand (server.crm.bounces)
    report: DeliveryReport | None = None
    trace_note: str = ""  # added to the capture decision's detail
    # the rule the parse worker saw skip it: it read neither body nor attachments, packed no blob
    content_skipped_by: str | None = None
    verdict: HeaderVerdict | None = None  # the header rules' verdict, when the worker made it

    @property
    def weight(self) -> int:
        """Bytes of packed blobs it holds: what a batch of them costs in memory."""
        blobs = [self.raw_blob, self.body_blob, *self.attachment_blobs]
        return sum(len(b["data"]) for b in blobs if b is not None and isinstance(b["data"], bytes))


def effective_level(item: MailItem, link_level: str) -> str:
    sensitivity = item.headers.get("sensitivity", "").strip().lower()
    return "metadata" if sensitivity in PRIVATE_SENSITIVITIES else link_level
