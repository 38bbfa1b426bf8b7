"""The task pane's one call: everything Rapport knows about the people on an email.

For a handful of addresses: their contacts (with all their addresses), companies, the recent
shared timeline, open deals with their stage, follow-ups due, and for addresses Rapport has no
contact for, a suggestion to create one (name and company guessed from past mail).

The pane calls this for every email a person opens, so it is a fixed handful of statements
whatever the number of addresses or the size of the history — one per section: contacts with
their addresses, companies, domains and tags (one join); the timeline page, its participants
(`server.crm.timeline`); open deals with their stage; follow-ups. Addresses with no
contact add the names they were seen with and their domain's company (one statement each, for
all of them), and the business's own domains, read only then. Every statement is built once and
bound per call: building SQLAlchemy statements costs more Python time than running them. For the
same reason the rows are read as plain values (`ContactCard`, `DealCard`, ...), not ORM objects.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, bindparam, func, or_, select, union, union_all
from sqlalchemy.orm import Session

from server.crm.addresses import choose_display_name, normalise_address
from server.crm.cards import (
    CompanyCard,
    ContactCard,
    DealCard,
    DomainCard,
    EmailCard,
    FollowUpCard,
    StageCard,
)
from server.crm.domains import company_domain_for, company_name_from_domain
from server.crm.errors import DomainError
from server.crm.sql import core_rows
from server.crm.timeline import TimelinePage, timeline
from server.crm.viewer import Viewer
from server.models import (
    ActivityParticipant,
    CaptureRule,
    Company,
    CompanyDomain,
    CompanyTag,
    Contact,
    ContactEmail,
    ContactTag,
    Deal,
    DealContact,
    FollowUp,
    Stage,
)

MAX_ADDRESSES = 50
SECTION_SIZE = 20  # deals and follow-ups shown
NAMES_SEEN = 50  # recent sightings of an unknown address its name is chosen from
NEVER = datetime.min.replace(tzinfo=UTC)
# Joins a contact's tags in the contacts statement: never inside a tag, since `clean_tag` splits
# on whitespace and the ASCII unit separator is whitespace to str.split().
TAG_SEPARATOR = "\x1f"


@dataclass
class UnknownPerson:
    address: str
    suggested_name: str
    suggested_company: str | None
    company_id: int | None
    seen_in: int  # how many captured activities this address takes part in


def _columns(card: type, *nested: str) -> tuple[str, ...]:
    """The names of a card's fields that are columns of its model (all but the nested ones)."""
    return tuple(f.name for f in fields(card) if f.name not in nested)


CONTACT_COLUMNS = _columns(ContactCard, "emails", "company")
COMPANY_COLUMNS = _columns(CompanyCard, "domains")
DEAL_COLUMNS = _columns(DealCard, "stage")
STAGE_COLUMNS = _columns(StageCard)


@dataclass
class LookupResult:
    contacts: list[ContactCard]
    companies: list[CompanyCard]
    unknown: list[UnknownPerson]
    timeline: TimelinePage
    deals: list[DealCard]
    follow_ups: list[FollowUpCard]
    addresses: list[str] = field(default_factory=list)
    contact_tags: dict[int, list[str]] = field(default_factory=dict)
    company_tags: dict[int, list[str]] = field(default_factory=dict)


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
    own_domains: Collection[str] | None = None,
) -> LookupResult:
    """`own_domains`: the business's own domains, whose addresses get no suggestion; None reads
    them from the capture rules (the internal domains), only when an address has no contact."""
    addresses = normalised_addresses(emails)
    contacts, contact_tags, company_tags = _contacts(session, addresses)
    # The pane lists people in the order of the email's addresses.
    position = {address: n for n, address in enumerate(addresses)}
    contacts.sort(key=lambda c: min(position.get(e.address, MAX_ADDRESSES) for e in c.emails))
    known = {e.address for c in contacts for e in c.emails}
    contact_ids = [c.id for c in contacts]
    companies = sorted(
        {c.company.id: c.company for c in contacts if c.company is not None}.values(),
        key=lambda c: c.id,
    )
    company_ids = [c.id for c in companies]
    others = [a for a in addresses if a not in known and a != viewer.email]
    if others:
        own = _internal_domains(session) if own_domains is None else own_domains
        others = [a for a in others if not _is_own(a, own)]
    unknown = _unknown(session, others)
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
    return LookupResult(
        contacts=contacts,
        companies=companies,
        unknown=unknown,
        timeline=page,
        deals=deals,
        follow_ups=follow_ups,
        addresses=addresses,
        contact_tags=contact_tags,
        company_tags=company_tags,
    )


def _contacts(
    session: Session, addresses: list[str]
) -> tuple[list[ContactCard], dict[int, list[str]], dict[int, list[str]]]:
    """The contacts with any of these addresses, and their tags and their companies' tags. The
    statement has a row per (contact, address, company domain): each is added once."""
    contacts: dict[int, ContactCard] = {}
    companies: dict[int, CompanyCard] = {}
    contact_tags: dict[int, list[str]] = {}
    company_tags: dict[int, list[str]] = {}
    emails_seen: set[int] = set()
    domains_seen: set[int] = set()
    first_company = len(CONTACT_COLUMNS) + 5
    for row in core_rows(session, _contacts_statement(), {"addresses": addresses}):
        contact_id = row.id
        contact = contacts.get(contact_id)
        if contact is None:
            contact = contacts[contact_id] = ContactCard(*row[: len(CONTACT_COLUMNS)])
            contact_tags[contact_id] = _tag_list(row.contact_tags)
            if row.company_id is not None:
                company = companies.get(row.company_id)
                if company is None:
                    company = companies[row.company_id] = CompanyCard(
                        *row[first_company : first_company + len(COMPANY_COLUMNS)]
                    )
                    company_tags[company.id] = _tag_list(row.company_tags)
                contact.company = company
        if row.email_id is not None and row.email_id not in emails_seen:
            emails_seen.add(row.email_id)
            contact.emails.append(EmailCard(row.email_id, row.address, row.is_primary))
        if row.domain_id is not None and row.domain_id not in domains_seen:
            domains_seen.add(row.domain_id)
            assert contact.company is not None
            contact.company.domains.append(DomainCard(row.domain_id, row.domain))
    return list(contacts.values()), contact_tags, company_tags


def _is_own(address: str, own_domains: Collection[str]) -> bool:
    domain = address.rpartition("@")[2]
    return any(domain == d or domain.endswith("." + d) for d in own_domains)


def _internal_domains(session: Session) -> list[str]:
    """The internal domains of the capture rules (`server.crm.rules`), without the rest of the
    capture policy: that is all lookup needs of it."""
    return [value for (value,) in core_rows(session, _internal_domains_statement())]


def _unknown(session: Session, addresses: Sequence[str]) -> list[UnknownPerson]:
    if not addresses:
        return []
    seen: dict[str, list[tuple[str, datetime | None]]] = {a: [] for a in addresses}
    params = {f"address_{i}": a for i, a in enumerate(addresses)}
    for address, name, when in core_rows(session, _names_statement(len(addresses)), params):
        seen[address].append((name, when))
    domains = {a: company_domain_for(a) for a in addresses}
    wanted = sorted({d for d in domains.values() if d})
    company_of: dict[str, int] = {}
    if wanted:
        rows = core_rows(session, _domain_companies_statement(), {"domains": wanted})
        company_of = {row.domain: row.company_id for row in rows}
    result = []
    for address in addresses:
        names = sorted(seen[address], key=lambda n: n[1] or NEVER, reverse=True)
        domain = domains[address]
        result.append(
            UnknownPerson(
                address=address,
                suggested_name=choose_display_name(names, address),
                suggested_company=company_name_from_domain(domain) if domain else None,
                company_id=company_of.get(domain) if domain else None,
                seen_in=len(names),
            )
        )
    return result


def _open_deals(session: Session, contact_ids: list[int], company_ids: list[int]) -> list[DealCard]:
    if not contact_ids and not company_ids:
        return []
    params = {"contact_ids": contact_ids, "company_ids": company_ids}
    split = len(DEAL_COLUMNS)
    return [
        DealCard(**dict(zip(DEAL_COLUMNS, row[:split], strict=True)), stage=StageCard(*row[split:]))
        for row in core_rows(session, _deals_statement(), params)
    ]


def _due_follow_ups(
    session: Session, contact_ids: list[int], deal_ids: list[int]
) -> list[FollowUpCard]:
    if not contact_ids and not deal_ids:
        return []
    params = {"contact_ids": contact_ids, "deal_ids": deal_ids}
    return [FollowUpCard(*row) for row in core_rows(session, _follow_ups_statement(), params)]


def _tag_list(joined: str | None) -> list[str]:
    """Tags as `tags_of` lists them (in order) from their aggregate in the contacts statement."""
    return sorted(joined.split(TAG_SEPARATOR)) if joined else []


# -- the statements, built once -------------------------------------------------------------------


@lru_cache(maxsize=1)
def _contacts_statement() -> Select[*tuple[Any, ...]]:
    """Contacts with any of `addresses`, each with all its addresses, its company and the
    company's domains, and the tags of both, in one statement (a contact has a few of each).
    Columns: the contact's (`CONTACT_COLUMNS`), its tags, its company's tags, the address
    (`email_id`, `address`, `is_primary`), the company's (`COMPANY_COLUMNS`, prefixed
    `of_company_`), the domain (`domain_id`, `domain`)."""
    matched = select(ContactEmail.contact_id).where(
        ContactEmail.address.in_(bindparam("addresses", expanding=True))
    )
    contact_tags = (
        select(func.aggregate_strings(ContactTag.tag, TAG_SEPARATOR))
        .where(ContactTag.contact_id == Contact.id)
        .scalar_subquery()
    )
    company_tags = (
        select(func.aggregate_strings(CompanyTag.tag, TAG_SEPARATOR))
        .where(CompanyTag.company_id == Contact.company_id)
        .scalar_subquery()
    )
    return (
        select(
            *(getattr(Contact, name) for name in CONTACT_COLUMNS),
            contact_tags.label("contact_tags"),
            company_tags.label("company_tags"),
            ContactEmail.id.label("email_id"),
            ContactEmail.address,
            ContactEmail.is_primary,
            *(getattr(Company, name).label(f"of_company_{name}") for name in COMPANY_COLUMNS),
            CompanyDomain.id.label("domain_id"),
            CompanyDomain.domain,
        )
        .outerjoin(ContactEmail, ContactEmail.contact_id == Contact.id)
        .outerjoin(Company, Company.id == Contact.company_id)
        .outerjoin(CompanyDomain, CompanyDomain.company_id == Company.id)
        .where(Contact.id.in_(matched))
        .order_by(Contact.id, ContactEmail.id, CompanyDomain.id)
    )


@lru_cache(maxsize=1)
def _internal_domains_statement() -> Select[str]:
    return select(CaptureRule.value).where(CaptureRule.kind == "internal_domain")


@lru_cache(maxsize=MAX_ADDRESSES)
def _names_statement(count: int) -> Select[*tuple[Any, ...]]:
    """(address, name, occurred_at) of the latest sightings of each of `address_<i>`."""
    p = ActivityParticipant
    latest = [
        select(p.address, p.name, p.occurred_at)
        .where(p.address == bindparam(f"address_{i}"))
        .order_by(p.occurred_at.desc())
        .limit(NAMES_SEEN)
        .subquery(f"seen_{i}")
        for i in range(count)
    ]
    if count == 1:
        return select(latest[0].c.address, latest[0].c.name, latest[0].c.occurred_at)
    seen = union_all(*(select(s.c.address, s.c.name, s.c.occurred_at) for s in latest)).subquery()
    return select(seen.c.address, seen.c.name, seen.c.occurred_at)


@lru_cache(maxsize=1)
def _domain_companies_statement() -> Select[str, int]:
    return select(CompanyDomain.domain, CompanyDomain.company_id).where(
        CompanyDomain.domain.in_(bindparam("domains", expanding=True))
    )


@lru_cache(maxsize=1)
def _deals_statement() -> Select[*tuple[Any, ...]]:
    # The deals of these people and companies first (a few, by their indexes), then the open
    # ones among them: not every open deal checked against the lists.
    related = union(
        select(DealContact.deal_id).where(
            DealContact.contact_id.in_(bindparam("contact_ids", expanding=True))
        ),
        select(Deal.id).where(Deal.company_id.in_(bindparam("company_ids", expanding=True))),
    )
    columns = [getattr(Deal, name) for name in DEAL_COLUMNS]
    columns += [getattr(Stage, name).label(f"stage_{name}") for name in STAGE_COLUMNS]
    return (
        select(*columns)
        .join(Stage, Stage.id == Deal.stage_id)
        .where(Deal.id.in_(related), Deal.status == "open")
        .order_by(Deal.updated_at.desc())
        .limit(SECTION_SIZE)
    )


@lru_cache(maxsize=1)
def _follow_ups_statement() -> Select[*tuple[Any, ...]]:
    return (
        select(*(getattr(FollowUp, f.name) for f in fields(FollowUpCard)))
        .where(
            FollowUp.done_at.is_(None),
            or_(
                FollowUp.contact_id.in_(bindparam("contact_ids", expanding=True)),
                FollowUp.deal_id.in_(bindparam("deal_ids", expanding=True)),
            ),
        )
        .order_by(FollowUp.due_at)
        .limit(SECTION_SIZE)
    )
