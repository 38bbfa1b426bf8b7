"""Linked mailboxes, their per-folder sync checkpoints, and which mailbox saw which activity."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.models.base import Base, Timestamps

LINK_KINDS = ("imap", "graph", "ews", "drop", "import")
LINK_STATUSES = ("active", "paused", "needs_attention", "error", "removed")
VISIBILITIES = ("team", "private")


class MailboxLink(Timestamps, Base):
    """One mailbox Rapport captures from; `secret` is encrypted (see server/crypto.py)."""

    __tablename__ = "mailbox_links"
    __table_args__ = (Index("ix_mailbox_links_kind_owner", "kind", "owner_address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    owner_address: Mapped[str] = mapped_column(String(320))
    owner_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    aliases: Mapped[list[Any]] = mapped_column(default=list)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    drop_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    capture_level: Mapped[str] = mapped_column(String(10), default="full")
    visibility: Mapped[str] = mapped_column(String(10), default="team")
    status: Mapped[str] = mapped_column(String(20), default="active")
    status_reason: Mapped[str | None] = mapped_column(Text)
    last_success_at: Mapped[datetime | None]
    last_error_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    messages_captured: Mapped[int] = mapped_column(default=0)
    backlog: Mapped[int] = mapped_column(default=0)
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]

    checkpoints: Mapped[list[SyncCheckpoint]] = relationship(
        back_populates="link", cascade="all, delete-orphan"
    )


class SyncCheckpoint(Base):
    """Where a folder's sync resumes (delta link, sync state, UIDVALIDITY/MODSEQ, file offsets)."""

    __tablename__ = "sync_checkpoints"
    __table_args__ = (UniqueConstraint("link_id", "folder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("mailbox_links.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(String(500))
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime | None]

    link: Mapped[MailboxLink] = relationship(back_populates="checkpoints")


class MailboxObservation(Base):
    """A linked mailbox saw this activity in this folder (so moves, deletions and privacy hold)."""

    __tablename__ = "mailbox_observations"
    __table_args__ = (
        UniqueConstraint("link_id", "folder", "activity_id"),
        Index("ix_mailbox_observations_provider", "link_id", "folder", "provider_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), index=True
    )
    link_id: Mapped[int] = mapped_column(ForeignKey("mailbox_links.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(String(500), default="")
    provider_id: Mapped[str] = mapped_column(String(500), default="")
    direction: Mapped[str] = mapped_column(String(10), default="incoming")
    seen_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]
