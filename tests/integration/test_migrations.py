"""The models and the Alembic migrations describe the same schema, and migrations run both ways."""

from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from migrations import HEAD
from server.db import Database
from server.models import Base

# Search's database objects live in migration 0004 only (server/crm/search.py reads them): the
# SQLite FTS5 tables (with their shadow tables) and the PostgreSQL expression indexes.
SEARCH_TABLE_PREFIXES = ("search_fts", "search_activities_fts")
SEARCH_INDEX_PREFIX = "ix_search_"
SEARCH_COLUMNS = frozenset({"search_doc"})  # PostgreSQL's stored words of mail (migration 0010)
# Indexes on an expression (lower(name)): SQLAlchemy cannot reflect them from SQLite, so there
# they are checked by name below; PostgreSQL compares them like any other.
EXPRESSION_INDEXES = frozenset({"ix_contacts_name_sort", "ix_companies_name_sort"})


def not_search_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    if type_ == "table" and name is not None and name.startswith(SEARCH_TABLE_PREFIXES):
        return False
    if type_ == "column" and name in SEARCH_COLUMNS:
        return False
    return not (type_ == "index" and name is not None and name.startswith(SEARCH_INDEX_PREFIX))


def test_migrated_schema_matches_the_models(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    db.upgrade()
    sqlite = db.engine.dialect.name == "sqlite"

    def compared(obj: object, name: str | None, type_: str, *rest: object) -> bool:
        if sqlite and type_ == "index" and name in EXPRESSION_INDEXES:
            return False
        return not_search_object(obj, name, type_, *rest)  # type: ignore[arg-type]

    with db.engine.connect() as conn, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression")
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": compared}
        )
        diff = compare_metadata(context, Base.metadata)
        if sqlite:
            rows = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")
            assert {row[0] for row in rows} >= EXPRESSION_INDEXES
    db.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def test_the_head_kept_in_the_migrations_package_is_alembics_head(empty_database_url: str) -> None:
    """`migrations.HEAD` spares the importer and the worker loading Alembic; a new migration
    must move it."""
    db = Database(empty_database_url)
    scripts = ScriptDirectory.from_config(db.alembic_config())
    assert scripts.get_heads() == [HEAD]
    assert db.head_revision() == HEAD


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
