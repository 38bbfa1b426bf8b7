"""Capture rules, the capture trace, quarantined items and suppressed (erased) addresses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, utcnow

RULE_KINDS = ("internal_domain", "block_address", "block_domain", "never_log")
DECISIONS = ("captured", "known", "skipped", "quarantined", "removed")


class CaptureRule(Base):
    """One list entry of a capture rule; `user_id` set for a user's own "never log" entries."""

    __tablename__ = "capture_rules"
    __table_args__ = (UniqueConstraint("kind", "value", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    value: Mapped[str] = mapped_column(String(320))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaptureDecision(Base):
    """The capture trace: what happened to a message seen in a mailbox folder, and why."""

    __tablename__ = "capture_decisions"
    __table_args__ = (
        UniqueConstraint("link_id", "folder", "message_key"),
        Index("ix_capture_decisions_message_key", "message_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("mailbox_links.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(String(500), default="")
    message_key: Mapped[str] = mapped_column(String(600))
    provider_id: Mapped[str] = mapped_column(String(500), default="")
    decision: Mapped[str] = mapped_column(String(12))
    rule: Mapped[str | None] = mapped_column(String(50))
    detail: Mapped[str] = mapped_column(Text, default="")
    activity_id: Mapped[int | None] = mapped_column(
        ForeignKey("activities.id", ondelete="SET NULL")
    )
    quarantined_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("quarantined_items.id", ondelete="SET NULL")
    )
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)


class QuarantinedItem(Base):
    """Bytes that could not be captured, kept (as a blob) with the reason for a retry after a fix."""

    __tablename__ = "quarantined_items"
    __table_args__ = (UniqueConstraint("link_id", "raw_sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("mailbox_links.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(String(500), default="")
    provider_id: Mapped[str] = mapped_column(String(500), default="")
    raw_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    reason: Mapped[str] = mapped_column(String(50))
    detail: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class Suppression(Base):
    """An erased person's address as a keyed hash, so capture never recreates them."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
