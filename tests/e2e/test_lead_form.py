"""The web lead form as a visitor meets it: pasted into a page of another site (another origin),
submitted from Chromium, answered with the thank-you page; the lead lands in Rapport with its
owner's follow-up, which the owner sees in the web app. Bad input and spam, from the browser."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import BrowserContext, expect
from sqlalchemy import select

from server.models import Activity, Contact, ContactEmail, FollowUp, User
from tests.e2e.conftest import Demo, open_app

pytestmark = pytest.mark.slow
SHOP = "http://shop.example/contact"


def shop_page(context: BrowserContext, demo: Demo) -> str:
    """The admin's snippet, pasted into the shop's contact page."""
    snippet = demo.api("/api/v1/admin/lead-form")["snippet"]
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Contact us</title>"
        f"</head><body><main><h1>Contact us</h1>{snippet}</main></body></html>"
    )
    context.route(SHOP, lambda route: route.fulfill(body=page, content_type="text/html"))
    return page


def test_a_visitor_on_another_site_sends_a_lead_and_its_owner_sees_it(
    context: BrowserContext, app_context: BrowserContext, demo: Demo
) -> None:
    shop_page(context, demo)
    page = context.new_page()
    page.goto(SHOP)
    page.get_by_label("Your name").fill("Rhys Morgan")
    page.get_by_label("Email").fill("rhys@cardiff-bakes.example")
    page.get_by_label("Company").fill("Cardiff Bakes")
    page.get_by_label("How can we help?").fill("Paper bags for three shops, monthly.")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("h1")).to_have_text("Thank you")
    assert page.url.startswith(demo.base_url) and page.url.endswith("/forms/thanks")

    with demo.db.read_session() as session:
        contact = session.scalars(
            select(Contact)
            .join(ContactEmail)
            .where(ContactEmail.address == "rhys@cardiff-bakes.example")
        ).one()
        owner = session.get(User, contact.owner_id)
        assert owner is not None and owner.email in {
            "tom@northwind-supplies.com",
            "priya@northwind-supplies.com",
        }
        entry = session.scalars(
            select(Activity).where(
                Activity.kind == "form", Activity.sender_address == "rhys@cardiff-bakes.example"
            )
        ).one()
        # the browser's default referrer policy gives another origin the site, not the page
        assert entry.details["page"] == "http://shop.example/"
        follow_up = session.scalars(select(FollowUp).where(FollowUp.contact_id == contact.id)).one()
        assert follow_up.owner_id == owner.id
        contact_id = contact.id

    # In the web app the new lead's page shows the form entry and the owner's follow-up.
    app = open_app(app_context, demo, f"#/contacts/{contact_id}")
    expect(app.get_by_role("heading", name="Rhys Morgan")).to_be_visible()
    expect(app.get_by_text("Web form: Paper bags for three shops, monthly.")).to_be_visible()
    expect(app.get_by_text(re.compile("Reply to Rhys's enquiry"))).to_be_visible()


def test_bad_input_and_a_bot_from_the_browser(context: BrowserContext, demo: Demo) -> None:
    shop_page(context, demo)
    page = context.new_page()
    page.goto(SHOP)
    # The browser's own check stops an empty address; a wrong one typed past it gets our page.
    page.evaluate("document.querySelector('input[name=email]').type = 'text'")
    page.get_by_label("Email").fill("not an address")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("h1")).to_have_text("Please check the form")
    expect(page.locator("body")).to_contain_text("is not an email address")
    page.go_back()
    # A bot fills every field, the hidden one too: it sees the thank-you page; nothing is kept.
    page.goto(SHOP)
    page.evaluate("document.querySelector('input[name=website]').value = 'http://spam.example'")
    page.get_by_label("Email").fill("bot@spam.example")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("h1")).to_have_text("Thank you")
    with demo.db.read_session() as session:
        found = session.scalar(
            select(ContactEmail.id).where(ContactEmail.address == "bot@spam.example")
        )
    assert found is None
