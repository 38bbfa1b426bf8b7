"""The task pane's one call: everything Rapport knows about the people on an email.

For a handful of addresses: their contacts (with all their addresses), companies, the recent
shared timeline, open deals with their stage, follow-ups due, and for addresses Rapport has no
contact for, a suggestion to create one (name and company guessed from past mail).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from server.crm.addresses import choose_display_name, normalise_address
from server.crm.domains import company_domain_for, company_name_from_domain
from server.crm.errors import DomainError
from server.crm.timeline import TimelinePage, timeline
from server.crm.viewer import Viewer
from server.models import (
    ActivityParticipant,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    Deal,
    DealContact,
    FollowUp,
)

MAX_ADDRESSES = 50


@dataclass
class UnknownPerson:
    address: str
    suggested_name: str
    suggested_company: str | None
    company_id: int | None
    seen_in: int  # how many captured activities this address takes part in


@dataclass
class LookupResult:
    contacts: list[Contact]
    companies: list[Company]
    unknown: list[UnknownPerson]
    timeline: TimelinePage
    deals: list[Deal]
    follow_ups: list[FollowUp]
    addresses: list[str] = field(default_factory=list)


def normalised_addresses(raw: Sequence[str]) -> list[str]:
    if len(raw) > MAX_ADDRESSES:
        raise DomainError(f"at most {MAX_ADDRESSES} addresses per lookup", field="email")
    result = []
    for value in raw:
        address = normalise_address(value)
        if address is None:
            raise DomainError(f"'{value}' is not an email address", field="email")
        if address not in result:
            result.append(address)
    return result


def lookup(
    session: Session,
    viewer: Viewer,
    emails: Sequence[str],
    *,
    limit: int = 20,
    cursor: str | None = None,
    own_domains: Sequence[str] = (),
) -> LookupResult:
    addresses = normalised_addresses(emails)
    contacts = list(
        session.scalars(
            select(Contact)
            .join(ContactEmail, ContactEmail.contact_id == Contact.id)
            .where(ContactEmail.address.in_(addresses))
            .options(selectinload(Contact.emails), selectinload(Contact.company))
            .distinct()
        )
    )
    known = {e.address for c in contacts for e in c.emails}
    contact_ids = [c.id for c in contacts]
    company_ids = sorted({c.company_id for c in contacts if c.company_id is not None})
    companies = (
        list(
            session.scalars(
                select(Company)
                .where(Company.id.in_(company_ids))
                .options(selectinload(Company.domains))
            )
        )
        if company_ids
        else []
    )
    others = [a for a in addresses if a not in known and a != viewer.email]
    unknown = [_unknown(session, a) for a in others if not _is_own(a, own_domains)]
    page = timeline(
        session,
        viewer,
        contact_ids=contact_ids,
        addresses=[u.address for u in unknown],
        limit=limit,
        cursor=cursor,
    )
    deals = _open_deals(session, contact_ids, company_ids)
    follow_ups = _due_follow_ups(session, contact_ids, [d.id for d in deals])
    return LookupResult(contacts, companies, unknown, page, deals, follow_ups, addresses)


def _is_own(address: str, own_domains: Sequence[str]) -> bool:
    domain = address.rpartition("@")[2]
    return any(domain == d or domain.endswith("." + d) for d in own_domains)


def _unknown(session: Session, address: str) -> UnknownPerson:
    rows = session.execute(
        select(ActivityParticipant.name, ActivityParticipant.occurred_at)
        .where(ActivityParticipant.address == address)
        .order_by(ActivityParticipant.occurred_at.desc())
        .limit(50)
    ).all()
    names: list[tuple[str, datetime | None]] = [(name, when) for name, when in rows]
    domain = company_domain_for(address)
    company_id = (
        session.scalar(select(CompanyDomain.company_id).where(CompanyDomain.domain == domain))
        if domain
        else None
    )
    return UnknownPerson(
        address=address,
        suggested_name=choose_display_name(names, address),
        suggested_company=company_name_from_domain(domain) if domain else None,
        company_id=company_id,
        seen_in=len(rows),
    )


def _open_deals(session: Session, contact_ids: list[int], company_ids: list[int]) -> list[Deal]:
    if not contact_ids and not company_ids:
        return []
    by_contact = select(DealContact.deal_id).where(DealContact.contact_id.in_(contact_ids))
    return list(
        session.scalars(
            select(Deal)
            .where(
                Deal.status == "open",
                or_(Deal.id.in_(by_contact), Deal.company_id.in_(company_ids)),
            )
            .options(selectinload(Deal.stage))
            .order_by(Deal.updated_at.desc())
            .limit(20)
        )
    )


def _due_follow_ups(
    session: Session, contact_ids: list[int], deal_ids: list[int]
) -> list[FollowUp]:
    if not contact_ids and not deal_ids:
        return []
    return list(
        session.scalars(
            select(FollowUp)
            .where(
                FollowUp.done_at.is_(None),
                or_(FollowUp.contact_id.in_(contact_ids), FollowUp.deal_id.in_(deal_ids)),
            )
            .order_by(FollowUp.due_at)
            .limit(20)
        )
    )
