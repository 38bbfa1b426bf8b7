"""The Outlook task pane in Chromium, against the demo server, on two hosts: a Mailbox 1.5-only
Outlook and a current one. Every action is clicked through and checked in the database; axe-core
finds nothing serious; screenshots go to docs/screenshots/ for the README.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from sqlalchemy import func, select

from server.crm.rules import log_header_key, log_header_value
from server.mail_ingest.importer import import_files
from server.models import (
    Activity,
    Contact,
    ContactEmail,
    Deal,
    DealContact,
    DealStageChange,
    FollowUp,
    SignalState,
    User,
    utcnow,
)
from tests.e2e.conftest import (
    ADMIN,
    DANIELA,
    DROP_DOMAIN,
    HOSTS,
    MEMBER,
    MEMBER_PASSWORD,
    Demo,
    axe_violations,
    open_pane,
    screenshot,
)

pytestmark = pytest.mark.slow


# Each host's run makes its own records, named after a different site (and fit for screenshots).
SITE = {"mailbox-1.5": "Salford", "current": "Leeds"}


@pytest.fixture(params=list(HOSTS), scope="module")
def host(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def picker(demo: Demo) -> list[dict[str, Any]]:
    """The demo admin's recent emails and meetings, as the preview's picker shows them."""
    items: list[dict[str, Any]] = demo.api("/api/v1/preview/emails")["items"]
    return items


def read_item(entry: dict[str, Any]) -> dict[str, Any]:
    """What Outlook's item looks like for a captured email or meeting, in read mode."""
    return {
        "kind": "appointment" if entry["kind"] == "meeting" else "message",
        "mode": "read",
        "subject": entry["subject"],
        "from": entry["sender"],
        "to": entry["to"],
        "cc": entry["cc"],
        "internetMessageId": entry["message_id"],
        "conversationId": entry["conversation_id"],
        "dateTimeCreated": entry["date"],
        "start": entry["start"],
        "end": entry["end"],
        "body": entry["body"],
    }


def email_from(picker: list[dict[str, Any]], address: str) -> dict[str, Any]:
    return next(e for e in picker if e["kind"] == "email" and e["sender"]["address"] == address)


def count(demo: Demo, model: type, *where: Any) -> int:
    with demo.db.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def fill(page: Page, form: str, name: str, value: str) -> None:
    control = page.locator(f'[data-key="{form}-{name}"]')
    tag = control.evaluate("node => node.tagName.toLowerCase()")
    if tag == "fluent-text-input":
        control.locator("input").fill(value)
    elif tag == "fluent-textarea":
        control.locator("textarea").fill(value)
    else:
        control.fill(value)


def open_form(page: Page, form: str) -> None:
    """Open one of the pane's forms. The pane draws itself again when the lookup that follows an
    action returns; a click that lands just as it does is lost, so click until the form shows."""
    for _ in range(3):
        page.locator(f'[data-key="{form}-open"]').click()
        try:
            page.locator(f'[data-form="{form}"]').wait_for(state="visible", timeout=5000)
            return
        except PlaywrightTimeout:
            continue
    expect(page.locator(f'[data-form="{form}"]')).to_be_visible()


def still_typed(page: Page, form: str, name: str, value: str) -> None:
    """What was typed is still in the field (components restore it a frame after a render)."""
    expect(page.locator(f'[data-key="{form}-{name}"]')).to_have_js_property("value", value)


def toast(page: Page) -> Any:
    return expect(page.locator("#toast"))


def no_serious_accessibility_issues(page: Page) -> None:
    assert axe_violations(page) == []


# -- read mode: the people, the timeline, every action ------------------------------------------


def test_read_email_shows_who_it_is_from_and_logs_unlogs(
    context: BrowserContext, demo: Demo, picker: list[dict[str, Any]], host: str
) -> None:
    email = email_from(picker, DANIELA)
    page = open_pane(context, demo, sets=HOSTS[host], item=read_item(email))
    card = page.locator("article.person").first
    expect(card.locator("h3")).to_have_text("Daniela Vásquez")
    expect(card).to_contain_text("Vasquez & Row Architects")
    expect(card).to_contain_text("Last contacted")
    expect(page.locator(".section-companies")).to_contain_text("vasquezrow-architects.com")

    # The timeline groups a conversation; a group opens with the keyboard.
    thread = page.locator("details.thread").filter(has_text="in this conversation").first
    thread.locator("summary").focus()
    page.keyboard.press("Enter")
    expect(thread).to_have_attribute("open", "")
    expect(thread.locator("li.entry").first).to_be_visible()

    # The email was captured: it shows as logged; unlog, then log it again.
    expect(page.locator(".log-row fluent-badge")).to_have_text("Logged")
    if host == "current":
        screenshot(page, "pane-read.png")
    no_serious_accessibility_issues(page)
    page.locator('[data-key="unlog"]').click()
    toast(page).to_contain_text("Unlogged")
    key = "mid:" + email["message_id"].strip("<>")
    with demo.db.read_session() as session:
        activity = session.scalars(select(Activity).where(Activity.message_key == key)).one()
        assert activity.unlogged_at is not None
    page.locator('[data-key="log"]').click()
    toast(page).to_contain_text("Logged again")
    expect(page.locator(".log-row fluent-badge")).to_have_text("Logged")
    with demo.db.read_session() as session:
        activity = session.scalars(select(Activity).where(Activity.message_key == key)).one()
        assert activity.unlogged_at is None
    assert page.errors == []  # type: ignore[attr-defined]


def test_deal_note_and_follow_up_from_the_pane(
    context: BrowserContext, demo: Demo, picker: list[dict[str, Any]], host: str
) -> None:
    email = email_from(picker, DANIELA)
    page = open_pane(context, demo, sets=HOSTS[host], item=read_item(email))
    expect(page.locator("article.person").first).to_be_visible()
    with demo.db.read_session() as session:
        daniela = session.scalars(
            select(Contact).join(ContactEmail).where(ContactEmail.address == DANIELA)
        ).one()
        daniela_id = daniela.id

    # A deal: a bad amount is refused and what was typed stays; then it is created.
    title = f"Eco range roll-out in {SITE[host]}"
    page.locator('[data-key="deal-open"]').click()
    fill(page, "deal", "title", title)
    fill(page, "deal", "amount", "twelve hundred")
    page.locator('[data-key="deal-submit"]').click()
    expect(page.locator('[data-form="deal"] .error')).to_be_visible()
    still_typed(page, "deal", "title", title)
    still_typed(page, "deal", "amount", "twelve hundred")
    fill(page, "deal", "amount", "1200.50")
    page.locator('[data-key="deal-submit"]').click()
    toast(page).to_contain_text("Deal created")
    with demo.db.read_session() as session:
        deal = session.scalars(select(Deal).where(Deal.title == title)).one()
        deal_id, first_stage = deal.id, deal.stage_id
        assert str(deal.amount) == "1200.50"
        assert (
            session.scalar(select(DealContact.contact_id).where(DealContact.deal_id == deal_id))
            == daniela_id
        )

    # Move it to the next stage.
    stage = page.locator(f'[data-key="stage-{deal_id}"]')
    expect(stage).to_be_enabled()
    options = stage.locator("option").evaluate_all("os => os.map(o => o.value)")
    target = next(v for v in options if int(v) != first_stage)
    stage.select_option(target)
    toast(page).to_contain_text("moved to")
    with demo.db.read_session() as session:
        assert session.get(Deal, deal_id).stage_id == int(target)  # type: ignore[union-attr]
    assert count(demo, DealStageChange, DealStageChange.deal_id == deal_id) == 2

    # A note.
    open_form(page, "note")
    fill(page, "note", "body", f"Daniela wants samples before the {SITE[host]} roll-out.")
    page.locator('[data-key="note-submit"]').click()
    toast(page).to_contain_text("Note added")
    assert (
        count(
            demo,
            Activity,
            Activity.kind == "note",
            Activity.body_text.contains(f"before the {SITE[host]} roll-out"),
        )
        == 1
    )

    # A follow-up, then ticked off.
    open_form(page, "followup")
    fill(page, "followup", "title", f"Send samples to {SITE[host]}")
    page.locator('[data-key="followup-submit"]').click()
    toast(page).to_contain_text("Follow-up set")
    with demo.db.read_session() as session:
        follow_up = session.scalars(
            select(FollowUp).where(FollowUp.title == f"Send samples to {SITE[host]}")
        ).one()
        assert follow_up.contact_id == daniela_id
    page.locator(f'[data-key="done-{follow_up.id}"]').click()
    toast(page).to_contain_text("Done")
    with demo.db.read_session() as session:
        assert session.get(FollowUp, follow_up.id).done_at is not None  # type: ignore[union-attr]
    no_serious_accessibility_issues(page)
    assert page.errors == []  # type: ignore[attr-defined]


def test_an_unknown_sender_becomes_a_contact_in_one_click(
    context: BrowserContext, demo: Demo, host: str
) -> None:
    address = f"lena.fischer.{host.replace('.', '-')}@harbourview-hotels.de"
    item = {
        "kind": "message",
        "mode": "read",
        "subject": "Towels for 40 rooms",
        "from": {"name": "Lena Fischer", "address": address},
        "to": [{"name": "Anna Lindqvist", "address": ADMIN}],
        "cc": [],
        "internetMessageId": make_msgid(domain="harbourview-hotels.de"),
        "conversationId": "conv-lena",
        "dateTimeCreated": "2026-11-20T09:30:00Z",
        "body": "Hello Anna, could you quote 400 hand towels? Lena",
    }
    page = open_pane(context, demo, sets=HOSTS[host], item=item)
    unknown = page.locator("article.unknown")
    expect(unknown.locator("h3")).to_have_text("Lena Fischer")
    expect(unknown).to_contain_text("Harbourview Hotels")
    if host == "current":
        screenshot(page, "pane-unknown-sender.png")
    no_serious_accessibility_issues(page)
    unknown.locator("fluent-button").click()
    toast(page).to_contain_text("Contact created: Lena Fischer")
    expect(page.locator("article.person:not(.unknown) h3")).to_have_text("Lena Fischer")
    with demo.db.read_session() as session:
        contact = session.scalars(
            select(Contact).join(ContactEmail).where(ContactEmail.address == address)
        ).one()
        assert contact.name == "Lena Fischer"
        assert contact.company is not None and contact.company.name == "Harbourview Hotels"

    # Logging it (it was never captured) makes a new activity with the pane's content.
    page.locator('[data-key="log"]').click()
    toast(page).to_contain_text("Logged: the email is on the timeline")
    key = "mid:" + item["internetMessageId"].strip("<>").lower()
    with demo.db.read_session() as session:
        logged = session.scalars(select(Activity).where(Activity.message_key == key)).one()
        assert logged.subject == "Towels for 40 rooms"
    assert page.errors == []  # type: ignore[attr-defined]


# -- compose: following the recipients, "log this email when sent" --------------------------------


def test_compose_follows_the_recipients_and_logs_when_sent(
    context: BrowserContext, demo: Demo, host: str, tmp_path: Path
) -> None:
    subject = f"Proposal for the eco range in {SITE[host]}"
    item = {
        "kind": "message",
        "mode": "compose",
        "subject": subject,
        "from": {"name": "Anna Lindqvist", "address": ADMIN},
        "to": [],
        "cc": [],
    }
    page = open_pane(context, demo, sets=HOSTS[host], item=item)
    expect(page.locator(".section-people")).to_contain_text("Only colleagues")
    # Typing a recipient: RecipientsChanged (1.7+) or the pane's polling (1.5) picks it up.
    page.evaluate(
        "people => OfficeStandin.setRecipients('to', people)",
        [{"name": "Daniela Vásquez", "address": DANIELA}],
    )
    expect(page.locator("article.person h3")).to_have_text("Daniela Vásquez", timeout=8000)

    page.locator('[data-key="log-when-sent"]').click()
    expect(page.locator(".log-row .logged")).to_be_visible()
    record = page.evaluate("OfficeStandin.record")
    bcc = page.evaluate("OfficeStandin.bcc()")
    with demo.db.read_session() as session:
        anna = session.scalars(select(User).where(User.email == ADMIN)).one()
        marker = log_header_value(log_header_key(session), anna.id)
        drop = next(link for link in anna_links(session, anna.id) if link.kind == "drop")
        drop_address = f"crm+{drop.drop_token}@{DROP_DOMAIN}"
    # Anna has a drop address and no linked mailbox: the Bcc always; the header where it can be.
    assert bcc == [drop_address]
    if host == "current":
        assert record["headers"] == {"X-Rapport-Log": marker}
        screenshot(page, "pane-compose.png")
    else:
        assert record["headers"] == {}
    # The Bcc is not looked up as a person.
    expect(page.locator("article.person")).to_have_count(1)
    no_serious_accessibility_issues(page)

    # Sent to a colleague only (a rule skips that) with the header: her Sent copy is captured.
    sent = EmailMessage()
    sent["From"] = f"Anna Lindqvist <{ADMIN}>"
    sent["To"] = MEMBER
    sent["Subject"] = subject
    sent["Date"] = format_datetime(utcnow())
    sent["Message-ID"] = make_msgid(domain="northwind-supplies.com")
    sent["X-Rapport-Log"] = marker
    sent.set_content("Tom, here is what I am sending to Daniela.")
    maildir = tmp_path / "anna" / ".Sent"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "cur" / "1.eml:2,S").write_bytes(sent.as_bytes())
    result = import_files(demo.db, demo.settings, [tmp_path / "anna"], owner=ADMIN, jobs=1)
    assert result.run.counts.captured == 1
    assert count(demo, Activity, Activity.subject == subject) == 1
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_template_is_suggested_after_a_won_deal_and_inserted_filled_in(
    context: BrowserContext, demo: Demo, host: str
) -> None:
    with demo.db.read_session() as session:
        deal = session.scalars(select(Deal).where(Deal.title == "Surgery refit consumables")).one()
        contact_id = session.scalar(
            select(DealContact.contact_id).where(DealContact.deal_id == deal.id)
        )
        contact = session.get(Contact, contact_id)
        assert contact is not None
        address = session.scalar(
            select(ContactEmail.address).where(ContactEmail.contact_id == contact.id)
        )
        name = contact.name
    item = {
        "kind": "message",
        "mode": "compose",
        "subject": "",
        "from": {"name": "Anna Lindqvist", "address": ADMIN},
        "to": [{"name": name, "address": address}],
        "cc": [],
    }
    page = open_pane(context, demo, sets=HOSTS[host], item=item)
    suggestion = page.locator('.section-templates li.suggestion[data-purpose="deal_won"]')
    expect(suggestion).to_contain_text("Thank you — how did we do?")
    expect(suggestion).to_contain_text("Surgery refit consumables was won on")
    no_serious_accessibility_issues(page)
    suggestion.locator("fluent-button").click()
    toast(page).to_contain_text("Template inserted with its subject")
    (inserted,) = page.evaluate("OfficeStandin.record.inserted")
    first = name.replace("Dr ", "").split()[0]
    assert inserted["coercionType"] == "html"
    assert f"Hello {first}," in inserted["data"]
    assert "Surgery refit consumables" in inserted["data"]  # the won deal, not the open one
    subject = page.evaluate(
        "() => new Promise(r => Office.context.mailbox.item.subject.getAsync(x => r(x.value)))"
    )
    assert subject == f"Thank you, {first}"
    if host == "current":
        screenshot(page, "pane-template.png")
    # Any template, from the list: the subject typed already stays.
    page.evaluate("() => new Promise(r => Office.context.mailbox.item.subject.setAsync('Mine', r))")
    choice = page.locator('[data-key="template-choice"]')
    choice.select_option(label="Quote follow-up")
    page.locator('[data-key="template-insert"]').click()
    toast(page).to_contain_text("Template inserted.")
    assert len(page.evaluate("OfficeStandin.record.inserted")) == 2
    assert page.errors == []  # type: ignore[attr-defined]


def anna_links(session: Any, user_id: int) -> list[Any]:
    from server.crm.mailboxes import links_owned_by

    return links_owned_by(session, user_id, ADMIN)


# -- a pinned pane follows the selection; meetings --------------------------------------------------


def test_a_pinned_pane_follows_the_selection_and_shows_meetings(
    context: BrowserContext, demo: Demo, picker: list[dict[str, Any]], host: str
) -> None:
    first = email_from(picker, DANIELA)
    other = next(
        e
        for e in picker
        if e["kind"] == "email"
        and e["direction"] == "incoming"
        and e["sender"]["address"] != DANIELA
    )
    page = open_pane(context, demo, sets=HOSTS[host], item=read_item(first))
    expect(page.locator("#item-title")).to_have_text(first["subject"])
    page.evaluate("item => OfficeStandin.selectItem(item)", read_item(other))
    expect(page.locator("#item-title")).to_have_text(other["subject"])
    expect(page.locator("article.person").first).to_contain_text(other["sender"]["name"])

    meeting = next(e for e in picker if e["kind"] == "meeting")
    page.evaluate("item => OfficeStandin.selectItem(item)", read_item(meeting))
    expect(page.locator("#item-title")).to_have_text(meeting["subject"])
    expect(page.locator(".this-item .meta")).to_contain_text("Meeting")
    expect(page.locator('[data-key="log"]')).to_have_count(0)
    expect(page.locator("article.person").first).to_be_visible()

    # A meeting being planned: its attendees are looked up as they are added.
    page.evaluate(
        "item => OfficeStandin.selectItem(item)",
        {
            "kind": "appointment",
            "mode": "compose",
            "subject": "Site visit",
            "from": {"name": "Anna Lindqvist", "address": ADMIN},
            "to": [{"name": "Daniela Vásquez", "address": DANIELA}],
            "cc": [],
        },
    )
    expect(page.locator("#item-title")).to_have_text("Site visit")
    expect(page.locator("article.person h3")).to_have_text("Daniela Vásquez")
    page.evaluate("OfficeStandin.selectItem(null)")  # nothing selected: the person's day
    expect(page.locator("#my-day-title")).to_have_text("My day")
    expect(page.locator('[data-key="my-day-close"]')).to_have_count(0)
    assert page.errors == []  # type: ignore[attr-defined]


# -- signing in, and a 401 that keeps what was typed ----------------------------------------------


def test_sign_in_through_the_dialog_and_again_after_a_401_keeps_the_draft(
    context: BrowserContext, demo: Demo, picker: list[dict[str, Any]], host: str
) -> None:
    email = email_from(picker, DANIELA)
    page = open_pane(
        context, demo, sets=HOSTS[host], item=read_item(email), signed_in=False, user=MEMBER
    )
    expect(page.locator("#signin-title")).to_have_text("Sign in to Rapport")
    no_serious_accessibility_issues(page)
    sign_in(page)
    expect(page.locator("article.person").first).to_be_visible()

    open_form(page, "note")
    draft = f"Call Daniela about the {SITE[host]} samples"
    fill(page, "note", "body", draft)
    # The token is revoked behind the pane's back: the next call gets a 401.
    page.evaluate(
        "localStorage.setItem('rapport.pane.token', JSON.stringify({token: 'rpt_revoked'}))"
    )
    page.locator('[data-key="note-submit"]').click()
    expect(page.locator("#signin-title")).to_be_visible()
    expect(page.locator(".signin .error")).to_contain_text("sign in again")
    sign_in(page)
    expect(page.locator('[data-form="note"]')).to_be_visible()
    still_typed(page, "note", "body", draft)
    page.locator('[data-key="note-submit"]').click()
    toast(page).to_contain_text("Note added")
    with demo.db.read_session() as session:
        tom = session.scalars(select(User).where(User.email == MEMBER)).one()
        note = session.scalars(select(Activity).where(Activity.body_text == draft)).one()
        assert note.author_id == tom.id
    assert page.errors == []  # type: ignore[attr-defined]


def sign_in(page: Page) -> None:
    with page.expect_popup() as opened:
        page.locator('[data-key="signin-password"]').click()
    dialog = opened.value
    dialog.locator("#email").fill(MEMBER)
    dialog.locator("#password").fill(MEMBER_PASSWORD)
    dialog.locator("#submit").click()
    dialog.wait_for_event("close")


# -- look: dark theme, 320 px, keyboard --------------------------------------------------------------


def test_dark_theme_and_320_px_are_usable_by_keyboard(
    context: BrowserContext, demo: Demo, picker: list[dict[str, Any]], host: str
) -> None:
    email = email_from(picker, DANIELA)
    dark = {
        "isDarkTheme": True,
        "bodyBackgroundColor": "#262626",
        "bodyForegroundColor": "#ffffff",
        "controlBackgroundColor": "#333333",
        "controlForegroundColor": "#ffffff",
        "themeId": "Black",
    }
    page = open_pane(context, demo, sets=HOSTS[host], item=read_item(email), theme=dark)
    page.set_viewport_size({"width": 320, "height": 800})
    expect(page.locator("article.person").first).to_be_visible()
    # Mailbox 1.5 has no Office theme: the system's colour scheme decides (light here).
    expected = "dark" if host == "current" else "light"
    expect(page.locator("html")).to_have_attribute("data-theme", expected)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    if host == "current":
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(41, 41, 41)"  # Fluent's web dark neutral background
        screenshot(page, "pane-dark.png")
        # Outlook switched to a light theme (OfficeThemeChanged, Mailbox 1.14): the pane follows.
        page.evaluate(
            "OfficeStandin.setTheme({isDarkTheme: false, bodyBackgroundColor: '#ffffff'})"
        )
        expect(page.locator("html")).to_have_attribute("data-theme", "light")
        page.evaluate("OfficeStandin.setTheme({isDarkTheme: true, bodyBackgroundColor: '#262626'})")
        expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    else:
        screenshot(page, "pane-narrow-320.png")
    no_serious_accessibility_issues(page)

    # Keyboard only: reach "Add a note", open it, type, submit with the keyboard.
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement?.dataset?.key") == "note-open":
            break
    else:
        pytest.fail("Tab never reached 'Add a note'")
    page.keyboard.press("Enter")
    expect(page.locator('[data-form="note"]')).to_be_visible()
    page.keyboard.type(f"Agreed the {SITE[host]} delivery dates by phone")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the submit button
    toast(page).to_contain_text("Note added")
    assert (
        count(
            demo, Activity, Activity.body_text == f"Agreed the {SITE[host]} delivery dates by phone"
        )
        == 1
    )
    assert page.errors == []  # type: ignore[attr-defined]


def test_an_old_browser_is_told_to_update_outlook(context: BrowserContext, demo: Demo) -> None:
    """legacy.js is what Internet Explorer and EdgeHTML run (they cannot run the modules)."""
    page = context.new_page()
    page.add_init_script("delete HTMLScriptElement.prototype.noModule")
    page.route(re.compile(r".*/pane/main\.js$"), lambda route: route.abort())
    page.goto(demo.base_url + "/pane/")
    page.add_script_tag(url="/pane/legacy.js")
    expect(page.locator("#legacy")).to_be_visible()
    expect(page.locator("#legacy h1")).to_have_text("Please update Outlook")
    expect(page.locator("#app")).to_have_count(0)


# -- single sign-on through nested app authentication -----------------------------------------------

FAKE_MSAL = """
window.msal = {
  createNestablePublicClientApplication: async (config) => {
    window.__msal = {config, requests: []};
    return {
      acquireTokenSilent: async (request) => {
        window.__msal.requests.push(request.scopes);
        return {accessToken: window.__msalToken};
      },
      acquireTokenPopup: async () => { throw new Error('no popup expected'); },
    };
  },
};
"""
ENTRA = {
    "client_id": "66666666-7777-8888-9999-000000000000",
    "tenant_id": "11111111-2222-3333-4444-555555555555",
    "authority": "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555",
    "scopes": ["api://66666666-7777-8888-9999-000000000000/access_as_user"],
}


def test_single_sign_on_where_the_host_brokers_tokens(
    context: BrowserContext, demo: Demo, picker: list[dict[str, Any]], host: str
) -> None:
    """With an Entra registration, a host with NestedAppAuth 1.1 signs in silently through MSAL;
    one without it offers the password page. (MSAL itself is replaced: no Entra ID here; the
    token it hands over is a Rapport API token, which the server takes the same way.)"""
    context.route(
        "**/api/v1/pane-config",
        lambda route: route.fulfill(json={"entra": ENTRA, "signin_url": "/signin", "demo": False}),
    )
    context.route(
        "**/vendor/msal-browser.min.js",
        lambda route: route.fulfill(body=FAKE_MSAL, content_type="text/javascript"),
    )
    context.add_init_script(f"window.__msalToken = {demo.admin_token!r};")
    email = email_from(picker, DANIELA)
    page = open_pane(context, demo, sets=HOSTS[host], item=read_item(email), signed_in=False)
    if host == "current":
        expect(page.locator("article.person").first).to_be_visible()
        msal = page.evaluate("window.__msal")
        assert msal["config"]["auth"] == {
            "clientId": ENTRA["client_id"],
            "authority": ENTRA["authority"],
        }
        assert msal["requests"][0] == ENTRA["scopes"]
    else:
        expect(page.locator("#signin-title")).to_be_visible()
        expect(page.locator('[data-key="signin-entra"]')).to_have_count(0)
        assert page.evaluate("window.__msal === undefined")


def test_the_served_msal_offers_the_nestable_client(context: BrowserContext, demo: Demo) -> None:
    page = context.new_page()
    page.goto(demo.base_url + "/preview/")
    page.add_script_tag(url="/vendor/msal-browser.min.js")
    assert page.evaluate("typeof msal.createNestablePublicClientApplication") == "function"


def my_signals(demo: Demo) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = demo.api("/api/v1/signals?mine=1&limit=100")["items"]
    return items


def signal_state(demo: Demo, key: str) -> str | None:
    with demo.db.read_session() as session:
        admin = session.scalars(select(User).where(User.email == ADMIN)).one()
        return session.scalar(
            select(SignalState.state).where(
                SignalState.user_id == admin.id, SignalState.signal_key == key
            )
        )


def test_signals_sit_on_the_person_cards_and_snooze_from_there(
    context: BrowserContext, demo: Demo, picker: list[dict[str, Any]]
) -> None:
    mine = my_signals(demo)
    senders = {e["sender"]["address"] for e in picker if e["kind"] == "email"}
    signal = next(s for s in mine if s["contact"] and s["contact"]["address"] in senders)
    email = email_from(picker, signal["contact"]["address"])
    page = open_pane(context, demo, sets=HOSTS["current"], item=read_item(email))
    card = page.locator("article.person").filter(has_text=signal["contact"]["name"]).first
    shown = card.locator(f'li.signal[data-signal-key="{signal["key"]}"]')
    expect(shown).to_contain_text(signal["reason"]["summary"])
    no_serious_accessibility_issues(page)
    shown.locator(f'[data-key="snooze-{signal["key"]}"]').click()
    toast(page).to_contain_text("Snoozed until")
    expect(shown).to_have_count(0)
    assert signal_state(demo, signal["key"]) == "snoozed"
    assert signal["key"] not in {s["key"] for s in my_signals(demo)}
    assert page.errors == []  # type: ignore[attr-defined]


def test_my_day_when_nothing_is_selected_and_from_its_button(
    context: BrowserContext, demo: Demo, picker: list[dict[str, Any]], host: str
) -> None:
    mine = my_signals(demo)
    assert len(mine) >= 3, "the demo gives its admin a day's worth of signals"
    if host == "current":  # Mailbox 1.13+: the pane opens with nothing selected
        page = open_pane(context, demo, sets=HOSTS[host], item=None)
    else:  # an older Outlook opens the pane on an email: My day is a button away
        page = open_pane(context, demo, sets=HOSTS[host], item=read_item(picker[0]))
        page.locator('[data-key="my-day-open"]').click()
        expect(page.locator('[data-key="my-day-close"]')).to_be_visible()
    listed = page.locator(".my-day li.signal")
    expect(listed.first).to_be_visible()
    first_page = mine[:25]
    expect(listed).to_have_count(len(first_page))
    assert listed.evaluate_all("nodes => nodes.map(n => n.dataset.signalKey)") == [
        s["key"] for s in first_page
    ]
    first = first_page[0]
    expect(listed.first).to_contain_text(first["reason"]["summary"])
    if first["contact"]:
        expect(listed.first).to_contain_text(
            first["contact"]["name"] or first["contact"]["address"]
        )
    if host == "current":
        screenshot(page, "pane-my-day.png")
    no_serious_accessibility_issues(page)

    # Write opens a new email in Outlook to the person; Dismiss takes the signal off for good.
    person = next(s for s in first_page if s["contact"] and s["contact"]["address"])
    page.locator(f'[data-key="write-{person["key"]}"]').click()
    sent = page.evaluate("window.OfficeStandin.record.newMessages")
    assert sent == [{"toRecipients": [person["contact"]["address"]], "subject": ""}]
    page.locator(f'[data-key="dismiss-{first["key"]}"]').click()
    toast(page).to_contain_text("Dismissed")
    expect(page.locator(f'.my-day li.signal[data-signal-key="{first["key"]}"]')).to_have_count(0)
    assert signal_state(demo, first["key"]) == "dismissed"

    if host == "current":  # selecting an email leaves My day for its people
        page.evaluate("item => window.OfficeStandin.selectItem(item)", read_item(picker[0]))
    else:
        page.locator('[data-key="my-day-close"]').click()
    expect(page.locator("#item-title")).to_be_visible()
    expect(page.locator(".my-day")).to_have_count(0)
    assert page.errors == []  # type: ignore[attr-defined]
