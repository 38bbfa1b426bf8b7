"""Log an email from the task pane: the user's explicit "this belongs in the CRM".

The pane sends the email's internet Message-ID and what Office.js shows of it (subject, sender,
recipients, date, body text, conversation id). The email then goes through the same capture core
as mail read from a mailbox, as if seen in the user's own import link, folder "Logged from
Outlook" — so it gets the same identity (message key + sender), thread, participants and contacts
as a captured copy, and a later sync of a mailbox holding it finds it already there.

If the email is already captured (same message key and sender, within capture's date tolerance),
nothing is duplicated: the user's link is recorded as having seen it, which is also what lets
them see it when it came in through a colleague's private mailbox, and content the pane sent fills
in what a sparser mailbox left out. If someone unlogged it, it is logged again: the explicit
action now wins over the earlier one.

Which capture rules an explicit log overrides:
  overridden — the user's own never-log list, "skip internal-only mail", "skip mailing lists" and
               "skip automated senders": they are defaults for automatic capture, and a person
               asking for this one email has decided otherwise.
  kept       — the admin's blocked addresses and domains, and content a rule removed (an erasure
               request, a block): those are the organisation's decisions, not a default, so the
               log is refused (403 / 409) and says why.
  kept       — the admin's contact auto-creation policy: logging one email does not change who
               becomes a contact.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.crm.addresses import normalise_address
from server.crm.capture import SAME_EMAIL_DATE_TOLERANCE, Capturer
from server.crm.errors import Conflict, DomainError, Forbidden
from server.crm.mailboxes import import_link, link_info
from server.crm.rules import CapturePolicy, load_policy, seed_internal_domains
from server.crm.threads import normalise_message_id
from server.crm.viewer import Viewer
from server.mail_ingest.items import MailItem, Participant, Role
from server.mail_ingest.mime_text import SNIPPET_LENGTH, reply_snippet
from server.mail_ingest.prepare import PrepareOptions, prepare_item
from server.models import Activity, MailboxLink

PANE_FOLDER = "Logged from Outlook"
MAX_BODY = 1_000_000  # characters: a pasted novel is still logged, a runaway payload is not
# What the activity's `message_key` and `identity` columns hold; capture's identity is
# "<key>|<sender>" and, for a reused Message-ID, "|YYYYmmddTHHMM" more.
MAX_KEY = 600
MAX_IDENTITY = 700
IDENTITY_EXTRA = len("|") + len("|20260101T0000")


@dataclass(frozen=True)
class PaneAddress:
    address: str
    name: str = ""


@dataclass(frozen=True)
class PaneEmail:
    """What the task pane knows of the open email (Office.js `item` properties)."""

    message_id: str
    sender: PaneAddress
    date: datetime
    subject: str = ""
    to: Sequence[PaneAddress] = ()
    cc: Sequence[PaneAddress] = ()
    bcc: Sequence[PaneAddress] = ()
    body: str | None = None
    snippet: str | None = None
    conversation_id: str | None = None


@dataclass(frozen=True)
class Logged:
    activity_id: int
    created: bool  # a new activity (False: it was already captured)
    relogged: bool  # it had been unlogged, and is back


def log_email(
    session: Session, viewer: Viewer, email: PaneEmail, *, internal_domains: Iterable[str] = ()
) -> Logged:
    """Make sure this email is on the timeline, captured exactly as a mailbox copy would be.

    `internal_domains` (RAPPORT_INTERNAL_DOMAINS) seeds the internal-domains rule if nothing has
    yet, as an import would: without it a colleague would be taken for a customer.
    """
    normalised = normalise_message_id(email.message_id)
    if normalised is None:
        raise DomainError("message_id is not a Message-ID", field="message_id")
    key = f"mid:{normalised}"
    sender = normalise_address(email.sender.address)
    if sender is None:
        raise DomainError(f"'{email.sender.address}' is not an email address", field="from.address")
    if len(key) > MAX_KEY or len(key) + len(sender) + IDENTITY_EXTRA > MAX_IDENTITY:
        raise DomainError("message_id is too long to be a real Message-ID", field="message_id")
    date = _utc(email.date)
    if email.body is not None and len(email.body) > MAX_BODY:
        raise DomainError(f"body is longer than {MAX_BODY} characters", field="body")

    existing = find_logged(session, key, sender, date)
    relogged = False
    if existing is not None:
        if existing.content_removed_reason is not None:
            raise Conflict(
                "a capture rule removed this email's content "
                f"({existing.content_removed_reason}); an admin decides whether it comes back"
            )
        if existing.unlogged_at is not None:
            existing.unlogged_at = None
            existing.unlogged_by_id = None
            session.flush()
            relogged = True

    seed_internal_domains(session, internal_domains)
    link = import_link(session, viewer.email)
    info = link_info(link)
    policy = explicit_log_policy(load_policy(session))
    item = _mail_item(email, sender, date)
    prepared = prepare_item(
        item,
        PrepareOptions(
            level=info.capture_level,
            internal_domains=policy.internal_domains,
            owner_addresses=info.owner_addresses,
        ),
    )
    counts = Capturer(info, policy).capture_batch(session, [prepared])
    if counts.skipped:
        rule = next(iter(counts.skipped))
        raise Forbidden(
            f"the organisation's capture rules do not log mail with these people ({rule}); "
            "an admin can change the rule"
        )
    if counts.captured:
        session.execute(
            update(MailboxLink)
            .where(MailboxLink.id == link.id)
            .values(messages_captured=MailboxLink.messages_captured + counts.captured)
        )
    session.expire_all()  # capture wrote through Core: read the rows afresh
    logged = find_logged(session, key, sender, date)
    assert logged is not None, "capture reported the email captured or known"
    return Logged(logged.id, created=counts.captured > 0, relogged=relogged)


def explicit_log_policy(policy: CapturePolicy) -> CapturePolicy:
    """The capture policy for a person's explicit log (see the module docstring)."""
    return dataclasses.replace(
        policy,
        never_log={},
        skip_internal_only=False,
        skip_mailing_lists=False,
        skip_automated=False,
    )


def find_logged(session: Session, key: str, sender: str, date: datetime) -> Activity | None:
    """The email activity capture would match this one to: same message key and sender, and of
    those the closest in date within capture's tolerance."""
    candidates = session.scalars(
        select(Activity).where(
            Activity.message_key == key,
            Activity.kind == "email",
            Activity.sender_address == sender,
        )
    )
    best: Activity | None = None
    for activity in candidates:
        distance = abs(activity.occurred_at - date)
        if distance <= SAME_EMAIL_DATE_TOLERANCE and (
            best is None or distance < abs(best.occurred_at - date)
        ):
            best = activity
    return best


def _mail_item(email: PaneEmail, sender: str, date: datetime) -> MailItem:
    participants = [Participant(sender, "from", _name(email.sender.name))]
    roles: tuple[tuple[Role, Sequence[PaneAddress]], ...] = (
        ("to", email.to),
        ("cc", email.cc),
        ("bcc", email.bcc),
    )
    for role, people in roles:
        for person in people:
            # Outlook can hand over X.500 paths for colleagues instead of SMTP addresses; they
            # name nobody a contact could be matched to, so they are left out.
            address = normalise_address(person.address)
            if address is not None:
                participants.append(Participant(address, role, _name(person.name)))
    body = _text(email.body or "") or None
    given = " ".join(_text(email.snippet or "").split())[:SNIPPET_LENGTH]
    snippet = given or (reply_snippet(body) if body else "")
    return MailItem(
        message_id=email.message_id.strip(),
        subject=" ".join(_text(email.subject).split()),
        date=date,
        participants=participants,
        provider_id=email.message_id.strip()[:500],
        folder=PANE_FOLDER,
        conversation_id=" ".join(_text(email.conversation_id or "").split())[:500] or None,
        text=body,
        snippet=" ".join(snippet.split()),
        size=len(body.encode("utf-8", "replace")) if body else 0,
    )


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise DomainError("date needs its UTC offset", field="date")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 9999 at a western offset is past the end of the calendar
        raise DomainError("date is out of range", field="date") from None


def _text(raw: str) -> str:
    """Text as PostgreSQL can store it: a NUL from a broken client is dropped, not a 500."""
    return raw.replace("\x00", "")


def _name(raw: str) -> str:
    return " ".join(_text(raw).split())[:300]
