"""Content stored once by SHA-256 (raw MIME, body text, attachments, quarantined bytes).

Blobs live in the database, so every API and worker process on every machine sees them, backups
hold them, and a blob is written in the same transaction as the rows that point at it (a crash
never leaves a row pointing at nothing). Content is compressed with zstd when that saves space
(a sample is tried first: attachments are mostly compressed formats already, and compressing them
again was a third of the import's CPU) and its hash is checked on every read. Rows written by
earlier versions with zlib still read.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Iterable

import zstandard
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.crm.sql import insert_ignore
from server.models import Blob, utcnow

MIN_COMPRESS_SIZE = 256
SAMPLE_SIZE = 16 * 1024
ZSTD_LEVEL = 3


class BlobCorrupted(Exception):
    """Stored content does not match its hash."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@functools.cache
def _compressor() -> zstandard.ZstdCompressor:
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL)


def _worth_compressing(data: bytes) -> bool:
    if len(data) < MIN_COMPRESS_SIZE:
        return False
    if len(data) <= SAMPLE_SIZE * 2:
        return True
    sample = data[len(data) // 2 : len(data) // 2 + SAMPLE_SIZE]
    return len(_compressor().compress(sample)) < len(sample) * 0.9


def blob_row(data: bytes, sha256: str | None = None) -> dict[str, object]:
    """The row to insert for `data` (compressed when worth it); pure, so it can run in a worker."""
    digest = sha256 or sha256_hex(data)
    if _worth_compressing(data):
        packed = _compressor().compress(data)
        if len(packed) < len(data) * 0.9:
            return {"sha256": digest, "size": len(data), "compression": "zstd", "data": packed}
    return {"sha256": digest, "size": len(data), "compression": "none", "data": data}


def unpack(compression: str, data: bytes) -> bytes:
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompress(data)
    if compression == "zlib":
        return zlib.decompress(data)
    return data


def unpack_blob_row(row: dict[str, object]) -> bytes:
    data = row["data"]
    assert isinstance(data, bytes)
    return unpack(str(row["compression"]), data)


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
    data = unpack(blob.compression, bytes(blob.data))
    if sha256_hex(data) != sha256:
        raise BlobCorrupted(f"blob {sha256} does not match its hash")
    return data
