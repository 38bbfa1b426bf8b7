"""signals: relationship signals as computed, the activities they cite, contacts to recompute

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25

`server.crm.signals` keeps each contact's, deal's and company's current signals in `signals`
(one row per signal, replaced whole when its subject is recomputed), the activities each
signal's reason cites in `signal_evidence` (a reader must be allowed to see all of them), and the
contacts that captured mail touched since their last recompute in `signal_dirty`. Per-user
snoozes and dismissals already have their table (`signal_states`, migration 0001).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import server.models.base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTC_TIME = server.models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "signals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("deal_id", sa.Integer(), nullable=True),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("due_at", UTC_TIME, nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=True),
        sa.Column("reason", JSON_TYPE, nullable=False),
        sa.Column("evidence_count", sa.Integer(), nullable=False),
        sa.Column("computed_at", UTC_TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_signals_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_signals_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_signals_deal_id_deals"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_signals_owner_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signals")),
        sa.UniqueConstraint("key", name=op.f("uq_signals_key")),
    )
    op.create_index(op.f("ix_signals_company_id"), "signals", ["company_id"], unique=False)
    op.create_index(op.f("ix_signals_contact_id"), "signals", ["contact_id"], unique=False)
    op.create_index(op.f("ix_signals_deal_id"), "signals", ["deal_id"], unique=False)
    op.create_index(op.f("ix_signals_due_at"), "signals", ["due_at"], unique=False)
    op.create_index(op.f("ix_signals_expires_at"), "signals", ["expires_at"], unique=False)
    op.create_index("ix_signals_owner_due", "signals", ["owner_id", "due_at"], unique=False)
    op.create_table(
        "signal_evidence",
        sa.Column("signal_id", sa.Integer(), nullable=False),
        sa.Column("activity_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["activity_id"],
            ["activities.id"],
            name=op.f("fk_signal_evidence_activity_id_activities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["signal_id"],
            ["signals.id"],
            name=op.f("fk_signal_evidence_signal_id_signals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("signal_id", "activity_id", name=op.f("pk_signal_evidence")),
    )
    op.create_index(
        op.f("ix_signal_evidence_activity_id"), "signal_evidence", ["activity_id"], unique=False
    )
    op.create_table(
        "signal_dirty",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_signal_dirty_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_id", name=op.f("pk_signal_dirty")),
    )


def downgrade() -> None:
    op.drop_table("signal_dirty")
    op.drop_index(op.f("ix_signal_evidence_activity_id"), table_name="signal_evidence")
    op.drop_table("signal_evidence")
    op.drop_index("ix_signals_owner_due", table_name="signals")
    op.drop_index(op.f("ix_signals_expires_at"), table_name="signals")
    op.drop_index(op.f("ix_signals_due_at"), table_name="signals")
    op.drop_index(op.f("ix_signals_deal_id"), table_name="signals")
    op.drop_index(op.f("ix_signals_contact_id"), table_name="signals")
    op.drop_index(op.f("ix_signals_company_id"), table_name="signals")
    op.drop_table("signals")
