"""The hot-path multi-row inserts write what SQLAlchemy's own execution would write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from server.crm.sql import _many, insert_ignore, insert_rows, table, upsert
from server.db import Database
from server.models import Base, Contact, Thread


def test_every_tables_bind_processing_is_sqlalchemys_own(db: Database) -> None:
    """For each table of the schema and every column a row can carry, the positions given a
    bind processor are those SQLAlchemy's compiled statement processes."""
    dialect = db.engine.dialect
    for name, tab in Base.metadata.tables.items():
        keys = tuple(c.key for c in tab.columns if not (c.primary_key and c.autoincrement is True))
        stmt = insert(tab)
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
        many = _many(dialect, stmt, name, keys)
        processed = {many.names[position] for position, _ in many.processors}
        assert processed == set(compiled._bind_processors), name
        assert set(many.names) == set(keys) | {c.key for c in compiled.insert_prefetch}, name


def test_rows_get_their_column_defaults_and_timestamps_round_trip(db: Database) -> None:
    first = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    rows = [
        {"id": 7, "first_at": first, "last_at": None},
        {"id": 9, "first_at": None, "last_at": first},
    ]
    before = datetime.now(UTC)
    with db.session() as session:
        insert_rows(session, "threads", rows)
        # a table whose defaults include a callable (`utcnow`) and a JSON column
        insert_rows(session, "contacts", [{"name": "Ann"}, {"name": "Bob"}])
    with db.read_session() as session:
        threads = session.scalars(select(Thread).order_by(Thread.id)).all()
        contacts = session.scalars(select(Contact).order_by(Contact.id)).all()
    assert [(t.id, t.subject, t.activity_count, t.first_at, t.last_at) for t in threads] == [
        (7, "", 0, first, None),
        (9, "", 0, None, first),
    ]
    assert [(c.name, c.custom_fields, c.version) for c in contacts] == [
        ("Ann", {}, 1),
        ("Bob", {}, 1),
    ]
    assert all(c.created_at >= before - timedelta(seconds=1) for c in contacts)
    assert contacts[0].created_at == contacts[1].created_at  # one `now` per statement


def test_ignore_and_upsert_keep_their_conflict_rules(db: Database) -> None:
    first = [{"key": "a", "value": 1}, {"key": "b", "value": 2}]
    with db.session() as session:
        insert_ignore(session, "settings", ["key"], first)
        insert_ignore(session, "settings", ["key"], [{"key": "a", "value": 9}])
        changed = {"key": "b", "value": 7, "updated_at": datetime.now(UTC)}
        upsert(session, "settings", ["key"], ["value", "updated_at"], [changed])
    with db.read_session() as session:
        rows = session.execute(select(table("settings").c.key, table("settings").c.value)).all()
    assert sorted((k, v) for k, v in rows) == [("a", 1), ("b", 7)]


def test_upsert_inserts_the_new_rows_and_overwrites_the_known_ones_in_one_call(
    db: Database,
) -> None:
    """SQLite inserts first and updates by key only when some rows were known (see `upsert`):
    a mixed call, a key given twice (the last row wins, as with ON CONFLICT DO UPDATE) and a
    typed column among those overwritten."""
    monday = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    tuesday = monday + timedelta(days=1)
    with db.session() as session:
        assert insert_ignore(session, "settings", ["key"], [{"key": "a", "value": 1}]) == 1
        assert insert_ignore(session, "settings", ["key"], [{"key": "a", "value": 2}]) == 0
        upsert(
            session,
            "settings",
            ["key"],
            ["value", "updated_at"],
            [
                {"key": "a", "value": {"seen": 2}, "updated_at": monday},
                {"key": "c", "value": [3], "updated_at": monday},
                {"key": "c", "value": [4], "updated_at": tuesday},
            ],
        )
        upsert(
            session,
            "settings",
            ["key"],
            ["value", "updated_at"],
            [{"key": "d", "value": 5, "updated_at": tuesday}],
        )
    settings = table("settings").c
    with db.read_session() as session:
        rows = session.execute(select(settings.key, settings.value, settings.updated_at)).all()
    assert sorted(rows) == [
        ("a", {"seen": 2}, monday),
        ("c", [4], tuesday),
        ("d", 5, tuesday),
    ]


def test_an_upsert_that_leaves_an_update_stamp_alone_is_refused(db: Database) -> None:
    refused = r"settings: an upsert must overwrite \['updated_at'\]"
    with pytest.raises(ValueError, match=refused), db.session() as session:
        upsert(session, "settings", ["key"], ["value"], [{"key": "a", "value": 1}])
    unsaid = r"settings: upsert rows must carry the columns they overwrite, \['updated_at'\]"
    with pytest.raises(ValueError, match=unsaid), db.session() as session:
        upsert(session, "settings", ["key"], ["value", "updated_at"], [{"key": "a", "value": 1}])


def test_a_refused_row_fails_the_whole_statement_with_sqlalchemys_error(db: Database) -> None:
    with pytest.raises(IntegrityError), db.session() as session:
        insert_rows(session, "settings", [{"key": "x", "value": 1}, {"key": "x", "value": 2}])
    with db.read_session() as session:
        assert session.execute(select(table("settings").c.key)).all() == []
