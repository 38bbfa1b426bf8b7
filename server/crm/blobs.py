"""Content stored once by SHA-256 (raw MIME, body text, attachments, quarantined bytes).

Blobs live in the database, so every API and worker process on every machine sees them, backups
hold them, and a blob is written in the same transaction as the rows that point at it (a crash
never leaves a row pointing at nothing). Content is compressed with zstd when that saves space
(a sample is tried first: attachments are mostly compressed formats already, and compressing them
again was a third of the import's CPU) and its hash is checked on every read. Rows written by
earlier versions with zlib still read. A raw message is stored without the attachments it
carries (`server.crm.blob_parts`): its row names them in `blob_parts`, and reading it rebuilds
the exact bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.crm import blob_parts
from server.crm.blob_rows import blob_row, sha256_hex, unpack
from server.crm.sql import insert_ignore
from server.models import Blob, utcnow

BLOB_COLUMNS = ("sha256", "size", "compression", "data")


class BlobCorrupted(Exception):
    """Stored content does not match its hash."""


def put_blobs(session: Session, rows: Iterable[dict[str, object]]) -> None:
    """Insert blob rows, ignoring ones already stored (same hash, same content); a raw
    message's parts are inserted with it, and linked to it so that they outlive their
    attachments while it needs them."""
    unique: dict[str, dict[str, object]] = {}
    links: list[dict[str, object]] = []
    for row in rows:
        parts = row.get("parts")
        for part in parts if isinstance(parts, list) else ():
            unique.setdefault(str(part["sha256"]), part)
            links.append({"blob_sha256": row["sha256"], "part_sha256": part["sha256"]})
        unique.setdefault(str(row["sha256"]), row)
    if not unique:
        return
    now = utcnow()
    stored = [{c: row[c] for c in BLOB_COLUMNS} | {"created_at": now} for row in unique.values()]
    insert_ignore(session, "blobs", ["sha256"], stored)
    insert_ignore(session, "blob_parts", ["blob_sha256", "part_sha256"], links)


def put_blob(session: Session, data: bytes) -> str:
    row = blob_row(data)
    put_blobs(session, [row])
    return str(row["sha256"])


def get_blob(session: Session, sha256: str) -> bytes:
    blob = session.scalar(select(Blob).where(Blob.sha256 == sha256))
    if blob is None:
        raise KeyError(sha256)
    data = unpack(blob.compression, bytes(blob.data))
    if blob.compression.startswith("parts"):
        skeleton, cuts = blob_parts.unpack(data)
        data = blob_parts.join(skeleton, cuts, lambda part: get_blob(session, part))
    if sha256_hex(data) != sha256:
        raise BlobCorrupted(f"blob {sha256} does not match its hash")
    return data
