"""/api/v1/admin/capture/explain and /api/v1/admin/quarantine: why an email was (not) captured,
what could not be read, and a retry after a fix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from server.config import Settings
from server.crm.users import add_user, create_token
from server.db import Database
from server.mail_ingest.importer import import_files
from server.models import CaptureDecision, MailboxLink
from tests.conftest import Cli
from tests.support.mail import make_email, write_maildir

ADMIN = "boss@northwind-supplies.com"
ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
CLARA = "Clara Jensen <clara@brightline-dental.co.uk>"


class Api:
    def __init__(self, client: FlaskClient, db: Database) -> None:
        self.client = client
        with db.session() as session:
            user = add_user(session, ADMIN, role="admin")
            self.token = create_token(session, user, expires_in=timedelta(hours=1)).plaintext

    def __call__(self, method: str, url: str, json: Any = None) -> TestResponse:
        headers = {"Authorization": f"Bearer {self.token}"}
        return self.client.open(url, method=method, json=json, headers=headers)


@pytest.fixture
def api(client: FlaskClient, db: Database) -> Api:
    return Api(client, db)


def capture(settings: Settings, db: Database, folder: Path, *mail: bytes) -> None:
    import_files(db, settings, [write_maildir(folder, mail)], owner=ANNA, jobs=1)


def explain(api: Api, message_id: str) -> dict[str, Any]:
    answer = api("GET", f"/api/v1/admin/capture/explain?message_id={quote(message_id, safe='')}")
    assert answer.status_code == 200, answer.get_json()
    body: dict[str, Any] = answer.get_json()
    return body


def test_explain_says_what_happened_in_each_mailbox_and_why(
    api: Api, db: Database, settings: Settings, tmp_path: Path, cli: Cli
) -> None:
    customer = make_email(sender=CLARA, to=ANNA, message_id="<Offer-7@Brightline-Dental.co.uk>")
    internal = make_email(sender=ANNA, to=BEN, message_id="<lunch-42@northwind-supplies.com>")
    capture(settings, db, tmp_path / "anna", customer, internal, b"\x00\x01 not mail \xff" * 20)

    captured = explain(api, "<offer-7@brightline-dental.co.uk>")
    assert (captured["seen"], captured["advice"]) == (True, None)
    assert captured["key"] == "mid:offer-7@brightline-dental.co.uk"
    [decision] = captured["decisions"]
    assert (decision["decision"], decision["owner"], decision["link_kind"], decision["folder"]) == (
        "captured",
        ANNA,
        "import",
        "INBOX",
    )
    assert decision["activity_id"] is not None
    assert decision["summary"] == f"captured as activity {decision['activity_id']}"
    assert decision["activity_unlogged"] is False

    skipped = explain(api, "lunch-42@northwind-supplies.com")["decisions"][0]
    assert (skipped["decision"], skipped["rule"]) == ("skipped", "internal_only")
    assert "every participant is in an internal domain" in skipped["rule_text"]
    assert skipped["activity_id"] is None
    printed = cli("capture", "explain", "<lunch-42@northwind-supplies.com>").output
    assert skipped["summary"] in printed, "the CLI prints the same trace"

    with db.session() as session:
        key = session.scalars(
            select(CaptureDecision.message_key).where(CaptureDecision.decision == "quarantined")
        ).one()
    quarantined = explain(api, key)["decisions"][0]
    assert quarantined["decision"] == "quarantined"
    assert quarantined["quarantined_item_id"] is not None
    assert "raw message is kept" in quarantined["summary"]

    unknown = explain(api, "<never@seen.example>")
    assert (unknown["seen"], unknown["decisions"]) == (False, [])
    assert "linked" in unknown["advice"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("", "message_id"), ("?message_id=", "message_id"), ("?message_id=a%00b", "message_id")],
)
def test_explain_needs_a_message_id(api: Api, query: str, field: str) -> None:
    answer = api("GET", f"/api/v1/admin/capture/explain{query}")
    assert answer.status_code == 422
    assert answer.get_json()["error"]["field"] == field


def test_quarantined_mail_is_listed_and_captured_by_a_retry_after_a_fix(
    api: Api,
    db: Database,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from server.mail_ingest import prepare
    from server.mail_ingest.errors import BadItem

    real_parse = prepare.parse_message_and_calendar

    def old_buggy_parser(raw: bytes, **kwargs: object) -> object:
        if b"Tricky" in raw:
            raise BadItem("not_an_email", "this version could not read it")
        return real_parse(raw, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(prepare, "parse_message_and_calendar", old_buggy_parser)
    tricky = make_email(sender=CLARA, to=ANNA, subject="Tricky one", message_id="<t@x>")
    capture(settings, db, tmp_path / "anna", tricky, make_email(sender=CLARA, to=ANNA))
    with db.session() as session:
        link_id = session.scalars(select(MailboxLink.id)).one()

    listed = api("GET", "/api/v1/admin/quarantine").get_json()
    [item] = listed["items"]
    assert (item["link_id"], item["owner"], item["link_kind"]) == (link_id, ANNA, "import")
    assert (item["reason"], item["detail"]) == ("not_an_email", "this version could not read it")
    assert (item["attempts"], item["resolved_at"], item["folder"]) == (1, None, "INBOX")
    assert item["message_key"] is not None
    assert explain(api, item["message_key"])["decisions"][0]["quarantined_item_id"] == item["id"]
    assert api("GET", f"/api/v1/admin/quarantine?link_id={link_id + 1}").get_json()["items"] == []

    monkeypatch.setattr(prepare, "parse_message_and_calendar", real_parse)  # the "upgrade"
    assert (
        api("POST", "/api/v1/admin/quarantine/retry", {"link_id": link_id + 1}).status_code == 404
    )
    retried = api("POST", "/api/v1/admin/quarantine/retry", {})
    assert retried.status_code == 200, retried.get_json()
    assert retried.get_json() == {
        "tried": 1,
        "resolved": 1,
        "still_quarantined": 0,
        "captured": 1,
        "known": 0,
        "skipped": 0,
    }
    assert explain(api, "<t@x>")["decisions"][0]["decision"] == "captured"
    assert api("GET", "/api/v1/admin/quarantine").get_json()["items"] == []
    resolved = api("GET", "/api/v1/admin/quarantine?state=resolved").get_json()["items"]
    assert [r["id"] for r in resolved] == [item["id"]]
    assert resolved[0]["resolved_at"] is not None
    again = api("POST", "/api/v1/admin/quarantine/retry", {"link_id": link_id}).get_json()
    assert again["tried"] == 0


def test_the_quarantine_pages_newest_first(
    api: Api, db: Database, settings: Settings, tmp_path: Path
) -> None:
    garbage = [bytes([n]) * 40 + b"\xff not mail" for n in range(1, 6)]
    capture(settings, db, tmp_path / "anna", *garbage)
    first = api("GET", "/api/v1/admin/quarantine?limit=2").get_json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    seen = [i["id"] for i in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = api("GET", f"/api/v1/admin/quarantine?limit=2&cursor={cursor}").get_json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 5
    bad = api("GET", "/api/v1/admin/quarantine?state=maybe")
    assert (bad.status_code, bad.get_json()["error"]["field"]) == (422, "state")


def test_a_retry_needs_no_body(api: Api) -> None:
    answer = api("POST", "/api/v1/admin/quarantine/retry")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["tried"] == 0
