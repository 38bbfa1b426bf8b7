"""Companies as people edit them: create, change, list, delete, and finding the company a contact
belongs to.

A company is keyed by its registrable domains (`acme.co.uk`, never a free-mail domain), exactly as
capture keys it, so a domain typed here is the one capture will look up for the next email from
that company. Domains are unique across companies: a second company claiming one is a conflict.
Companies are team data: any signed-in user may read and edit them; deleting one is for an admin or
its owner (see `may_remove`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict
from urllib.parse import urlsplit

from sqlalchemy import (
    ColumnElement,
    Select,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from server.crm.addresses import normalise_domain
from server.crm.custom_fields import (
    check_cursor,
    check_owner,
    check_timeline_cursor,
    clean_tag,
    clean_tags,
    clean_text,
    custom_field_conditions,
    like_prefix,
    merge_custom_fields,
    valid_id,
    validate_custom_fields,
)
from server.crm.domains import company_domain_for, is_freemail, registrable_domain
from server.crm.errors import Conflict, DomainError, Forbidden, NotFound
from server.crm.paging import Page, keyset_page
from server.crm.signals.changes import companies_changed
from server.crm.timeline import TimelinePage, timeline
from server.crm.viewer import Viewer
from server.models import (
    AuditEvent,
    Company,
    CompanyDomain,
    CompanyTag,
    Contact,
    Deal,
    utcnow,
)
from server.models.base import UTCDateTime

MAX_DOMAINS = 50
DETAIL_CONTACTS = 100
DETAIL_DEALS = 50
CompanySort = Literal["name", "created_at", "updated_at", "last_contacted_at"]
# Never-contacted companies sort as if last contacted at the epoch, as contacts do.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


class CompanyFields(TypedDict, total=False):
    name: str
    domains: list[str]
    add_domains: list[str]
    remove_domains: list[str]
    owner_id: int | None
    tags: list[str]
    custom_fields: dict[str, Any]


@dataclass
class CompanyFilters:
    q: str | None = None
    owner_id: int | None = None
    tag: str | None = None
    last_contacted_before: datetime | None = None
    last_contacted_after: datetime | None = None
    never_contacted: bool | None = None  # True: nobody there ever; False: someone; None: either
    custom: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class CompanyDetail:
    company: Company
    tags: list[str]
    contacts: list[Contact]
    contact_count: int
    timeline: TimelinePage
    deals: list[Deal]


def get_company(session: Session, company_id: int) -> Company:
    company = session.get(Company, company_id) if valid_id(company_id) else None
    if company is None:
        raise NotFound(f"there is no company {company_id}")
    return company


def may_remove(viewer: Viewer, owner_id: int | None, what: str) -> None:
    """Deleting and merging destroy a record for everyone, so they are for an admin or the
    record's owner; editing is open to every member (the data is the team's)."""
    if not viewer.is_admin and (owner_id is None or owner_id != viewer.id):
        raise Forbidden(f"only an admin or the {what}'s owner may do this")


# -- domains -----------------------------------------------------------------------------------


def clean_domain(raw: str, field: str = "domains") -> str:
    """The registrable domain a typed domain, website or address stands for (`www.acme.com`,
    `https://shop.acme.com/`, `jane@acme.com` → `acme.com`)."""
    text = clean_text(raw, field, max_length=255)
    if "://" in text:  # a website address
        try:
            text = urlsplit(text).hostname or ""
        except ValueError:
            text = ""
    elif "@" in text.strip("@"):  # an email address
        text = text.rpartition("@")[2]
    normalised = normalise_domain(text)
    registrable = registrable_domain(normalised) if normalised else None
    if registrable is None:
        raise DomainError(f"'{raw}' is not a domain a company can own", field=field)
    if is_freemail(registrable):
        raise DomainError(
            f"{registrable} is a free-mail domain; it cannot identify a company", field=field
        )
    return registrable


def clean_domains(values: Sequence[str], field: str = "domains") -> list[str]:
    domains: list[str] = []
    for raw in values:
        domain = clean_domain(raw, field)
        if domain not in domains:
            domains.append(domain)
    if len(domains) > MAX_DOMAINS:
        raise DomainError(f"at most {MAX_DOMAINS} domains", field=field)
    return domains


def _claim_domains(session: Session, company: Company, domains: Sequence[str], field: str) -> None:
    """Give these domains to the company: 409 when another company already has one."""
    if not domains:
        return
    taken = session.execute(
        select(CompanyDomain.domain, CompanyDomain.company_id).where(
            CompanyDomain.domain.in_(list(domains))
        )
    ).all()
    for domain, owner in taken:
        if owner != company.id:
            raise Conflict(f"{domain} already belongs to company {owner}", field=field)
    have = {d.domain for d in company.domains}
    for domain in domains:
        if domain not in have:
            company.domains.append(CompanyDomain(domain=domain))


# -- create / update / delete ------------------------------------------------------------------


def create_company(session: Session, viewer: Viewer, fields: CompanyFields) -> Company:
    name = clean_text(fields.get("name", ""), "name", max_length=300, required=True)
    domains = clean_domains(fields.get("domains", []))
    owner_id = check_owner(session, fields.get("owner_id"))
    values = validate_custom_fields(session, "company", fields.get("custom_fields") or {})
    company = Company(name=name, owner_id=owner_id, custom_fields=merge_custom_fields({}, values))
    session.add(company)
    _claim_domains(session, company, domains, "domains")
    flush_or_conflict(session, "domains")
    set_tags(session, company.id, clean_tags(fields.get("tags", [])))
    return company


def update_company(session: Session, company: Company, fields: CompanyFields) -> bool:
    """Apply the given fields; True when something changed (then the version goes up, once:
    autoflush is off until the end)."""
    with session.no_autoflush:
        changed = _apply(session, company, fields)
        if changed:
            company.updated_at = utcnow()
    flush_or_conflict(session, "domains")
    if changed:
        companies_changed(session, [company.id])
    return changed


def _apply(session: Session, company: Company, fields: CompanyFields) -> bool:
    changed = False
    if "name" in fields:
        name = clean_text(fields["name"], "name", max_length=300, required=True)
        if name != company.name:
            company.name, changed = name, True
    if "owner_id" in fields:
        owner_id = check_owner(session, fields["owner_id"])
        if owner_id != company.owner_id:
            company.owner_id, changed = owner_id, True
    if "custom_fields" in fields:
        values = validate_custom_fields(session, "company", fields["custom_fields"] or {})
        merged = merge_custom_fields(company.custom_fields, values)
        if merged != company.custom_fields:
            company.custom_fields, changed = merged, True
    current = [d.domain for d in company.domains]
    wanted = list(current)
    if "domains" in fields:
        wanted = clean_domains(fields["domains"])
    for domain in clean_domains(fields.get("add_domains", []), "add_domains"):
        if domain not in wanted:
            wanted.append(domain)
    removed = set(clean_domains(fields.get("remove_domains", []), "remove_domains"))
    wanted = [d for d in wanted if d not in removed]
    if len(wanted) > MAX_DOMAINS:
        raise DomainError(f"at most {MAX_DOMAINS} domains", field="domains")
    if set(wanted) != set(current):
        for row in [d for d in company.domains if d.domain not in wanted]:
            company.domains.remove(row)
        _claim_domains(session, company, [d for d in wanted if d not in current], "domains")
        changed = True
    if "tags" in fields:
        tags = clean_tags(fields["tags"])
        if set(tags) != set(tags_of(session, [company.id]).get(company.id, [])):
            set_tags(session, company.id, tags)
            changed = True
    return changed


def delete_company(session: Session, viewer: Viewer, company: Company) -> None:
    """Delete a company. Its contacts, deals and notes stay (their company is cleared by the
    database); its domains and tags go with it."""
    may_remove(viewer, company.owner_id, "company")
    session.add(
        AuditEvent(
            user_id=viewer.id,
            action="company.delete",
            entity_type="company",
            entity_id=company.id,
            source="api",
        )
    )
    # One statement for the people (rather than the ORM loading each to clear its company).
    session.execute(
        update(Contact)
        .where(Contact.company_id == company.id)
        .values(company_id=None, version=Contact.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.expire(company, ["contacts"])
    session.delete(company)
    session.flush()


def flush_or_conflict(session: Session, field: str) -> None:
    """Flush, turning a unique-index race (another request claimed the same domain or address
    between our check and our insert) into a 409 instead of a 500."""
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(
            "another record claimed the same value meanwhile; try again", field=field
        ) from None


# -- tags --------------------------------------------------------------------------------------


def tags_of(session: Session, company_ids: Collection[int]) -> dict[int, list[str]]:
    result: dict[int, list[str]] = {}
    if not company_ids:
        return result
    for company_id, tag in session.execute(
        select(CompanyTag.company_id, CompanyTag.tag)
        .where(CompanyTag.company_id.in_(list(company_ids)))
        .order_by(CompanyTag.tag)
    ):
        result.setdefault(company_id, []).append(tag)
    return result


def set_tags(session: Session, company_id: int, tags: Sequence[str]) -> None:
    session.execute(delete(CompanyTag).where(CompanyTag.company_id == company_id))
    if tags:
        session.execute(insert(CompanyTag), [{"company_id": company_id, "tag": t} for t in tags])


# -- finding a contact's company ---------------------------------------------------------------


def resolve_company(
    session: Session,
    *,
    company_id: int | None = None,
    company_name: str | None = None,
    addresses: Sequence[str] = (),
    create: bool = True,
) -> Company | None:
    """The company a contact belongs to: the one named by id; else, when a name is given, the
    company owning the contact's email domain, else one with that exact name (case-insensitive),
    else a new one (with the domain, when it is a company domain nobody has); with no name, the
    company owning the email domain, if any."""
    if company_id is not None:
        company = session.get(Company, company_id) if valid_id(company_id) else None
        if company is None:
            raise DomainError(f"there is no company {company_id}", field="company_id")
        return company
    domains = [d for d in (company_domain_for(a) for a in addresses) if d]
    for domain in domains:
        owner = session.scalar(
            select(Company).join(CompanyDomain).where(CompanyDomain.domain == domain)
        )
        if owner is not None:
            return owner
    if company_name is None:
        return None
    name = clean_text(company_name, "company_name", max_length=300)
    if not name:
        return None
    named = session.scalar(
        select(Company).where(func.lower(Company.name) == name.lower()).order_by(Company.id)
    )
    if named is not None or not create:
        return named
    company = Company(name=name)
    session.add(company)
    if domains:
        company.domains.append(CompanyDomain(domain=domains[0]))
    flush_or_conflict(session, "company_name")
    return company


# -- lists and details -------------------------------------------------------------------------


def last_contacted() -> ColumnElement[datetime | None]:
    """When anyone at the company was last contacted: the latest of its people's
    `last_contacted_at`, computed per row (a correlated subquery over contacts' company_id
    index) so it is never a second copy to keep in step with capture."""
    return (
        select(func.max(Contact.last_contacted_at))
        .where(Contact.company_id == Company.id)
        .correlate(Company)
        .scalar_subquery()
    )


def last_contacted_of(session: Session, company_ids: Collection[int]) -> dict[int, datetime]:
    """`last_contacted` for a page of companies (those nobody was contacted at are left out)."""
    if not company_ids:
        return {}
    rows = session.execute(
        select(Contact.company_id, func.max(Contact.last_contacted_at))
        .where(Contact.company_id.in_(list(company_ids)))
        .group_by(Contact.company_id)
    )
    return {company: when for company, when in rows if company is not None and when is not None}


def _aware(value: datetime | None) -> datetime | None:
    """Query dates without a zone are taken as UTC (the database stores UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def company_query(session: Session, filters: CompanyFilters) -> Select[Company]:
    query = select(Company)
    conditions: list[ColumnElement[bool]] = []
    if filters.q:
        prefix = like_prefix(clean_text(filters.q, "q", max_length=200).lower())
        name = func.lower(Company.name)
        conditions.append(
            or_(
                name.like(prefix + "%", escape="\\"),
                name.like("% " + prefix + "%", escape="\\"),
                exists().where(
                    CompanyDomain.company_id == Company.id,
                    CompanyDomain.domain.like(prefix + "%", escape="\\"),
                ),
            )
        )
    if filters.owner_id is not None:
        conditions.append(Company.owner_id == filters.owner_id)
    if filters.tag:
        conditions.append(
            exists().where(
                CompanyTag.company_id == Company.id, CompanyTag.tag == clean_tag(filters.tag, "tag")
            )
        )
    before = _aware(filters.last_contacted_before)
    if before is not None:
        conditions.append(last_contacted() < before)
    after = _aware(filters.last_contacted_after)
    if after is not None:
        conditions.append(last_contacted() >= after)
    if filters.never_contacted is not None:
        never = last_contacted().is_(None)
        conditions.append(never if filters.never_contacted else ~never)
    conditions += custom_field_conditions(session, "company", Company.custom_fields, filters.custom)
    return query.where(*conditions)


def list_companies(
    session: Session,
    filters: CompanyFilters,
    *,
    sort: CompanySort = "name",
    descending: bool = False,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Company]:
    query = company_query(session, filters).options(selectinload(Company.domains))
    column: Any = {
        "name": func.lower(Company.name),
        "created_at": Company.created_at,
        "updated_at": Company.updated_at,
        "last_contacted_at": func.coalesce(last_contacted(), literal(NEVER, UTCDateTime())),
    }[sort]
    check_cursor(cursor, "text" if sort == "name" else "datetime")
    return keyset_page(
        session,
        query,
        sort=column,
        ident=Company.id,
        descending=descending,
        limit=limit,
        cursor=cursor,
    )


def company_detail(
    session: Session, viewer: Viewer, company_id: int, *, timeline_limit: int = 20
) -> CompanyDetail:
    company = get_company(session, company_id)
    people = select(Contact).where(Contact.company_id == company.id)
    contacts = list(
        session.scalars(
            people.options(selectinload(Contact.emails))
            .order_by(func.lower(Contact.name), Contact.id)
            .limit(DETAIL_CONTACTS)
        )
    )
    count = session.scalar(select(func.count()).select_from(people.subquery())) or 0
    deals = list(
        session.scalars(
            select(Deal)
            .where(Deal.company_id == company.id)
            .options(selectinload(Deal.stage))
            .order_by((Deal.status == "open").desc(), Deal.updated_at.desc(), Deal.id.desc())
            .limit(DETAIL_DEALS)
        )
    )
    return CompanyDetail(
        company=company,
        tags=tags_of(session, [company.id]).get(company.id, []),
        contacts=contacts,
        contact_count=count,
        timeline=timeline(session, viewer, company_id=company.id, limit=timeline_limit),
        deals=deals,
    )


def company_timeline(
    session: Session, viewer: Viewer, company_id: int, *, limit: int, cursor: str | None
) -> TimelinePage:
    company = get_company(session, company_id)
    check_timeline_cursor(cursor)
    return timeline(session, viewer, company_id=company.id, limit=limit, cursor=cursor)
