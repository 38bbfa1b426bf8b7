"""Merging duplicate contacts and companies: everything moves to the one kept, in one go."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from server.config import Settings
from server.db import Database
from server.models import (
    Activity,
    ActivityParticipant,
    AuditEvent,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    ContactTag,
    Deal,
    DealContact,
    FollowUp,
)
from tests.integration.test_api_contacts import (
    ADMIN,
    ANNA,
    BEN,
    auth,
    capture,
    create,
    make_deal,
    make_follow_up,
    make_note,
    token_for,
    user_id,
)
from tests.support.mail import BASE_DATE, days, make_email

WORK = "clara@brightline-dental.co.uk"
HOME = "clara.jensen@gmail.com"


def contact_by_address(client: FlaskClient, token: str, address: str) -> dict[str, Any]:
    items = client.get(f"/api/v1/contacts?q={address}", headers=auth(token)).get_json()["items"]
    assert len(items) == 1, items
    found: dict[str, Any] = items[0]
    return found


def test_merging_contacts_moves_everything_to_the_one_kept(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    admin = token_for(db, ADMIN, role="admin")
    define = {"entity": "contact", "label": "x", "field_type": "text"}
    create(client, admin, "custom-fields", key="shoe_size", **define)
    create(client, admin, "custom-fields", key="dentist", **define)
    # Capture sees Clara at work and at home: two contacts.
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [
            make_email(sender=f"Clara Jensen <{WORK}>", to=ANNA, subject="Work 1", date=BASE_DATE),
            make_email(
                sender=f"Clara <{HOME}>", to=ANNA, subject="Home 1", date=BASE_DATE + days(1)
            ),
            make_email(sender=ANNA, to=[WORK, HOME], subject="To both", date=BASE_DATE + days(2)),
        ],
    )
    keep = contact_by_address(client, admin, WORK)
    other = contact_by_address(client, admin, HOME)
    response = client.patch(
        f"/api/v1/contacts/{keep['id']}",
        json={"version": keep["version"], "tags": ["vip"], "custom_fields": {"dentist": "yes"}},
        headers=auth(admin),
    )
    assert response.status_code == 200
    response = client.patch(
        f"/api/v1/contacts/{other['id']}",
        json={
            "version": other["version"],
            "title": "Practice owner",
            "phone": "+44 1",
            "tags": ["vip", "golf"],
            "custom_fields": {"dentist": "no", "shoe_size": "38"},
        },
        headers=auth(admin),
    )
    assert response.status_code == 200
    shared_deal = make_deal(db, "Shared", contact_ids=(keep["id"], other["id"]))
    other_deal = make_deal(db, "Home deal", contact_ids=(other["id"],))
    follow_up = make_follow_up(db, "Ask about golf", contact_id=other["id"])
    note = make_note(db, "Met at the club", contact_id=other["id"])

    merged = client.post(
        f"/api/v1/contacts/{keep['id']}/merge", json={"other_id": other["id"]}, headers=auth(admin)
    )
    assert merged.status_code == 200, merged.get_json()
    body = merged.get_json()
    contact = body["contact"]
    assert body["merged_id"] == other["id"]
    assert body["moved"] == {
        "emails": 1,
        "participations": 3,  # Home 1, To both, and the note
        "deal_links": 1,
        "follow_ups": 1,
        "tags": 1,
    }
    assert set(body["filled"]) == {"title", "phone", "custom_fields.shoe_size"}
    assert contact["name"] == "Clara Jensen"  # the kept contact's values win...
    assert contact["custom_fields"] == {
        "dentist": "yes",
        "shoe_size": "38",
    }  # ...others fill blanks
    assert contact["title"] == "Practice owner"
    assert contact["emails"] == [WORK, HOME]
    assert contact["tags"] == ["golf", "vip"]
    assert {d["id"] for d in contact["deals"]} == {shared_deal, other_deal}
    assert [f["id"] for f in contact["follow_ups"]] == [follow_up]
    assert [a["subject"] for a in contact["timeline"]] == [
        "Met at the club",
        "To both",
        "Home 1",
        "Work 1",
    ]

    assert client.get(f"/api/v1/contacts/{other['id']}", headers=auth(admin)).status_code == 404
    admin_id = user_id(db, ADMIN)
    with db.session() as session:
        assert session.get(Contact, other["id"]) is None
        for model, column in (
            (ContactEmail, ContactEmail.contact_id),
            (ActivityParticipant, ActivityParticipant.contact_id),
            (DealContact, DealContact.contact_id),
            (FollowUp, FollowUp.contact_id),
            (ContactTag, ContactTag.contact_id),
        ):
            left = session.scalar(
                select(func.count()).select_from(model).where(column == other["id"])
            )
            assert left == 0, model
        participants = session.scalars(
            select(ActivityParticipant.contact_id).where(ActivityParticipant.activity_id == note)
        ).all()
        assert participants == [keep["id"]]
        audit = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "contact.merge")
        ).one()
        assert (audit.user_id, audit.entity_id) == (admin_id, keep["id"])
        assert audit.details["merged_id"] == other["id"]


def test_merging_is_all_or_nothing_and_for_owners_or_admins(
    client: FlaskClient, db: Database
) -> None:
    anna, ben = token_for(db, ANNA), token_for(db, BEN)
    anna_id = user_id(db, ANNA)
    first = create(client, anna, "contacts", name="Clara", emails=[WORK], owner_id=anna_id)
    second = create(client, anna, "contacts", name="Clara J", emails=[HOME], owner_id=anna_id)
    unowned = create(client, anna, "contacts", name="Nobody's")
    url = f"/api/v1/contacts/{first['id']}/merge"

    assert client.post(url, json={"other_id": second["id"]}, headers=auth(ben)).status_code == 403
    assert client.post(url, json={"other_id": unowned["id"]}, headers=auth(anna)).status_code == 403
    itself = client.post(url, json={"other_id": first["id"]}, headers=auth(anna))
    assert itself.status_code == 400 and itself.get_json()["error"]["field"] == "other_id"
    missing = client.post(url, json={"other_id": 99999}, headers=auth(anna))
    assert missing.status_code == 404 and missing.get_json()["error"]["field"] == "other_id"
    assert (
        client.post(
            "/api/v1/contacts/99999/merge", json={"other_id": 1}, headers=auth(anna)
        ).status_code
        == 404
    )
    stale = client.post(
        url, json={"other_id": second["id"], "other_version": 7}, headers=auth(anna)
    )
    assert stale.status_code == 409
    with db.session() as session:
        assert session.get(Contact, second["id"]) is not None
        assert (
            session.scalar(select(ContactEmail.contact_id).where(ContactEmail.address == HOME))
            == second["id"]
        )

    done = client.post(
        url, json={"other_id": second["id"], "version": 1, "other_version": 1}, headers=auth(anna)
    )
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["contact"]["emails"] == [WORK, HOME]


def test_merging_companies_moves_domains_people_deals_and_notes(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    admin = token_for(db, ADMIN, role="admin")
    create(
        client,
        admin,
        "custom-fields",
        entity="company",
        key="segment",
        label="Segment",
        field_type="text",
    )
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [
            make_email(sender=WORK, to=ANNA, subject="Old domain"),
            make_email(sender="dan@brightline.dental", to=ANNA, subject="New domain"),
        ],
    )
    companies = client.get("/api/v1/companies?sort=name", headers=auth(admin)).get_json()["items"]
    by_domain = {c["domains"][0]: c for c in companies}
    keep, other = by_domain["brightline-dental.co.uk"], by_domain["brightline.dental"]
    client.patch(
        f"/api/v1/companies/{other['id']}",
        json={
            "version": other["version"],
            "tags": ["dentists"],
            "custom_fields": {"segment": "health"},
        },
        headers=auth(admin),
    )
    deal = make_deal(db, "Chairs", company_id=other["id"])
    note = make_note(db, "Their new brand", company_id=other["id"])

    merged = client.post(
        f"/api/v1/companies/{keep['id']}/merge", json={"other_id": other["id"]}, headers=auth(admin)
    )
    assert merged.status_code == 200, merged.get_json()
    body = merged.get_json()
    assert body["moved"] == {"domains": 1, "contacts": 1, "deals": 1, "activities": 1, "tags": 1}
    company = body["company"]
    assert company["domains"] == ["brightline-dental.co.uk", "brightline.dental"]
    assert company["contact_count"] == 2
    assert company["tags"] == ["dentists"]
    assert company["custom_fields"] == {"segment": "health"}
    assert [d["id"] for d in company["deals"]] == [deal]
    assert "Their new brand" in [a["subject"] for a in company["timeline"]]
    with db.session() as session:
        assert session.get(Company, other["id"]) is None
        assert session.get_one(Deal, deal).company_id == keep["id"]
        assert session.get_one(Activity, note).company_id == keep["id"]
        assert set(session.scalars(select(CompanyDomain.company_id))) == {keep["id"]}
        assert set(session.scalars(select(Contact.company_id))) == {keep["id"]}
    # Capture now files mail from the merged-in domain under the kept company.
    capture(db, settings, tmp_path, ANNA, [make_email(sender="erin@brightline.dental", to=ANNA)])
    erin = contact_by_address(client, admin, "erin@brightline.dental")
    assert erin["company"]["id"] == keep["id"]
