"""Raw MIME stored without its attachments, on both databases: every read gives the original
bytes, the parts live as long as a message needs them, and a downgrade makes them whole again."""

from __future__ import annotations

import io
import json
import zipfile
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import delete, func, select, update

from server.config import Settings
from server.crm.activities import collect_orphan_blobs, remove_content
from server.crm.blob_rows import sha256_hex
from server.crm.blobs import get_blob
from server.crm.privacy import export_person
from server.db import Database
from server.mail_ingest.importer import import_files
from server.models import Activity, Attachment, Blob, BlobPart
from tests.support.mail import write_maildir

ANNA = "anna@northwind-supplies.com"
CLARA = "clara@brightline-dental.co.uk"
DRAWING = bytes(range(256)) * 200  # 51 KB
PHOTO = bytes(reversed(range(256))) * 120


def email_with_attachments(linesep: str = "\r\n", n: int = 1) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"] = f"Clara Jensen <{CLARA}>", ANNA
    msg["Subject"], msg["Message-ID"] = "Drawings", f"<drawings-{n}@brightline-dental.co.uk>"
    msg["Date"] = "Tue, 01 Sep 2026 09:00:00 +0000"
    msg.set_content("Both attached, and the drawing once more by mistake.")
    msg.add_attachment(DRAWING, maintype="application", subtype="pdf", filename="plan.pdf")
    msg.add_attachment(PHOTO, maintype="image", subtype="jpeg", filename="site.jpg")
    msg.add_attachment(DRAWING, maintype="application", subtype="pdf", filename="plan (1).pdf")
    return msg.as_bytes(policy=msg.policy.clone(linesep=linesep))


def captured(db: Database, settings: Settings, path: Path) -> None:
    result = import_files(db, settings, [path], owner=ANNA, jobs=1, capture_level="full")
    assert result.run.counts.quarantined == {}


def raw_row(db: Database, raw: bytes) -> tuple[str, int, int]:
    with db.session() as session:
        blob = session.scalars(select(Blob).where(Blob.sha256 == sha256_hex(raw))).one()
        return blob.compression, blob.size, len(blob.data)


def test_the_raw_message_is_stored_without_its_attachments_and_read_back_exactly(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    crlf, lf = email_with_attachments("\r\n", 1), email_with_attachments("\n", 2)
    captured(db, settings, write_maildir(tmp_path / "mail", [crlf, lf]))

    for raw in (crlf, lf):
        compression, size, stored = raw_row(db, raw)
        assert compression.startswith("parts") and size == len(raw)
        assert stored < len(raw) // 20, "the attachments are not stored a second time"
    with db.session() as session:
        rows = session.scalars(select(Activity.raw_blob).where(Activity.raw_blob.is_not(None)))
        assert sorted(get_blob(session, sha) for sha in rows) == sorted([crlf, lf])
        # each attachment once, by its decoded content: two emails, three attachments each
        attachment_blobs = {sha256_hex(DRAWING), sha256_hex(PHOTO)}
        assert set(session.scalars(select(Attachment.blob_sha256))) == attachment_blobs
        links = session.execute(select(BlobPart.blob_sha256, BlobPart.part_sha256)).all()
        assert sorted(links) == sorted(
            (sha256_hex(raw), part) for raw in (crlf, lf) for part in attachment_blobs
        )
        # the person's export hands out the original message, byte for byte
        archive = zipfile.ZipFile(io.BytesIO(export_person(session, CLARA)))
        document = json.loads(archive.read("person.json"))
        files = [archive.read(e["file"]) for e in document["emails"]]
        assert all(e["file_is_original"] for e in document["emails"])
    assert sorted(files) == sorted([crlf, lf])


def test_parts_outlive_their_attachment_rows_while_a_message_needs_them(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    raw = email_with_attachments()
    captured(db, settings, write_maildir(tmp_path / "mail", [raw]))
    with db.session() as session:
        session.execute(delete(Attachment))  # nothing but the raw message points at them now
        assert collect_orphan_blobs(session) == 0
    with db.session() as session:
        assert get_blob(session, sha256_hex(raw)) == raw

    with db.session() as session:
        session.execute(update(Activity).values(raw_blob=None))
        # the message, then (in the second round) its two parts; the body text stays
        assert collect_orphan_blobs(session) == 3
        assert session.scalar(select(func.count()).select_from(BlobPart)) == 0
        assert session.scalar(select(func.count()).select_from(Blob)) == 1


def test_removed_content_takes_the_message_and_its_parts_with_it(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    captured(db, settings, write_maildir(tmp_path / "mail", [email_with_attachments()]))
    with db.session() as session:
        activity_id = session.scalars(select(Activity.id)).one()
        remove_content(session, [activity_id], "rule: blocked domain")
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Blob)) == 0
        assert session.scalar(select(func.count()).select_from(BlobPart)) == 0


def test_a_downgrade_stores_the_messages_whole_again(
    empty_database_url: str, settings: Settings, tmp_path: Path
) -> None:
    db = Database(empty_database_url)
    db.upgrade()
    raw = email_with_attachments()
    captured(db, settings, write_maildir(tmp_path / "mail", [raw]))
    assert raw_row(db, raw)[0].startswith("parts")

    db.downgrade("0010")
    compression, size, _ = raw_row(db, raw)
    assert compression in ("none", "zstd") and size == len(raw)
    with db.session() as session:
        assert get_blob(session, sha256_hex(raw)) == raw
    db.upgrade()
    with db.session() as session:
        assert get_blob(session, sha256_hex(raw)) == raw
    db.dispose()
