"""Outgoing webhooks against a real local HTTP receiver (http.server on loopback), on both
databases: signed deliveries of each event, retries with the job queue's backoff, the delivery
log, and the automatic pause after repeated failures."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from server.config import Settings
from server.crm.webhooks import announce_due_follow_ups
from server.db import Database
from server.mail_ingest.worker import Worker
from server.mail_out.webhooks import PAUSE_AFTER
from server.models import Job, Webhook, utcnow
from tests.integration.test_api_lookup import auth, capture, token_for
from tests.support.mail import make_email

BOSS = "boss@northwind-supplies.com"
ANNA = "anna@northwind-supplies.com"


class Receiver:
    """A webhook receiver: answers `statuses` in turn (then 200), keeps what it got."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"headers": dict(self.headers), "body": body})
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/rapport"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[str]:
        return [r["headers"]["X-Rapport-Event"] for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()
    found.server.server_close()


def subscribe(client: FlaskClient, boss: dict[str, str], url: str, *events: str) -> tuple[int, str]:
    made = client.post(
        "/api/v1/admin/webhooks", json={"url": url, "events": list(events)}, headers=boss
    )
    assert made.status_code == 201, made.get_json()
    return made.get_json()["webhook"]["id"], made.get_json()["secret"]


def run_due(db: Database, settings: Settings) -> None:
    """The worker once, with every waiting job made due (the backoff skipped, not removed)."""
    with db.session() as session:
        session.execute(update(Job).where(Job.status == "queued").values(run_after=utcnow()))
    Worker(db, settings, idle_sleep=0).run(once=True)


def verified(request: dict[str, Any], secret: str) -> dict[str, Any]:
    stamp = request["headers"]["X-Rapport-Timestamp"]
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + request["body"], hashlib.sha256)
    assert request["headers"]["X-Rapport-Signature"] == "sha256=" + expected.hexdigest()
    return dict(json.loads(request["body"]))


def test_events_are_delivered_signed_and_retried(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path, receiver: Receiver
) -> None:
    boss = auth(token_for(db, BOSS, role="admin"))
    hook, secret = subscribe(
        client, boss, receiver.url, "contact.created", "contact.updated", "deal.stage_changed",
        "activity.captured", "follow_up.due",
    )  # fmt: skip
    receiver.statuses = [500]  # the first delivery fails once
    made = client.post(
        "/api/v1/contacts",
        json={"name": "Clara Jensen", "emails": ["clara@brightline-dental.co.uk"]},
        headers=boss,
    ).get_json()
    run_due(db, settings)
    assert receiver.events() == ["contact.created"]
    log = client.get(f"/api/v1/admin/webhooks/{hook}/deliveries", headers=boss).get_json()["items"]
    assert (log[0]["status"], log[0]["response_code"], log[0]["error"]) == (
        "retrying", 500, "the receiver answered 500",
    )  # fmt: skip
    run_due(db, settings)
    first, again = receiver.requests
    assert first["headers"]["X-Rapport-Delivery"] == again["headers"]["X-Rapport-Delivery"]
    event = verified(again, secret)
    assert event["event"] == "contact.created" and event["data"]["contact_id"] == made["id"]
    assert event["data"]["emails"] == ["clara@brightline-dental.co.uk"]
    log = client.get(f"/api/v1/admin/webhooks/{hook}/deliveries", headers=boss).get_json()["items"]
    assert (log[0]["status"], log[0]["attempts"], log[0]["response_code"]) == ("delivered", 2, 200)

    # A deal moved, a contact edited, mail captured, a follow-up come due: one event each.
    deal = client.post(
        "/api/v1/deals", json={"title": "Chairs", "contact_ids": [made["id"]]}, headers=boss
    ).get_json()
    stages = client.get("/api/v1/pipelines", headers=boss).get_json()["items"][0]["stages"]
    client.post(
        f"/api/v1/deals/{deal['id']}/stage", json={"stage_id": stages[2]["id"]}, headers=boss
    )
    contact = client.get(f"/api/v1/contacts/{made['id']}", headers=boss).get_json()
    client.patch(
        f"/api/v1/contacts/{made['id']}",
        json={"version": contact["version"], "title": "Owner"},
        headers=boss,
    )
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [make_email(sender="Clara Jensen <clara@brightline-dental.co.uk>", to=ANNA)],
    )
    due = (utcnow() - timedelta(minutes=1)).isoformat()
    client.post(
        "/api/v1/followups",
        json={"title": "Call", "due_at": due, "contact_id": made["id"]},
        headers=boss,
    )
    with db.session() as session:
        assert announce_due_follow_ups(session) == 1
        assert announce_due_follow_ups(session) == 0, "announced once"
    run_due(db, settings)
    events = {verified(r, secret)["event"]: verified(r, secret)["data"] for r in receiver.requests}
    assert set(events) == {
        "contact.created", "deal.stage_changed", "contact.updated", "activity.captured", "follow_up.due",
    }  # fmt: skip
    assert events["deal.stage_changed"]["to_stage_id"] == stages[2]["id"]
    assert len(events["activity.captured"]["activity_ids"]) == 1
    assert events["follow_up.due"]["title"] == "Call"


def test_a_receiver_that_keeps_failing_is_paused_and_resumed_by_an_admin(
    client: FlaskClient, db: Database, settings: Settings, receiver: Receiver
) -> None:
    boss = auth(token_for(db, BOSS, role="admin"))
    hook, _ = subscribe(client, boss, receiver.url, "contact.created")
    receiver.statuses = [503] * 1000
    for n in range(PAUSE_AFTER):
        client.post(
            "/api/v1/contacts",
            json={"name": f"P{n}", "emails": [f"p{n}@example.org"]},
            headers=boss,
        )
    for _ in range(8):  # every attempt of every delivery
        run_due(db, settings)
    with db.read_session() as session:
        webhook = session.get(Webhook, hook)
        assert webhook is not None and webhook.active is False and webhook.paused_at is not None
    log = client.get(f"/api/v1/admin/webhooks/{hook}/deliveries", headers=boss).get_json()["items"]
    assert {d["status"] for d in log} == {"failed"} and all(d["attempts"] == 6 for d in log)
    # paused: new events are not even queued; an admin resumes it and a test goes through
    before = len(receiver.requests)
    client.post(
        "/api/v1/contacts", json={"name": "Later", "emails": ["later@example.org"]}, headers=boss
    )
    run_due(db, settings)
    assert len(receiver.requests) == before
    resumed = client.patch(f"/api/v1/admin/webhooks/{hook}", json={"active": True}, headers=boss)
    assert resumed.get_json()["active"] is True and resumed.get_json()["consecutive_failures"] == 0
    receiver.statuses = []
    assert client.post(f"/api/v1/admin/webhooks/{hook}/test", headers=boss).get_json() == {
        "queued": 1
    }
    run_due(db, settings)
    assert receiver.events()[-1] == "ping"


def test_bad_subscriptions_are_refused_naming_the_field(client: FlaskClient, db: Database) -> None:
    boss = auth(token_for(db, BOSS, role="admin"))
    member = auth(token_for(db, ANNA))
    plain = client.post(
        "/api/v1/admin/webhooks",
        json={"url": "http://hooks.example.com/x", "events": ["contact.created"]},
        headers=boss,
    )
    assert plain.status_code == 400 and plain.get_json()["error"]["field"] == "url"
    unknown = client.post(
        "/api/v1/admin/webhooks",
        json={"url": "https://hooks.example.com/x", "events": ["gossip"]},
        headers=boss,
    )
    assert unknown.status_code == 422
    assert client.get("/api/v1/admin/webhooks", headers=member).status_code == 403
    with db.read_session() as session:
        assert session.scalars(select(Webhook)).all() == []
