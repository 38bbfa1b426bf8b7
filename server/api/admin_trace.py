"""/api/v1/admin/capture/explain and /api/v1/admin/quarantine — "why wasn't this email captured?"

The explanation is the structured trace `rapport capture explain` prints (`server.crm.trace`):
for every mailbox folder that saw the message, what was decided, by which rule, and where the
result is (the activity, or the quarantined item). The quarantine list shows what could not be
read, and a retry parses it again after an upgrade, like `rapport capture retry`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import Blueprint, current_app
from pydantic import BaseModel, ConfigDict, Field
from spectree import Response

from server.api.auth import admin_only
from server.api.common import ListQuery, PageOut, reading
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.app_context import rapport
from server.crm import trace
from server.crm.mailboxes import MAX_ID, get_link
from server.mail_ingest.quarantine import retry_quarantined

bp = Blueprint("admin_trace", __name__, url_prefix="/api/v1/admin")
TAGS = ["admin: capture trace"]


class ExplainQuery(BaseModel):
    message_id: str = Field(
        min_length=1,
        max_length=1000,
        pattern=r"^[^\x00]+$",
        description="The Message-ID header (with or without <>), or a trace key "
        "(mid:..., hash:..., ical:UID|...)",
    )


class TracedDecisionOut(BaseModel):
    link_id: int
    link_kind: str
    owner: str = Field(description="The linked mailbox's owner")
    folder: str
    decision: str = Field(description="captured, known (already captured), skipped, quarantined")
    rule: str | None = Field(description="The rule that skipped it, or the quarantine reason")
    rule_text: str | None = Field(description="That rule in words")
    detail: str
    activity_id: int | None
    activity_unlogged: bool = Field(description="A user unlogged it since; it stays unlogged")
    content_removed_reason: str | None = Field(description="A later rule emptied it: which")
    quarantined_item_id: int | None
    decided_at: datetime
    summary: str = Field(description="All of it in one sentence, as the CLI prints it")


class ExplanationOut(BaseModel):
    message_id: str
    key: str = Field(description="The key the trace is stored under")
    seen: bool = Field(description="Whether any linked mailbox has seen the message")
    advice: str | None = Field(description="What to check when no mailbox has seen it")
    decisions: list[TracedDecisionOut]


class QuarantineQuery(ListQuery):
    link_id: int | None = Field(None, ge=1, le=MAX_ID)
    state: Literal["open", "resolved", "all"] = Field(
        "open", description="open: still waiting for a fix; resolved: captured by a retry"
    )


class QuarantinedOut(BaseModel):
    id: int
    link_id: int
    link_kind: str
    owner: str
    folder: str
    reason: str
    detail: str
    attempts: int
    created_at: datetime
    resolved_at: datetime | None
    message_key: str | None = Field(description="Give it to /admin/capture/explain")


class RetryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    link_id: int | None = Field(None, ge=1, le=MAX_ID, description="Only this link's items")


class RetryOut(BaseModel):
    tried: int
    resolved: int = Field(description="Now read, and captured or decided by the rules")
    still_quarantined: int
    captured: int
    known: int = Field(description="Already captured from another mailbox")
    skipped: int = Field(description="Read now, but skipped by a capture rule")


def decision_out(d: trace.TracedDecision) -> TracedDecisionOut:
    return TracedDecisionOut(
        link_id=d.link_id,
        link_kind=d.link_kind,
        owner=d.owner_address,
        folder=d.folder,
        decision=d.decision,
        rule=d.rule,
        rule_text=d.rule_text,
        detail=d.detail,
        activity_id=d.activity_id,
        activity_unlogged=d.activity_unlogged,
        content_removed_reason=d.content_removed_reason,
        quarantined_item_id=d.quarantined_item_id,
        decided_at=d.decided_at,
        summary=d.summary,
    )


def quarantined_out(entry: trace.QuarantineEntry) -> QuarantinedOut:
    item = entry.item
    return QuarantinedOut(
        id=item.id,
        link_id=item.link_id,
        link_kind=entry.link_kind,
        owner=entry.owner_address,
        folder=item.folder,
        reason=item.reason,
        detail=item.detail,
        attempts=item.attempts,
        created_at=item.created_at,
        resolved_at=item.resolved_at,
        message_key=entry.message_key,
    )


@bp.get("/capture/explain")
@admin_only
@api.validate(
    query=ExplainQuery,
    resp=Response(HTTP_200=ExplanationOut, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_422=ErrorOut),
    tags=TAGS,
)
def explain(query: ExplainQuery) -> ExplanationOut:
    """What happened to an email in every linked mailbox that saw it, and why."""
    with reading() as session:
        found = trace.trace_message(session, query.message_id)
    return ExplanationOut(
        message_id=found.message_id,
        key=found.key,
        seen=found.seen,
        advice=found.advice,
        decisions=[decision_out(d) for d in found.decisions],
    )


@bp.get("/quarantine")
@admin_only
@api.validate(
    query=QuarantineQuery,
    resp=Response(
        HTTP_200=PageOut[QuarantinedOut], HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_422=ErrorOut
    ),
    tags=TAGS,
)
def list_quarantine(query: QuarantineQuery) -> PageOut[QuarantinedOut]:
    """Messages that could not be read, newest first, with the reason."""
    resolved = {"open": False, "resolved": True, "all": None}[query.state]
    with reading() as session:
        page = trace.quarantine_page(
            session,
            link_id=query.link_id,
            resolved=resolved,
            limit=query.limit,
            cursor=query.cursor,
        )
    return PageOut[QuarantinedOut](
        items=[quarantined_out(e) for e in page.items], next_cursor=page.next_cursor
    )


@bp.post("/quarantine/retry")
@admin_only
@api.validate(
    json=RetryIn,
    resp=Response(
        HTTP_200=RetryOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_404=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def retry(json: RetryIn) -> RetryOut:
    """Parse the quarantined messages again (after an upgrade) and capture those that now read."""
    if json.link_id is not None:
        with reading() as session:
            get_link(session, json.link_id)
    result = retry_quarantined(rapport(current_app).db, link_id=json.link_id)
    counts = result.counts
    return RetryOut(
        tried=result.tried,
        resolved=result.resolved,
        still_quarantined=result.tried - result.resolved,
        captured=counts.captured,
        known=counts.known,
        skipped=sum(counts.skipped.values()),
    )
