"""GDPR on both databases: a person exported (zip: JSON, .eml, .ics) and erased with nothing left
behind — not in any table, search index, stored file, or (on SQLite) the database file itself —
and never recorded again by capture, while the other people's mail stays."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from icalendar import Calendar
from sqlalchemy import select, text

from server.config import Settings
from server.crm.blob_rows import unpack
from server.crm.blobs import get_blob
from server.crm.privacy import ERASED, Scrubber
from server.crm.trace import trace_message
from server.db import Database
from server.mail_ingest.importer import import_files
from server.models import (
    Activity,
    ActivityParticipant,
    Attachment,
    AuditEvent,
    Base,
    CaptureRule,
    Contact,
    ContactEmail,
    Job,
    QuarantinedItem,
    Suppression,
    Webhook,
    WebhookDelivery,
)
from tests.conftest import Cli
from tests.integration.test_api_lookup import auth, token_for
from tests.support.calendar import LONDON, calendar_email, ics
from tests.support.mail import BASE_DATE, make_email, write_maildir

ANNA = "anna@northwind-supplies.com"
BOSS = "boss@northwind-supplies.com"
ODILE = "odile.quenneville@brightline-dental.co.uk"
ODILE_HEADER = f"Odile Quenneville <{ODILE}>"
BOB = "bob.marsh@kestrelmoor-logistik.de"
BOB_HEADER = f"Bob Marsh <{BOB}>"
# What must be found nowhere after the erasure: her address (and its local part, which is her
# name) and her surname (her full name, wherever it was written).
NEEDLES = ("odile.quenneville", "quenneville")
UID_ALONE = "meeting-with-odile-alone@northwind-supplies.com"
UID_SHARED = "meeting-with-odile-and-bob@northwind-supplies.com"


def with_attachment(raw: bytes, filename: str, content: str) -> bytes:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    msg.add_attachment(content.encode(), maintype="text", subtype="plain", filename=filename)
    return msg.as_bytes()


def mail() -> dict[str, bytes]:
    """Anna's mailbox: Odile alone, a thread Bob joins, Bob alone in it, two invites."""
    day = timedelta(days=1)
    alone = with_attachment(
        make_email(
            sender=ODILE_HEADER,
            to=ANNA,
            subject="Quote for Odile Quenneville's practice",
            body="Hello Anna,\n\nCould you quote 40 chairs?\n\nOdile Quenneville\n+44 20 7946 0000",
            message_id="<odile-1@brightline-dental.co.uk>",
        ),
        "floor-plan.txt",
        "Floor plan of the practice of Odile Quenneville",
    )
    shared = make_email(
        sender=f"Anna Berg <{ANNA}>",
        to=ODILE_HEADER,
        cc=[BOB_HEADER],
        subject="Re: Quote for Odile Quenneville's practice",
        body=f"Dear Odile, Bob delivers.\n\nOn Monday Odile Quenneville <{ODILE}> wrote:\n> chairs",
        message_id="<anna-2@northwind-supplies.com>",
        in_reply_to="<odile-1@brightline-dental.co.uk>",
        date=BASE_DATE + day,
    )
    bob_reply = with_attachment(
        make_email(
            sender=BOB_HEADER,
            to=ANNA,
            cc=[ODILE_HEADER],
            subject="Re: Quote for Odile Quenneville's practice",
            body="Delivery is possible in week 40.\n\nBob",
            message_id="<bob-3@kestrelmoor-logistik.de>",
            in_reply_to="<anna-2@northwind-supplies.com>",
            date=BASE_DATE + 2 * day,
        ),
        "addresses.txt",
        f"Deliver to the practice; ask for {ODILE}",
    )
    bob_only = with_attachment(
        make_email(
            sender=BOB_HEADER,
            to=ANNA,
            subject="Delivery dates",
            body="Our trucks are free on Tuesdays.\n\nBob",
            message_id="<bob-4@kestrelmoor-logistik.de>",
            in_reply_to="<bob-3@kestrelmoor-logistik.de>",
            date=BASE_DATE + 3 * day,
        ),
        "prices.txt",
        "Chairs: 40 x 120 EUR",
    )
    start = BASE_DATE.astimezone(LONDON) + 10 * day
    organizer = ("Anna Berg", ANNA)
    invite_alone = ics(
        "REQUEST",
        uid=UID_ALONE,
        organizer=organizer,
        attendees={ODILE: ("Odile Quenneville", "NEEDS-ACTION")},
        stamp=BASE_DATE,
        start=start,
        summary="Fitting at Odile Quenneville's practice",
        location="Brightline Dental, 1 High Street",
        description="Bring the samples for Odile Quenneville",
    )
    invite_shared = ics(
        "REQUEST",
        uid=UID_SHARED,
        organizer=organizer,
        attendees={
            ODILE: ("Odile Quenneville", "ACCEPTED"),
            BOB: ("Bob Marsh", "NEEDS-ACTION"),
        },
        stamp=BASE_DATE,
        start=start + day,
        summary="Delivery planning",
        location="Teams",
    )
    return {
        "alone": alone,
        "shared": shared,
        "bob_reply": bob_reply,
        "bob_only": bob_only,
        "invite_alone": calendar_email(
            invite_alone, sender=f"Anna Berg <{ANNA}>", to=[ODILE], subject="Fitting", date=start
        ),
        "invite_shared": calendar_email(
            invite_shared,
            sender=f"Anna Berg <{ANNA}>",
            to=[ODILE, BOB],
            subject="Delivery planning",
            date=start,
        ),
    }


def capture(db: Database, settings: Settings, root: Path, emails: dict[str, bytes]) -> None:
    box = write_maildir(root, list(emails.values()))
    import_files(db, settings, [box], owner=ANNA, jobs=1)


def odile(db: Database) -> Contact | None:
    with db.session() as session:
        return session.scalar(
            select(Contact).join(ContactEmail).where(ContactEmail.address == ODILE)
        )


def make_key(raw: bytes) -> str:
    return str(message_from_bytes(raw)["Message-ID"])


def call(client: FlaskClient, token: str, method: str, url: str, body: Any = None) -> Any:
    response = client.open(url, method=method, json=body, headers=auth(token))
    assert response.status_code < 300, response.get_json()
    return response.get_json()


@pytest.fixture
def world(client: FlaskClient, db: Database, settings: Settings, tmp_path: Path) -> dict[str, Any]:
    """Anna's mail captured; Odile's contact with a note, a follow-up, a deal and a tag."""
    emails = mail()
    capture(db, settings, tmp_path / "first", emails)
    boss = token_for(db, BOSS, "admin")
    member = token_for(db, "member@northwind-supplies.com")
    contact = odile(db)
    assert contact is not None
    base = "/api/v1"
    call(
        client,
        boss,
        "POST",
        f"{base}/notes",
        {"body": "Odile Quenneville wants blue chairs", "contact_id": contact.id},
    )
    due = (BASE_DATE + timedelta(days=30)).isoformat()
    call(
        client,
        boss,
        "POST",
        f"{base}/followups",
        {"title": "Call Odile Quenneville", "due_at": due, "contact_id": contact.id},
    )
    deal = call(
        client, boss, "POST", f"{base}/deals", {"title": "40 chairs", "contact_ids": [contact.id]}
    )
    version = call(client, boss, "GET", f"{base}/contacts/{contact.id}")["version"]
    call(
        client,
        boss,
        "PATCH",
        f"{base}/contacts/{contact.id}",
        {"version": version, "tags": ["dentist"], "title": "Owner"},
    )
    return {
        "emails": emails,
        "boss": boss,
        "member": member,
        "contact_id": contact.id,
        "deal_id": deal["id"],
    }


# -- finding her anywhere ----------------------------------------------------------------------------


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("latin-1")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def leftovers(db: Database, settings: Settings) -> list[str]:
    """Every place that still names her: table.column (blobs decompressed), search index, file."""
    found: list[str] = []
    with db.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(select(table)).mappings():
                values = dict(row)
                if table.name == "blobs":
                    values["data"] = unpack(values["compression"], bytes(values["data"]))
                if table.name == "jobs" and "raw" in (values["payload"] or {}):
                    values["payload"] = base64.b64decode(values["payload"]["raw"])  # a drop job
                for column, value in values.items():
                    if any(n in _text(value).lower() for n in NEEDLES):
                        found.append(f"{table.name}.{column}")
        if db.is_sqlite:
            for fts in ("search_fts", "search_activities_fts"):
                hits = connection.execute(
                    text(f"SELECT rowid FROM {fts} WHERE {fts} MATCH 'quenneville'")  # noqa: S608
                ).all()
                if hits:
                    found.append(f"{fts} (search index)")
    files = [p for p in settings.data_dir.rglob("*") if p.is_file()]
    if db.is_sqlite:  # the database file and its write-ahead log, byte for byte
        path = Path(db.engine.url.database or "")
        files += [p for p in (path, path.with_name(path.name + "-wal")) if p.exists()]
    for path in files:
        data = path.read_bytes().lower()
        if any(n.encode() in data for n in NEEDLES):
            found.append(str(path))
    return sorted(set(found))


# -- export ----------------------------------------------------------------------------------------


def test_export_holds_the_person_their_mail_as_eml_and_meetings_as_ics(
    client: FlaskClient, db: Database, world: dict[str, Any], cli: Cli, tmp_path: Path
) -> None:
    response = client.get(
        f"/api/v1/admin/privacy/export?email={ODILE.upper()}", headers=auth(world["boss"])
    )
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/zip"
    assert "attachment" in response.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    response.close()  # the zip is sent from a temporary file, closed with the answer
    person = json.loads(archive.read("person.json"))
    assert person["contact"]["name"] == "Odile Quenneville"
    assert person["contact"]["tags"] == ["dentist"]
    assert [e["address"] for e in person["contact"]["emails"]] == [ODILE]
    assert person["company"]["name"] == "Brightline Dental"
    assert [d["title"] for d in person["deals"]] == ["40 chairs"]
    assert [f["title"] for f in person["follow_ups"]] == ["Call Odile Quenneville"]
    assert [n["body_text"] for n in person["notes"]] == ["Odile Quenneville wants blue chairs"]
    assert len(person["emails"]) == 5  # her email, the two replies she was on, two invites
    assert len(person["meetings"]) == 2
    # Every email file is the captured message byte for byte.
    originals = {make_key(raw): raw for raw in world["emails"].values()}
    for entry in person["emails"]:
        assert entry["file_is_original"] is True
        data = archive.read(entry["file"])
        assert data == originals[make_key(data)]
        assert message_from_bytes(data)["Message-ID"]
    first = next(e for e in person["emails"] if e["subject"].startswith("Quote"))
    assert first["attachments"][0]["filename"] == "floor-plan.txt"
    assert "Could you quote 40 chairs?" in first["body_text"]
    # Every meeting file is iCalendar naming her, with the state Rapport holds.
    uids = set()
    for entry in person["meetings"]:
        event = Calendar.from_ical(archive.read(entry["file"])).walk("VEVENT")[0]
        uids.add(str(event["UID"]))
        attendees = event.get("ATTENDEE")
        attendees = attendees if isinstance(attendees, list) else [attendees]
        assert f"mailto:{ODILE}" in [str(a) for a in attendees]
    assert uids == {UID_ALONE, UID_SHARED}
    shared = next(m for m in person["meetings"] if m["meeting"]["uid"] == UID_SHARED)
    responses = {a["address"]: a["response"] for a in shared["meeting"]["attendees"]}
    assert responses == {ODILE: "accepted", BOB: "needs_action"}

    # The command line writes the same archive; both exports are in the audit log, by id only.
    out = tmp_path / "odile.zip"
    result = cli("contact", "export", ODILE, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert set(zipfile.ZipFile(out).namelist()) == set(archive.namelist())
    with db.session() as session:
        events = list(
            session.scalars(select(AuditEvent).where(AuditEvent.action == "contact.exported"))
        )
    assert [e.entity_id for e in events] == [world["contact_id"]] * 2
    assert all("odile" not in json.dumps(e.details) for e in events)


def test_export_of_an_unknown_address_is_a_404_and_members_may_not(
    client: FlaskClient, world: dict[str, Any], cli: Cli, tmp_path: Path
) -> None:
    unknown = client.get(
        "/api/v1/admin/privacy/export?email=nobody@example.org", headers=auth(world["boss"])
    )
    assert unknown.status_code == 404
    assert unknown.get_json()["error"]["code"] == "not_found"
    bad = client.get(
        "/api/v1/admin/privacy/export?email=not-an-address", headers=auth(world["boss"])
    )
    assert bad.status_code == 400
    assert bad.get_json()["error"]["field"] == "email"
    for method, url, body in (
        ("GET", f"/api/v1/admin/privacy/export?email={ODILE}", None),
        ("POST", "/api/v1/admin/privacy/erase", {"email": ODILE, "confirm": True}),
    ):
        answer = client.open(url, method=method, json=body, headers=auth(world["member"]))
        assert answer.status_code == 403, answer.get_json()
    out = tmp_path / "nobody.zip"
    result = cli("contact", "export", "nobody@example.org", "-o", str(out))
    assert result.exit_code == 1
    assert "holds nothing about nobody@example.org" in result.output
    assert not out.exists()


# -- erase -----------------------------------------------------------------------------------------


def test_erase_leaves_nothing_behind_and_capture_never_brings_her_back(
    client: FlaskClient, db: Database, settings: Settings, world: dict[str, Any], tmp_path: Path
) -> None:
    # Copies of her elsewhere: a message that could not be read (quarantined), a drop job done
    # long ago, a webhook delivery, a capture rule about her.
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "broken.ics").write_bytes(f"not a calendar; sent by {ODILE_HEADER}".encode())
    import_files(db, settings, [junk], owner=ANNA, jobs=1)
    dropped = make_email(sender=ODILE_HEADER, to=ANNA, subject="Forwarded to the drop address")
    with db.session() as session:
        payload = {"link_id": 1, "raw": base64.b64encode(dropped).decode()}
        session.add(Job(kind="capture_drop", payload=payload, status="done"))
        hook = Webhook(url="https://hooks.example/crm", events=["contact.created"], secret=b"s")
        session.add(hook)
        session.flush()
        session.add(WebhookDelivery(webhook_id=hook.id, event="x", payload={"email": ODILE}))
        session.add(CaptureRule(kind="block_address", value=ODILE))
    before = leftovers(db, settings)
    assert "contact_emails.address" in before and "blobs.data" in before  # the scan sees her
    assert {"jobs.payload", "webhook_deliveries.payload", "capture_rules.value"} <= set(before)
    if db.is_sqlite:
        assert "search_fts (search index)" in before
    refused = client.post(
        "/api/v1/admin/privacy/erase", json={"email": ODILE}, headers=auth(world["boss"])
    )
    assert refused.status_code == 422  # "confirm" is required
    unconfirmed = client.post(
        "/api/v1/admin/privacy/erase",
        json={"email": ODILE, "confirm": False},
        headers=auth(world["boss"]),
    )
    assert unconfirmed.status_code == 400
    assert odile(db) is not None

    response = client.post(
        "/api/v1/admin/privacy/erase",
        json={"email": ODILE, "confirm": True},
        headers=auth(world["boss"]),
    )
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert report["contact_id"] == world["contact_id"]
    assert report["addresses"] == 1
    assert report["notes"] == 1 and report["follow_ups"] == 1 and report["deals_unlinked"] == 1
    assert report["emptied"] == 3  # her email, the invite to her alone, that meeting
    assert report["redacted"] == 4  # two replies, the invite to her and Bob, that meeting
    assert report["quarantined"] == 1 and report["jobs"] == 2 and report["rules"] == 1

    assert leftovers(db, settings) == []
    with db.session() as session:
        assert odile(db) is None
        assert session.scalar(select(Suppression.id)) is not None
        assert session.scalar(select(QuarantinedItem.id)) is None
        # Bob's mail stays: his reply (without her) and his own email, attachments and all.
        bob_only = session.scalar(select(Activity).where(Activity.subject == "Delivery dates"))
        assert bob_only is not None and bob_only.raw_blob is not None
        assert "trucks are free" in bob_only.snippet
        reply = session.scalar(
            select(Activity).where(Activity.message_key == "mid:bob-3@kestrelmoor-logistik.de")
        )
        assert reply is not None and "week 40" in reply.snippet
        assert reply.thread_id == bob_only.thread_id
        attachment = session.scalar(select(Attachment).where(Attachment.activity_id == reply.id))
        assert attachment is not None
        assert attachment.filename == "addresses.txt" and attachment.blob_sha256 is None
        people = set(
            session.scalars(
                select(ActivityParticipant.address).where(
                    ActivityParticipant.activity_id == reply.id
                )
            )
        )
        assert BOB in people and ANNA in people
        assert any(p.endswith("@erased.invalid") for p in people)
        shared = session.scalar(
            select(Activity).where(Activity.message_key == "mid:anna-2@northwind-supplies.com")
        )
        assert shared is not None and shared.body_blob is not None and shared.raw_blob is None
        body = get_blob(session, shared.body_blob).decode()
        assert body.startswith("Dear Odile, Bob delivers.") and "(erased) <(erased)>" in body
        alone = session.scalar(
            select(Activity).where(Activity.message_key == "mid:odile-1@brightline-dental.co.uk")
        )
        assert alone is not None and alone.subject == "(erased)" and alone.raw_blob is None
        erased = list(
            session.scalars(select(AuditEvent).where(AuditEvent.action == "contact.erased"))
        )
        assert [e.entity_id for e in erased] == [world["contact_id"]]
        activities = session.scalar(select(Activity.id).order_by(Activity.id.desc()))

    # Capture sees all of it again (a re-import): she is skipped or a stand-in, never a contact.
    capture(db, settings, tmp_path / "again", world["emails"])
    assert odile(db) is None
    assert leftovers(db, settings) == []
    with db.session() as session:
        assert session.scalar(select(Activity.id).order_by(Activity.id.desc())) == activities
        trace = trace_message(session, "<odile-1@brightline-dental.co.uk>")
    assert ("skipped", "suppressed") in [(d.decision, d.rule) for d in trace.decisions]
    # New mail from her, and the pane logging it, are refused the same way.
    new = make_email(sender=ODILE_HEADER, to=ANNA, subject="Still there?", body="Odile Quenneville")
    capture(db, settings, tmp_path / "new", {"new": new})
    assert odile(db) is None
    assert leftovers(db, settings) == []
    logged = client.post(
        "/api/v1/activities/log",
        json={
            "message_id": "<odile-pane@brightline-dental.co.uk>",
            "from": {"address": ODILE, "name": "Odile Quenneville"},
            "to": [{"address": BOSS}],
            "date": BASE_DATE.isoformat(),
            "body": "Hello",
        },
        headers=auth(world["boss"]),
    )
    assert logged.status_code == 403
    assert leftovers(db, settings) == []


def test_erase_from_the_command_line_and_of_an_unknown_address(
    db: Database, settings: Settings, world: dict[str, Any], cli: Cli, tmp_path: Path
) -> None:
    refused = cli("contact", "erase", ODILE, input="n\n")
    assert refused.exit_code == 1
    assert odile(db) is not None
    colleague = cli("contact", "erase", ANNA, "--yes")
    assert colleague.exit_code == 1
    assert "belongs to a Rapport user" in colleague.output or "mailbox of link" in colleague.output

    result = cli("contact", "erase", ODILE.upper(), "--yes")
    assert result.exit_code == 0, result.output
    assert f"contact {world['contact_id']}" in result.output
    assert odile(db) is None
    assert leftovers(db, settings) == []
    with db.session() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "contact.erased"))
        assert event is not None and event.user_id is None and event.details["via"] == "cli"

    # Someone Rapport never saw: nothing to erase, but capture will never record them.
    stranger = "stranger@example.org"
    assert cli("contact", "erase", stranger, "--yes").exit_code == 0
    capture(db, settings, tmp_path / "stranger", {"s": make_email(sender=stranger, to=ANNA)})
    with db.session() as session:
        assert session.scalar(select(ContactEmail).where(ContactEmail.address == stranger)) is None


def test_text_loses_her_address_whole_her_full_name_and_a_name_bearing_local_part() -> None:
    scrub = Scrubber([ODILE], ["Odile Quenneville", "Odile"])
    said = f"Odile  Quenneville <{ODILE.upper()}> wrote; ask odile.quenneville; Dear Odile"
    assert scrub.text(said) == f"{ERASED} <{ERASED}> wrote; ask {ERASED}; Dear Odile"
    assert scrub.text("xodile.quenneville and odile.quennevilles") == (
        "xodile.quenneville and odile.quennevilles"
    )
    assert Scrubber(["info@acme.example"], []).needles == ["info@acme.example"]
