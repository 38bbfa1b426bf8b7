"""/api/v1/companies: create, read, change, delete, list with filters, sort and cursor paging."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from server.config import Settings
from server.db import Database
from server.models import Activity, Company, Contact, Deal
from tests.integration.test_api_contacts import (
    ADMIN,
    ANNA,
    BEN,
    auth,
    capture,
    create,
    make_deal,
    make_note,
    token_for,
    user_id,
)
from tests.support.mail import BASE_DATE, days, make_email


def test_companies_need_a_token(client: FlaskClient) -> None:
    assert client.get("/api/v1/companies").status_code == 401
    assert client.post("/api/v1/companies", json={"name": "Acme"}).status_code == 401


def test_create_read_update_and_delete_a_company(client: FlaskClient, db: Database) -> None:
    token = token_for(db, ANNA)
    anna = user_id(db, ANNA)
    created = create(
        client,
        token,
        "companies",
        name="Brightline Dental",
        domains=["www.Brightline-Dental.co.uk", "https://shop.brightline.dental/chairs"],
        owner_id=anna,
        tags=["Dentists"],
    )
    assert created["domains"] == ["brightline-dental.co.uk", "brightline.dental"]
    assert (created["owner_id"], created["tags"], created["version"]) == (anna, ["dentists"], 1)

    url = f"/api/v1/companies/{created['id']}"
    changed = client.patch(
        url,
        json={
            "version": 1,
            "name": "Brightline Dental Ltd",
            "add_domains": ["brightlinedental.com"],
            "remove_domains": ["brightline.dental"],
        },
        headers=auth(token),
    )
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert body["name"] == "Brightline Dental Ltd"
    assert body["domains"] == ["brightline-dental.co.uk", "brightlinedental.com"]
    assert body["version"] == 2

    stale = client.patch(url, json={"version": 1, "name": "Old"}, headers=auth(token))
    assert stale.status_code == 409
    assert client.get(url, headers=auth(token)).get_json()["name"] == "Brightline Dental Ltd"

    assert client.delete(url, headers=auth(token)).status_code == 204  # Anna owns it
    assert client.get(url, headers=auth(token)).status_code == 404


def test_a_domain_belongs_to_one_company(client: FlaskClient, db: Database) -> None:
    token = token_for(db, ANNA)
    first = create(client, token, "companies", name="Acme", domains=["acme.com"])
    second = create(client, token, "companies", name="Other", domains=["other.com"])
    duplicate = client.post(
        "/api/v1/companies",
        json={"name": "Acme 2", "domains": ["mail.ACME.com"]},
        headers=auth(token),
    )
    assert duplicate.status_code == 409
    error = duplicate.get_json()["error"]
    assert error["field"] == "domains"
    assert "acme.com" in error["message"] and str(first["id"]) in error["message"]
    steal = client.patch(
        f"/api/v1/companies/{second['id']}",
        json={"version": 1, "add_domains": ["acme.com"]},
        headers=auth(token),
    )
    assert steal.status_code == 409

    for body, field in [
        ({"name": "Gmail people", "domains": ["gmail.com"]}, "domains"),
        ({"name": "Nowhere", "domains": ["localhost"]}, "domains"),
        ({"name": "   "}, "name"),
        ({"domains": ["x.com"]}, "name"),
        ({"name": "X", "owner_id": 0}, "owner_id"),
    ]:
        response = client.post("/api/v1/companies", json=body, headers=auth(token))
        assert response.status_code in (400, 422), body
        assert response.get_json()["error"]["field"] == field, body


def test_company_list_filters_sorts_and_pages(client: FlaskClient, db: Database) -> None:
    admin = token_for(db, ADMIN, role="admin")
    token = token_for(db, ANNA)
    client.post(
        "/api/v1/custom-fields",
        json={
            "entity": "company",
            "key": "tier",
            "label": "Tier",
            "field_type": "choice",
            "choices": ["Gold", "Silver"],
        },
        headers=auth(admin),
    )
    anna = user_id(db, ANNA)
    for n in range(30):
        create(
            client,
            token,
            "companies",
            name=f"Company {n:02d}",
            domains=[f"company{n:02d}.com"],
            owner_id=anna if n % 10 == 0 else None,
            tags=["partner"] if n % 3 == 0 else [],
            custom_fields={"tier": "gold" if n % 2 == 0 else "Silver"},
        )

    def names(query: str) -> list[str]:
        response = client.get(f"/api/v1/companies?{query}", headers=auth(token))
        assert response.status_code == 200, response.get_json()
        return [c["name"] for c in response.get_json()["items"]]

    assert names("q=company1&limit=3") == ["Company 10", "Company 11", "Company 12"]
    assert names("q=company29.c") == ["Company 29"]  # a domain prefix
    assert names(f"owner_id={anna}") == ["Company 00", "Company 10", "Company 20"]
    assert len(names("tag=partner")) == 10
    assert len(names("cf.tier=Gold")) == 15
    assert names("sort=name&order=desc&limit=2") == ["Company 29", "Company 28"]
    bad = client.get("/api/v1/companies?cf.tier.gte=Gold", headers=auth(token))
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "cf.tier.gte"

    seen: list[int] = []
    cursor = None
    while True:
        url = "/api/v1/companies?limit=7&sort=created_at" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=auth(token)).get_json()
        seen += [c["id"] for c in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 30 and len(set(seen)) == 30


def test_companies_are_last_contacted_when_anyone_there_was(
    client: FlaskClient, db: Database
) -> None:
    """The latest of the people's last contact: filtered on, sorted by (never-contacted
    companies last when the latest come first) and paged through without gaps on ties."""
    token = token_for(db, ANNA)
    with db.session() as session:
        for n in range(24):
            company = Company(name=f"Company {n:02d}")
            session.add(company)
            session.flush()
            if n % 6 == 0:
                continue  # nobody there was ever contacted
            for hours in (n % 5, n % 5 + 24, None):  # ties on purpose: ids break them
                when = (
                    None
                    if hours is None
                    else datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=hours)
                )
                session.add(Contact(name="Someone", company_id=company.id, last_contacted_at=when))
        session.add(Company(name="Empty Ltd"))  # no people at all

    def listed(query: str) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            url = f"/api/v1/companies?limit=5&{query}" + (f"&cursor={cursor}" if cursor else "")
            response = client.get(url, headers=auth(token))
            assert response.status_code == 200, response.get_json()
            seen += response.get_json()["items"]
            cursor = response.get_json()["next_cursor"]
            if cursor is None:
                return seen

    everyone = {c["name"]: c["last_contacted_at"] for c in listed("sort=name")}
    assert everyone["Company 07"] == "2026-03-02T02:00:00Z"  # the latest of its people's
    assert everyone["Company 06"] is None and everyone["Empty Ltd"] is None
    for order in ("asc", "desc"):
        rows = listed(f"sort=last_contacted_at&order={order}")
        assert len(rows) == 25 and len({c["id"] for c in rows}) == 25, order
        stamps = [c["last_contacted_at"] for c in rows]
        contacted = [s for s in stamps if s is not None]
        assert contacted == sorted(contacted, reverse=order == "desc")
        nevers = stamps[:5] if order == "asc" else stamps[-5:]
        assert nevers == [None] * 5, order
    recent = listed("last_contacted_after=2026-03-02T03:30:00Z")
    assert {c["name"] for c in recent} == {"Company 04", "Company 09", "Company 14", "Company 19"}
    earlier = listed("last_contacted_before=2026-03-02T01:00:00")  # UTC when no zone is given
    assert {c["last_contacted_at"] for c in earlier} == {"2026-03-02T00:00:00Z"}
    assert {c["name"] for c in earlier} == {"Company 05", "Company 10", "Company 15", "Company 20"}
    never = listed("never_contacted=true")
    assert {c["name"] for c in never} == {f"Company {n:02d}" for n in (0, 6, 12, 18)} | {
        "Empty Ltd"
    }
    assert len(listed("never_contacted=false")) == 20
    exported = client.get("/api/v1/companies/export.csv?never_contacted=true", headers=auth(token))
    assert exported.status_code == 200
    assert sorted(
        r["name"] for r in csv.DictReader(io.StringIO(exported.get_data(as_text=True)))
    ) == sorted(c["name"] for c in never)
    bad = client.get(
        "/api/v1/companies?sort=last_contacted_at&cursor=nonsense", headers=auth(token)
    )
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "cursor"


def test_the_company_page_shows_people_timeline_and_deals(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    token = token_for(db, ANNA)
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [
            make_email(sender="clara@brightline-dental.co.uk", to=ANNA, subject="Chairs"),
            make_email(
                sender="dan@brightline-dental.co.uk",
                to=ANNA,
                subject="Desks",
                date=BASE_DATE + days(1),
            ),
        ],
    )
    company: dict[str, Any] = client.get(
        "/api/v1/companies?q=brightline", headers=auth(token)
    ).get_json()["items"][0]
    make_note(db, "Visited their office", company_id=company["id"])
    won = make_deal(db, "Last year", company_id=company["id"], status="won")
    open_deal = make_deal(db, "This year", company_id=company["id"])

    detail = client.get(f"/api/v1/companies/{company['id']}", headers=auth(token)).get_json()
    assert detail["domains"] == ["brightline-dental.co.uk"]
    assert [c["emails"] for c in detail["contacts"]] == [
        ["clara@brightline-dental.co.uk"],
        ["dan@brightline-dental.co.uk"],
    ]
    assert detail["contact_count"] == 2
    assert [a["subject"] for a in detail["timeline"]] == ["Visited their office", "Desks", "Chairs"]
    assert [d["id"] for d in detail["deals"]] == [open_deal, won]


def test_deleting_a_company_keeps_its_people_deals_and_notes(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna, ben = token_for(db, ANNA), token_for(db, BEN)
    admin = token_for(db, ADMIN, role="admin")
    capture(
        db, settings, tmp_path, ANNA, [make_email(sender="clara@brightline-dental.co.uk", to=ANNA)]
    )
    company = client.get("/api/v1/companies", headers=auth(anna)).get_json()["items"][0]
    deal = make_deal(db, "Chairs", company_id=company["id"])
    note = make_note(db, "About them", company_id=company["id"])

    # Nobody owns a captured company: only an admin may delete it.
    assert client.delete(f"/api/v1/companies/{company['id']}", headers=auth(ben)).status_code == 403
    assert (
        client.delete(f"/api/v1/companies/{company['id']}", headers=auth(admin)).status_code == 204
    )
    with db.session() as session:
        assert session.get(Company, company["id"]) is None
        contact = session.scalars(select(Contact)).one()
        assert contact.company_id is None
        assert session.get_one(Deal, deal).company_id is None
        assert session.get_one(Activity, note).company_id is None
    # The domain is free again.
    again = create(
        client, anna, "companies", name="Brightline", domains=["brightline-dental.co.uk"]
    )
    assert again["domains"] == ["brightline-dental.co.uk"]
