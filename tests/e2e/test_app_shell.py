"""The web app's frame in Chromium, against the demo server: signing in on the password page (and
again over the page when a sign-in runs out, keeping what was typed), signing out, the search
box from the keyboard, shortcuts, light and dark, a phone-sized screen, and My day (signals with
snooze, dismiss and Undo). axe-core finds nothing serious on any page shown."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import select

from server.models import Activity, ApiToken, SignalState, User
from tests.e2e.conftest import (
    ADMIN,
    DANIELA_NAME,
    MEMBER,
    MEMBER_PASSWORD,
    PHONE,
    Demo,
    app_screenshot,
    axe_violations,
    open_app,
)

pytestmark = pytest.mark.slow


def no_serious_accessibility_issues(page: Page) -> None:
    # Colours are judged once they stop changing (buttons and menus fade between states).
    page.wait_for_function("() => document.getAnimations().every(a => a.playState !== 'running')")
    assert axe_violations(page) == []


def sign_in_on_the_password_page(page: Page, email: str = MEMBER) -> None:
    with page.expect_popup() as opened:
        page.locator('[data-key="signin-password"]').click()
    window = opened.value
    window.locator("#email").fill(email)
    window.locator("#password").fill(MEMBER_PASSWORD)
    window.locator("#submit").click()
    window.wait_for_event("close")


def user_id(demo: Demo, email: str) -> int:
    with demo.db.read_session() as session:
        return int(session.scalars(select(User.id).where(User.email == email)).one())


def test_the_app_page_preloads_its_modules_and_the_pane_modules_it_imports(demo: Demo) -> None:
    with urllib.request.urlopen(f"{demo.base_url}/app/", timeout=10) as response:  # noqa: S310
        html = response.read().decode()
        policy = response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-cache"
    for module in ("/app/contacts.js", "/app/router.js", "/pane/http.js", "/pane/theme.js"):
        assert f'<link rel="modulepreload" href="{module}">' in html
    assert '<script type="module" src="/app/main.js">' in html
    assert "script-src 'self'" in policy
    for name in ("app.css", "main.js"):
        with urllib.request.urlopen(f"{demo.base_url}/app/{name}", timeout=10) as asset:  # noqa: S310
            assert asset.status == 200
    for bad in ("/app/nothing.js", "/app/..%2fpane.js"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(demo.base_url + bad, timeout=10)  # noqa: S310
        refused.value.close()
        assert refused.value.code == 404


def test_sign_in_on_the_password_page_then_sign_out_revokes_the_token(
    app_context: BrowserContext, demo: Demo
) -> None:
    page = open_app(app_context, demo, "#/contacts", token="")
    expect(page.locator("#signin-title")).to_have_text("Sign in to Rapport")
    # The demo server offers its admin too; a real one does not (tested by the pane's preview).
    expect(page.locator('[data-key="signin-demo"]')).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    no_serious_accessibility_issues(page)

    sign_in_on_the_password_page(page)
    expect(page.locator("h1")).to_have_text("Contacts")  # where the person was going
    expect(page.locator("#account summary")).to_contain_text("Tom")
    token = page.evaluate("sessionStorage.getItem('rapport.token')")
    assert token and token.startswith("rpt_")

    page.locator("#account summary").click()
    page.locator('[data-key="sign-out"]').click()
    expect(page.locator("#signin-title")).to_be_visible()
    expect(page.locator(".signin-why")).to_have_text("You are signed out.")
    assert page.evaluate("sessionStorage.getItem('rapport.token')") is None
    with demo.db.read_session() as session:
        revoked = session.scalars(
            select(ApiToken.revoked_at)
            .where(ApiToken.user_id == user_id(demo, MEMBER))
            .order_by(ApiToken.id.desc())
        ).first()
    assert revoked is not None
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_token_that_ran_out_before_the_app_opened_asks_to_sign_in(
    app_context: BrowserContext, demo: Demo
) -> None:
    page = open_app(app_context, demo, "#/deals", token="rpt_expired")
    expect(page.locator("#signin-title")).to_be_visible()
    expect(page.locator(".signin-why")).to_contain_text("Your sign-in has run out")
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_sign_in_that_runs_out_is_asked_again_over_the_page_and_the_note_is_kept(
    app_context: BrowserContext, demo: Demo
) -> None:
    page = open_app(app_context, demo, "#/contacts", token="")
    sign_in_on_the_password_page(page)
    page.locator("#global-search").fill("Daniela")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text(DANIELA_NAME)
    text = "Daniela prefers calls after 3 pm (kept through a sign-in)"
    page.locator('[data-form="note"] textarea').fill(text)
    # The token is revoked behind the app's back: the next call gets a 401.
    page.evaluate("sessionStorage.setItem('rapport.token', 'rpt_revoked')")
    page.locator('[data-key="note-submit"]').click()
    dialog = page.locator("dialog.signin-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Your sign-in has run out")
    sign_in_on_the_password_page(page)
    expect(dialog).to_have_count(0)
    expect(page.locator('[data-form="note"] textarea')).to_have_value(text)
    page.locator('[data-key="note-submit"]').click()
    expect(page.locator("#toast")).to_contain_text("Note added")
    expect(page.locator(".entry-note").first).to_contain_text("Daniela prefers calls")
    with demo.db.read_session() as session:
        note = session.scalars(select(Activity).where(Activity.body_text == text)).one()
        assert note.author_id == user_id(demo, MEMBER)
    assert page.errors == []  # type: ignore[attr-defined]


def test_search_from_the_keyboard_opens_a_result(app_context: BrowserContext, demo: Demo) -> None:
    page = open_app(app_context, demo, "#/my-day")
    expect(page.locator("h1")).to_have_text("My day")
    page.locator("body").press("/")
    box = page.locator("#global-search")
    expect(box).to_be_focused()
    page.keyboard.type("vasquez")
    results = page.locator("#search-results")
    expect(results).to_be_visible()
    expect(box).to_have_attribute("aria-expanded", "true")
    options = results.locator('[role="option"]')
    expect(options.first).to_have_attribute("aria-selected", "true")
    kinds = options.locator(".hit-kind").all_inner_texts()
    assert {"Contact", "Company"} <= set(kinds)
    company = kinds.index("Company")
    for _ in range(company):
        page.keyboard.press("ArrowDown")
    expect(options.nth(company)).to_have_attribute("aria-selected", "true")
    company_name = options.nth(company).locator(".hit-title").inner_text()
    expect(box).to_have_attribute("aria-activedescendant", f"search-hit-{company}")
    no_serious_accessibility_issues(page)
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text(company_name)
    expect(page).to_have_url(re.compile(r"#/companies/\d+$"))
    expect(results).to_be_hidden()

    # Escape closes the list, a second one empties the box; an email opens its own page.
    page.locator("body").press("/")
    page.keyboard.type("hand towel")
    expect(options.first).to_be_visible()
    page.keyboard.press("Escape")
    expect(results).to_be_hidden()
    page.keyboard.press("Escape")
    expect(box).to_have_value("")
    hit = demo.api("/api/v1/search?q=hand+towel+rolls&limit=10")["items"][0]
    assert hit["type"] == "activity"
    page.keyboard.type("hand towel rolls")
    expect(options.first).to_contain_text("Email")
    page.keyboard.press("Enter")
    expect(page.locator(".kicker")).to_have_text("Email")
    expect(page.locator("h1")).to_have_text(hit["title"])
    sender = hit["activity"]["sender_name"] or hit["activity"]["sender_address"]
    expect(page.locator(".panel-details")).to_contain_text(sender)

    # Shortcuts: g then c is Contacts; focus moves to the new page's heading.
    page.locator("body").press("g")
    page.keyboard.press("c")
    expect(page.locator("h1")).to_have_text("Contacts")
    expect(page.locator('[data-nav="contacts"]')).to_have_attribute("aria-current", "page")
    page.keyboard.press("?")
    expect(page.locator("dialog.shortcuts")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("dialog.shortcuts")).to_have_count(0)
    assert page.errors == []  # type: ignore[attr-defined]


def test_my_day_lists_my_signals_with_snooze_dismiss_and_undo(
    app_context: BrowserContext, demo: Demo
) -> None:
    signals: list[dict[str, Any]] = demo.api("/api/v1/signals?mine=1&limit=50")["items"]
    assert signals, "the demo admin has signals to act on"
    first, second = signals[0], signals[1]
    page = open_app(app_context, demo, "#/my-day")
    expect(page.locator("h1")).to_have_text("My day")
    items = page.locator("li.signal")
    expect(items).to_have_count(len(signals))
    row = page.locator(f'li[data-signal="{first["key"]}"]')
    expect(row).to_contain_text(first["contact"]["name"])
    expect(row).to_contain_text(first["reason"]["summary"])
    app_screenshot(page, "app-my-day.png")
    no_serious_accessibility_issues(page)

    admin = user_id(demo, ADMIN)

    def state(key: str) -> str | None:
        with demo.db.read_session() as session:
            return session.scalars(
                select(SignalState.state).where(
                    SignalState.user_id == admin, SignalState.signal_key == key
                )
            ).first()

    row.locator('[data-key="dismiss-' + first["key"] + '"]').click()
    expect(row).to_have_count(0)
    expect(page.locator("#toast")).to_contain_text("Dismissed")
    assert state(first["key"]) == "dismissed"
    page.locator('[data-key="toast-action"]').click()
    expect(page.locator(f'li[data-signal="{first["key"]}"]')).to_have_count(1)
    assert state(first["key"]) is None

    other = page.locator(f'li[data-signal="{second["key"]}"]')
    other.locator("summary").click()
    other.locator('[data-snooze="tomorrow"]').click()
    expect(other).to_have_count(0)
    expect(page.locator("#toast")).to_contain_text("Snoozed")
    assert state(second["key"]) == "snoozed"
    page.locator('[data-key="toast-action"]').click()
    expect(page.locator(f'li[data-signal="{second["key"]}"]')).to_have_count(1)
    assert state(second["key"]) is None
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_phone_sized_screen_and_the_dark_theme(app_context: BrowserContext, demo: Demo) -> None:
    page = open_app(app_context, demo, "#/contacts")
    page.set_viewport_size(PHONE)
    expect(page.locator(".row").nth(3)).to_be_visible()
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    expect(page.locator("#nav")).to_be_visible()
    expect(page.locator(".row-head")).to_be_hidden()
    app_screenshot(page, "app-phone.png")
    no_serious_accessibility_issues(page)
    # The narrowest Outlook pane is 320 px; the app holds there too, on every kind of page.
    page.set_viewport_size({"width": 320, "height": 700})
    for route in ("#/contacts", "#/my-day", "#/deals", "#/followups", "#/companies"):
        page.goto(f"{demo.base_url}/app/{route}")
        expect(page.locator("main")).to_have_attribute("aria-busy", "false")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, route

    page.set_viewport_size({"width": 1280, "height": 900})
    page.locator("#account summary").click()
    page.locator("#theme-choice").select_option("dark")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.keyboard.press("Escape")
    daniela = demo.api("/api/v1/contacts?q=daniela%40vasquezrow")["items"][0]["id"]
    page.goto(f"{demo.base_url}/app/#/contacts/{daniela}")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")  # the choice is kept
    expect(page.locator(".entry").first).to_be_visible()
    page.wait_for_function(
        "getComputedStyle(document.body).backgroundColor !== 'rgb(250, 250, 250)'"
    )
    app_screenshot(page, "app-dark.png")
    no_serious_accessibility_issues(page)
    page.locator("#account summary").click()
    page.locator("#theme-choice").select_option("system")
    assert page.errors == []  # type: ignore[attr-defined]
