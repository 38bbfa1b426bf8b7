"""/api/v1/notes — notes about a contact, a company or a deal (timeline entries of kind "note")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from flask import Blueprint
from pydantic import BaseModel, Field
from spectree import Response

from server.api.auth import current_viewer
from server.api.common import check_version, reading, writing
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.crm import notes
from server.crm.custom_fields import MAX_DB_ID

bp = Blueprint("notes", __name__, url_prefix="/api/v1/notes")
TAGS = ["notes"]

RowId = Annotated[int, Field(ge=1, le=MAX_DB_ID)]
Body = Annotated[str, Field(min_length=1, max_length=notes.MAX_NOTE_LENGTH)]


class NoteIn(BaseModel):
    body: Body
    contact_id: RowId | None = Field(None, description="Exactly one of contact, company, deal")
    company_id: RowId | None = None
    deal_id: RowId | None = None


class NotePatch(BaseModel):
    body: Body
    version: int = Field(description="The version you read; a stale one gets 409")


class NoteOut(BaseModel):
    id: int
    body: str
    contact_id: int | None
    company_id: int | None
    deal_id: int | None
    author_id: int | None
    occurred_at: datetime
    updated_at: datetime
    version: int


def note_out(note: notes.Note) -> NoteOut:
    activity = note.activity
    return NoteOut(
        id=activity.id,
        body=activity.body_text or "",
        contact_id=note.contact_id,
        company_id=activity.company_id,
        deal_id=activity.deal_id,
        author_id=activity.author_id,
        occurred_at=activity.occurred_at,
        updated_at=activity.updated_at,
        version=activity.version,
    )


@bp.post("")
@api.validate(
    json=NoteIn,
    resp=Response(HTTP_201=NoteOut, HTTP_400=ErrorOut, HTTP_401=ErrorOut, HTTP_422=ErrorOut),
    tags=TAGS,
)
def create_note(json: NoteIn) -> tuple[NoteOut, int]:
    """A note by you, now; it appears on the timeline of what it is about."""
    with writing() as session:
        note = notes.create_note(
            session,
            current_viewer(),
            json.body,
            contact_id=json.contact_id,
            company_id=json.company_id,
            deal_id=json.deal_id,
        )
        return note_out(note), 201


@bp.get("/<int:note_id>")
@api.validate(resp=Response(HTTP_200=NoteOut, HTTP_401=ErrorOut, HTTP_404=ErrorOut), tags=TAGS)
def get_note(note_id: int) -> NoteOut:
    with reading() as session:
        return note_out(notes.get_note(session, note_id))


@bp.patch("/<int:note_id>")
@api.validate(
    json=NotePatch,
    resp=Response(
        HTTP_200=NoteOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_404=ErrorOut,
        HTTP_409=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def update_note(note_id: int, json: NotePatch) -> NoteOut:
    """Rewrite a note (its author or an admin); 409 on a stale version."""
    with writing() as session:
        check_version(notes.get_note(session, note_id).activity.version, json.version, "note")
        return note_out(notes.update_note(session, current_viewer(), note_id, json.body))


@bp.delete("/<int:note_id>")
@api.validate(
    resp=Response(HTTP_204=None, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut),
    tags=TAGS,
)
def delete_note(note_id: int) -> tuple[str, int]:
    """Delete a note (its author or an admin)."""
    with writing() as session:
        notes.delete_note(session, current_viewer(), note_id)
    return "", 204
