"""Relationship signals as currently computed, what they cite, and which contacts await a recompute.

`Signal` rows are the output of `server.crm.signals` for one subject each (a contact, a deal or a
company), replaced whole whenever that subject is recomputed. A signal shows between `due_at`
and `expires_at`, so time passing needs no recompute for most of them. `SignalEvidence` lists
the activities a signal's reason cites: a reader sees a signal only if they may see every one of
them (`evidence_count` says how many there were, so an erased activity hides it too).
`SignalDirty` holds the contacts captured mail touched since their last recompute; the counter
lets a recompute clear only what it saw. Each user's snoozes and dismissals are `SignalState`,
keyed by `Signal.key`: it was defined with the first schema (server/models/platform.py, migration
0001) and is re-exported here so that everything about signals is found in one place.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.models.base import Base, utcnow
from server.models.platform import SignalState

__all__ = ["Signal", "SignalDirty", "SignalEvidence", "SignalState"]


class Signal(Base):
    __tablename__ = "signals"
    __table_args__ = (Index("ix_signals_owner_due", "owner_id", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(30))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    deal_id: Mapped[int | None] = mapped_column(
        ForeignKey("deals.id", ondelete="CASCADE"), index=True
    )
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), index=True
    )
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    due_at: Mapped[datetime] = mapped_column(index=True)
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    reason: Mapped[dict[str, Any]] = mapped_column(default=dict)
    evidence_count: Mapped[int] = mapped_column(default=0)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class SignalEvidence(Base):
    __tablename__ = "signal_evidence"

    signal_id: Mapped[int] = mapped_column(
        ForeignKey("signals.id", ondelete="CASCADE"), primary_key=True
    )
    activity_id: Mapped[int] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class SignalDirty(Base):
    __tablename__ = "signal_dirty"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    generation: Mapped[int] = mapped_column(default=1)
