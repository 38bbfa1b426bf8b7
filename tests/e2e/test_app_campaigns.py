"""Campaigns in the web app, in Chromium: a segment built with the contact filters (its size is
the API's), a campaign written for it, previewed for a recipient, checked (the person the demo's
last campaign unsubscribed is listed as skipped), a test sent to oneself, then sent to a real
SMTP receiver (aiosmtpd on loopback) by the campaign job — the page follows the sending and
shows the numbers, a captured reply and an unsubscribe included, and its CSV holds them. The
consent panel of a contact's page changes the consent, and the check follows it.

The session's demo server runs without its worker (`--no-worker`, so that tests decide when
queued work runs); this module runs a second server on the same demo database with
RAPPORT_SMTP_URL and RAPPORT_PUBLIC_URL set, and runs the campaign job here with the worker's own
handler. The last test runs `rapport demo` as a person does (its worker and answering customers
beside it, no SMTP server): the demo's draft goes to the outbox and replies arrive.
"""

from __future__ import annotations

import csv
import email
import email.policy
import io
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import select

from server.config import Settings, load_settings
from server.crm.campaigns import JOB
from server.demo.campaigns import DRAFT, capture_as
from server.demo.responder import ANSWERS
from server.jobs import Runner
from server.mail_out.campaigns import CampaignSender
from server.models import (
    Campaign,
    CampaignRecipient,
    Contact,
    ContactEmail,
    MailingBlock,
    Segment,
    utcnow,
)
from tests.e2e.conftest import (
    ADMIN,
    DROP_DOMAIN,
    PHONE,
    Demo,
    _wait_until_up,
    app_screenshot,
    axe_violations,
    open_app,
)
from tests.support.postgres import free_port

pytestmark = pytest.mark.slow

SEGMENT = "Clairval customers"
CAMPAIGN = "Clairval autumn offer"
SUBJECT = "Hello {{ contact.first_name | there }}"
BODY = "Dear {{ contact.first_name | there }},\n\nOur autumn offer is out.\n\n{{ sender.name }}"


class Receiver:
    """A local relay that keeps what it is sent."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 2.0.0 Ok: queued"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for rcpts, m in self.messages if address in rcpts]


@dataclass
class Sending:
    base_url: str
    settings: Settings
    receiver: Receiver


@pytest.fixture(scope="module")
def sending(demo: Demo) -> Iterator[Sending]:
    """The demo database served again, with an SMTP server and a public URL."""
    receiver = Receiver()
    smtp_port = free_port()
    controller = Controller(receiver, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "RAPPORT_DATA_DIR": str(demo.settings.data_dir),
        "RAPPORT_DROP_DOMAIN": DROP_DOMAIN,
        "RAPPORT_LOG_LEVEL": "WARNING",
        "RAPPORT_LOG_FORMAT": "text",
        "RAPPORT_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "RAPPORT_PUBLIC_URL": base,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "demo", "--port", str(port), "--no-worker"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_until_up(f"{base}/healthz", proc)
        yield Sending(base, load_settings(env, demo=True), receiver)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        controller.stop()


def run_campaign_jobs(demo: Demo, settings: Settings) -> int:
    """What the worker does with campaign jobs, once (the demo has no worker of its own)."""
    runner = Runner(demo.db, {}, long_handlers={JOB: CampaignSender(settings).job})
    return runner.run(once=True)


@pytest.fixture
def pages(app_context: BrowserContext) -> Iterator[list[Page]]:
    holder: list[Page] = []
    yield holder
    for one in holder:
        assert one.errors == []  # type: ignore[attr-defined]


def opened(pages: list[Page], context: BrowserContext, demo: Demo, base: str, route: str) -> Page:
    page = open_app(context, demo, "#/my-day")
    page.goto(f"{base}/app/{route}")
    pages.append(page)
    return page


def no_serious_accessibility_issues(page: Page) -> None:
    page.wait_for_function("() => document.getAnimations().every(a => a.playState !== 'running')")
    assert axe_violations(page) == []


@dataclass(frozen=True)
class Audience:
    company_id: int
    company: str
    unsubscribed: str  # the name of the person the demo's sent campaign unsubscribed
    mailed: dict[str, str]  # address -> first name, of the others


@pytest.fixture(scope="module")
def audience(demo: Demo) -> Audience:
    """The customers of the company of the person who used the demo campaign's unsubscribe
    link (the demo seeds that through the real unsubscribe service)."""
    with demo.db.read_session() as session:
        block = session.scalars(
            select(MailingBlock).where(MailingBlock.reason == "unsubscribed")
        ).first()
        assert block is not None and block.contact_id is not None
        gone = session.get(Contact, block.contact_id)
        assert gone is not None and gone.company is not None
        others = session.execute(
            select(Contact.name, ContactEmail.address)
            .join(ContactEmail, ContactEmail.contact_id == Contact.id)
            .where(
                Contact.company_id == gone.company_id,
                Contact.lifecycle_stage == "customer",
                Contact.id != gone.id,
                ContactEmail.is_primary.is_(True),
            )
        ).all()
        return Audience(
            gone.company.id,
            gone.company.name,
            gone.name,
            {address: name.split()[0] for name, address in others},
        )


def test_a_segment_is_built_checked_sent_and_counted(
    app_context: BrowserContext,
    pages: list[Page],
    demo: Demo,
    sending: Sending,
    audience: Audience,
) -> None:
    base = sending.base_url
    page = opened(pages, app_context, demo, base, "#/campaigns")
    expect(page.get_by_role("heading", name="Campaigns", level=1)).to_be_visible()
    # The demo's own: a campaign sent three weeks ago and a draft.
    expect(page.locator("[data-campaign]")).to_have_count(2)

    # -- the segment: the contact filters, saved as they change, with its size and people
    page.locator('[data-key="segment-new"]').click()
    dialog = page.locator('[data-dialog="segment-create"]')
    dialog.get_by_label("Name").fill(SEGMENT)
    dialog.locator('[data-key="segment-create-submit"]').click()
    expect(page.get_by_role("heading", name=SEGMENT, level=1)).to_be_visible()
    page.get_by_label("Lifecycle stage").select_option("customer")
    expect(page.locator(".segment-saved")).to_contain_text("Saved")
    page.get_by_label("Company").select_option(str(audience.company_id))
    size = len(audience.mailed) + 1
    expect(page.locator(".segment-size")).to_have_attribute("data-size", str(size))
    segment_id = int(page.url.rsplit("/", 1)[1])
    assert demo.api(f"/api/v1/segments/{segment_id}/size")["size"] == size
    stored = demo.api(f"/api/v1/segments/{segment_id}")["filters"]
    assert stored == {"lifecycle_stage": "customer", "company_id": audience.company_id}
    expect(page.locator("[data-person]")).to_have_count(size)
    no_serious_accessibility_issues(page)
    app_screenshot(page, "app-segment.png")

    # -- the campaign: written, previewed for a recipient, checked
    page.goto(f"{base}/app/#/campaigns")
    page.locator('[data-key="campaign-new"]').click()
    dialog = page.locator('[data-dialog="campaign-create"]')
    dialog.get_by_label("Name").fill(CAMPAIGN)
    dialog.locator('[data-key="campaign-create-submit"]').click()
    expect(page.get_by_role("heading", name=CAMPAIGN, level=1)).to_be_visible()
    page.get_by_label("Segment", exact=True).select_option(label=SEGMENT)
    page.get_by_label("Subject").fill(SUBJECT)
    page.get_by_label("Body (plain text)").fill(BODY)
    page.locator('[data-key="campaign-submit"]').click()
    expect(page.locator("#toast")).to_contain_text("Saved.")
    address, first = sorted(audience.mailed.items())[0]
    page.get_by_label("Preview for").select_option(
        label=f"{audience_name(demo, address)} · {address}"
    )
    expect(page.locator('[data-preview="subject"]')).to_have_text(f"Hello {first}")
    expect(page.locator('[data-preview="body"]')).to_contain_text(f"Dear {first},")
    skipped = page.locator("[data-skipped]")
    expect(skipped).to_have_count(1)
    expect(skipped).to_have_attribute("data-reason", "unsubscribed")
    expect(skipped).to_contain_text(audience.unsubscribed)
    expect(skipped).to_contain_text("Unsubscribed")
    expect(page.locator('[data-kpi="mailed"] .kpi-value')).to_have_text(str(len(audience.mailed)))
    no_serious_accessibility_issues(page)
    app_screenshot(page, "app-campaign-draft.png")

    # -- a test to oneself, through the SMTP server, nothing recorded
    page.locator('[data-key="campaign-test"]').click()
    expect(page.locator("#toast")).to_contain_text(f"A test went to {ADMIN}")
    (test_mail,) = sending.receiver.to(ADMIN)
    assert str(test_mail["Subject"]) == f"[Test] Hello {first}"

    # -- send, after the confirmation; the job sends; the page follows
    page.locator('[data-key="campaign-send"]').click()
    confirm = page.locator('[data-dialog="campaign-confirm"]')
    expect(confirm).to_contain_text(f"It goes to {len(audience.mailed)} people now")
    expect(confirm).to_contain_text("1 person is skipped")
    confirm.locator('[data-key="campaign-confirm-send"]').click()
    expect(page.locator("#campaign-progress")).to_be_visible()
    expect(page.locator('[data-key="campaign-pause"]')).to_be_visible()
    campaign_id = int(page.url.rsplit("/", 1)[1])
    assert run_campaign_jobs(demo, sending.settings) >= 1
    expect(page.locator(".progress [role=status]")).to_contain_text(
        f"Finished: {len(audience.mailed)} emails sent", timeout=15_000
    )
    expect(page.locator('[data-kpi="sent"] .kpi-value')).to_have_text(str(len(audience.mailed)))
    expect(page.locator('[data-kpi="skipped"] .kpi-value')).to_have_text("1")
    expect(page.locator('.skip-list [data-reason="unsubscribed"]')).to_be_visible()
    for person, name in audience.mailed.items():
        (mail,) = sending.receiver.to(person)
        assert str(mail["Subject"]) == f"Hello {name}"
        assert str(mail["List-Unsubscribe"]).startswith(f"<{base}/u/")
    assert not any(
        str(m["Subject"]).startswith("Hello") and "[Test]" not in str(m["Subject"])
        for rcpts, m in sending.receiver.messages
        if ADMIN in rcpts
    )

    # -- a reply arrives (captured into the sender's mailbox) and someone unsubscribes
    sent = sending.receiver.to(address)[0]
    reply = EmailMessage()
    reply["From"] = address
    reply["To"] = ADMIN
    reply["Subject"] = f"Re: {sent['Subject']}"
    reply["Date"] = format_datetime(utcnow())
    reply["Message-ID"] = make_msgid(domain="reply.test")
    reply["In-Reply-To"] = str(sent["Message-ID"])
    reply.set_content("Yes please, send the offer.")
    with demo.db.session() as session:
        capture_as(session, ADMIN, reply.as_bytes(), "Inbox", "e2e-campaign-reply")
    leaving = sorted(audience.mailed)[-1]
    link = str(sending.receiver.to(leaving)[0]["List-Unsubscribe"]).strip("<>")
    unsubscribe = urllib.request.Request(  # noqa: S310 - the test's own server
        link, data=b"List-Unsubscribe=One-Click", method="POST"
    )
    unsubscribe.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(unsubscribe, timeout=30) as answer:  # noqa: S310 - local
        assert b"You are unsubscribed" in answer.read()
    page.reload()
    expect(page.locator('[data-kpi="replied"] .kpi-value')).to_have_text("1")
    expect(page.locator('[data-kpi="unsubscribed"] .kpi-value')).to_have_text("1")
    no_serious_accessibility_issues(page)
    app_screenshot(page, "app-campaign-sent.png")

    # -- the numbers as CSV
    with page.expect_download() as download:
        page.locator('[data-key="campaign-csv"]').click()
    rows = dict(csv.reader(io.StringIO(Path(download.value.path()).read_text())))
    assert rows["sent"] == str(len(audience.mailed))
    assert rows["replied"] == "1" and rows["unsubscribed"] == "1"
    assert rows["skipped: unsubscribed"] == "1"

    page.set_viewport_size(PHONE)
    no_serious_accessibility_issues(page)
    app_screenshot(page, "app-campaign-phone.png")
    clean_up(demo, campaign_id, segment_id)


def audience_name(demo: Demo, address: str) -> str:
    with demo.db.read_session() as session:
        name = session.scalar(
            select(Contact.name)
            .join(ContactEmail, ContactEmail.contact_id == Contact.id)
            .where(ContactEmail.address == address)
        )
        assert name is not None
        return name


def clean_up(demo: Demo, campaign_id: int, segment_id: int) -> None:
    """The module's campaign and segment go (the emails they sent stay on the timelines)."""
    with demo.db.session() as session:
        campaign = session.get(Campaign, campaign_id)
        segment = session.get(Segment, segment_id)
        for row in (campaign, segment):
            if row is not None:
                session.delete(row)


def test_the_consent_panel_changes_a_contact_s_consent(
    app_context: BrowserContext, pages: list[Page], demo: Demo, audience: Audience
) -> None:
    address = sorted(audience.mailed)[0]
    with demo.db.read_session() as session:
        contact_id = session.scalar(
            select(ContactEmail.contact_id).where(ContactEmail.address == address)
        )
    before = demo.api(f"/api/v1/contacts/{contact_id}/consent")
    assert before["state"] == "granted" and before["source"] == "demo import"
    page = opened(pages, app_context, demo, demo.base_url, f"#/contacts/{contact_id}")
    panel = page.locator(".panel-consent")
    expect(panel.locator("[data-consent]")).to_have_attribute("data-consent", "granted")
    expect(panel).to_contain_text("demo import")
    panel.locator('[data-key="consent-change"]').click()
    panel.get_by_label("Consent", exact=True).select_option("withdrawn")
    panel.get_by_label("Source").fill("asked by phone")
    panel.locator('[data-key="consent-submit"]').click()
    expect(panel.locator("[data-consent]")).to_have_attribute("data-consent", "withdrawn")
    expect(panel).to_contain_text("Campaigns skip this person")
    after = demo.api(f"/api/v1/contacts/{contact_id}/consent")
    assert after["state"] == "withdrawn" and after["source"] == "asked by phone"
    no_serious_accessibility_issues(page)
    app_screenshot(page, "app-contact-consent.png")
    # Put back as the demo had it (later modules share the demo).
    panel.locator('[data-key="consent-change"]').click()
    panel.get_by_label("Consent", exact=True).select_option("granted")
    panel.get_by_label("Source").fill("demo import")
    panel.locator('[data-key="consent-submit"]').click()
    expect(panel.locator("[data-consent]")).to_have_attribute("data-consent", "granted")


# -- the demo as a person runs it: its worker sends, its customers answer ------------------------


@pytest.fixture(scope="module")
def live(demo: Demo) -> Iterator[str]:
    """`rapport demo` as the README runs it (the worker and the answering customers beside the
    server; no SMTP server, no public URL), on the session's demo database."""
    port = free_port()
    env = {
        "RAPPORT_DATA_DIR": str(demo.settings.data_dir),
        "RAPPORT_DROP_DOMAIN": DROP_DOMAIN,
        "RAPPORT_LOG_LEVEL": "WARNING",
        "RAPPORT_LOG_FORMAT": "text",
    }
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "demo", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_until_up(f"{base}/healthz", proc)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_in_the_demo_a_campaign_goes_out_and_customers_answer(
    app_context: BrowserContext, pages: list[Page], demo: Demo, live: str
) -> None:
    """The demo's draft, sent from the page: the demo's own worker sends it to the outbox (the
    bounced and the unsubscribed person skipped), and replies arrive on the timelines."""
    with demo.db.read_session() as session:
        draft = session.scalars(select(Campaign).where(Campaign.name == DRAFT[0])).one()
    outbox = demo.settings.data_dir / "outbox"
    before = set(outbox.glob("*.eml"))
    page = opened(pages, app_context, demo, live, f"#/campaigns/{draft.id}")
    expect(page.get_by_role("heading", name=DRAFT[0], level=1)).to_be_visible()
    # The demo's bounced and unsubscribed people (other tests here may have added to them).
    expect(page.locator('[data-skipped][data-reason="bounced"]')).not_to_have_count(0)
    expect(page.locator('[data-skipped][data-reason="unsubscribed"]')).not_to_have_count(0)
    skipped_count = page.locator("[data-skipped]").count()
    page.locator('[data-key="campaign-send"]').click()
    page.locator('[data-dialog="campaign-confirm"] [data-key="campaign-confirm-send"]').click()
    expect(page.locator(".progress [role=status]")).to_contain_text("Finished", timeout=60_000)

    with demo.db.read_session() as session:
        rows = session.scalars(
            select(CampaignRecipient).where(CampaignRecipient.campaign_id == draft.id)
        ).all()
    mailed = {r.address for r in rows if r.state == "sent"}
    left_out = {r.address for r in rows if r.state == "skipped"}
    assert mailed and len(left_out) == skipped_count
    written = [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in set(outbox.glob("*.eml")) - before
    ]
    assert {str(m["To"]).rsplit("<", 1)[-1].strip(">") for m in written} == mailed
    assert all(str(m["List-Unsubscribe"]).startswith(f"<{live}/u/") for m in written)

    # A few seconds later, one recipient in three answers; the page counts them.
    answering = sorted((r for r in rows if r.state == "sent" and r.id % 3 == 0), key=lambda r: r.id)
    assert answering, "the demo's draft reaches at least three people"
    page.wait_for_timeout(6_000)
    for _ in range(10):
        page.reload()
        replied = page.locator('[data-kpi="replied"] .kpi-value')
        if replied.inner_text() == str(len(answering)):
            break
        page.wait_for_timeout(2_000)
    expect(replied).to_have_text(str(len(answering)))
    # ... and the answer is on the customer's timeline, threaded to the campaign email.
    first = answering[0]
    page.goto(f"{live}/app/#/contacts/{first.contact_id}")
    answer = page.locator(".panel-timeline li.entry", has_text="Re: ").first
    expect(answer).to_contain_text(ANSWERS[first.id % len(ANSWERS)], timeout=15_000)
