"""/api/v1/admin/mailboxes against a real Dovecot: link, test, status, pause/resume/sync/remove,
drop addresses, members' own view, and no secret in any answer."""

from __future__ import annotations

import base64
import re
import socket
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from server.app import create_app
from server.config import Settings, load_settings
from server.crm.mailboxes import add_link
from server.crm.users import add_user, create_token
from server.crypto import SecretBox
from server.db import Database
from server.models import Job, MailboxLink
from tests.conftest import Cli
from tests.support.dovecot import DovecotServer
from tests.support.dovecot_fixtures import ImapAccount
from tests.support.mail import make_email

ADMIN = "boss@northwind-supplies.com"
ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
DROP_DOMAIN = "drop.northwind-supplies.com"


@pytest.fixture
def env(env: dict[str, str], dovecot_server: DovecotServer) -> dict[str, str]:
    """The app trusts the test Dovecot's CA and has a drop domain."""
    return {
        **env,
        "RAPPORT_CA_BUNDLE": str(dovecot_server.ca_path),
        "RAPPORT_DROP_DOMAIN": DROP_DOMAIN,
    }


class Api:
    """A client signed in as the admin (or a member) that keeps every answer it received, so a
    test can check that no secret was ever in one."""

    def __init__(self, client: FlaskClient, db: Database) -> None:
        self.client = client
        self.bodies: list[str] = []
        self.tokens: dict[str, str] = {}
        with db.session() as session:
            for address, role in [(ADMIN, "admin"), (ANNA, "member"), (BEN, "member")]:
                user = add_user(session, address, role=role)
                issued = create_token(session, user, expires_in=timedelta(hours=1))
                self.tokens[address] = issued.plaintext

    def __call__(
        self, method: str, url: str, json: Any = None, *, as_user: str = ADMIN
    ) -> TestResponse:
        headers = {"Authorization": f"Bearer {self.tokens[as_user]}"}
        response = self.client.open(url, method=method, json=json, headers=headers)
        self.bodies.append(response.get_data(as_text=True))
        return response


@pytest.fixture
def api(client: FlaskClient, db: Database) -> Api:
    return Api(client, db)


def imap_body(account: ImapAccount, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "owner": ANNA,
        "host": account.server.host,
        "port": account.server.imaps_port,
        "security": "ssl",
        "user": account.user,
        "password": account.password,
    }
    body.update(changes)
    return body


def link_count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(MailboxLink)) or 0)


def assert_no_secret(api: Api, db: Database, password: str) -> None:
    """Neither the password nor the stored ciphertext (as is, or base64-encoded) in any answer."""
    with db.session() as session:
        ciphertexts = [s for s in session.scalars(select(MailboxLink.secret)) if s]
    needles = [password]
    for secret in ciphertexts:
        needles += [secret.decode("latin-1"), base64.b64encode(secret).decode()]
    assert api.bodies
    for body in api.bodies:
        for needle in needles:
            assert needle not in body


def test_an_imap_link_is_tested_saved_and_listed_without_its_password(
    api: Api, db: Database, imap_account: ImapAccount
) -> None:
    created = api("POST", "/api/v1/admin/mailboxes/imap", imap_body(imap_account))
    assert created.status_code == 201, created.get_json()
    link = created.get_json()
    assert link["folders"] == ["INBOX", "Sent"]
    assert (link["kind"], link["owner"], link["status"]) == ("imap", ANNA, "active")
    assert link["settings"] == {
        "host": imap_account.server.host,
        "port": imap_account.server.imaps_port,
        "security": "ssl",
        "user": imap_account.user,
        "folders": None,
    }
    assert link["has_credentials"] is True
    assert link["status_reason"] is None

    listed = api("GET", "/api/v1/admin/mailboxes").get_json()
    assert [item["id"] for item in listed["items"]] == [link["id"]]
    detail = api("GET", f"/api/v1/admin/mailboxes/{link['id']}")
    assert detail.status_code == 200
    assert detail.get_json()["folders"] == []  # nothing synced yet
    with db.session() as session:
        stored = session.get(MailboxLink, link["id"])
        assert stored is not None and stored.secret is not None
        assert imap_account.password.encode() not in stored.secret, "stored encrypted"
    assert_no_secret(api, db, imap_account.password)


def test_a_wrong_password_saves_nothing_and_names_the_password(
    api: Api, db: Database, imap_account: ImapAccount
) -> None:
    wrong = "not-the-password-4711"
    refused = api("POST", "/api/v1/admin/mailboxes/imap", imap_body(imap_account, password=wrong))
    assert refused.status_code == 400
    error = refused.get_json()["error"]
    assert (error["code"], error["field"]) == ("imap_credentials", "password")
    assert error["message"].startswith("the link was not saved: the server refused")
    assert link_count(db) == 0
    assert_no_secret(api, db, wrong)


def test_a_missing_folder_is_named_and_nothing_is_saved(
    api: Api, db: Database, imap_account: ImapAccount
) -> None:
    body = imap_body(imap_account, folders=["INBOX", "Nope"])
    refused = api("POST", "/api/v1/admin/mailboxes/imap", body)
    assert refused.status_code == 400
    error = refused.get_json()["error"]
    assert (error["code"], error["field"]) == ("imap_folder", "folders")
    assert "'Nope' does not exist" in error["message"]
    assert link_count(db) == 0


def test_an_untrusted_certificate_points_at_rapport_ca_bundle(
    env: dict[str, str], db: Database, imap_account: ImapAccount
) -> None:
    without_ca = {k: v for k, v in env.items() if k != "RAPPORT_CA_BUNDLE"}
    app = create_app(load_settings(without_ca), db=db)
    api = Api(app.test_client(), db)
    body = {k: v for k, v in imap_body(imap_account).items() if k != "owner"}
    refused = api("POST", "/api/v1/admin/mailboxes/test", body)
    assert refused.status_code == 400
    error = refused.get_json()["error"]
    assert (error["code"], error["field"]) == ("imap_tls_untrusted", "security")
    assert "RAPPORT_CA_BUNDLE" in error["message"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_connection_test_saves_nothing_and_says_what_to_fix(
    api: Api, db: Database, imap_account: ImapAccount
) -> None:
    connection = {k: v for k, v in imap_body(imap_account).items() if k != "owner"}
    ok = api("POST", "/api/v1/admin/mailboxes/test", connection)
    assert ok.status_code == 200, ok.get_json()
    assert ok.get_json()["ok"] is True
    assert ok.get_json()["folders"] == ["INBOX", "Sent"]
    starttls = {**connection, "security": "starttls", "port": imap_account.server.imap_port}
    assert api("POST", "/api/v1/admin/mailboxes/test", starttls).get_json()["ok"] is True

    cases = [
        ({"port": free_port()}, "imap_port", "port"),
        ({"host": "mail server.example"}, "imap_host", "host"),
        ({"host": "a..b"}, "imap_host", "host"),
        ({"password": "wrong"}, "imap_credentials", "password"),
        ({"password": "line\r\nA1 LOGOUT"}, "imap_invalid", "password"),
        ({"folders": ["Kunden"]}, "imap_folder", "folders"),
        ({"port": imap_account.server.imap_port}, "imap_tls", "security"),  # ssl to a plain port
    ]
    for change, code, field in cases:
        answer = api("POST", "/api/v1/admin/mailboxes/test", {**connection, **change})
        assert answer.status_code == 400, (change, answer.get_json())
        error = answer.get_json()["error"]
        assert (error["code"], error["field"]) == (code, field), (change, error)
    assert link_count(db) == 0
    assert_no_secret(api, db, imap_account.password)


def test_the_same_mailbox_cannot_be_linked_twice(api: Api, imap_account: ImapAccount) -> None:
    assert api("POST", "/api/v1/admin/mailboxes/imap", imap_body(imap_account)).status_code == 201
    again = api("POST", "/api/v1/admin/mailboxes/imap", imap_body(imap_account, owner=BEN))
    assert again.status_code == 409
    assert again.get_json()["error"]["field"] == "user"


def test_pause_resume_sync_and_remove(
    api: Api, db: Database, cli: Cli, imap_account: ImapAccount
) -> None:
    server, user = imap_account.server, imap_account.user
    server.append_many(
        user,
        "INBOX",
        [make_email(sender="Clara <clara@brightline-dental.co.uk>", to=ANNA) for _ in range(3)],
    )
    link_id = api("POST", "/api/v1/admin/mailboxes/imap", imap_body(imap_account)).get_json()["id"]
    url = f"/api/v1/admin/mailboxes/{link_id}"

    paused = api("POST", f"{url}/pause").get_json()
    assert paused["status"] == "paused"
    assert "resumed" in paused["status_reason"]
    refused = api("POST", f"{url}/sync")
    assert refused.status_code == 409
    assert "resume it" in refused.get_json()["error"]["message"]
    assert cli("worker", "--once").output.strip() == "0 jobs run"

    resumed = api("POST", f"{url}/resume").get_json()
    assert (resumed["status"], resumed["status_reason"]) == ("active", None)
    queued = api("POST", f"{url}/sync")
    assert queued.status_code == 202
    answer = queued.get_json()
    assert answer["running"] is False and "does not wait" in answer["message"]
    assert api("POST", f"{url}/sync").get_json()["job_id"] == answer["job_id"], "one pending sync"
    with db.session() as session:
        job = session.get(Job, answer["job_id"])
        assert job is not None and (job.kind, job.status) == ("sync_link", "queued")
        assert job.payload == {"link_id": link_id}

    assert cli("worker", "--once").exit_code == 0
    detail = api("GET", url).get_json()
    assert detail["messages_captured"] == 3
    assert detail["last_success_at"] is not None
    inbox = next(f for f in detail["folders"] if f["folder"] == "INBOX")
    assert (inbox["messages"], inbox["gone"]) == (3, 0)
    assert inbox["checkpoint_updated_at"] is not None
    assert {(c["decision"], c["count"]) for c in detail["decisions"]} == {("captured", 3)}
    assert len(detail["recent_decisions"]) == 3
    assert all(d["message_key"].startswith("mid:") for d in detail["recent_decisions"])

    removed = api("DELETE", f"{url}?purge=1")
    assert removed.status_code == 200
    assert removed.get_json()["purged"] == 3
    assert api("GET", url).status_code == 404
    assert api("GET", "/api/v1/admin/mailboxes").get_json()["items"] == []
    assert api("POST", f"{url}/resume").status_code == 404
    assert_no_secret(api, db, imap_account.password)


def test_a_drop_address_is_created_shown_and_rotated(api: Api, imap_account: ImapAccount) -> None:
    created = api("POST", "/api/v1/admin/mailboxes/drop", {"owner": BEN, "visibility": "private"})
    assert created.status_code == 201, created.get_json()
    link = created.get_json()
    assert re.fullmatch(rf"crm\+[0-9a-f]{{20}}@{re.escape(DROP_DOMAIN)}", link["drop_address"])
    assert (link["kind"], link["visibility"], link["has_credentials"]) == ("drop", "private", False)
    again = api("POST", "/api/v1/admin/mailboxes/drop", {"owner": BEN})
    assert again.status_code == 409

    rotated = api("POST", f"/api/v1/admin/mailboxes/{link['id']}/rotate")
    assert rotated.status_code == 200
    assert rotated.get_json()["drop_address"] != link["drop_address"]
    nothing_to_sync = api("POST", f"/api/v1/admin/mailboxes/{link['id']}/sync")
    assert nothing_to_sync.status_code == 409
    assert "captured as it arrives" in nothing_to_sync.get_json()["error"]["message"]

    imap_id = api("POST", "/api/v1/admin/mailboxes/imap", imap_body(imap_account)).get_json()["id"]
    not_drop = api("POST", f"/api/v1/admin/mailboxes/{imap_id}/rotate")
    assert not_drop.status_code == 400
    assert "only drop links" in not_drop.get_json()["error"]["message"]


def test_members_see_only_their_own_links_and_change_none(
    api: Api, imap_account: ImapAccount
) -> None:
    anna_link = api("POST", "/api/v1/admin/mailboxes/imap", imap_body(imap_account)).get_json()
    ben_drop = api("POST", "/api/v1/admin/mailboxes/drop", {"owner": BEN}).get_json()

    mine = api("GET", "/api/v1/mailboxes/mine", as_user=BEN).get_json()["items"]
    assert [(m["id"], m["drop_address"]) for m in mine] == [
        (ben_drop["id"], ben_drop["drop_address"])
    ]
    annas = api("GET", "/api/v1/mailboxes/mine", as_user=ANNA).get_json()["items"]
    assert [m["id"] for m in annas] == [anna_link["id"]]
    assert api("GET", "/api/v1/mailboxes/mine").get_json()["items"] == [], "the admin owns none"
    for method, url in [
        ("POST", f"/api/v1/admin/mailboxes/{anna_link['id']}/pause"),
        ("DELETE", f"/api/v1/admin/mailboxes/{anna_link['id']}"),
        ("GET", "/api/v1/admin/mailboxes"),
    ]:
        assert api(method, url, as_user=ANNA).status_code == 403


def admin_calls(app: Flask) -> list[tuple[str, str]]:
    """(method, url) of every rule under /api/v1/admin, with 1 for each path parameter."""
    calls = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/admin"):
            continue
        url = re.sub(r"<[^>]+>", "1", rule.rule)
        calls += [(m, url) for m in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]
    return calls


def test_a_member_gets_403_on_every_admin_endpoint(app: Flask, api: Api) -> None:
    calls = admin_calls(app)
    assert len(calls) >= 16
    for method, url in calls:
        for payload in (None, {}, {"owner": ANNA, "kind": "block_domain", "value": "x.example"}):
            answer = api(method, url, payload, as_user=ANNA)
            assert answer.status_code == 403, (method, url, payload, answer.status_code)
            assert answer.get_json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("method", "url", "payload", "status", "field"),
    [
        ("POST", "/api/v1/admin/mailboxes/imap", {"owner": ANNA}, 422, "host"),
        ("POST", "/api/v1/admin/mailboxes/imap", {"host": "h", "user": "u", "password": "p",
                                                  "owner": "not an address"}, 400, "owner"),
        ("POST", "/api/v1/admin/mailboxes/imap", {"host": "h", "user": "u", "password": "p",
                                                  "owner": ANNA, "port": 0}, 422, "port"),
        ("POST", "/api/v1/admin/mailboxes/imap", {"host": "h", "user": "u", "password": "p",
                                                  "owner": ANNA, "since": "yesterday-ish"},
         400, "since"),
        ("POST", "/api/v1/admin/mailboxes/imap", {"host": "h", "user": "u", "password": "p",
                                                  "owner": ANNA, "secret": 1}, 422, "secret"),
        ("POST", "/api/v1/admin/mailboxes/imap", {"host": "h", "user": "u", "password": "p",
                                                  "owner": ANNA, "folders": []}, 422, "folders"),
        ("POST", "/api/v1/admin/mailboxes/test", ["not", "an", "object"], 422, None),
        ("POST", "/api/v1/admin/mailboxes/drop", {"owner": "nobody@"}, 400, "owner"),
        ("POST", "/api/v1/admin/mailboxes/drop", {"owner": ANNA, "capture_level": "all"},
         422, "capture_level"),
        ("GET", "/api/v1/admin/mailboxes?kind=carrier-pigeon", None, 422, "kind"),
        ("GET", "/api/v1/admin/mailboxes?cursor=garbage", None, 400, "cursor"),
        ("GET", "/api/v1/admin/mailboxes?limit=100000", None, 422, "limit"),
        ("DELETE", "/api/v1/admin/mailboxes/1?purge=perhaps", None, 422, "purge"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_naming_the_field(
    api: Api, method: str, url: str, payload: Any, status: int, field: str | None
) -> None:
    answer = api(method, url, payload)
    assert answer.status_code == status, answer.get_json()
    error = answer.get_json()["error"]
    assert error["message"]
    if field is not None:
        assert error["field"] == field


@pytest.mark.parametrize(
    "url", ["/api/v1/admin/mailboxes/99999999999999999999", "/api/v1/admin/mailboxes/2147483648"]
)
def test_ids_too_large_for_the_database_are_not_found(api: Api, url: str) -> None:
    for method, suffix in [("GET", ""), ("POST", "/pause"), ("DELETE", "")]:
        answer = api(method, url + suffix)
        assert answer.status_code == 404
        assert answer.get_json()["error"]["code"] == "not_found"


def test_links_of_every_kind_are_listed_and_filtered_by_kind(
    api: Api, db: Database, settings: Settings
) -> None:
    """Graph and EWS links (linked from the CLI) show with the others, without their secrets."""
    box = SecretBox(settings.secret_keys)
    with db.session() as session:
        for kind, secret in [("graph", "graph-client-secret"), ("ews", "ews-password")]:
            add_link(
                session,
                box,
                kind=kind,
                owner=ANNA,
                settings={"server": f"https://{kind}.example"},
                secret={"password": secret},
            )
    everything = api("GET", "/api/v1/admin/mailboxes").get_json()["items"]
    assert sorted(link["kind"] for link in everything) == ["ews", "graph"]
    for kind in ("ews", "graph"):
        found = api("GET", f"/api/v1/admin/mailboxes?kind={kind}")
        assert found.status_code == 200
        assert [link["kind"] for link in found.get_json()["items"]] == [kind]
    assert not any("graph-client-secret" in b or "ews-password" in b for b in api.bodies)
