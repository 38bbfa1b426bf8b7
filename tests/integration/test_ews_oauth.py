"""On-premises Exchange with hybrid modern authentication: `rapport mailbox add ews --auth
oauth`, an Entra ID app's app-only token (msal, client credentials) for the EWS host, sent as a
bearer token, refreshed when Exchange refuses it.

The EWS emulator trusts the identity emulator's tokens (signature, lifetime, audience = its own
URL, the role full_access_as_app) as an Exchange Server with hybrid modern authentication
trusts Entra ID's; both serve TLS from the identity emulator's CA. Rapport runs its production
code with RAPPORT_GRAPH_AUTHORITY_HOST and RAPPORT_CA_BUNDLE pointing at them.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, update

from server.app import create_app
from server.config import Settings
from server.crypto import SecretBox
from server.db import Database
from server.models import Activity, MailboxLink, MailboxObservation
from tests.conftest import Cli
from tests.emulators.ews import FULL_ACCESS_AS_APP, EwsEmulator
from tests.emulators.fixtures import identity, identity_server  # noqa: F401
from tests.emulators.identity import App, IdentityEmulator, Tenant
from tests.integration.test_api_admin_mailboxes import Api, assert_no_secret
from tests.support.mail import BASE_DATE, days, make_email

DOMAIN = "northwind-supplies.com"
SECRET = "Qx8~hybrid-modern-auth-secret"
_mailboxes = itertools.count()


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite only: this module is about EWS's sign-in, not the database."""
    return str(request.param)


@pytest.fixture(scope="module")
def hybrid_server(
    tmp_path_factory: pytest.TempPathFactory,
    identity_server: IdentityEmulator,  # noqa: F811
) -> Iterator[EwsEmulator]:
    with EwsEmulator(tmp_path_factory.mktemp("hybrid"), identity=identity_server) as emulator:
        yield emulator


@pytest.fixture
def hybrid(hybrid_server: EwsEmulator, identity: IdentityEmulator) -> Iterator[EwsEmulator]:  # noqa: F811
    """An Exchange Server with hybrid modern authentication, its switches reset."""
    hybrid_server.reset()
    yield hybrid_server
    hybrid_server.reset()


@pytest.fixture
def env(env: dict[str, str], hybrid: EwsEmulator) -> dict[str, str]:
    return {**env, **hybrid.env(), "EWS_SECRET": SECRET}


@pytest.fixture
def tenant(identity: IdentityEmulator, hybrid: EwsEmulator) -> Tenant:  # noqa: F811
    """A tenant where the Hybrid Configuration Wizard registered the EWS host."""
    found = identity.add_tenant(domain=DOMAIN)
    hybrid.register_with(found)
    return found


@pytest.fixture
def app(identity: IdentityEmulator, tenant: Tenant, hybrid: EwsEmulator) -> App:  # noqa: F811
    """Rapport's app registration: full_access_as_app on the on-premises resource, consented."""
    return identity.add_app(tenant, secret=SECRET, roles={hybrid.origin: {FULL_ACCESS_AS_APP}})


def new_mailbox(hybrid: EwsEmulator, mails: int = 0) -> str:
    address = f"olga{os.getpid()}x{next(_mailboxes)}@{DOMAIN}"
    hybrid.add_mailbox(address)
    for n in range(mails):
        customer = f"Customer {n % 5} <c{n % 5}@client.example>"
        when = BASE_DATE + days(n / 10)
        hybrid.deliver(
            address, make_email(sender=customer, to=address, subject=f"Order {n}", date=when)
        )
    return address


def add(cli: Cli, hybrid: EwsEmulator, owner: str, tenant: Tenant, app: App, *extra: str) -> str:
    result = cli(
        "mailbox", "add", "ews", "--owner", owner, "--server", hybrid.url, "--auth", "oauth",
        "--tenant", tenant.id, "--client-id", app.client_id, "--client-secret-env", "EWS_SECRET",
        "--no-calendar", *extra,
    )  # fmt: skip
    return str(result.output) if result.exit_code == 0 else f"FAILED {result.output}"


def poll(cli: Cli, db: Database) -> MailboxLink:
    with db.session() as session:
        session.execute(update(MailboxLink).values(next_run_at=None))
    result = cli("worker", "--once")
    assert result.exit_code == 0, result.output
    with db.session() as session:
        return session.scalars(select(MailboxLink)).one()


def live_emails(db: Database) -> tuple[int, int]:
    """(emails, live observations of them)."""
    with db.session() as session:
        emails = session.scalar(
            select(func.count()).select_from(Activity).where(Activity.kind == "email")
        )
        live = session.scalar(
            select(func.count())
            .select_from(MailboxObservation)
            .where(MailboxObservation.deleted_at.is_(None))
        )
    return int(emails or 0), int(live or 0)


def test_an_app_links_and_syncs_a_mailbox_with_a_token_for_the_ews_host(
    cli: Cli,
    db: Database,
    env: dict[str, str],
    identity: IdentityEmulator,  # noqa: F811
    hybrid: EwsEmulator,
    tenant: Tenant,
    app: App,
) -> None:
    owner = new_mailbox(hybrid, mails=6)
    output = add(cli, hybrid, owner, tenant, app)
    assert "FAILED" not in output and f"app {app.client_id}" in output
    link = poll(cli, db)
    assert link.status == "active", link.last_error
    assert live_emails(db) == (6, 6)
    # What was stored: the app, not a password; the client secret only encrypted.
    assert link.settings["auth"] == "oauth" and link.settings["client_id"] == app.client_id
    assert link.settings["tenant"] == tenant.id and link.secret is not None
    assert SECRET not in str(link.settings) and SECRET not in str(link.secret)
    secret = SecretBox([env["RAPPORT_SECRET_KEY"]]).decrypt_json(link.secret)
    assert secret == {"client_secret": SECRET}
    # Every EWS request carried the app's token, impersonating the mailbox, anchored to it.
    requests = [e for e in hybrid.log if e.operation not in ("Autodiscover",)]
    assert requests and {e.user for e in requests} == {f"app:{app.client_id}"}
    assert {e.mailbox for e in requests} == {owner}, "ExchangeImpersonation names the mailbox"
    assert {e.anchor for e in requests} == {owner}, "X-AnchorMailbox names the mailbox"
    grants = [r for r in identity.token_requests if r["client_id"] == app.client_id]
    assert grants and {r["grant_type"] for r in grants} == {"client_credentials"}


def test_an_admin_links_an_app_from_the_admin_api(
    settings: Settings, db: Database, hybrid: EwsEmulator, tenant: Tenant, app: App
) -> None:
    owner = new_mailbox(hybrid, mails=2)
    api = Api(create_app(settings, db=db).test_client(), db)
    body = {
        "owner": owner, "server": hybrid.url, "auth": "oauth", "tenant": tenant.id,
        "client_id": app.client_id, "client_secret": SECRET, "calendar": False,
    }  # fmt: skip
    tested = api("POST", "/api/v1/admin/mailboxes/ews/test", body)
    assert tested.status_code == 200, tested.get_json()
    assert tested.get_json()["server"] == hybrid.url
    with db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(MailboxLink)) == 0
    created = api("POST", "/api/v1/admin/mailboxes/ews", body)
    assert created.status_code == 201, created.get_json()
    settings = created.get_json()["settings"]
    assert (settings["auth"], settings["client_id"], settings["user"]) == (
        "oauth",
        app.client_id,
        "",
    )
    assert_no_secret(api, db, SECRET)
    wrong = api("POST", "/api/v1/admin/mailboxes/ews", {**body, "client_secret": "not-it-1234"})
    assert wrong.status_code in (400, 409), wrong.get_json()


def test_an_app_link_has_no_password_to_replace(
    cli: Cli, db: Database, hybrid: EwsEmulator, tenant: Tenant, app: App
) -> None:
    owner = new_mailbox(hybrid)
    assert "FAILED" not in add(cli, hybrid, owner, tenant, app)
    with db.read_session() as session:
        link_id, before = session.execute(select(MailboxLink.id, MailboxLink.secret)).one()
    refused = cli(
        "mailbox", "password", str(link_id), "--password-env", "NEW", env={"NEW": "a-password"}
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "signs in with OAuth, not a password: link it again" in refused.output
    with db.read_session() as session:
        assert session.scalar(select(MailboxLink.secret)) == before


def test_a_token_expiring_mid_sync_is_renewed_once_and_nothing_is_captured_twice(
    cli: Cli,
    db: Database,
    identity: IdentityEmulator,  # noqa: F811
    hybrid: EwsEmulator,
    tenant: Tenant,
    app: App,
) -> None:
    owner = new_mailbox(hybrid, mails=12)
    assert "FAILED" not in add(cli, hybrid, owner, tenant, app)
    hybrid.page_limit = 3
    issued = sum(1 for r in identity.token_requests if r["client_id"] == app.client_id)
    hybrid.expire_tokens_after(4)  # in the middle of the Inbox's pages
    link = poll(cli, db)
    assert link.status == "active", link.last_error
    assert hybrid.refused_tokens == 1, "the expired token was refused once, then replaced"
    renewed = sum(1 for r in identity.token_requests if r["client_id"] == app.client_id)
    assert renewed == issued + 1
    assert live_emails(db) == (12, 12), "every message once"

    # Consent withdrawn (the role removed): a fresh token is refused too -> needs attention.
    app.roles.clear()
    hybrid.deliver(owner, make_email(sender="c9@client.example", to=owner, subject="Late"))
    identity.expire_tokens()
    link = poll(cli, db)
    assert link.status == "needs_attention"
    assert "full_access_as_app" in (link.status_reason or "")
    assert hybrid.refused_tokens == 3, "one renewal, then the admin is asked"


def test_a_token_for_another_audience_is_refused_clearly_at_link_time(
    cli: Cli,
    db: Database,
    identity: IdentityEmulator,  # noqa: F811
    hybrid: EwsEmulator,
    tenant: Tenant,
    app: App,
) -> None:
    owner = new_mailbox(hybrid)
    # Exchange knows itself as mail.northwind-supplies.com, Rapport reaches it by another name.
    hybrid.audience = f"https://mail.{DOMAIN}"
    output = add(cli, hybrid, owner, tenant, app)
    assert output.startswith("FAILED") and "audience" in output
    assert "service principal name" in output and SECRET not in output
    assert hybrid.refused_tokens == 2, "refused, renewed once, refused again"

    # A host the Hybrid Configuration Wizard never registered: Entra ID issues no token.
    hybrid.audience = None
    bare = identity.add_tenant(domain=f"other{os.getpid()}.example")
    other = identity.add_app(bare, secret=SECRET, roles={hybrid.origin: {FULL_ACCESS_AS_APP}})
    output = add(cli, hybrid, owner, bare, other)
    assert output.startswith("FAILED") and "service principal name" in output
    assert hybrid.origin in output
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(MailboxLink)) == 0


def test_oauth_options_are_checked_before_anything_is_asked(
    cli: Cli,
    hybrid: EwsEmulator,
    tenant: Tenant,
    app: App,
) -> None:
    owner = new_mailbox(hybrid)
    mixed = cli(
        "mailbox", "add", "ews", "--owner", owner, "--server", hybrid.url, "--auth", "oauth",
        "--user", "svc", "--tenant", tenant.id, "--client-id", app.client_id,
        "--client-secret-env", "EWS_SECRET",
    )  # fmt: skip
    assert mixed.exit_code != 0 and "--user cannot be used with --auth oauth" in mixed.output
    delegate = add(cli, hybrid, owner, tenant, app, "--access", "delegate")
    assert delegate.startswith("FAILED") and "impersonation" in delegate
    assert hybrid.log == [], "nothing was sent to Exchange"
