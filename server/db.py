"""The database: engine set-up per backend, the unit of work, and the migrations entry point.

SQLite is the embedded default (WAL, foreign keys on, a busy timeout, and writer transactions that
take the write lock up front so two writers queue instead of failing); PostgreSQL through psycopg 3
is the scale path. Migrations live in the top-level `migrations` package (Alembic).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from migrations import HEAD

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

# `migrations` is installed beside `server` (editable or wheel alike).
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# pysqlite keeps this many prepared statements per connection, each with its last bound values.
# Capture writes many distinct texts (multi-row INSERTs and IN lists of each length): with the
# default of 128 the cache alone grew the importer by ~12 MB over 10,000 messages; 16 keeps a
# request's or a batch's statements and did not change the import's speed.
SQLITE_STATEMENT_CACHE = 16
LONG_TRANSACTION_SECONDS = 5.0
# A new SQLite database gets pages of this size (an existing one keeps its own). Capture stores
# every message's compressed bytes; at the default 4 KB a 30 KB blob is a chain of eight overflow
# pages. Inserting a 5,000-message import's blobs took 0.78-1.05 s at 4 KB pages and 0.53-0.55 s
# at 16 KB; the whole import, eight interleaved pairs, 5% less time.
SQLITE_PAGE_SIZE = 16_384
# SQLite copies the WAL into the database file (and syncs it) inside the commit that takes the
# WAL past `wal_autocheckpoint` pages; its default, 1000 pages (4 MB at 4 KB pages), is less than
# one capture batch, so every batch's commit waited for a checkpoint: 1.6 s of a 5,000-message
# import's main process, 70% of it waiting for the disk. A bulk writer runs
# `background_checkpoints()`; this bound only caps the WAL where no checkpointer runs or it falls
# behind.
SQLITE_WAL_CAP_BYTES = 64 * 1024 * 1024
CHECKPOINT_INTERVAL = 0.1  # seconds between a checkpointer's passes
# SQLite's page cache per connection: its default (2 MB, 125 of our pages) for most, 16 MB for a
# bulk writer's. A capture batch touches more index pages than 2 MB holds, and dropped pages are
# read back, parsed and written again the next batch: with 16 MB a 5,000-message import's main
# process spent 4.8% less CPU and the import 3.2% less time (20 pairs, less in 14). It costs the
# importer ~9 MB at 5,000 messages.
SQLITE_CACHE_KIB = 2_000
SQLITE_BULK_CACHE_KIB = 16_384


class _BulkWriters:
    """How many bulk writers (`Database.background_checkpoints`) an engine has at the moment:
    while there are any, its connections get the bulk writer's page cache."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._lock:
            self.count += 1
        try:
            yield
        finally:
            with self._lock:
                self.count -= 1


def make_engine(url: str, bulk: _BulkWriters | None = None, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                "cached_statements": SQLITE_STATEMENT_CACHE,
            },
            **kwargs,
        )
        _configure_sqlite(engine, bulk or _BulkWriters())
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine, bulk: _BulkWriters) -> None:
    """Let SQLAlchemy, not pysqlite, decide when transactions begin (the documented recipe), and
    size each connection's page cache for its writer as each transaction begins."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")  # before WAL: it fixes the size
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        (page_size,) = cur.execute("PRAGMA page_size").fetchone()
        cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_CAP_BYTES // page_size}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        cache_kib = SQLITE_BULK_CACHE_KIB if bulk.count else SQLITE_CACHE_KIB
        info = conn.connection.info
        if info.get("cache_kib", SQLITE_CACHE_KIB) != cache_kib:
            conn.exec_driver_sql(f"PRAGMA cache_size=-{cache_kib}")
            info["cache_kib"] = cache_kib
        conn.exec_driver_sql(f"BEGIN {mode}")


class _Pin:
    """The autocommit connection of one scope (a request), checked out when first asked for."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._connection: Connection | None = None

    def connection(self) -> Connection:
        if self._connection is None:
            self._connection = self.db._autocommit_engine.connect()
        return self._connection

    def release(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class _Checkpointer(threading.Thread):
    """Checkpoints an SQLite database's WAL beside its writer, on a connection of its own.

    PASSIVE checkpoints never wait for the writer nor block it, and pysqlite releases the GIL
    while SQLite copies and syncs, so the writer's process goes on meanwhile."""

    def __init__(self, path: str) -> None:
        super().__init__(name="sqlite-checkpointer", daemon=True)
        self.path = path
        self.checkpoints = 0  # passes that copied frames into the database file
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            connection = sqlite3.connect(
                self.path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
        except sqlite3.Error:
            log.warning("checkpointer could not open the database", exc_info=True)
            return  # the writer's own commits checkpoint, at the bound above
        try:
            while not self._stopping.wait(CHECKPOINT_INTERVAL):
                self._checkpoint(connection)
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            _busy, _frames, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            log.warning("background checkpoint failed", exc_info=True)
            return
        if copied > 0:
            self.checkpoints += 1

    def stop(self) -> None:
        self._stopping.set()
        self.join()


_pin: ContextVar[_Pin | None] = ContextVar("rapport_pinned_reads", default=None)


class Database:
    """An engine plus its session factory; `session()` is the unit of work."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self._bulk = _BulkWriters()
        self.engine = make_engine(url, self._bulk, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_engine = self.engine.execution_options(sqlite_begin="DEFERRED")
        self._read_sessions = sessionmaker(self._read_engine, expire_on_commit=False)
        self._autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction that commits everything it did, or nothing (on any exception)."""
        with self._unit_of_work(self._sessions) as session:
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """Like `session()`, but on SQLite it does not take the write lock up front."""
        with self._unit_of_work(self._read_sessions) as session:
            yield session

    @contextmanager
    def reads(self) -> Iterator[Session]:
        """A session for a request's few reads that must not write, without BEGIN and COMMIT.

        On PostgreSQL each statement runs in its own implicit transaction (autocommit): under
        READ COMMITTED every statement of a transaction takes its own snapshot anyway, so only two
        round trips change, not what is read. Not for writes (each would commit on its own) nor
        for streamed results (`yield_per` needs a transaction for its server-side cursor). On
        SQLite, where BEGIN costs no round trip, it is `read_session()`.
        """
        if self.is_sqlite:
            with self.read_session() as session:
                yield session
            return
        with (
            self.connection() as connection,
            self._unit_of_work(partial(Session, connection, expire_on_commit=False)) as session,
        ):
            yield session

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for statements that each stand alone, with no transaction around them.

        On PostgreSQL: autocommitted, and the scope's pinned one (see `pin()`) when there is
        one, else one from the pool for this block. On SQLite, where BEGIN costs no round trip
        and autocommit would undo the engine's transaction handling, a short transaction that
        does not take the write lock up front.
        """
        if self.is_sqlite:
            with self._read_engine.begin() as connection:
                yield connection
            return
        pinned = _pin.get()
        mine = pinned is None or pinned.db is not self
        connection = (
            pinned.connection() if pinned and not mine else self._autocommit_engine.connect()
        )
        try:
            yield connection
        except BaseException:
            connection.rollback()  # SQLAlchemy's bookkeeping: nothing is open on the server
            raise
        else:
            connection.commit()
        finally:
            if mine:
                connection.close()

    def pin(self) -> Token[_Pin | None]:
        """Share one autocommit connection among the `reads()` and `connection()` blocks of the
        current context (a request: sign-in, rate limit, the view's reads) until `unpin()`:
        one pool checkout and one liveness ping (`pool_pre_ping`) where each block paid its
        own, two round trips on PostgreSQL."""
        return _pin.set(_Pin(self))

    @staticmethod
    def unpin(token: Token[_Pin | None]) -> None:
        pinned = token.var.get()
        try:
            token.var.reset(token)
        except ValueError:  # ended in another context (a streamed response's last chunk)
            token.var.set(None)
        if pinned is not None:
            pinned.release()

    @staticmethod
    @contextmanager
    def _unit_of_work(factory: Callable[[], Session]) -> Iterator[Session]:
        started = time.monotonic()
        session = factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
            elapsed = time.monotonic() - started
            if elapsed > LONG_TRANSACTION_SECONDS:
                log.warning("long transaction", extra={"seconds": round(elapsed, 1)})

    @contextmanager
    def background_checkpoints(self) -> Iterator[_Checkpointer | None]:
        """For a bulk writer (an import, a mailbox sync): on SQLite, a thread checkpoints the WAL
        while the caller writes, instead of the caller's commits, and the transactions begun
        meanwhile get the bulk writer's page cache. Nothing on PostgreSQL."""
        path = self.engine.url.database
        if not self.is_sqlite or not path or path == ":memory:":
            yield None
            return
        checkpointer = _Checkpointer(path)
        checkpointer.start()
        try:
            with self._bulk.writing():
                yield checkpointer
        finally:
            checkpointer.stop()

    def dispose(self) -> None:
        self.engine.dispose()

    # -- migrations -------------------------------------------------------------------------

    def alembic_config(self) -> Config:
        from alembic.config import Config  # only to migrate: see `migrations.HEAD`

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["engine"] = self.engine
        return config

    def upgrade(self, revision: str = "head") -> None:
        from alembic import command

        command.upgrade(self.alembic_config(), revision)

    def downgrade(self, revision: str) -> None:
        from alembic import command

        command.downgrade(self.alembic_config(), revision)

    @staticmethod
    def head_revision() -> str:
        return HEAD

    def current_revision(self) -> str | None:
        """The revision the database is at (Alembic's `alembic_version`), None before any."""
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
