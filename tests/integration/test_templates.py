"""Templates through the API on both databases: placeholders checked when saved, filled in for
a contact with fallbacks and the missing named, who sees and changes which, and suggestions."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import select

from server.config import Settings
from server.crm.deals import DealInput, create_deal, move_stage
from server.crm.pipelines import ensure_default_pipeline
from server.crm.viewer import Viewer
from server.db import Database
from server.models import Contact, Signal, Stage, User, utcnow
from tests.integration.test_api_lookup import auth, capture, token_for
from tests.support.mail import make_email

ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
BOSS = "boss@northwind-supplies.com"
CLARA = "Dr Clara Jensen <clara@brightline-dental.co.uk>"
THANKS = {
    "name": "Thank you — how did we do?",
    "subject": "Thank you, {{ contact.first_name | there }}",
    "body": "Hello {{ contact.first_name }} <3,\n{{ deal.title }} for {{ company.name }}.\n"
    "{{ sender.first_name }}",
}


def clara(db: Database, settings: Settings, tmp_path: Path) -> int:
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [make_email(sender=CLARA, to=ANNA, subject="Hi", date=utcnow() - timedelta(days=3))],
    )
    with db.session() as session:
        contact = session.scalars(select(Contact)).one()
        return contact.id


def test_placeholders_are_checked_and_filled_in_with_fallbacks(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna = auth(token_for(db, ANNA))
    with db.session() as session:
        session.get(User, 1).name = "Anna Lindqvist"  # type: ignore[union-attr]
    contact_id = clara(db, settings, tmp_path)
    typo = client.post(
        "/api/v1/templates", json={**THANKS, "body": "Hi {{ contact.frist }}"}, headers=anna
    )
    assert typo.status_code == 400
    assert (
        typo.get_json()["error"]["field"] == "body"
        and "contact.frist" in typo.get_json()["error"]["message"]
    )
    made = client.post("/api/v1/templates", json=THANKS, headers=anna)
    assert made.status_code == 201
    template_id = made.get_json()["id"]

    without = client.post(
        f"/api/v1/templates/{template_id}/render", json={}, headers=anna
    ).get_json()
    assert without["subject"] == "Thank you, there"  # the fallback
    assert without["missing"] == ["contact.first_name", "deal.title", "company.name"]

    filled = client.post(
        f"/api/v1/templates/{template_id}/render", json={"contact_id": contact_id}, headers=anna
    ).get_json()
    assert filled["subject"] == "Thank you, Clara"  # "Dr" is not a first name
    assert filled["body_text"].startswith("Hello Clara <3,\n")
    assert "Brightline Dental" in filled["body_text"] and filled["body_text"].endswith("Anna")
    assert filled["body_html"].startswith("<div>Hello Clara &lt;3,<br>")
    assert filled["missing"] == ["deal.title"]  # no deal yet

    missing = client.post(
        f"/api/v1/templates/{template_id}/render", json={"contact_id": 999999}, headers=anna
    )
    assert missing.status_code == 404


def test_private_templates_are_their_owner_s_and_shared_ones_change_by_owner_or_admin(
    client: FlaskClient, db: Database
) -> None:
    anna, ben = auth(token_for(db, ANNA)), auth(token_for(db, BEN))
    boss = auth(token_for(db, BOSS, role="admin"))
    mine = client.post(
        "/api/v1/templates", json={**THANKS, "shared": False}, headers=anna
    ).get_json()
    shared = client.post("/api/v1/templates", json=THANKS, headers=anna).get_json()
    ben_sees = [t["id"] for t in client.get("/api/v1/templates", headers=ben).get_json()["items"]]
    assert ben_sees == [shared["id"]]
    assert client.get(f"/api/v1/templates/{mine['id']}", headers=ben).status_code == 404
    assert (
        client.patch(
            f"/api/v1/templates/{shared['id']}", json={"name": "x"}, headers=ben
        ).status_code
        == 403
    )
    renamed = client.patch(
        f"/api/v1/templates/{shared['id']}", json={"name": "Thanks!"}, headers=boss
    )
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "Thanks!"
    assert client.delete(f"/api/v1/templates/{shared['id']}", headers=anna).status_code == 204
    listing = client.get("/api/v1/templates", headers=anna).get_json()
    assert [t["id"] for t in listing["items"]] == [mine["id"]]
    assert "contact.first_name" in listing["placeholders"]


def test_suggestions_after_a_won_deal_and_a_meeting_without_follow_up(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna = auth(token_for(db, ANNA))
    with db.session() as session:
        session.get(User, 1).name = "Anna Lindqvist"  # type: ignore[union-attr]
    contact_id = clara(db, settings, tmp_path)
    assert client.get(
        f"/api/v1/templates/suggestions?contact_id={contact_id}", headers=anna
    ).get_json() == {"items": []}
    thanks = client.post("/api/v1/templates", json=THANKS, headers=anna).get_json()
    meeting = client.post(
        "/api/v1/templates",
        json={"name": "Following up on our meeting", "body": "Hello {{ contact.first_name }}"},
        headers=anna,
    ).get_json()
    with db.session() as session:
        viewer = Viewer.of(session.scalars(select(User).where(User.email == ANNA)).one())
        ensure_default_pipeline(session)
        won = session.scalar(select(Stage.id).where(Stage.outcome == "won"))
        deal = create_deal(
            session, viewer, DealInput(title="Chairs", amount="900", contact_ids=[contact_id])
        )
        assert won is not None
        move_stage(session, viewer, deal.id, won)
        session.add(
            Signal(
                key=f"meeting_without_follow_up:{contact_id}",
                kind="meeting_without_follow_up",
                contact_id=contact_id,
                owner_id=viewer.id,
                due_at=utcnow() - timedelta(hours=2),
                reason={"summary": "Met on Monday and no email has gone to the attendees"},
                evidence_count=0,
            )
        )
    found = client.get(
        f"/api/v1/templates/suggestions?contact_id={contact_id}", headers=anna
    ).get_json()["items"]
    assert [(s["purpose"], s["template"]["id"]) for s in found] == [
        ("deal_won", thanks["id"]),
        ("meeting_follow_up", meeting["id"]),
    ]
    assert found[0]["reason"].startswith("Chairs was won on") and found[0]["deal_id"] == deal.id
    rendered = client.post(
        f"/api/v1/templates/{thanks['id']}/render",
        json={"contact_id": contact_id, "deal_id": deal.id},
        headers=anna,
    ).get_json()
    assert "Chairs" in rendered["body_text"] and rendered["missing"] == []
