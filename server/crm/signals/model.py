"""The shapes the signal rules read and write: plain frozen dataclasses, no database.

A contact's `ContactTimeline` holds every email, meeting and call the contact took part in, plus
the other emails of their recent threads (so a reply from their colleague counts) and the emails
sent after their recent meetings to the other attendees (so a follow-up to anyone who was there
counts). `Team` says which addresses are ours. The rules in `server.crm.signals.rules` turn these
into `Signal`s; `server.crm.signals.store` loads them from the database and stores the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property, lru_cache
from typing import Any, Literal

from server.crm.bulk import bulk_reason
from server.crm.rules import in_domains
from server.mail_ingest.items import MailItem, Participant

Kind = Literal[
    "awaiting_reply",
    "unanswered",
    "going_cold",
    "deal_rotting",
    "top_customer",
    "churn_risk",
    "meeting_without_follow_up",
]
KINDS: tuple[Kind, ...] = (
    "awaiting_reply",
    "unanswered",
    "going_cold",
    "deal_rotting",
    "top_customer",
    "churn_risk",
    "meeting_without_follow_up",
)
RECIPIENT_ROLES = frozenset({"to", "cc", "bcc"})
MEETING_ROLES = frozenset({"organizer", "attendee"})


@dataclass(frozen=True, slots=True)
class Person:
    """One address on an activity, in one role (from/to/cc/bcc, organizer/attendee)."""

    address: str
    role: str
    contact_id: int | None = None
    response: str | None = None  # meetings: accepted, tentative, declined, needs_action...


@dataclass(frozen=True)
class Item:
    """One activity on a timeline (kind "email", "meeting" or "call")."""

    id: int
    kind: str
    at: datetime  # sent, or the meeting's start
    sender: str = ""
    people: tuple[Person, ...] = ()
    thread_id: int | None = None
    subject: str = ""  # empty at capture level metadata
    # The few headers capture keeps (Auto-Submitted, X-Auto-Response-Suppress...), when known.
    headers: tuple[tuple[str, str], ...] = ()
    ends_at: datetime | None = None  # meetings
    status: str = "confirmed"  # meetings: confirmed, tentative, cancelled
    recurring: bool = False  # a meeting series (its occurrences are not stored one by one)

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.at, self.id)

    @property
    def thread(self) -> int:
        """The thread it belongs to; an email without one is a thread of its own."""
        return self.thread_id if self.thread_id is not None else -self.id

    @cached_property
    def automatic(self) -> bool:
        """Sent by a machine, not a person: an auto-reply, an out-of-office, a no-reply sender.

        Decided by capture's own rules (`server.crm.bulk`) on what was stored: the subject
        ("Automatic reply:", "Automatische Antwort:", "Réponse automatique :"...) and the sender,
        plus the auto-reply headers when they are known. By default capture does not even keep
        such mail; this matters when an admin turned "skip automated" off.
        """
        return self.kind == "email" and machine_sent(self.subject, self.sender, self.headers)

    def recipients(self) -> tuple[Person, ...]:
        return tuple(p for p in self.people if p.role in RECIPIENT_ROLES)


@lru_cache(maxsize=65536)
def machine_sent(subject: str, sender: str, headers: tuple[tuple[str, str], ...] = ()) -> bool:
    """Capture's own verdict (`bulk_reason`) on an email's subject, sender and kept headers;
    remembered, since a mailbox repeats its senders and subjects ("Re: ...") a lot."""
    participants = [Participant(sender, "from")] if sender else []
    mail = MailItem(
        message_id=None,
        subject=subject,
        date=None,
        participants=participants,
        headers=dict(headers),
    )
    return bulk_reason(mail) is not None


@dataclass(frozen=True)
class Team:
    """Which addresses are ours: the internal domains, and every user's and mailbox's addresses
    (`users` maps an address to the user it belongs to)."""

    domains: frozenset[str] = frozenset()
    users: Mapping[str, int] = field(default_factory=dict)
    addresses: frozenset[str] = frozenset()  # shared mailboxes and aliases without a user
    _known: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def is_team(self, address: str) -> bool:
        found = self._known.get(address)
        if found is None:
            found = self._known[address] = bool(address) and (
                address in self.users
                or address in self.addresses
                or in_domains(address, self.domains)
            )
        return found

    def user_of(self, address: str) -> int | None:
        return self.users.get(address)


@dataclass(frozen=True)
class ContactFacts:
    id: int
    name: str = ""
    addresses: frozenset[str] = frozenset()
    lifecycle_stage: str = "lead"
    owner_id: int | None = None


@dataclass(frozen=True)
class ContactTimeline:
    contact: ContactFacts
    items: tuple[Item, ...] = ()  # in (at, id) order


@dataclass(frozen=True)
class DealFacts:
    id: int
    title: str
    status: str  # open, won, lost
    stage_id: int
    stage_name: str
    rot_days: int | None  # the stage's own limit
    stage_entered_at: datetime
    owner_id: int | None = None
    last_activity_id: int | None = None  # latest activity on the deal or with its contacts
    last_activity_at: datetime | None = None


@dataclass(frozen=True)
class WonDeal:
    id: int
    amount: Decimal
    currency: str
    closed_at: datetime
    owner_id: int | None = None


@dataclass(frozen=True)
class CompanyFacts:
    id: int
    name: str
    owner_id: int | None = None
    won: tuple[WonDeal, ...] = ()
    custom_fields: Mapping[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Reason:
    """Why a signal is there: a sentence, the activities it is about, and the facts behind it
    (dates as ISO 8601, counts, limits) for a client to render its own way."""

    summary: str
    activity_ids: tuple[int, ...] = ()
    facts: Mapping[str, str | int | float | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "activity_ids": list(self.activity_ids),
            "facts": dict(self.facts),
        }


@dataclass(frozen=True)
class Signal:
    """One thing to act on. `key` names this very occurrence (a new email gives a new key), so a
    dismissal sticks to what was dismissed and a new situation comes back. It shows from `due_at`
    until `expires_at` (None: until it is resolved)."""

    key: str
    kind: Kind
    due_at: datetime
    reason: Reason
    contact_id: int | None = None
    deal_id: int | None = None
    company_id: int | None = None
    owner_id: int | None = None
    expires_at: datetime | None = None
