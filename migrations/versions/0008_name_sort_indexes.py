"""name_sort_indexes: contact and company lists sorted by name read straight off an index

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25

The web app's lists sort by name regardless of case and page by (lower(name), id)
(server/crm/paging.py). Without an index on that expression every page sorts the whole table:
at 50,000 contacts each page read them all. The plain `name` indexes stay: lookups by exact name
(merging a company by name, CSV import) use them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {"ix_contacts_name_sort": "contacts", "ix_companies_name_sort": "companies"}


def upgrade() -> None:
    for name, table in INDEXES.items():
        op.create_index(name, table, [sa.func.lower(sa.column("name")), "id"], unique=False)


def downgrade() -> None:
    for name, table in INDEXES.items():
        op.drop_index(name, table_name=table)
