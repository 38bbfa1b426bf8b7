"""The audit log: every change made through the API, and every read of one email's body, as an
`AuditEvent` — who, when, what, from where — pointing at ids and never copying personal data.

Recording: after each API request that changed something (POST, PUT, PATCH, DELETE answered
2xx), one event: the action is the route and method (`PATCH /api/v1/contacts/<contact_id>`, never
the filled-in URL, which may hold an address), the entity is the route's first id, the details
are the route's ids and the status; from where is the client's address. Views that hand out one
email's content mark themselves with `@reads_email` and are recorded the same way, as
"email.read"; a view that hands out several calls `emails_read(ids)`, one "email.read" each.
Lists (timelines, the lookup, search) carry no email or meeting bodies, only snippets
(`server.crm.timeline.OWN_WORDS_KINDS`), so a body is never read without an event. Services record their own events too where they say more (`server.crm.users.audit`:
tokens, roles; merges; GDPR export and erase). The event is written in its own transaction right
after the change committed; if that write fails the failure is logged (the change stands).

Reading: `GET /api/v1/admin/audit` (admins), newest first, filtered by user, action (prefix),
entity and time, paged by cursor. Nothing updates or deletes an event (no endpoint does, and
migration 0007's triggers refuse it in the database; only a deleted user's id is set to null).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, g, request
from pydantic import AwareDatetime, BaseModel, Field
from spectree import Response as Responses
from sqlalchemy import select

from server.api.auth import admin_only
from server.api.common import ListQuery, PageOut, reading
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.app_context import rapport
from server.crm.paging import Page, keyset_page
from server.models import AuditEvent

log = logging.getLogger(__name__)
bp = Blueprint("audit", __name__, url_prefix="/api/v1/admin/audit")
F = TypeVar("F", bound=Callable[..., Any])
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold one: refused as a bad filter (422)


def reads_email(view: F) -> F:
    """Mark a view that returns one email's content: each 2xx answer is an "email.read" event."""
    view._rapport_reads_email = True  # type: ignore[attr-defined]
    return view


def emails_read(activity_ids: Iterable[int]) -> None:
    """Say that this request hands out these activities' bodies: each is an "email.read"."""
    g.rapport_emails_read = [*getattr(g, "rapport_emails_read", ()), *activity_ids]


def record(response: Response) -> Response:
    """The app's after_request hook."""
    if not 200 <= response.status_code < 300 or request.url_rule is None:
        return response
    view = current_app.view_functions.get(request.endpoint or "")
    reads = bool(getattr(view, "_rapport_reads_email", False))
    viewer = getattr(g, "viewer", None)
    _record_reads(getattr(g, "rapport_emails_read", ()), viewer, response.status_code)
    if request.method not in CHANGES and not reads:
        return response
    ids = {k: v for k, v in (request.view_args or {}).items() if isinstance(v, int)}
    entity, entity_id = next(iter(ids.items()), (request.blueprint or "", None))
    if entity_id is None and response.status_code == 201 and response.is_json:
        made = response.get_json(silent=True)
        if isinstance(made, dict) and isinstance(made.get("id"), int):
            entity_id = made["id"]  # what a create made
    _write(
        [
            AuditEvent(
                user_id=viewer.id if viewer is not None else None,
                action="email.read" if reads else f"{request.method} {request.url_rule.rule}"[:50],
                entity_type=entity.removesuffix("_id")[:30],
                entity_id=entity_id,
                source=(request.remote_addr or "")[:100],
                details={
                    "ids": ids,
                    "status": response.status_code,
                    "route": request.url_rule.rule,
                }
                if reads or len(request.url_rule.rule) > 40
                else {"ids": ids, "status": response.status_code},
            )
        ]
    )
    return response


def _record_reads(activity_ids: Iterable[int], viewer: Any, status: int) -> None:
    """One "email.read" per activity whose body a view handed out through `emails_read`."""
    assert request.url_rule is not None
    _write(
        [
            AuditEvent(
                user_id=viewer.id if viewer is not None else None,
                action="email.read",
                entity_type="activity",
                entity_id=activity_id,
                source=(request.remote_addr or "")[:100],
                details={"status": status, "route": request.url_rule.rule},
            )
            for activity_id in dict.fromkeys(activity_ids)
        ]
    )


def _write(events: list[AuditEvent]) -> None:
    """Store events in their own transaction: the change they record committed already, so a
    failure here is logged loudly and does not fail the answer."""
    if not events:
        return
    try:
        with rapport(current_app).db.session() as session:
            session.add_all(events)
    except Exception:
        log.exception("audit: the events of %s %s were not recorded", request.method, request.path)


def init_app(app: Flask) -> None:
    app.after_request(record)


# -- reading it ---------------------------------------------------------------------------------


class AuditQuery(ListQuery):
    user_id: int | None = Field(None, ge=1, le=2**31 - 1)
    action: str | None = Field(
        None, max_length=50, pattern=NO_NUL, description="Starts with (e.g. 'POST', 'user.')"
    )
    entity_type: str | None = Field(None, max_length=30, pattern=NO_NUL)
    entity_id: int | None = Field(None, ge=1, le=2**63 - 1)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    user_id: int | None
    action: str
    entity_type: str
    entity_id: int | None
    source: str = Field(description="The client's address")
    details: dict[str, Any]


@bp.get("")
@admin_only
@api.validate(
    query=AuditQuery,
    resp=Responses(
        HTTP_200=PageOut[AuditEventOut], HTTP_400=ErrorOut, HTTP_401=ErrorOut, HTTP_403=ErrorOut
    ),
    tags=["audit"],
)
def list_events(query: AuditQuery) -> PageOut[AuditEventOut]:
    """The audit log, newest first."""
    statement = select(AuditEvent)
    if query.user_id is not None:
        statement = statement.where(AuditEvent.user_id == query.user_id)
    if query.action:
        statement = statement.where(AuditEvent.action.startswith(query.action, autoescape=True))
    if query.entity_type:
        statement = statement.where(AuditEvent.entity_type == query.entity_type)
    if query.entity_id is not None:
        statement = statement.where(AuditEvent.entity_id == query.entity_id)
    if query.since is not None:
        statement = statement.where(AuditEvent.at >= query.since)
    if query.until is not None:
        statement = statement.where(AuditEvent.at < query.until)
    with reading() as session:
        page: Page[AuditEvent] = keyset_page(
            session,
            statement,
            sort=AuditEvent.at,
            ident=AuditEvent.id,
            descending=True,
            limit=query.limit,
            cursor=query.cursor,
        )
        return PageOut[AuditEventOut](
            items=[AuditEventOut.model_validate(e, from_attributes=True) for e in page.items],
            next_cursor=page.next_cursor,
        )
