"""The lists' remaining features in the web app, in Chromium against the demo server: filters by
custom field and by last contacted (kept in the address), rows selected by mouse, Shift+click and
keyboard with bulk owner and tag changes (one of them stale on the way), CSV export of a selection
and of the filtered list, CSV import with a bad row (the preview marks it, the import brings the
good ones), a list of 1,200 that keeps only the rows near the screen in the document, a merge of
two contacts, editing a deal when someone saved first, and deleting records (refused plainly to a
member who does not own them). Every change is checked in the database and every downloaded file
read; axe-core finds nothing serious with the new dialogs open."""

from __future__ import annotations

import csv
import io
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import delete, insert, select, update

from server.crm.users import create_token
from server.models import Company, Contact, ContactEmail, ContactTag, Deal, User, utcnow
from tests.e2e.conftest import ADMIN, MEMBER, Demo, app_screenshot, axe_violations, open_app

pytestmark = pytest.mark.slow

TAG = "app-bulk"


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
    return re.compile(rf"^{re.escape(label)}( \*)?$")


def no_serious_accessibility_issues(page: Page) -> None:
    page.wait_for_function("() => document.getAnimations().every(a => a.playState !== 'running')")
    assert axe_violations(page) == []


def user_id(demo: Demo, email: str) -> int:
    with demo.db.read_session() as session:
        return int(session.scalars(select(User.id).where(User.email == email)).one())


def tags_of(demo: Demo, contact_id: int) -> set[str]:
    with demo.db.read_session() as session:
        return set(
            session.scalars(select(ContactTag.tag).where(ContactTag.contact_id == contact_id))
        )


def rows(page: Page) -> Any:
    return page.locator("ul.rows > li.row")


def row_named(page: Page, name: str) -> Any:
    return rows(page).filter(has=page.get_by_role("link", name=name, exact=True))


def downloaded_rows(page: Page, click: Any) -> list[dict[str, str]]:
    with page.expect_download() as info:
        click()
    text = Path(info.value.path()).read_text(encoding="utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def crowd(demo: Demo) -> Iterator[list[dict[str, Any]]]:
    """Six people tagged app-bulk with a tier and a seat count; two contacted last week, two over a
    year ago, two never."""
    fields = [
        call(demo, "POST", "/api/v1/custom-fields", body)
        for body in (
            {
                "entity": "contact",
                "key": "bulk_tier",
                "label": "Tier",
                "field_type": "choice",
                "choices": ["Gold", "Silver"],
            },
            {"entity": "contact", "key": "bulk_seats", "label": "Seats", "field_type": "number"},
        )
    ]
    made = [
        call(
            demo,
            "POST",
            "/api/v1/contacts",
            {
                "name": f"Bulk Person {n}",
                "emails": [f"bulk.{n}@harbour-bulk.example"],
                "tags": [TAG],
                "custom_fields": {"bulk_tier": "Gold" if n <= 3 else "Silver", "bulk_seats": n * 5},
            },
        )
        for n in range(1, 7)
    ]
    now = utcnow()
    when = {0: now - timedelta(days=3), 1: now - timedelta(days=5), 2: now - timedelta(days=400)}
    when[3] = now - timedelta(days=500)
    with demo.db.session() as session:
        for index, moment in when.items():
            session.execute(
                update(Contact)
                .where(Contact.id == made[index]["id"])
                .values(last_contacted_at=moment)
            )
    try:
        yield [demo.api(f"/api/v1/contacts/{c['id']}?limit=1") for c in made]
    finally:
        for made_field in fields:
            call(demo, "DELETE", f"/api/v1/custom-fields/{made_field['id']}")


@pytest.fixture
def page(app_context: BrowserContext, demo: Demo) -> Iterator[Page]:
    opened = open_app(app_context, demo, f"#/contacts?tag={TAG}")
    yield opened
    assert opened.errors == []  # type: ignore[attr-defined]


# -- filters ------------------------------------------------------------------------------------------


def test_contacts_filter_by_custom_field_and_last_contacted(
    page: Page, demo: Demo, crowd: list[dict[str, Any]]
) -> None:
    expect(rows(page)).to_have_count(6)
    page.get_by_label(named("Custom field")).select_option(label="Tier")
    page.get_by_label(named("Value")).select_option("Gold")
    expect(rows(page)).to_have_count(3)
    expect(page).to_have_url(re.compile(r"cf\.bulk_tier=Gold"))
    page.get_by_label(named("Custom field")).select_option(label="Seats")
    page.get_by_label(named("Condition")).select_option(label="at least")
    page.get_by_label(named("Value")).fill("20")
    expect(rows(page)).to_have_count(3)  # 20, 25, 30
    expect(page).to_have_url(re.compile(r"cf\.bulk_seats\.gte=20"))
    page.get_by_label(named("Custom field")).select_option(label="None")
    expect(rows(page)).to_have_count(6)

    contacted = page.get_by_label(named("Last contacted"))
    contacted.select_option(label="In the last 30 days")
    expect(rows(page)).to_have_count(2)
    expect(rows(page).first).to_contain_text("Bulk Person 1")
    contacted.select_option(label="More than a year ago")
    expect(rows(page)).to_have_count(2)
    expect(rows(page).first).to_contain_text("Bulk Person 3")
    contacted.select_option(label="Never")
    expect(rows(page)).to_have_count(2)
    expect(rows(page).first).to_contain_text("Bulk Person 5")
    expect(rows(page).last).to_contain_text("Bulk Person 6")
    contacted.select_option(label="Between dates…")
    since = (utcnow() - timedelta(days=450)).date().isoformat()
    until = (utcnow() - timedelta(days=30)).date().isoformat()
    page.get_by_label(named("Contacted from")).fill(since)
    page.get_by_label(named("Contacted until")).fill(until)
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Bulk Person 3")
    expect(page).to_have_url(re.compile(rf"contacted=dates.*contacted_from={since}"))

    # The address holds them: a reload shows the same list and the same form.
    page.reload()
    expect(rows(page)).to_have_count(1)
    expect(page.get_by_label(named("Contacted until"))).to_have_value(until)
    page.goto(f"{demo.base_url}/app/#/contacts?tag={TAG}&contacted=never&cf.bulk_tier=Silver")
    expect(rows(page)).to_have_count(2)
    expect(page.get_by_label(named("Value"))).to_have_value("Silver")
    no_serious_accessibility_issues(page)


# -- selection and bulk changes ----------------------------------------------------------------------


def test_bulk_owner_and_tag_on_three_selected_contacts(
    page: Page, demo: Demo, crowd: list[dict[str, Any]]
) -> None:
    expect(rows(page)).to_have_count(6)
    three = crowd[:3]
    # Mouse, Shift+click for the range.
    rows(page).nth(0).locator("input.pick").check()
    rows(page).nth(2).locator("input.pick").click(modifiers=["Shift"])
    expect(page.locator(".bulk-count")).to_have_text("3 contacts selected")
    expect(page.locator("li.row.picked")).to_have_count(3)

    tom = user_id(demo, MEMBER)
    page.locator('[data-key="bulk-owner"]').click()
    dialog = page.locator('[data-dialog="bulk-owner"]')
    dialog.get_by_label(named("Owner")).select_option(str(tom))
    no_serious_accessibility_issues(page)
    dialog.locator('[data-key="bulk-owner-apply"]').click()
    expect(dialog.locator(".bulk-summary")).to_contain_text("3 contacts now owned by")
    with demo.db.read_session() as session:
        owners = session.scalars(
            select(Contact.owner_id).where(Contact.id.in_([c["id"] for c in three]))
        )
        assert set(owners) == {tom}
    dialog.locator('[data-key="bulk-close"]').click()
    expect(row_named(page, "Bulk Person 2")).to_contain_text("Tom")

    # Someone tags one of them meanwhile: that row is read again and tagged all the same.
    second = demo.api(f"/api/v1/contacts/{three[1]['id']}?limit=1")
    call(
        demo,
        "PATCH",
        f"/api/v1/contacts/{second['id']}",
        {"version": second["version"], "tags": [TAG, "trade-fair"]},
    )
    page.locator('[data-key="bulk-tag-add"]').click()
    dialog = page.locator('[data-dialog="bulk-tag-add"]')
    dialog.locator('[data-key="bulk-tag-add-apply"]').click()
    expect(dialog.locator(".field-error")).to_have_text("Write the tag.")
    dialog.get_by_label(named("Tag")).fill("vip")
    no_serious_accessibility_issues(page)
    dialog.get_by_label(named("Tag")).press("Enter")
    expect(dialog.locator(".bulk-summary")).to_have_text("Tagged 3 contacts “vip”.")
    assert tags_of(demo, three[0]["id"]) == {TAG, "vip"}
    assert tags_of(demo, three[1]["id"]) == {TAG, "trade-fair", "vip"}
    assert tags_of(demo, three[2]["id"]) == {TAG, "vip"}
    dialog.locator('[data-key="bulk-close"]').click()
    expect(row_named(page, "Bulk Person 2")).to_contain_text("trade-fair")

    page.locator('[data-key="bulk-tag-remove"]').click()
    dialog = page.locator('[data-dialog="bulk-tag-remove"]')
    dialog.get_by_label(named("Tag")).select_option("vip")
    dialog.locator('[data-key="bulk-tag-remove-apply"]').click()
    expect(dialog.locator(".bulk-summary")).to_have_text("Took “vip” off 3 contacts.")
    dialog.locator('[data-key="bulk-close"]').click()
    assert all("vip" not in tags_of(demo, c["id"]) for c in three)
    expect(page.locator(".bulk-count")).to_have_text("3 contacts selected")


def test_export_a_selection_and_the_filtered_list(
    page: Page, demo: Demo, crowd: list[dict[str, Any]]
) -> None:
    expect(rows(page)).to_have_count(6)
    # The keyboard: x ticks the row the focus is on.
    for name in ("Bulk Person 4", "Bulk Person 6"):
        row_named(page, name).get_by_role("link", name=name).focus()
        page.keyboard.press("x")
    expect(page.locator(".bulk-count")).to_have_text("2 contacts selected")
    exported = downloaded_rows(page, lambda: page.locator('[data-key="bulk-export"]').click())
    assert [row["name"] for row in exported] == ["Bulk Person 4", "Bulk Person 6"]
    assert exported[0]["emails"] == "bulk.4@harbour-bulk.example"
    assert exported[0]["cf.bulk_tier"] == "Silver" and exported[1]["cf.bulk_seats"] == "30"

    everyone = downloaded_rows(page, lambda: page.locator('[data-key="contacts-export"]').click())
    assert sorted(row["name"] for row in everyone) == [f"Bulk Person {n}" for n in range(1, 7)]
    page.get_by_label(named("Last contacted")).select_option(label="Never")
    expect(rows(page)).to_have_count(2)
    never = downloaded_rows(page, lambda: page.locator('[data-key="contacts-export"]').click())
    assert [row["name"] for row in never] == ["Bulk Person 5", "Bulk Person 6"]


WINDOW_TAG = "app-window"
WINDOW_ROWS = 1_200  # past the 1,000 rows below which a list keeps every row in the document


@pytest.fixture
def long_list(demo: Demo) -> Iterator[None]:
    """1,200 people, inserted in bulk, and taken out again (other tests count every contact)."""
    now = utcnow()
    with demo.db.session() as session:
        session.execute(
            insert(Contact),
            [
                {
                    "name": f"Window Person {n:04d}",
                    "lifecycle_stage": "lead",
                    "custom_fields": {},
                    "source": "import",
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(1, WINDOW_ROWS + 1)
            ],
        )
        ids = list(session.scalars(select(Contact.id).where(Contact.name.like("Window Person %"))))
        session.execute(insert(ContactTag), [{"contact_id": i, "tag": WINDOW_TAG} for i in ids])
    try:
        yield
    finally:
        with demo.db.session() as session:
            session.execute(delete(ContactTag).where(ContactTag.contact_id.in_(ids)))
            session.execute(delete(Contact).where(Contact.id.in_(ids)))


def test_a_long_list_keeps_only_the_rows_near_the_screen(
    page: Page, demo: Demo, long_list: None
) -> None:
    page.goto(f"{demo.base_url}/app/#/contacts?tag={WINDOW_TAG}")
    expect(rows(page)).to_have_count(50)
    rows(page).first.locator("input.pick").check()
    status = page.locator(".list-status")
    # Each time a page lands, go to the end of the list before the browser draws a frame, as a
    # fast scroll does: the "Load more" button is then in view in every frame, so its
    # IntersectionObserver never speaks again, and the list must notice the scroll by itself.
    page.evaluate(
        """() => {
            const end = () => window.scrollTo(0, document.documentElement.scrollHeight);
            new MutationObserver(end).observe(document.querySelector(".list-status"),
                {childList: true, characterData: true, subtree: true});
            end();
        }"""
    )
    # A busy machine (CI shares two cores with a browser, a database and another test process)
    # may take seconds a page: wait as long as pages keep coming, and no more than 30 s for one.
    last_text, last_change = "", time.monotonic()
    while not (text := status.inner_text()).startswith("All"):
        if text != last_text:
            last_text, last_change = text, time.monotonic()
        elif time.monotonic() - last_change > 30:
            break
        page.wait_for_timeout(100)
    expect(status).to_have_text(f"All {WINDOW_ROWS:,} shown.")
    # Far above the screen, chunks of rows have left the document, their place kept.
    expect(page.locator("ul.rows > li.rows-spacer").first).to_be_attached()
    assert rows(page).count() < WINDOW_ROWS
    expect(rows(page).last).to_contain_text(f"Window Person {WINDOW_ROWS:04d}")
    page.locator('[data-key="pick-all"]').check()
    expect(page.locator(".bulk-count")).to_have_text(f"{WINDOW_ROWS:,} contacts selected")
    page.locator('[data-key="bulk-clear"]').click()
    rows(page).last.locator("input.pick").check()
    # Back at the top, the first rows are back, as they were.
    page.evaluate("window.scrollTo(0, 0)")
    expect(rows(page).first).to_contain_text("Window Person 0001")
    expect(rows(page).first.locator("input.pick")).not_to_be_checked()
    expect(page.locator(".bulk-count")).to_have_text("1 contact selected")


# -- CSV import ----------------------------------------------------------------------------------------

IMPORT = (
    "name,email,company,stage,tags\r\n"
    "Imogen Ashby,imogen@ashby-imports.example,Ashby Imports,customer,app-import\r\n"
    "Bad Address,not-an-address,Ashby Imports,lead,app-import\r\n"
    "Ivor Ashby,ivor@ashby-imports.example,Ashby Imports,lead,app-import\r\n"
)


def test_csv_import_previews_marks_the_bad_row_and_imports_the_good_ones(
    page: Page, demo: Demo
) -> None:
    page.locator('[data-key="contacts-import"]').click()
    dialog = page.locator('[data-dialog="import"]')
    expect(dialog.get_by_label("CSV file")).to_be_focused()
    dialog.get_by_label("CSV file").set_input_files(
        {"name": "people.csv", "mimeType": "text/csv", "buffer": IMPORT.encode()}
    )
    bad = dialog.locator("tr.import-error")
    expect(bad).to_have_count(1)
    expect(bad).to_contain_text("Bad Address")
    expect(bad.locator(".import-problem")).to_contain_text("not an email address")
    expect(bad.locator("th")).to_have_text("3")  # the spreadsheet's row (the header is row 1)
    expect(dialog.locator(".import-message")).to_contain_text("Nothing is written yet: 2 new.")
    expect(dialog.locator("tr.import-created")).to_have_count(2)
    expect(dialog).not_to_contain_text("null")
    with demo.db.read_session() as session:
        found = session.scalars(
            select(ContactEmail.address).where(ContactEmail.address.like("%@ashby-imports.example"))
        )
        assert list(found) == []  # a preview writes nothing
    app_screenshot(page, "app-import.png")
    no_serious_accessibility_issues(page)

    dialog.locator('[data-key="import-run"]').click()
    expect(dialog.locator(".import-message")).to_contain_text("2 created.")
    expect(dialog.locator(".import-message")).to_contain_text(
        "1 row with problems was not imported"
    )
    expect(dialog.locator("tr.import-error")).to_contain_text("Bad Address")
    failed = downloaded_rows(
        page, lambda: dialog.locator('[data-key="import-failed-download"]').click()
    )
    assert failed == [
        {
            "name": "Bad Address",
            "email": "not-an-address",
            "company": "Ashby Imports",
            "stage": "lead",
            "tags": "app-import",
        }
    ]
    dialog.locator('[data-key="import-done"]').click()
    expect(dialog).to_have_count(0)
    with demo.db.read_session() as session:
        imported = session.scalars(
            select(Contact)
            .join(ContactEmail)
            .where(ContactEmail.address.like("%@ashby-imports.example"))
        ).all()
        assert sorted(c.name for c in imported) == ["Imogen Ashby", "Ivor Ashby"]
        assert {c.source for c in imported} == {"import"}
        assert sorted(c.lifecycle_stage for c in imported) == ["customer", "lead"]
        assert all(c.company is not None and c.company.name == "Ashby Imports" for c in imported)
        assert session.scalar(select(Contact.id).where(Contact.name == "Bad Address")) is None


def test_companies_filter_by_custom_field_and_import_with_a_bad_row(page: Page, demo: Demo) -> None:
    region = call(
        demo,
        "POST",
        "/api/v1/custom-fields",
        {"entity": "company", "key": "bulk_region", "label": "Region", "field_type": "text"},
    )
    try:
        for name, where in (("Fjord Freight", "North"), ("Solent Freight", "South")):
            call(
                demo,
                "POST",
                "/api/v1/companies",
                {"name": name, "tags": ["app-bulk-co"], "custom_fields": {"bulk_region": where}},
            )
        page.goto(f"{demo.base_url}/app/#/companies?tag=app-bulk-co")
        expect(rows(page)).to_have_count(2)
        page.get_by_label(named("Custom field")).select_option(label="Region")
        page.get_by_label(named("Value")).fill("North")
        expect(rows(page)).to_have_count(1)
        expect(rows(page).first).to_contain_text("Fjord Freight")
        expect(page).to_have_url(re.compile(r"#/companies\?.*cf\.bulk_region=North"))

        page.locator('[data-key="companies-import"]').click()
        dialog = page.locator('[data-dialog="import"]')
        dialog.get_by_label("CSV file").set_input_files(
            {
                "name": "companies.csv",
                "mimeType": "text/csv",
                "buffer": (
                    b"name;domain;tags\n"
                    b"Kestrel Freight;kestrel-freight.co.uk;app-bulk-co\n"
                    b";kestrel-freight-two.co.uk;app-bulk-co\n"
                ),
            }
        )
        expect(dialog.locator("tr.import-error")).to_have_count(1)
        expect(dialog.locator("tr.import-error th")).to_have_text("3")
        dialog.locator('[data-key="import-run"]').click()
        expect(dialog.locator(".import-message")).to_contain_text("1 created.")
        dialog.locator('[data-key="import-done"]').click()
        with demo.db.read_session() as session:
            kestrel = session.scalars(
                select(Company).where(Company.name == "Kestrel Freight")
            ).one()
            assert [d.domain for d in kestrel.domains] == ["kestrel-freight.co.uk"]
    finally:
        call(demo, "DELETE", f"/api/v1/custom-fields/{region['id']}")


# -- merge -------------------------------------------------------------------------------------------------


def test_merging_two_contacts_keeps_the_chosen_one_with_both_addresses(
    page: Page, demo: Demo
) -> None:
    first, second = (
        call(
            demo,
            "POST",
            "/api/v1/contacts",
            {
                "name": "Morwenna Penrose" if n == 1 else "",
                "emails": [address],
                "title": "" if n == 1 else "Buyer",
                "tags": ["app-merge", f"source-{n}"],
            },
        )
        for n, address in (
            (1, "morwenna@penrose-merge.example"),
            (2, "m.penrose@gmail-merge.example"),
        )
    )
    page.goto(f"{demo.base_url}/app/#/contacts?tag=app-merge")
    expect(rows(page)).to_have_count(2)
    page.locator('[data-key="pick-all"]').check()
    expect(page.locator(".bulk-count")).to_have_text("2 contacts selected")
    page.locator('[data-key="bulk-merge"]').click()
    dialog = page.locator('[data-dialog="merge"]')
    expect(dialog.locator(".merge-card")).to_have_count(2)
    dialog.get_by_label(re.compile("^Morwenna Penrose")).check()
    what = dialog.locator(".merge-what")
    expect(what).to_contain_text("m.penrose@gmail-merge.example")
    expect(what).to_contain_text("job title")  # the kept one has none: the other's fills it
    expect(what).to_contain_text("source-2")
    no_serious_accessibility_issues(page)
    dialog.locator('[data-key="merge-confirm"]').click()
    expect(page.locator("h1")).to_have_text("Morwenna Penrose")
    expect(page).to_have_url(re.compile(rf"#/contacts/{first['id']}$"))
    details = page.locator(".panel-details")
    expect(details).to_contain_text("morwenna@penrose-merge.example")
    expect(details).to_contain_text("m.penrose@gmail-merge.example")
    expect(page.locator("#toast")).to_contain_text("moved 1 address")
    with demo.db.read_session() as session:
        kept = session.get(Contact, first["id"])
        assert kept is not None
        assert sorted(e.address for e in kept.emails) == [
            "m.penrose@gmail-merge.example",
            "morwenna@penrose-merge.example",
        ]
        assert kept.title == "Buyer"
        assert session.get(Contact, second["id"]) is None
    assert tags_of(demo, first["id"]) == {"app-merge", "source-1", "source-2"}


# -- deals: edit with a conflict, delete ---------------------------------------------------------------------


def test_editing_a_deal_when_someone_saved_first_then_deleting_it(page: Page, demo: Demo) -> None:
    deal = call(
        demo,
        "POST",
        "/api/v1/deals",
        {"title": "Harbour fit-out", "amount": "12000", "currency": "GBP"},
    )
    page.goto(f"{demo.base_url}/app/#/deals/{deal['id']}")
    expect(page.locator("h1")).to_have_text("Harbour fit-out")
    page.locator('[data-key="deal-edit"]').click()
    form = page.locator('[data-form="deal-edit"]')
    form.get_by_label(named("Amount")).fill("12,500")
    form.get_by_label(named("Currency")).fill("E1")
    form.locator('[data-key="deal-edit-submit"]').click()
    expect(form).to_contain_text("Write an amount like 1200 or 1200.50.")
    expect(form).to_contain_text("Three letters, like EUR.")
    expect(form.get_by_label(named("Amount"))).to_be_focused()
    no_serious_accessibility_issues(page)

    form.get_by_label(named("Amount")).fill("12500.50")
    form.get_by_label(named("Currency")).fill("eur")
    form.get_by_label(named("Expected close")).fill("2027-03-31")
    form.get_by_label(named("Owner")).select_option(str(user_id(demo, MEMBER)))
    call(
        demo,
        "PATCH",
        f"/api/v1/deals/{deal['id']}",
        {"version": deal["version"], "title": "Harbour refit"},
    )
    form.locator('[data-key="deal-edit-submit"]').click()
    expect(form.locator(".form-message")).to_contain_text("Someone else saved this record")
    form.locator('[data-key="deal-edit-keep-mine"]').click()
    expect(page.locator("#toast")).to_contain_text("Saved")
    expect(page.locator("h1")).to_have_text("Harbour refit")  # theirs stays
    with demo.db.read_session() as session:
        saved = session.get(Deal, deal["id"])
        assert saved is not None
        assert (saved.title, str(saved.amount), saved.currency) == (
            "Harbour refit",
            "12500.50",
            "EUR",
        )
        assert saved.expected_close is not None and saved.expected_close.isoformat() == "2027-03-31"
        assert saved.owner_id == user_id(demo, MEMBER)

    page.locator('[data-key="deal-delete"]').click()
    dialog = page.locator('[data-dialog="deal-delete"]')
    expect(dialog).to_contain_text("cannot be undone")
    no_serious_accessibility_issues(page)
    dialog.locator('[data-key="deal-delete-confirm"]').click()
    expect(page.locator("#toast")).to_contain_text("Deleted “Harbour refit”.")
    with demo.db.read_session() as session:
        assert session.get(Deal, deal["id"]) is None


def test_deleting_a_contact_someone_else_owns_is_refused_plainly(
    app_context: BrowserContext, demo: Demo
) -> None:
    mine = call(
        demo,
        "POST",
        "/api/v1/contacts",
        {"name": "Anna's Own Contact", "owner_id": user_id(demo, ADMIN)},
    )
    with demo.db.session() as session:
        member = session.scalars(select(User).where(User.email == MEMBER)).one()
        token = create_token(
            session, member, name="bulk test", expires_in=timedelta(hours=1)
        ).plaintext
    page = open_app(app_context, demo, f"#/contacts/{mine['id']}", token=token)
    expect(page.locator("h1")).to_have_text("Anna's Own Contact")
    page.locator('[data-key="contact-delete"]').click()
    dialog = page.locator('[data-dialog="contact-delete"]')
    dialog.locator('[data-key="contact-delete-confirm"]').click()
    expect(dialog.locator(".dialog-message")).to_have_text(
        "You may not delete this contact: only an admin or the contact's owner may do this."
    )
    expect(dialog.locator('[data-key="contact-delete-confirm"]')).to_have_count(0)
    dialog.locator('[data-key="contact-delete-cancel"]').click()
    expect(dialog).to_have_count(0)
    with demo.db.read_session() as session:
        assert session.get(Contact, mine["id"]) is not None
    assert page.errors == []  # type: ignore[attr-defined]

    # Its owner may.
    page.close()
    page = open_app(app_context, demo, f"#/contacts/{mine['id']}")
    page.locator('[data-key="contact-delete"]').click()
    page.locator('[data-key="contact-delete-confirm"]').click()
    expect(page.locator("h1")).to_have_text("Contacts")
    with demo.db.read_session() as session:
        assert session.get(Contact, mine["id"]) is None
