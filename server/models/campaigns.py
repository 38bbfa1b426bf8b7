"""Email campaigns: saved segments of contacts, campaigns, one row per recipient, marketing
consent, and the addresses not to mail (unsubscribed or bouncing, kept as keyed hashes so an
erased person's opt-out outlives their data). See docs/campaigns.md."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, Timestamps, utcnow

CAMPAIGN_STATUSES = ("draft", "scheduled", "sending", "paused", "cancelled", "done")
# queued → sending → sent | failed | unknown; skipped when a rule said no at send time;
# bounced when a delivery status notification came back for it.
RECIPIENT_STATES = ("queued", "sending", "sent", "skipped", "bounced", "failed", "unknown")
CONSENT_STATES = ("granted", "unknown", "withdrawn")
SENDING_PATHS = ("smtp", "graph")


class Segment(Timestamps, Base):
    """A saved filter over contacts (the contact list's filters plus "has an open deal")."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )


class Campaign(Timestamps, Base):
    """A templated email to a segment. Its numbers (sent, skipped...) are counted from its
    recipient rows when asked, never kept in counters that could drift from them."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    segment_id: Mapped[int | None] = mapped_column(
        ForeignKey("segments.id", ondelete="SET NULL"), index=True
    )
    template_id: Mapped[int | None] = mapped_column(ForeignKey("templates.id", ondelete="SET NULL"))
    subject: Mapped[str] = mapped_column(String(1000), default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    sender_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    sending_path: Mapped[str] = mapped_column(String(10), default="smtp")
    graph_link_id: Mapped[int | None] = mapped_column(
        ForeignKey("mailbox_links.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(10), default="draft", index=True)
    send_at: Mapped[datetime | None]
    local_time: Mapped[bool] = mapped_column(default=False)
    per_minute: Mapped[int] = mapped_column(default=30)
    per_day: Mapped[int] = mapped_column(default=10_000)
    last_error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class CampaignRecipient(Base):
    """One person of a campaign; `idempotency_key` is also the email's Message-ID local part,
    so a message is recognised as this row's wherever it turns up again."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id"),
        Index("ix_campaign_recipients_due", "campaign_id", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    address: Mapped[str] = mapped_column(String(320))
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    message_id: Mapped[str] = mapped_column(String(300), index=True)
    state: Mapped[str] = mapped_column(String(10), default="queued")
    skip_reason: Mapped[str | None] = mapped_column(String(50))
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    activity_id: Mapped[int | None] = mapped_column(
        ForeignKey("activities.id", ondelete="SET NULL")
    )
    provider_response: Mapped[str | None] = mapped_column(Text)


class ContactConsent(Base):
    """A contact's marketing consent: no row means "unknown"."""

    __tablename__ = "contact_consents"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(10), default="unknown")
    source: Mapped[str] = mapped_column(String(200), default="")
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class MailingBlock(Base):
    """An address campaigns never mail again: `reason` unsubscribed or bounced. The address is a
    keyed hash (the privacy module's key), so the block survives the person's erasure."""

    __tablename__ = "mailing_blocks"

    id: Mapped[int] = mapped_column(primary_key=True)
    address_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(20))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"), index=True
    )
    detail: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
