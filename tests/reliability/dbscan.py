"""Reading a whole database as it is on disk, not as the models see it: every table the database
has (on SQLite also the FTS5 tables and their shadow tables; on PostgreSQL also generated
columns such as `activities.search_doc`), every column, as text.

Why not `Base.metadata`: a copy of someone's data in a table or column the models do not map
(an index's storage, a table made by a migration only) is exactly what such a scan must find.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from sqlalchemy import inspect, text

from server.crm.blob_rows import unpack
from server.db import Database

# Full-text indexes whose words are only in the index itself (contentless FTS5 tables): read
# through fts5vocab, which lists every term the index holds.
SQLITE_FTS = ("search_fts", "search_activities_fts")


def table_names(db: Database) -> list[str]:
    names = set(inspect(db.engine).get_table_names())
    if db.is_sqlite:
        with db.engine.connect() as connection:
            names |= set(
                connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
                .scalars()
                .all()
            )
    return sorted(names)


def as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("latin-1")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def cells(db: Database) -> Iterator[tuple[str, str, str]]:
    """(table, column, value as text) for every cell of every table; blobs decompressed."""
    with db.engine.connect() as connection:
        for table in table_names(db):
            result = connection.execute(text(f'SELECT * FROM "{table}"'))  # noqa: S608
            for row in result.mappings():
                values = dict(row)
                if table == "blobs" and "compression" in values:
                    values["data"] = unpack(values["compression"], bytes(values["data"]))
                for column, value in values.items():
                    yield table, str(column), as_text(value)


def fts_terms(db: Database) -> dict[str, list[str]]:
    """Every term of every SQLite FTS5 index (empty on PostgreSQL)."""
    if not db.is_sqlite:
        return {}
    terms: dict[str, list[str]] = {}
    with db.engine.connect() as connection:
        for fts in SQLITE_FTS:
            vocab = f"temp.{fts}_vocab_scan"
            connection.execute(text(f"DROP TABLE IF EXISTS {vocab}"))
            connection.execute(
                text(f"CREATE VIRTUAL TABLE {vocab} USING fts5vocab(main, {fts}, 'row')")
            )
            terms[fts] = list(connection.execute(text(f"SELECT term FROM {vocab}")).scalars())  # noqa: S608
            connection.execute(text(f"DROP TABLE {vocab}"))
    return terms


def snapshot(db: Database, *, ignore: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Every row of every table (but `ignore`d ones), sorted: equal snapshots, unchanged data."""
    tables: dict[str, list[str]] = {}
    with db.engine.connect() as connection:
        for table in table_names(db):
            if table in ignore:
                continue
            rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()  # noqa: S608
            tables[table] = sorted(repr(tuple(as_text(v) for v in row)) for row in rows)
    return tables
