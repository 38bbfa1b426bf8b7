"""lookup indexes: a person's timeline newest first, read straight off an index

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

The task pane's lookup (server/crm/lookup.py, server/crm/timeline.py) asks for a person's newest
activities. The participant timeline indexes were (contact_id, occurred_at) and (address,
occurred_at); the timeline is ordered by (occurred_at, activity id), so with the activity id as
the third column the database walks one person's entries newest first and stops after a page,
however many thousands of emails that person has, without looking up a row to break ties (and on
PostgreSQL as an index-only scan). They replace the two-column ones, which are their prefixes.

`follow_ups.deal_id` gets an index: lookup asks for follow-ups of its contacts or their deals,
and without it the "or deal" half of that question reads every open follow-up.

On a database that already holds a million activities this builds about five million index
entries (a minute or two on SQLite, less on PostgreSQL).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTICIPANTS = "activity_participants"
TIMELINES = {
    "ix_activity_participants_contact_timeline": "contact_id",
    "ix_activity_participants_address_timeline": "address",
}


def upgrade() -> None:
    for name, person in TIMELINES.items():
        op.drop_index(name, table_name=PARTICIPANTS)
        op.create_index(name, PARTICIPANTS, [person, "occurred_at", "activity_id"], unique=False)
    op.create_index(op.f("ix_follow_ups_deal_id"), "follow_ups", ["deal_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_follow_ups_deal_id"), table_name="follow_ups")
    for name, person in TIMELINES.items():
        op.drop_index(name, table_name=PARTICIPANTS)
        op.create_index(name, PARTICIPANTS, [person, "occurred_at"], unique=False)
