"""/api/v1/custom-fields: admins define fields, everyone reads them, values are checked."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from server.crm.custom_fields import merge_custom_fields, validate_custom_fields
from server.crm.errors import DomainError
from server.db import Database
from server.models import Contact, Deal
from tests.integration.test_api_contacts import ADMIN, ANNA, auth, create, make_deal, token_for

FIELDS: list[dict[str, Any]] = [
    {"entity": "contact", "key": "seats", "label": "Seats", "field_type": "number"},
    {"entity": "contact", "key": "budget", "label": "Budget", "field_type": "money"},
    {"entity": "contact", "key": "renewal", "label": "Renewal", "field_type": "date"},
    {"entity": "contact", "key": "notes", "label": "Notes", "field_type": "text"},
    {
        "entity": "contact",
        "key": "tier",
        "label": "Tier",
        "field_type": "choice",
        "choices": ["Gold", "Silver"],
    },
    {"entity": "deal", "key": "seats", "label": "Seats", "field_type": "number"},
]


def define_all(client: FlaskClient, admin: str) -> list[dict[str, Any]]:
    return [create(client, admin, "custom-fields", **body) for body in FIELDS]


def test_admins_define_fields_and_everyone_reads_them(client: FlaskClient, db: Database) -> None:
    admin, member = token_for(db, ADMIN, role="admin"), token_for(db, ANNA)
    assert client.get("/api/v1/custom-fields").status_code == 401
    refused = client.post("/api/v1/custom-fields", json=FIELDS[0], headers=auth(member))
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "forbidden"

    defined = define_all(client, admin)
    listed = client.get("/api/v1/custom-fields?entity=contact", headers=auth(member)).get_json()
    assert [f["key"] for f in listed["items"]] == ["seats", "budget", "renewal", "notes", "tier"]
    assert listed["items"][4]["choices"] == ["Gold", "Silver"]
    everything = client.get("/api/v1/custom-fields", headers=auth(member)).get_json()["items"]
    assert len(everything) == 6

    tier = defined[4]
    url = f"/api/v1/custom-fields/{tier['id']}"
    assert client.patch(url, json={"label": "Level"}, headers=auth(member)).status_code == 403
    assert client.delete(url, headers=auth(member)).status_code == 403
    changed = client.patch(
        url, json={"label": "Level", "choices": ["Gold", "Silver", "Bronze"]}, headers=auth(admin)
    )
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["choices"] == ["Gold", "Silver", "Bronze"]
    assert client.get(url, headers=auth(member)).get_json()["label"] == "Level"


def test_definitions_are_checked(client: FlaskClient, db: Database) -> None:
    admin = token_for(db, ADMIN, role="admin")
    seats = create(client, admin, "custom-fields", **FIELDS[0])
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**FIELDS[0]}, 409, "key"),
        ({**FIELDS[0], "key": "Seats!"}, 422, "key"),
        ({**FIELDS[0], "key": "x", "entity": "invoice"}, 422, "entity"),
        ({**FIELDS[0], "key": "x", "field_type": "colour"}, 422, "field_type"),
        ({**FIELDS[4], "key": "x", "choices": []}, 400, "choices"),
        ({**FIELDS[4], "key": "x", "choices": ["A", "a"]}, 400, "choices"),
        ({**FIELDS[0], "key": "x", "choices": ["A"]}, 400, "choices"),
        ({**FIELDS[0], "key": "x", "label": ""}, 422, "label"),
    ]
    for body, status, field in cases:
        response = client.post("/api/v1/custom-fields", json=body, headers=auth(admin))
        assert response.status_code == status, (body, response.get_json())
        assert response.get_json()["error"]["field"] == field, body

    retype = client.patch(
        f"/api/v1/custom-fields/{seats['id']}", json={"field_type": "text"}, headers=auth(admin)
    )
    assert retype.status_code == 422  # the type is fixed once defined
    assert retype.get_json()["error"]["field"] == "field_type"
    assert client.delete("/api/v1/custom-fields/9999", headers=auth(admin)).status_code == 404


def test_values_are_checked_and_kept_in_one_form(client: FlaskClient, db: Database) -> None:
    admin, member = token_for(db, ADMIN, role="admin"), token_for(db, ANNA)
    define_all(client, admin)
    contact = create(
        client,
        member,
        "contacts",
        name="Clara",
        custom_fields={
            "seats": "40",
            "budget": {"amount": 1200.5, "currency": "gbp"},
            "renewal": "2026-03-01",
            "notes": "  likes chairs ",
            "tier": "gold",
        },
    )
    assert contact["custom_fields"] == {
        "seats": 40,
        "budget": {"amount": "1200.50", "currency": "GBP"},
        "renewal": "2026-03-01",
        "notes": "likes chairs",
        "tier": "Gold",
    }

    bad_values: list[tuple[str, Any]] = [
        ("seats", "forty"),
        ("seats", True),
        ("seats", "NaN"),
        ("budget", "12"),
        ("budget", {"amount": "12"}),
        ("budget", {"amount": "x", "currency": "EUR"}),
        ("budget", {"amount": "1", "currency": "euro"}),
        ("renewal", "01/03/2026"),
        ("tier", "Platinum"),
        ("notes", 12),
        ("colour", "red"),
    ]
    for key, value in bad_values:
        response = client.patch(
            f"/api/v1/contacts/{contact['id']}",
            json={"version": contact["version"], "custom_fields": {key: value}},
            headers=auth(member),
        )
        assert response.status_code == 400, (key, value, response.get_json())
        assert response.get_json()["error"]["field"] == f"custom_fields.{key}", (key, value)

    cleared = client.patch(
        f"/api/v1/contacts/{contact['id']}",
        json={"version": contact["version"], "custom_fields": {"notes": None, "seats": ""}},
        headers=auth(member),
    ).get_json()
    assert set(cleared["custom_fields"]) == {"budget", "renewal", "tier"}


def test_deleting_a_field_removes_its_values_everywhere(client: FlaskClient, db: Database) -> None:
    admin = token_for(db, ADMIN, role="admin")
    defined = define_all(client, admin)
    contact = create(
        client, admin, "contacts", name="Clara", custom_fields={"seats": 3, "tier": "Gold"}
    )
    deal = make_deal(db, "Chairs")
    with db.session() as session:
        session.get_one(Deal, deal).custom_fields = {"seats": 9}

    seats = next(f for f in defined if f["key"] == "seats" and f["entity"] == "contact")
    assert (
        client.delete(f"/api/v1/custom-fields/{seats['id']}", headers=auth(admin)).status_code
        == 204
    )
    with db.session() as session:
        stored = session.get_one(Contact, contact["id"])
        assert stored.custom_fields == {"tier": "Gold"}
        assert stored.version == contact["version"] + 1  # a concurrent edit would now be stale
        assert session.get_one(Deal, deal).custom_fields == {"seats": 9}  # another entity's field
    # The key is free again, even with another type.
    create(
        client, admin, "custom-fields", entity="contact", key="seats", label="S", field_type="text"
    )


def test_deals_validate_their_values_through_the_same_service(
    client: FlaskClient, db: Database
) -> None:
    define_all(client, token_for(db, ADMIN, role="admin"))
    with db.session() as session:
        values = validate_custom_fields(session, "deal", {"seats": "12"})
        assert values == {"seats": 12}
        assert merge_custom_fields({"seats": 1, "other": "x"}, {"seats": None}) == {"other": "x"}
        with pytest.raises(DomainError) as refused:
            validate_custom_fields(session, "deal", {"tier": "Gold"})  # a contact field only
        assert refused.value.field == "custom_fields.tier"
