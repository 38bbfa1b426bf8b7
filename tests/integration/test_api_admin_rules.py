"""/api/v1/admin/rules and /api/v1/me/never-log: rules apply to captured mail at once, and say how
much they emptied; members keep their own never-log list."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from server.config import Settings
from server.crm.users import add_user, create_token
from server.db import Database
from server.mail_ingest.importer import import_files
from server.models import Activity, CaptureRule
from tests.support.mail import make_email, write_maildir

ADMIN = "boss@northwind-supplies.com"
ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
CLARA = "Clara Jensen <clara@brightline-dental.co.uk>"
DAN = "Dan Okafor <dan@okafor-build.example>"


class Api:
    def __init__(self, client: FlaskClient, db: Database) -> None:
        self.client = client
        self.tokens: dict[str, str] = {}
        self.ids: dict[str, int] = {}
        with db.session() as session:
            for address, role in [(ADMIN, "admin"), (ANNA, "member"), (BEN, "member")]:
                user = add_user(session, address, role=role)
                self.ids[address] = user.id
                self.tokens[address] = create_token(
                    session, user, expires_in=timedelta(hours=1)
                ).plaintext

    def __call__(
        self, method: str, url: str, json: Any = None, *, as_user: str = ADMIN
    ) -> TestResponse:
        headers = {"Authorization": f"Bearer {self.tokens[as_user]}"}
        return self.client.open(url, method=method, json=json, headers=headers)


@pytest.fixture
def api(client: FlaskClient, db: Database) -> Api:
    return Api(client, db)


def capture(settings: Settings, db: Database, folder: Path, owner: str, *mail: bytes) -> None:
    import_files(db, settings, [write_maildir(folder, mail)], owner=owner, jobs=1)


def subjects(db: Database) -> dict[str, str]:
    """Message key → subject of every captured email ("" once a rule emptied it)."""
    with db.session() as session:
        rows = session.execute(select(Activity.message_key, Activity.subject)).all()
    return {str(key): subject for key, subject in rows}


def test_a_block_rule_empties_captured_mail_and_says_how_much(
    api: Api, db: Database, settings: Settings, tmp_path: Path
) -> None:
    capture(
        settings,
        db,
        tmp_path / "anna",
        ANNA,
        make_email(sender=CLARA, to=ANNA, subject="Chairs", message_id="<c1@x>"),
        make_email(sender=ANNA, to=CLARA, subject="Re: Chairs", message_id="<c2@x>"),
        make_email(sender=DAN, to=ANNA, subject="Scaffolding", message_id="<d1@x>"),
    )
    added = api(
        "POST", "/api/v1/admin/rules", {"kind": "block_domain", "value": "@Brightline-Dental.co.uk"}
    )
    assert added.status_code == 201, added.get_json()
    body = added.get_json()
    assert body["emptied"] == 2
    assert body["rule"]["value"] == "brightline-dental.co.uk"
    assert (body["rule"]["kind"], body["rule"]["user_id"]) == ("block_domain", None)
    assert subjects(db) == {"mid:c1@x": "", "mid:c2@x": "", "mid:d1@x": "Scaffolding"}

    duplicate = api(
        "POST", "/api/v1/admin/rules", {"kind": "block_domain", "value": "brightline-dental.co.uk"}
    )
    assert duplicate.status_code == 409

    listed = api("GET", "/api/v1/admin/rules?kind=block_domain").get_json()
    assert [r["value"] for r in listed["items"]] == ["brightline-dental.co.uk"]
    assert listed["settings"]["skip_internal_only"] is True

    removed = api("DELETE", f"/api/v1/admin/rules/{body['rule']['id']}")
    assert removed.status_code == 204
    assert api("DELETE", f"/api/v1/admin/rules/{body['rule']['id']}").status_code == 404
    assert subjects(db)["mid:c1@x"] == "", "emptied mail is not brought back"


def test_the_rule_list_pages_and_names_whose_never_log_entries_they_are(api: Api) -> None:
    for n in range(3):
        assert (
            api(
                "POST",
                "/api/v1/admin/rules",
                {"kind": "block_address", "value": f"x{n}@spam.example"},
            ).status_code
            == 201
        )
    ben = api.ids[BEN]
    entry = api(
        "POST", "/api/v1/admin/rules", {"kind": "never_log", "value": "a.example", "user_id": ben}
    )
    assert entry.status_code == 201
    assert entry.get_json()["rule"]["user_email"] == BEN

    first = api("GET", "/api/v1/admin/rules?limit=2").get_json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = api("GET", f"/api/v1/admin/rules?limit=2&cursor={first['next_cursor']}").get_json()
    everything = first["items"] + rest["items"]
    internal = [r for r in everything if r["kind"] == "internal_domain"]
    assert {r["value"] for r in everything if r["kind"] == "block_address"} == {
        "x0@spam.example",
        "x1@spam.example",
        "x2@spam.example",
    }
    assert not internal or internal[0]["value"] == "northwind-supplies.com"
    bens = api("GET", f"/api/v1/admin/rules?user_id={ben}").get_json()["items"]
    assert [(r["value"], r["user_email"]) for r in bens] == [("a.example", BEN)]


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"kind": "block_domain", "value": "not a domain"}, 400, "value"),
        ({"kind": "block_address", "value": "example.com"}, 400, "value"),
        ({"kind": "allow_everything", "value": "x.example"}, 422, "kind"),
        ({"kind": "never_log", "value": "x.example"}, 400, "user_id"),
        ({"kind": "never_log", "value": "x.example", "user_id": 999999}, 400, "user_id"),
        ({"kind": "never_log", "value": "x.example", "user_id": 2**40}, 422, "user_id"),
        ({"kind": "block_domain", "value": "x.example", "user_id": 1}, 400, "user_id"),
        ({"kind": "block_domain", "value": ""}, 422, "value"),
        ({"kind": "block_domain", "value": "x.example", "extra": True}, 422, "extra"),
        ({"kind": "block_domain", "value": "x\u0000.example"}, 400, "value"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_field(
    api: Api, payload: dict[str, Any], status: int, field: str
) -> None:
    answer = api("POST", "/api/v1/admin/rules", payload)
    assert answer.status_code == status, answer.get_json()
    assert answer.get_json()["error"]["field"] == field


def test_capture_settings_change_one_at_a_time(api: Api) -> None:
    changed = api("PUT", "/api/v1/admin/rules/settings", {"skip_automated": False})
    assert changed.status_code == 200
    assert changed.get_json() == {
        "skip_internal_only": True,
        "skip_mailing_lists": True,
        "skip_automated": False,
        "auto_create_contacts": "all",
    }
    api("PUT", "/api/v1/admin/rules/settings", {"auto_create_contacts": "sent"})
    settings = api("GET", "/api/v1/admin/rules").get_json()["settings"]
    assert (settings["skip_automated"], settings["auto_create_contacts"]) == (False, "sent")
    for payload, field in [
        ({"skip_automated": "no"}, "skip_automated"),
        ({"skip_automated": 0}, "skip_automated"),
        ({"auto_create_contacts": "some"}, "auto_create_contacts"),
        ({"capture_everything": True}, "capture_everything"),
    ]:
        refused = api("PUT", "/api/v1/admin/rules/settings", payload)
        assert refused.status_code == 422, payload
        assert refused.get_json()["error"]["field"] == field


def test_my_never_log_list_empties_only_what_my_mailboxes_alone_captured(
    api: Api, db: Database, settings: Settings, tmp_path: Path
) -> None:
    shared = make_email(sender=CLARA, to=[ANNA, BEN], subject="Both of us", message_id="<s@x>")
    annas = make_email(sender=CLARA, to=ANNA, subject="Only Anna", message_id="<a@x>")
    capture(settings, db, tmp_path / "anna", ANNA, shared, annas)
    capture(settings, db, tmp_path / "ben", BEN, shared)

    added = api(
        "POST", "/api/v1/me/never-log", {"value": "clara@brightline-dental.co.uk"}, as_user=ANNA
    )
    assert added.status_code == 201, added.get_json()
    assert added.get_json()["emptied"] == 1
    assert subjects(db) == {"mid:s@x": "Both of us", "mid:a@x": ""}, "Ben's copy stays Ben's"

    mine = api("GET", "/api/v1/me/never-log", as_user=ANNA).get_json()["items"]
    assert [m["value"] for m in mine] == ["clara@brightline-dental.co.uk"]
    assert api("GET", "/api/v1/me/never-log", as_user=BEN).get_json()["items"] == []
    with db.session() as session:
        rule = session.scalars(select(CaptureRule).where(CaptureRule.kind == "never_log")).one()
        assert rule.user_id == api.ids[ANNA]

    entry_id = mine[0]["id"]
    assert api("DELETE", f"/api/v1/me/never-log/{entry_id}", as_user=BEN).status_code == 404
    assert api("DELETE", f"/api/v1/me/never-log/{entry_id}", as_user=ANNA).status_code == 204
    assert api("GET", "/api/v1/me/never-log", as_user=ANNA).get_json()["items"] == []


def test_never_log_input_is_checked(api: Api) -> None:
    for payload, status, field in [
        ({"value": "not an address"}, 400, "value"),
        ({"value": ""}, 422, "value"),
        ({"value": "x.example", "user_id": 1}, 422, "user_id"),
    ]:
        answer = api("POST", "/api/v1/me/never-log", payload, as_user=ANNA)
        assert answer.status_code == status, (payload, answer.get_json())
        assert answer.get_json()["error"]["field"] == field
    assert (
        api("POST", "/api/v1/me/never-log", {"value": "x.example"}, as_user=ANNA).status_code == 201
    )
    again = api("POST", "/api/v1/me/never-log", {"value": "X.example"}, as_user=ANNA)
    assert again.status_code == 409


@pytest.mark.parametrize("rule_id", ["99999999999999999999", "2147483648", "0"])
def test_ids_past_what_the_database_holds_are_not_found(api: Api, rule_id: str) -> None:
    assert api("DELETE", f"/api/v1/admin/rules/{rule_id}").status_code == 404
    assert api("DELETE", f"/api/v1/me/never-log/{rule_id}", as_user=ANNA).status_code == 404


def test_members_may_not_edit_the_team_s_rules(api: Api) -> None:
    for method, url, payload in [
        ("GET", "/api/v1/admin/rules", None),
        ("POST", "/api/v1/admin/rules", {"kind": "block_domain", "value": "x.example"}),
        ("PUT", "/api/v1/admin/rules/settings", {"skip_automated": False}),
        ("DELETE", "/api/v1/admin/rules/1", None),
    ]:
        answer = api(method, url, payload, as_user=ANNA)
        assert answer.status_code == 403, (method, url)
