"""audit_append_only: the audit log refuses updates and deletes

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25

`audit_events` is append-only for everyone (server/api/audit.py): no endpoint changes an event,
and these triggers make the database refuse it too, on both backends. One change is let through:
a deleted user's id set to null by the foreign key (`ON DELETE SET NULL`), so deleting a user
still works and the event keeps everything else.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONTENT = ("at", "action", "entity_type", "entity_id", "source", "details", "id")

PG_FUNCTION = """
CREATE FUNCTION rapport_audit_append_only() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'the audit log is append-only: events are never deleted';
  END IF;
  IF (NEW.id, NEW.at, NEW.action, NEW.entity_type, NEW.entity_id, NEW.source, NEW.details::text)
     IS DISTINCT FROM
     (OLD.id, OLD.at, OLD.action, OLD.entity_type, OLD.entity_id, OLD.source, OLD.details::text)
     OR (NEW.user_id IS NOT NULL AND NEW.user_id IS DISTINCT FROM OLD.user_id) THEN
    RAISE EXCEPTION 'the audit log is append-only: events are never changed';
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION rapport_audit_append_only()"
        )
        return
    columns = ", ".join(CONTENT)
    op.execute(
        f"CREATE TRIGGER audit_events_no_update BEFORE UPDATE OF {columns} ON audit_events "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: events are never changed'); END"
    )
    op.execute(
        "CREATE TRIGGER audit_events_no_new_user BEFORE UPDATE OF user_id ON audit_events "
        "WHEN NEW.user_id IS NOT NULL "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: events are never changed'); END"
    )
    op.execute(
        "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: events are never deleted'); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS rapport_audit_append_only()")
        return
    for name in ("audit_events_no_update", "audit_events_no_new_user", "audit_events_no_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
