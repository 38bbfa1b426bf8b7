"""The API's JSON shapes (pydantic), shared by several resources; they validate what comes in and
document what goes out in the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
    custom_fields: dict[str, Any]
    version: int


class ContactOut(Out):
    id: int
    name: str
    title: str
    phone: str
    emails: list[str]
    company: CompanyRef | None
    lifecycle_stage: str
    owner_id: int | None
    last_contacted_at: datetime | None
    next_follow_up_at: datetime | None
    custom_fields: dict[str, Any]
    version: int


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
    body: str | None
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
    outcome: str


class DealOut(Out):
    id: int
    title: str
    amount: Decimal | None
    currency: str
    pipeline_id: int
    stage: StageRef
    status: str
    owner_id: int | None
    company_id: int | None
    expected_close: Any = None
    version: int


class FollowUpOut(Out):
    id: int
    title: str
    contact_id: int | None
    deal_id: int | None
    owner_id: int | None
    due_at: datetime
    done_at: datetime | None
    snoozed_until: datetime | None


class UnknownPersonOut(Out):
    address: str
    suggested_name: str
    suggested_company: str | None
    company_id: int | None
    seen_in: int


def contact_out(contact: Any) -> ContactOut:
    return ContactOut(
        id=contact.id,
        name=contact.name,
        title=contact.title,
        phone=contact.phone,
        emails=[e.address for e in contact.emails],
        company=CompanyRef(id=contact.company.id, name=contact.company.name)
        if contact.company
        else None,
        lifecycle_stage=contact.lifecycle_stage,
        owner_id=contact.owner_id,
        last_contacted_at=contact.last_contacted_at,
        next_follow_up_at=contact.next_follow_up_at,
        custom_fields=contact.custom_fields,
        version=contact.version,
    )


def company_out(company: Any) -> CompanyOut:
    return CompanyOut(
        id=company.id,
        name=company.name,
        domains=[d.domain for d in company.domains],
        owner_id=company.owner_id,
        custom_fields=company.custom_fields,
        version=company.version,
    )
