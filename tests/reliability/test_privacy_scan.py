"""The privacy suite of issue 15, beyond tests/integration/test_privacy.py (which scans the
mapped tables, the stored files and the SQLite file byte for byte): after a GDPR erase, every
table the database really has — FTS5 shadow tables and the terms of contentless FTS5 indexes on
SQLite, generated columns such as `activities.search_doc` (tsvector) on PostgreSQL — holds
neither her address, nor its local part, nor her surname; and mail of hers arriving again as an
mbox, where she is the only outside party or one of several, recreates nothing of her, not even
in the log records capture writes at DEBUG.
"""

from __future__ import annotations

import mailbox
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from server.config import Settings
from server.db import Database
from server.mail_ingest.importer import import_files
from server.models import Activity, ActivityParticipant, Contact, ContactEmail
from tests.integration.test_api_lookup import auth
from tests.integration.test_privacy import (  # noqa: F401 -- `world` is a fixture
    ANNA,
    BOB_HEADER,
    NEEDLES,
    ODILE,
    ODILE_HEADER,
    leftovers,
    odile,
    world,
)
from tests.reliability.dbscan import cells, fts_terms
from tests.reliability.test_security import LogCapture
from tests.support.mail import make_email

# Her address, its local part in a name-like form, her surname.
FORMS = (*NEEDLES, "odile quenneville", "odile_quenneville")


def everywhere(db: Database, forms: tuple[str, ...] = FORMS) -> list[str]:
    found = {
        f"{table}.{column}"
        for table, column, value in cells(db)
        if any(form in value.lower() for form in forms)
    }
    for index, terms in fts_terms(db).items():
        found |= {f"{index} term {t!r}" for t in terms if "quennev" in t or t == ODILE}
    return sorted(found)


def write_mbox(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.mbox(str(path))
    try:
        for raw in messages:
            box.add(raw)
        box.flush()
    finally:
        box.close()
    return path


def test_no_table_index_or_file_names_her_after_the_erase_and_an_mbox_brings_nothing_back(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    world: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    before = everywhere(db)
    assert "contact_emails.address" in before  # the scan does see her
    if db.is_sqlite:
        assert any("term" in place for place in before), before  # and the FTS5 terms
    else:
        assert "activities.search_doc" in before, before  # and the tsvector
    erased = client.post(
        "/api/v1/admin/privacy/erase",
        json={"email": ODILE, "confirm": True},
        headers=auth(world["boss"]),
    )
    assert erased.status_code == 200, erased.get_json()
    assert everywhere(db) == []
    assert leftovers(db, settings) == []
    with db.read_session() as session:
        activities = session.scalar(select(func.count()).select_from(Activity))

    alone = make_email(
        sender=ODILE_HEADER,
        to=ANNA,
        subject="Odile Quenneville again",
        body="Hello, it is Odile Quenneville, odile.quenneville@brightline-dental.co.uk",
        message_id="<odile-again@brightline-dental.co.uk>",
    )
    among = make_email(
        sender=BOB_HEADER,
        to=ANNA,
        cc=[ODILE_HEADER, "Carla Ruiz <carla@kestrelmoor-logistik.de>"],
        # Her name only where capture knows it is hers: her header. (Someone's free text naming
        # her is theirs; after an erase only a keyed hash of her address is left to match.)
        subject="Planning for week 40",
        body="Bob here; copying the dentist.",
        message_id="<bob-again@kestrelmoor-logistik.de>",
    )
    archive = write_mbox(tmp_path / "again.mbox", [alone, among])
    with LogCapture() as logs:
        import_files(db, settings, [archive], owner=ANNA, jobs=1)
    assert odile(db) is None
    with db.read_session() as session:
        assert session.scalar(select(ContactEmail).where(ContactEmail.address == ODILE)) is None
        assert (
            session.scalar(select(ActivityParticipant).where(ActivityParticipant.address == ODILE))
            is None
        )
        # Her own mail is not recorded at all; the one she was copied on is, without her.
        added = session.scalars(select(Activity).where(Activity.id > 0)).all()
        assert len(added) == activities + 1
        carla = session.scalar(
            select(Contact)
            .join(ContactEmail)
            .where(ContactEmail.address == "carla@kestrelmoor-logistik.de")
        )
        assert carla is not None
    remaining = everywhere(db)
    assert remaining == [], remaining
    assert leftovers(db, settings) == []
    written = (logs.json.getvalue() + logs.text.getvalue()).lower()
    assert not [form for form in FORMS if form in written], "capture logged her"
