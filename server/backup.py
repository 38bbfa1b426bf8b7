"""Backup and restore of the whole database.

SQLite uses its online backup API (consistent while Rapport runs); PostgreSQL uses `pg_dump` /
`pg_restore` in the custom format. The file's first bytes tell which kind a backup is, so restoring
a backup into the other backend fails with a clear message instead of half-way.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from server.crm.errors import DomainError
from server.db import Database

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_CUSTOM_MAGIC = b"PGDMP"


def backup(db: Database, target: Path) -> None:
    target = target.expanduser()
    if target.exists():
        raise DomainError(f"{target} exists; choose a new file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    if db.is_sqlite:
        _sqlite_copy(_sqlite_path(db), target)
    else:
        _pg_run("pg_dump", db, ["--format=custom", "--no-owner", f"--file={target}"])


def restore(db: Database, source: Path) -> None:
    source = source.expanduser()
    if not source.is_file():
        raise DomainError(f"cannot read {source}")
    head = _head(source)
    if db.is_sqlite:
        if not head.startswith(SQLITE_MAGIC):
            raise DomainError(f"{source} is not a Rapport SQLite backup")
        db.dispose()
        _sqlite_copy(source, _sqlite_path(db))
    else:
        if not head.startswith(PG_CUSTOM_MAGIC):
            raise DomainError(
                f"{source} is not a Rapport PostgreSQL backup (pg_dump custom format)"
            )
        db.dispose()
        _pg_run(
            "pg_restore",
            db,
            ["--clean", "--if-exists", "--no-owner", "--single-transaction", str(source)],
            target_flag="--dbname",
        )
    db.dispose()


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(16)


def _sqlite_path(db: Database) -> Path:
    database = make_url(db.url).database
    assert database is not None
    return Path(database)


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy even while other connections write."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/" + name), reverse=True)
    if versions:
        return str(versions[0])
    raise DomainError(
        f"{name} not found; install PostgreSQL's client tools (Debian: postgresql-client)"
    )


def _pg_run(tool: str, db: Database, args: list[str], *, target_flag: str | None = None) -> None:
    url = make_url(db.url)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = url.password  # not on the command line, where `ps` would show it
    conninfo = url.set(drivername="postgresql", password=None).render_as_string()
    target = [f"{target_flag}={conninfo}"] if target_flag else [conninfo]
    result = subprocess.run(
        [_pg_tool(tool), *args, *target], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise DomainError(f"{tool} failed: {result.stderr.strip()[:2000]}")
