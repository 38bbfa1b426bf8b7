"""Core statements run on the session's connection, for the hot paths.

Capture writes thousands of rows a second and every API request signs in and reads a few rows;
going through the ORM's unit of work (or even building a new statement object per call) costs
more than the database work itself. These helpers hand out prebuilt `INSERT ... ON CONFLICT`
statements for the session's dialect, and run statements that load no ORM objects, on the
session's connection, inside the session's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Executable, Row, Table, bindparam, func, insert, select, text
from sqlalchemy import update as update_statement
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert, Update

from server.models import Base


def table(name: str) -> Table:
    return Base.metadata.tables[name]


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name


def insert_for(dialect: str) -> Callable[[Any], Any]:
    """The dialect's own `insert` (the one with `on_conflict_*`). PostgreSQL's is imported only
    when used: that import brings SQLAlchemy's whole PostgreSQL dialect, a tenth of a second of
    a SQLite process's start."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


@lru_cache(maxsize=128)
def _insert_ignore(dialect: str, table_name: str, index: tuple[str, ...]) -> Insert:
    stmt: Insert = insert_for(dialect)(table(table_name))
    return stmt.on_conflict_do_nothing(index_elements=list(index))  # type: ignore[attr-defined,no-any-return]


@lru_cache(maxsize=128)
def _pg_upsert(table_name: str, index: tuple[str, ...], update: tuple[str, ...]) -> Insert:
    stmt = insert_for("postgresql")(table(table_name))
    return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=list(index), set_={c: stmt.excluded[c] for c in update}
    )


@dataclass(frozen=True, slots=True)
class _Many:
    """An INSERT compiled once for one set of row keys, and how to turn rows into its
    parameters without SQLAlchemy's per-row work (a tenth of capture's main process)."""

    sql: str
    names: tuple[str, ...]  # the statement's parameters, in its order
    gather: Callable[[Mapping[str, Any]], tuple[Any, ...]]  # a row's own values
    defaults: tuple[Callable[[], Any], ...]  # then the defaults of the columns it lacks
    order: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None  # both, in `names`' order
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, bind processor)
    positional: bool

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        gather, order = self.gather, self.order
        defaults = tuple(make() for make in self.defaults)  # once for all rows, as `now` is
        params: list[Any] = [gather(row) + defaults for row in rows]
        if order is not None:
            params = [order(param) for param in params]
        if self.processors:
            lists = [list(param) for param in params]
            for position, process in self.processors:
                for values in lists:
                    values[position] = process(values[position])
            params = [tuple(values) for values in lists]  # the DBAPI takes tuples, not lists
        if self.positional:
            return params
        return [dict(zip(self.names, param, strict=True)) for param in params]


def _tuple_getter(indexes: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """`itemgetter`, always giving a tuple (it gives the bare item for a single index)."""
    if len(indexes) == 1:
        only = indexes[0]
        return lambda values: (values[only],)
    return itemgetter(*indexes)


def _default(column: Any) -> Callable[[], Any]:
    default = column.default
    if default.is_scalar:
        return lambda: default.arg
    if default.is_callable:  # SQLAlchemy wraps it to take the execution context; ours ignore it
        return lambda: default.arg(None)
    raise ValueError(f"{column}: a default that only SQLAlchemy's own execution can compute")


@lru_cache(maxsize=256)
def _many(dialect: Dialect, stmt: Insert, table_name: str, keys: tuple[str, ...]) -> _Many:
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
    if compiled.update_prefetch or compiled.returning:
        raise ValueError(f"{table_name}: not a plain multi-row insert")
    columns = table(table_name).c
    own = [key for key in keys if key in columns]
    filled = [column for column in compiled.insert_prefetch if column.key not in keys]
    source = [*own, *(column.key for column in filled)]
    names = tuple(compiled.positiontup or source)
    if sorted(names) != sorted(source):
        raise ValueError(f"{table_name}: parameters {names} are not the rows' {source}")
    permutation = [source.index(name) for name in names]
    processors = []
    for position, name in enumerate(names):
        process = columns[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((position, process))
    return _Many(
        sql=compiled.string,
        names=names,
        gather=_tuple_getter(own),
        defaults=tuple(_default(column) for column in filled),
        order=None if permutation == sorted(permutation) else _tuple_getter(permutation),
        processors=tuple(processors),
        positional=compiled.positiontup is not None,
    )


def _execute_many(
    session: Session, stmt: Insert, table_name: str, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Run `stmt` for every row (all with the same keys) as one DBAPI `executemany`, inside
    the session's transaction, with the column defaults and bind processing SQLAlchemy's own
    execution would apply. The number of rows it wrote."""
    connection = session.connection()
    many = _many(connection.dialect, stmt, table_name, tuple(rows[0]))
    return int(connection.exec_driver_sql(many.sql, many.parameters(rows)).rowcount)


def insert_rows(session: Session, table_name: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows (all with the same keys)."""
    if rows:
        _execute_many(session, _plain_insert(table_name), table_name, rows)


@lru_cache(maxsize=128)
def _plain_insert(table_name: str) -> Insert:
    return insert(table(table_name))


def insert_ignore(
    session: Session, table_name: str, index: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> int:
    """Insert rows; a row whose `index` columns already exist is left as it is. The number of
    rows inserted."""
    if not rows:
        return 0
    stmt = _insert_ignore(dialect_of(session), table_name, tuple(index))
    return _execute_many(session, stmt, table_name, rows)


def upsert(
    session: Session,
    table_name: str,
    index: Sequence[str],
    update: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Insert rows; where the `index` columns exist, overwrite the `update` columns instead.

    On SQLite not as `INSERT ... ON CONFLICT DO UPDATE`, which SQLite journals statement by
    statement (a row's update could fail half-way, on a foreign key): before each row it copies
    every page the transaction had already changed, to a temporary file past four pages. That
    was 240 MB of the 300 MB a 5,000-message import wrote to such files (capture's decisions and
    observations). The rows are inserted where new, and only when some were not are they all
    updated by key.
    """
    if not rows:
        return
    _check_stamps(table_name, tuple(update))
    if missing := [c for c in update if c not in rows[0]]:
        raise ValueError(
            f"{table_name}: upsert rows must carry the columns they overwrite, {missing}"
        )
    if dialect_of(session) == "postgresql":
        stmt = _pg_upsert(table_name, tuple(index), tuple(update))
        _execute_many(session, stmt, table_name, rows)
        return
    if insert_ignore(session, table_name, index, rows) < len(rows):
        statement = _update_by_key(table_name, tuple(index), tuple(update))
        session.connection().execute(
            statement,
            [
                {**{f"key_{k}": row[k] for k in index}, **{f"new_{c}": row[c] for c in update}}
                for row in rows
            ],
        )


@lru_cache(maxsize=64)
def _check_stamps(table_name: str, update: tuple[str, ...]) -> None:
    """Columns stamped on every UPDATE (`onupdate`) must be among those an upsert overwrites:
    SQLite's UPDATE through SQLAlchemy would stamp them, PostgreSQL's ON CONFLICT would not."""
    columns = table(table_name).c
    stamped = [c.key for c in columns if c.onupdate is not None and c.key not in update]
    if stamped:
        raise ValueError(f"{table_name}: an upsert must overwrite {stamped} itself")


@lru_cache(maxsize=64)
def _update_by_key(table_name: str, index: tuple[str, ...], update: tuple[str, ...]) -> Update:
    columns = table(table_name).c
    return (
        update_statement(table(table_name))
        .where(*(columns[k] == bindparam(f"key_{k}") for k in index))
        .values({c: bindparam(f"new_{c}") for c in update})
    )


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
