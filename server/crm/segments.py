"""Segments: saved filters over contacts, the people a campaign goes to.

A segment's filter is the contact list's (`server.crm.contacts.ContactFilters`: lifecycle stage,
tag, company, owner, last contacted before/after, custom fields as `cf.<key>` parameters) plus
`has_open_deal`, stored as JSON and evaluated when asked — a segment is who matches now, not a
list frozen when it was saved. Segments are team data: everyone signed in sees and uses them;
changing or deleting one is for its owner or an admin.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import Session, selectinload

from server.crm.contacts import ContactFilters, contact_query
from server.crm.custom_fields import clean_text, valid_id
from server.crm.errors import DomainError, Forbidden, NotFound
from server.crm.viewer import Viewer
from server.models import Contact, Deal, DealContact, Segment, utcnow

FILTER_KEYS = (
    "lifecycle_stage",
    "tag",
    "company_id",
    "owner_id",
    "last_contacted_before",
    "last_contacted_after",
    "contacted_within_days",  # periods stay periods: counted back from when the segment is used
    "not_contacted_for_days",
    "never_contacted",
    "custom",
    "has_open_deal",
)
PREVIEW_MAX = 100


def clean_filters(session: Session, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The filter as stored: known keys only, without empty values, checked by running it once
    (an unknown custom field or a bad stage is refused when saved, not when sending)."""
    unknown = sorted(set(raw) - set(FILTER_KEYS))
    if unknown:
        raise DomainError(
            f"unknown segment filter {', '.join(unknown)} (known: {', '.join(FILTER_KEYS)})",
            field="filters",
        )
    kept = {k: v for k, v in raw.items() if v not in (None, "", {})}
    session.scalar(select(func.count()).select_from(segment_query(session, kept).subquery()))
    return kept


def _when(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise DomainError(f"{field} is not an ISO 8601 date-time", field="filters") from None


def _contact_filters(filters: Mapping[str, Any]) -> ContactFilters:
    custom = filters.get("custom") or {}
    if not isinstance(custom, Mapping):
        raise DomainError("custom must be an object of cf.<key> parameters", field="filters")
    now = utcnow()
    within = _days(filters.get("contacted_within_days"), "contacted_within_days")
    idle = _days(filters.get("not_contacted_for_days"), "not_contacted_for_days")
    never = filters.get("never_contacted")
    if never is not None and not isinstance(never, bool):
        raise DomainError("never_contacted is true or false", field="filters")
    return ContactFilters(
        owner_id=filters.get("owner_id"),
        lifecycle_stage=filters.get("lifecycle_stage"),
        tag=filters.get("tag"),
        company_id=filters.get("company_id"),
        last_contacted_before=_when(filters.get("last_contacted_before"), "last_contacted_before")
        or (now - timedelta(days=idle) if idle else None),
        last_contacted_after=_when(filters.get("last_contacted_after"), "last_contacted_after")
        or (now - timedelta(days=within) if within else None),
        never_contacted=never,
        custom={str(k): v for k, v in custom.items()},
    )


def _days(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 36_500:
        raise DomainError(f"{field} is a number of days from 1 to 36500", field="filters")
    return value


def segment_query(session: Session, filters: Mapping[str, Any]) -> Select[Contact]:
    """The contacts matching a segment's filter now."""
    query = contact_query(session, _contact_filters(filters))
    has_deal = filters.get("has_open_deal")
    if has_deal is not None:
        open_deal = exists().where(
            DealContact.contact_id == Contact.id,
            DealContact.deal_id == Deal.id,
            Deal.status == "open",
        )
        query = query.where(open_deal if has_deal else ~open_deal)
    return query


# -- managing them ---------------------------------------------------------------------------


def get_segment(session: Session, segment_id: int) -> Segment:
    segment = session.get(Segment, segment_id) if valid_id(segment_id) else None
    if segment is None:
        raise NotFound(f"there is no segment {segment_id}")
    return segment


def list_segments(session: Session) -> list[Segment]:
    return list(session.scalars(select(Segment).order_by(func.lower(Segment.name), Segment.id)))


def create_segment(
    session: Session, viewer: Viewer, *, name: str, filters: Mapping[str, Any]
) -> Segment:
    segment = Segment(
        name=clean_text(name, "name", max_length=200, required=True),
        filters=clean_filters(session, filters),
        owner_id=viewer.id,
    )
    session.add(segment)
    session.flush()
    return segment


def update_segment(
    session: Session,
    viewer: Viewer,
    segment_id: int,
    *,
    name: str | None = None,
    filters: Mapping[str, Any] | None = None,
) -> Segment:
    segment = get_segment(session, segment_id)
    _may_change(viewer, segment)
    if name is not None:
        segment.name = clean_text(name, "name", max_length=200, required=True)
    if filters is not None:
        segment.filters = clean_filters(session, filters)
    segment.updated_at = utcnow()
    session.flush()
    return segment


def delete_segment(session: Session, viewer: Viewer, segment_id: int) -> None:
    segment = get_segment(session, segment_id)
    _may_change(viewer, segment)
    session.delete(segment)
    session.flush()


def _may_change(viewer: Viewer, segment: Segment) -> None:
    if segment.owner_id != viewer.id and not viewer.is_admin:
        raise Forbidden("only its owner or an admin changes a segment")


# -- who is in it ----------------------------------------------------------------------------


def segment_size(session: Session, segment: Segment) -> int:
    query = segment_query(session, segment.filters)
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def segment_preview(session: Session, segment: Segment, *, limit: int = 20) -> list[Contact]:
    """The first people of the segment, by name."""
    query = (
        segment_query(session, segment.filters)
        .options(selectinload(Contact.emails))
        .order_by(func.lower(Contact.name), Contact.id)
        .limit(max(1, min(limit, PREVIEW_MAX)))
    )
    return list(session.scalars(query))
