"""Content stored once by SHA-256 (raw MIME, body text, attachments, quarantined bytes).

Blobs live in the database, so every API and worker process on every machine sees them, backups
hold them, and a blob is written in the same transaction as the rows that point at it (a crash
never leaves a row pointing at nothing). Content is zlib-compressed when that saves space and its
hash is checked on every read.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.crm.sql import insert_ignore
from server.models import Blob, utcnow

MIN_COMPRESS_SIZE = 256


class BlobCorrupted(Exception):
    """Stored content does not match its hash."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_row(data: bytes, sha256: str | None = None) -> dict[str, object]:
    """The row to insert for `data` (compressed when worth it); pure, so it can run in a worker."""
    digest = sha256 or sha256_hex(data)
    if len(data) >= MIN_COMPRESS_SIZE:
        packed = zlib.compress(data, 6)
        if len(packed) < len(data) * 0.9:
            return {"sha256": digest, "size": len(data), "compression": "zlib", "data": packed}
    return {"sha256": digest, "size": len(data), "compression": "none", "data": data}


def unpack_blob_row(row: dict[str, object]) -> bytes:
    data = row["data"]
    assert isinstance(data, bytes)
    return zlib.decompress(data) if row["compression"] == "zlib" else data


def put_blobs(session: Session, rows: Iterable[dict[str, object]]) -> None:
    """Insert blob rows, ignoring ones already stored (same hash, same content)."""
    unique = {str(r["sha256"]): r for r in rows}
    if not unique:
        return
    now = utcnow()
    insert_ignore(
        session, "blobs", ["sha256"], [{**row, "created_at": now} for row in unique.values()]
    )


def put_blob(session: Session, data: bytes) -> str:
    row = blob_row(data)
    put_blobs(session, [row])
    return str(row["sha256"])


def get_blob(session: Session, sha256: str) -> bytes:
    blob = session.scalar(select(Blob).where(Blob.sha256 == sha256))
    if blob is None:
        raise KeyError(sha256)
    data = zlib.decompress(blob.data) if blob.compression == "zlib" else bytes(blob.data)
    if sha256_hex(data) != sha256:
        raise BlobCorrupted(f"blob {sha256} does not match its hash")
    return data
