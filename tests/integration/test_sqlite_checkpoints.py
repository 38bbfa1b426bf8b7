"""A bulk writer on SQLite leaves WAL checkpoints to a thread of its own
(`Database.background_checkpoints`), so its commits do not wait for the disk."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from server import db as db_module
from server.config import Settings
from server.crm.capture import CaptureCounts
from server.db import SQLITE_PAGE_SIZE, SQLITE_WAL_CAP_BYTES, Database, _Checkpointer
from server.mail_ingest import pipeline
from server.mail_ingest.importer import import_files
from server.models import Activity
from tests.support.mail import make_email, write_maildir

ANNA = "anna@northwind-supplies.com"
CLARA = "Clara Jensen <clara@brightline-dental.co.uk>"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_import_checkpoints_beside_its_commits(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "CHECKPOINT_INTERVAL", 0.005)
    monkeypatch.setattr(pipeline, "BATCH_SIZE", 5)
    seen: list[_Checkpointer | None] = []
    original = db.background_checkpoints

    @contextmanager
    def spy() -> Iterator[_Checkpointer | None]:
        with original() as checkpointer:
            seen.append(checkpointer)
            yield checkpointer

    monkeypatch.setattr(db, "background_checkpoints", spy)
    emails = [make_email(sender=CLARA, to=ANNA, subject=f"Order {n}") for n in range(30)]

    def between_batches(_counts: CaptureCounts) -> None:
        time.sleep(0.03)  # the checkpointer's turn, whatever the machine's speed

    result = import_files(
        db,
        settings,
        [write_maildir(tmp_path / "md", emails)],
        owner=ANNA,
        jobs=1,
        on_progress=between_batches,
    )
    assert result.run.counts.captured == 30
    [checkpointer] = seen
    assert checkpointer is not None and not checkpointer.is_alive()
    assert checkpointer.checkpoints >= 2  # six commits, each followed by a pause
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Activity)) == 30
        assert session.execute(text("PRAGMA integrity_check")).scalar() == "ok"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_commits_checkpoint_themselves_only_past_a_large_wal(db: Database) -> None:
    with db.session() as session:
        pages = session.execute(text("PRAGMA wal_autocheckpoint")).scalar()
        page_size = session.execute(text("PRAGMA page_size")).scalar()
    # SQLite's default is 1,000 pages: less than one capture batch.
    assert pages * page_size == SQLITE_WAL_CAP_BYTES > 1000 * page_size


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_new_database_has_large_pages_and_an_existing_one_keeps_its_own(
    db: Database, tmp_path: Path
) -> None:
    with db.session() as session:
        assert session.execute(text("PRAGMA page_size")).scalar() == SQLITE_PAGE_SIZE > 4096
    older = tmp_path / "older.sqlite3"
    with sqlite3.connect(older) as conn:  # made with SQLite's default pages
        conn.execute("CREATE TABLE kept (x)")
    existing = Database(f"sqlite:///{older}")
    try:
        with existing.session() as session:
            assert session.execute(text("PRAGMA page_size")).scalar() == 4096
            assert session.execute(text("PRAGMA wal_autocheckpoint")).scalar() == (
                SQLITE_WAL_CAP_BYTES // 4096
            )
    finally:
        existing.dispose()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgresql_needs_no_checkpointer(db: Database) -> None:
    with db.background_checkpoints() as checkpointer:
        assert checkpointer is None


def test_a_checkpointer_that_cannot_open_the_database_stops_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpointer = _Checkpointer(str(tmp_path / "missing" / "rapport.sqlite3"))
    with caplog.at_level(logging.WARNING, logger="server.db"):
        checkpointer.start()
        checkpointer.join(timeout=5)
    assert not checkpointer.is_alive()
    assert "checkpointer could not open the database" in caplog.text


def test_a_failing_checkpoint_is_logged_and_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "CHECKPOINT_INTERVAL", 0.005)
    garbage = tmp_path / "not-a-database.sqlite3"
    garbage.write_bytes(b"this is not an SQLite file" * 200)
    checkpointer = _Checkpointer(str(garbage))
    with caplog.at_level(logging.WARNING, logger="server.db"):
        checkpointer.start()
        time.sleep(0.1)
        assert checkpointer.is_alive()  # a failure ends one pass, not the thread
        checkpointer.stop()
    failures = [r for r in caplog.records if r.getMessage() == "background checkpoint failed"]
    assert len(failures) >= 2 and checkpointer.checkpoints == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_bulk_writer_gets_a_larger_page_cache_while_it_writes(db: Database) -> None:
    def cache_kib() -> int:
        with db.session() as session:
            return -int(session.execute(text("PRAGMA cache_size")).scalar_one())

    assert cache_kib() == db_module.SQLITE_CACHE_KIB
    with db.background_checkpoints():
        assert cache_kib() == db_module.SQLITE_BULK_CACHE_KIB
        with db.background_checkpoints():  # a second writer in the same process
            assert cache_kib() == db_module.SQLITE_BULK_CACHE_KIB
        assert cache_kib() == db_module.SQLITE_BULK_CACHE_KIB
    assert cache_kib() == db_module.SQLITE_CACHE_KIB
