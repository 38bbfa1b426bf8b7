"""The pane preview of `rapport demo`: signed in by itself, a picker of the demo admin's mail, the
real pane in a frame that follows the picked item, and compose with "log this email when sent"."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.conftest import AXE, AXE_URL, DANIELA_NAME, Demo, axe_violations, screenshot

pytestmark = pytest.mark.slow


def test_the_preview_signs_in_by_itself_and_the_pane_follows_the_picker(
    browser: Browser, demo: Demo
) -> None:
    # A plain browser, no interception: the preview brings its own stand-in for Office.js.
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.route(
        AXE_URL, lambda route: route.fulfill(path=str(AXE), content_type="text/javascript")
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(demo.base_url + "/preview/")
    expect(page.locator("#signed-in")).to_contain_text("anna@northwind-supplies.com")
    pane = page.frame_locator("#pane")
    expect(pane.locator("#item-title")).to_be_visible()
    expect(pane.locator(".section-people")).to_be_visible()

    pick = page.locator(".items button").filter(has_text=DANIELA_NAME).first
    subject = pick.locator(".subject").inner_text()
    pick.click()
    expect(pick).to_have_attribute("aria-pressed", "true")
    expect(pane.locator("#item-title")).to_have_text(subject)
    expect(pane.locator("article.person h3").first).to_have_text(DANIELA_NAME)
    page.wait_for_timeout(300)  # let the toast-free pane settle for the picture
    screenshot(page, "pane-preview.png")
    assert axe_violations(page) == []

    # Write an email: the pane follows the recipient; "log when sent" marks it.
    page.locator("#compose-to").fill("daniela@vasquezrow-architects.com")
    page.locator("#compose-add").click()
    expect(pane.locator(".this-item .meta")).to_have_text("New email")
    expect(pane.locator("article.person h3")).to_have_text(DANIELA_NAME)
    pane.locator('[data-key="log-when-sent"]').click()
    expect(page.locator("#outlook-did")).to_contain_text("X-Rapport-Log: v1 ")

    # Nothing selected: the pane shows My day; "Write" there opens a new email to that person.
    page.locator("#select-nothing").click()
    expect(pane.locator("#my-day-title")).to_have_text("My day")
    first = pane.locator(".my-day li.signal").first
    first.locator('[data-key^="write-"]').click()
    expect(pane.locator(".this-item .meta")).to_have_text("New email")
    expect(page.locator("#outlook-did")).to_contain_text("Outlook opened a new email to ")
    expect(pane.locator("article.person").first).to_be_visible()
    assert errors == []
    context.close()


def test_outside_demo_mode_the_preview_asks_for_a_token(browser: Browser, demo: Demo) -> None:
    context = browser.new_context()
    page = context.new_page()
    # Pretend this is not a demo server: the anonymous configuration says so.
    page.route(
        "**/api/v1/pane-config",
        lambda route: route.fulfill(json={"entra": None, "signin_url": "/signin", "demo": False}),
    )
    page.goto(demo.base_url + "/preview/")
    expect(page.locator("#signin")).to_be_visible()
    page.locator("#token").fill("rpt_wrong")
    page.locator("#token-form button").click()
    expect(page.locator("#signin-error")).to_contain_text("refused")
    page.locator("#token").fill(demo.admin_token)
    page.locator("#token-form button").click()
    expect(page.locator("#signed-in")).to_contain_text("anna@northwind-supplies.com")
    context.close()
