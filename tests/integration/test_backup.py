"""`rapport backup` / `rapport restore` give back every row of every table."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from server.db import Database
from server.models import (
    Activity,
    ActivityParticipant,
    Base,
    Blob,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    Deal,
    Pipeline,
    Stage,
    User,
)
from tests.conftest import Cli


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with db.session() as session:
        for table in Base.metadata.sorted_tables:
            rows = session.execute(select(table)).all()
            tables[table.name] = sorted((tuple(r) for r in rows), key=repr)
        tables["alembic_version"] = [
            tuple(r) for r in session.execute(text("SELECT * FROM alembic_version"))
        ]
    return tables


def populate(db: Database) -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    with db.session() as session:
        user = User(email="anna@northwind-supplies.com", role="admin", name="Anna Ström")
        company = Company(name="Brightline Dental", custom_fields={"tier": "gold", "seats": 12})
        company.domains.append(CompanyDomain(domain="brightline-dental.co.uk"))
        contact = Contact(name="Øyvind Ås", company=company, last_contacted_at=when)
        contact.emails.append(
            ContactEmail(address="oyvind@brightline-dental.co.uk", is_primary=True)
        )
        pipeline = Pipeline(name="Sales", is_default=True)
        stage = Stage(name="Proposal", position=1, probability=50)
        pipeline.stages.append(stage)
        session.add_all([user, company, contact, pipeline])
        session.flush()
        session.add(
            Deal(
                title="Chairs",
                amount=Decimal("1234.50"),
                pipeline_id=pipeline.id,
                stage_id=stage.id,
            )
        )
        session.add(Blob(sha256="ab" * 32, size=4, data=b"\x00\xff\x10\n"))
        session.flush()  # blobs have no ORM relationship, so make the FK target exist first
        activity = Activity(
            kind="email",
            identity="mid:x@y|a",
            occurred_at=when,
            subject="Ünïcode ✓",
            raw_blob="ab" * 32,
        )
        activity.participants.append(
            ActivityParticipant(
                role="from", address="oyvind@brightline-dental.co.uk", occurred_at=when
            )
        )
        session.add(activity)


def test_backup_then_restore_gives_back_every_table(cli: Cli, db: Database, tmp_path: Path) -> None:
    populate(db)
    before = snapshot(db)
    backup_file = tmp_path / "rapport.backup"
    result = cli("backup", str(backup_file))
    assert result.exit_code == 0, result.output
    assert backup_file.stat().st_size > 0

    with db.session() as session:  # damage: what a restore must undo
        session.execute(text("DELETE FROM activity_participants"))
        session.execute(text("UPDATE contacts SET name = 'changed'"))
        session.add(User(email="intruder@example.com"))
    assert snapshot(db) != before

    result = cli("restore", str(backup_file), "--yes")
    assert result.exit_code == 0, result.output
    db.dispose()
    assert snapshot(db) == before


def test_backup_refuses_to_overwrite(cli: Cli, tmp_path: Path) -> None:
    existing = tmp_path / "exists.backup"
    existing.write_text("keep me")
    result = cli("backup", str(existing))
    assert result.exit_code == 1
    assert "exists" in result.output
    assert existing.read_text() == "keep me"


def test_restore_refuses_a_file_that_is_not_a_backup(cli: Cli, tmp_path: Path) -> None:
    junk = tmp_path / "junk.backup"
    junk.write_bytes(b"hello, not a backup at all")
    result = cli("restore", str(junk), "--yes")
    assert result.exit_code == 1
    assert "is not a Rapport" in result.output
