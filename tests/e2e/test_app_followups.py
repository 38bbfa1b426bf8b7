"""My follow-ups in the web app, in Chromium against the demo server: overdue, today and upcoming
(the server's "today" is the user's own), done with Undo and snooze, each checked in the
database; today's also on My day."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from server.models import FollowUp
from tests.e2e.conftest import PHONE, Demo, app_screenshot, axe_violations, open_app

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
    page.wait_for_function("() => document.getAnimations().every(a => a.playState !== 'running')")
    assert axe_violations(page) == []


def follow_up(demo: Demo, follow_up_id: int) -> FollowUp:
    with demo.db.read_session() as session:
        found = session.get(FollowUp, follow_up_id)
        assert found is not None
        session.expunge(found)
        return found


@pytest.fixture(scope="module")
def mine(demo: Demo) -> dict[str, dict[str, Any]]:
    """The demo admin's (time zone UTC): one overdue, one later today, one next week."""
    now = datetime.now(UTC)
    end_of_today = now.replace(hour=23, minute=59, second=0, microsecond=0)
    later_today = now + (end_of_today - now) / 2
    daniela = demo.api("/api/v1/contacts?q=daniela%40vasquezrow")["items"][0]
    made = {}
    for key, title, due in (
        ("overdue", "Chase the signed supply agreement", now - timedelta(days=2)),
        ("today", "Confirm the 48-hour delivery window", later_today),
        ("upcoming", "Quarterly review with Daniela", now + timedelta(days=6)),
    ):
        made[key] = call(
            demo,
            "POST",
            "/api/v1/followups",
            {"title": title, "due_at": due.isoformat(), "contact_id": daniela["id"]},
        )
    return made


@pytest.fixture
def page(
    app_context: BrowserContext, demo: Demo, mine: dict[str, dict[str, Any]]
) -> Iterator[Page]:
    opened = open_app(app_context, demo, "#/followups")
    yield opened
    assert opened.errors == []  # type: ignore[attr-defined]


def item(page: Page, made: dict[str, Any], within: str = "") -> Any:
    return page.locator(f'{within} li.followup[data-followup="{made["id"]}"]'.strip())


def test_my_follow_ups_by_when_they_are_due(page: Page, mine: dict[str, dict[str, Any]]) -> None:
    expect(page.locator("h1")).to_have_text("My follow-ups")
    for due, made in mine.items():
        expect(item(page, made, f".panel-due-{due}")).to_be_visible()
    overdue = item(page, mine["overdue"])
    expect(overdue).to_contain_text("overdue")
    expect(overdue.locator("a")).to_have_text("Daniela Vásquez")
    app_screenshot(page, "app-followups.png")
    no_serious_accessibility_issues(page)


def test_done_with_undo_and_snooze(page: Page, demo: Demo, mine: dict[str, dict[str, Any]]) -> None:
    overdue = mine["overdue"]
    item(page, overdue).locator(f'[data-key="done-{overdue["id"]}"]').click()
    expect(item(page, overdue)).to_have_count(0)
    expect(page.locator("#toast")).to_contain_text("Done: “Chase the signed supply agreement”")
    assert follow_up(demo, overdue["id"]).done_at is not None
    page.locator('[data-key="toast-action"]').click()
    expect(item(page, overdue, ".panel-due-overdue")).to_be_visible()
    assert follow_up(demo, overdue["id"]).done_at is None

    # Snoozed until next Monday 9:00 (local time): it leaves Overdue for Upcoming.
    row = item(page, overdue)
    row.locator("summary").click()
    no_serious_accessibility_issues(page)
    row.locator('[data-snooze="next-week"]').click()
    expect(page.locator("#toast")).to_contain_text("Snoozed")
    expect(item(page, overdue, ".panel-due-upcoming")).to_be_visible()
    snoozed = follow_up(demo, overdue["id"])
    due = snoozed.due_at.replace(tzinfo=UTC) if snoozed.due_at.tzinfo is None else snoozed.due_at
    assert due > datetime.now(UTC)
    assert due.astimezone(UTC).weekday() == 0  # a Monday (the browser's zone is London)


def test_todays_follow_ups_are_on_my_day_too(
    app_context: BrowserContext, demo: Demo, mine: dict[str, dict[str, Any]]
) -> None:
    page = open_app(app_context, demo, "#/my-day")
    today = page.locator(".panel-today")
    expect(item(page, mine["today"], ".panel-today")).to_be_visible()
    expect(today).not_to_contain_text("Quarterly review with Daniela")
    page.set_viewport_size(PHONE)
    expect(item(page, mine["today"], ".panel-today")).to_be_visible()
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    no_serious_accessibility_issues(page)
    assert page.errors == []  # type: ignore[attr-defined]
