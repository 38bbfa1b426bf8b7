"""The timeline: emails, meetings, calls and notes as one `Activity` table, grouped in threads.

An email is one activity however many mailboxes saw it: `identity` is unique (normalised
Message-ID plus sender, see server/crm/capture.py), and each sighting is a `MailboxObservation`.
Participants carry a copy of `occurred_at` so a contact's timeline is one index range scan.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.models.base import Base, Timestamps, Versioned

ACTIVITY_KINDS = ("email", "meeting", "call", "note", "form", "meeting_proposal")
PARTICIPANT_ROLES = (
    "from",
    "sender",
    "reply_to",
    "to",
    "cc",
    "bcc",
    "organizer",
    "attendee",
    "about",
)


class Thread(Base):
    __tablename__ = "threads"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(1000), default="")
    first_at: Mapped[datetime | None]
    last_at: Mapped[datetime | None] = mapped_column(index=True)
    activity_count: Mapped[int] = mapped_column(default=0)


class ThreadKey(Base):
    """A key (message id, provider conversation id, guarded subject key) that points to a thread."""

    __tablename__ = "thread_keys"

    key: Mapped[str] = mapped_column(String(600), primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"), index=True)


class Activity(Timestamps, Versioned, Base):
    __tablename__ = "activities"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    identity: Mapped[str | None] = mapped_column(String(700), unique=True)
    message_key: Mapped[str | None] = mapped_column(String(600), index=True)
    thread_id: Mapped[int | None] = mapped_column(
        ForeignKey("threads.id", ondelete="SET NULL"), index=True
    )
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    direction: Mapped[str] = mapped_column(String(10), default="incoming")
    subject: Mapped[str] = mapped_column(String(1000), default="")
    snippet: Mapped[str] = mapped_column(Text, default="")
    body_text: Mapped[str | None] = mapped_column(Text)
    body_blob: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    raw_blob: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    sender_address: Mapped[str] = mapped_column(String(320), default="", index=True)
    sender_name: Mapped[str] = mapped_column(String(300), default="")
    content_level: Mapped[str] = mapped_column(String(10), default="metadata")
    is_private: Mapped[bool] = mapped_column(default=False)
    has_attachments: Mapped[bool] = mapped_column(default=False)
    size: Mapped[int] = mapped_column(default=0)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("companies.id", ondelete="SET NULL"), index=True
    )
    deal_id: Mapped[int | None] = mapped_column(
        ForeignKey("deals.id", ondelete="SET NULL"), index=True
    )
    unlogged_at: Mapped[datetime | None]
    unlogged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    content_removed_reason: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

    participants: Mapped[list[ActivityParticipant]] = relationship(
        back_populates="activity", cascade="all, delete-orphan", order_by="ActivityParticipant.id"
    )
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="activity", cascade="all, delete-orphan", order_by="Attachment.id"
    )
    meeting: Mapped[Meeting | None] = relationship(
        back_populates="activity", cascade="all, delete-orphan"
    )


class ActivityParticipant(Base):
    __tablename__ = "activity_participants"
    __table_args__ = (
        # A person's activities newest first, in timeline order (migration 0005).
        Index(
            "ix_activity_participants_contact_timeline", "contact_id", "occurred_at", "activity_id"
        ),
        Index("ix_activity_participants_address_timeline", "address", "occurred_at", "activity_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(12))
    address: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(300), default="")
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    response: Mapped[str | None] = mapped_column(String(20))
    occurred_at: Mapped[datetime]

    activity: Mapped[Activity] = relationship(back_populates="participants")


class Meeting(Base):
    """The calendar side of a meeting activity; a series by UID, an occurrence by original start.

    The columns are what lists and views query; `state` holds the rest of the iTIP state
    (`server.crm.itip.MeetingState`: each attendee's response with the DTSTAMP and SEQUENCE it
    answered, counter-proposals, whether only a reply has been seen so far, exact start and end
    with their UTC offset), serialised by `server.crm.meetings`. The title is the activity's
    subject and the description its body, so removing an activity's content removes them too.
    """

    __tablename__ = "meetings"
    __table_args__ = (UniqueConstraint("uid", "recurrence_key"),)

    activity_id: Mapped[int] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), primary_key=True
    )
    uid: Mapped[str] = mapped_column(String(500))
    recurrence_key: Mapped[str] = mapped_column(String(40), default="")
    sequence: Mapped[int] = mapped_column(default=0)
    dtstamp: Mapped[datetime | None]
    starts_at: Mapped[datetime | None] = mapped_column(index=True)
    ends_at: Mapped[datetime | None]
    time_zone: Mapped[str | None] = mapped_column(String(64))
    all_day: Mapped[bool] = mapped_column(default=False)
    location: Mapped[str] = mapped_column(String(1000), default="")
    online_meeting_url: Mapped[str] = mapped_column(String(2000), default="")
    status: Mapped[str] = mapped_column(String(20), default="confirmed")
    rrule: Mapped[str | None] = mapped_column(Text)
    exdates: Mapped[list[Any]] = mapped_column(default=list)
    organizer_address: Mapped[str] = mapped_column(String(320), default="")
    notes: Mapped[list[Any]] = mapped_column(default=list)
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)

    activity: Mapped[Activity] = relationship(back_populates="meeting")


class Attachment(Base):
    """Attachment metadata; content (only at capture level full, under the cap) is a blob by hash."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(500), default="")
    content_type: Mapped[str] = mapped_column(String(200), default="application/octet-stream")
    size: Mapped[int] = mapped_column(default=0)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    inline: Mapped[bool] = mapped_column(default=False)

    activity: Mapped[Activity] = relationship(back_populates="attachments")
