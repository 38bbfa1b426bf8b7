"""/api/v1/deals — deals, their stage moves (with the board's undo) and the deal page."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field
from spectree import Response

from server.api.activities import TimelineEntryOut, entry_out
from server.api.auth import current_viewer
from server.api.common import ListQuery, PageOut, check_version, reading, writing
from server.api.schemas import CompanyRef, DealOut, ErrorOut, Out, StageRef
from server.api.spec import api
from server.crm import deals
from server.crm.custom_fields import MAX_DB_ID
from server.models import Contact, Deal

bp = Blueprint("deals", __name__, url_prefix="/api/v1/deals")
TAGS = ["deals"]

RowId = Annotated[int, Field(ge=1, le=MAX_DB_ID)]
Title = Annotated[str, Field(min_length=1, max_length=300)]
Amount = Annotated[
    str,
    Field(max_length=20, description='A decimal string: "1200" or "1200.50"', examples=["1200.50"]),
]
Currency = Annotated[str, Field(min_length=3, max_length=3, description="ISO 4217, e.g. EUR")]
Money = Annotated[Decimal, Field(max_digits=14, decimal_places=2, allow_inf_nan=False)]
ContactIds = Annotated[list[RowId], Field(max_length=deals.MAX_CONTACTS)]


class DealIn(BaseModel):
    title: Title
    amount: Amount | None = None
    currency: Currency = "EUR"
    pipeline_id: RowId | None = Field(None, description="Default: the default pipeline")
    stage_id: RowId | None = Field(None, description="Default: the pipeline's first stage")
    owner_id: RowId | None = Field(None, description="Default: you")
    company_id: RowId | None = None
    contact_ids: ContactIds = Field(default_factory=list)
    expected_close: date | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)


class DealPatch(BaseModel):
    """Only the fields sent change; null clears amount, owner, company and expected close. The
    stage moves with POST /deals/{id}/stage (which records the history)."""

    version: int = Field(description="The version you read; a stale one gets 409")
    title: Title | None = None
    amount: Amount | None = None
    currency: Currency | None = None
    owner_id: RowId | None = None
    company_id: RowId | None = None
    contact_ids: ContactIds | None = Field(None, description="Replaces the deal's contacts")
    expected_close: date | None = None
    custom_fields: dict[str, Any] | None = Field(
        None, description="Merged into the deal's: a key set to null is removed"
    )


class MoveStageIn(BaseModel):
    stage_id: RowId
    version: int | None = Field(None, description="The version you read; a stale one gets 409")


class UndoIn(BaseModel):
    version: int | None = Field(None, description="The version you read; a stale one gets 409")


class DealsQuery(ListQuery):
    """Filters combine with AND; custom fields filter as `cf.<key>=value` (and `cf.<key>.gte=`,
    `cf.<key>.lte=` on number, money and date fields)."""

    model_config = ConfigDict(extra="allow")

    pipeline_id: RowId | None = None
    stage_id: RowId | None = None
    status: Literal["open", "won", "lost"] | None = None
    owner_id: RowId | None = None
    company_id: RowId | None = None
    contact_id: RowId | None = None
    amount_min: Money | None = None
    amount_max: Money | None = None
    expected_close_from: date | None = None
    expected_close_to: date | None = None
    sort: deals.Sort = Field("-updated_at", description="A leading '-' sorts descending")


class DealQuery(BaseModel):
    limit: int = Field(20, ge=1, le=100, description="Timeline entries per page")
    cursor: str | None = Field(None, max_length=500, description="next_cursor of the timeline")


class DealContactOut(Out):
    id: int
    name: str
    email: str | None


class StageChangeOut(Out):
    id: int
    from_stage: StageRef | None = Field(description="null for the deal's creation")
    to_stage: StageRef
    changed_by_id: int | None
    changed_at: datetime


class DealDetailOut(DealOut):
    contacts: list[DealContactOut]
    company: CompanyRef | None
    history: list[StageChangeOut]
    timeline: list[TimelineEntryOut]
    next_cursor: str | None = Field(description="For GET /activities?deal_id=...&cursor=...")


def deal_out(deal: Deal) -> DealOut:
    return DealOut.model_validate(deal)


def _contact_out(contact: Contact) -> DealContactOut:
    primary = next((e for e in contact.emails if e.is_primary), None) or next(
        iter(contact.emails), None
    )
    return DealContactOut(
        id=contact.id, name=contact.name, email=primary.address if primary else None
    )


def _input(body: DealIn | DealPatch) -> deals.DealInput:
    given = body.model_fields_set - {"version", "pipeline_id", "stage_id"}
    return deals.DealInput(
        title=body.title,
        amount=body.amount,
        currency=body.currency,
        owner_id=body.owner_id,
        company_id=body.company_id,
        contact_ids=body.contact_ids,
        expected_close=body.expected_close,
        custom_fields=body.custom_fields,
        given=frozenset(given),
    )


@bp.get("")
@api.validate(
    query=DealsQuery,
    resp=Response(
        HTTP_200=PageOut[DealOut], HTTP_400=ErrorOut, HTTP_401=ErrorOut, HTTP_422=ErrorOut
    ),
    tags=TAGS,
)
def list_deals(query: DealsQuery) -> PageOut[DealOut]:
    """Deals, filtered and sorted, cursor-paged."""
    filters = deals.DealFilters(
        pipeline_id=query.pipeline_id,
        stage_id=query.stage_id,
        status=query.status,
        owner_id=query.owner_id,
        company_id=query.company_id,
        contact_id=query.contact_id,
        amount_min=query.amount_min,
        amount_max=query.amount_max,
        expected_close_from=query.expected_close_from,
        expected_close_to=query.expected_close_to,
        custom_fields=dict(query.model_extra or {}),
    )
    with reading() as session:
        page = deals.list_deals(
            session, filters, sort=query.sort, limit=query.limit, cursor=query.cursor
        )
        return PageOut[DealOut](
            items=[deal_out(d) for d in page.items], next_cursor=page.next_cursor
        )


@bp.post("")
@api.validate(
    json=DealIn,
    resp=Response(HTTP_201=DealOut, HTTP_400=ErrorOut, HTTP_401=ErrorOut, HTTP_422=ErrorOut),
    tags=TAGS,
)
def create_deal(json: DealIn) -> tuple[DealOut, int]:
    """A new deal; its creation is the first entry of its stage history."""
    with writing() as session:
        deal = deals.create_deal(
            session,
            current_viewer(),
            _input(json),
            pipeline_id=json.pipeline_id,
            stage_id=json.stage_id,
        )
        return deal_out(deal), 201


@bp.get("/<int:deal_id>")
@api.validate(
    query=DealQuery,
    resp=Response(
        HTTP_200=DealDetailOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_404=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def get_deal(deal_id: int, query: DealQuery) -> DealDetailOut:
    """The deal page: stage, people, company, stage history and the timeline around the deal."""
    with reading() as session:
        detail = deals.deal_detail(
            session, current_viewer(), deal_id, limit=query.limit, cursor=query.cursor
        )
        return DealDetailOut(
            **deal_out(detail.deal).model_dump(),
            contacts=[_contact_out(c) for c in detail.contacts],
            company=CompanyRef.model_validate(detail.company) if detail.company else None,
            history=[StageChangeOut.model_validate(h) for h in detail.history],
            timeline=[entry_out(v) for v in detail.timeline.items],
            next_cursor=detail.timeline.next_cursor,
        )


@bp.patch("/<int:deal_id>")
@api.validate(
    json=DealPatch,
    resp=Response(
        HTTP_200=DealOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_404=ErrorOut,
        HTTP_409=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def update_deal(deal_id: int, json: DealPatch) -> DealOut:
    """Change a deal; a stale version is refused with 409 and nothing changes."""
    with writing() as session:
        check_version(deals.get_deal(session, deal_id).version, json.version, "deal")
        return deal_out(deals.update_deal(session, deal_id, _input(json)))


@bp.post("/<int:deal_id>/stage")
@api.validate(
    json=MoveStageIn,
    resp=Response(
        HTTP_200=DealOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_404=ErrorOut,
        HTTP_409=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def move_stage(deal_id: int, json: MoveStageIn) -> DealOut:
    """Move the deal to a stage: records who and when, and sets status from the stage outcome."""
    with writing() as session:
        check_version(deals.get_deal(session, deal_id).version, json.version, "deal")
        return deal_out(deals.move_stage(session, current_viewer(), deal_id, json.stage_id))


@bp.post("/<int:deal_id>/stage/undo")
@api.validate(
    json=UndoIn,
    resp=Response(
        HTTP_200=DealOut, HTTP_401=ErrorOut, HTTP_404=ErrorOut, HTTP_409=ErrorOut, HTTP_422=ErrorOut
    ),
    tags=TAGS,
)
def undo_stage_move(deal_id: int, json: UndoIn) -> DealOut:
    """Revert your own last stage move of this deal, within a few minutes of making it."""
    with writing() as session:
        check_version(deals.get_deal(session, deal_id).version, json.version, "deal")
        return deal_out(deals.undo_stage_move(session, current_viewer(), deal_id))


@bp.delete("/<int:deal_id>")
@api.validate(
    resp=Response(HTTP_204=None, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut),
    tags=TAGS,
)
def delete_deal(deal_id: int) -> tuple[str, int]:
    """Delete a deal with its history, follow-ups and the notes filed on it (admin or its
    owner)."""
    with writing() as session:
        deals.delete_deal(session, current_viewer(), deal_id)
    return "", 204
