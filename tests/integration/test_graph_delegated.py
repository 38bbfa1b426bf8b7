"""Linking a Microsoft 365 mailbox by signing in in the browser, end to end against the
emulators: the admin API hands out Entra ID's authorize URL, the "browser" (requests) follows it
to the identity emulator, which signs `signed_in_user` in and redirects back with a code and the
state; the callback redeems the code (PKCE), tests the mailbox through the Graph emulator and
saves the link, and `rapport worker` syncs it. Production code throughout: only the authority
host, the Graph URL and the CA come from the emulators."""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from server.crm.users import add_user, create_token
from server.crypto import SecretBox
from server.db import Database
from server.mail_ingest.errors import AuthExpired, SourceError
from server.mail_ingest.links import SIGN_IN_PREFIX
from server.mail_ingest.oauth import (
    IdentityEndpoints,
    finish_browser_sign_in,
    https_session,
    identity_problem_of,
    start_browser_sign_in,
)
from server.models import MailboxLink, Setting, utcnow
from tests.conftest import SECRET_KEY, Cli
from tests.emulators.fixtures import identity, identity_server  # noqa: F401
from tests.emulators.graph import GraphEmulator, graph, graph_server  # noqa: F401
from tests.emulators.identity import GRAPH, App, IdentityEmulator, Tenant
from tests.support.mail import BASE_DATE, days, make_email

DOMAIN = "northwind-supplies.com"
CALLBACK = "http://localhost/api/v1/graph/callback"  # the test client's host; no public URL
AUTHORIZE = "/api/v1/admin/mailboxes/graph/authorize"
DELEGATED = {
    "Mail.Read",
    "Calendars.Read",
    "Mail.Read.Shared",
    "Calendars.Read.Shared",
    "User.Read",
}
_mailboxes = itertools.count()


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite, but for the whole flow, which runs on PostgreSQL too."""
    return str(request.param)


@pytest.fixture
def env(env: dict[str, str], graph: GraphEmulator) -> dict[str, str]:  # noqa: F811
    return {**env, **graph.env()}


@pytest.fixture
def tenant(identity: IdentityEmulator) -> Tenant:  # noqa: F811
    return identity.add_tenant()


@pytest.fixture
def entra_app(identity: IdentityEmulator, tenant: Tenant) -> App:  # noqa: F811
    """A public client with the Web redirect URI and the delegated permissions consented."""
    return identity.add_app(
        tenant, public_client=True, redirect_uris=(CALLBACK,), delegated={GRAPH: DELEGATED}
    )


@pytest.fixture
def admin(db: Database) -> dict[str, str]:
    with db.session() as session:
        user = add_user(session, f"boss@{DOMAIN}", role="admin")
        token = create_token(session, user, expires_in=timedelta(hours=1)).plaintext
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def browser(identity: IdentityEmulator) -> Iterator[requests.Session]:  # noqa: F811
    """The user's browser: trusts the emulators' CA, follows nothing by itself."""
    with https_session(IdentityEndpoints(identity.authority_host, identity.ca_path, 10)) as http:
        yield http


def new_mailbox(graph: GraphEmulator, tenant: Tenant) -> str:  # noqa: F811
    address = f"anna{os.getpid()}x{next(_mailboxes)}@{DOMAIN}"
    graph.add_mailbox(tenant, address)
    return address


def customer_mail(n: int, owner: str) -> bytes:
    return make_email(
        sender=f"Customer {n} <c{n}@client.example>",
        to=owner,
        subject=f"Question {n}",
        date=BASE_DATE + days(n),
    )


def sign_in(
    client: FlaskClient,
    admin: dict[str, str],
    browser: requests.Session,
    body: dict[str, Any],
) -> tuple[int, str, str]:
    """Start the sign-in as the admin page does, let the browser sign in at the emulator, and
    follow Entra's redirect to the callback: (status, page, the callback URL it was sent to)."""
    started = client.post(AUTHORIZE, json=body, headers=admin)
    assert started.status_code == 200, started.get_json()
    start = started.get_json()
    assert start["redirect_uri"] == CALLBACK
    assert "code_challenge_method=S256" in start["authorize_url"]
    at_microsoft = browser.get(start["authorize_url"], allow_redirects=False)
    assert at_microsoft.status_code == 302, at_microsoft.text
    back = at_microsoft.headers["Location"]
    assert back.startswith(CALLBACK + "?")
    assert parse_qs(urlsplit(back).query)["state"] == [start["state"]]
    page = client.get(back.removeprefix("http://localhost"))
    return page.status_code, page.get_data(as_text=True), back


def links_in(db: Database) -> list[MailboxLink]:
    with db.session() as session:
        found = list(session.scalars(select(MailboxLink).where(MailboxLink.kind == "graph")))
        session.expunge_all()
    return found


def poll(cli: Cli, db: Database) -> None:
    with db.session() as session:
        session.execute(update(MailboxLink).values(next_run_at=None))
    result = cli("worker", "--once")
    assert result.exit_code == 0, result.output


def emails_of(db: Database, link_id: int) -> int:
    from server.models import MailboxObservation

    with db.session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(MailboxObservation)
                .where(MailboxObservation.link_id == link_id)
            )
            or 0
        )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_admin_links_a_mailbox_by_signing_in_in_the_browser_and_the_worker_syncs_it(
    client: FlaskClient,
    admin: dict[str, str],
    browser: requests.Session,
    cli: Cli,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    tenant: Tenant,
    entra_app: App,
) -> None:
    owner = new_mailbox(graph, tenant)
    for n in range(3):
        graph.deliver(owner, customer_mail(n, owner))
    identity.signed_in_user = owner

    status, page, _ = sign_in(
        client,
        admin,
        browser,
        {"owner": owner, "tenant": tenant.id, "client_id": entra_app.client_id, "since": "3650d"},
    )

    assert status == 200, page
    assert 'data-outcome="linked"' in page and owner in page
    (link,) = links_in(db)
    assert link.status == "active"
    assert link.settings["client_auth"] == "delegated"
    assert link.settings["signed_in_as"] == owner
    assert [f["name"] for f in link.settings["folders"]] == ["Inbox", "Sent Items"]
    secret = SecretBox([SECRET_KEY]).decrypt_json(link.secret or b"")
    assert set(secret) == {"refresh_token"}, "a public client: the user's refresh token only"
    grants = [token for token, _grant in identity.grants_of(owner)]
    assert secret["refresh_token"] in grants
    with db.session() as session:
        left = session.scalar(select(func.count()).where(Setting.key.startswith(SIGN_IN_PREFIX)))
    assert left == 0, "the pending sign-in is gone once used"

    poll(cli, db)
    assert links_in(db)[0].status == "active", links_in(db)[0].last_error
    assert emails_of(db, link.id) == 3


def test_a_revoked_grant_needs_attention_and_a_new_sign_in_reconnects_the_link(
    client: FlaskClient,
    admin: dict[str, str],
    browser: requests.Session,
    cli: Cli,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    tenant: Tenant,
    entra_app: App,
) -> None:
    owner = new_mailbox(graph, tenant)
    graph.deliver(owner, customer_mail(1, owner))
    identity.signed_in_user = owner
    body = {"owner": owner, "tenant": tenant.id, "client_id": entra_app.client_id}
    assert sign_in(client, admin, browser, body)[0] == 200
    poll(cli, db)
    (link,) = links_in(db)
    assert emails_of(db, link.id) == 1

    # The user changes their password: every refresh token they had is revoked.
    identity.revoke_user_grants(owner)
    graph.expire_tokens()
    poll(cli, db)
    (link,) = links_in(db)
    assert link.status == "needs_attention"
    assert "sign in again" in (link.status_reason or "")

    graph.deliver(owner, customer_mail(2, owner))
    status, page, _ = sign_in(client, admin, browser, {"link_id": link.id})
    assert status == 200, page
    assert 'data-outcome="re-connected"' in page and f'data-link-id="{link.id}"' in page
    (again,) = links_in(db)
    assert again.status == "active" and again.status_reason is None
    old, new = (SecretBox([SECRET_KEY]).decrypt_json(x.secret or b"") for x in (link, again))
    assert old["refresh_token"] != new["refresh_token"]
    shown = client.get(f"/api/v1/admin/mailboxes/{link.id}", headers=admin).get_json()
    assert shown["status"] == "active" and shown["status_reason"] is None

    poll(cli, db)
    assert links_in(db)[0].status == "active", links_in(db)[0].last_error
    assert emails_of(db, link.id) == 2


def test_a_replayed_forged_or_expired_state_is_refused(
    client: FlaskClient,
    admin: dict[str, str],
    browser: requests.Session,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    tenant: Tenant,
    entra_app: App,
) -> None:
    owner = new_mailbox(graph, tenant)
    identity.signed_in_user = owner
    body = {"owner": owner, "tenant": tenant.id, "client_id": entra_app.client_id}
    status, _page, back = sign_in(client, admin, browser, body)
    assert status == 200

    replayed = client.get(back.removeprefix("http://localhost"))
    assert replayed.status_code == 400
    assert 'data-code="signin_state"' in replayed.get_data(as_text=True)
    forged = client.get(f"/api/v1/graph/callback?code=x&state={secrets.token_urlsafe(32)}")
    assert forged.status_code == 400
    assert "unknown, already used or expired" in forged.get_data(as_text=True)
    assert client.get("/api/v1/graph/callback").status_code == 400

    # A sign-in left unfinished past its ten minutes is refused too.
    other = new_mailbox(graph, tenant)
    identity.signed_in_user = other
    started = client.post(AUTHORIZE, json={**body, "owner": other}, headers=admin).get_json()
    late = browser.get(started["authorize_url"], allow_redirects=False).headers["Location"]
    with db.session() as session:
        row = session.scalars(select(Setting).where(Setting.key.startswith(SIGN_IN_PREFIX))).one()
        row.value = {**row.value, "expires_at": (utcnow() - timedelta(seconds=1)).isoformat()}
    expired = client.get(late.removeprefix("http://localhost"))
    assert expired.status_code == 400
    assert 'data-code="signin_state"' in expired.get_data(as_text=True)
    assert len(links_in(db)) == 1


def test_a_declined_consent_an_unknown_tenant_and_a_duplicate_say_what_to_fix(
    client: FlaskClient,
    admin: dict[str, str],
    browser: requests.Session,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    tenant: Tenant,
    entra_app: App,
) -> None:
    owner = new_mailbox(graph, tenant)
    identity.signed_in_user = owner
    body = {"owner": owner, "tenant": tenant.id, "client_id": entra_app.client_id}

    identity.decline_consent = True
    status, page, back = sign_in(client, admin, browser, body)
    assert "error=access_denied" in back
    assert status == 400
    assert "declined to consent" in page and 'data-code="oauth_consent"' in page
    assert links_in(db) == []

    assert client.post(AUTHORIZE, json=body).status_code == 401, "not anonymous"
    refused = client.post(
        AUTHORIZE, json={**body, "tenant": "0c9e8f7a-1111-4222-8333-944455556666"}, headers=admin
    )
    assert refused.status_code == 400
    assert refused.get_json()["error"]["field"] == "tenant"
    common = client.post(AUTHORIZE, json={**body, "tenant": "common"}, headers=admin)
    assert common.status_code == 400 and common.get_json()["error"]["field"] == "tenant"

    identity.decline_consent = False
    assert sign_in(client, admin, browser, body)[0] == 200
    twice = client.post(AUTHORIZE, json=body, headers=admin)
    assert twice.status_code == 409, "the mailbox is linked already: re-connect that link"
    assert client.post(AUTHORIZE, json={"link_id": 4242}, headers=admin).status_code == 404


def test_the_emulator_checks_the_pkce_verifier(
    browser: requests.Session,
    graph: GraphEmulator,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    tenant: Tenant,
    entra_app: App,
    tmp_path: Path,
) -> None:
    owner = new_mailbox(graph, tenant)
    identity.signed_in_user = owner
    endpoints = IdentityEndpoints(identity.authority_host, identity.ca_path, 10)
    started = start_browser_sign_in(
        tenant.id, entra_app.client_id, endpoints, redirect_uri=CALLBACK
    )
    back = browser.get(started.authorize_url, allow_redirects=False).headers["Location"]
    answer = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
    tampered = {**started.flow, "code_verifier": secrets.token_urlsafe(43)}
    with pytest.raises(SourceError) as refused:
        finish_browser_sign_in(tenant.id, entra_app.client_id, endpoints, tampered, answer)
    assert isinstance(refused.value, AuthExpired)
    problem = identity_problem_of(refused.value)
    assert problem is not None and "PKCE" in problem.message
    assert identity.token_requests[-1]["codes"] == [501481]

    # The same sign-in with its own verifier goes through.
    again = start_browser_sign_in(tenant.id, entra_app.client_id, endpoints, redirect_uri=CALLBACK)
    back = browser.get(again.authorize_url, allow_redirects=False).headers["Location"]
    answer = {k: v[0] for k, v in parse_qs(urlsplit(back).query).items()}
    grant = finish_browser_sign_in(tenant.id, entra_app.client_id, endpoints, again.flow, answer)
    assert grant.user == owner and grant.refresh_token
