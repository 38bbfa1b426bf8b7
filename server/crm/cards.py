"""The task pane's people, companies, deals and follow-ups as plain values.

The lookup reads them with Core statements (`server.crm.lookup`): loading ORM objects cost more
than the queries. The signals of the same people reuse them (`server.crm.signals.read.Known`)
rather than read them again. Each card's fields are its model's columns of the same names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class EmailCard:
    id: int
    address: str
    is_primary: bool


@dataclass(frozen=True, slots=True)
class DomainCard:
    id: int
    domain: str


@dataclass(slots=True)
class CompanyCard:
    """A contact's company as the pane shows it; the fields are `Company`'s columns."""

    id: int
    name: str
    owner_id: int | None
    custom_fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int
    domains: list[DomainCard] = field(default_factory=list)


@dataclass(slots=True)
class ContactCard:
    """A contact on the email, with all its addresses and its company: plain values read in one
    statement without the ORM (loading objects cost more than the query). The fields are
    `Contact`'s columns of the same names."""

    id: int
    name: str
    title: str
    phone: str
    company_id: int | None
    lifecycle_stage: str
    owner_id: int | None
    custom_fields: dict[str, Any]
    last_contacted_at: datetime | None
    next_follow_up_at: datetime | None
    source: str
    created_at: datetime
    updated_at: datetime
    version: int
    emails: list[EmailCard] = field(default_factory=list)
    company: CompanyCard | None = None


@dataclass(frozen=True, slots=True)
class StageCard:
    id: int
    name: str
    outcome: str
    probability: int


@dataclass(frozen=True, slots=True)
class DealCard:
    """An open deal as the pane shows it: plain values, read without the ORM (loading objects
    cost more than the query). The fields are `Deal`'s columns of the same names."""

    id: int
    title: str
    amount: Decimal | None
    currency: str
    pipeline_id: int
    status: str
    owner_id: int | None
    company_id: int | None
    expected_close: date | None
    closed_at: datetime | None
    stage_entered_at: datetime
    custom_fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    version: int
    stage: StageCard


@dataclass(frozen=True, slots=True)
class FollowUpCard:
    """A follow-up due, as the pane shows it; the fields are `FollowUp`'s columns."""

    id: int
    title: str
    contact_id: int | None
    deal_id: int | None
    owner_id: int | None
    due_at: datetime
    done_at: datetime | None
    snoozed_until: datetime | None
    created_at: datetime
    version: int
