"""/api/v1/followups — tasks in the future about a contact or a deal.

"Due today" is the caller's today, in their own time zone (see server/crm/followups.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from flask import Blueprint
from pydantic import AwareDatetime, BaseModel, Field
from spectree import Response

from server.api.auth import current_viewer
from server.api.common import ListQuery, PageOut, check_version, reading, writing
from server.api.schemas import ErrorOut, FollowUpOut
from server.api.spec import api
from server.crm import followups
from server.crm.custom_fields import MAX_DB_ID
from server.models import FollowUp

bp = Blueprint("followups", __name__, url_prefix="/api/v1/followups")
TAGS = ["follow-ups"]

RowId = Annotated[int, Field(ge=1, le=MAX_DB_ID)]
Title = Annotated[str, Field(min_length=1, max_length=300)]
Version = Annotated[int, Field(description="The version you read; a stale one gets 409")]


class FollowUpsQuery(ListQuery):
    mine: bool = Field(False, description="Only follow-ups you own")
    owner_id: RowId | None = None
    due: Literal["today", "overdue", "upcoming"] | None = Field(
        None,
        description="overdue: before your today; today: during your today (in your time zone); "
        "upcoming: from your tomorrow",
    )
    status: Literal["open", "done", "all"] = "open"
    contact_id: RowId | None = None
    deal_id: RowId | None = None


class FollowUpIn(BaseModel):
    title: Title
    due_at: AwareDatetime = Field(description="With its UTC offset")
    contact_id: RowId | None = Field(None, description="A contact, a deal, or both")
    deal_id: RowId | None = None
    owner_id: RowId | None = Field(None, description="Default: you")


class FollowUpPatch(BaseModel):
    version: Version
    title: Title | None = None
    due_at: AwareDatetime | None = None
    contact_id: RowId | None = None
    deal_id: RowId | None = None
    owner_id: RowId | None = None
    done: bool | None = Field(None, description="true ticks it off, false reopens it")


class DoneIn(BaseModel):
    version: Version | None = None


class SnoozeIn(BaseModel):
    until: AwareDatetime = Field(description="It becomes due then")
    version: Version | None = None


def follow_up_out(follow_up: FollowUp) -> FollowUpOut:
    return FollowUpOut.model_validate(follow_up)


ERRORS = {
    "HTTP_400": ErrorOut,
    "HTTP_401": ErrorOut,
    "HTTP_404": ErrorOut,
    "HTTP_409": ErrorOut,
    "HTTP_422": ErrorOut,
}


@bp.get("")
@api.validate(
    query=FollowUpsQuery,
    resp=Response(
        HTTP_200=PageOut[FollowUpOut], HTTP_400=ErrorOut, HTTP_401=ErrorOut, HTTP_422=ErrorOut
    ),
    tags=TAGS,
)
def list_follow_ups(query: FollowUpsQuery) -> PageOut[FollowUpOut]:
    """Follow-ups by due time, soonest first."""
    viewer = current_viewer()
    filters = followups.FollowUpFilters(
        owner_id=viewer.id if query.mine else query.owner_id,
        due=query.due,
        state=query.status,
        contact_id=query.contact_id,
        deal_id=query.deal_id,
    )
    with reading() as session:
        page = followups.list_follow_ups(
            session, viewer, filters, limit=query.limit, cursor=query.cursor
        )
        return PageOut[FollowUpOut](
            items=[follow_up_out(f) for f in page.items], next_cursor=page.next_cursor
        )


@bp.post("")
@api.validate(
    json=FollowUpIn,
    resp=Response(HTTP_201=FollowUpOut, HTTP_400=ErrorOut, HTTP_401=ErrorOut, HTTP_422=ErrorOut),
    tags=TAGS,
)
def create_follow_up(json: FollowUpIn) -> tuple[FollowUpOut, int]:
    """A follow-up about a contact or a deal, yours unless you give another owner."""
    with writing() as session:
        follow_up = followups.create_follow_up(
            session,
            current_viewer(),
            title=json.title,
            due_at=json.due_at,
            contact_id=json.contact_id,
            deal_id=json.deal_id,
            owner_id=json.owner_id,
        )
        return follow_up_out(follow_up), 201


@bp.get("/<int:follow_up_id>")
@api.validate(resp=Response(HTTP_200=FollowUpOut, HTTP_401=ErrorOut, HTTP_404=ErrorOut), tags=TAGS)
def get_follow_up(follow_up_id: int) -> FollowUpOut:
    with reading() as session:
        return follow_up_out(followups.get_follow_up(session, follow_up_id))


@bp.patch("/<int:follow_up_id>")
@api.validate(json=FollowUpPatch, resp=Response(HTTP_200=FollowUpOut, **ERRORS), tags=TAGS)
def update_follow_up(follow_up_id: int, json: FollowUpPatch) -> FollowUpOut:
    """Change what is sent (null clears contact, deal or owner); 409 on a stale version."""
    sent = json.model_fields_set
    with writing() as session:
        check_version(
            followups.get_follow_up(session, follow_up_id).version, json.version, "follow-up"
        )
        follow_up = followups.update_follow_up(
            session,
            follow_up_id,
            title=json.title,
            due_at=json.due_at,
            contact_id=json.contact_id if "contact_id" in sent else followups.KEEP,
            deal_id=json.deal_id if "deal_id" in sent else followups.KEEP,
            owner_id=json.owner_id if "owner_id" in sent else followups.KEEP,
            done=json.done,
        )
        return follow_up_out(follow_up)


@bp.post("/<int:follow_up_id>/done")
@api.validate(json=DoneIn, resp=Response(HTTP_200=FollowUpOut, **ERRORS), tags=TAGS)
def mark_done(follow_up_id: int, json: DoneIn) -> FollowUpOut:
    """Tick it off."""
    with writing() as session:
        check_version(
            followups.get_follow_up(session, follow_up_id).version, json.version, "follow-up"
        )
        return follow_up_out(followups.mark_done(session, follow_up_id))


@bp.post("/<int:follow_up_id>/snooze")
@api.validate(json=SnoozeIn, resp=Response(HTTP_200=FollowUpOut, **ERRORS), tags=TAGS)
def snooze(follow_up_id: int, json: SnoozeIn) -> FollowUpOut:
    """Make it due later (the new time must be in the future)."""
    with writing() as session:
        check_version(
            followups.get_follow_up(session, follow_up_id).version, json.version, "follow-up"
        )
        return follow_up_out(followups.snooze(session, follow_up_id, json.until))


@bp.delete("/<int:follow_up_id>")
@api.validate(resp=Response(HTTP_204=None, HTTP_401=ErrorOut, HTTP_404=ErrorOut), tags=TAGS)
def delete_follow_up(follow_up_id: int) -> tuple[str, int]:
    with writing() as session:
        followups.delete_follow_up(session, follow_up_id)
    return "", 204
