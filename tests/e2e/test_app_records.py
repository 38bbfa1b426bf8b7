"""Contacts and companies in the web app, in Chromium against the demo server: the lists (search,
filters, sort, paging as you scroll, the filters kept in the address; companies last contacted
when anyone there was), a contact's and a
company's page (timeline paged, notes, follow-ups with done and Undo), the edit forms with their
checks and the API's optimistic concurrency (someone else saved first: keep mine or take
theirs), and a new contact. Every change is checked in the database; axe-core finds nothing
serious on any page."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import func, select, update

from server.models import (
    Activity,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    FollowUp,
    User,
    utcnow,
)
from tests.e2e.conftest import ADMIN, PHONE, Demo, app_screenshot, axe_violations, open_app

pytestmark = pytest.mark.slow

PEOPLE = 30  # with the demo's own, more than one page (50) of contacts
TAG = "app-paging"


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
    # Colours are judged once they stop changing (a button fades back from "Saving…").
    page.wait_for_function("() => document.getAnimations().every(a => a.playState !== 'running')")
    assert axe_violations(page) == []


def count(demo: Demo, model: type, *where: Any) -> int:
    with demo.db.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def contact_row(demo: Demo, contact_id: int) -> Contact:
    with demo.db.read_session() as session:
        found = session.get(Contact, contact_id)
        assert found is not None
        session.expunge(found)
        return found


@pytest.fixture(scope="module")
def people(demo: Demo) -> list[dict[str, Any]]:
    """Thirty people at one company, a third of them customers, half of them the admin's."""
    with demo.db.read_session() as session:
        admin = session.scalars(select(User.id).where(User.email == ADMIN)).one()
    made = []
    for n in range(1, PEOPLE + 1):
        made.append(
            call(
                demo,
                "POST",
                "/api/v1/contacts",
                {
                    "name": f"Paging Person {n:02d}",
                    "emails": [f"paging.{n:02d}@quayside-paging.example"],
                    "company_name": "Quayside Paging Ltd",
                    "lifecycle_stage": "customer" if n % 3 == 0 else "lead",
                    "owner_id": admin if n % 2 == 0 else None,
                    "tags": [TAG],
                },
            )
        )
    return made


@pytest.fixture
def page(app_context: BrowserContext, demo: Demo) -> Iterator[Page]:
    opened = open_app(app_context, demo, "#/contacts")
    yield opened
    assert opened.errors == []  # type: ignore[attr-defined]


def rows(page: Page) -> Any:
    return page.locator("ul.rows > li.row")


# -- the contact list -------------------------------------------------------------------------------


def test_the_contact_list_pages_as_you_scroll_and_filters_sorts_and_keeps_them(
    page: Page, demo: Demo, people: list[dict[str, Any]]
) -> None:
    total = count(demo, Contact)
    assert total > 50
    expect(page.locator("h1")).to_have_text("Contacts")
    expect(rows(page)).to_have_count(50)
    page.locator('[data-key="contacts-more"]').scroll_into_view_if_needed()
    expect(rows(page)).to_have_count(total)
    expect(page.locator(".list-status")).to_have_text(f"All {total} shown.")
    page.evaluate("window.scrollTo(0, 0)")
    app_screenshot(page, "app-contacts.png")
    no_serious_accessibility_issues(page)

    # Search as you type: the address keeps what was typed.
    page.get_by_label(named("Search")).fill("paging person 0")
    expect(rows(page)).to_have_count(9)
    expect(page).to_have_url(re.compile(r"#/contacts\?q=paging\+person\+0"))

    # Filters: lifecycle stage, tag, owner; then sort.
    page.get_by_label(named("Search")).fill("")
    page.get_by_label(named("Tag")).fill(TAG)
    expect(rows(page)).to_have_count(PEOPLE)
    page.get_by_label(named("Lifecycle stage")).select_option("customer")
    expect(rows(page)).to_have_count(PEOPLE // 3)
    page.get_by_label(named("Owner")).select_option("me")
    expect(rows(page)).to_have_count(PEOPLE // 6)  # customers (n % 3) the admin owns (n % 2)
    page.get_by_label(named("Sort")).select_option("name:desc")
    expect(rows(page).first).to_contain_text("Paging Person 30")
    expect(rows(page).last).to_contain_text("Paging Person 06")
    expect(rows(page).first).to_contain_text("Quayside Paging Ltd")

    # A reload (or a shared link) shows the same list.
    page.reload()
    expect(rows(page)).to_have_count(PEOPLE // 6)
    expect(page.get_by_label(named("Lifecycle stage"))).to_have_value("customer")
    expect(page.get_by_label(named("Tag"))).to_have_value(TAG)
    expect(rows(page).first).to_contain_text("Paging Person 30")
    page.get_by_label(named("Tag")).fill("no-such-tag")
    expect(page.locator(".list-status")).to_have_text("No contacts match.")

    # On a phone the rows become cards and nothing is wider than the screen.
    page.set_viewport_size(PHONE)
    page.goto(f"{demo.base_url}/app/#/contacts?tag={TAG}")
    expect(rows(page)).to_have_count(PEOPLE)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0


def test_a_new_contact_is_checked_created_and_opened(
    page: Page, demo: Demo, people: list[dict[str, Any]]
) -> None:
    page.locator('[data-key="contact-new"]').click()
    form = page.locator('[data-form="contact-create"]')
    expect(form).to_be_visible()
    form.locator('[data-key="contact-create-submit"]').click()
    expect(form.locator(".field-error").first).to_have_text("Give a name or an email address.")
    expect(form.get_by_label(named("Name"))).to_be_focused()
    form.get_by_label(named("Name")).fill("Nadia Brennan")
    form.get_by_label(named("Email addresses")).fill("nadia@@brennan")
    form.locator('[data-key="contact-create-submit"]').click()
    expect(form.get_by_label(named("Email addresses"))).to_have_attribute("aria-invalid", "true")
    expect(form).to_contain_text("“nadia@@brennan” is not an email address.")
    # An address someone else has: the API's 409 lands on the field.
    form.get_by_label(named("Email addresses")).fill(people[0]["emails"][0])
    form.locator('[data-key="contact-create-submit"]').click()
    expect(form).to_contain_text("already belongs to contact")
    assert count(demo, Contact, Contact.name == "Nadia Brennan") == 0

    form.get_by_label(named("Email addresses")).fill(
        "nadia@brennan-dairy.example\nn.brennan@brennan-dairy.example"
    )
    form.get_by_label(named("Job title")).fill("Buyer")
    form.get_by_label(named("Company")).fill("Brennan Dairy")
    form.get_by_label(named("Lifecycle stage")).select_option("qualified")
    form.get_by_label(named("Tags")).fill("dairy, trade fair")
    form.locator('[data-key="contact-create-submit"]').click()
    expect(page.locator("h1")).to_have_text("Nadia Brennan")
    expect(page.locator(".panel-details")).to_contain_text("Brennan Dairy")
    with demo.db.read_session() as session:
        nadia = session.scalars(select(Contact).where(Contact.name == "Nadia Brennan")).one()
        assert [e.address for e in sorted(nadia.emails, key=lambda e: not e.is_primary)] == [
            "nadia@brennan-dairy.example",
            "n.brennan@brennan-dairy.example",
        ]
        assert (nadia.title, nadia.lifecycle_stage, nadia.source) == ("Buyer", "qualified", "user")
        assert nadia.company is not None and nadia.company.name == "Brennan Dairy"
        admin = session.scalars(select(User.id).where(User.email == ADMIN)).one()
        assert nadia.owner_id == admin  # the person creating it, unless they chose otherwise


# -- a contact's page -------------------------------------------------------------------------------------


def test_a_contact_page_takes_notes_and_follow_ups(
    page: Page, demo: Demo, people: list[dict[str, Any]]
) -> None:
    person = people[4]
    page.goto(f"{demo.base_url}/app/#/contacts/{person['id']}")
    expect(page.locator("h1")).to_have_text(person["name"])
    expect(page.locator(".panel-details")).to_contain_text(person["emails"][0])
    expect(page.locator(".panel-timeline")).to_contain_text("Nothing on the timeline yet.")

    text = "Met at the Quayside trade fair; wants samples in March"
    page.locator('[data-key="note-submit"]').click()
    expect(page.locator('[data-form="note"] .field-error')).to_have_text("Write the note first.")
    page.locator('[data-form="note"] textarea').fill(text)
    page.locator('[data-key="note-submit"]').click()
    expect(page.locator("#toast")).to_contain_text("Note added")
    expect(page.locator(".entry-note")).to_contain_text(text)
    expect(page.locator('[data-form="note"] textarea')).to_have_value("")
    assert count(demo, Activity, Activity.body_text == text, Activity.kind == "note") == 1

    page.locator('[data-key="followup-open"]').click()
    page.locator('[data-form="followup"]').get_by_label(named("What to do")).fill(
        "Send the March samples"
    )
    page.locator('[data-key="followup-submit"]').click()
    item = page.locator("li.followup").filter(has_text="Send the March samples")
    expect(item).to_be_visible()
    with demo.db.read_session() as session:
        follow_up = session.scalars(
            select(FollowUp).where(FollowUp.title == "Send the March samples")
        ).one()
        assert follow_up.contact_id == person["id"] and follow_up.done_at is None
    no_serious_accessibility_issues(page)

    item.locator(f'[data-key="done-{follow_up.id}"]').click()
    expect(item).to_have_count(0)
    expect(page.locator("#toast")).to_contain_text("Done")
    with demo.db.read_session() as session:
        assert session.get(FollowUp, follow_up.id).done_at is not None  # type: ignore[union-attr]
    page.locator('[data-key="toast-action"]').click()
    expect(page.locator("li.followup").filter(has_text="Send the March samples")).to_be_visible()
    with demo.db.read_session() as session:
        assert session.get(FollowUp, follow_up.id).done_at is None  # type: ignore[union-attr]


def test_editing_a_contact_checks_fields_and_handles_someone_saving_first(
    page: Page, demo: Demo, people: list[dict[str, Any]]
) -> None:
    person = people[7]
    page.goto(f"{demo.base_url}/app/#/contacts/{person['id']}")
    expect(page.locator("h1")).to_have_text(person["name"])
    app_screenshot(page, "app-contact.png")
    no_serious_accessibility_issues(page)

    page.locator('[data-key="contact-edit"]').click()
    form = page.locator('[data-form="contact-edit"]')
    form.get_by_label(named("Email addresses")).fill("not-an-address")
    form.get_by_label(named("Phone")).fill("call me")
    form.locator('[data-key="contact-edit-submit"]').click()
    expect(form.get_by_label(named("Email addresses"))).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_label(named("Phone"))).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_label(named("Email addresses"))).to_be_focused()
    no_serious_accessibility_issues(page)
    assert contact_row(demo, person["id"]).version == person["version"]  # nothing was sent

    form.get_by_label(named("Email addresses")).fill(person["emails"][0])
    form.get_by_label(named("Phone")).fill("+44 161 496 0000")
    form.get_by_label(named("Job title")).fill("Head of purchasing")
    form.locator('[data-key="contact-edit-submit"]').click()
    expect(page.locator("#toast")).to_contain_text("Saved")
    expect(page.locator(".panel-details")).to_contain_text("+44 161 496 0000")
    saved = contact_row(demo, person["id"])
    assert (saved.phone, saved.title) == ("+44 161 496 0000", "Head of purchasing")

    # Someone else saves while the form is open: keep mine (their other change stays).
    page.locator('[data-key="contact-edit"]').click()
    form.get_by_label(named("Phone")).fill("+44 161 496 0999")
    call(
        demo,
        "PATCH",
        f"/api/v1/contacts/{person['id']}",
        {"version": saved.version, "name": "Paging Person Eight"},
    )
    form.locator('[data-key="contact-edit-submit"]').click()
    expect(form.locator(".form-message")).to_contain_text("Someone else saved this record")
    no_serious_accessibility_issues(page)
    form.locator('[data-key="contact-edit-keep-mine"]').click()
    expect(page.locator("#toast")).to_contain_text("Saved")
    expect(page.locator("h1")).to_have_text("Paging Person Eight")
    both = contact_row(demo, person["id"])
    assert (both.name, both.phone) == ("Paging Person Eight", "+44 161 496 0999")

    # Again, and this time take theirs: their value shows, mine is dropped.
    page.locator('[data-key="contact-edit"]').click()
    form.get_by_label(named("Job title")).fill("Owner")
    call(
        demo,
        "PATCH",
        f"/api/v1/contacts/{person['id']}",
        {"version": both.version, "title": "Managing director"},
    )
    form.locator('[data-key="contact-edit-submit"]').click()
    expect(form.locator(".form-message")).to_contain_text("changed Job title too")
    form.locator('[data-key="contact-edit-take-theirs"]').click()
    expect(page.locator(".page-head .sub")).to_contain_text("Managing director")
    assert contact_row(demo, person["id"]).title == "Managing director"


def test_a_long_timeline_pages_as_you_scroll(page: Page, demo: Demo) -> None:
    companies = demo.api("/api/v1/companies?limit=100")["items"]
    busy = next(
        c
        for c in companies
        if demo.api(f"/api/v1/companies/{c['id']}?limit=20")["timeline_next_cursor"]
    )
    page.goto(f"{demo.base_url}/app/#/companies/{busy['id']}")
    entries = page.locator(".panel-timeline li.entry")
    expect(entries).to_have_count(20)
    page.locator('[data-key="timeline-more"]').scroll_into_view_if_needed()
    expect(entries.nth(20)).to_be_attached()
    assert entries.count() > 20


# -- companies -------------------------------------------------------------------------------------------


def test_companies_list_page_and_edit(page: Page, demo: Demo, people: list[dict[str, Any]]) -> None:
    page.goto(f"{demo.base_url}/app/#/companies")
    expect(page.locator("h1")).to_have_text("Companies")
    expect(rows(page).first).to_be_visible()
    no_serious_accessibility_issues(page)
    page.get_by_label(named("Search")).fill("quayside")
    expect(rows(page)).to_have_count(1)
    rows(page).first.locator("a.row-link").click()
    expect(page.locator("h1")).to_have_text("Quayside Paging Ltd")
    expect(page.locator(".panel-people li")).to_have_count(PEOPLE)
    company_id = int(page.url.rsplit("/", 1)[1])
    app_screenshot(page, "app-company.png")
    no_serious_accessibility_issues(page)

    page.locator('[data-key="company-edit"]').click()
    form = page.locator('[data-form="company-edit"]')
    form.get_by_label(named("Name")).fill("")
    form.get_by_label(named("Domains")).fill("quayside-paging.co.uk\nnot a domain")
    form.locator('[data-key="company-edit-submit"]').click()
    expect(form.get_by_label(named("Name"))).to_have_attribute("aria-invalid", "true")
    expect(form).to_contain_text("A company needs a name.")
    expect(form).to_contain_text("“not” is not a domain")
    form.get_by_label(named("Name")).fill("Quayside Paging Group")
    # A domain nobody can own: the API names the field, the form shows it there.
    form.get_by_label(named("Domains")).fill("quayside-paging.example")
    form.locator('[data-key="company-edit-submit"]').click()
    expect(form.get_by_label(named("Domains"))).to_have_attribute("aria-invalid", "true")
    expect(form).to_contain_text("is not a domain a company can own")
    form.get_by_label(named("Domains")).fill("quayside-paging.co.uk\nquayside-group.co.uk")
    form.get_by_label(named("Tags")).fill("wholesale")
    form.locator('[data-key="company-edit-submit"]').click()
    expect(page.locator("h1")).to_have_text("Quayside Paging Group")
    with demo.db.read_session() as session:
        company = session.get(Company, company_id)
        assert company is not None and company.name == "Quayside Paging Group"
        domains = set(
            session.scalars(
                select(CompanyDomain.domain).where(CompanyDomain.company_id == company_id)
            )
        )
        assert domains == {"quayside-paging.co.uk", "quayside-group.co.uk"}
        version = company.version

    # Someone renamed it meanwhile: take theirs.
    page.locator('[data-key="company-edit"]').click()
    form.get_by_label(named("Name")).fill("Quayside Paging Holdings")
    call(demo, "PATCH", f"/api/v1/companies/{company_id}", {"version": version, "name": "Quayside"})
    form.locator('[data-key="company-edit-submit"]').click()
    expect(form.locator(".form-message")).to_contain_text("changed Name too")
    form.locator('[data-key="company-edit-take-theirs"]').click()
    expect(page.locator("h1")).to_have_text("Quayside")

    page.locator('[data-form="note"] textarea').fill("Group buying from April")
    page.locator('[data-key="note-submit"]').click()
    expect(page.locator(".entry-note").first).to_contain_text("Group buying from April")
    note = (Activity.company_id == company_id, Activity.body_text == "Group buying from April")
    assert count(demo, Activity, *note) == 1
    assert (
        count(demo, ContactEmail, ContactEmail.address.like("%@quayside-paging.example")) == PEOPLE
    )


def test_a_page_asked_for_while_another_still_loads_is_the_one_shown(
    app_context: BrowserContext, demo: Demo
) -> None:
    """The contact list waits on its custom fields; the user goes to Companies meanwhile. When
    the contacts' answer comes late, it must not paint the contact list over the companies."""
    held: list[Any] = []

    def hold_contact_fields(route: Any) -> None:
        if "entity=contact" in route.request.url and not held:
            held.append(route)
        else:
            route.continue_()

    app_context.route("**/api/v1/custom-fields?*", hold_contact_fields)
    page = open_app(app_context, demo, "#/contacts")
    page.wait_for_function("() => document.querySelector('#main .loading') !== null")
    # The route handler runs when Playwright dispatches the request's event, which can come
    # after the page shows it is loading: wait for it, pumping events, rather than look once.
    deadline = time.monotonic() + 15
    while not held:
        assert time.monotonic() < deadline, "the contact list did not ask for its custom fields"
        page.wait_for_timeout(50)
    page.goto(f"{demo.base_url}/app/#/companies")
    expect(page.locator("h1")).to_have_text("Companies")
    with page.expect_response(lambda r: "entity=contact" in r.url):
        held[0].continue_()
    page.wait_for_timeout(500)  # the late answer's view has had every chance to paint
    assert page.locator("h1").inner_text() == "Companies"
    expect(page.locator(".list-status")).not_to_have_count(0)
    assert page.errors == []  # type: ignore[attr-defined]


def test_companies_filter_and_sort_by_when_anyone_there_was_last_contacted(
    page: Page, demo: Demo
) -> None:
    tag = "app-contacted"
    now = utcnow()
    people = {  # company -> when each of its people was last contacted (None: never)
        "Harbourside Recent Ltd": [now - timedelta(days=3), now - timedelta(days=500)],
        "Harbourside Old Ltd": [now - timedelta(days=400)],
        "Harbourside Quiet Ltd": [None],
    }
    for n, (name, moments) in enumerate(people.items()):
        company = call(demo, "POST", "/api/v1/companies", {"name": name, "tags": [tag]})
        for m, moment in enumerate(moments):
            body = {"name": f"Harbour Person {n}{m}", "company_id": company["id"]}
            contact = call(demo, "POST", "/api/v1/contacts", body)
            with demo.db.session() as session:
                session.execute(
                    update(Contact)
                    .where(Contact.id == contact["id"])
                    .values(last_contacted_at=moment)
                )

    page.goto(f"{demo.base_url}/app/#/companies?tag={tag}")
    expect(rows(page)).to_have_count(3)
    quiet = rows(page).filter(has_text="Harbourside Quiet Ltd")
    expect(quiet.locator(".cell-contacted")).to_have_text("never")
    recent = rows(page).filter(has_text="Harbourside Recent Ltd")
    expect(recent.locator(".cell-contacted")).to_contain_text("Last contacted")
    expect(recent.locator(".cell-contacted")).not_to_contain_text("never")

    contacted = page.get_by_label(named("Last contacted"))
    contacted.select_option(label="In the last 30 days")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Harbourside Recent Ltd")
    contacted.select_option(label="More than a year ago")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Harbourside Old Ltd")
    contacted.select_option(label="Never")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Harbourside Quiet Ltd")
    expect(page).to_have_url(re.compile(rf"tag={tag}.*contacted=never|contacted=never.*tag={tag}"))

    contacted.select_option(label="Any time")
    page.get_by_label(named("Sort")).select_option(label="Last contacted, latest first")
    expect(rows(page)).to_have_count(3)
    expect(rows(page).locator("a.row-link")).to_have_text(
        ["Harbourside Recent Ltd", "Harbourside Old Ltd", "Harbourside Quiet Ltd"]
    )
    page.reload()  # the address keeps the sort
    expect(rows(page).first).to_contain_text("Harbourside Recent Ltd")
    no_serious_accessibility_issues(page)


def test_custom_fields_are_in_the_edit_form_checked_and_shown(
    page: Page, demo: Demo, people: list[dict[str, Any]]
) -> None:
    fields = [
        call(demo, "POST", "/api/v1/custom-fields", body)
        for body in (
            {"entity": "contact", "key": "team_size", "label": "Team size", "field_type": "number"},
            {"entity": "contact", "key": "budget", "label": "Budget", "field_type": "money"},
            {"entity": "contact", "key": "renewal", "label": "Renewal", "field_type": "date"},
            {
                "entity": "contact",
                "key": "tier",
                "label": "Tier",
                "field_type": "choice",
                "choices": ["Gold", "Silver"],
            },
        )
    ]
    try:
        person = people[10]
        page.goto(f"{demo.base_url}/app/#/contacts/{person['id']}")
        page.locator('[data-key="contact-edit"]').click()
        form = page.locator('[data-form="contact-edit"]')
        form.get_by_label(named("Team size")).fill("a dozen")
        form.get_by_label(named("Budget")).fill("1200 euros")
        form.locator('[data-key="contact-edit-submit"]').click()
        expect(form).to_contain_text("Enter a number, like 12 or 3.5.")
        expect(form).to_contain_text("Write an amount and a currency, like 1200.50 EUR.")
        no_serious_accessibility_issues(page)
        form.get_by_label(named("Team size")).fill("12")
        form.get_by_label(named("Budget")).fill("1200.50 eur")
        form.get_by_label(named("Renewal")).fill("2027-04-01")
        form.get_by_label(named("Tier")).select_option("Gold")
        form.locator('[data-key="contact-edit-submit"]').click()
        expect(page.locator("#toast")).to_contain_text("Saved")
        details = page.locator(".panel-details")
        expect(details).to_contain_text("Team size12")
        expect(details).to_contain_text("1200.50 EUR")
        expect(details).to_contain_text("Gold")
        assert contact_row(demo, person["id"]).custom_fields == {
            "team_size": 12,
            "budget": {"amount": "1200.50", "currency": "EUR"},
            "renewal": "2027-04-01",
            "tier": "Gold",
        }
    finally:
        for made in fields:
            call(demo, "DELETE", f"/api/v1/custom-fields/{made['id']}")
