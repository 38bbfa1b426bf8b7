"""search_document: on PostgreSQL, mail's words stored beside it, so a search reads the newest
matches first

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25

Migration 0004 indexed mail's words through an expression index. The planner keeps no
statistics for an expression inside a partial index, so it could not tell a word in a third of
all mail from a word in none, and `server.crm.search` had to force one plan for both: every
match from the GIN index, then the newest by date — a heap fetch per match (0.2 s for 35,000
matches, 0.5 s and more for a common word at a million emails).

Now the words are a stored generated column, `activities.search_doc` (a `tsvector`, computed by
PostgreSQL from the same expression on every insert and update, so capture, erasure and
retention keep it current without a line of Python), with its own partial GIN index. ANALYZE
keeps statistics on a `tsvector` column (its most common words and their frequencies), so the
planner now chooses: for a common word it walks `ix_activities_occurred_at` backwards and stops
at the cap (checking a stored vector is cheap; re-parsing the text was not), for a rare one it
reads the GIN index. SQLite is unchanged: its FTS5 table hands out matches newest first already.

The column exists on PostgreSQL only; the models do not map it (tests/integration/
test_migrations.py knows it by name). On a database holding a million activities, adding the
column rewrites the table: about two minutes, during which capture waits.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCHED = "kind IN ('email', 'meeting', 'note')"
TEXT = "subject || ' ' || CASE WHEN kind = 'note' THEN coalesce(body_text, '') ELSE snippet END"
ON_THE_TIMELINE = f"{SEARCHED} AND unlogged_at IS NULL AND content_removed_reason IS NULL"
WORDS = f"to_tsvector('simple', rapport_search_words({TEXT}))"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute(
        "ALTER TABLE activities ADD COLUMN search_doc tsvector "
        f"GENERATED ALWAYS AS (CASE WHEN {SEARCHED} THEN {WORDS} END) STORED"
    )
    op.execute(
        "CREATE INDEX ix_search_activities_doc ON activities USING gin (search_doc) "
        f"WHERE {ON_THE_TIMELINE}"
    )
    op.execute("DROP INDEX IF EXISTS ix_search_activities_text")
    op.execute("ANALYZE activities")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute(
        f"CREATE INDEX ix_search_activities_text ON activities USING gin ({WORDS}) "
        f"WHERE {ON_THE_TIMELINE}"
    )
    op.execute("DROP INDEX IF EXISTS ix_search_activities_doc")
    op.execute("ALTER TABLE activities DROP COLUMN search_doc")
