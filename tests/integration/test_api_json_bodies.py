"""Request bodies are JSON, app-wide: any other type gets 415 naming what to send, except where a
view reads something else (the CSV imports: text/csv or a multipart upload)."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.crm.users import add_user, create_token
from server.db import Database

CSV_IMPORTS = {"/api/v1/contacts/import", "/api/v1/companies/import"}
# A web page's plain HTML form posts here (docs/lead-form.md): form bodies are its point.
FORM_BODIES = {"/api/v1/forms/lead", "/u/1"}  # the lead form; the unsubscribe link

# Nothing here depends on the database: one backend is enough.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
def admin(db: Database) -> dict[str, str]:
    with db.session() as session:
        user = add_user(session, "boss@northwind-supplies.com", role="admin")
        token = create_token(session, user, expires_in=timedelta(hours=1)).plaintext
    return {"Authorization": f"Bearer {token}"}


def body_calls(app: Flask) -> list[tuple[str, str]]:
    """(method, url) of every view that takes a body, with 1 for each path parameter."""
    calls = []
    for rule in app.url_map.iter_rules():
        url = re.sub(r"<[^>]+>", "1", rule.rule)
        calls += [(m, url) for m in sorted(rule.methods or ()) if m in {"POST", "PUT", "PATCH"}]
    return calls


def test_every_view_refuses_form_and_text_bodies_with_415(
    app: Flask, client: FlaskClient, admin: dict[str, str]
) -> None:
    calls = body_calls(app)
    assert len(calls) > 40
    for method, url in calls:
        if url in CSV_IMPORTS or url in FORM_BODIES:
            continue
        for data, content_type in [
            ({"name": "x"}, "application/x-www-form-urlencoded"),
            ({"name": "x"}, "multipart/form-data"),
            ('{"name": "x"}', "text/plain"),
            ('{"name": "x"}', ""),
        ]:
            response = client.open(
                url, method=method, data=data, content_type=content_type, headers=admin
            )
            assert response.status_code == 415, (method, url, content_type, response.get_json())
            error = response.get_json()["error"]
            assert error["code"] == "unsupported_media_type"
            assert "application/json" in error["message"]


def test_json_in_all_its_spellings_and_no_body_at_all_pass(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    for content_type in ["application/json", "application/json; charset=utf-8"]:
        response = client.post(
            "/api/v1/tokens", data='{"name": "ci"}', content_type=content_type, headers=admin
        )
        assert response.status_code == 201, content_type
    # No body: the rule has nothing to say, the view answers (here: no such activity).
    assert client.post("/api/v1/activities/1/unlog", headers=admin).status_code == 404


def test_strangers_are_told_to_sign_in_before_anything_about_bodies(client: FlaskClient) -> None:
    response = client.post("/api/v1/notes", data={"body": "x"})
    assert response.status_code == 401


@pytest.mark.parametrize("url", sorted(CSV_IMPORTS))
def test_csv_imports_take_csv_or_an_upload_and_nothing_else(
    client: FlaskClient, admin: dict[str, str], url: str
) -> None:
    csv = b"name,email,domain\nClara,clara@brightline-dental.co.uk,brightline-dental.co.uk\n"
    as_text = client.post(
        f"{url}?dry_run=1", data=csv, content_type="text/csv; charset=utf-8", headers=admin
    )
    assert as_text.status_code == 200, as_text.get_json()
    upload = client.post(
        f"{url}?dry_run=1",
        data={"file": (io.BytesIO(csv), "people.csv")},
        content_type="multipart/form-data",
        headers=admin,
    )
    assert upload.status_code == 200, upload.get_json()
    for content_type in ["application/json", "application/x-www-form-urlencoded"]:
        refused = client.post(url, data=csv, content_type=content_type, headers=admin)
        assert refused.status_code == 415, content_type
        assert "text/csv or multipart/form-data" in refused.get_json()["error"]["message"]
