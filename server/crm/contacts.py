"""Contacts as people edit them: create, change, list, delete, and what a contact's page shows.

Capture creates most contacts; this module is for what people do by hand (the API, CSV import).
Two rules tie the two together:
* an address belongs to at most one contact, and when a person gives a contact an address, mail
  captured earlier with that address joins the contact (participants are stored with their
  address whatever happened, so history is never lost);
* a name typed by a person is final: `name_seen_at` is cleared so capture never renames them.
Contacts are team data: every signed-in user may read and edit them; deleting is for an admin or
the contact's owner (`companies.may_remove`). The timeline shown with a contact follows the
viewer's mailbox visibility (`server.crm.timeline`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

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
from sqlalchemy.orm import Session, selectinload

from server.crm import webhooks
from server.crm.addresses import normalise_address
from server.crm.companies import flush_or_conflict, may_remove, resolve_company
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
from server.crm.errors import Conflict, DomainError, NotFound
from server.crm.paging import Page, keyset_page
from server.crm.signals.changes import contacts_changed
from server.crm.timeline import TimelinePage, timeline
from server.crm.viewer import Viewer
from server.models import (
    ActivityParticipant,
    AuditEvent,
    Contact,
    ContactEmail,
    ContactTag,
    Deal,
    DealContact,
    FollowUp,
    utcnow,
)
from server.models.base import UTCDateTime
from server.models.contacts import LIFECYCLE_STAGES

MAX_EMAILS = 50
DETAIL_DEALS = 50
DETAIL_FOLLOW_UPS = 50
# Never-contacted people sort as if last contacted at the epoch: first ascending, last descending.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)
ContactSort = Literal["name", "created_at", "updated_at", "last_contacted_at"]


class ContactFields(TypedDict, total=False):
    name: str
    title: str
    phone: str
    emails: list[str]
    add_emails: list[str]
    remove_emails: list[str]
    company_id: int | None
    company_name: str | None
    lifecycle_stage: str
    owner_id: int | None
    tags: list[str]
    custom_fields: dict[str, Any]


@dataclass
class ContactFilters:
    q: str | None = None
    owner_id: int | None = None
    lifecycle_stage: str | None = None
    tag: str | None = None
    company_id: int | None = None
    last_contacted_before: datetime | None = None
    last_contacted_after: datetime | None = None
    never_contacted: bool | None = None  # True: never; False: at some time; None: either
    custom: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ContactDetail:
    contact: Contact
    tags: list[str]
    timeline: TimelinePage
    deals: list[Deal]
    follow_ups: list[FollowUp]


def get_contact(session: Session, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id) if valid_id(contact_id) else None
    if contact is None:
        raise NotFound(f"there is no contact {contact_id}")
    return contact


# -- addresses ---------------------------------------------------------------------------------


def clean_emails(values: Sequence[str], field: str = "emails") -> list[str]:
    addresses: list[str] = []
    for raw in values:
        if "\x00" in raw:
            raise DomainError(f"{field} must not contain NUL characters", field=field)
        address = normalise_address(raw)
        if address is None:
            raise DomainError(f"'{raw}' is not an email address", field=field)
        if address not in addresses:
            addresses.append(address)
    if len(addresses) > MAX_EMAILS:
        raise DomainError(f"at most {MAX_EMAILS} addresses per contact", field=field)
    return addresses


def owners_of(session: Session, addresses: Collection[str]) -> dict[str, int]:
    """Which contact each of these addresses belongs to (addresses nobody has are left out)."""
    if not addresses:
        return {}
    rows = session.execute(
        select(ContactEmail.address, ContactEmail.contact_id).where(
            ContactEmail.address.in_(list(addresses))
        )
    )
    return dict(rows.all())


def _check_free(
    session: Session, addresses: Collection[str], contact_id: int | None, field: str
) -> None:
    for address, owner in owners_of(session, addresses).items():
        if owner != contact_id:
            raise Conflict(f"{address} already belongs to contact {owner}", field=field)


def _link_past_mail(session: Session, contact: Contact, addresses: Collection[str]) -> None:
    """Mail captured with these addresses before they were the contact's joins the contact (only
    participants no contact has: an address never steals another contact's history)."""
    if not addresses:
        return
    session.execute(
        update(ActivityParticipant)
        .where(
            ActivityParticipant.address.in_(list(addresses)),
            ActivityParticipant.contact_id.is_(None),
        )
        .values(contact_id=contact.id)
        .execution_options(synchronize_session=False)
    )
    latest = session.scalar(
        select(func.max(ActivityParticipant.occurred_at)).where(
            ActivityParticipant.contact_id == contact.id,
            ActivityParticipant.role != "about",  # a note about someone is not contact with them
        )
    )
    if latest is not None and (
        contact.last_contacted_at is None or latest > contact.last_contacted_at
    ):
        contact.last_contacted_at = latest


def _unlink_mail(session: Session, contact: Contact, addresses: Collection[str]) -> None:
    """An address taken off a contact takes its mail with it (the address stays on the mail)."""
    if addresses:
        session.execute(
            update(ActivityParticipant)
            .where(
                ActivityParticipant.contact_id == contact.id,
                ActivityParticipant.address.in_(list(addresses)),
            )
            .values(contact_id=None)
            .execution_options(synchronize_session=False)
        )


# -- create / update / delete ------------------------------------------------------------------


def _stage(value: str) -> str:
    if value not in LIFECYCLE_STAGES:
        raise DomainError(
            f"lifecycle_stage must be one of {', '.join(LIFECYCLE_STAGES)}", field="lifecycle_stage"
        )
    return value


def create_contact(
    session: Session, viewer: Viewer, fields: ContactFields, *, source: str = "user"
) -> Contact:
    """A new contact; its addresses must be free, and its past captured mail joins it."""
    name = clean_text(fields.get("name", ""), "name", max_length=300)
    addresses = clean_emails(fields.get("emails", []))
    _check_free(session, addresses, None, "emails")
    company = resolve_company(
        session,
        company_id=fields.get("company_id"),
        company_name=fields.get("company_name"),
        addresses=addresses,
    )
    values = validate_custom_fields(session, "contact", fields.get("custom_fields") or {})
    contact = Contact(
        name=name,
        title=clean_text(fields.get("title", ""), "title", max_length=200),
        phone=clean_text(fields.get("phone", ""), "phone", max_length=100),
        company_id=company.id if company else None,
        lifecycle_stage=_stage(fields.get("lifecycle_stage", "lead")),
        owner_id=check_owner(session, fields.get("owner_id")),
        custom_fields=merge_custom_fields({}, values),
        source=source,
        name_seen_at=None,
    )
    for n, address in enumerate(addresses):
        contact.emails.append(ContactEmail(address=address, is_primary=n == 0))
    session.add(contact)
    flush_or_conflict(session, "emails")
    set_tags(session, contact.id, clean_tags(fields.get("tags", [])))
    _link_past_mail(session, contact, addresses)
    webhooks.emit(session, "contact.created", contact_event(contact))
    return contact


def contact_event(contact: Contact) -> dict[str, object]:
    """What a webhook says about a contact (ids and the fields a CRM integration keys on)."""
    return {
        "contact_id": contact.id,
        "name": contact.name,
        "emails": [e.address for e in contact.emails],
        "owner_id": contact.owner_id,
        "lifecycle_stage": contact.lifecycle_stage,
        "company_id": contact.company_id,
    }


def update_contact(session: Session, contact: Contact, fields: ContactFields) -> bool:
    """Apply the given fields (others stay); True when something changed. Any change is one
    UPDATE of the contact row, which checks and bumps its version (a stale write fails with 409);
    autoflush is off until then so that the version goes up once."""
    with session.no_autoflush:
        changed = _apply(session, contact, fields)
        if changed:
            contact.updated_at = utcnow()
    flush_or_conflict(session, "emails")
    if changed:
        contacts_changed(session, [contact.id])
        webhooks.emit(session, "contact.updated", contact_event(contact))
    return changed


def _apply(session: Session, contact: Contact, fields: ContactFields) -> bool:
    changed = False
    for name, max_length in (("name", 300), ("title", 200), ("phone", 100)):
        if name in fields:
            value = clean_text(fields[name], name, max_length=max_length)  # type: ignore[literal-required]
            if value != getattr(contact, name):
                setattr(contact, name, value)
                changed = True
    if "name" in fields and contact.name_seen_at is not None:
        contact.name_seen_at = None  # a person chose this name: capture must not replace it
        changed = True
    if "lifecycle_stage" in fields:
        stage = _stage(fields["lifecycle_stage"])
        if stage != contact.lifecycle_stage:
            contact.lifecycle_stage, changed = stage, True
    if "owner_id" in fields:
        owner_id = check_owner(session, fields["owner_id"])
        if owner_id != contact.owner_id:
            contact.owner_id, changed = owner_id, True
    if "custom_fields" in fields:
        values = validate_custom_fields(session, "contact", fields["custom_fields"] or {})
        merged = merge_custom_fields(contact.custom_fields, values)
        if merged != contact.custom_fields:
            contact.custom_fields, changed = merged, True
    changed = _update_emails(session, contact, fields) or changed
    if "company_id" in fields or fields.get("company_name") is not None:
        company = resolve_company(
            session,
            company_id=fields.get("company_id"),
            company_name=fields.get("company_name"),
            addresses=[e.address for e in contact.emails] if fields.get("company_name") else (),
        )
        company_id = company.id if company else None
        if company_id != contact.company_id:
            contact.company_id, changed = company_id, True
            session.expire(contact, ["company"])
    if "tags" in fields:
        tags = clean_tags(fields["tags"])
        if set(tags) != set(tags_of(session, [contact.id]).get(contact.id, [])):
            set_tags(session, contact.id, tags)
            changed = True
    return changed


def _update_emails(session: Session, contact: Contact, fields: ContactFields) -> bool:
    current = [e.address for e in contact.emails]
    wanted = clean_emails(fields["emails"]) if "emails" in fields else list(current)
    for address in clean_emails(fields.get("add_emails", []), "add_emails"):
        if address not in wanted:
            wanted.append(address)
    removed = set(clean_emails(fields.get("remove_emails", []), "remove_emails"))
    wanted = [a for a in wanted if a not in removed]
    if len(wanted) > MAX_EMAILS:
        raise DomainError(f"at most {MAX_EMAILS} addresses per contact", field="emails")
    added = [a for a in wanted if a not in current]
    dropped = [a for a in current if a not in wanted]
    primary = next((e.address for e in contact.emails if e.is_primary), None)
    new_primary = "emails" in fields and bool(wanted) and wanted[0] != primary
    if not added and not dropped and not new_primary:
        return False
    field_name = "add_emails" if "add_emails" in fields and "emails" not in fields else "emails"
    _check_free(session, added, contact.id, field_name)
    for row in [e for e in contact.emails if e.address in dropped]:
        contact.emails.remove(row)
    for address in added:
        contact.emails.append(ContactEmail(address=address, is_primary=False))
    if "emails" in fields and wanted:
        for row in contact.emails:  # a full list names the primary address first
            row.is_primary = row.address == wanted[0]
    elif contact.emails and not any(e.is_primary for e in contact.emails):
        contact.emails[0].is_primary = True
    _unlink_mail(session, contact, dropped)
    _link_past_mail(session, contact, added)
    return True


def delete_contact(session: Session, viewer: Viewer, contact: Contact) -> None:
    """Delete a contact. Captured mail keeps the addresses (participants lose only the link), so
    creating the contact again brings its history back. Deals stay (only the link to this person
    goes); follow-ups about this person alone are deleted, follow-ups that also belong to a deal
    stay with the deal."""
    may_remove(viewer, contact.owner_id, "contact")
    session.execute(
        update(ActivityParticipant)
        .where(ActivityParticipant.contact_id == contact.id)
        .values(contact_id=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(FollowUp)
        .where(FollowUp.contact_id == contact.id, FollowUp.deal_id.is_not(None))
        .values(contact_id=None, version=FollowUp.version + 1)
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(FollowUp).where(FollowUp.contact_id == contact.id))
    session.add(
        AuditEvent(
            user_id=viewer.id,
            action="contact.delete",
            entity_type="contact",
            entity_id=contact.id,
            source="api",
        )
    )
    session.delete(contact)
    session.flush()


# -- tags --------------------------------------------------------------------------------------


def tags_of(session: Session, contact_ids: Collection[int]) -> dict[int, list[str]]:
    result: dict[int, list[str]] = {}
    if not contact_ids:
        return result
    for contact_id, tag in session.execute(
        select(ContactTag.contact_id, ContactTag.tag)
        .where(ContactTag.contact_id.in_(list(contact_ids)))
        .order_by(ContactTag.tag)
    ):
        result.setdefault(contact_id, []).append(tag)
    return result


def set_tags(session: Session, contact_id: int, tags: Sequence[str]) -> None:
    session.execute(delete(ContactTag).where(ContactTag.contact_id == contact_id))
    if tags:
        session.execute(insert(ContactTag), [{"contact_id": contact_id, "tag": t} for t in tags])


# -- lists and details -------------------------------------------------------------------------


def _aware(value: datetime | None) -> datetime | None:
    """Query dates without a zone are taken as UTC (the database stores UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def contact_query(session: Session, filters: ContactFilters) -> Select[Contact]:
    conditions: list[ColumnElement[bool]] = []
    if filters.q:
        prefix = like_prefix(clean_text(filters.q, "q", max_length=200).lower())
        name = func.lower(Contact.name)
        conditions.append(
            or_(
                name.like(prefix + "%", escape="\\"),
                name.like("% " + prefix + "%", escape="\\"),
                exists().where(
                    ContactEmail.contact_id == Contact.id,
                    ContactEmail.address.like(prefix + "%", escape="\\"),
                ),
            )
        )
    if filters.owner_id is not None:
        conditions.append(Contact.owner_id == filters.owner_id)
    if filters.lifecycle_stage is not None:
        conditions.append(Contact.lifecycle_stage == _stage(filters.lifecycle_stage))
    if filters.company_id is not None:
        conditions.append(Contact.company_id == filters.company_id)
    if filters.tag:
        conditions.append(
            exists().where(
                ContactTag.contact_id == Contact.id, ContactTag.tag == clean_tag(filters.tag, "tag")
            )
        )
    before = _aware(filters.last_contacted_before)
    if before is not None:
        conditions.append(Contact.last_contacted_at < before)
    after = _aware(filters.last_contacted_after)
    if after is not None:
        conditions.append(Contact.last_contacted_at >= after)
    if filters.never_contacted is not None:
        never = Contact.last_contacted_at.is_(None)
        conditions.append(never if filters.never_contacted else ~never)
    conditions += custom_field_conditions(session, "contact", Contact.custom_fields, filters.custom)
    return select(Contact).where(*conditions)


def sort_column(sort: ContactSort) -> Any:
    if sort == "name":
        return func.lower(Contact.name)
    if sort == "last_contacted_at":
        return func.coalesce(Contact.last_contacted_at, literal(NEVER, UTCDateTime()))
    return {"created_at": Contact.created_at, "updated_at": Contact.updated_at}[sort]


def list_contacts(
    session: Session,
    filters: ContactFilters,
    *,
    sort: ContactSort = "name",
    descending: bool = False,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Contact]:
    query = contact_query(session, filters).options(
        selectinload(Contact.emails), selectinload(Contact.company)
    )
    check_cursor(cursor, "text" if sort == "name" else "datetime")
    return keyset_page(
        session,
        query,
        sort=sort_column(sort),
        ident=Contact.id,
        descending=descending,
        limit=limit,
        cursor=cursor,
    )


def contact_detail(
    session: Session, viewer: Viewer, contact_id: int, *, timeline_limit: int = 20
) -> ContactDetail:
    contact = get_contact(session, contact_id)
    deals = list(
        session.scalars(
            select(Deal)
            .join(DealContact, DealContact.deal_id == Deal.id)
            .where(DealContact.contact_id == contact.id, Deal.status == "open")
            .options(selectinload(Deal.stage))
            .order_by(Deal.updated_at.desc(), Deal.id.desc())
            .limit(DETAIL_DEALS)
        )
    )
    follow_ups = list(
        session.scalars(
            select(FollowUp)
            .where(FollowUp.contact_id == contact.id, FollowUp.done_at.is_(None))
            .order_by(FollowUp.due_at, FollowUp.id)
            .limit(DETAIL_FOLLOW_UPS)
        )
    )
    return ContactDetail(
        contact=contact,
        tags=tags_of(session, [contact.id]).get(contact.id, []),
        timeline=timeline(session, viewer, contact_ids=[contact.id], limit=timeline_limit),
        deals=deals,
        follow_ups=follow_ups,
    )


def contact_timeline(
    session: Session, viewer: Viewer, contact_id: int, *, limit: int, cursor: str | None
) -> TimelinePage:
    contact = get_contact(session, contact_id)
    check_timeline_cursor(cursor)
    return timeline(session, viewer, contact_ids=[contact.id], limit=limit, cursor=cursor)
