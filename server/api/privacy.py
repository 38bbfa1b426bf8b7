"""/api/v1/admin/privacy: a person's data exported (a subject access request) or erased.

Admins only, like `rapport contact export` and `rapport contact erase`; both write an audit event
(ids and counts, never the address). What is exported and what erasing removes is described in
`server.crm.privacy` and docs/privacy.md.

The export is a zip, written to a temporary file (on disk past a few megabytes) and sent from
there, so years of a person's mail cost disk, not memory. SpecTree would buffer a response it
validates, so that view is documented through a twin and validates its query itself, as the CSV
exports do. Erasing cannot be undone: the request must say `"confirm": true`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, request, send_file
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from spectree import Response as Responses
from spectree.utils import get_multidict_items

from server.api.auth import admin_only, current_viewer
from server.api.common import writing
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.app_context import rapport
from server.crm import privacy
from server.crm.errors import DomainError

bp = Blueprint("privacy", __name__, url_prefix="/api/v1/admin/privacy")
TAGS = ["admin: privacy"]
SPOOL_IN_MEMORY = 8 * 1024 * 1024  # bytes of zip kept in memory before it goes to disk

F = TypeVar("F", bound=Callable[..., Any])

Email = Field(min_length=3, max_length=320, description="The person's email address")


class PersonQuery(BaseModel):
    email: str = Email


class EraseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Email
    confirm: bool = Field(description="Must be true: an erasure cannot be undone")


class ErasureOut(BaseModel):
    contact_id: int | None = Field(description="The contact that was erased (now gone), if any")
    addresses: int = Field(description="Addresses now suppressed: capture never records them")
    notes: int = Field(description="Notes about them, deleted")
    follow_ups: int = Field(description="Their follow-ups, deleted")
    deals_unlinked: int = Field(description="Deals they were on (the deals stay)")
    emptied: int = Field(description="Emails and meetings where they were the only outside party")
    redacted: int = Field(description="Other emails and meetings they took part in, redacted")
    participations: int = Field(description="Their participations, now an anonymous stand-in")
    mentions: int = Field(description="Other rows whose text named them, cut")
    quarantined: int = Field(description="Quarantined messages that named them, deleted")
    jobs: int = Field(description="Finished jobs and webhook deliveries that named them, deleted")
    rules: int = Field(description="Capture rules about their address (the suppression replaces)")
    blobs: int = Field(description="Stored contents nothing pointed at any more, deleted")


def _documented_by(twin: Callable[..., Any]) -> Callable[[F], F]:
    """Give a view that sends a file the OpenAPI entry of `twin` (SpecTree finds it through
    __wrapped__) without SpecTree buffering the file."""

    def attach(view: F) -> F:
        view.__wrapped__ = twin  # type: ignore[attr-defined]
        return view

    return attach


def _person_query() -> PersonQuery:
    """The query, validated as SpecTree would (a 422 naming the field)."""
    try:
        return PersonQuery.model_validate(get_multidict_items(request.args, PersonQuery))
    except ValidationError as exc:
        api.before(request, None, exc, None, api.model_adapter)
        raise  # pragma: no cover - the hook above aborts with the 422


ANSWERS = {
    "HTTP_400": ErrorOut,
    "HTTP_401": ErrorOut,
    "HTTP_403": ErrorOut,
    "HTTP_422": ErrorOut,
}


@api.validate(
    query=PersonQuery, resp=Responses("HTTP_200", HTTP_404=ErrorOut, **ANSWERS), tags=TAGS
)
def _export_doc(query: PersonQuery) -> None:  # pragma: no cover - documentation
    """Everything Rapport holds about a person, as a zip (application/zip): person.json, each
    email as .eml and each meeting as .ics. 404 when it holds nothing about the address."""


@bp.get("/export")
@admin_only
@_documented_by(_export_doc)
def export_person() -> Response:
    """Everything about a person as a zip (application/zip); see docs/privacy.md."""
    query = _person_query()
    db = rapport(current_app).db
    # Closed by the answer once sent (or below, when the export fails).
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    try:
        with db.read_session() as session:
            exported = privacy.write_export(session, query.email, spool)
        with db.session() as session:
            privacy.audit_export(session, current_viewer(), exported)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return send_file(
        spool, mimetype="application/zip", as_attachment=True, download_name=exported.filename
    )


@bp.post("/erase")
@admin_only
@api.validate(
    json=EraseIn, resp=Responses(HTTP_200=ErasureOut, HTTP_409=ErrorOut, **ANSWERS), tags=TAGS
)
def erase_person(json: EraseIn) -> ErasureOut:
    """Erase a person: their contact, addresses, notes, follow-ups and participations; the
    content of mail where they were the only outside party; their address and name everywhere
    else. Their address is suppressed, so capture never records them again. Cannot be undone."""
    if not json.confirm:
        raise DomainError('an erasure cannot be undone: send "confirm": true', field="confirm")
    with writing() as session:
        report = privacy.erase_person(session, current_viewer(), json.email)
    privacy.reclaim_freed_space(rapport(current_app).db.engine)
    return ErasureOut.model_validate(report.as_dict())
