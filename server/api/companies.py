"""/api/v1/companies: list, read, create, change, delete and merge companies.

Same rules as contacts: team data that every signed-in user may read and edit; delete and merge
for an admin or the owner (of both, for a merge); changes carry their `version` (409 if stale);
domains are unique across companies (409 naming the domain).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, cast

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field, field_validator
from spectree import Response

from server.api.auth import current_viewer
from server.api.common import ListQuery, PageOut, check_version, reading, writing
from server.api.contacts import (
    CUSTOM_FIELDS_HELP,
    ERRORS,
    Absent,
    DetailQuery,
    Id,
    MergeIn,
    Tag,
    TimelineOut,
    TimelineQuery,
    custom_params,
    refuse_null,
    timeline_out,
)
from server.api.schemas import (
    ActivityOut,
    CompanyOut,
    DealOut,
    ErrorOut,
    Out,
    company_out,
)
from server.api.spec import api
from server.crm import companies, merge

bp = Blueprint("companies", __name__, url_prefix="/api/v1")


class CompanyFilterQuery(BaseModel):
    """Filters of the company list and export. Custom fields filter as `cf.<key>=value`, and
    number, money and date fields also as `cf.<key>.gte=` / `cf.<key>.lte=`."""

    model_config = ConfigDict(extra="allow")

    q: str | None = Field(None, max_length=200, description="Prefix of a name, word or domain")
    owner_id: Id | None = None
    tag: Tag | None = None
    last_contacted_before: datetime | None = Field(
        None, description="Anyone at the company last contacted before then (UTC when no zone)"
    )
    last_contacted_after: datetime | None = None
    never_contacted: bool | None = Field(
        None, description="true: nobody at the company ever contacted; false: someone was"
    )
    sort: Literal["name", "created_at", "updated_at", "last_contacted_at"] = "name"
    order: Literal["asc", "desc"] = "asc"


class CompanyListQuery(ListQuery, CompanyFilterQuery):
    """A page of the company list."""

    model_config = ConfigDict(extra="allow")


class CompanyListItemOut(CompanyOut):
    last_contacted_at: datetime | None = Field(
        description="When anyone at the company was last contacted (the latest of its people's)"
    )


class CompanyPage(PageOut[CompanyListItemOut]):
    pass


class CompanyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=300)
    domains: list[str] = Field(
        default_factory=list, max_length=50, description="Registrable domains, e.g. acme.co.uk"
    )
    owner_id: Id | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    custom_fields: dict[str, Any] = Field(default_factory=dict, description=CUSTOM_FIELDS_HELP)


class CompanyPatch(BaseModel):
    """Only the fields given change. `domains` replaces the domains; `add_domains` and
    `remove_domains` change some."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(description="The version this change is based on")
    name: str | Absent = Field(None, min_length=1, max_length=300)
    domains: list[str] | Absent = Field(None, max_length=50)
    add_domains: list[str] | Absent = Field(None, max_length=50)
    remove_domains: list[str] | Absent = Field(None, max_length=50)
    owner_id: Id | None = Field(None, description="null: nobody owns the company")
    tags: list[Tag] | Absent = Field(None, max_length=50, description="Replaces the tags")
    custom_fields: dict[str, Any] | Absent = Field(None, description=CUSTOM_FIELDS_HELP)

    _not_null = field_validator(
        "name",
        "domains",
        "add_domains",
        "remove_domains",
        "tags",
        "custom_fields",
        mode="before",
    )(refuse_null)


class CompanyContactOut(Out):
    id: int
    name: str
    title: str
    emails: list[str]


class CompanyDetailOut(CompanyOut):
    contacts: list[CompanyContactOut] = Field(
        description="The first 100 people by name; /contacts?company_id= lists them all"
    )
    contact_count: int
    timeline: list[ActivityOut] = Field(description="The first page, newest first")
    timeline_next_cursor: str | None = Field(
        description="Pass as cursor to /companies/{id}/timeline for the next page"
    )
    deals: list[DealOut] = Field(description="Open deals first, then the most recent")


class MergedCompanyOut(BaseModel):
    company: CompanyDetailOut
    merged_id: int = Field(description="The id of the company merged in (now deleted)")
    moved: dict[str, int] = Field(description="How many rows of each kind moved")
    filled: list[str] = Field(description="Fields of the kept company filled from the other")


def company_filters(query: CompanyFilterQuery) -> companies.CompanyFilters:
    """The list's filters (also used by the CSV export)."""
    return companies.CompanyFilters(
        q=query.q,
        owner_id=query.owner_id,
        tag=query.tag,
        last_contacted_before=query.last_contacted_before,
        last_contacted_after=query.last_contacted_after,
        never_contacted=query.never_contacted,
        custom=custom_params(query),
    )


def detail_out(detail: companies.CompanyDetail) -> CompanyDetailOut:
    base = company_out(detail.company, detail.tags)
    return CompanyDetailOut(
        **base.model_dump(),
        contacts=[
            CompanyContactOut(
                id=c.id, name=c.name, title=c.title, emails=[e.address for e in c.emails]
            )
            for c in detail.contacts
        ],
        contact_count=detail.contact_count,
        timeline=[ActivityOut.model_validate(a) for a in detail.timeline.items],
        timeline_next_cursor=detail.timeline.next_cursor,
        deals=[DealOut.model_validate(d) for d in detail.deals],
    )


@bp.get("/companies")
@api.validate(
    query=CompanyListQuery, resp=Response(HTTP_200=CompanyPage, **ERRORS), tags=["companies"]
)
def list_companies(query: CompanyListQuery) -> CompanyPage:
    """Companies matching the filters, one page at a time."""
    with reading() as session:
        page = companies.list_companies(
            session,
            company_filters(query),
            sort=query.sort,
            descending=query.order == "desc",
            limit=query.limit,
            cursor=query.cursor,
        )
        ids = [c.id for c in page.items]
        tags = companies.tags_of(session, ids)
        contacted = companies.last_contacted_of(session, ids)
        return CompanyPage(
            items=[
                CompanyListItemOut(
                    **company_out(c, tags.get(c.id, [])).model_dump(),
                    last_contacted_at=contacted.get(c.id),
                )
                for c in page.items
            ],
            next_cursor=page.next_cursor,
        )


@bp.get("/companies/<int:company_id>")
@api.validate(
    query=DetailQuery,
    resp=Response(HTTP_200=CompanyDetailOut, HTTP_404=ErrorOut, **ERRORS),
    tags=["companies"],
)
def get_company(company_id: int, query: DetailQuery) -> CompanyDetailOut:
    """One company with its domains, people, tags, custom fields, the first page of its timeline
    (as far as you may see it) and its deals."""
    with reading() as session:
        detail = companies.company_detail(
            session, current_viewer(), company_id, timeline_limit=query.limit
        )
        return detail_out(detail)


@bp.get("/companies/<int:company_id>/timeline")
@api.validate(
    query=TimelineQuery,
    resp=Response(HTTP_200=TimelineOut, HTTP_404=ErrorOut, **ERRORS),
    tags=["companies"],
)
def company_timeline(company_id: int, query: TimelineQuery) -> TimelineOut:
    """Mail with the company's people and notes about the company, newest first, paged."""
    with reading() as session:
        page = companies.company_timeline(
            session, current_viewer(), company_id, limit=query.limit, cursor=query.cursor
        )
        return timeline_out(page)


@bp.post("/companies")
@api.validate(
    json=CompanyIn,
    resp=Response(HTTP_201=CompanyOut, HTTP_409=ErrorOut, **ERRORS),
    tags=["companies"],
)
def create_company(json: CompanyIn) -> tuple[CompanyOut, int]:
    """Create a company; a domain another company has is refused (409 naming it)."""
    with writing() as session:
        fields = cast(companies.CompanyFields, json.model_dump(exclude_unset=True))
        company = companies.create_company(session, current_viewer(), fields)
        return company_out(company), 201


@bp.patch("/companies/<int:company_id>")
@api.validate(
    json=CompanyPatch,
    resp=Response(HTTP_200=CompanyOut, HTTP_404=ErrorOut, HTTP_409=ErrorOut, **ERRORS),
    tags=["companies"],
)
def update_company(company_id: int, json: CompanyPatch) -> CompanyOut:
    """Change some fields of a company (send the version you read; 409 if it is stale)."""
    with writing() as session:
        company = companies.get_company(session, company_id)
        check_version(company.version, json.version, "company")
        fields = cast(
            companies.CompanyFields, json.model_dump(exclude_unset=True, exclude={"version"})
        )
        companies.update_company(session, company, fields)
        return company_out(company)


@bp.delete("/companies/<int:company_id>")
@api.validate(
    resp=Response("HTTP_204", HTTP_403=ErrorOut, HTTP_404=ErrorOut, HTTP_409=ErrorOut, **ERRORS),
    tags=["companies"],
)
def delete_company(company_id: int) -> tuple[str, int]:
    """Delete a company (admin or its owner). Its people, deals and notes stay, without it."""
    with writing() as session:
        company = companies.get_company(session, company_id)
        companies.delete_company(session, current_viewer(), company)
    return "", 204


@bp.post("/companies/<int:company_id>/merge")
@api.validate(
    json=MergeIn,
    resp=Response(
        HTTP_200=MergedCompanyOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut, HTTP_409=ErrorOut, **ERRORS
    ),
    tags=["companies"],
)
def merge_companies(company_id: int, json: MergeIn) -> MergedCompanyOut:
    """Merge another company into this one: its domains, people, deals, notes, tags and custom
    fields move here (this company's values win), then it is deleted."""
    viewer = current_viewer()
    with writing() as session:
        keep = companies.get_company(session, company_id)
        other = merge.other_company(session, json.other_id)
        check_version(keep.version, json.version, "company")
        check_version(other.version, json.other_version, "company")
        result = merge.merge_companies(session, viewer, keep, other)
        detail = companies.company_detail(session, viewer, keep.id)
        return MergedCompanyOut(
            company=detail_out(detail),
            merged_id=result.removed_id,
            moved=result.moved,
            filled=result.filled,
        )
