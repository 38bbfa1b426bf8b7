"""Core statements run on the session's connection, for the hot paths.

Capture writes thousands of rows a second and every API request signs in and reads a few rows;
going through the ORM's unit of work (or even building a new statement object per call) costs
more than the database work itself. These helpers hand out prebuilt `INSERT ... ON CONFLICT`
statements for the session's dialect, and run statements that load no ORM objects, on the
session's connection, inside the session's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Executable, Row, Table, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from server.models import Base


def table(name: str) -> Table:
    return Base.metadata.tables[name]


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name


@lru_cache(maxsize=128)
def _insert_ignore(dialect: str, table_name: str, index: tuple[str, ...]) -> Insert:
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    return make(table(table_name)).on_conflict_do_nothing(index_elements=list(index))


@lru_cache(maxsize=128)
def _upsert(
    dialect: str, table_name: str, index: tuple[str, ...], update: tuple[str, ...]
) -> Insert:
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = make(table(table_name))
    return stmt.on_conflict_do_update(
        index_elements=list(index), set_={c: stmt.excluded[c] for c in update}
    )


def insert_ignore(
    session: Session, table_name: str, index: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    """Insert rows; a row whose `index` columns already exist is left as it is."""
    if rows:
        stmt = _insert_ignore(dialect_of(session), table_name, tuple(index))
        session.connection().execute(stmt, list(rows))


def upsert(
    session: Session,
    table_name: str,
    index: Sequence[str],
    update: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Insert rows; where the `index` columns exist, overwrite the `update` columns instead."""
    if rows:
        stmt = _upsert(dialect_of(session), table_name, tuple(index), tuple(update))
        session.connection().execute(stmt, list(rows))


def insert_ignore_returning(
    session: Session,
    table_name: str,
    index: Sequence[str],
    returning: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> list[tuple[Any, ...]]:
    """Like `insert_ignore`, returning the chosen columns of the rows actually inserted."""
    if not rows:
        return []
    base = _insert_ignore(dialect_of(session), table_name, tuple(index))
    columns = [table(table_name).c[name] for name in returning]
    result = cast(
        CursorResult[Any], session.connection().execute(base.returning(*columns), list(rows))
    )
    return [tuple(row) for row in result]


def core_rows(
    session: Session, statement: Executable, params: Mapping[str, Any] | None = None
) -> Sequence[Row[*tuple[Any, ...]]]:
    """The rows of a statement that loads no ORM objects, run on the session's connection: the
    ORM's per-statement work (~0.1 ms) is most of what a small indexed query costs. Pending
    changes are flushed first, as the session's own autoflush would."""
    if session.autoflush:
        session.flush()
    return session.connection().execute(statement, params).all()


def allocate_ids(session: Session, table_name: str, count: int) -> list[int]:
    """`count` ids for rows about to be inserted into `table_name` in one statement. PostgreSQL
    hands them out from the table's sequence; on SQLite the caller's transaction holds the
    database's write lock (capture begins IMMEDIATE), so the ids after the largest are free until
    it commits."""
    if dialect_of(session) == "postgresql":
        rows = session.execute(
            text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table_name, "n": count},
        )
        return [int(row[0]) for row in rows]
    largest = session.scalar(select(func.max(table(table_name).c.id))) or 0
    return list(range(largest + 1, largest + 1 + count))
