"""IMAP links that sign in with OAuth (XOAUTH2), against real servers: the identity emulator
(tests/emulators/identity.py) issues the tokens over HTTPS, and a Dovecot checks them with it as
Exchange Online and Gmail would (RFC 7662 introspection), so the production code path runs as is:
`rapport mailbox add imap --oauth ...`, `rapport worker`.
"""

from __future__ import annotations

import imaplib
import itertools
import os
import ssl
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from server.config import load_settings
from server.crm.users import add_user, create_token
from server.crypto import SecretBox
from server.db import Database
from server.mail_ingest.oauth import forget_cached_tokens
from server.mail_ingest.sync import sync_link
from server.models import Activity, MailboxLink
from tests.conftest import SECRET_KEY, Cli
from tests.emulators.fixtures import identity, identity_server  # noqa: F401
from tests.emulators.identity import IdentityEmulator, client_certificate
from tests.integration.test_imap_worker_fetch import fetched_here  # noqa: F401
from tests.integration.test_worker_imap import customer_mail, mailbox_truth, observed
from tests.support.dovecot import DovecotServer
from tests.support.dovecot_fixtures import oauth_dovecot, oauth_dovecot_server  # noqa: F401

SECRET = "kX8Q~exampleSecretValue.0123456789abcdef"
_mailboxes = itertools.count()


@pytest.fixture
def env(
    env: dict[str, str],
    identity: IdentityEmulator,  # noqa: F811
    oauth_dovecot: DovecotServer,  # noqa: F811
    tmp_path: Path,
) -> dict[str, str]:
    """Rapport pointed at the emulator (RAPPORT_GRAPH_AUTHORITY_HOST) and trusting both its CA and
    the Dovecot's (RAPPORT_CA_BUNDLE)."""
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_bytes(identity.ca_path.read_bytes() + oauth_dovecot.ca_path.read_bytes())
    return {**env, **identity.env(), "RAPPORT_CA_BUNDLE": str(bundle)}


@pytest.fixture
def decoy_ca(tmp_path: Path) -> dict[str, str]:
    """REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE naming a CA that signed nothing here, as these
    machines set them: requests would let them replace the trusted CAs; Rapport must not."""
    path = tmp_path / "decoy-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return {"REQUESTS_CA_BUNDLE": str(path), "CURL_CA_BUNDLE": str(path)}


def new_mailbox(server: DovecotServer, domain: str) -> str:
    address = f"sales{os.getpid()}x{next(_mailboxes)}@{domain}"
    server.add_user(address)
    return address


def add_exchange_link(
    cli: Cli, server: DovecotServer, mailbox: str, tenant: str, client_id: str, *extra: str,
    env: dict[str, str] | None = None,
) -> Any:  # fmt: skip
    return cli(
        "mailbox", "add", "imap", "--owner", mailbox, "--host", server.host,
        "--port", str(server.imaps_port), "--user", mailbox,
        "--oauth", "microsoft", "--tenant", tenant, "--client-id", client_id, *extra,
        env=env,
    )  # fmt: skip


def the_link(db: Database) -> MailboxLink:
    with db.session() as session:
        return session.scalars(select(MailboxLink)).one()


def stored_secret(db: Database) -> dict[str, Any]:
    secret = the_link(db).secret
    assert secret is not None
    value = SecretBox([SECRET_KEY]).decrypt_json(secret)
    assert isinstance(value, dict)
    return value


def cut_sessions(server: DovecotServer, user: str) -> None:
    """End the user's IMAP sessions, and wait until they are gone (a kick is only a signal)."""
    server.doveadm("kick", user)
    deadline = time.monotonic() + 10
    while user in server.doveadm("who") and time.monotonic() < deadline:
        time.sleep(0.02)


def make_due(db: Database) -> None:
    with db.session() as session:
        session.execute(update(MailboxLink).values(next_run_at=None))


def activity_count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Activity)) or 0)


def fill(server: DovecotServer, mailbox: str, inbox: int, sent: int = 0) -> None:
    server.append_many(mailbox, "INBOX", [customer_mail(n) for n in range(inbox)])
    if sent:
        server.append_many(
            mailbox, "Sent", [customer_mail(n, outgoing=True) for n in range(inbox, inbox + sent)]
        )


# -- Exchange Online, app-only ------------------------------------------------------------------


@pytest.mark.parametrize("credential", ["secret", "certificate"])
def test_exchange_online_mailbox_links_with_an_app_and_its_mail_flows_in(
    cli: Cli,
    db: Database,
    identity: IdentityEmulator,  # noqa: F811
    oauth_dovecot: DovecotServer,  # noqa: F811
    decoy_ca: dict[str, str],
    tmp_path: Path,
    credential: str,
) -> None:
    tenant = identity.add_tenant(domain="contoso.onmicrosoft.com")
    mailbox = new_mailbox(oauth_dovecot, "contoso.example")
    fill(oauth_dovecot, mailbox, inbox=12, sent=4)
    if credential == "secret":
        app = identity.imap_app(tenant, mailbox, secret=SECRET)
        how = ["--client-secret-env", "IMAP_APP_SECRET"]
    else:
        certificate = client_certificate()
        app = identity.imap_app(tenant, mailbox, certificate=certificate.certificate)
        pem = tmp_path / "rapport-imap.pem"
        pem.write_text(certificate.pem)
        how = ["--certificate", str(pem)]

    result = add_exchange_link(
        cli, oauth_dovecot, mailbox, tenant.id, app.client_id, *how,
        env={"IMAP_APP_SECRET": SECRET, **decoy_ca},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "folders INBOX, Sent" in result.output
    assert "OAuth: microsoft" in result.output

    link = the_link(db)
    oauth = link.settings["oauth"]
    assert (oauth["provider"], oauth["tenant"], oauth["client_id"], oauth["client_auth"]) == (
        "microsoft",
        tenant.id,
        app.client_id,
        credential,
    )
    secret = stored_secret(db)
    if credential == "secret":
        assert secret == {"client_secret": SECRET}
    else:
        assert "PRIVATE KEY" in secret["certificate_pem"]
        assert "PRIVATE KEY" not in str(link.settings)
        assert len(oauth["certificate_thumbprint"]) == 40  # SHA-1, as the portal shows it
    assert SECRET.encode() not in (link.secret or b"")
    assert [r["grant_type"] for r in identity.token_requests] == ["client_credentials"]

    worker = cli("worker", "--once", env=decoy_ca)
    assert worker.exit_code == 0, worker.output
    assert observed(db) == mailbox_truth(oauth_dovecot, mailbox)
    assert activity_count(db) == 16
    assert the_link(db).status == "active"
    token = identity.token_requests[-1]
    assert token["ok"] and token["client_id"] == app.client_id


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("where", ["mid_folder", "between_folders"])
def test_a_token_that_expires_mid_sync_is_renewed_and_nothing_is_lost(
    cli: Cli,
    db: Database,
    env: dict[str, str],
    identity: IdentityEmulator,  # noqa: F811
    oauth_dovecot: DovecotServer,  # noqa: F811
    where: str,
) -> None:
    tenant = identity.add_tenant()
    mailbox = new_mailbox(oauth_dovecot, "contoso.example")
    # INBOX comes in pages of 200 messages, then its final checkpoint, then Sent. The worker
    # fetches up to two pages ahead of what it has written (server/mail_ingest/prefetch.py), so
    # a cut after the first page hits INBOX mid-way only when it has more than three.
    inbox = 1_060 if where == "mid_folder" else 260
    total = inbox + 5
    fill(oauth_dovecot, mailbox, inbox=inbox, sent=5)
    app = identity.imap_app(tenant, mailbox, secret=SECRET)
    linked = add_exchange_link(
        cli, oauth_dovecot, mailbox, tenant.id, app.client_id,
        "--client-secret-env", "S", env={"S": SECRET},
    )  # fmt: skip
    assert linked.exit_code == 0, linked.output
    settings = load_settings(env)
    cut_after = 1 if where == "mid_folder" else 3
    pages = 0

    def expire_and_cut(_counts: object) -> None:
        # The access token expires and the session is cut (a server restart, a network drop):
        # the sync goes on over a new connection, which needs a new token.
        nonlocal pages
        pages += 1
        if pages == cut_after:
            identity.expire_tokens()
            cut_sessions(oauth_dovecot, mailbox)

    link_id = the_link(db).id
    first = sync_link(db, settings, link_id, jobs=1, on_progress=expire_and_cut)
    if where == "mid_folder":
        assert 0 < first.counts.captured < total, "what came before the cut was committed"
        dropped = the_link(db)
        assert dropped.status == "error", "a dropped connection is retried, not the admin's"
        assert "dropped" in (dropped.status_reason or "")
        second = sync_link(db, settings, link_id, jobs=1)  # the next run resumes, new token
        assert second.error is None
    else:  # the next folder's STATUS reconnects within the same run
        assert first.error is None
    assert the_link(db).status == "active"
    assert observed(db) == mailbox_truth(oauth_dovecot, mailbox)
    assert activity_count(db) == total, "nothing lost, nothing twice"
    grants = [r for r in identity.token_requests if r["grant_type"] == "client_credentials"]
    assert len(grants) == 2, "the link test's token, then one fresh one after the expiry"
    assert all(r["ok"] for r in grants)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_parse_workers_fetch_with_the_links_access_token_and_ask_the_provider_nothing(
    cli: Cli,
    db: Database,
    env: dict[str, str],
    identity: IdentityEmulator,  # noqa: F811
    oauth_dovecot: DovecotServer,  # noqa: F811
    fetched_here: list[tuple[str, int]],  # noqa: F811
) -> None:
    tenant = identity.add_tenant()
    mailbox = new_mailbox(oauth_dovecot, "contoso.example")
    fill(oauth_dovecot, mailbox, inbox=150, sent=5)
    app = identity.imap_app(tenant, mailbox, secret=SECRET)
    linked = add_exchange_link(
        cli, oauth_dovecot, mailbox, tenant.id, app.client_id,
        "--client-secret-env", "S", env={"S": SECRET},
    )  # fmt: skip
    assert linked.exit_code == 0, linked.output
    # Two parse workers: INBOX's pages are fetched by them, each signed in with XOAUTH2 on a
    # session of its own, with the token the sync holds.
    result = sync_link(db, load_settings(env), the_link(db).id, jobs=2)
    assert result.error is None
    assert fetched_here == [("Sent", 5)], "INBOX came from the workers' own sessions"
    assert observed(db) == mailbox_truth(oauth_dovecot, mailbox)
    assert activity_count(db) == 155
    grants = [r for r in identity.token_requests if r["grant_type"] == "client_credentials"]
    assert len(grants) == 1, "the link test's token served the sync and its workers"


def test_a_wrong_secret_is_refused_with_what_to_fix_and_nothing_is_saved(
    cli: Cli,
    db: Database,
    identity: IdentityEmulator,  # noqa: F811
    oauth_dovecot: DovecotServer,  # noqa: F811
) -> None:
    tenant = identity.add_tenant()
    mailbox = new_mailbox(oauth_dovecot, "contoso.example")
    app = identity.imap_app(tenant, mailbox, secret=SECRET)
    wrong = "kX8Q~thisIsTheSecretIdNotItsValue000000"

    result = add_exchange_link(
        cli, oauth_dovecot, mailbox, tenant.id, app.client_id,
        "--client-secret-env", "S", env={"S": wrong},
    )  # fmt: skip
    assert result.exit_code == 1
    assert "the link was not saved" in result.output
    assert "the client secret is wrong" in result.output
    assert "AADSTS7000215" in result.output
    assert wrong not in result.output
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(MailboxLink)) == 0

    unknown_tenant = add_exchange_link(
        cli, oauth_dovecot, mailbox, "1b4e0a2f-0000-4000-8000-00000000dead", app.client_id,
        "--client-secret-env", "S", env={"S": SECRET},
    )  # fmt: skip
    assert unknown_tenant.exit_code == 1
    assert "does not exist" in unknown_tenant.output and "tenant" in unknown_tenant.output

    identity.hits.clear()
    common = add_exchange_link(
        cli, oauth_dovecot, mailbox, "common", app.client_id,
        "--client-secret-env", "S", env={"S": SECRET},
    )  # fmt: skip
    assert common.exit_code == 1
    assert "not 'common'" in common.output
    assert identity.hits["token"] == 0, "refused before asking anyone"


def test_an_app_without_rights_on_the_mailbox_is_told_what_exchange_needs(
    cli: Cli,
    db: Database,
    identity: IdentityEmulator,  # noqa: F811
    oauth_dovecot: DovecotServer,  # noqa: F811
) -> None:
    tenant = identity.add_tenant()
    mailbox = new_mailbox(oauth_dovecot, "contoso.example")
    # IMAP.AccessAsApp consented, but no Add-MailboxPermission for this mailbox.
    app = identity.add_app(
        tenant, secret=SECRET, roles={"https://outlook.office365.com": {"IMAP.AccessAsApp"}}
    )
    result = add_exchange_link(
        cli, oauth_dovecot, mailbox, tenant.id, app.client_id,
        "--client-secret-env", "S", env={"S": SECRET},
    )  # fmt: skip
    assert result.exit_code == 1
    assert "Add-MailboxPermission" in result.output
    assert "New-ServicePrincipal" in result.output
    grants = [r for r in identity.token_requests if r["grant_type"] == "client_credentials"]
    assert len(grants) == 2, "one token, then a fresh one once, then the admin is asked"
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(MailboxLink)) == 0


def test_options_are_checked_before_anything_is_asked(cli: Cli) -> None:
    base = ["mailbox", "add", "imap", "--owner", "a@contoso.example", "--host", "127.0.0.1",
            "--user", "a@contoso.example"]  # fmt: skip
    both = cli(*base, "--password-env", "P", "--oauth", "microsoft", env={"P": "x"})
    assert both.exit_code == 2 and "not both" in both.output
    no_secret = cli(
        *base, "--oauth", "microsoft", "--tenant", "contoso.example", "--client-id", "c"
    )
    assert no_secret.exit_code == 2 and "--client-secret-stdin" in no_secret.output
    stray = cli(*base, "--password-env", "P", "--tenant", "t", env={"P": "x"})
    assert stray.exit_code == 2 and "--tenant goes with --oauth" in stray.output
    google_tenant = cli(*base, "--oauth", "google", "--tenant", "t", "--client-id", "c")
    assert (
        google_tenant.exit_code == 2 and "does not go with --oauth google" in google_tenant.output
    )


# -- Gmail, with a refresh token ------------------------------------------------------------------


def add_google_link(
    cli: Cli, identity: IdentityEmulator, server: DovecotServer, mailbox: str, client: str,  # noqa: F811
    secret: str, refresh_token: str,
) -> Any:  # fmt: skip
    return cli(
        "mailbox", "add", "imap", "--owner", mailbox, "--host", server.host,
        "--port", str(server.imaps_port), "--user", mailbox, "--oauth", "google",
        "--client-id", client, "--client-secret-env", "G_SECRET",
        "--refresh-token-env", "G_REFRESH", "--token-endpoint", identity.google_token_url,
        env={"G_SECRET": secret, "G_REFRESH": refresh_token},
    )  # fmt: skip


def test_a_revoked_google_refresh_token_puts_the_link_in_needs_attention(
    cli: Cli,
    db: Database,
    identity: IdentityEmulator,  # noqa: F811
    oauth_dovecot: DovecotServer,  # noqa: F811
) -> None:
    mailbox = new_mailbox(oauth_dovecot, "gmail.example")
    fill(oauth_dovecot, mailbox, inbox=3)
    client, client_secret = identity.add_google_client()
    refresh = identity.google_refresh_token(client, mailbox)
    result = add_google_link(cli, identity, oauth_dovecot, mailbox, client, client_secret, refresh)
    assert result.exit_code == 0, result.output
    assert the_link(db).settings["oauth"]["endpoint"] == identity.google_token_url
    assert cli("worker", "--once").exit_code == 0
    assert activity_count(db) == 3

    # The user revoked Rapport's access in their Google account; the access token Rapport
    # holds runs out.
    identity.revoke_refresh_token(refresh)
    identity.expire_tokens()
    oauth_dovecot.append(mailbox, "INBOX", customer_mail(99))
    make_due(db)
    assert cli("worker", "--once").exit_code == 0
    link = the_link(db)
    assert link.status == "needs_attention"
    assert link.next_run_at is None, "no retry loop against a revoked grant"
    assert "Token has been expired or revoked" in (link.status_reason or "")
    assert "re-link" in (link.status_reason or "")
    assert "rapport mailbox resume" in (link.status_reason or "")
    assert "needs attention" in cli("mailbox", "list").output


def test_a_rotated_refresh_token_replaces_the_stored_one(
    cli: Cli,
    db: Database,
    identity: IdentityEmulator,  # noqa: F811
    oauth_dovecot: DovecotServer,  # noqa: F811
) -> None:
    identity.single_use_refresh_tokens = True  # each refresh retires the refresh token it used
    mailbox = new_mailbox(oauth_dovecot, "gmail.example")
    fill(oauth_dovecot, mailbox, inbox=2)
    client, client_secret = identity.add_google_client()
    first = identity.google_refresh_token(client, mailbox)
    result = add_google_link(cli, identity, oauth_dovecot, mailbox, client, client_secret, first)
    assert result.exit_code == 0, result.output
    after_test = stored_secret(db)["refresh_token"]
    assert after_test != first, "the link test's refresh rotated it; the new one is saved"

    for round_ in range(2):  # as a new worker process each time: nothing cached in memory
        forget_cached_tokens()
        identity.expire_tokens()
        oauth_dovecot.append(mailbox, "INBOX", customer_mail(50 + round_))
        make_due(db)
        assert cli("worker", "--once").exit_code == 0
        assert the_link(db).status == "active", the_link(db).status_reason
        current = stored_secret(db)["refresh_token"]
        assert current != after_test
        after_test = current
    assert activity_count(db) == 4
    assert stored_secret(db)["client_secret"] == client_secret


# -- the admin API takes the same options ----------------------------------------------------------


def test_the_admin_api_links_an_exchange_mailbox_with_oauth(
    client: FlaskClient,
    db: Database,
    identity: IdentityEmulator,  # noqa: F811
    oauth_dovecot: DovecotServer,  # noqa: F811
) -> None:
    with db.session() as session:
        admin = add_user(session, "boss@contoso.example", role="admin")
        issued = create_token(session, admin, expires_in=timedelta(hours=1))
        bearer = {"Authorization": f"Bearer {issued.plaintext}"}
    tenant = identity.add_tenant()
    mailbox = new_mailbox(oauth_dovecot, "contoso.example")
    app = identity.imap_app(tenant, mailbox, secret=SECRET)
    body: dict[str, Any] = {
        "owner": mailbox,
        "host": oauth_dovecot.host,
        "port": oauth_dovecot.imaps_port,
        "user": mailbox,
        "oauth": {
            "provider": "microsoft",
            "tenant": tenant.id,
            "client_id": app.client_id,
            "client_secret": "wrong-secret-value",
        },
    }
    refused = client.post("/api/v1/admin/mailboxes/imap", json=body, headers=bearer)
    assert refused.status_code == 400, refused.get_data(as_text=True)
    error = refused.get_json()["error"]
    assert (error["code"], error["field"]) == ("oauth_client_secret", "client_secret")
    assert "the client secret is wrong" in error["message"]

    body["oauth"]["client_secret"] = SECRET
    created = client.post("/api/v1/admin/mailboxes/imap", json=body, headers=bearer)
    assert created.status_code == 201, created.get_data(as_text=True)
    link = created.get_json()
    assert link["folders"] == ["INBOX", "Sent"]
    assert link["settings"]["oauth"]["client_id"] == app.client_id
    assert link["has_credentials"] is True
    assert SECRET not in created.get_data(as_text=True)


# -- the server side ---------------------------------------------------------------------------------


def test_the_test_dovecot_takes_oauthbearer_too(
    identity: IdentityEmulator,  # noqa: F811
    oauth_dovecot: DovecotServer,  # noqa: F811
) -> None:
    """RFC 7628 OAUTHBEARER, the standard sibling of XOAUTH2, with an emulator token."""
    tenant = identity.add_tenant()
    mailbox = new_mailbox(oauth_dovecot, "contoso.example")
    app = identity.imap_app(tenant, mailbox, secret=SECRET)
    token = identity.app_token(app)
    context = ssl.create_default_context(cafile=str(oauth_dovecot.ca_path))
    with imaplib.IMAP4_SSL(
        oauth_dovecot.host, oauth_dovecot.imaps_port, ssl_context=context
    ) as conn:
        gs2 = f"n,a={mailbox},\x01auth=Bearer {token}\x01\x01"
        typ, _ = conn.authenticate("OAUTHBEARER", lambda _challenge: gs2.encode())
        assert typ == "OK"
