"""/api/v1/deals: CRUD, filters and paging, optimistic concurrency, stage moves and undo."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from server.db import Database
from server.models import (
    Company,
    Contact,
    ContactEmail,
    CustomFieldDefinition,
    Deal,
    DealStageChange,
    FollowUp,
    utcnow,
)
from tests.integration.test_api_lookup import auth, token_for

ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"


def make_contact(db: Database, name: str, address: str, company: str | None = None) -> int:
    with db.session() as session:
        company_row = Company(name=company) if company else None
        contact = Contact(name=name, company=company_row)
        contact.emails.append(ContactEmail(address=address, is_primary=True))
        session.add(contact)
        session.flush()
        return contact.id


def sales(client: FlaskClient, headers: dict[str, str]) -> dict[str, Any]:
    pipeline: dict[str, Any] = client.get("/api/v1/pipelines", headers=headers).get_json()["items"][
        0
    ]
    return pipeline


def stage_id(pipeline: dict[str, Any], name: str) -> int:
    return int(next(s["id"] for s in pipeline["stages"] if s["name"] == name))


def test_deal_lifecycle_create_read_update_delete(client: FlaskClient, db: Database) -> None:
    anna = auth(token_for(db, ANNA))
    clara = make_contact(db, "Clara Jensen", "clara@brightline-dental.co.uk", "Brightline Dental")
    with db.session() as session:
        company_id = session.scalar(select(Contact.company_id).where(Contact.id == clara))
    created = client.post(
        "/api/v1/deals",
        json={
            "title": "  40 chairs  for the  waiting room ",
            "amount": "1200.50",
            "currency": "gbp",
            "company_id": company_id,
            "contact_ids": [clara, clara],
            "expected_close": "2026-10-31",
        },
        headers=anna,
    )
    assert created.status_code == 201, created.get_json()
    deal = created.get_json()
    assert deal["title"] == "40 chairs for the waiting room"
    assert deal["amount"] == "1200.50"
    assert deal["currency"] == "GBP"
    assert deal["status"] == "open"
    assert deal["stage"]["name"] == "Lead"
    assert deal["expected_close"] == "2026-10-31"
    assert deal["owner_id"] is not None  # the creator, by default
    assert deal["version"] == 1

    page = client.get(f"/api/v1/deals/{deal['id']}", headers=anna)
    assert page.status_code == 200, page.get_json()
    detail = page.get_json()
    assert [c["name"] for c in detail["contacts"]] == ["Clara Jensen"]
    assert detail["contacts"][0]["email"] == "clara@brightline-dental.co.uk"
    assert detail["company"]["name"] == "Brightline Dental"
    assert [(h["from_stage"], h["to_stage"]["name"]) for h in detail["history"]] == [(None, "Lead")]

    changed = client.patch(
        f"/api/v1/deals/{deal['id']}",
        json={"version": 1, "amount": "1500", "company_id": None, "contact_ids": []},
        headers=anna,
    )
    assert changed.status_code == 200, changed.get_json()
    after = changed.get_json()
    assert (after["amount"], after["company_id"], after["version"]) == ("1500.00", None, 2)
    assert after["title"] == deal["title"]  # not sent, not changed
    assert client.get(f"/api/v1/deals/{deal['id']}", headers=anna).get_json()["contacts"] == []

    assert client.delete(f"/api/v1/deals/{deal['id']}", headers=anna).status_code == 204
    gone = client.get(f"/api/v1/deals/{deal['id']}", headers=anna)
    assert gone.status_code == 404
    assert gone.get_json()["error"]["code"] == "not_found"
    assert client.delete(f"/api/v1/deals/{deal['id']}", headers=anna).status_code == 404


def test_stale_version_is_refused_and_changes_nothing(client: FlaskClient, db: Database) -> None:
    anna, ben = auth(token_for(db, ANNA)), auth(token_for(db, BEN))
    deal = client.post("/api/v1/deals", json={"title": "Desks"}, headers=anna).get_json()
    ok = client.patch(
        f"/api/v1/deals/{deal['id']}", json={"version": 1, "title": "Desks x20"}, headers=ben
    )
    assert ok.status_code == 200
    stale = client.patch(
        f"/api/v1/deals/{deal['id']}", json={"version": 1, "title": "Desks x5"}, headers=anna
    )
    assert stale.status_code == 409
    assert stale.get_json()["error"]["code"] == "conflict"
    lead = sales(client, anna)
    stale_move = client.post(
        f"/api/v1/deals/{deal['id']}/stage",
        json={"stage_id": stage_id(lead, "Won"), "version": 1},
        headers=anna,
    )
    assert stale_move.status_code == 409
    now = client.get(f"/api/v1/deals/{deal['id']}", headers=anna).get_json()
    assert (now["title"], now["version"], now["stage"]["name"]) == ("Desks x20", 2, "Lead")
    assert len(now["history"]) == 1


def test_stage_moves_record_history_and_set_status(client: FlaskClient, db: Database) -> None:
    anna = auth(token_for(db, ANNA))
    pipeline = sales(client, anna)
    deal = client.post("/api/v1/deals", json={"title": "Lamps"}, headers=anna).get_json()
    url = f"/api/v1/deals/{deal['id']}/stage"

    proposal = client.post(url, json={"stage_id": stage_id(pipeline, "Proposal")}, headers=anna)
    assert proposal.status_code == 200, proposal.get_json()
    assert (proposal.get_json()["status"], proposal.get_json()["closed_at"]) == ("open", None)

    won = client.post(url, json={"stage_id": stage_id(pipeline, "Won")}, headers=anna).get_json()
    assert won["status"] == "won"
    assert won["closed_at"] is not None
    assert won["stage_entered_at"] == won["closed_at"]

    lost = client.post(url, json={"stage_id": stage_id(pipeline, "Lost")}, headers=anna).get_json()
    assert lost["status"] == "lost"
    reopened = client.post(
        url, json={"stage_id": stage_id(pipeline, "Negotiation")}, headers=anna
    ).get_json()
    assert (reopened["status"], reopened["closed_at"]) == ("open", None)

    # Moving to the stage it is in records nothing.
    same = client.post(url, json={"stage_id": stage_id(pipeline, "Negotiation")}, headers=anna)
    assert same.get_json()["version"] == reopened["version"]

    history = client.get(f"/api/v1/deals/{deal['id']}", headers=anna).get_json()["history"]
    steps = [(h["from_stage"] and h["from_stage"]["name"], h["to_stage"]["name"]) for h in history]
    assert steps == [
        (None, "Lead"),
        ("Lead", "Proposal"),
        ("Proposal", "Won"),
        ("Won", "Lost"),
        ("Lost", "Negotiation"),
    ]
    assert {h["changed_by_id"] for h in history} == {deal["owner_id"]}
    assert [h["changed_at"] for h in history] == sorted(h["changed_at"] for h in history)

    won_deals = client.get("/api/v1/deals?status=won", headers=anna).get_json()["items"]
    assert won_deals == []
    unknown = client.post(url, json={"stage_id": 999999}, headers=anna)
    assert unknown.status_code == 400
    assert unknown.get_json()["error"]["field"] == "stage_id"


def test_undo_reverts_only_your_own_recent_move(client: FlaskClient, db: Database) -> None:
    anna, ben = auth(token_for(db, ANNA)), auth(token_for(db, BEN))
    pipeline = sales(client, anna)
    deal = client.post("/api/v1/deals", json={"title": "Sofas"}, headers=anna).get_json()
    move = f"/api/v1/deals/{deal['id']}/stage"
    undo = f"/api/v1/deals/{deal['id']}/stage/undo"

    # Creation is not a move: nothing to undo yet.
    assert client.post(undo, json={}, headers=anna).status_code == 409

    client.post(move, json={"stage_id": stage_id(pipeline, "Qualified")}, headers=anna)
    won = client.post(move, json={"stage_id": stage_id(pipeline, "Won")}, headers=anna).get_json()
    assert won["status"] == "won"
    # Ben did not make that move: he cannot undo it.
    assert client.post(undo, json={}, headers=ben).status_code == 409

    undone = client.post(undo, json={"version": won["version"]}, headers=anna)
    assert undone.status_code == 200, undone.get_json()
    back = undone.get_json()
    assert (back["stage"]["name"], back["status"], back["closed_at"]) == ("Qualified", "open", None)
    history = client.get(f"/api/v1/deals/{deal['id']}", headers=anna).get_json()["history"]
    assert [h["to_stage"]["name"] for h in history] == ["Lead", "Qualified"]
    # The deal has been in Qualified since the move into it, not since the undo.
    assert back["stage_entered_at"] == history[-1]["changed_at"]

    # Too late: a move older than the undo window stays.
    client.post(move, json={"stage_id": stage_id(pipeline, "Lost")}, headers=anna)
    with db.session() as session:
        session.execute(
            update(DealStageChange)
            .where(DealStageChange.deal_id == deal["id"])
            .values(changed_at=utcnow() - timedelta(hours=1))
        )
    late = client.post(undo, json={}, headers=anna)
    assert late.status_code == 409
    assert "minutes" in late.get_json()["error"]["message"]
    final = client.get(f"/api/v1/deals/{deal['id']}", headers=anna).get_json()
    assert final["stage"]["name"] == "Lost"


@pytest.mark.parametrize(
    "sort", ["-updated_at", "updated_at", "amount", "-amount", "expected_close", "title", "-title"]
)
def test_paging_through_60_deals_has_no_duplicates_or_gaps(
    client: FlaskClient, db: Database, sort: str
) -> None:
    anna = auth(token_for(db, ANNA))
    pipeline = sales(client, anna)
    with db.session() as session:
        now = utcnow()
        for n in range(60):
            session.add(
                Deal(
                    title=f"Deal {n % 7}" if n % 2 else f"deal {n % 7}",  # ties, in two cases
                    amount=None if n % 5 == 0 else (n % 4) * 100,  # ties and missing amounts
                    currency="EUR",
                    pipeline_id=pipeline["id"],
                    stage_id=pipeline["stages"][0]["id"],
                    expected_close=None if n % 3 == 0 else (now + timedelta(days=n % 6)).date(),
                    updated_at=now - timedelta(minutes=n % 10),  # ties on updated_at too
                    created_at=now,
                )
            )
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        url = f"/api/v1/deals?limit=7&sort={sort}" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=anna).get_json()
        assert "items" in body, body
        seen.extend(d["id"] for d in body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 60
    assert len(set(seen)) == 60
    assert pages == 9
    # Each page continues in order: the whole walk is sorted by the chosen key.
    first_page = client.get(f"/api/v1/deals?limit=60&sort={sort}", headers=anna).get_json()
    assert [d["id"] for d in first_page["items"]] == seen


def test_filters(client: FlaskClient, db: Database) -> None:
    anna, ben = auth(token_for(db, ANNA)), auth(token_for(db, BEN))
    pipeline = sales(client, anna)
    clara = make_contact(db, "Clara", "clara@brightline-dental.co.uk", "Brightline Dental")
    with db.session() as session:
        company_id = session.scalar(select(Contact.company_id).where(Contact.id == clara))
        session.add_all(
            [
                CustomFieldDefinition(
                    entity="deal",
                    key="region",
                    label="Region",
                    field_type="choice",
                    choices=["North", "South"],
                ),
                CustomFieldDefinition(
                    entity="deal", key="seats", label="Seats", field_type="number"
                ),
            ]
        )

    def create(**fields: Any) -> int:
        response = client.post("/api/v1/deals", json=fields, headers=fields.pop("_as", anna))
        assert response.status_code == 201, response.get_json()
        return int(response.get_json()["id"])

    small = create(title="Small", amount="100", custom_fields={"region": "north", "seats": 4})
    big = create(
        title="Big",
        amount="9000",
        company_id=company_id,
        expected_close="2026-12-01",
        custom_fields={"region": "South", "seats": 40},
    )
    bens = create(title="Ben's", contact_ids=[clara], _as=ben, expected_close="2026-11-01")
    won = create(title="Won one", stage_id=stage_id(pipeline, "Won"), amount="500")

    def ids(query: str) -> list[int]:
        response = client.get(f"/api/v1/deals?sort=title&{query}", headers=anna)
        assert response.status_code == 200, response.get_json()
        return sorted(d["id"] for d in response.get_json()["items"])

    assert ids("status=won") == [won]
    assert ids("status=open") == sorted([small, big, bens])
    assert ids(f"stage_id={stage_id(pipeline, 'Won')}") == [won]
    assert ids(f"pipeline_id={pipeline['id']}") == sorted([small, big, bens, won])
    assert ids(f"company_id={company_id}") == [big]
    assert ids(f"contact_id={clara}") == [bens]
    bens_owner = client.get(f"/api/v1/deals/{bens}", headers=anna).get_json()["owner_id"]
    assert ids(f"owner_id={bens_owner}") == [bens]
    assert ids("amount_min=200&amount_max=9000") == sorted([big, won])
    assert ids("expected_close_from=2026-11-15") == [big]
    assert ids("expected_close_to=2026-11-15") == [bens]
    assert ids("cf.region=North") == [small]
    assert ids("cf.seats=40") == [big]
    assert ids("cf.seats.gte=5") == [big]
    stored = client.get(f"/api/v1/deals/{small}", headers=anna).get_json()["custom_fields"]
    assert stored == {"region": "North", "seats": 4}

    unknown = client.get("/api/v1/deals?cf.colour=red", headers=anna)
    assert unknown.status_code == 400
    assert unknown.get_json()["error"]["field"] == "cf.colour"
    bad_value = client.post(
        "/api/v1/deals", json={"title": "X", "custom_fields": {"seats": "many"}}, headers=anna
    )
    assert bad_value.status_code == 400
    assert bad_value.get_json()["error"]["field"] == "custom_fields.seats"
    merged = client.patch(
        f"/api/v1/deals/{small}",
        json={"version": 1, "custom_fields": {"seats": None, "region": "South"}},
        headers=anna,
    ).get_json()
    assert merged["custom_fields"] == {"region": "South"}


def test_bad_input_names_the_field_and_never_fails(client: FlaskClient, db: Database) -> None:
    anna = auth(token_for(db, ANNA))
    admin = auth(token_for(db, "boss@northwind-supplies.com", role="admin"))
    default = sales(client, anna)
    other = client.post(
        "/api/v1/pipelines", json={"name": "Other", "stages": [{"name": "A"}]}, headers=admin
    ).get_json()
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"title": "X", "amount": "12.345"}, 400, "amount"),
        ({"title": "X", "amount": "1e5"}, 400, "amount"),
        ({"title": "X", "amount": "-5"}, 400, "amount"),
        ({"title": "X", "currency": "XYZ"}, 400, "currency"),
        (
            {
                "title": "X",
                "stage_id": other["stages"][0]["id"],
                "pipeline_id": default["id"],
            },
            400,
            "stage_id",
        ),
        ({"title": "X", "pipeline_id": 987654}, 400, "pipeline_id"),
        ({"title": "X", "contact_ids": [987654]}, 400, "contact_ids"),
        ({"title": "X", "company_id": 987654}, 400, "company_id"),
        ({"title": "X", "owner_id": 987654}, 400, "owner_id"),
        ({"title": "a\u0000b"}, 400, "title"),
        ({"title": "   "}, 400, "title"),
        ({"title": "X", "owner_id": 2**70}, 422, "owner_id"),
        ({"title": "X", "expected_close": "31/10/2026"}, 422, "expected_close"),
        ({}, 422, "title"),
    ]
    for body, status, field in cases:
        response = client.post("/api/v1/deals", json=body, headers=anna)
        assert response.status_code == status, (body, response.get_json())
        assert response.get_json()["error"]["field"] == field, body
    # A deal can be created in another pipeline's first stage by naming the pipeline.
    there = client.post(
        "/api/v1/deals", json={"title": "X", "pipeline_id": other["id"]}, headers=anna
    )
    assert there.status_code == 201
    assert there.get_json()["stage"]["id"] == other["stages"][0]["id"]

    def forged(value: object, ident: int = 1) -> str:
        raw = json.dumps([value, ident]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    for url in (
        "/api/v1/deals?cursor=garbage",
        f"/api/v1/deals?sort=amount&cursor=amount~{forged('abc')}",
        f"/api/v1/deals?sort=amount&cursor=amount~{forged({'dec': 'NaN'})}",
        f"/api/v1/deals?sort=title&cursor=title~{forged('a', 2**70)}",
        f"/api/v1/deals?cursor=-updated_at~{forged({'dt': '2026-01-01T00:00:00'})}",
        "/api/v1/deals?sort=title&cursor=-updated_at~abc",
        f"/api/v1/deals/{there.get_json()['id']}?cursor=%%%",
    ):
        response = client.get(url, headers=anna)
        assert response.status_code == 400, url
        assert response.get_json()["error"]["field"] == "cursor"
    # A cursor made for one sort is refused by another, not misread.
    assert client.post("/api/v1/deals", json={"title": "Y"}, headers=anna).status_code == 201
    first = client.get("/api/v1/deals?limit=1&sort=title", headers=anna).get_json()
    assert first["next_cursor"] is not None
    crossed = client.get(f"/api/v1/deals?sort=amount&cursor={first['next_cursor']}", headers=anna)
    assert crossed.status_code == 400
    assert client.get(f"/api/v1/deals/{2**64}", headers=anna).status_code == 404
    form = client.post("/api/v1/deals", data={"title": "X"}, headers=anna)
    assert form.status_code == 415
    assert client.get("/api/v1/deals?amount_min=NaN", headers=anna).status_code == 422
    assert client.get("/api/v1/deals").status_code == 401


def test_deal_page_shows_notes_and_the_timeline_of_its_people(
    client: FlaskClient, db: Database
) -> None:
    anna = auth(token_for(db, ANNA))
    clara = make_contact(db, "Clara", "clara@brightline-dental.co.uk")
    deal = client.post(
        "/api/v1/deals", json={"title": "Chairs", "contact_ids": [clara]}, headers=anna
    ).get_json()
    about_clara = client.post(
        "/api/v1/notes", json={"body": "Prefers calls", "contact_id": clara}, headers=anna
    )
    about_deal = client.post(
        "/api/v1/notes", json={"body": "Budget approved", "deal_id": deal["id"]}, headers=anna
    )
    assert about_clara.status_code == about_deal.status_code == 201
    page = client.get(f"/api/v1/deals/{deal['id']}?limit=1", headers=anna).get_json()
    assert [e["body"] for e in page["timeline"]] == ["Budget approved"]
    rest = client.get(
        f"/api/v1/activities?deal_id={deal['id']}&limit=1&cursor={page['next_cursor']}",
        headers=anna,
    ).get_json()
    assert [e["body"] for e in rest["items"]] == ["Prefers calls"]
    assert rest["next_cursor"] is None


def test_deleting_a_deal_takes_its_follow_ups_and_notes(client: FlaskClient, db: Database) -> None:
    anna = auth(token_for(db, ANNA))
    clara = make_contact(db, "Clara", "clara@brightline-dental.co.uk")
    deal = client.post("/api/v1/deals", json={"title": "Chairs"}, headers=anna).get_json()
    due = (utcnow() + timedelta(days=2)).isoformat()
    follow_up = client.post(
        "/api/v1/followups",
        json={"title": "Call", "due_at": due, "deal_id": deal["id"], "contact_id": clara},
        headers=anna,
    ).get_json()
    note = client.post(
        "/api/v1/notes", json={"body": "Hm", "deal_id": deal["id"]}, headers=anna
    ).get_json()
    with db.session() as session:
        assert session.get(Contact, clara).next_follow_up_at is not None  # type: ignore[union-attr]
    assert client.delete(f"/api/v1/deals/{deal['id']}", headers=anna).status_code == 204
    assert client.get(f"/api/v1/followups/{follow_up['id']}", headers=anna).status_code == 404
    assert client.get(f"/api/v1/notes/{note['id']}", headers=anna).status_code == 404
    with db.session() as session:
        assert session.get(Contact, clara).next_follow_up_at is None  # type: ignore[union-attr]
        assert session.scalars(select(FollowUp)).all() == []
