"""Insights, templates, the lead form and the Microsoft sign-in of the web app, in Chromium against
the demo server (which has deals, three templates and an enabled lead form).

Insights: every report's table holds the API's numbers for the very query the page sent; another
period is fetched again (a preset, then dates, first in the wrong order); a report's CSV download
has the table's rows. Templates: a template made with a placeholder from the picker, an unknown
placeholder refused on its field by the API, the preview for a demo contact filled in (with the
placeholder that had no value named), an edit, a delete; a member may not change the admin's.
The lead form: counts, owners changed (checked through the API), the snippet. Microsoft 365: the
sign-in form's authorize call carries the form's values and the tab goes to the answer's
authorize_url; a Graph link that needs attention re-connects the same way. axe-core finds nothing
serious on any of the pages. What the tests change is put back (later modules share the demo).
"""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Request, Route, expect
from sqlalchemy import delete, select

from server.crm.users import create_token, revoke_token
from server.models import MailboxLink, User
from tests.e2e.conftest import MEMBER, PHONE, Demo, app_screenshot, axe_violations, open_app

pytestmark = pytest.mark.slow

REPORTS = ("response-time", "activity", "new-contacts", "pipeline", "win-rate", "top-customers")
AUTHORIZE = "**/api/v1/admin/mailboxes/graph/authorize"


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


def named(label: str) -> re.Pattern[str]:
    """A field's label; a required one carries a star (hidden from screen readers)."""
    return re.compile(rf"^{re.escape(label)}( \*)?$")


def no_serious_accessibility_issues(page: Page) -> None:
    page.wait_for_function("() => document.getAnimations().every(a => a.playState !== 'running')")
    assert axe_violations(page) == []


def number(text: str) -> Decimal:
    """A cell's number as the page wrote it ("5,800.00", "80%", "—" for none)."""
    cleaned = text.strip().replace(",", "").rstrip("%")
    return Decimal(cleaned) if cleaned not in ("", "—") else Decimal(-1)


def same(cell: str, value: Any) -> bool:
    return number(cell) == (Decimal(-1) if value in (None, "") else Decimal(str(value)))


@pytest.fixture
def pages(app_context: BrowserContext) -> Iterator[list[Page]]:
    """The pages a test opens (with `opened`): none may have thrown a script error."""
    holder: list[Page] = []
    yield holder
    for one in holder:
        assert one.errors == []  # type: ignore[attr-defined]


def opened(
    pages: list[Page], context: BrowserContext, demo: Demo, route: str, token: str | None = None
) -> Page:
    found = open_app(context, demo, route, token=token)
    pages.append(found)
    return found


@pytest.fixture(scope="module")
def member_token(demo: Demo) -> Iterator[str]:
    with demo.db.session() as session:
        member = session.scalars(select(User).where(User.email == MEMBER)).one()
        issued = create_token(session, member, name="insights e2e", expires_in=timedelta(hours=1))
        token_id, plaintext = issued.token.id, issued.plaintext
    yield plaintext
    with demo.db.session() as session:
        revoke_token(session, token_id)


# -- insights ------------------------------------------------------------------------------------


def report_requests(context: BrowserContext) -> dict[str, str]:
    """The last URL (path and query) the page asked each report's JSON with."""
    seen: dict[str, str] = {}

    def remember(request: Request) -> None:
        url = urllib.parse.urlsplit(request.url)
        match = re.fullmatch(r"/api/v1/reports/([a-z-]+)", url.path)
        if match:
            seen[match.group(1)] = f"{url.path}?{url.query}" if url.query else url.path

    context.on("request", remember)
    return seen


def cells(page: Page, report: str, row: str) -> list[str]:
    return (
        page.locator(f'[data-report="{report}"] tr[data-row="{row}"]')
        .locator("th, td")
        .all_text_contents()
    )


def wait_for_reports(page: Page) -> None:
    for name in REPORTS:
        expect(page.locator(f'[data-report="{name}"]')).to_have_attribute("aria-busy", "false")


def check_tables_equal_the_api(page: Page, demo: Demo, asked: dict[str, str]) -> None:
    wait_for_reports(page)
    assert set(asked) == set(REPORTS)

    response = demo.api(asked["response-time"])
    for person in response["people"]:
        name, answered, median, p90 = cells(page, "response-time", str(person["user_id"]))
        assert name == person["name"]
        assert same(answered, person["answered"])
        assert same(median, person["median_hours"]) and same(p90, person["p90_hours"])
    team = cells(page, "response-time", "team")
    assert same(team[1], response["team"]["answered"]) and same(
        team[2], response["team"]["median_hours"]
    )
    unanswered = page.locator('[data-report="response-time"] [data-kpi="unanswered"] .kpi-value')
    assert same(unanswered.inner_text(), response["unanswered"])

    activity = demo.api(asked["activity"])
    assert page.locator('[data-report="activity"] tbody tr').count() == len(activity["weeks"])
    for week in activity["weeks"]:
        who = week["name"] if week["user_id"] is None else week["user_id"]
        row = cells(page, "activity", f"{week['week']}/{who}")
        assert row[1] == week["name"]
        assert [number(c) for c in row[2:]] == [
            week["emails_sent"],
            week["meetings"],
            week["notes"],
        ]

    contacts = demo.api(asked["new-contacts"])
    assert page.locator('[data-report="new-contacts"] tbody tr').count() == len(contacts["weeks"])
    for week in contacts["weeks"]:
        assert same(cells(page, "new-contacts", week["week"])[1], week["contacts"])

    pipeline = demo.api(asked["pipeline"])
    assert pipeline["stages"], "the demo has open deals"
    for stage in pipeline["stages"]:
        row = cells(page, "pipeline", f"{stage['stage_id']}/{stage['currency']}")
        # with several pipelines (another module may have added one) the stage names its pipeline
        assert row[0].split(" · ")[-1] == stage["stage"] and row[1] == stage["currency"]
        assert same(row[2], stage["deals"]) and same(row[3], stage["value"])

    win = demo.api(asked["win-rate"])
    if win["won"] + win["lost"]:
        row = cells(page, "win-rate", "win-rate")
        assert same(row[0], win["won"]) and same(row[1], win["lost"])
        assert abs(number(row[2]) - Decimal(str(win["rate"])) * 100) <= Decimal("0.05")
        assert same(row[3], win["cycle_median_days"])
    else:
        expect(page.locator('[data-report="win-rate"]')).to_contain_text(
            "No deal closed in this period"
        )

    top = demo.api(asked["top-customers"])
    if not top["customers"]:
        expect(page.locator('[data-report="top-customers"]')).to_contain_text(
            "No deal won in this period"
        )
    for customer in top["customers"]:
        row = cells(page, "top-customers", f"{customer['company_id']}/{customer['currency']}")
        assert row[0] == customer["name"] and row[1] == customer["currency"]
        assert same(row[2], customer["deals"]) and same(row[3], customer["value"])


def downloaded_rows(page: Page, report: str) -> list[dict[str, str]]:
    with page.expect_download() as info:
        page.locator(f'[data-csv="{report}"]').click()
    text = Path(info.value.path()).read_text(encoding="utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_insights_show_the_apis_numbers_for_the_period_and_download_them(
    app_context: BrowserContext, demo: Demo, pages: list[Page]
) -> None:
    asked = report_requests(app_context)
    view = opened(pages, app_context, demo, "#/insights")
    expect(view.locator("h1")).to_have_text("Insights")
    expect(view.locator("#nav a[data-nav='insights']")).to_have_attribute("aria-current", "page")
    check_tables_equal_the_api(view, demo, asked)
    # The demo's numbers are there to see, drawn: bars per person, per week, per stage.
    assert view.locator('[data-report="response-time"] svg rect.chart-bar').count() >= 2
    assert view.locator('[data-report="activity"] svg rect.chart-bar').count() >= 2
    assert view.locator('[data-report="pipeline"] svg rect.chart-bar').count() >= 2
    assert "from=" in asked["response-time"] and "to=" in asked["response-time"]

    # The CSV of a report is the table's rows (same query, same numbers).
    rows = downloaded_rows(view, "response-time")
    assert len(rows) == view.locator('[data-report="response-time"] tbody tr').count() > 0
    for row in rows:
        shown = cells(view, "response-time", row["user_id"])
        assert shown[0] == row["name"]
        assert [number(c) for c in shown[1:]] == [
            number(row[k] or "—") for k in ("answered", "median_hours", "p90_hours")
        ]
    stages = downloaded_rows(view, "pipeline")
    assert len(stages) == view.locator('[data-report="pipeline"] tbody tr').count()
    for row in stages:
        shown = cells(view, "pipeline", f"{row['stage_id']}/{row['currency']}")
        assert number(shown[3]) == Decimal(row["value"]) and number(shown[2]) == int(row["deals"])

    # Another period: every report but the pipeline (which is now) is asked again.
    before = dict(asked)
    with view.expect_response(lambda r: "/api/v1/reports/top-customers?" in r.url):
        view.get_by_label("Period").select_option("30d")
    expect(view).to_have_url(re.compile(r"period=30d"))
    expect(view.locator(".period-words")).to_contain_text("last 30 days")
    check_tables_equal_the_api(view, demo, asked)
    assert asked["response-time"] != before["response-time"]

    # Dates: the last before the first is refused on its field, then the period is shown.
    view.get_by_label("Period").select_option("dates")
    view.get_by_label("From").fill("2026-09-30")
    view.get_by_label("Until").fill("2026-09-01")
    view.locator('[data-key="period-apply"]').click()
    expect(view.get_by_label("Until")).to_have_attribute("aria-invalid", "true")
    view.get_by_label("Until").fill("2026-10-31")
    with view.expect_response(lambda r: "/api/v1/reports/win-rate?" in r.url):
        view.locator('[data-key="period-apply"]').click()
    check_tables_equal_the_api(view, demo, asked)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(asked["activity"]).query)
    assert query["from"][0].startswith("2026-09-30T00:00:00") and query["to"][0].startswith(
        "2026-11-01T00:00:00"
    )
    expect(view).to_have_url(re.compile(r"period=dates&from=2026-09-30&to=2026-10-31"))

    # The numbers on request (screen readers have them all along), then the picture.
    view.get_by_label("Period").select_option("90d")
    wait_for_reports(view)
    toggle = view.locator('[data-key="numbers-response-time"]')
    toggle.click()
    expect(toggle).to_have_text("Hide the numbers")
    expect(view.locator("#report-response-time-numbers table")).to_be_visible()
    no_serious_accessibility_issues(view)
    toggle.click()
    view.set_viewport_size({"width": 1280, "height": 1240})
    view.evaluate("window.scrollTo(0, 0)")
    app_screenshot(view, "app-insights.png")


# -- templates -----------------------------------------------------------------------------------


def templates_named(demo: Demo, name: str) -> list[dict[str, Any]]:
    return [t for t in call(demo, "GET", "/api/v1/templates")["items"] if t["name"] == name]


def test_a_template_is_written_with_a_placeholder_previewed_for_a_contact_edited_and_deleted(
    app_context: BrowserContext, demo: Demo, pages: list[Page]
) -> None:
    view = opened(pages, app_context, demo, "#/templates")
    expect(view.locator("h1")).to_have_text("Templates")
    expect(view.locator(".template-list li")).to_have_count(
        len(call(demo, "GET", "/api/v1/templates")["items"])
    )
    view.locator('[data-key="template-new"]').click()
    expect(view).to_have_url(re.compile(r"#/templates/new$"))
    form = view.locator('[data-form="template"]')
    form.get_by_label(named("Name")).fill("Price update (e2e)")
    form.get_by_label(named("Subject")).fill("New prices for ")
    # The picker inserts where the cursor was: the end of the subject, then into the body.
    view.get_by_label("Placeholder", exact=True).select_option("company.name")
    expect(view.get_by_label("If it has no value, write")).to_have_value("your team")
    form.get_by_label(named("Subject")).focus()
    view.locator('[data-key="placeholder-insert"]').click()
    expect(form.get_by_label(named("Subject"))).to_have_value(
        "New prices for {{ company.name | your team }}"
    )
    body = form.get_by_label(named("Body"))
    body.fill("Hello ")
    view.get_by_label("Placeholder", exact=True).select_option("contact.first_name")
    view.locator('[data-key="placeholder-insert"]').click()
    expect(body).to_have_value("Hello {{ contact.first_name | there }}")
    body.press("End")
    body.press_sequentially(",\n\nAs {{ contact.nickname }} you will want to know first.")

    # The server knows no such placeholder: refused on the body, nothing saved.
    form.locator('[data-key="template-submit"]').click()
    expect(body).to_have_attribute("aria-invalid", "true")
    expect(form).to_contain_text("{{ contact.nickname }} is not a placeholder Rapport knows")
    expect(body).to_be_focused()
    assert templates_named(demo, "Price update (e2e)") == []

    body.fill(
        "Hello {{ contact.first_name | there }},\n\nAs {{ contact.title }} you will want to know first."
    )
    form.locator('[data-key="template-submit"]').click()
    expect(view).to_have_url(re.compile(r"#/templates/\d+$"))
    made = templates_named(demo, "Price update (e2e)")
    assert len(made) == 1 and made[0]["shared"] is True
    template_id = made[0]["id"]
    expect(view.locator("#toast")).to_contain_text("Created the template")

    # The preview for a demo contact: her name and company filled in, her (empty) title named.
    view.locator('[data-key="preview-search"]').fill("Daniela")
    view.locator("[data-key^='preview-contact-']").first.click()
    expect(view.locator('[data-preview="subject"]')).to_have_text(
        "New prices for Vasquez & Row Architects"
    )
    expect(view.locator('[data-preview="body"]')).to_contain_text("Hello Daniela,")
    expect(view.locator('[data-preview="missing"]')).to_contain_text("{{ contact.title }}")
    expect(view).to_have_url(re.compile(r"contact=\d+"))
    no_serious_accessibility_issues(view)
    view.set_viewport_size({"width": 1280, "height": 1500})  # the editor and the preview below it
    view.evaluate("window.scrollTo(0, 0)")
    app_screenshot(view, "app-templates.png")
    view.set_viewport_size({"width": 1280, "height": 900})

    # Edit: a new name, no longer shared; the preview follows the saved text.
    form = view.locator('[data-form="template"]')
    form.get_by_label(named("Name")).fill("Price update 2027 (e2e)")
    form.get_by_label(named("Subject")).fill("Prices for {{ company.name }} in 2027")
    view.get_by_label("Shared with the team").uncheck()
    form.locator('[data-key="template-submit"]').click()
    expect(view.locator("#toast")).to_contain_text("Saved")
    changed = call(demo, "GET", f"/api/v1/templates/{template_id}")
    assert changed["name"] == "Price update 2027 (e2e)" and changed["shared"] is False
    expect(view.locator('[data-preview="subject"]')).to_have_text(
        "Prices for Vasquez & Row Architects in 2027"
    )
    expect(view.locator(f'.template-list [data-template="{template_id}"]')).to_contain_text(
        "Price update 2027"
    )

    # Delete, after saying so.
    form.locator('[data-key="template-delete"]').click()
    dialog = view.locator('[data-dialog="template-delete"]')
    expect(dialog).to_contain_text("Delete “Price update 2027 (e2e)”?")
    dialog.locator('[data-key="template-delete-confirm"]').click()
    expect(view).to_have_url(re.compile(r"#/templates$"))
    expect(view.locator("#toast")).to_contain_text("Deleted the template")
    assert templates_named(demo, "Price update 2027 (e2e)") == []


def test_a_member_may_use_but_not_change_the_admins_shared_template(
    app_context: BrowserContext, demo: Demo, member_token: str, pages: list[Page]
) -> None:
    shared = call(demo, "GET", "/api/v1/templates")["items"][0]
    view = opened(pages, app_context, demo, f"#/templates/{shared['id']}", token=member_token)
    expect(view.locator('[data-readonly="true"]')).to_contain_text("Only its owner")
    expect(view.locator('[data-form="template"]')).to_have_count(0)
    expect(view.locator('[data-key="preview-search"]')).to_be_visible()
    # The lead form is an admin page: a member is told so.
    view.goto(f"{demo.base_url}/app/#/admin/lead-form")
    expect(view.locator("h1")).to_have_text("Admins only")


def test_the_new_pages_fit_a_phone(
    app_context: BrowserContext, demo: Demo, pages: list[Page]
) -> None:
    view = opened(pages, app_context, demo, "#/my-day")
    view.set_viewport_size(PHONE)
    first = call(demo, "GET", "/api/v1/templates")["items"][0]
    for route, title in (
        ("#/insights", "Insights"),
        (f"#/templates/{first['id']}?contact=7", first["name"]),
        ("#/admin/lead-form", "Lead form"),
    ):
        view.goto(f"{demo.base_url}/app/{route}")
        expect(view.locator("h1")).to_have_text(title)
        expect(view.locator("main[aria-busy='false']")).to_be_visible()
        overflow = view.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, route
        no_serious_accessibility_issues(view)


# -- the lead form -------------------------------------------------------------------------------


def test_an_admin_sets_who_takes_web_leads_and_copies_the_snippet(
    app_context: BrowserContext, demo: Demo, pages: list[Page]
) -> None:
    before = call(demo, "GET", "/api/v1/admin/lead-form")
    # A bot's submission (the honeypot filled): dropped, and counted as such.
    bot = urllib.request.Request(  # noqa: S310 - the test's own server
        demo.base_url + "/api/v1/forms/lead",
        data=json.dumps({"email": "bot@spam.example", "website": "http://spam.example"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(bot, timeout=30):  # noqa: S310 - local
        pass
    users = {u["email"]: u["id"] for u in call(demo, "GET", "/api/v1/users")["items"]}
    try:
        view = opened(pages, app_context, demo, "#/admin/lead-form")
        expect(view.locator("h1")).to_have_text("Lead form")
        expect(view.locator(".admin-tabs a[aria-current='page']")).to_have_text("Lead form")
        expect(view.locator('[data-kpi="accepted"] .kpi-value')).to_have_text(
            str(before["accepted"])
        )
        expect(view.locator('[data-kpi="dropped"] .kpi-value')).to_have_text(
            str(before["dropped"] + 1)
        )
        expect(view.locator('[data-key="lead-state"]')).to_contain_text("on")

        # The owners who take leads in turn: Tom and Priya in the demo; Marco instead of Priya.
        for email, user_id in users.items():
            box = view.locator(f'input[data-owner="{user_id}"]')
            if user_id in before["owners"]:
                expect(box).to_be_checked()
            elif email.startswith(("tom@", "priya@", "marco@")):
                expect(box).not_to_be_checked()
        view.locator(f'input[data-owner="{users["priya@northwind-supplies.com"]}"]').uncheck()
        view.locator(f'input[data-owner="{users["marco@northwind-supplies.com"]}"]').check()
        view.get_by_label("Thank-you page").fill("ftp://files.example.com")
        view.locator('[data-key="lead-form-submit"]').click()
        expect(view.get_by_label("Thank-you page")).to_have_attribute("aria-invalid", "true")
        view.get_by_label("Thank-you page").fill("https://www.northwind-supplies.com/thanks")
        view.get_by_label("The owner's follow-up is due after (hours)").fill("6")
        view.locator('[data-key="lead-form-submit"]').click()
        expect(view.locator("#toast")).to_contain_text("2 people take new leads in turn")
        saved = call(demo, "GET", "/api/v1/admin/lead-form")
        assert sorted(saved["owners"]) == sorted(
            [users["tom@northwind-supplies.com"], users["marco@northwind-supplies.com"]]
        )
        assert saved["reply_within_hours"] == 6
        assert saved["thank_you_url"] == "https://www.northwind-supplies.com/thanks"

        # The snippet, to copy (the clipboard may be refused here: then it is selected instead).
        code = view.locator(".panel-lead-snippet pre")
        assert code.text_content() == saved["snippet"]
        view.locator('[data-key="copy-snippet"]').click()
        expect(view.locator('[data-key="copy-snippet"]')).to_have_text(
            re.compile(r"Copied|Selected")
        )
        expect(view.locator('[data-key="lead-demo"]')).to_have_attribute("href", "/forms/lead/demo")
        no_serious_accessibility_issues(view)
    finally:
        call(
            demo,
            "PUT",
            "/api/v1/admin/lead-form",
            {k: before[k] for k in ("enabled", "owners", "reply_within_hours", "thank_you_url")},
        )


# -- Microsoft 365: linking by signing in --------------------------------------------------------


def fake_authorize(demo: Demo, sent: list[dict[str, Any]]) -> Any:
    """Entra ID cannot be reached from the tests: the authorize call is answered here, with an
    authorize_url on the demo itself, so the test sees the tab sent where the answer says."""

    def answer(route: Route) -> None:
        sent.append(json.loads(route.request.post_data or "{}"))
        route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps(
                {
                    "authorize_url": f"{demo.base_url}/forms/thanks",
                    "state": "x",
                    "redirect_uri": f"{demo.base_url}/api/v1/graph/callback",
                    "expires_at": "2030-01-01T00:00:00Z",
                }
            ),
        )

    return answer


@pytest.fixture
def stuck_graph_link(demo: Demo) -> Iterator[int]:
    """A Microsoft 365 link whose grant was revoked, and whose change notifications failed."""
    with demo.db.session() as session:
        link = MailboxLink(
            kind="graph",
            owner_address="priya@northwind-supplies.com",
            settings={
                "tenant": "northwind.onmicrosoft.com",
                "client_id": "11111111-2222-3333-4444-555555555555",
                "mailbox": "priya@northwind-supplies.com",
                "folders": ["inbox", "sentitems"],
                "notifications": {"error": "Graph could not reach the notification URL"},
            },
            status="needs_attention",
            status_reason="the sign-in was revoked: sign in again (re-connect the link)",
        )
        session.add(link)
        session.flush()
        link_id = link.id
    yield link_id
    with demo.db.session() as session:
        session.execute(delete(MailboxLink).where(MailboxLink.id == link_id))


def test_an_admin_links_a_microsoft_365_mailbox_by_signing_in_and_reconnects_a_stuck_one(
    app_context: BrowserContext, demo: Demo, pages: list[Page], stuck_graph_link: int
) -> None:
    sent: list[dict[str, Any]] = []
    app_context.route(AUTHORIZE, fake_authorize(demo, sent))
    view = opened(pages, app_context, demo, "#/admin/mailboxes")
    view.locator('[data-key="link-open"]').click()
    view.get_by_label(named("What to link")).select_option("graph-signin")
    form = view.locator('[data-form="graph-signin"]')
    expect(form).to_contain_text("/api/v1/graph/callback")
    form.locator('[data-key="graph-signin-submit"]').click()
    for label in ("Whose mailbox", "Directory (tenant) ID", "Application (client) ID"):
        expect(form.get_by_label(named(label))).to_have_attribute("aria-invalid", "true")
    assert sent == []
    form.get_by_label(named("Whose mailbox")).fill("marco@northwind-supplies.com")
    form.get_by_label(named("Directory (tenant) ID")).fill("northwind.onmicrosoft.com")
    form.get_by_label(named("Application (client) ID")).fill("11111111-2222-3333-4444-555555555555")
    form.get_by_label(named("Client secret (optional)")).fill("s3cret-value")
    form.get_by_label(named("Folders")).fill("inbox, sentitems, Projects")
    form.get_by_label(named("Only mail since")).fill("30d")
    form.get_by_label("Also capture meetings from the calendar").uncheck()
    form.get_by_label(named("What to keep of each email")).select_option("subject")
    form.get_by_label(named("Who sees its mail")).select_option("private")
    no_serious_accessibility_issues(view)
    form.locator('[data-key="graph-signin-submit"]').click()
    view.wait_for_url(f"{demo.base_url}/forms/thanks")
    assert sent == [
        {
            "owner": "marco@northwind-supplies.com",
            "tenant": "northwind.onmicrosoft.com",
            "client_id": "11111111-2222-3333-4444-555555555555",
            "client_secret": "s3cret-value",
            "calendar": False,
            "capture_level": "subject",
            "visibility": "private",
            "folders": ["inbox", "sentitems", "Projects"],
            "since": "30d",
        }
    ]

    # A Graph link that needs attention: its notification error shown, and Re-connect.
    view.goto(f"{demo.base_url}/app/#/admin/mailboxes")
    card = view.locator(f'.link-card[data-link="{stuck_graph_link}"]')
    expect(card).to_contain_text("Graph could not reach the notification URL")
    expect(card).to_contain_text("Re-connect signs in with Microsoft again")
    card.locator(f'[data-key="reconnect-{stuck_graph_link}"]').click()
    view.wait_for_url(f"{demo.base_url}/forms/thanks")
    assert sent[-1] == {"link_id": stuck_graph_link}


def test_an_admin_sets_how_long_email_content_is_kept(
    app_context: BrowserContext, demo: Demo, pages: list[Page]
) -> None:
    view = opened(pages, app_context, demo, "#/admin/retention")
    expect(view.locator("h1")).to_have_text("Retention")
    box = view.locator('[name="email_content_days"]')
    box.fill("7")
    view.locator(
        '[data-key="retention-submit"], form[data-key="retention"] [type="submit"]'
    ).first.click()
    expect(view.locator("form")).to_contain_text("from 30 to 36500")
    assert demo.api("/api/v1/admin/retention")["email_content_days"] is None, "nothing saved"
    box.fill("400")
    view.locator(
        '[data-key="retention-submit"], form[data-key="retention"] [type="submit"]'
    ).first.click()
    expect(view.locator("#toast")).to_contain_text("kept for 400 days")
    assert demo.api("/api/v1/admin/retention")["email_content_days"] == 400
    expect(view.locator('[data-key="retention-state"]')).to_contain_text("No sweep yet")
    assert axe_violations(view) == []
    box.fill("")
    view.locator(
        '[data-key="retention-submit"], form[data-key="retention"] [type="submit"]'
    ).first.click()
    expect(view.locator("#toast")).to_contain_text("Saved: email content is kept.")
    assert demo.api("/api/v1/admin/retention")["email_content_days"] is None
