"""meetings.state: the iTIP state of a meeting (responses, proposals, placeholder)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Calendar capture keeps, per meeting, what `server.crm.itip` needs to apply later messages in any
order: each attendee's response with the DTSTAMP and SEQUENCE it answered, counter-proposals and
whether only a reply has been seen. The column is added nullable, filled, then made NOT NULL, so
the same steps work on SQLite (batch mode) and PostgreSQL whatever rows exist.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("meetings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("state", JSON_TYPE, nullable=True))
    op.execute("UPDATE meetings SET state = '{}' WHERE state IS NULL")
    with op.batch_alter_table("meetings", schema=None) as batch_op:
        batch_op.alter_column("state", existing_type=JSON_TYPE, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("meetings", schema=None) as batch_op:
        batch_op.drop_column("state")
