"""New leads from the web form on a company's own site: a contact, the submission on their
timeline, an owner, and a follow-up for the owner.

A submission names a person (email required; name, company, phone, message optional). It creates
the contact, or updates an existing one's missing fields (a name or phone typed on the form
never overwrites what the team recorded), and records the submission as a timeline entry of kind
"form" with everything that was typed. Its owner, by rule:

1. the contact's owner, when they are known already;
2. else the owner of their company (found by the address's domain, as capture finds it);
3. else the next of the form's owners in turn (`lead_form.owners`, round robin);
4. else the first admin.

The owner gets a follow-up ("Reply to Clara's enquiry"), due `lead_form.reply_within_hours`
later (default 4). An erased person (GDPR) is never recreated: their submission is dropped and
counted, like spam.

Settings (`lead_form.*`, admin: `GET`/`PUT /api/v1/admin/lead-form`): enabled, owners (user
ids), reply_within_hours, thank_you_url (where the browser goes after submitting; none: Rapport's
own thank-you page), and the counters of submissions accepted and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.crm.addresses import normalise_address
from server.crm.contacts import create_contact
from server.crm.custom_fields import valid_id
from server.crm.errors import DomainError
from server.crm.followups import create_follow_up
from server.crm.privacy import address_hash, suppression_key
from server.crm.settings import get_setting, set_setting
from server.crm.signals.changes import contacts_changed
from server.crm.viewer import Viewer
from server.models import (
    Activity,
    ActivityParticipant,
    Company,
    Contact,
    ContactEmail,
    Suppression,
    User,
    utcnow,
)

PREFIX = "lead_form."
LIMITS = {"name": 200, "email": 320, "company": 200, "phone": 60, "message": 5000}
DEFAULTS: dict[str, Any] = {
    "enabled": False,
    "owners": [],
    "reply_within_hours": 4,
    "thank_you_url": None,
}


@dataclass(frozen=True)
class LeadFormSettings:
    enabled: bool
    owners: list[int]
    reply_within_hours: int
    thank_you_url: str | None


@dataclass(frozen=True)
class Submission:
    email: str
    name: str = ""
    company: str = ""
    phone: str = ""
    message: str = ""
    page: str = ""  # where the form was (the Referer), for the record


@dataclass(frozen=True)
class Accepted:
    contact_id: int
    activity_id: int
    owner_id: int
    follow_up_id: int
    created: bool


def read_settings(session: Session) -> LeadFormSettings:
    values = {k: get_setting(session, PREFIX + k) for k in DEFAULTS}
    merged = {k: DEFAULTS[k] if v is None else v for k, v in values.items()}
    return LeadFormSettings(
        enabled=bool(merged["enabled"]),
        owners=[int(o) for o in merged["owners"]],
        reply_within_hours=int(merged["reply_within_hours"]),
        thank_you_url=merged["thank_you_url"],
    )


def save_settings(session: Session, changes: dict[str, Any]) -> LeadFormSettings:
    for key, value in changes.items():
        if key not in DEFAULTS:
            raise DomainError(f"{key} is not a lead-form setting", field=key)
        if value is None and key != "thank_you_url":
            value = DEFAULTS[key]  # null: back to the default (no owners, 4 hours, off)
        if key == "owners":
            if not all(isinstance(o, int) and valid_id(o) for o in value):
                raise DomainError("owners are user ids", field="owners")
            known = set(session.scalars(select(User.id).where(User.id.in_(value))))
            unknown = [o for o in value if o not in known]
            if unknown:
                raise DomainError(f"there is no user {unknown[0]}", field="owners")
        if key == "reply_within_hours" and not 0 < int(value) <= 24 * 14:
            raise DomainError("reply_within_hours is 1 to 336", field=key)
        if key == "thank_you_url" and value and not _web_address(str(value)):
            raise DomainError("thank_you_url must be an http(s) address", field=key)
        set_setting(session, PREFIX + key, value)
    return read_settings(session)


def _web_address(value: str) -> bool:
    try:
        value.encode("utf-8")
        parts = urlsplit(value)
    except (UnicodeEncodeError, ValueError):
        return False
    return parts.scheme in ("https", "http") and bool(parts.hostname) and " " not in value


def count(session: Session, what: str) -> int:
    return int(get_setting(session, f"{PREFIX}count.{what}") or 0)


def bump(session: Session, what: str) -> None:
    set_setting(session, f"{PREFIX}count.{what}", count(session, what) + 1)


def clean(raw: dict[str, str]) -> Submission:
    """The typed fields, trimmed and checked: a DomainError names the first bad one."""
    # A NUL is no character anyone typed (PostgreSQL cannot store one): dropped, as data.
    text = {k: str(raw.get(k, "")).replace("\x00", "") for k in LIMITS}
    values = {k: " ".join(text[k].split()) for k in LIMITS if k != "message"}
    values["message"] = text["message"].strip()
    for key, limit in LIMITS.items():
        if len(values[key]) > limit:
            raise DomainError(f"{key} is longer than {limit} characters", field=key)
    if not values["email"]:
        raise DomainError("give your email address, so that we can answer", field="email")
    try:
        address = normalise_address(values["email"])
    except ValueError:
        address = ""
    if not address or "@" not in address or " " in address:
        raise DomainError(f"{values['email']!r} is not an email address", field="email")
    values["email"] = address
    return Submission(**values)


def accept(
    session: Session, submission: Submission, *, now: datetime | None = None
) -> Accepted | None:
    """Record the submission; None when the address belongs to an erased person."""
    now = now or utcnow()
    key = suppression_key(session)
    if key is not None and session.scalar(
        select(Suppression.id).where(
            Suppression.address_hash == address_hash(key, submission.email)
        )
    ):
        bump(session, "dropped")
        return None
    settings = read_settings(session)
    contact = session.scalar(
        select(Contact)
        .join(ContactEmail, ContactEmail.contact_id == Contact.id)
        .where(ContactEmail.address == submission.email)
    )
    admin = _first_admin(session)
    created = contact is None
    if contact is None:
        contact = create_contact(
            session,
            admin,
            {
                "name": submission.name,
                "emails": [submission.email],
                "phone": submission.phone,
                **({"company_name": submission.company} if submission.company else {}),
            },
            source="form",
        )
    else:
        if not contact.name and submission.name:
            contact.name = submission.name
        if not contact.phone and submission.phone:
            contact.phone = submission.phone
    owner_id = (
        contact.owner_id or _company_owner(session, contact) or _next_owner(session, settings)
    )
    owner_id = owner_id or admin.id
    if contact.owner_id is None:
        contact.owner_id = owner_id
    activity = _record(session, contact, submission, now)
    first = contact.name.split()[0] if contact.name else submission.email
    follow_up = create_follow_up(
        session,
        Viewer(owner_id, "", "member"),
        title=f"Reply to {first}'s enquiry from the web form",
        due_at=now + timedelta(hours=settings.reply_within_hours),
        contact_id=contact.id,
        owner_id=owner_id,
    )
    bump(session, "accepted")
    contacts_changed(session, [contact.id])
    return Accepted(contact.id, activity.id, owner_id, follow_up.id, created)


def _record(session: Session, contact: Contact, submission: Submission, now: datetime) -> Activity:
    lines = [
        f"{label}: {value}"
        for label, value in (
            ("Name", submission.name),
            ("Email", submission.email),
            ("Company", submission.company),
            ("Phone", submission.phone),
            ("Page", submission.page),
        )
        if value
    ]
    text = "\n".join([*lines, "", submission.message]).strip()
    first_line = submission.message.splitlines()[0] if submission.message else ""
    activity = Activity(
        kind="form",
        occurred_at=now,
        direction="incoming",
        subject=f"Web form: {first_line[:120]}" if first_line else "Web form enquiry",
        snippet=" ".join(text.split())[:300],
        body_text=text,
        sender_address=submission.email,
        sender_name=submission.name[:300],
        content_level="full",
        company_id=contact.company_id,
        details={"source": "lead_form", "page": submission.page[:500]},
        created_at=now,
        updated_at=now,
    )
    activity.participants.append(
        ActivityParticipant(
            role="from",
            address=submission.email,
            name=submission.name[:300],
            contact_id=contact.id,
            occurred_at=now,
        )
    )
    session.add(activity)
    session.flush()
    return activity


def _first_admin(session: Session) -> Viewer:
    admin = session.scalars(
        select(User).where(User.role == "admin", User.disabled_at.is_(None)).order_by(User.id)
    ).first()
    if admin is None:
        raise DomainError("Rapport has no admin to give the lead to", field="owners")
    return Viewer.of(admin)


def _company_owner(session: Session, contact: Contact) -> int | None:
    if contact.company_id is None:  # creating the contact found no company for its domain
        return None
    return session.scalar(select(Company.owner_id).where(Company.id == contact.company_id))


def _next_owner(session: Session, settings: LeadFormSettings) -> int | None:
    active = set(
        session.scalars(
            select(User.id).where(User.id.in_(settings.owners), User.disabled_at.is_(None))
        )
    )
    owners = [o for o in settings.owners if o in active]
    if not owners:
        return None
    turn = count(session, "turn")
    set_setting(session, f"{PREFIX}count.turn", turn + 1)
    return owners[turn % len(owners)]
