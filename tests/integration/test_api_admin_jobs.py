"""/api/v1/admin/jobs: an admin sees dead jobs with the error that killed them, never a payload."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from server import jobs
from server.crm.users import add_user, create_token
from server.db import Database
from server.models import utcnow

ADMIN = "boss@northwind-supplies.com"
ANNA = "anna@northwind-supplies.com"
SECRET_MAIL = b"Subject: salary review\r\n\r\nconfidential body"


@pytest.fixture
def tokens(db: Database) -> dict[str, str]:
    issued = {}
    with db.session() as session:
        for address, role in [(ADMIN, "admin"), (ANNA, "member")]:
            user = add_user(session, address, role=role)
            issued[address] = create_token(session, user, expires_in=timedelta(hours=1)).plaintext
    return issued


def get(client: FlaskClient, tokens: dict[str, str], url: str, who: str = ADMIN) -> Any:
    return client.get(url, headers={"Authorization": f"Bearer {tokens[who]}"})


def make_dead_job(db: Database) -> int:
    """A drop-address capture that failed on every attempt."""
    payload = {"link_id": 7, "raw": base64.b64encode(SECRET_MAIL).decode()}
    with db.session() as session:
        jobs.enqueue(session, "capture_drop", payload, max_attempts=2)
    for attempt in range(2):
        # The retry waits out its backoff; the clock is moved past it.
        later = utcnow() + timedelta(days=attempt)
        job = jobs.claim(db, owner="test-runner", kinds=["capture_drop"], now=later)
        assert job is not None
        jobs.fail(db, job, f"ValueError: broken on attempt {attempt + 1}")
    return job.id


def test_dead_jobs_are_listed_with_their_last_error_and_no_payload(
    client: FlaskClient, db: Database, tokens: dict[str, str]
) -> None:
    dead_id = make_dead_job(db)
    with db.session() as session:
        queued_id = jobs.enqueue(session, "sync_link", {"link_id": 3}, unique_key="sync:3")
    answer = get(client, tokens, "/api/v1/admin/jobs?status=dead")
    assert answer.status_code == 200
    [dead] = answer.get_json()["items"]
    assert (dead["id"], dead["kind"], dead["status"]) == (dead_id, "capture_drop", "dead")
    assert (dead["attempts"], dead["max_attempts"]) == (2, 2)
    assert dead["last_error"] == "ValueError: broken on attempt 2"
    assert dead["finished_at"] is not None and dead["link_id"] == 7
    assert "payload" not in dead and "raw" not in dead
    for body in (
        answer.get_data(as_text=True),
        get(client, tokens, "/api/v1/admin/jobs").get_data(as_text=True),
    ):
        assert "confidential" not in body
        assert base64.b64encode(SECRET_MAIL).decode()[:40] not in body

    queued = get(client, tokens, "/api/v1/admin/jobs?status=queued").get_json()["items"]
    assert [(j["id"], j["kind"], j["link_id"]) for j in queued] == [(queued_id, "sync_link", 3)]
    assert queued[0]["run_after"] is not None
    everything_pending = get(client, tokens, "/api/v1/admin/jobs").get_json()["items"]
    assert [j["id"] for j in everything_pending] == [queued_id, dead_id], "newest first"


def test_done_jobs_are_left_out_unless_asked_for_and_pages_hold(
    client: FlaskClient, db: Database, tokens: dict[str, str]
) -> None:
    with db.session() as session:
        for n in range(5):
            jobs.enqueue(session, "record", {"n": n})
    jobs.Runner(db, {"record": lambda _session, _payload: None}).run(once=True)
    assert get(client, tokens, "/api/v1/admin/jobs").get_json()["items"] == []
    first = get(client, tokens, "/api/v1/admin/jobs?status=done&limit=2").get_json()
    ids = [j["id"] for j in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = get(client, tokens, f"/api/v1/admin/jobs?status=done&limit=2&cursor={cursor}")
        ids += [j["id"] for j in page.get_json()["items"]]
        cursor = page.get_json()["next_cursor"]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 5
    kind = get(client, tokens, "/api/v1/admin/jobs?status=done&kind=other").get_json()
    assert kind["items"] == []


@pytest.mark.parametrize(
    ("query", "field"),
    [("?status=zombie", "status"), ("?kind=a%00b", "kind"), ("?limit=0", "limit")],
)
def test_bad_filters_are_refused_naming_them(
    client: FlaskClient, tokens: dict[str, str], query: str, field: str
) -> None:
    answer = get(client, tokens, f"/api/v1/admin/jobs{query}")
    assert answer.status_code == 422
    assert answer.get_json()["error"]["field"] == field


def test_members_do_not_see_the_queue(client: FlaskClient, tokens: dict[str, str]) -> None:
    assert get(client, tokens, "/api/v1/admin/jobs", who=ANNA).status_code == 403
