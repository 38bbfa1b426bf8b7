"""The API's JSON shapes (pydantic), shared by several resources; they validate what comes in and
document what goes out in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import object_session

from server.crm.companies import tags_of as companies_tags_of
from server.crm.contacts import tags_of as contacts_tags_of


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorBody


class CompanyRef(Out):
    id: int
    name: str


class CompanyOut(Out):
    id: int
    name: str
    domains: list[str]
    owner_id: int | None
    tags: list[str]
    custom_fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Send it back with a change: a stale one is refused (409)")


class ContactOut(Out):
    id: int
    name: str
    title: str
    phone: str
    emails: list[str] = Field(description="Normalised addresses, the primary one first")
    company: CompanyRef | None
    lifecycle_stage: str
    owner_id: int | None
    tags: list[str]
    last_contacted_at: datetime | None
    next_follow_up_at: datetime | None
    custom_fields: dict[str, Any]
    source: str = Field(description="Who created it: capture, user, import or form")
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Send it back with a change: a stale one is refused (409)")


class ParticipantOut(Out):
    role: str
    address: str | None
    name: str
    contact_id: int | None
    response: str | None


class ActivityOut(Out):
    id: int
    kind: str
    occurred_at: datetime
    direction: str
    thread_id: int | None
    level: str = Field(description="What the viewer may see of it: metadata, subject or full")
    subject: str
    snippet: str
    body: str | None = Field(
        description="The text at level full. An email's or a meeting's only from GET "
        "/activities/{id} (each read is in the audit log); lists give notes', calls' and forms'"
    )
    sender_address: str
    sender_name: str
    has_attachments: bool
    participants: list[ParticipantOut]
    meeting: dict[str, Any] | None
    deal_id: int | None
    company_id: int | None


class StageRef(Out):
    id: int
    name: str
    outcome: str = Field(description="open, won or lost: a deal in this stage has that status")
    probability: int = Field(description="Chance of winning a deal in this stage, in percent")


class DealOut(Out):
    id: int
    title: str
    amount: Decimal | None = Field(description='A decimal string, e.g. "1200.50"')
    currency: str = Field(description="ISO 4217 code")
    pipeline_id: int
    stage: StageRef
    status: str = Field(description="open, won or lost (the stage's outcome)")
    owner_id: int | None
    company_id: int | None
    expected_close: date | None = None
    closed_at: datetime | None = Field(None, description="When it entered a won or lost stage")
    stage_entered_at: datetime
    custom_fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Send it back with a change: a stale one gets 409")


class FollowUpOut(Out):
    id: int
    title: str
    contact_id: int | None
    deal_id: int | None
    owner_id: int | None
    due_at: datetime
    done_at: datetime | None
    snoozed_until: datetime | None
    created_at: datetime
    version: int = Field(description="Send it back with a change: a stale one gets 409")


class UnknownPersonOut(Out):
    address: str
    suggested_name: str
    suggested_company: str | None
    company_id: int | None
    seen_in: int


def _primary_first(email: Any) -> tuple[bool, int]:
    return (not email.is_primary, email.id or 0)


def contact_out(contact: Any, tags: Sequence[str] | None = None) -> ContactOut:
    """A contact as the API shows it. Tags are not a relationship of the model: pass them when
    rendering many (`server.crm.contacts.tags_of` loads them in one query); without them they are
    loaded for this one contact through its session."""
    if tags is None:
        session = object_session(contact)
        tags = contacts_tags_of(session, [contact.id]).get(contact.id, []) if session else []
    return ContactOut(
        id=contact.id,
        name=contact.name,
        title=contact.title,
        phone=contact.phone,
        emails=[e.address for e in sorted(contact.emails, key=_primary_first)],
        company=CompanyRef(id=contact.company.id, name=contact.company.name)
        if contact.company
        else None,
        lifecycle_stage=contact.lifecycle_stage,
        owner_id=contact.owner_id,
        tags=list(tags),
        last_contacted_at=contact.last_contacted_at,
        next_follow_up_at=contact.next_follow_up_at,
        custom_fields=contact.custom_fields,
        source=contact.source,
        created_at=contact.created_at,
        updated_at=contact.updated_at,
        version=contact.version,
    )


def company_out(company: Any, tags: Sequence[str] | None = None) -> CompanyOut:
    """A company as the API shows it; tags as for `contact_out`."""
    if tags is None:
        session = object_session(company)
        tags = companies_tags_of(session, [company.id]).get(company.id, []) if session else []
    return CompanyOut(
        id=company.id,
        name=company.name,
        domains=[d.domain for d in company.domains],
        owner_id=company.owner_id,
        tags=list(tags),
        custom_fields=company.custom_fields,
        created_at=company.created_at,
        updated_at=company.updated_at,
        version=company.version,
    )
