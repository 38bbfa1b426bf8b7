"""The models and the Alembic migrations describe the same schema, and migrations run both ways."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from server.db import Database
from server.models import Base


def test_migrated_schema_matches_the_models(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    db.upgrade()
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    db.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def test_upgrade_downgrade_upgrade_round_trip(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    db.upgrade()
    head = db.head_revision()
    assert db.current_revision() == head
    assert set(Base.metadata.tables) <= set(inspect(db.engine).get_table_names())

    db.downgrade("base")
    assert db.current_revision() is None
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}

    db.upgrade()
    assert db.current_revision() == head
    assert set(Base.metadata.tables) <= set(inspect(db.engine).get_table_names())
    db.dispose()
