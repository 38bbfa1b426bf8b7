"""/api/v1/followups: tasks with due dates in the user's own day, and Contact.next_follow_up_at."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from server.db import Database
from server.models import Contact, User, utcnow
from tests.integration.test_api_deals import make_contact
from tests.integration.test_api_lookup import auth, token_for

ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
LA = ZoneInfo("America/Los_Angeles")


def contact_state(db: Database, contact_id: int) -> tuple[datetime | None, int]:
    with db.session() as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        return contact.next_follow_up_at, contact.version


def test_follow_up_lifecycle(client: FlaskClient, db: Database) -> None:
    anna = auth(token_for(db, ANNA))
    clara = make_contact(db, "Clara", "clara@brightline-dental.co.uk")
    due = datetime(2030, 5, 4, 9, 30, tzinfo=LA)
    created = client.post(
        "/api/v1/followups",
        json={"title": "Send the quote", "due_at": due.isoformat(), "contact_id": clara},
        headers=anna,
    )
    assert created.status_code == 201, created.get_json()
    follow_up = created.get_json()
    assert datetime.fromisoformat(follow_up["due_at"]) == due
    assert follow_up["owner_id"] is not None
    assert (follow_up["done_at"], follow_up["version"]) == (None, 1)
    url = f"/api/v1/followups/{follow_up['id']}"
    assert client.get(url, headers=anna).get_json() == follow_up

    renamed = client.patch(
        url, json={"version": 1, "title": "Send the revised quote"}, headers=anna
    )
    assert renamed.status_code == 200, renamed.get_json()
    assert renamed.get_json()["version"] == 2
    stale = client.patch(url, json={"version": 1, "title": "Lost update"}, headers=anna)
    assert stale.status_code == 409
    assert client.get(url, headers=anna).get_json()["title"] == "Send the revised quote"

    later = datetime(2030, 5, 6, 9, 0, tzinfo=UTC)
    snoozed = client.post(f"{url}/snooze", json={"until": later.isoformat()}, headers=anna)
    assert snoozed.status_code == 200, snoozed.get_json()
    body = snoozed.get_json()
    assert datetime.fromisoformat(body["due_at"]) == later
    assert datetime.fromisoformat(body["snoozed_until"]) == later

    done = client.post(f"{url}/done", json={"version": body["version"]}, headers=anna)
    assert done.status_code == 200
    assert done.get_json()["done_at"] is not None
    again = client.post(f"{url}/done", json={}, headers=anna).get_json()
    assert again["done_at"] == done.get_json()["done_at"]
    refused = client.post(f"{url}/snooze", json={"until": later.isoformat()}, headers=anna)
    assert refused.status_code == 409
    reopened = client.patch(url, json={"version": again["version"], "done": False}, headers=anna)
    assert reopened.get_json()["done_at"] is None

    assert client.delete(url, headers=anna).status_code == 204
    assert client.get(url, headers=anna).status_code == 404
    assert client.delete(url, headers=anna).status_code == 404


def test_due_filters_use_the_users_own_day(
    client: FlaskClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 23:30 in Los Angeles it is already tomorrow in UTC: "today" must still be LA's day."""
    anna, ben = auth(token_for(db, ANNA)), auth(token_for(db, BEN))
    with db.session() as session:
        session.execute(
            update(User).where(User.email == ANNA).values(time_zone="America/Los_Angeles")
        )
    clara = make_contact(db, "Clara", "clara@brightline-dental.co.uk")
    now = datetime(2026, 3, 10, 23, 30, tzinfo=LA)  # 06:30 UTC on the 11th (PDT, UTC-7)
    monkeypatch.setattr("server.crm.followups.utcnow", lambda: now.astimezone(UTC))

    def add(title: str, due: datetime, headers: dict[str, str] = anna) -> int:
        response = client.post(
            "/api/v1/followups",
            json={"title": title, "due_at": due.isoformat(), "contact_id": clara},
            headers=headers,
        )
        assert response.status_code == 201, response.get_json()
        return int(response.get_json()["id"])

    yesterday = add("yesterday", datetime(2026, 3, 9, 12, 0, tzinfo=LA))
    this_morning = add("this morning", datetime(2026, 3, 10, 9, 0, tzinfo=LA))  # UTC: the 10th
    tonight = add("tonight", datetime(2026, 3, 10, 20, 0, tzinfo=LA))  # UTC: the 11th
    tomorrow = add("tomorrow", datetime(2026, 3, 11, 8, 0, tzinfo=LA))  # UTC: the 11th
    ticked = add("done already", datetime(2026, 3, 8, 8, 0, tzinfo=LA))
    client.post(f"/api/v1/followups/{ticked}/done", json={}, headers=anna)
    bens = add("ben's", datetime(2026, 3, 10, 10, 0, tzinfo=LA), headers=ben)

    def titles(query: str, headers: dict[str, str] = anna) -> list[str]:
        response = client.get(f"/api/v1/followups?{query}", headers=headers)
        assert response.status_code == 200, response.get_json()
        return [f["title"] for f in response.get_json()["items"]]

    assert titles("mine=1&due=overdue") == ["yesterday"]
    assert titles("mine=1&due=today") == ["this morning", "tonight"]
    assert titles("mine=1&due=upcoming") == ["tomorrow"]
    assert titles("due=today") == ["this morning", "ben's", "tonight"]
    assert titles("mine=1&status=done") == ["done already"]
    assert titles("mine=true&status=all&limit=2") == ["done already", "yesterday"]
    # Ben's day is UTC's: for him it is already the 11th.
    assert titles("due=today", headers=ben) == ["tonight", "tomorrow"]
    assert titles("due=overdue", headers=ben) == ["yesterday", "this morning", "ben's"]
    assert {yesterday, this_morning, tonight, tomorrow, bens} == {
        f["id"] for f in client.get("/api/v1/followups?limit=200", headers=anna).get_json()["items"]
    }


def test_paging_follow_ups(client: FlaskClient, db: Database) -> None:
    anna = auth(token_for(db, ANNA))
    clara = make_contact(db, "Clara", "clara@brightline-dental.co.uk")
    start = utcnow() + timedelta(days=1)
    for n in range(12):
        client.post(
            "/api/v1/followups",
            json={
                "title": f"#{n}",
                "due_at": (start + timedelta(hours=n // 3)).isoformat(),
                "contact_id": clara,
            },
            headers=anna,
        )
    seen: list[str] = []
    cursor = ""
    while True:
        body = client.get(f"/api/v1/followups?limit=5{cursor}", headers=anna).get_json()
        seen += [f["title"] for f in body["items"]]
        if body["next_cursor"] is None:
            break
        cursor = f"&cursor={body['next_cursor']}"
    assert seen == [f"#{n}" for n in range(12)]


def test_next_follow_up_at_follows_the_earliest_open_one(client: FlaskClient, db: Database) -> None:
    anna = auth(token_for(db, ANNA))
    clara = make_contact(db, "Clara", "clara@brightline-dental.co.uk")
    dan = make_contact(db, "Dan", "dan@brightline-dental.co.uk")
    _, version = contact_state(db, clara)
    soon, later = utcnow() + timedelta(days=1), utcnow() + timedelta(days=5)

    def add(due: datetime) -> dict[str, object]:
        response = client.post(
            "/api/v1/followups",
            json={"title": "Call", "due_at": due.isoformat(), "contact_id": clara},
            headers=anna,
        )
        assert response.status_code == 201
        body: dict[str, object] = response.get_json()
        return body

    first = add(later)
    assert contact_state(db, clara) == (later, version)  # derived: the contact's version stays
    second = add(soon)
    assert contact_state(db, clara)[0] == soon

    client.post(f"/api/v1/followups/{second['id']}/done", json={}, headers=anna)
    assert contact_state(db, clara)[0] == later
    even_later = later + timedelta(days=2)
    client.post(
        f"/api/v1/followups/{first['id']}/snooze",
        json={"until": even_later.isoformat()},
        headers=anna,
    )
    assert contact_state(db, clara)[0] == even_later

    moved = client.patch(
        f"/api/v1/followups/{first['id']}", json={"version": 2, "contact_id": dan}, headers=anna
    )
    assert moved.status_code == 200, moved.get_json()
    assert contact_state(db, clara)[0] is None
    assert contact_state(db, dan)[0] == even_later
    client.delete(f"/api/v1/followups/{first['id']}", headers=anna)
    assert contact_state(db, dan)[0] is None
    # Shown where the pane shows it.
    add(soon)
    lookup = client.get(
        "/api/v1/lookup?email=clara@brightline-dental.co.uk", headers=anna
    ).get_json()
    assert datetime.fromisoformat(lookup["contacts"][0]["next_follow_up_at"]) == soon


def test_bad_follow_ups_are_refused(client: FlaskClient, db: Database) -> None:
    anna = auth(token_for(db, ANNA))
    clara = make_contact(db, "Clara", "clara@brightline-dental.co.uk")
    due = (utcnow() + timedelta(days=1)).isoformat()
    cases: list[tuple[dict[str, object], int, str | None]] = [
        ({"title": "x", "due_at": "2030-01-01T09:00:00", "contact_id": clara}, 422, "due_at"),
        ({"title": "x", "due_at": due}, 400, None),
        ({"title": "x", "due_at": due, "contact_id": 987654}, 400, "contact_id"),
        ({"title": "x", "due_at": due, "deal_id": 987654}, 400, "deal_id"),
        ({"title": "x", "due_at": due, "contact_id": clara, "owner_id": 987654}, 400, "owner_id"),
        ({"title": "\u0000", "due_at": due, "contact_id": clara}, 400, "title"),
        ({"title": "x", "due_at": "9999-12-31T23:59:59-12:00", "contact_id": clara}, 400, "due_at"),
    ]
    for body, status, field in cases:
        response = client.post("/api/v1/followups", json=body, headers=anna)
        assert response.status_code == status, (body, response.get_json())
        assert response.get_json()["error"].get("field") == field, body
    made = client.post(
        "/api/v1/followups", json={"title": "x", "due_at": due, "contact_id": clara}, headers=anna
    ).get_json()
    past = client.post(
        f"/api/v1/followups/{made['id']}/snooze",
        json={"until": "2020-01-01T00:00:00Z"},
        headers=anna,
    )
    assert past.status_code == 400
    assert past.get_json()["error"]["field"] == "until"
    orphan = client.patch(
        f"/api/v1/followups/{made['id']}", json={"version": 1, "contact_id": None}, headers=anna
    )
    assert orphan.status_code == 400
    assert client.get("/api/v1/followups?due=someday", headers=anna).status_code == 422
    assert client.get("/api/v1/followups").status_code == 401
