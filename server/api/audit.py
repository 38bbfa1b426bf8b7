"""The audit log: every change made through the API, and every read of one email's body, as an
`AuditEvent` — who, when, what, from where — pointing at ids and never copying personal data.

Recording: after each API request that changed something (POST, PUT, PATCH, DELETE answered
2xx), one event: the action is the route and method (`PATCH /api/v1/contacts/<contact_id>`, never
the filled-in URL, which may hold an address), the entity is the route's first id, the details
are the route's ids and the status; from where is the client's address. Views that hand out one
email's content mark themselves with `@reads_email` and are recorded the same way, as
"email.read". Services record their own events too where they say more (`server.crm.users.audit`:
tokens, roles; merges; GDPR export and erase). The event is written in its own transaction right
after the change committed; if that write fails the failure is logged (the change stands).

Reading: `GET /api/v1/admin/audit` (admins), newest first, filtered by user, action (prefix),
entity and time, paged by cursor. Nothing updates or deletes an event (no endpoint does, and
migration 0007's triggers refuse it in the database; only a deleted user's id is set to null).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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


def reads_email(view: F) -> F:
    """Mark a view that returns one email's content: each 2xx answer is an "email.read" event."""
    view._rapport_reads_email = True  # type: ignore[attr-defined]
    return view


def record(response: Response) -> Response:
    """The app's after_request hook."""
    if not 200 <= response.status_code < 300 or request.url_rule is None:
        return response
    view = current_app.view_functions.get(request.endpoint or "")
    reads = bool(getattr(view, "_rapport_reads_email", False))
    if request.method not in CHANGES and not reads:
        return response
    viewer = getattr(g, "viewer", None)
    ids = {k: v for k, v in (request.view_args or {}).items() if isinstance(v, int)}
    entity, entity_id = next(iter(ids.items()), (request.blueprint or "", None))
    if entity_id is None and response.status_code == 201 and response.is_json:
        made = response.get_json(silent=True)
        if isinstance(made, dict) and isinstance(made.get("id"), int):
            entity_id = made["id"]  # what a create made
    event = AuditEvent(
        user_id=viewer.id if viewer is not None else None,
        action="email.read" if reads else f"{request.method} {request.url_rule.rule}"[:50],
        entity_type=entity.removesuffix("_id")[:30],
        entity_id=entity_id,
        source=(request.remote_addr or "")[:100],
        details={"ids": ids, "status": response.status_code, "route": request.url_rule.rule}
        if reads or len(request.url_rule.rule) > 40
        else {"ids": ids, "status": response.status_code},
    )
    try:
        with rapport(current_app).db.session() as session:
            session.add(event)
    except Exception:  # the change committed already: say so loudly, do not fail the answer
        log.exception("audit: the event of %s %s was not recorded", request.method, request.path)
    return response


def init_app(app: Flask) -> None:
    app.after_request(record)


# -- reading it ---------------------------------------------------------------------------------


class AuditQuery(ListQuery):
    user_id: int | None = Field(None, ge=1, le=2**31 - 1)
    action: str | None = Field(
        None, max_length=50, description="Starts with (e.g. 'POST', 'user.')"
    )
    entity_type: str | None = Field(None, max_length=30)
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
