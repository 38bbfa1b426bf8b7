"""/api/v1/admin/mailboxes/graph and /ews against the Graph, identity and EWS emulators: a link
is tested, saved and listed without its secret; wrong credentials and an unreachable server are
named by field and save nothing; their /test endpoints say what a link would find and save
nothing; members are refused.

The app trusts both emulators' CAs through one RAPPORT_CA_BUNDLE (the identity emulator's CA
also issued the Graph emulator's certificate), as a server with a private CA file would.
"""

from __future__ import annotations

import itertools
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from server.app import create_app
from server.config import load_settings
from server.db import Database
from server.models import MailboxLink
from tests.emulators.ews import EwsEmulator, ews, ews_server  # noqa: F401
from tests.emulators.fixtures import identity, identity_server  # noqa: F401
from tests.emulators.graph import GraphEmulator, graph, graph_server  # noqa: F401
from tests.emulators.identity import App, IdentityEmulator, Tenant
from tests.integration.test_api_admin_mailboxes import ANNA, Api, assert_no_secret

DOMAIN = "northwind-supplies.com"
SECRET = "gR8Q~exampleGraphSecret.0123456789abcdef"
SERVICE = "NORTHWIND\\svc-rapport"
PASSWORD = "Tr0ub4dor&3-rapport"
_mailboxes = itertools.count()


@pytest.fixture
def env(
    env: dict[str, str],
    graph: GraphEmulator,  # noqa: F811
    ews: EwsEmulator,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    tmp_path: Path,
) -> dict[str, str]:
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_bytes(identity.ca_path.read_bytes() + ews.ca_path.read_bytes())
    autodiscover = ews.env()["RAPPORT_EWS_AUTODISCOVER_URL"]
    return {
        **env,
        **graph.env(),
        "RAPPORT_CA_BUNDLE": str(bundle),
        "RAPPORT_EWS_AUTODISCOVER_URL": autodiscover,
    }


@pytest.fixture
def api(client: FlaskClient, db: Database) -> Api:
    return Api(client, db)


@pytest.fixture
def tenant(identity: IdentityEmulator) -> Tenant:  # noqa: F811
    return identity.add_tenant()


@pytest.fixture
def entra_app(graph: GraphEmulator, tenant: Tenant) -> App:  # noqa: F811
    return graph.graph_app(tenant, secret=SECRET)


@pytest.fixture
def service(ews: EwsEmulator) -> str:  # noqa: F811
    ews.add_account(SERVICE, PASSWORD, impersonation=True)
    return SERVICE


def new_address() -> str:
    return f"anna{os.getpid()}x{next(_mailboxes)}@{DOMAIN}"


def graph_body(owner: str, tenant: Tenant, entra_app: App, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "owner": owner,
        "tenant": tenant.id,
        "client_id": entra_app.client_id,
        "client_secret": SECRET,
    }
    return {**body, **changes}


def ews_body(owner: str, server: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"owner": owner, "server": server, "user": SERVICE, "password": PASSWORD}
    return {**body, **changes}


def link_count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(MailboxLink)) or 0)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refused(api: Api, url: str, body: dict[str, Any]) -> tuple[str, str | None, str]:
    answer = api("POST", url, body)
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    return error["code"], error.get("field"), error["message"]


# -- Microsoft 365, app-only ------------------------------------------------------------------


def test_a_graph_link_is_tested_saved_and_listed_without_its_secret(
    api: Api,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    entra_app: App,
) -> None:
    owner = new_address()
    graph.add_mailbox(tenant, owner)
    body = graph_body(
        owner, tenant, entra_app, calendar=False, since="90d", capture_level="subject"
    )
    created = api("POST", "/api/v1/admin/mailboxes/graph", body)
    assert created.status_code == 201, created.get_json()
    link = created.get_json()
    assert (link["kind"], link["owner"], link["status"]) == ("graph", owner, "active")
    assert link["folders"] == ["Inbox", "Sent Items"]
    assert link["calendar"] is False
    assert link["capture_level"] == "subject"
    assert link["settings"]["tenant"] == tenant.id
    assert link["has_credentials"] is True
    listed = api("GET", "/api/v1/admin/mailboxes?kind=graph").get_json()["items"]
    assert [item["id"] for item in listed] == [link["id"]]
    again = api("POST", "/api/v1/admin/mailboxes/graph", body)
    assert again.status_code == 409
    assert again.get_json()["error"]["field"] == "owner"
    assert_no_secret(api, db, SECRET)


def test_a_graph_link_with_a_wrong_secret_or_no_sign_in_saves_nothing_and_says_what_to_fix(
    api: Api,
    db: Database,
    env: dict[str, str],
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    entra_app: App,
) -> None:
    owner = new_address()
    graph.add_mailbox(tenant, owner)
    url = "/api/v1/admin/mailboxes/graph"
    wrong = "not-the-secret-4711"
    code, field, message = refused(
        api, url, graph_body(owner, tenant, entra_app, client_secret=wrong)
    )
    assert field == "client_secret" and "client secret is wrong" in message
    assert message.startswith("the link was not saved")
    code, field, message = refused(api, url, graph_body(f"nobody@{DOMAIN}", tenant, entra_app))
    assert (code, field) == ("graph_mailbox", "mailbox") and "no mailbox" in message
    both = graph_body(owner, tenant, entra_app, certificate="-----BEGIN PRIVATE KEY-----")
    assert refused(api, url, both)[:2] == ("graph_invalid", "client_secret")

    nowhere = f"127.0.0.1:{closed_port()}"
    offline = create_app(load_settings({**env, "RAPPORT_GRAPH_AUTHORITY_HOST": nowhere}), db=db)
    api.client = offline.test_client()  # the same admin, on a server that cannot reach Entra ID
    code, field, message = refused(api, url, graph_body(owner, tenant, entra_app))
    assert (code, field) == ("oauth_unreachable", "host")
    assert "cannot reach Microsoft Entra ID" in message
    assert link_count(db) == 0
    assert_no_secret(api, db, wrong)


def test_a_graph_test_says_what_the_link_would_sync_and_saves_nothing(
    api: Api,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    entra_app: App,
) -> None:
    owner = new_address()
    graph.add_mailbox(tenant, owner)
    url = "/api/v1/admin/mailboxes/graph/test"
    tested = api("POST", url, graph_body(owner, tenant, entra_app, since="90d"))
    assert tested.status_code == 200, tested.get_json()
    found = tested.get_json()
    assert (found["ok"], found["folders"], found["calendar"]) == (
        True,
        ["Inbox", "Sent Items"],
        True,
    )
    assert owner in found["message"] and "Inbox, Sent Items" in found["message"]
    without = api("POST", url, graph_body(owner, tenant, entra_app, calendar=False)).get_json()
    assert without["calendar"] is False and "calendar off" in without["message"]
    wrong = "not-the-secret-4711"
    code, field, message = refused(
        api, url, graph_body(owner, tenant, entra_app, client_secret=wrong)
    )
    assert field == "client_secret" and "client secret is wrong" in message
    assert not message.startswith("the link was not saved")
    code, field, _ = refused(api, url, graph_body(f"nobody@{DOMAIN}", tenant, entra_app))
    assert (code, field) == ("graph_mailbox", "mailbox")
    assert link_count(db) == 0
    assert_no_secret(api, db, SECRET)
    assert_no_secret(api, db, wrong)


# -- Exchange Web Services --------------------------------------------------------------------


def test_an_ews_link_is_tested_saved_and_listed_without_its_password(
    api: Api,
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    service: str,
) -> None:
    owner = new_address()
    ews.add_mailbox(owner)
    body = ews_body(owner, ews.url, aliases=[f"a.nna@{DOMAIN}"], visibility="private")
    created = api("POST", "/api/v1/admin/mailboxes/ews", body)
    assert created.status_code == 201, created.get_json()
    link = created.get_json()
    assert (link["kind"], link["owner"], link["status"]) == ("ews", owner, "active")
    assert link["folders"] == ["Inbox", "Sent Items"]
    assert link["calendar"] is True
    assert (link["visibility"], link["aliases"]) == ("private", [f"a.nna@{DOMAIN}"])
    assert link["settings"]["server"] == ews.url
    assert link["settings"]["access"] == "impersonation"
    listed = api("GET", "/api/v1/admin/mailboxes?kind=ews").get_json()["items"]
    assert [item["id"] for item in listed] == [link["id"]]
    assert_no_secret(api, db, PASSWORD)


def test_an_ews_link_given_only_the_address_finds_its_server_by_autodiscover(
    api: Api,
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    service: str,
) -> None:
    owner = new_address()
    ews.add_mailbox(owner)
    ews.serve_autodiscover(f"autodiscover.{DOMAIN}")
    body = ews_body(owner, ews.url)
    del body["server"]
    created = api("POST", "/api/v1/admin/mailboxes/ews", body)
    assert created.status_code == 201, created.get_json()
    settings = created.get_json()["settings"]
    assert (settings["server"], settings["autodiscovered"]) == (ews.url, True)


def test_an_ews_link_signs_in_one_way_only(
    api: Api,
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    service: str,
) -> None:
    """A password with a user, or an app's tenant, client id and secret: never half of each."""
    owner = new_address()
    url = "/api/v1/admin/mailboxes/ews"
    for body, says in [
        (ews_body(owner, ews.url, auth="oauth"), "auth oauth needs tenant and client_id and"),
        (ews_body(owner, ews.url, tenant="t1"), "tenant cannot be used with auth ntlm"),
        ({"owner": owner, "server": ews.url, "user": SERVICE}, "auth ntlm needs password"),
    ]:
        answer = api("POST", url, body)
        assert answer.status_code == 422, answer.get_json()
        assert says in str(answer.get_json())
    assert link_count(db) == 0


def test_an_ews_link_with_a_wrong_password_or_no_server_saves_nothing_and_names_the_field(
    api: Api,
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    service: str,
) -> None:
    owner = new_address()
    ews.add_mailbox(owner)
    url = "/api/v1/admin/mailboxes/ews"
    wrong = "not-the-password-4711"
    code, field, message = refused(api, url, ews_body(owner, ews.url, password=wrong))
    assert (code, field) == ("ews_credentials", "password")
    assert message.startswith("the link was not saved")
    unreachable = f"https://127.0.0.1:{closed_port()}/EWS/Exchange.asmx"
    code, field, message = refused(api, url, ews_body(owner, unreachable))
    assert (code, field) == ("ews_unreachable", "server") and "cannot reach" in message
    insecure = ews_body(owner, "http://exchange.example/EWS/Exchange.asmx")
    assert refused(api, url, insecure)[:2] == ("ews_url", "server")
    assert refused(api, url, ews_body(owner, ews.url, folders=["inbox", "Nowhere"]))[1] == "folders"
    assert link_count(db) == 0
    assert_no_secret(api, db, wrong)


def test_an_ews_test_finds_the_server_by_autodiscover_and_saves_nothing(
    api: Api,
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    service: str,
) -> None:
    owner = new_address()
    ews.add_mailbox(owner)
    ews.serve_autodiscover(f"autodiscover.{DOMAIN}")
    url = "/api/v1/admin/mailboxes/ews/test"
    body = ews_body(owner, ews.url)
    del body["server"]
    tested = api("POST", url, body)
    assert tested.status_code == 200, tested.get_json()
    found = tested.get_json()
    assert (found["server"], found["folders"], found["calendar"]) == (
        ews.url,
        ["Inbox", "Sent Items"],
        True,
    )
    assert "found by Autodiscover" in found["message"] and SERVICE in found["message"]
    given = api("POST", url, ews_body(owner, ews.url, calendar=False)).get_json()
    assert (given["server"], given["calendar"]) == (ews.url, False)
    assert "Autodiscover" not in given["message"]
    wrong = "not-the-password-4711"
    code, field, _ = refused(api, url, ews_body(owner, ews.url, password=wrong))
    assert (code, field) == ("ews_credentials", "password")
    unreachable = f"https://127.0.0.1:{closed_port()}/EWS/Exchange.asmx"
    assert refused(api, url, ews_body(owner, unreachable))[:2] == ("ews_unreachable", "server")
    half = api("POST", url, ews_body(owner, ews.url, auth="oauth"))
    assert half.status_code == 422 and "auth oauth needs" in str(half.get_json())
    assert link_count(db) == 0
    assert_no_secret(api, db, PASSWORD)
    assert_no_secret(api, db, wrong)


# -- who may --------------------------------------------------------------------------------


def test_members_may_not_link_or_test_exchange_mailboxes(
    api: Api,
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    tenant: Tenant,
    entra_app: App,
) -> None:
    owner = new_address()
    for url, body in [
        ("/api/v1/admin/mailboxes/graph", graph_body(owner, tenant, entra_app)),
        ("/api/v1/admin/mailboxes/graph/test", graph_body(owner, tenant, entra_app)),
        ("/api/v1/admin/mailboxes/ews", ews_body(owner, ews.url)),
        ("/api/v1/admin/mailboxes/ews/test", ews_body(owner, ews.url)),
    ]:
        answer = api("POST", url, body, as_user=ANNA)
        assert answer.status_code == 403, answer.get_json()
    assert link_count(db) == 0
