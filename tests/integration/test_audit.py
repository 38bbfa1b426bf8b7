"""The audit log on both databases: every API change and every read of an email, by whom and
from where, with ids and no personal data; admins filter it; nobody changes or deletes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DatabaseError

from server.app import create_app
from server.config import Settings, load_settings
from server.db import Database
from server.models import Activity, AuditEvent
from tests.integration.test_api_lookup import auth, capture, token_for
from tests.support.mail import make_email

BOSS = "boss@northwind-supplies.com"
ANNA = "anna@northwind-supplies.com"
CLARA = "clara@brightline-dental.co.uk"


def events(client: FlaskClient, headers: dict[str, str], query: str = "") -> list[dict]:  # type: ignore[type-arg]
    answer = client.get(f"/api/v1/admin/audit?{query}", headers=headers)
    assert answer.status_code == 200, answer.get_json()
    return list(answer.get_json()["items"])


def test_changes_and_email_reads_are_recorded_without_personal_data(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    boss = auth(token_for(db, BOSS, role="admin"))
    anna = auth(token_for(db, ANNA))
    capture(
        db, settings, tmp_path, ANNA, [make_email(sender=f"Clara <{CLARA}>", to=ANNA, subject="Hi")]
    )
    made = client.post(
        "/api/v1/contacts", json={"name": "Dan Okafor", "emails": ["dan@kestrel.example"]}, headers=anna,
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    ).get_json()  # fmt: skip
    client.patch(
        f"/api/v1/contacts/{made['id']}",
        json={"version": made["version"], "title": "CEO"},
        headers=anna,
    )
    client.get("/api/v1/contacts", headers=anna)  # a read of a list: not an event
    with db.read_session() as session:
        email_id = session.scalar(select(Activity.id).where(Activity.kind == "email"))
    assert client.get(f"/api/v1/activities/{email_id}", headers=anna).status_code == 200

    logged = events(client, boss)
    actions = [(e["action"], e["entity_type"], e["entity_id"]) for e in logged]
    assert actions[:3] == [
        ("email.read", "activity", email_id),
        ("PATCH /api/v1/contacts/<int:contact_id>", "contact", made["id"]),
        ("POST /api/v1/contacts", "contacts", made["id"]),
    ]
    created = logged[2]
    assert created["source"] == "203.0.113.9" and created["details"]["status"] == 201
    everything = repr(logged)
    for personal in ("Dan Okafor", "dan@kestrel.example", "CEO", CLARA, "Hi"):
        assert personal not in everything
    # filters
    assert [e["action"] for e in events(client, boss, "action=PATCH")] == [actions[1][0]]
    assert {
        e["entity_id"] for e in events(client, boss, f"entity_type=contact&entity_id={made['id']}")
    } == {made["id"]}
    assert events(client, boss, "user_id=999") == []
    page = client.get("/api/v1/admin/audit?limit=1", headers=boss).get_json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    assert client.get("/api/v1/admin/audit", headers=anna).status_code == 403


def test_an_email_body_is_only_read_one_at_a_time_and_each_read_is_recorded(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    """Lists carry snippets; the body of an email comes from GET /activities/{id} (an event), and
    the pane preview's picker, which shows bodies, records one event per email it hands out."""
    boss = auth(token_for(db, BOSS, role="admin"))
    anna = auth(token_for(db, ANNA))
    body = "Could we move the install to Thursday?\n\nThe loading bay is closed on Wednesday."
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [make_email(sender=f"Clara <{CLARA}>", to=ANNA, subject="Install", body=body)],
    )
    lookup = client.get(f"/api/v1/lookup?email={CLARA}", headers=anna).get_json()
    contact_id = lookup["contacts"][0]["id"]
    note = client.post(
        "/api/v1/notes", json={"body": "Prefers mornings", "contact_id": contact_id}, headers=anna
    )
    assert note.status_code == 201
    timeline = client.get(f"/api/v1/activities?contact_id={contact_id}", headers=anna).get_json()
    lookup = client.get(f"/api/v1/lookup?email={CLARA}", headers=anna).get_json()
    for entries in (timeline["items"], lookup["timeline"]):
        by_kind = {e["kind"]: e for e in entries}
        assert by_kind["email"]["body"] is None
        assert by_kind["email"]["snippet"].startswith("Could we move the install")
        assert by_kind["note"]["body"] == "Prefers mornings"  # written here: no email read
    assert not events(client, boss, "action=email.read")

    email_id = by_kind["email"]["id"]
    one = client.get(f"/api/v1/activities/{email_id}", headers=anna).get_json()
    assert one["body"].startswith("Could we move the install to Thursday?")
    assert "loading bay" in one["body"]
    picker = client.get("/api/v1/preview/emails", headers=anna).get_json()["items"]
    assert [item["activity_id"] for item in picker] == [email_id]
    assert "loading bay" in picker[0]["body"]
    reads = events(client, boss, "action=email.read")
    assert [(e["entity_type"], e["entity_id"], e["details"]["route"]) for e in reads] == [
        ("activity", email_id, "/api/v1/preview/emails"),
        ("activity", email_id, "/api/v1/activities/<int:activity_id>"),
    ]
    assert all(e["user_id"] is not None for e in reads)


def test_nobody_changes_or_deletes_an_event(db: Database) -> None:
    with db.session() as session:
        session.add(AuditEvent(action="test.event", entity_type="contact", entity_id=1))
    with pytest.raises(DatabaseError, match="append-only"), db.session() as session:
        session.execute(update(AuditEvent).values(action="rewritten"))
    with pytest.raises(DatabaseError, match="append-only"), db.session() as session:
        session.execute(delete(AuditEvent))
    with db.read_session() as session:
        assert session.scalars(select(AuditEvent.action)).all() == ["test.event"]


def test_from_where_is_the_client_behind_a_trusted_proxy_and_never_a_claimed_one(
    db: Database, env: dict[str, str]
) -> None:
    """Behind RAPPORT_TRUSTED_PROXIES proxies, the address X-Forwarded-For gives is the client's;
    without it, a client claiming an address in that header changes nothing."""
    boss = auth(token_for(db, BOSS, role="admin"))
    claimed = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}
    sources = []
    for proxies in ("0", "1"):
        client = create_app(load_settings({**env, "RAPPORT_TRUSTED_PROXIES": proxies}), db=db)
        created = client.test_client().post(
            "/api/v1/contacts",
            json={"name": f"Proxy {proxies}"},
            headers={**boss, **claimed},
            environ_base={"REMOTE_ADDR": "10.0.0.2"},
        )
        assert created.status_code == 201, created.get_json()
        (event,) = [
            e
            for e in events(client.test_client(), boss, "action=POST /api/v1/contacts")
            if e["entity_id"] == created.get_json()["id"]
        ]
        sources.append(event["source"])
    assert sources == ["10.0.0.2", "198.51.100.7"]
