"""Deals in the web app, in Chromium against the demo server: the pipeline board (totals per
stage, a real drag between stages recorded in the stage history, Undo, the keyboard's way through
the card's stage list, a stale card refused and the board shown afresh), a new deal, the list
view with its filters, and the deal page with its history, stage moves, follow-ups and notes.
The tests use a pipeline of their own, so other tests' deals do not move their numbers."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import func, select

from server.models import Activity, Deal, DealStageChange, FollowUp, User
from tests.e2e.conftest import ADMIN, PHONE, Demo, app_screenshot, axe_violations, open_app

pytestmark = pytest.mark.slow


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


def no_serious_accessibility_issues(page: Page) -> None:
    # Colours are judged once they stop changing (buttons fade between states).
    page.wait_for_function("() => document.getAnimations().every(a => a.playState !== 'running')")
    assert axe_violations(page) == []


def named(label: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(label)}( \*)?$")


def deal_row(demo: Demo, deal_id: int) -> Deal:
    with demo.db.read_session() as session:
        found = session.get(Deal, deal_id)
        assert found is not None
        session.expunge(found)
        return found


def history(demo: Demo, deal_id: int) -> list[tuple[int | None, int, int | None]]:
    with demo.db.read_session() as session:
        return [
            (c.from_stage_id, c.to_stage_id, c.changed_by_id)
            for c in session.scalars(
                select(DealStageChange)
                .where(DealStageChange.deal_id == deal_id)
                .order_by(DealStageChange.id)
            )
        ]


@pytest.fixture(scope="module")
def board(demo: Demo) -> dict[str, Any]:
    """A pipeline of four stages with five deals: two in Lead, one in Quote, one won, one lost."""
    pipeline = call(
        demo,
        "POST",
        "/api/v1/pipelines",
        {
            "name": "Wholesale",
            "stages": [
                {"name": "Lead", "probability": 10},
                {"name": "Quote", "probability": 50},
                {"name": "Won", "probability": 100, "outcome": "won"},
                {"name": "Lost", "probability": 0, "outcome": "lost"},
            ],
        },
    )
    stages = {s["name"]: s["id"] for s in pipeline["stages"]}
    daniela = demo.api("/api/v1/contacts?q=daniela%40vasquezrow")["items"][0]
    deals = {}
    for title, amount, stage in (
        ("Harbour Road cups", "12000", "Lead"),
        ("Towel rolls, 12 months", "4800", "Lead"),
        ("Napkins for the spring menu", "2500.50", "Quote"),
        ("Gloves, annual", "9000", "Won"),
        ("Trays", "700", "Lost"),
    ):
        deals[title] = call(
            demo,
            "POST",
            "/api/v1/deals",
            {
                "title": title,
                "amount": amount,
                "currency": "EUR",
                "pipeline_id": pipeline["id"],
                "stage_id": stages[stage],
                "contact_ids": [daniela["id"]],
                "company_id": daniela["company"]["id"],
                "expected_close": "2027-03-31",
            },
        )
    with demo.db.read_session() as session:
        admin = session.scalars(select(User.id).where(User.email == ADMIN)).one()
    return {"pipeline": pipeline, "stages": stages, "deals": deals, "admin": admin}


@pytest.fixture
def page(app_context: BrowserContext, demo: Demo, board: dict[str, Any]) -> Iterator[Page]:
    opened = open_app(app_context, demo, f"#/deals?pipeline={board['pipeline']['id']}")
    yield opened
    assert opened.errors == []  # type: ignore[attr-defined]


def column(page: Page, board: dict[str, Any], stage: str) -> Any:
    return page.locator(f'.column[data-stage="{board["stages"][stage]}"]')


def card(page: Page, deal: dict[str, Any]) -> Any:
    return page.locator(f'.deal-card[data-deal="{deal["id"]}"]')


def test_drag_a_deal_to_another_stage_records_it_and_undo_puts_it_back(
    page: Page, demo: Demo, board: dict[str, Any]
) -> None:
    cups = board["deals"]["Harbour Road cups"]
    lead, quote = column(page, board, "Lead"), column(page, board, "Quote")
    expect(page.locator(".column")).to_have_count(4)
    expect(lead.locator(".column-summary")).to_have_text("2 deals · €16,800.00")
    expect(quote.locator(".column-summary")).to_have_text("1 deal · €2,500.50")
    expect(page.locator("#pipeline-choice")).to_have_value(str(board["pipeline"]["id"]))
    app_screenshot(page, "app-board.png")
    no_serious_accessibility_issues(page)

    card(page, cups).drag_to(quote)
    expect(quote.locator(".deal-card")).to_have_count(2)
    expect(quote.locator(".column-summary")).to_have_text("2 deals · €14,500.50")
    expect(lead.locator(".column-summary")).to_have_text("1 deal · €4,800.00")
    expect(page.locator("#toast")).to_contain_text("Moved “Harbour Road cups” from Lead to Quote")
    expect(card(page, cups).locator("select")).to_have_value(str(board["stages"]["Quote"]))
    assert deal_row(demo, cups["id"]).stage_id == board["stages"]["Quote"]
    assert history(demo, cups["id"])[-1] == (
        board["stages"]["Lead"],
        board["stages"]["Quote"],
        board["admin"],
    )

    page.locator('[data-key="toast-action"]').click()
    expect(page.locator("#toast")).to_contain_text("back in Lead")
    expect(lead.locator(".deal-card")).to_have_count(2)
    expect(lead.locator(".column-summary")).to_have_text("2 deals · €16,800.00")
    assert deal_row(demo, cups["id"]).stage_id == board["stages"]["Lead"]
    assert history(demo, cups["id"]) == [(None, board["stages"]["Lead"], board["admin"])]


def test_the_keyboard_moves_a_deal_with_the_cards_stage_list(
    page: Page, demo: Demo, board: dict[str, Any]
) -> None:
    napkins = board["deals"]["Napkins for the spring menu"]
    stage_list = card(page, napkins).locator("select")
    stage_list.focus()
    stage_list.select_option(str(board["stages"]["Won"]))
    won = column(page, board, "Won")
    expect(won.locator(".deal-card")).to_have_count(2)
    expect(won.locator(".column-summary")).to_have_text("2 deals · €11,500.50")
    expect(page.locator("#announce")).to_have_text("Moved Napkins for the spring menu to Won.")
    # The focus follows the card, so the next key press acts on the same deal.
    expect(card(page, napkins).locator("select")).to_be_focused()
    moved = deal_row(demo, napkins["id"])
    assert (moved.stage_id, moved.status) == (board["stages"]["Won"], "won")
    assert moved.closed_at is not None
    card(page, napkins).locator("select").select_option(str(board["stages"]["Quote"]))
    expect(column(page, board, "Quote").locator(".deal-card")).to_have_count(1)
    expect(page.locator("#announce")).to_have_text("Moved Napkins for the spring menu to Quote.")
    assert deal_row(demo, napkins["id"]).status == "open"


def test_a_card_someone_else_moved_is_refused_and_the_board_shown_afresh(
    page: Page, demo: Demo, board: dict[str, Any]
) -> None:
    towels = board["deals"]["Towel rolls, 12 months"]
    expect(card(page, towels)).to_be_visible()
    current = call(demo, "GET", f"/api/v1/deals/{towels['id']}")
    call(
        demo,
        "PATCH",
        f"/api/v1/deals/{towels['id']}",
        {"version": current["version"], "amount": "5200"},
    )
    card(page, towels).drag_to(column(page, board, "Lost"))
    expect(page.locator("#toast")).to_contain_text("changed by someone else")
    expect(column(page, board, "Lead").locator(".column-summary")).to_have_text(
        "2 deals · €17,200.00"
    )
    assert deal_row(demo, towels["id"]).stage_id == board["stages"]["Lead"]


def test_a_new_deal_is_checked_and_lands_on_the_board(
    page: Page, demo: Demo, board: dict[str, Any]
) -> None:
    page.locator('[data-key="deal-new"]').click()
    form = page.locator('[data-form="deal-create"]')
    form.get_by_label(named("Amount")).fill("12,5")
    form.locator('[data-key="deal-create-submit"]').click()
    expect(form.get_by_label(named("Title"))).to_have_attribute("aria-invalid", "true")
    expect(form).to_contain_text("Write an amount like 1200 or 1200.50.")
    no_serious_accessibility_issues(page)
    form.get_by_label(named("Title")).fill("Compostable lids")
    form.get_by_label(named("Amount")).fill("1250")
    form.get_by_label(named("Stage")).select_option(str(board["stages"]["Quote"]))
    form.locator('[data-key="deal-create-submit"]').click()
    quote = column(page, board, "Quote")
    expect(quote.locator(".deal-card").first).to_contain_text("Compostable lids")
    expect(quote.locator(".column-summary")).to_have_text("2 deals · €3,750.50")
    with demo.db.read_session() as session:
        lids = session.scalars(select(Deal).where(Deal.title == "Compostable lids")).one()
        assert (lids.pipeline_id, lids.stage_id) == (
            board["pipeline"]["id"],
            board["stages"]["Quote"],
        )
        assert lids.owner_id == board["admin"]


def test_the_list_view_filters_and_sorts(page: Page, board: dict[str, Any]) -> None:
    page.locator(".view-switch a", has_text="List").click()
    expect(page).to_have_url(re.compile(r"view=list"))
    rows = page.locator("ul.rows > li.row")
    expect(rows).to_have_count(len(board["deals"]) + 1)  # and the new one
    page.get_by_label(named("Status")).select_option("won")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Gloves, annual")
    page.get_by_label(named("Status")).select_option("")
    page.get_by_label(named("Sort")).select_option("-amount")
    expect(rows.first).to_contain_text("Harbour Road cups")
    expect(rows.last).to_contain_text("Trays")
    no_serious_accessibility_issues(page)
    page.set_viewport_size(PHONE)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0


def test_the_deal_page_shows_its_history_and_moves_with_undo(
    page: Page, demo: Demo, board: dict[str, Any]
) -> None:
    gloves = board["deals"]["Gloves, annual"]
    page.goto(f"{demo.base_url}/app/#/deals/{gloves['id']}")
    expect(page.locator("h1")).to_have_text("Gloves, annual")
    details = page.locator(".panel-details")
    expect(details).to_contain_text("€9,000.00")
    expect(details).to_contain_text("Daniela")
    expect(page.locator(".panel-history li")).to_have_count(1)
    expect(page.locator(".panel-history")).to_contain_text("Created in Won")
    expect(page.locator(".panel-timeline li.entry").first).to_be_visible()  # Daniela's mail
    no_serious_accessibility_issues(page)

    page.locator("#deal-stage").select_option(str(board["stages"]["Quote"]))
    expect(page.locator(".panel-history li")).to_have_count(2)
    expect(page.locator(".panel-history li").first).to_contain_text("Won → Quote")
    expect(page.locator(".panel-history li").first).to_contain_text("Anna Lindqvist")
    assert deal_row(demo, gloves["id"]).status == "open"
    page.locator('[data-key="toast-action"]').click()
    expect(page.locator(".panel-history li")).to_have_count(1)
    expect(page.locator("#deal-stage")).to_have_value(str(board["stages"]["Won"]))
    assert deal_row(demo, gloves["id"]).status == "won"

    page.locator('[data-key="followup-open"]').click()
    page.locator('[data-form="followup"]').get_by_label(named("What to do")).fill(
        "Ask for the renewal"
    )
    page.locator('[data-key="followup-submit"]').click()
    expect(page.locator("li.followup")).to_contain_text("Ask for the renewal")
    page.locator('[data-form="note"] textarea').fill("Renewal talks start in February")
    page.locator('[data-key="note-submit"]').click()
    expect(page.locator(".entry-note").first).to_contain_text("Renewal talks start in February")
    with demo.db.read_session() as session:
        assert session.scalar(
            select(func.count())
            .select_from(FollowUp)
            .where(FollowUp.deal_id == gloves["id"], FollowUp.title == "Ask for the renewal")
        )
        assert session.scalar(
            select(func.count())
            .select_from(Activity)
            .where(Activity.deal_id == gloves["id"], Activity.kind == "note")
        )
    app_screenshot(page, "app-deal.png")
