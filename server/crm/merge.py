"""Merging duplicates: two contacts (or two companies) become the one kept.

Everything that points at the other record moves to the kept one in the caller's single
transaction — addresses, captured mail and notes (participants), deal links, follow-ups, tags,
domains, people, deals — and the other record is deleted; a failure anywhere leaves both as they
were. The kept record's values win; the other only fills its blanks (including custom fields). An
audit event records who merged what and how much moved (ids and counts, never personal data).
Merging destroys a record, so it is for an admin or the owner of both records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from server.crm.companies import may_remove
from server.crm.companies import tags_of as company_tags_of
from server.crm.contacts import tags_of as contact_tags_of
from server.crm.custom_fields import valid_id
from server.crm.errors import DomainError, NotFound
from server.crm.signals.changes import companies_changed, contacts_changed
from server.crm.viewer import Viewer
from server.models import (
    Activity,
    ActivityParticipant,
    AuditEvent,
    Company,
    CompanyDomain,
    CompanyTag,
    Contact,
    ContactEmail,
    ContactTag,
    Deal,
    DealContact,
    FollowUp,
    utcnow,
)


@dataclass
class MergeResult:
    kept_id: int
    removed_id: int
    moved: dict[str, int] = field(default_factory=dict)
    filled: list[str] = field(
        default_factory=list
    )  # fields of the kept record taken from the other


def other_contact(session: Session, contact_id: int) -> Contact:
    """The contact to merge in; an unknown one is a 404 naming `other_id`."""
    contact = session.get(Contact, contact_id) if valid_id(contact_id) else None
    if contact is None:
        raise NotFound(f"there is no contact {contact_id}", field="other_id")
    return contact


def other_company(session: Session, company_id: int) -> Company:
    company = session.get(Company, company_id) if valid_id(company_id) else None
    if company is None:
        raise NotFound(f"there is no company {company_id}", field="other_id")
    return company


def _count(result: Any) -> int:
    return int(result.rowcount or 0)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min(x for x in (a, b) if x is not None) if (a or b) else None


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(x for x in (a, b) if x is not None) if (a or b) else None


def _fill_blanks(keep: Any, other: Any, names: tuple[str, ...], filled: list[str]) -> None:
    for name in names:
        if getattr(keep, name) in (None, "") and getattr(other, name) not in (None, ""):
            setattr(keep, name, getattr(other, name))
            filled.append(name)


def _merge_custom_fields(keep: Any, other: Any, filled: list[str]) -> None:
    blanks = [k for k in other.custom_fields if keep.custom_fields.get(k) in (None, "")]
    if blanks:
        keep.custom_fields = {**keep.custom_fields, **{k: other.custom_fields[k] for k in blanks}}
        filled.extend(f"custom_fields.{k}" for k in blanks)


def _audit(session: Session, viewer: Viewer, entity: str, result: MergeResult) -> None:
    session.add(
        AuditEvent(
            user_id=viewer.id,
            action=f"{entity}.merge",
            entity_type=entity,
            entity_id=result.kept_id,
            source="api",
            details={
                "merged_id": result.removed_id,
                "moved": result.moved,
                "filled": result.filled,
            },
        )
    )


def merge_contacts(session: Session, viewer: Viewer, keep: Contact, other: Contact) -> MergeResult:
    """Move everything of `other` to `keep`, then delete `other`."""
    if keep.id == other.id:
        raise DomainError("a contact cannot be merged with itself", field="other_id")
    may_remove(viewer, keep.owner_id, "contact")
    may_remove(viewer, other.owner_id, "contact")
    result = MergeResult(keep.id, other.id)
    moved = result.moved
    keep_name_before = keep.name

    moved["emails"] = _count(
        session.execute(
            update(ContactEmail)
            .where(ContactEmail.contact_id == other.id)
            .values(contact_id=keep.id, is_primary=False)
            .execution_options(synchronize_session=False)
        )
    )
    moved["participations"] = _count(
        session.execute(
            update(ActivityParticipant)
            .where(ActivityParticipant.contact_id == other.id)
            .values(contact_id=keep.id)
            .execution_options(synchronize_session=False)
        )
    )
    already = select(DealContact.deal_id).where(DealContact.contact_id == keep.id)
    deal_ids = list(
        session.scalars(
            select(DealContact.deal_id).where(
                DealContact.contact_id == other.id, DealContact.deal_id.not_in(already)
            )
        )
    )
    if deal_ids:
        session.execute(
            insert(DealContact), [{"deal_id": d, "contact_id": keep.id} for d in deal_ids]
        )
    session.execute(delete(DealContact).where(DealContact.contact_id == other.id))
    moved["deal_links"] = len(deal_ids)
    moved["follow_ups"] = _count(
        session.execute(
            update(FollowUp)
            .where(FollowUp.contact_id == other.id)
            .values(contact_id=keep.id, version=FollowUp.version + 1)
            .execution_options(synchronize_session=False)
        )
    )
    tags = contact_tags_of(session, [keep.id, other.id])
    new_tags = [t for t in tags.get(other.id, []) if t not in tags.get(keep.id, [])]
    if new_tags:
        session.execute(insert(ContactTag), [{"contact_id": keep.id, "tag": t} for t in new_tags])
    moved["tags"] = len(new_tags)

    filled = result.filled
    _fill_blanks(keep, other, ("name", "title", "phone", "company_id", "owner_id"), filled)
    if keep.name != keep_name_before:
        keep.name_seen_at = other.name_seen_at
    _merge_custom_fields(keep, other, filled)
    keep.last_contacted_at = _latest(keep.last_contacted_at, other.last_contacted_at)
    keep.next_follow_up_at = _earliest(keep.next_follow_up_at, other.next_follow_up_at)
    keep.created_at = _earliest(keep.created_at, other.created_at) or keep.created_at
    keep.updated_at = utcnow()
    _audit(session, viewer, "contact", result)

    # The moved rows were changed behind the ORM's back: reload collections before deleting, so
    # the cascade does not delete the addresses that now belong to `keep`.
    session.expire(other, ["emails"])
    session.delete(other)
    session.flush()
    session.expire(keep, ["emails", "company"])
    contacts_changed(session, [keep.id])
    return result


def merge_companies(session: Session, viewer: Viewer, keep: Company, other: Company) -> MergeResult:
    """Move the domains, people, deals and notes of `other` to `keep`, then delete `other`."""
    if keep.id == other.id:
        raise DomainError("a company cannot be merged with itself", field="other_id")
    may_remove(viewer, keep.owner_id, "company")
    may_remove(viewer, other.owner_id, "company")
    result = MergeResult(keep.id, other.id)
    moved = result.moved
    now = utcnow()

    moved["domains"] = _count(
        session.execute(
            update(CompanyDomain)
            .where(CompanyDomain.company_id == other.id)
            .values(company_id=keep.id)
            .execution_options(synchronize_session=False)
        )
    )
    moved["contacts"] = _count(
        session.execute(
            update(Contact)
            .where(Contact.company_id == other.id)
            .values(company_id=keep.id, version=Contact.version + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    moved["deals"] = _count(
        session.execute(
            update(Deal)
            .where(Deal.company_id == other.id)
            .values(company_id=keep.id, version=Deal.version + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    moved["activities"] = _count(
        session.execute(
            update(Activity)
            .where(Activity.company_id == other.id)
            .values(company_id=keep.id, version=Activity.version + 1)
            .execution_options(synchronize_session=False)
        )
    )
    tags = company_tags_of(session, [keep.id, other.id])
    new_tags = [t for t in tags.get(other.id, []) if t not in tags.get(keep.id, [])]
    if new_tags:
        session.execute(insert(CompanyTag), [{"company_id": keep.id, "tag": t} for t in new_tags])
    moved["tags"] = len(new_tags)

    _fill_blanks(keep, other, ("owner_id",), result.filled)
    _merge_custom_fields(keep, other, result.filled)
    keep.created_at = _earliest(keep.created_at, other.created_at) or keep.created_at
    keep.updated_at = now
    _audit(session, viewer, "company", result)

    session.expire(other, ["domains", "contacts"])
    session.delete(other)
    session.flush()
    session.expire(keep, ["domains", "contacts"])
    companies_changed(session, [keep.id])
    return result
