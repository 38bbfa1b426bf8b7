"""GET /api/v1/lookup — the task pane's main call, one round trip."""

from __future__ import annotations

from flask import Blueprint, current_app
from pydantic import BaseModel, Field
from spectree import Response

from server.api.auth import current_viewer
from server.api.schemas import (
    ActivityOut,
    CompanyOut,
    ContactOut,
    DealOut,
    ErrorOut,
    FollowUpOut,
    UnknownPersonOut,
    company_out,
    contact_out,
)
from server.api.signals import SignalOut, signal_out
from server.api.spec import api
from server.app_context import rapport
from server.crm.lookup import lookup as lookup_people
from server.crm.signals import signals_for_contacts

bp = Blueprint("lookup", __name__, url_prefix="/api/v1")


class LookupQuery(BaseModel):
    email: list[str] = Field(min_length=1, max_length=50, description="Addresses on the email")
    limit: int = Field(20, ge=1, le=100, description="Timeline entries per page")
    cursor: str | None = Field(None, description="next_cursor of the previous page")


class LookupOut(BaseModel):
    contacts: list[ContactOut]
    companies: list[CompanyOut]
    unknown: list[UnknownPersonOut]
    timeline: list[ActivityOut]
    next_cursor: str | None
    deals: list[DealOut]
    follow_ups: list[FollowUpOut]
    signals: list[SignalOut] = Field(
        description="What to act on about these people, their companies and open deals, the"
        " longest due first (on the first page only: a cursor pages the timeline alone)"
    )


@bp.get("/lookup")
@api.validate(
    query=LookupQuery,
    resp=Response(HTTP_200=LookupOut, HTTP_400=ErrorOut, HTTP_401=ErrorOut, HTTP_422=ErrorOut),
    tags=["task pane"],
)
def lookup(query: LookupQuery) -> LookupOut:
    """Everything about the people on an email: contacts, companies, timeline, deals, follow-ups,
    signals."""
    viewer = current_viewer()
    with rapport(current_app).db.reads() as session:
        result = lookup_people(session, viewer, query.email, limit=query.limit, cursor=query.cursor)
        signals = (
            []
            if query.cursor
            else signals_for_contacts(session, viewer, result.contacts, deals=result.deals)
        )
        return LookupOut(
            contacts=[contact_out(c, result.contact_tags.get(c.id, [])) for c in result.contacts],
            companies=[company_out(c, result.company_tags.get(c.id, [])) for c in result.companies],
            unknown=[UnknownPersonOut.model_validate(u) for u in result.unknown],
            timeline=[ActivityOut.model_validate(a) for a in result.timeline.items],
            next_cursor=result.timeline.next_cursor,
            deals=[DealOut.model_validate(d) for d in result.deals],
            follow_ups=[FollowUpOut.model_validate(f) for f in result.follow_ups],
            signals=[signal_out(s) for s in signals],
        )
