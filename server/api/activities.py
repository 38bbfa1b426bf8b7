"""/api/v1/activities — the timeline: read it, log an email from the task pane, unlog and relog.

An activity the viewer may not see answers exactly like one that does not exist (404), so ids
never reveal that a colleague's private email is there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from flask import Blueprint, current_app
from pydantic import AwareDatetime, BaseModel, Field
from spectree import Response

from server.api.audit import reads_email
from server.api.auth import current_viewer
from server.api.common import reading, writing
from server.api.schemas import ActivityOut, ErrorOut
from server.api.security import drops_nul
from server.api.spec import api
from server.app_context import rapport
from server.crm import activities
from server.crm.custom_fields import MAX_DB_ID
from server.crm.timeline import ActivityView, TimelinePage
from server.mail_ingest.pane_log import PaneAddress, PaneEmail, log_email

bp = Blueprint("activities", __name__, url_prefix="/api/v1/activities")
TAGS = ["activities"]
RowId = Annotated[int, Field(ge=1, le=MAX_DB_ID)]


class TimelineEntryOut(ActivityOut):
    author_id: int | None = Field(description="Who wrote it, for notes and calls")


class TimelineOut(BaseModel):
    items: list[TimelineEntryOut]
    next_cursor: str | None


class TimelineQuery(BaseModel):
    contact_id: RowId | None = None
    company_id: RowId | None = None
    deal_id: RowId | None = None
    thread_id: RowId | None = None
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=500, description="next_cursor of the last page")


class AddressIn(BaseModel):
    address: str = Field(max_length=998)
    name: str = Field("", max_length=1000)


class LogEmailIn(BaseModel):
    """What Office.js gives the pane about the open email."""

    message_id: str = Field(
        min_length=1, max_length=998, description="internetMessageId, e.g. <abc@mail.example>"
    )
    subject: str = Field("", max_length=10_000)
    sender: AddressIn = Field(alias="from")
    to: list[AddressIn] = Field(default_factory=list, max_length=1000)
    cc: list[AddressIn] = Field(default_factory=list, max_length=1000)
    bcc: list[AddressIn] = Field(default_factory=list, max_length=1000)
    date: AwareDatetime = Field(description="When it was sent (dateTimeCreated), with offset")
    body: str | None = Field(
        None, max_length=1_000_000, description="The body as text, if the pane read it"
    )
    snippet: str | None = Field(None, max_length=10_000, description="Used when body is absent")
    conversation_id: str | None = Field(None, max_length=500)


class LoggedOut(BaseModel):
    activity: TimelineEntryOut
    created: bool = Field(description="false: it was already captured (nothing was duplicated)")
    relogged: bool = Field(description="true: it had been unlogged and is back on the timeline")


class UnloggedOut(BaseModel):
    id: int
    unlogged_at: datetime | None
    unlogged_by_id: int | None


def entry_out(view: ActivityView) -> TimelineEntryOut:
    return TimelineEntryOut.model_validate(view)


def timeline_out(page: TimelinePage) -> TimelineOut:
    return TimelineOut(items=[entry_out(v) for v in page.items], next_cursor=page.next_cursor)


@bp.get("")
@api.validate(
    query=TimelineQuery,
    resp=Response(
        HTTP_200=TimelineOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_404=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def list_activities(query: TimelineQuery) -> TimelineOut:
    """The timeline of one contact, company, deal or thread, newest first, cursor-paged."""
    with reading() as session:
        page = activities.activity_timeline(
            session,
            current_viewer(),
            contact_id=query.contact_id,
            company_id=query.company_id,
            deal_id=query.deal_id,
            thread_id=query.thread_id,
            limit=query.limit,
            cursor=query.cursor,
        )
        return timeline_out(page)


@bp.get("/<int:activity_id>")
@reads_email
@api.validate(
    resp=Response(HTTP_200=TimelineEntryOut, HTTP_401=ErrorOut, HTTP_404=ErrorOut), tags=TAGS
)
def get_activity(activity_id: int) -> TimelineEntryOut:
    """One activity, cut to what the viewer may see of it."""
    with reading() as session:
        return entry_out(activities.visible_activity(session, current_viewer(), activity_id))


@bp.post("/log")
@drops_nul
@api.validate(
    json=LogEmailIn,
    resp=Response(
        HTTP_200=LoggedOut,
        HTTP_201=LoggedOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_409=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=[*TAGS, "task pane"],
)
def log_from_pane(json: LogEmailIn) -> tuple[LoggedOut, int]:
    """Log the open email: 201 with a new activity, or 200 with the one already captured."""
    viewer = current_viewer()
    settings = rapport(current_app).settings
    email = PaneEmail(
        message_id=json.message_id,
        sender=_address(json.sender),
        date=json.date,
        subject=json.subject,
        to=[_address(a) for a in json.to],
        cc=[_address(a) for a in json.cc],
        bcc=[_address(a) for a in json.bcc],
        body=json.body,
        snippet=json.snippet,
        conversation_id=json.conversation_id,
    )
    with writing() as session:
        logged = log_email(session, viewer, email, internal_domains=settings.internal_domains)
        view = activities.visible_activity(session, viewer, logged.activity_id)
        out = LoggedOut(activity=entry_out(view), created=logged.created, relogged=logged.relogged)
    return out, 201 if logged.created else 200


@bp.post("/<int:activity_id>/unlog")
@api.validate(
    resp=Response(HTTP_200=UnloggedOut, HTTP_400=ErrorOut, HTTP_401=ErrorOut, HTTP_404=ErrorOut),
    tags=TAGS,
)
def unlog(activity_id: int) -> UnloggedOut:
    """Take an email off the timeline for everyone; it stays off through resyncs and imports."""
    with writing() as session:
        activity = activities.unlog_visible(session, current_viewer(), activity_id)
        return UnloggedOut(
            id=activity.id,
            unlogged_at=activity.unlogged_at,
            unlogged_by_id=activity.unlogged_by_id,
        )


@bp.post("/<int:activity_id>/relog")
@api.validate(
    resp=Response(HTTP_200=TimelineEntryOut, HTTP_401=ErrorOut, HTTP_404=ErrorOut), tags=TAGS
)
def relog(activity_id: int) -> TimelineEntryOut:
    """Put an unlogged email back (its content returns when a mailbox holding it syncs again)."""
    with writing() as session:
        return entry_out(activities.relog(session, current_viewer(), activity_id))


def _address(given: AddressIn) -> PaneAddress:
    return PaneAddress(given.address, given.name)
