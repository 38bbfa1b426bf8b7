"""/api/v1/contacts: list, read, create, change, delete and merge contacts.

Contacts are team data: every signed-in user may list, read, create and edit them. Deleting and
merging destroy a record for everyone, so they are for an admin or the contact's owner (for a
merge, the owner of both). A change must carry the `version` it was based on; a stale one is
refused with 409 and nothing is changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, cast

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema
from spectree import Response

from server.api.auth import current_viewer
from server.api.common import ListQuery, PageOut, check_version, reading, writing
from server.api.schemas import (
    ActivityOut,
    ContactOut,
    DealOut,
    ErrorOut,
    FollowUpOut,
    contact_out,
)
from server.api.spec import api
from server.crm import contacts, merge
from server.crm.custom_fields import MAX_DB_ID
from server.crm.timeline import TimelinePage
from server.models.contacts import LIFECYCLE_STAGES

bp = Blueprint("contacts", __name__, url_prefix="/api/v1")

Id = Annotated[int, Field(ge=1, le=MAX_DB_ID)]
Stage = Annotated[str, Field(json_schema_extra={"enum": list(LIFECYCLE_STAGES)})]
Email = Annotated[str, Field(max_length=320)]
Tag = Annotated[str, Field(max_length=100)]
# A PATCH field that may be left out but not set to null (the schema shows only the real type).
Absent = SkipJsonSchema[None]
CUSTOM_FIELDS_HELP = (
    'Custom field values by key; money as {"amount": "12.50", "currency": "EUR"}, dates as '
    "YYYY-MM-DD; null clears a field"
)


def refuse_null(value: Any) -> Any:
    """For PATCH fields that may be absent but never null."""
    if value is None:
        raise ValueError("cannot be null; leave the field out to keep its value")
    return value


class ContactFilterQuery(BaseModel):
    """Filters of the contact list and export. Custom fields filter as `cf.<key>=value`, and
    number, money and date fields also as `cf.<key>.gte=` / `cf.<key>.lte=`."""

    model_config = ConfigDict(extra="allow")

    q: str | None = Field(None, max_length=200, description="Prefix of a name, word or address")
    owner_id: Id | None = None
    lifecycle_stage: Stage | None = None
    tag: Tag | None = None
    company_id: Id | None = None
    last_contacted_before: datetime | None = Field(None, description="UTC when no zone is given")
    last_contacted_after: datetime | None = None
    never_contacted: bool | None = Field(
        None, description="true: only people never contacted; false: only people contacted"
    )
    sort: Literal["name", "created_at", "updated_at", "last_contacted_at"] = "name"
    order: Literal["asc", "desc"] = "asc"


class ContactListQuery(ListQuery, ContactFilterQuery):
    """A page of the contact list."""

    model_config = ConfigDict(extra="allow")


class ContactPage(PageOut[ContactOut]):
    pass


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=300)
    emails: list[Email] = Field(default_factory=list, max_length=50)
    title: str = Field("", max_length=200)
    phone: str = Field("", max_length=100)
    company_id: Id | None = Field(None, description="The company; or give company_name")
    company_name: str | None = Field(
        None,
        max_length=300,
        description="Found by the contact's email domain or by name, else created",
    )
    lifecycle_stage: Stage = "lead"
    owner_id: Id | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    custom_fields: dict[str, Any] = Field(default_factory=dict, description=CUSTOM_FIELDS_HELP)


class ContactPatch(BaseModel):
    """Only the fields given change. `emails` replaces the addresses (the first is the primary
    one); `add_emails` and `remove_emails` change some. An added address brings its past captured
    mail along; a removed one takes it away (the mail keeps the address)."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(description="The version this change is based on")
    # Absent means "unchanged"; fields that cannot be empty refuse an explicit null.
    name: str | Absent = Field(None, max_length=300)
    emails: list[Email] | Absent = Field(None, max_length=50)
    add_emails: list[Email] | Absent = Field(None, max_length=50)
    remove_emails: list[Email] | Absent = Field(None, max_length=50)
    title: str | Absent = Field(None, max_length=200)
    phone: str | Absent = Field(None, max_length=100)
    company_id: Id | None = Field(None, description="null takes the contact out of its company")
    company_name: str | Absent = Field(None, max_length=300)
    lifecycle_stage: Stage | Absent = None
    owner_id: Id | None = Field(None, description="null: nobody owns the contact")
    tags: list[Tag] | Absent = Field(None, max_length=50, description="Replaces the tags")
    custom_fields: dict[str, Any] | Absent = Field(None, description=CUSTOM_FIELDS_HELP)

    _not_null = field_validator(
        "name",
        "emails",
        "add_emails",
        "remove_emails",
        "title",
        "phone",
        "company_name",
        "lifecycle_stage",
        "tags",
        "custom_fields",
        mode="before",
    )(refuse_null)


class ContactDetailOut(ContactOut):
    timeline: list[ActivityOut] = Field(description="The first page, newest first")
    timeline_next_cursor: str | None = Field(
        description="Pass as cursor to /contacts/{id}/timeline for the next page"
    )
    deals: list[DealOut] = Field(description="Open deals this person takes part in")
    follow_ups: list[FollowUpOut] = Field(description="Follow-ups not done yet, soonest first")


class DetailQuery(BaseModel):
    limit: int = Field(20, ge=1, le=100, description="Timeline entries in the first page")


class TimelineQuery(DetailQuery):
    cursor: str | None = Field(None, max_length=200, description="next_cursor of the last page")


class TimelineOut(BaseModel):
    items: list[ActivityOut]
    next_cursor: str | None


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    other_id: Id = Field(description="The record merged into this one, then deleted")
    version: int | None = Field(None, description="This record's version, if you want it checked")
    other_version: int | None = Field(None, description="The other record's version")


class MergedContactOut(BaseModel):
    contact: ContactDetailOut
    merged_id: int = Field(description="The id of the contact merged in (now deleted)")
    moved: dict[str, int] = Field(description="How many rows of each kind moved")
    filled: list[str] = Field(description="Fields of the kept contact filled from the other")


def custom_params(query: BaseModel) -> dict[str, Any]:
    """The `cf.*` parameters; a list URL's paging parameters given to an export are ignored."""
    return {k: v for k, v in (query.model_extra or {}).items() if k not in ("limit", "cursor")}


def contact_filters(query: ContactFilterQuery) -> contacts.ContactFilters:
    """The list's filters (also used by the CSV export)."""
    return contacts.ContactFilters(
        q=query.q,
        owner_id=query.owner_id,
        lifecycle_stage=query.lifecycle_stage,
        tag=query.tag,
        company_id=query.company_id,
        last_contacted_before=query.last_contacted_before,
        last_contacted_after=query.last_contacted_after,
        never_contacted=query.never_contacted,
        custom=custom_params(query),
    )


def timeline_out(page: TimelinePage) -> TimelineOut:
    return TimelineOut(
        items=[ActivityOut.model_validate(a) for a in page.items], next_cursor=page.next_cursor
    )


def detail_out(detail: contacts.ContactDetail) -> ContactDetailOut:
    base = contact_out(detail.contact, detail.tags)
    return ContactDetailOut(
        **base.model_dump(),
        timeline=[ActivityOut.model_validate(a) for a in detail.timeline.items],
        timeline_next_cursor=detail.timeline.next_cursor,
        deals=[DealOut.model_validate(d) for d in detail.deals],
        follow_ups=[FollowUpOut.model_validate(f) for f in detail.follow_ups],
    )


ERRORS = {"HTTP_400": ErrorOut, "HTTP_401": ErrorOut, "HTTP_422": ErrorOut}


@bp.get("/contacts")
@api.validate(
    query=ContactListQuery, resp=Response(HTTP_200=ContactPage, **ERRORS), tags=["contacts"]
)
def list_contacts(query: ContactListQuery) -> ContactPage:
    """Contacts matching the filters, one page at a time (pass next_cursor back for the next)."""
    with reading() as session:
        page = contacts.list_contacts(
            session,
            contact_filters(query),
            sort=query.sort,
            descending=query.order == "desc",
            limit=query.limit,
            cursor=query.cursor,
        )
        tags = contacts.tags_of(session, [c.id for c in page.items])
        return ContactPage(
            items=[contact_out(c, tags.get(c.id, [])) for c in page.items],
            next_cursor=page.next_cursor,
        )


@bp.get("/contacts/<int:contact_id>")
@api.validate(
    query=DetailQuery,
    resp=Response(HTTP_200=ContactDetailOut, HTTP_404=ErrorOut, **ERRORS),
    tags=["contacts"],
)
def get_contact(contact_id: int, query: DetailQuery) -> ContactDetailOut:
    """One contact with its addresses, company, tags, custom fields, the first page of its
    timeline (as far as you may see it), open deals and follow-ups."""
    with reading() as session:
        detail = contacts.contact_detail(
            session, current_viewer(), contact_id, timeline_limit=query.limit
        )
        return detail_out(detail)


@bp.get("/contacts/<int:contact_id>/timeline")
@api.validate(
    query=TimelineQuery,
    resp=Response(HTTP_200=TimelineOut, HTTP_404=ErrorOut, **ERRORS),
    tags=["contacts"],
)
def contact_timeline(contact_id: int, query: TimelineQuery) -> TimelineOut:
    """The contact's emails, meetings and notes, newest first, paged."""
    with reading() as session:
        page = contacts.contact_timeline(
            session, current_viewer(), contact_id, limit=query.limit, cursor=query.cursor
        )
        return timeline_out(page)


@bp.post("/contacts")
@api.validate(
    json=ContactIn,
    resp=Response(HTTP_201=ContactOut, HTTP_409=ErrorOut, **ERRORS),
    tags=["contacts"],
)
def create_contact(json: ContactIn) -> tuple[ContactOut, int]:
    """Create a contact; an address another contact has is refused (409 naming it)."""
    with writing() as session:
        fields = cast(contacts.ContactFields, json.model_dump(exclude_unset=True))
        contact = contacts.create_contact(session, current_viewer(), fields)
        return contact_out(contact), 201


@bp.patch("/contacts/<int:contact_id>")
@api.validate(
    json=ContactPatch,
    resp=Response(HTTP_200=ContactOut, HTTP_404=ErrorOut, HTTP_409=ErrorOut, **ERRORS),
    tags=["contacts"],
)
def update_contact(contact_id: int, json: ContactPatch) -> ContactOut:
    """Change some fields of a contact (send the version you read; 409 if it is stale)."""
    with writing() as session:
        contact = contacts.get_contact(session, contact_id)
        check_version(contact.version, json.version, "contact")
        fields = cast(
            contacts.ContactFields, json.model_dump(exclude_unset=True, exclude={"version"})
        )
        contacts.update_contact(session, contact, fields)
        return contact_out(contact)


@bp.delete("/contacts/<int:contact_id>")
@api.validate(
    resp=Response("HTTP_204", HTTP_403=ErrorOut, HTTP_404=ErrorOut, HTTP_409=ErrorOut, **ERRORS),
    tags=["contacts"],
)
def delete_contact(contact_id: int) -> tuple[str, int]:
    """Delete a contact (admin or its owner). Captured mail keeps the address; deals stay;
    follow-ups about this person alone go."""
    with writing() as session:
        contact = contacts.get_contact(session, contact_id)
        contacts.delete_contact(session, current_viewer(), contact)
    return "", 204


@bp.post("/contacts/<int:contact_id>/merge")
@api.validate(
    json=MergeIn,
    resp=Response(
        HTTP_200=MergedContactOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut, HTTP_409=ErrorOut, **ERRORS
    ),
    tags=["contacts"],
)
def merge_contacts(contact_id: int, json: MergeIn) -> MergedContactOut:
    """Merge another contact into this one: its addresses, mail, notes, deals, follow-ups, tags
    and custom fields move here (this contact's values win), then it is deleted."""
    viewer = current_viewer()
    with writing() as session:
        keep = contacts.get_contact(session, contact_id)
        other = merge.other_contact(session, json.other_id)
        check_version(keep.version, json.version, "contact")
        check_version(other.version, json.other_version, "contact")
        result = merge.merge_contacts(session, viewer, keep, other)
        detail = contacts.contact_detail(session, viewer, keep.id)
        return MergedContactOut(
            contact=detail_out(detail),
            merged_id=result.removed_id,
            moved=result.moved,
            filled=result.filled,
        )
