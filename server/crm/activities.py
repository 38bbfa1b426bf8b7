"""Timeline entries after capture: unlogging an email, and removing captured content.

Both keep the activity row itself (its identity): that row is what makes an unlogged email stay
unlogged, and a blocked one stay empty, through every later resync and re-import.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.orm import Session

from server.crm.errors import NotFound
from server.models import Activity, ActivityParticipant, Attachment, Blob, User, utcnow


def remove_content(session: Session, activity_ids: Sequence[int], reason: str) -> int:
    """Drop subject, snippet, body, raw MIME and attachments; keep participants and dates."""
    if not activity_ids:
        return 0
    count = 0
    for start in range(0, len(activity_ids), 500):
        chunk = list(activity_ids[start : start + 500])
        session.execute(delete(Attachment).where(Attachment.activity_id.in_(chunk)))
        result = session.execute(
            update(Activity)
            .where(Activity.id.in_(chunk))
            .values(
                subject="",
                snippet="",
                body_text=None,
                body_blob=None,
                raw_blob=None,
                content_level="metadata",
                content_removed_reason=reason[:200],
                updated_at=utcnow(),
            )
        )
        count += result.rowcount  # type: ignore[attr-defined]
    collect_orphan_blobs(session)
    return count


def unlog(session: Session, activity_id: int, user: User) -> Activity:
    """Take an email off the timeline for good (it stays off through any resync or re-import)."""
    activity = session.get(Activity, activity_id)
    if activity is None:
        raise NotFound(f"no activity {activity_id}")
    if activity.unlogged_at is None:
        remove_content(session, [activity.id], "unlogged")
        session.refresh(activity)
        activity.unlogged_at = utcnow()
        activity.unlogged_by_id = user.id
        activity.content_removed_reason = None
    return activity


def activities_with_participant(
    session: Session, *, address: str | None = None, domain: str | None = None
) -> list[int]:
    """Activities with a participant at this address, or in this domain or one of its subdomains."""
    column = ActivityParticipant.address
    if address is not None:
        condition = column == address
    else:
        assert domain is not None
        condition = or_(
            column.like(f"%@{_escape(domain)}", escape="\\"),
            column.like(f"%.{_escape(domain)}", escape="\\"),
        )
    return list(
        session.scalars(select(ActivityParticipant.activity_id).where(condition).distinct())
    )


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def collect_orphan_blobs(session: Session) -> int:
    """Delete blobs nothing points at any more (removed content must not linger)."""
    from server.models import QuarantinedItem

    referenced = or_(
        exists().where(Activity.raw_blob == Blob.sha256),
        exists().where(Activity.body_blob == Blob.sha256),
        exists().where(Attachment.blob_sha256 == Blob.sha256),
        exists().where(QuarantinedItem.raw_sha256 == Blob.sha256),
    )
    result = session.execute(delete(Blob).where(~referenced))
    return int(result.rowcount)  # type: ignore[attr-defined]
