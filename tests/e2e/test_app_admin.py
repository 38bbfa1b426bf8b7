"""The admin pages of the web app, in Chromium against the demo server: an admin links an IMAP
mailbox from the form against a real Dovecot (a wrong password is shown on the password field and
saves nothing), sees it with its status, pauses, resumes and syncs it, sees it stuck once its
password changed and gives it the new one, removes it, and gives someone a drop address; links a
Microsoft 365 mailbox with app-only access and an Exchange mailbox (EWS, its server found by
Autodiscover) from their forms against the Graph and EWS emulators, testing each first (a wrong
secret or password lands on its field, a good test saves nothing); adds and
removes a capture rule and saves the capture policy; adds a user, issues an API token and revokes
it; defines a custom field; adds a pipeline and a stage to it; asks why an email was captured. A
member sees no admin navigation and is told the admin pages are for admins; every admin page fits
a phone. Every change is checked in the database; axe-core finds nothing serious on any admin page.

The tests leave the demo as they found it where other tests could notice (the links, field,
pipeline and rule they make are removed again, the user disabled, the policy put back), since
later modules share the demo database. Mailbox links need a server that trusts the test Dovecot's
and the emulators' CAs: `admin_demo` serves the demo's database a second time, with one
RAPPORT_CA_BUNDLE for all of them and Microsoft's addresses pointing at the emulators.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import func, select, update

from server.crm import rule_lists
from server.crm.users import create_token, revoke_token
from server.crypto import SecretBox
from server.mail_ingest.sync import sync_link
from server.models import (
    ApiToken,
    CaptureDecision,
    CaptureRule,
    CustomFieldDefinition,
    Job,
    MailboxLink,
    Pipeline,
    Stage,
    User,
)
from tests.e2e.conftest import (
    DROP_DOMAIN,
    MEMBER,
    PHONE,
    Demo,
    _wait_until_up,
    app_screenshot,
    axe_violations,
    open_app,
)
from tests.emulators.ews import EwsEmulator, ews, ews_server  # noqa: F401
from tests.emulators.fixtures import identity, identity_server  # noqa: F401
from tests.emulators.graph import GraphEmulator, graph, graph_server  # noqa: F401
from tests.emulators.identity import IdentityEmulator
from tests.support.dovecot import DovecotServer
from tests.support.dovecot_fixtures import ImapAccount
from tests.support.postgres import free_port

pytestmark = pytest.mark.slow
GRAPH_SECRET = "gR8Q~exampleGraphSecret.0123456789abcdef"
EWS_SERVICE = "NORTHWIND\\svc-rapport"
EWS_PASSWORD = "Tr0ub4dor&3-rapport"
_mailboxes = itertools.count()


def named(label: str) -> re.Pattern[str]:
    """A field's label; a required one carries a star (hidden from screen readers)."""
    return re.compile(rf"^{re.escape(label)}( \*)?$")


def no_serious_accessibility_issues(page: Page) -> None:
    page.wait_for_function("() => document.getAnimations().every(a => a.playState !== 'running')")
    assert axe_violations(page) == []


def count(demo: Demo, model: type, *where: Any) -> int:
    with demo.db.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def call(demo: Demo, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 - the test's own server
        demo.base_url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {demo.admin_token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local
        raw = response.read()
    return json.loads(raw) if raw else None


@pytest.fixture(scope="module")
def admin_demo(
    demo: Demo,
    dovecot_server: DovecotServer,
    graph_server: GraphEmulator,  # noqa: F811
    ews_server: EwsEmulator,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Demo]:
    """The demo's own database served by a second server that trusts the test Dovecot's and the
    emulators' CAs (one RAPPORT_CA_BUNDLE), as a server reaching private mail servers would be
    set up, with Microsoft's addresses pointing at the Graph and identity emulators."""
    bundle = tmp_path_factory.mktemp("admin-ca") / "ca-bundle.pem"
    bundle.write_bytes(
        b"".join(
            path.read_bytes()
            for path in (dovecot_server.ca_path, graph_server.identity.ca_path, ews_server.ca_path)
        )
    )
    env = {
        **graph_server.env(),
        "RAPPORT_DATA_DIR": str(demo.settings.data_dir),
        "RAPPORT_DROP_DOMAIN": DROP_DOMAIN,
        "RAPPORT_LOG_LEVEL": "WARNING",
        "RAPPORT_LOG_FORMAT": "text",
        "RAPPORT_CA_BUNDLE": str(bundle),
        "RAPPORT_EWS_AUTODISCOVER_URL": ews_server.env()["RAPPORT_EWS_AUTODISCOVER_URL"],
    }
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "demo", "--port", str(port), "--no-worker"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(f"{base}/healthz", proc)
        yield Demo(
            base,
            replace(demo.settings, ca_bundle=bundle),
            demo.db,
            demo.admin_token,
            demo.summary,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def member_token(demo: Demo) -> Iterator[str]:
    with demo.db.session() as session:
        member = session.scalars(select(User).where(User.email == MEMBER)).one()
        issued = create_token(
            session, member, name="admin pages e2e", expires_in=timedelta(hours=2)
        )
        token_id, plaintext = issued.token.id, issued.plaintext
    yield plaintext
    with demo.db.session() as session:
        revoke_token(session, token_id)


@pytest.fixture
def admin_page(app_context: BrowserContext, admin_demo: Demo) -> Iterator[Page]:
    opened = open_app(app_context, admin_demo, "#/admin/mailboxes")
    yield opened
    assert opened.errors == []  # type: ignore[attr-defined]


def toast(page: Page) -> Any:
    return page.locator("#toast")


# -- mailboxes -----------------------------------------------------------------------------------


def test_an_admin_links_an_imap_mailbox_from_the_form_and_pauses_resumes_syncs_and_removes_it(
    admin_page: Page, admin_demo: Demo, imap_account: ImapAccount
) -> None:
    page = admin_page
    server = imap_account.server
    expect(page.locator("h1")).to_have_text("Mailboxes")
    expect(page.locator("#nav a[data-nav='admin']")).to_have_attribute("aria-current", "page")
    # The demo's own links are listed with their status (the admin's drop address among them).
    expect(page.locator(".link-card").first).to_be_visible()
    expect(page.locator(".link-card", has_text=f"@{DROP_DOMAIN}")).to_be_visible()

    page.locator('[data-key="link-open"]').click()
    form = page.locator('[data-form="imap"]')
    expect(form).to_be_visible()

    # Checked before anything is sent.
    form.locator('[data-key="imap-submit"]').click()
    expect(form.get_by_label(named("Whose mailbox"))).to_be_focused()
    for label in ("Whose mailbox", "IMAP server", "User name", "Password"):
        expect(form.get_by_label(named(label))).to_have_attribute("aria-invalid", "true")
    form.get_by_label(named("Whose mailbox")).fill(MEMBER)
    form.get_by_label(named("IMAP server")).fill(server.host)
    form.get_by_label(named("Port")).fill(str(server.imaps_port))
    form.get_by_label(named("User name")).fill(imap_account.user)
    form.get_by_label(named("Password")).fill("not the password")
    form.get_by_label(named("Only mail since")).fill("last spring")
    form.locator('[data-key="imap-submit"]').click()
    expect(form.get_by_label(named("Only mail since"))).to_have_attribute("aria-invalid", "true")
    form.get_by_label(named("Only mail since")).fill("90d")

    # A wrong password: Dovecot refuses it, the error lands on the password field, nothing saved.
    links_before = count(admin_demo, MailboxLink, MailboxLink.kind == "imap")
    form.locator('[data-key="imap-submit"]').click()
    password = form.get_by_label(named("Password"))
    expect(password).to_have_attribute("aria-invalid", "true", timeout=20_000)
    expect(password).to_be_focused()
    expect(form.locator(".form-message")).to_contain_text("Nothing was saved")
    page.evaluate(
        "window.scrollTo(0, document.querySelector('[data-form=imap]').getBoundingClientRect().top"
        " + window.scrollY - 120)"
    )
    app_screenshot(page, "app-admin-imap-form.png")
    assert count(admin_demo, MailboxLink, MailboxLink.kind == "imap") == links_before

    # The right one: the test says what it would sync, then the link is made and listed.
    password.fill(imap_account.password)
    form.locator('[data-key="imap-test"]').click()
    expect(form.locator(".test-ok")).to_contain_text(
        f"Signed in as {imap_account.user}", timeout=20_000
    )
    expect(password).to_have_attribute("aria-invalid", "false")
    form.get_by_label(named("What to keep of each email")).select_option("subject")
    form.locator('[data-key="imap-submit"]').click()
    expect(toast(page)).to_contain_text(f"Linked {MEMBER}", timeout=20_000)
    with admin_demo.db.read_session() as session:
        link = session.scalars(
            select(MailboxLink)
            .where(MailboxLink.kind == "imap", MailboxLink.status != "removed")
            .order_by(MailboxLink.id.desc())
        ).first()
        assert link is not None
        assert (link.owner_address, link.capture_level, link.status) == (
            MEMBER,
            "subject",
            "active",
        )
        assert link.settings["user"] == imap_account.user and link.secret is not None
        link_id = link.id
    card = page.locator(f'[data-link="{link_id}"]')
    expect(card).to_contain_text("active")
    expect(card).to_contain_text(f"{imap_account.user} on {server.host}:{server.imaps_port}")
    expect(card).to_contain_text("not yet")  # no success yet: the worker has not run

    # Pause, resume, sync now.
    card.locator(f'[data-key="pause-{link_id}"]').click()
    expect(card.locator(".link-todo")).to_have_text(
        "What to do: Paused: nothing is captured until the link is resumed."
    )
    expect(card.locator(f'[data-key="resume-{link_id}"]')).to_be_focused()
    assert (
        count(admin_demo, MailboxLink, MailboxLink.id == link_id, MailboxLink.status == "paused")
        == 1
    )
    card.locator(f'[data-key="resume-{link_id}"]').click()
    expect(card.locator(".badge")).to_have_text("active")
    card.locator(f'[data-key="sync-{link_id}"]').click()
    expect(toast(page)).to_contain_text("queued", ignore_case=True)
    assert count(admin_demo, Job, Job.unique_key == f"sync:{link_id}") == 1
    # The worker's part, done here: one pass over the (empty) mailbox records its success.
    assert sync_link(admin_demo.db, admin_demo.settings, link_id).error is None
    page.reload()
    card = page.locator(f'[data-link="{link_id}"]')
    expect(card.locator(".link-facts")).not_to_contain_text("not yet")

    # The mailbox's password changed on the server: the next sync stops the link and says what
    # to do; a new password is tested and kept, and the link is active again.
    with admin_demo.db.session() as session:
        # The queued sync used up its tries meanwhile (as a worker would record it).
        session.execute(
            update(Job)
            .where(Job.unique_key == f"sync:{link_id}")
            .values(status="dead", attempts=Job.max_attempts, last_error="connection reset")
        )
        stale = SecretBox(admin_demo.settings.secret_keys).encrypt_json({"password": "old one"})
        session.execute(update(MailboxLink).where(MailboxLink.id == link_id).values(secret=stale))
    assert sync_link(admin_demo.db, admin_demo.settings, link_id).error is not None
    page.reload()
    card = page.locator(f'[data-link="{link_id}"]')
    expect(card.locator(".badge")).to_have_text("needs attention")
    expect(card.locator(".link-todo")).to_contain_text("What to do:")
    expect(card.locator(".link-error")).to_be_visible()
    expect(page.locator(f'.attention [data-attention="{link_id}"]')).to_contain_text(MEMBER)
    expect(page.locator(".failed-jobs [data-job]", has_text=f"link {link_id}")).to_contain_text(
        f"sync link for link {link_id}: Connection reset."
    )
    page.evaluate("window.scrollTo(0, 0)")
    app_screenshot(page, "app-admin-mailboxes.png")
    no_serious_accessibility_issues(page)
    card.locator(f'[data-key="password-{link_id}"]').click()
    change = card.locator(f'[data-form="link-password-{link_id}"]')
    change.get_by_label(named("New password")).fill("still not it")
    change.locator(f'[data-key="link-password-{link_id}-submit"]').click()
    expect(change.get_by_label(named("New password"))).to_have_attribute(
        "aria-invalid", "true", timeout=20_000
    )
    expect(change.locator(".form-message")).to_contain_text("old password is still kept")
    change.get_by_label(named("New password")).fill(imap_account.password)
    change.locator(f'[data-key="link-password-{link_id}-submit"]').click()
    expect(card.locator(".badge")).to_have_text("active", timeout=20_000)
    expect(page.locator(f'[data-attention="{link_id}"]')).to_have_count(0)
    assert (
        count(admin_demo, MailboxLink, MailboxLink.id == link_id, MailboxLink.status == "active")
        == 1
    )

    # The link's own page: folders and decisions.
    card.locator(".link-details").click()
    expect(page.locator("h1")).to_have_text(MEMBER)
    expect(page.locator(".panel-link-folders")).to_contain_text("INBOX")
    no_serious_accessibility_issues(page)

    # Removed (the confirmation first); nothing is captured from it any more.
    page.locator(f'[data-key="remove-{link_id}"]').click()
    page.locator('[data-key="confirm-yes"]').click()
    expect(page.locator("h1")).to_have_text("Mailboxes")
    expect(page.locator(f'[data-link="{link_id}"]')).to_have_count(0)
    assert (
        count(admin_demo, MailboxLink, MailboxLink.id == link_id, MailboxLink.status == "removed")
        == 1
    )

    # A drop address for the same person, from the same form; then removed again.
    page.locator('[data-key="link-open"]').click()
    page.get_by_label(named("What to link")).select_option("drop")
    drop = page.locator('[data-form="drop"]')
    drop.get_by_label(named("Whose mailbox")).fill(MEMBER)
    drop.locator('[data-key="drop-submit"]').click()
    expect(toast(page)).to_contain_text(f"@{DROP_DOMAIN}")
    with admin_demo.db.read_session() as session:
        drop_id = session.scalars(
            select(MailboxLink.id).where(
                MailboxLink.kind == "drop",
                MailboxLink.owner_address == MEMBER,
                MailboxLink.status != "removed",
            )
        ).one()
    expect(page.locator(f'[data-link="{drop_id}"]')).to_contain_text(f"@{DROP_DOMAIN}")
    page.locator(f'[data-key="remove-{drop_id}"]').click()
    page.locator('[data-key="confirm-yes"]').click()
    expect(page.locator(f'[data-link="{drop_id}"]')).to_have_count(0)
    assert (
        count(admin_demo, MailboxLink, MailboxLink.id == drop_id, MailboxLink.status == "removed")
        == 1
    )


def new_address() -> str:
    return f"sales{os.getpid()}x{next(_mailboxes)}@northwind-supplies.com"


def newest_link(demo: Demo, kind: str) -> MailboxLink:
    with demo.db.read_session() as session:
        link = session.scalars(
            select(MailboxLink)
            .where(MailboxLink.kind == kind, MailboxLink.status != "removed")
            .order_by(MailboxLink.id.desc())
        ).first()
        assert link is not None
        session.expunge(link)
        return link


def test_an_admin_links_microsoft_365_app_only_and_exchange_mailboxes_from_their_forms(
    admin_page: Page,
    admin_demo: Demo,
    identity: IdentityEmulator,  # noqa: F811
    graph: GraphEmulator,  # noqa: F811
    ews: EwsEmulator,  # noqa: F811
) -> None:
    page = admin_page
    tenant = identity.add_tenant()
    entra_app = graph.graph_app(tenant, secret=GRAPH_SECRET)
    shared = new_address()
    graph.add_mailbox(tenant, shared, shared=True)

    # Microsoft 365, app-only: checked before anything is sent, a wrong secret is named by the
    # test, a good test says what the link would sync and saves nothing, then it is linked.
    page.locator('[data-key="link-open"]').click()
    page.get_by_label(named("What to link")).select_option("graph")
    form = page.locator('[data-form="graph"]')
    form.locator('[data-key="graph-submit"]').click()
    for label in (
        "Whose mailbox",
        "Directory (tenant) ID",
        "Application (client) ID",
        "Client secret",
    ):
        expect(form.get_by_label(named(label))).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_label(named("Whose mailbox"))).to_be_focused()
    form.get_by_label(named("Whose mailbox")).fill(shared)
    form.get_by_label(named("Directory (tenant) ID")).fill(tenant.id)
    form.get_by_label(named("Application (client) ID")).fill(entra_app.client_id)
    form.get_by_label(named("Client secret")).fill("not-the-secret-4711")
    form.get_by_label(named("Folders")).fill("inbox, sentitems")
    form.get_by_label("Also capture meetings from the calendar").uncheck()
    graph_links = count(admin_demo, MailboxLink, MailboxLink.kind == "graph")
    form.locator('[data-key="graph-test"]').click()
    secret = form.get_by_label(named("Client secret"))
    expect(secret).to_have_attribute("aria-invalid", "true", timeout=20_000)
    expect(secret).to_be_focused()
    expect(form.locator(".form-message")).to_contain_text("The test failed")
    no_serious_accessibility_issues(page)
    secret.fill(GRAPH_SECRET)
    form.locator('[data-key="graph-test"]').click()
    result = form.locator(".test-result")
    expect(result).to_contain_text("It works", timeout=20_000)
    expect(result).to_contain_text(f"opened {shared}")
    expect(result).to_contain_text("Inbox, Sent Items (no meetings: calendar off)")
    expect(secret).to_have_attribute("aria-invalid", "false")
    assert count(admin_demo, MailboxLink, MailboxLink.kind == "graph") == graph_links
    no_serious_accessibility_issues(page)
    form.locator('[data-key="graph-submit"]').click()
    expect(toast(page)).to_contain_text(
        f"Linked {shared}: Rapport syncs Inbox, Sent Items at", timeout=20_000
    )
    link = newest_link(admin_demo, "graph")
    assert (link.owner_address, link.status, link.settings["calendar"]) == (shared, "active", False)
    assert link.settings["client_id"] == entra_app.client_id and link.secret is not None
    card = page.locator(f'[data-link="{link.id}"]')
    expect(card.locator(".badge")).to_have_text("active")
    expect(card).to_contain_text(f"tenant {tenant.id}")
    expect(card).to_contain_text("Inbox, Sent Items")
    call(admin_demo, "DELETE", f"/api/v1/admin/mailboxes/{link.id}")

    # Exchange (EWS): a wrong password lands on the password field; with the right one and no
    # server, the test finds it by Autodiscover and saves nothing; then the link is saved.
    ews.add_account(EWS_SERVICE, EWS_PASSWORD, impersonation=True)
    mailbox = new_address()
    ews.add_mailbox(mailbox)
    ews.serve_autodiscover(f"autodiscover.{mailbox.split('@')[1]}")
    page.locator('[data-key="link-open"]').click()
    page.get_by_label(named("What to link")).select_option("ews")
    form = page.locator('[data-form="ews"]')
    # An app through hybrid modern auth asks for its tenant, client id and secret instead.
    form.get_by_label(named("Signs in as")).select_option("app")
    expect(form.get_by_label(named("Service account"))).to_have_count(0)
    form.locator('[data-key="ews-test"]').click()
    for label in ("Directory (tenant) ID", "Application (client) ID", "Client secret"):
        expect(form.get_by_label(named(label))).to_have_attribute("aria-invalid", "true")
    no_serious_accessibility_issues(page)
    form.get_by_label(named("Signs in as")).select_option("account")
    expect(form.get_by_label(named("Client secret"))).to_have_count(0)
    form.get_by_label(named("Whose mailbox")).fill(mailbox)
    form.get_by_label(named("EWS address")).fill("http://exchange.example/EWS/Exchange.asmx")
    form.get_by_label(named("Service account")).fill(EWS_SERVICE)
    form.get_by_label(named("Password")).fill("not-the-password-4711")
    form.locator('[data-key="ews-submit"]').click()
    expect(form.get_by_label(named("EWS address"))).to_have_attribute("aria-invalid", "true")
    form.get_by_label(named("EWS address")).fill(ews.url)
    ews_links = count(admin_demo, MailboxLink, MailboxLink.kind == "ews")
    form.locator('[data-key="ews-submit"]').click()
    password = form.get_by_label(named("Password"))
    expect(password).to_have_attribute("aria-invalid", "true", timeout=20_000)
    expect(password).to_be_focused()
    expect(form.locator(".form-message")).to_contain_text("Nothing was saved")
    assert count(admin_demo, MailboxLink, MailboxLink.kind == "ews") == ews_links
    page.evaluate(
        "window.scrollTo(0, document.querySelector('[data-form=ews]').getBoundingClientRect().top"
        " + window.scrollY - 120)"
    )
    app_screenshot(page, "app-admin-ews-form.png")
    no_serious_accessibility_issues(page)
    password.fill(EWS_PASSWORD)
    form.get_by_label(named("EWS address")).fill("")
    form.locator('[data-key="ews-test"]').click()
    result = form.locator(".test-result")
    expect(result).to_contain_text("It works", timeout=20_000)
    expect(result).to_contain_text(f"at {ews.url} (found by Autodiscover)")
    expect(result).to_contain_text("Inbox, Sent Items and meetings from the calendar")
    assert count(admin_demo, MailboxLink, MailboxLink.kind == "ews") == ews_links
    no_serious_accessibility_issues(page)
    form.locator('[data-key="ews-submit"]').click()
    expect(toast(page)).to_contain_text(f"Linked {mailbox}", timeout=20_000)
    expect(toast(page)).to_contain_text("and the calendar")
    link = newest_link(admin_demo, "ews")
    assert (link.owner_address, link.status) == (mailbox, "active")
    assert (link.settings["server"], link.settings["access"]) == (ews.url, "impersonation")
    assert link.settings["autodiscovered"] is True
    card = page.locator(f'[data-link="{link.id}"]')
    expect(card.locator(".badge")).to_have_text("active")
    expect(card).to_contain_text(f"{EWS_SERVICE} on {ews.url}")
    expect(card).to_contain_text("not yet")  # no sync yet: the worker has not run
    call(admin_demo, "DELETE", f"/api/v1/admin/mailboxes/{link.id}")


# -- capture rules ---------------------------------------------------------------------------------


def test_a_capture_rule_is_added_and_removed_and_the_policy_saved(
    admin_page: Page, admin_demo: Demo
) -> None:
    page = admin_page
    page.goto(f"{admin_demo.base_url}/app/#/admin/rules")
    expect(page.locator("h1")).to_have_text("Capture rules")
    section = page.locator(".panel-rules-block_domain")
    form = section.locator('[data-form="rule-block_domain"]')
    form.get_by_label(named("Domain")).fill("not a domain")
    form.locator('[data-key="rule-block_domain-submit"]').click()
    expect(form.get_by_label(named("Domain"))).to_have_attribute("aria-invalid", "true")
    form.get_by_label(named("Domain")).fill("@Bulk-Offers.example")
    form.locator('[data-key="rule-block_domain-submit"]').click()
    rule = section.locator(".rule", has_text="bulk-offers.example")
    expect(rule).to_be_visible()
    expect(toast(page)).to_contain_text("No captured email needed emptying")
    blocked = (CaptureRule.kind == "block_domain", CaptureRule.value == "bulk-offers.example")
    assert count(admin_demo, CaptureRule, *blocked) == 1
    # The same again: the API's refusal lands on the field.
    form.get_by_label(named("Domain")).fill("bulk-offers.example")
    form.locator('[data-key="rule-block_domain-submit"]').click()
    expect(form.locator(".field-error").first).to_contain_text("exists already")

    # The policy: a switch saved.
    with admin_demo.db.read_session() as session:
        before = rule_lists.capture_settings(session)
    policy = page.locator('[data-form="policy"]')
    policy.get_by_label("Skip mailing lists").set_checked(not before["skip_mailing_lists"])
    policy.get_by_label(named("Who becomes a contact by themselves")).select_option("sent")
    policy.locator('[data-key="policy-submit"]').click()
    expect(toast(page)).to_contain_text("capture policy is saved")
    with admin_demo.db.read_session() as session:
        after = rule_lists.capture_settings(session)
    assert after["skip_mailing_lists"] is (not before["skip_mailing_lists"])
    assert after["auto_create_contacts"] == "sent"
    no_serious_accessibility_issues(page)
    call(admin_demo, "PUT", "/api/v1/admin/rules/settings", before)

    rule.locator("fluent-button").click()
    page.locator('[data-key="confirm-yes"]').click()
    expect(rule).to_have_count(0)
    assert count(admin_demo, CaptureRule, *blocked) == 0


# -- users and tokens -----------------------------------------------------------------------------


def test_a_user_is_added_and_a_token_issued_and_revoked(admin_page: Page, admin_demo: Demo) -> None:
    page = admin_page
    page.goto(f"{admin_demo.base_url}/app/#/admin/users")
    expect(page.locator("h1")).to_have_text("Users and tokens")
    page.locator('[data-key="user-open"]').click()
    form = page.locator('[data-form="user-new"]')
    form.get_by_label(named("Email address")).fill("zoe.admin-test@northwind-supplies")
    form.get_by_label(named("Password")).fill("short")
    form.locator('[data-key="user-new-submit"]').click()
    expect(form.get_by_label(named("Email address"))).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_label(named("Password"))).to_have_attribute("aria-invalid", "true")
    form.get_by_label(named("Email address")).fill("zoe.admin-test@northwind-supplies.com")
    form.get_by_label(named("Name")).fill("Zoë Admin-Test")
    form.get_by_label(named("Password")).fill("four unrelated words here")
    form.locator('[data-key="user-new-submit"]').click()
    expect(toast(page)).to_contain_text("Zoë Admin-Test is added as a member")
    expect(
        page.locator(".row-user", has_text="zoe.admin-test@northwind-supplies.com")
    ).to_be_visible()
    with admin_demo.db.read_session() as session:
        zoe = session.scalars(
            select(User).where(User.email == "zoe.admin-test@northwind-supplies.com")
        ).one()
        assert (zoe.name, zoe.role, zoe.password_hash is not None) == (
            "Zoë Admin-Test",
            "member",
            True,
        )
        zoe_id = zoe.id

    page.locator('[data-key="token-open"]').click()
    tokens = page.locator('[data-form="token-new"]')
    tokens.get_by_label(named("What it is for")).fill("Nightly export (e2e)")
    tokens.get_by_label(named("It may")).select_option("read")
    tokens.get_by_label(named("Valid for (days)")).fill("30")
    tokens.locator('[data-key="token-new-submit"]').click()
    issued = page.locator(".issued")
    expect(issued).to_contain_text("never shows it again")
    plaintext = issued.locator(".copy-text").inner_text()
    with admin_demo.db.read_session() as session:
        token = session.scalars(
            select(ApiToken).where(ApiToken.name == "Nightly export (e2e)")
        ).one()
        assert token.scopes == "read" and plaintext.startswith(token.prefix)
        token_id = token.id
    no_serious_accessibility_issues(page)

    page.locator('[data-key="issued-done"]').click()
    page.locator(f'[data-key="revoke-{token_id}"]').click()
    page.locator('[data-key="confirm-yes"]').click()
    expect(page.locator(f'[data-token="{token_id}"]')).to_contain_text("revoked")

    # Disabled again (the confirmation first): later tests' owner pickers need not list Zoë.
    page.locator(f'[data-key="disable-{zoe_id}"]').click()
    page.locator('[data-key="confirm-yes"]').click()
    expect(page.locator(f'[data-user="{zoe_id}"]')).to_contain_text("disabled")
    expect(page.locator(f'[data-key="disable-{zoe_id}"]')).to_have_text("Enable")
    with admin_demo.db.read_session() as session:
        assert session.get(User, zoe_id).disabled_at is not None  # type: ignore[union-attr]
    with admin_demo.db.read_session() as session:
        assert session.get(ApiToken, token_id).revoked_at is not None  # type: ignore[union-attr]


# -- custom fields and pipelines ------------------------------------------------------------------


def test_a_custom_field_is_defined_and_a_stage_added_to_a_pipeline(
    admin_page: Page, admin_demo: Demo
) -> None:
    page = admin_page
    page.goto(f"{admin_demo.base_url}/app/#/admin/fields")
    expect(page.locator("h1")).to_have_text("Custom fields")
    page.locator('[data-key="field-open"]').click()
    form = page.locator('[data-form="field-new"]')
    form.get_by_label(named("On")).select_option("deal")
    form.get_by_label(named("Label")).fill("Contract renewal")
    expect(form.get_by_label(named("Key"))).to_have_value("contract_renewal")
    form.get_by_label(named("Type")).select_option("choice")
    form.locator('[data-key="field-new-submit"]').click()
    expect(form.get_by_label(named("Choices"))).to_have_attribute("aria-invalid", "true")
    form.get_by_label(named("Choices")).fill("Monthly\nYearly")
    form.locator('[data-key="field-new-submit"]').click()
    created = page.locator(".panel-fields-deal .field-def", has_text="Contract renewal")
    expect(created).to_contain_text("Monthly, Yearly")
    with admin_demo.db.read_session() as session:
        definition = session.scalars(
            select(CustomFieldDefinition).where(CustomFieldDefinition.key == "contract_renewal")
        ).one()
        assert (definition.entity, definition.field_type, definition.choices) == (
            "deal",
            "choice",
            ["Monthly", "Yearly"],
        )
        field_id = definition.id
    no_serious_accessibility_issues(page)
    page.locator(f'[data-key="field-delete-{field_id}"]').click()
    page.locator('[data-key="confirm-yes"]').click()
    expect(created).to_have_count(0)
    assert count(admin_demo, CustomFieldDefinition, CustomFieldDefinition.id == field_id) == 0

    # A pipeline of its own (so the demo's board stays as other tests know it), then a stage.
    page.locator(".admin-tabs a", has_text="Pipelines").click()
    expect(page.locator("h1")).to_have_text("Pipelines")
    page.locator('[data-key="pipeline-open"]').click()
    new = page.locator('[data-form="pipeline-new"]')
    new.get_by_label(named("Pipeline name")).fill("Renewals (e2e)")
    new.get_by_label(named("Its stages")).fill("Due\nOffered")
    new.locator('[data-key="pipeline-new-submit"]').click()
    panel = page.locator(".pipeline", has_text="Renewals (e2e)")
    expect(panel.locator(".stage")).to_have_count(2)
    with admin_demo.db.read_session() as session:
        pipeline_id = session.scalars(
            select(Pipeline.id).where(Pipeline.name == "Renewals (e2e)")
        ).one()
    panel.locator(f'[data-key="stage-new-open-{pipeline_id}"]').click()
    stage_form = panel.locator(f'[data-form="stage-new-{pipeline_id}"]')
    stage_form.get_by_label(named("Stage name")).fill("Renewed")
    stage_form.get_by_label(named("Chance of winning (%)")).fill("150")
    stage_form.locator(f'[data-key="stage-new-{pipeline_id}-submit"]').click()
    expect(stage_form.get_by_label(named("Chance of winning (%)"))).to_have_attribute(
        "aria-invalid", "true"
    )
    stage_form.get_by_label(named("Chance of winning (%)")).fill("100")
    stage_form.get_by_label(named("Outcome")).select_option("won")
    stage_form.get_by_label(named("Where")).select_option(label="Before Offered")
    stage_form.locator(f'[data-key="stage-new-{pipeline_id}-submit"]').click()
    panel = page.locator(f'[data-pipeline="{pipeline_id}"]')
    expect(panel.locator(".stage-name")).to_have_text(["Due", "Renewed", "Offered"])
    with admin_demo.db.read_session() as session:
        stages = session.scalars(
            select(Stage).where(Stage.pipeline_id == pipeline_id).order_by(Stage.position)
        ).all()
        assert [(s.name, s.outcome, s.probability) for s in stages] == [
            ("Due", "open", 0),
            ("Renewed", "won", 100),
            ("Offered", "open", 0),
        ]
    # Moved down by keyboard-reachable buttons: the order is saved.
    renewed = stages[1].id
    panel.locator(f'[data-key="stage-down-{renewed}"]').click()
    expect(panel.locator(".stage-name")).to_have_text(["Due", "Offered", "Renewed"])
    no_serious_accessibility_issues(page)

    panel.locator(f'[data-key="pipeline-delete-{pipeline_id}"]').click()
    page.locator('[data-key="confirm-yes"]').click()
    expect(page.locator(f'[data-pipeline="{pipeline_id}"]')).to_have_count(0)
    assert count(admin_demo, Pipeline, Pipeline.id == pipeline_id) == 0


# -- why (not) captured -----------------------------------------------------------------------------


def test_the_trace_says_why_an_email_was_captured(admin_page: Page, admin_demo: Demo) -> None:
    with admin_demo.db.read_session() as session:
        decision = session.scalars(
            select(CaptureDecision)
            .where(
                CaptureDecision.decision == "captured",
                CaptureDecision.activity_id.is_not(None),
                CaptureDecision.message_key.startswith("mid:"),
            )
            .order_by(CaptureDecision.id)
        ).first()
        assert decision is not None
        message_id, activity_id = f"<{decision.message_key[4:]}>", decision.activity_id
    page = admin_page
    page.goto(f"{admin_demo.base_url}/app/#/admin/trace")
    expect(page.locator("h1")).to_have_text("Why wasn't this email captured?")
    form = page.locator('[data-form="trace"]')
    form.locator('[data-key="trace-submit"]').click()
    expect(form.get_by_label(named("The email's Message-ID"))).to_have_attribute(
        "aria-invalid", "true"
    )
    form.get_by_label(named("The email's Message-ID")).fill(message_id)
    form.locator('[data-key="trace-submit"]').click()
    answer = page.locator(".panel-trace-answer")
    expect(answer.locator('[data-decision="captured"]').first).to_be_visible()
    expect(answer.locator(f'a[href="#/activities/{activity_id}"]').first).to_be_visible()
    expect(page).to_have_url(re.compile(r"#/admin/trace\?message_id="))
    app_screenshot(page, "app-admin-trace.png")
    no_serious_accessibility_issues(page)

    # An email no mailbox saw: what to check instead.
    form.get_by_label(named("The email's Message-ID")).fill("<never-seen-e2e@example.com>")
    form.locator('[data-key="trace-submit"]').click()
    expect(answer).to_contain_text("No linked mailbox has seen this email")
    expect(answer.locator(".trace-advice")).to_be_visible()


# -- who may ---------------------------------------------------------------------------------------


def test_a_member_gets_no_admin_navigation_and_admin_pages_say_admins_only(
    app_context: BrowserContext, admin_demo: Demo, member_token: str
) -> None:
    page = open_app(app_context, admin_demo, "#/my-day", token=member_token)
    expect(page.locator("#nav a[data-nav='my-day']")).to_be_visible()
    expect(page.locator("#nav a[data-nav='admin']")).to_have_count(0)
    for path in ("mailboxes", "rules", "users", "fields", "pipelines", "trace"):
        page.goto(f"{admin_demo.base_url}/app/#/admin/{path}")
        expect(page.locator("h1")).to_have_text("Admins only")
        expect(page.locator(".admins-only")).to_contain_text("ask")
    no_serious_accessibility_issues(page)
    assert page.errors == []  # type: ignore[attr-defined]


def test_the_admin_pages_on_a_phone(app_context: BrowserContext, admin_demo: Demo) -> None:
    page = open_app(app_context, admin_demo, "#/admin/mailboxes")
    page.set_viewport_size(PHONE)
    for path in ("mailboxes", "rules", "users", "fields", "pipelines", "trace"):
        page.goto(f"{admin_demo.base_url}/app/#/admin/{path}")
        expect(page.locator(".admin-tabs a[aria-current='page']")).to_be_visible()
        expect(page.locator("main[aria-busy='false']")).to_be_visible()
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, path
        no_serious_accessibility_issues(page)
    assert page.errors == []  # type: ignore[attr-defined]
