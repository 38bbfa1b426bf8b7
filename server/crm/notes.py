"""Notes: what a person writes about a contact, a company or a deal.

A note is an `Activity` of kind "note", so the timeline stays one query over one table. Where it
hangs decides how the timeline finds it:
  contact — an `ActivityParticipant` with role "about" and that contact (how `timeline(contact_ids)`
            finds people's activities);
  company — `Activity.company_id` (how `timeline(company_id)` finds the company's own entries);
  deal    — `Activity.deal_id` (read by the deal's timeline).
No mailbox captured it, so every member sees it; only its author or an admin may change it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.crm.custom_fields import clean_text, valid_id
from server.crm.errors import DomainError, Forbidden, NotFound
from server.crm.viewer import Viewer
from server.models import Activity, ActivityParticipant, Company, Contact, Deal, User, utcnow

MAX_NOTE_LENGTH = 50_000
SNIPPET_LENGTH = 200
T = TypeVar("T", Contact, Company, Deal)


@dataclass
class Note:
    activity: Activity
    contact_id: int | None


def get_note(session: Session, note_id: int) -> Note:
    activity = session.get(Activity, note_id) if valid_id(note_id) else None
    if activity is None or activity.kind != "note":
        raise NotFound(f"no note {note_id}")
    return Note(activity, _about(session, activity.id))


def create_note(
    session: Session,
    viewer: Viewer,
    body: str,
    *,
    contact_id: int | None = None,
    company_id: int | None = None,
    deal_id: int | None = None,
    now: datetime | None = None,
) -> Note:
    """A note by the viewer, now, about exactly one contact, company or deal."""
    targets = [t for t in (contact_id, company_id, deal_id) if t is not None]
    if len(targets) != 1:
        raise DomainError("a note is about one thing: give one of contact_id, company_id, deal_id")
    text = _body(body)
    contact = _existing(session, Contact, contact_id, "contact_id")
    _existing(session, Company, company_id, "company_id")
    _existing(session, Deal, deal_id, "deal_id")
    now = now or utcnow()
    author = session.get(User, viewer.id)
    activity = Activity(
        kind="note",
        occurred_at=now,
        direction="internal",
        subject="",
        snippet=_snippet(text),
        body_text=text,
        sender_address=viewer.email,
        sender_name=(author.name if author else viewer.name)[:300],
        content_level="full",
        author_id=viewer.id,
        company_id=company_id,
        deal_id=deal_id,
        created_at=now,
        updated_at=now,
    )
    if contact is not None:
        activity.participants.append(
            ActivityParticipant(
                role="about",
                address=None,
                name=contact.name[:300],
                contact_id=contact.id,
                occurred_at=now,
            )
        )
    session.add(activity)
    session.flush()
    return Note(activity, contact_id)


def update_note(session: Session, viewer: Viewer, note_id: int, body: str) -> Note:
    note = get_note(session, note_id)
    _may_change(viewer, note.activity)
    text = _body(body)
    note.activity.body_text = text
    note.activity.snippet = _snippet(text)
    session.flush()
    return note


def delete_note(session: Session, viewer: Viewer, note_id: int) -> None:
    note = get_note(session, note_id)
    _may_change(viewer, note.activity)
    session.delete(note.activity)
    session.flush()


def _may_change(viewer: Viewer, note: Activity) -> None:
    if not viewer.is_admin and note.author_id != viewer.id:
        raise Forbidden("only the note's author or an admin may change it")


def _about(session: Session, activity_id: int) -> int | None:
    return session.scalar(
        select(ActivityParticipant.contact_id)
        .where(ActivityParticipant.activity_id == activity_id, ActivityParticipant.role == "about")
        .limit(1)
    )


def _existing(session: Session, model: type[T], ident: int | None, field: str) -> T | None:
    if ident is None:
        return None
    row = session.get(model, ident) if valid_id(ident) else None
    if row is None:
        raise DomainError(f"there is no {field.removesuffix('_id')} {ident}", field=field)
    return row


def _body(raw: str) -> str:
    return clean_text(raw, "body", max_length=MAX_NOTE_LENGTH, required=True)


def _snippet(text: str) -> str:
    collapsed = " ".join(text.split())
    if len(collapsed) <= SNIPPET_LENGTH:
        return collapsed
    return collapsed[: SNIPPET_LENGTH - 1].rstrip() + "…"
