"""Timeline entries after capture: unlogging an email, and removing captured content.

Both keep the activity row itself (its identity): that row is what makes an unlogged email stay
unlogged, and a blocked one stay empty, through every later resync and re-import.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, exists, or_, select, tuple_, update
from sqlalchemy.orm import Session

from server.crm.custom_fields import valid_id
from server.crm.deals import check_timeline_cursor, deal_timeline, get_deal
from server.crm.errors import DomainError, NotFound
from server.crm.timeline import (
    PAGE_SIZE_MAX,
    ActivityView,
    TimelinePage,
    decode_cursor,
    encode_cursor,
    present,
    timeline,
)
from server.crm.viewer import Viewer, visible_to
from server.models import (
    Activity,
    ActivityParticipant,
    Attachment,
    Blob,
    Company,
    Contact,
    Meeting,
    Thread,
    User,
    utcnow,
)


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
        # A meeting's title and description are its activity's subject and body; its place and
        # online link are the meeting row's content.
        session.execute(
            update(Meeting)
            .where(Meeting.activity_id.in_(chunk))
            .values(location="", online_meeting_url="")
        )
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
    """Delete blobs nothing points at any more (removed content must not linger).

    A raw message's parts stay while it needs them; once it is deleted (and its links with it)
    they are looked at again, hence the second round."""
    from server.models import BlobPart, QuarantinedItem

    referenced = or_(
        exists().where(Activity.raw_blob == Blob.sha256),
        exists().where(Activity.body_blob == Blob.sha256),
        exists().where(Attachment.blob_sha256 == Blob.sha256),
        exists().where(QuarantinedItem.raw_sha256 == Blob.sha256),
        exists().where(BlobPart.part_sha256 == Blob.sha256),
    )
    deleted = 0
    while True:
        result = session.execute(delete(Blob).where(~referenced))
        count = int(result.rowcount)  # type: ignore[attr-defined]
        deleted += count
        if count == 0:
            return deleted


# -- as a viewer sees them (the API's activities resource) ----------------------------------------

# Kinds that come from mailboxes and calendars: the ones a person may take off the timeline.
UNLOGGABLE_KINDS = ("email", "meeting", "meeting_proposal")


def visible_activity(session: Session, viewer: Viewer, activity_id: int) -> ActivityView:
    """One activity as this viewer may see it; one they may not see is simply not there (404),
    so an id never reveals that a private email exists."""
    row = (
        session.scalar(select(Activity).where(Activity.id == activity_id, visible_to(viewer)))
        if valid_id(activity_id)
        else None
    )
    if row is None:
        raise NotFound(f"no activity {activity_id}")
    return present(session, viewer, [row], bodies=True)[0]


def thread_timeline(
    session: Session, viewer: Viewer, thread_id: int, *, limit: int = 20, cursor: str | None = None
) -> TimelinePage:
    """A conversation's activities the viewer may see, newest first, paged like the timeline."""
    if not valid_id(thread_id) or session.get(Thread, thread_id) is None:
        raise NotFound(f"no thread {thread_id}")
    limit = max(1, min(limit, PAGE_SIZE_MAX))
    query = (
        select(Activity)
        .where(Activity.thread_id == thread_id, visible_to(viewer))
        .order_by(Activity.occurred_at.desc(), Activity.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        check_timeline_cursor(cursor)
        when, ident = decode_cursor(cursor)
        query = query.where(tuple_(Activity.occurred_at, Activity.id) < tuple_(when, ident))
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].occurred_at, rows[-1].id) if more and rows else None
    return TimelinePage(present(session, viewer, rows), next_cursor)


def activity_timeline(
    session: Session,
    viewer: Viewer,
    *,
    contact_id: int | None = None,
    company_id: int | None = None,
    deal_id: int | None = None,
    thread_id: int | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> TimelinePage:
    """The timeline of exactly one contact, company, deal or thread (an unknown one is a 404)."""
    given = {
        name: value
        for name, value in (
            ("contact_id", contact_id),
            ("company_id", company_id),
            ("deal_id", deal_id),
            ("thread_id", thread_id),
        )
        if value is not None
    }
    if len(given) != 1:
        raise DomainError("give one of contact_id, company_id, deal_id or thread_id")
    check_timeline_cursor(cursor)
    if thread_id is not None:
        return thread_timeline(session, viewer, thread_id, limit=limit, cursor=cursor)
    if deal_id is not None:
        deal = get_deal(session, deal_id)
        return deal_timeline(session, viewer, deal, limit=limit, cursor=cursor)
    if contact_id is not None:
        if not valid_id(contact_id) or session.get(Contact, contact_id) is None:
            raise NotFound(f"no contact {contact_id}")
        return timeline(session, viewer, contact_ids=[contact_id], limit=limit, cursor=cursor)
    assert company_id is not None
    if not valid_id(company_id) or session.get(Company, company_id) is None:
        raise NotFound(f"no company {company_id}")
    return timeline(session, viewer, company_id=company_id, limit=limit, cursor=cursor)


def unlog_visible(session: Session, viewer: Viewer, activity_id: int) -> Activity:
    """`unlog` for a viewer who can see the email; notes and calls are deleted, not unlogged."""
    visible_activity(session, viewer, activity_id)
    activity = session.get(Activity, activity_id)
    assert activity is not None
    if activity.kind not in UNLOGGABLE_KINDS:
        raise DomainError(f"a {activity.kind} is not captured mail: delete it instead")
    user = session.get(User, viewer.id)
    if user is None:
        raise NotFound("your user no longer exists")
    return unlog(session, activity.id, user)


def relog(session: Session, viewer: Viewer, activity_id: int) -> ActivityView:
    """Put an unlogged email back on the timeline.

    Its content stays removed (unlogging deleted it) until the email is seen again: the next
    sync or import of a mailbox holding it fills it back in, as does logging it from the pane.
    Whether the viewer may do this is decided by the visibility rule itself: the email is put
    back, and unless the viewer can now see it, the change is refused (and rolled back by the
    caller's unit of work), so nobody learns of or restores an email they could not see.
    """
    activity = session.get(Activity, activity_id) if valid_id(activity_id) else None
    if activity is None:
        raise NotFound(f"no activity {activity_id}")
    if activity.unlogged_at is not None:
        activity.unlogged_at = None
        activity.unlogged_by_id = None
        session.flush()
    return visible_activity(session, viewer, activity_id)
