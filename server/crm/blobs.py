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

import functools
import hashlib
import zlib
from collections.abc import Iterable, Mapping, Sequence

import zstandard
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.crm import blob_parts
from server.crm.sql import insert_ignore
from server.models import Blob, utcnow

BLOB_COLUMNS = ("sha256", "size", "compression", "data")

MIN_COMPRESS_SIZE = 256
SAMPLE_SIZE = 16 * 1024
# Level 1, not the default 3: on the benchmark corpus it stores 0.3% more (59.4 against 59.2 MB)
# and the parse workers spend 5-8% less CPU per message.
ZSTD_LEVEL = 1


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


def raw_blob_row(
    raw: bytes, spans: Sequence[blob_parts.Span], part_rows: Mapping[str, dict[str, object]]
) -> dict[str, object]:
    """The row for a raw message whose attachments (`spans`, their rows in `part_rows` by hash)
    are stored as blobs of their own: skeleton and manifest, with the rows of the parts it needs
    under "parts", so that they are written with it. A plain row when nothing was cut out."""
    skeleton, cuts = blob_parts.split(raw, spans)
    if not cuts:
        return blob_row(raw)
    data = blob_parts.pack(skeleton, cuts)
    compression = "parts"
    if _worth_compressing(data):
        packed = _compressor().compress(data)
        if len(packed) < len(data) * 0.9:
            data, compression = packed, "parts+zstd"
    return {
        "sha256": sha256_hex(raw),
        "size": len(raw),
        "compression": compression,
        "data": data,
        "parts": list({c.sha256: part_rows[c.sha256] for c in cuts}.values()),
    }


def unpack(compression: str, data: bytes) -> bytes:
    """The stored bytes, decompressed (for a raw message kept in parts: manifest and skeleton,
    which `get_blob` turns back into the message)."""
    if compression in ("zstd", "parts+zstd"):
        return zstandard.ZstdDecompressor().decompress(data)
    if compression == "zlib":
        return zlib.decompress(data)
    return data


def unpack_blob_row(row: dict[str, object]) -> bytes:
    """The content of a row not yet stored (a parts row carries its parts)."""
    data = row["data"]
    assert isinstance(data, bytes)
    compression = str(row["compression"])
    stored = unpack(compression, data)
    if not compression.startswith("parts"):
        return stored
    parts = row["parts"]
    assert isinstance(parts, list)
    contents = {str(p["sha256"]): unpack_blob_row(p) for p in parts}
    skeleton, cuts = blob_parts.unpack(stored)
    return blob_parts.join(skeleton, cuts, contents.__getitem__)


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
