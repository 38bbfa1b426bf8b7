"""/api/v1/notes: notes are timeline entries; only their author or an admin changes them."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import select

from server.config import Settings
from server.crm.timeline import timeline
from server.crm.viewer import Viewer
from server.db import Database
from server.models import Activity, Contact, User
from tests.integration.test_api_deals import make_contact
from tests.integration.test_api_lookup import CLARA, auth, capture, token_for
from tests.support.mail import make_email

ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
BOSS = "boss@northwind-supplies.com"
CLARA_ADDRESS = "clara@brightline-dental.co.uk"


def test_a_contact_note_is_on_the_contacts_timeline(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna = auth(token_for(db, ANNA))
    capture(db, settings, tmp_path, ANNA, [make_email(sender=CLARA, to=ANNA, subject="Quote")])
    with db.session() as session:
        clara = session.scalar(select(Contact.id).where(Contact.name == "Clara Jensen"))
    assert clara is not None
    created = client.post(
        "/api/v1/notes",
        json={"body": "Prefers a call\nafter 10:00", "contact_id": clara},
        headers=anna,
    )
    assert created.status_code == 201, created.get_json()
    note = created.get_json()
    assert (note["body"], note["contact_id"], note["version"]) == (
        "Prefers a call\nafter 10:00",
        clara,
        1,
    )

    # The pane's lookup shows it beside the email, newest first, with its text.
    lookup = client.get(f"/api/v1/lookup?email={CLARA_ADDRESS}", headers=anna).get_json()
    entries = [
        (e["kind"], e["body"] if e["kind"] == "note" else e["subject"]) for e in lookup["timeline"]
    ]
    assert entries == [("note", "Prefers a call\nafter 10:00"), ("email", "Quote")]
    assert lookup["timeline"][0]["level"] == "full"

    listed = client.get(f"/api/v1/activities?contact_id={clara}", headers=anna).get_json()
    assert listed["items"][0]["id"] == note["id"]
    assert listed["items"][0]["author_id"] == note["author_id"]
    assert listed["items"][0]["snippet"] == "Prefers a call after 10:00"

    # And the timeline service itself finds it for any member, body included.
    token_for(db, BEN)
    with db.session() as session:
        ben = Viewer.of(session.scalars(select(User).where(User.email == BEN)).one())
        page = timeline(session, ben, contact_ids=[clara])
    newest = page.items[0]
    assert (newest.kind, newest.body, newest.author_id) == (
        "note",
        "Prefers a call\nafter 10:00",
        note["author_id"],
    )


def test_company_and_deal_notes(client: FlaskClient, db: Database) -> None:
    anna = auth(token_for(db, ANNA))
    clara = make_contact(db, "Clara", CLARA_ADDRESS, "Brightline Dental")
    with db.session() as session:
        company = session.scalar(select(Contact.company_id).where(Contact.id == clara))
    about_company = client.post(
        "/api/v1/notes", json={"body": "New owner since May", "company_id": company}, headers=anna
    )
    assert about_company.status_code == 201
    about_clara = client.post(
        "/api/v1/notes", json={"body": "On leave in June", "contact_id": clara}, headers=anna
    )
    company_timeline = client.get(f"/api/v1/activities?company_id={company}", headers=anna)
    assert [e["body"] for e in company_timeline.get_json()["items"]] == [
        "On leave in June",  # her company's timeline includes its people's
        "New owner since May",
    ]
    assert about_clara.status_code == 201


def test_only_the_author_or_an_admin_changes_a_note(client: FlaskClient, db: Database) -> None:
    anna, ben = auth(token_for(db, ANNA)), auth(token_for(db, BEN))
    boss = auth(token_for(db, BOSS, role="admin"))
    clara = make_contact(db, "Clara", CLARA_ADDRESS)
    note = client.post(
        "/api/v1/notes", json={"body": "First draft", "contact_id": clara}, headers=anna
    ).get_json()
    url = f"/api/v1/notes/{note['id']}"

    edited = client.patch(url, json={"body": "Second draft", "version": 1}, headers=anna)
    assert edited.status_code == 200, edited.get_json()
    assert edited.get_json()["version"] == 2
    stale = client.patch(url, json={"body": "Lost", "version": 1}, headers=anna)
    assert stale.status_code == 409
    forbidden = client.patch(url, json={"body": "Ben's", "version": 2}, headers=ben)
    assert forbidden.status_code == 403
    assert client.delete(url, headers=ben).status_code == 403
    assert client.get(url, headers=ben).get_json()["body"] == "Second draft"  # readable by all

    by_admin = client.patch(url, json={"body": "Tidied", "version": 2}, headers=boss)
    assert by_admin.status_code == 200
    assert client.delete(url, headers=anna).status_code == 204
    assert client.get(url, headers=anna).status_code == 404
    with db.session() as session:
        assert session.scalars(select(Activity).where(Activity.kind == "note")).all() == []


def test_a_note_is_about_exactly_one_thing(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna = auth(token_for(db, ANNA))
    clara = make_contact(db, "Clara", CLARA_ADDRESS, "Brightline Dental")
    cases: list[tuple[dict[str, object], int, str | None]] = [
        ({"body": "x"}, 400, None),
        ({"body": "x", "contact_id": clara, "deal_id": 1}, 400, None),
        ({"body": "x", "contact_id": 987654}, 400, "contact_id"),
        ({"body": "x", "deal_id": 987654}, 400, "deal_id"),
        ({"body": "  ", "contact_id": clara}, 400, "body"),
        ({"body": "a\u0000", "contact_id": clara}, 400, "body"),
        ({"contact_id": clara}, 422, "body"),
    ]
    for body, status, field in cases:
        response = client.post("/api/v1/notes", json=body, headers=anna)
        assert response.status_code == status, (body, response.get_json())
        assert response.get_json()["error"].get("field") == field, body
    # An email is not a note: the notes resource does not show or change it.
    capture(db, settings, tmp_path, ANNA, [make_email(sender=CLARA, to=ANNA)])
    with db.session() as session:
        email = session.scalar(select(Activity.id).where(Activity.kind == "email"))
    assert client.get(f"/api/v1/notes/{email}", headers=anna).status_code == 404
    assert client.delete(f"/api/v1/notes/{email}", headers=anna).status_code == 404
    assert client.post("/api/v1/notes", json={"body": "x", "contact_id": clara}).status_code == 401
