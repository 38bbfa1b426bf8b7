"""Retention: email content older than an admin's limit is dropped; the relationship stays.

With `retention.email_content_days` set (admin: `PUT /api/v1/admin/retention`), the worker
sweeps once a day: every email that happened more than that many days ago loses its body, its
snippet, its raw MIME and its attachments' content. What stays is what the relationship history
needs: that the email was there, when, between whom, in which thread, with its subject and its
attachments' names and sizes (its capture level becomes "subject"). Blobs nothing points at any
more are deleted in the same sweep. Meetings, notes and form entries are kept whole. None (the
default) keeps everything.

The sweep works in batches of `BATCH` emails, each in its own transaction, so a big first sweep
neither holds a long lock nor loses its progress if it stops.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, exists, or_, select, update
from sqlalchemy.orm import Session

from server.crm.activities import collect_orphan_blobs
from server.crm.errors import DomainError
from server.crm.settings import get_setting, set_setting
from server.models import Activity, Attachment, utcnow

DAYS = "retention.email_content_days"
LAST_RUN = "retention.last_run_at"
LAST_DROPPED = "retention.last_dropped"
BATCH = 1000
MIN_DAYS = 30


@dataclass(frozen=True)
class RetentionSettings:
    email_content_days: int | None
    last_run_at: str | None
    last_dropped: int


def read(session: Session) -> RetentionSettings:
    days = get_setting(session, DAYS)
    return RetentionSettings(
        email_content_days=int(days) if isinstance(days, int) else None,
        last_run_at=get_setting(session, LAST_RUN),
        last_dropped=int(get_setting(session, LAST_DROPPED) or 0),
    )


def set_days(session: Session, days: int | None) -> RetentionSettings:
    if days is not None and days < MIN_DAYS:
        raise DomainError(
            f"keep at least {MIN_DAYS} days of email content (or none: keep it all)",
            field="email_content_days",
        )
    set_setting(session, DAYS, days)
    return read(session)


def due(session: Session, now: datetime) -> bool:
    """A sweep is due: a limit is set and the last sweep was a day ago or more."""
    settings = read(session)
    if settings.email_content_days is None:
        return False
    if settings.last_run_at is None:
        return True
    return now - datetime.fromisoformat(settings.last_run_at) >= timedelta(days=1)


def _has_content() -> ColumnElement[bool]:
    return or_(
        Activity.body_text.is_not(None),
        Activity.body_blob.is_not(None),
        Activity.raw_blob.is_not(None),
        Activity.snippet != "",
        exists().where(Attachment.activity_id == Activity.id, Attachment.blob_sha256.is_not(None)),
    )


def sweep(
    unit: Callable[[], AbstractContextManager[Session]],
    *,
    now: datetime | None = None,
    batch: int = BATCH,
) -> int:
    """Drop old email content, batch by batch (`unit()` gives a session context per batch);
    returns how many emails lost content."""
    now = now or utcnow()
    dropped = 0
    with unit() as session:
        days = read(session).email_content_days
    if days is None:
        return 0
    cutoff = now - timedelta(days=days)
    while True:
        with unit() as session:
            ids = list(
                session.scalars(
                    select(Activity.id)
                    .where(Activity.kind == "email", Activity.occurred_at < cutoff, _has_content())
                    .order_by(Activity.id)
                    .limit(batch)
                )
            )
            if not ids:
                collect_orphan_blobs(session)
                set_setting(session, LAST_RUN, now.isoformat())
                set_setting(session, LAST_DROPPED, dropped)
                return dropped
            session.execute(
                update(Activity)
                .where(Activity.id.in_(ids))
                .values(body_text=None, body_blob=None, raw_blob=None, snippet="")
                .execution_options(synchronize_session=False)
            )
            session.execute(
                update(Activity)
                .where(Activity.id.in_(ids), Activity.content_level == "full")
                .values(content_level="subject")
                .execution_options(synchronize_session=False)
            )
            session.execute(
                update(Attachment)
                .where(Attachment.activity_id.in_(ids))
                .values(blob_sha256=None)
                .execution_options(synchronize_session=False)
            )
            dropped += len(ids)
