"""CSV export and import of contacts and companies: round trips, previews and per-row errors."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from server.db import Database
from server.models import Company, Contact
from tests.integration.test_api_contacts import ADMIN, ANNA, auth, create, token_for, user_id


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def post_csv(
    client: FlaskClient, token: str, path: str, text: str, *, dry_run: bool = False
) -> dict[str, Any]:
    url = f"/api/v1/{path}/import" + ("?dry_run=1" if dry_run else "")
    response = client.post(url, data=text.encode(), content_type="text/csv", headers=auth(token))
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def count(db: Database, model: type[Contact] | type[Company]) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_export_then_import_is_a_round_trip(client: FlaskClient, db: Database) -> None:
    admin = token_for(db, ADMIN, role="admin")
    token = token_for(db, ANNA)
    create(
        client,
        admin,
        "custom-fields",
        entity="contact",
        key="budget",
        label="B",
        field_type="money",
    )
    create(
        client, admin, "custom-fields", entity="contact", key="since", label="S", field_type="date"
    )
    create(
        client,
        token,
        "contacts",
        name="Clara Jensen",
        emails=["clara@brightline-dental.co.uk", "clara.j@gmail.com"],
        phone="+44 20 7946 0000",
        company_name="Brightline Dental",
        owner_id=user_id(db, ANNA),
        tags=["vip", "dentists"],
        custom_fields={"budget": {"amount": "1200", "currency": "EUR"}, "since": "2024-02-29"},
    )
    create(client, token, "contacts", name='=HYPERLINK("http://evil")', title="-1+2")
    create(client, token, "contacts", name="No Email", lifecycle_stage="customer")

    response = client.get("/api/v1/contacts/export.csv", headers=auth(token))
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.is_streamed  # page by page, not built in memory
    assert "attachment" in response.headers["Content-Disposition"]
    exported = response.get_data(as_text=True)
    rows = rows_of(exported)
    assert [r["name"] for r in rows] == ['\'=HYPERLINK("http://evil")', "Clara Jensen", "No Email"]
    clara = rows[1]
    assert clara["emails"] == "clara@brightline-dental.co.uk; clara.j@gmail.com"
    assert (clara["phone"], clara["company"], clara["owner"]) == (
        "+44 20 7946 0000",
        "Brightline Dental",
        ANNA,
    )
    assert (clara["tags"], clara["cf.budget"], clara["cf.since"]) == (
        "dentists; vip",
        "1200.00 EUR",
        "2024-02-29",
    )
    assert rows[0]["title"] == "'-1+2"  # a formula to a spreadsheet: neutralised

    # Importing the export back changes nothing and creates nothing.
    result = post_csv(client, token, "contacts", exported)
    assert [r["status"] for r in result["rows"]] == ["unchanged"] * 3, result
    assert (result["created"], result["updated"], result["errors"]) == (0, 0, 0)
    assert count(db, Contact) == 3
    after = rows_of(
        client.get("/api/v1/contacts/export.csv", headers=auth(token)).get_data(as_text=True)
    )
    assert [{k: v for k, v in r.items() if k != "updated_at"} for r in after] == [
        {k: v for k, v in r.items() if k != "updated_at"} for r in rows
    ]

    # The export takes the list's filters.
    vip = rows_of(
        client.get("/api/v1/contacts/export.csv?tag=vip&limit=1", headers=auth(token)).get_data(
            as_text=True
        )
    )
    assert [r["name"] for r in vip] == ["Clara Jensen"]
    bad = client.get("/api/v1/contacts/export.csv?sort=shoe", headers=auth(token))
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "sort"
    assert client.get("/api/v1/contacts/export.csv").status_code == 401


def test_an_import_with_a_bad_row_previews_then_writes_the_good_rows(
    client: FlaskClient, db: Database
) -> None:
    token = token_for(db, ANNA)
    create(client, token, "contacts", name="Clara", emails=["clara@brightline-dental.co.uk"])
    text = (
        "Name;Email;Job Title;Lifecycle Stage;Tags;Favourite colour\n"
        "Clara Jensen;CLARA@brightline-dental.co.uk;Owner;customer;vip;blue\n"
        "Dan O'Neill;dan@oneill.ie;;lead;;green\n"
        "Broken;not-an-address;;;;\n"
        "Erin;erin@example.org;;friend;;\n"
        ";;;;;\n"
    )
    preview = post_csv(client, token, "contacts", text, dry_run=True)
    assert preview["dry_run"] is True and preview["written"] is False
    assert preview["message"].startswith("Preview only: nothing was written.")
    assert [(r["row"], r["status"]) for r in preview["rows"]] == [
        (2, "updated"),
        (3, "created"),
        (4, "error"),
        (5, "error"),
    ]
    assert preview["rows"][2]["column"] == "Email"
    assert "not-an-address" in preview["rows"][2]["message"]
    assert preview["rows"][3]["column"] == "Lifecycle Stage"
    assert preview["rows"][1]["id"] is None  # not created yet
    assert preview["ignored_columns"] == ["Favourite colour"]
    assert count(db, Contact) == 1
    untouched = client.get("/api/v1/contacts?q=clara", headers=auth(token)).get_json()["items"][0]
    assert (untouched["name"], untouched["title"], untouched["version"]) == ("Clara", "", 1)

    result = post_csv(client, token, "contacts", text)
    assert result["written"] is True
    assert (result["created"], result["updated"], result["errors"]) == (1, 1, 2)
    assert "2 rows with errors were NOT imported" in result["message"]
    assert count(db, Contact) == 2
    clara = client.get("/api/v1/contacts?q=clara", headers=auth(token)).get_json()["items"][0]
    assert (clara["name"], clara["title"], clara["lifecycle_stage"], clara["tags"]) == (
        "Clara Jensen",
        "Owner",
        "customer",
        ["vip"],
    )
    dan_id = result["rows"][1]["id"]
    dan = client.get(f"/api/v1/contacts/{dan_id}", headers=auth(token)).get_json()
    assert (dan["emails"], dan["source"]) == (["dan@oneill.ie"], "import")


def test_import_takes_a_multipart_file_and_refuses_what_is_not_csv(
    client: FlaskClient, db: Database
) -> None:
    token = token_for(db, ANNA)
    upload = client.post(
        "/api/v1/contacts/import",
        data={
            "file": (io.BytesIO("name,email\r\nZoë,zoe@example.org\r\n".encode("cp1252")), "c.csv")
        },
        content_type="multipart/form-data",
        headers=auth(token),
    )
    assert upload.status_code == 200, upload.get_json()
    assert upload.get_json()["created"] == 1
    zoe = client.get("/api/v1/contacts?q=zoe@", headers=auth(token)).get_json()["items"][0]
    assert zoe["name"] == "Zoë"  # a Windows-1252 file from Excel

    no_file = client.post(
        "/api/v1/contacts/import",
        data={"other": "x"},
        content_type="multipart/form-data",
        headers=auth(token),
    )
    assert no_file.status_code == 422 and no_file.get_json()["error"]["field"] == "file"
    for body in (b"", b"colour,size\nred,3\n", b"\n\n"):
        response = client.post(
            "/api/v1/contacts/import", data=body, content_type="text/csv", headers=auth(token)
        )
        assert response.status_code == 400, body
        assert response.get_json()["error"]["field"] == "file"
    assert count(db, Contact) == 1


def test_companies_export_and_import(client: FlaskClient, db: Database) -> None:
    token = token_for(db, ANNA)
    create(client, token, "companies", name="Acme", domains=["acme.com"], tags=["partner"])
    exported = client.get("/api/v1/companies/export.csv", headers=auth(token)).get_data(
        as_text=True
    )
    rows = rows_of(exported)
    assert [(r["name"], r["domains"], r["tags"], r["contacts"]) for r in rows] == [
        ("Acme", "acme.com", "partner", "0")
    ]
    text = (
        "company,website,tags\n"
        "Acme Corp,https://www.acme.com/,big\n"
        "Initech,initech.com,\n"
        "Gmail fans,gmail.com,\n"
        ",,\n"
    )
    result = post_csv(client, token, "companies", text)
    assert [(r["row"], r["status"], r.get("column")) for r in result["rows"]] == [
        (2, "updated", None),
        (3, "created", None),
        (4, "error", "website"),
    ]
    acme = client.get("/api/v1/companies?q=acme", headers=auth(token)).get_json()["items"][0]
    assert (acme["name"], acme["tags"]) == ("Acme Corp", ["big", "partner"])
    assert count(db, Company) == 2


def test_a_large_export_streams_every_row_once(client: FlaskClient, db: Database) -> None:
    token = token_for(db, ANNA)
    with db.session() as session:
        session.add_all(Contact(name=f"Person {n % 97}") for n in range(1201))  # pages of 500
    response = client.get("/api/v1/contacts/export.csv?sort=name&order=desc", headers=auth(token))
    rows = rows_of(response.get_data(as_text=True))
    assert len(rows) == 1201
    assert len({r["id"] for r in rows}) == 1201
    names = [r["name"].lower() for r in rows]
    assert names == sorted(names, reverse=True)
