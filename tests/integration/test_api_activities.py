"""/api/v1/activities: reading the timeline as a viewer, logging from the pane, unlog and relog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from server.config import Settings
from server.db import Database
from server.models import (
    Activity,
    ActivityParticipant,
    CaptureRule,
    Contact,
    MailboxLink,
    MailboxObservation,
    User,
)
from tests.integration.test_api_lookup import CLARA, auth, capture, token_for
from tests.support.mail import BASE_DATE, days, make_email

ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
CLARA_ADDRESS = "clara@brightline-dental.co.uk"
MESSAGE_ID = "<quote-1@brightline-dental.co.uk>"


def pane_payload(**overrides: Any) -> dict[str, Any]:
    """What the task pane sends for Clara's email to Anna."""
    payload: dict[str, Any] = {
        "message_id": MESSAGE_ID,
        "subject": "Quote for 40 chairs",
        "from": {"address": "Clara@Brightline-Dental.co.uk", "name": "Clara Jensen"},
        "to": [{"address": ANNA, "name": "Anna"}],
        "cc": [
            {"address": "dan@brightline-dental.co.uk", "name": "Dan Moss"},
            {"address": "/o=ExchangeLabs/ou=Exchange Administrative Group/cn=Recipients/cn=x"},
        ],
        "date": BASE_DATE.isoformat(),
        "body": "Hello Anna,\n\nCould you send me a quote for 40 chairs?\n\nThanks, Clara",
        "conversation_id": "AAQkADAwATM0MDAAMS1iNTcwLWI2",
    }
    payload.update(overrides)
    return payload


def clara_email(to: list[str] | None = None) -> bytes:
    return make_email(
        sender=CLARA,
        to=to or [ANNA],
        subject="Quote for 40 chairs",
        message_id=MESSAGE_ID,
        date=BASE_DATE,
    )


def activity_count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Activity)) or 0)


def test_logging_an_email_from_the_pane_captures_it_like_a_mailbox_would(
    client: FlaskClient, db: Database
) -> None:
    anna = auth(token_for(db, ANNA))
    logged = client.post("/api/v1/activities/log", json=pane_payload(), headers=anna)
    assert logged.status_code == 201, logged.get_json()
    body = logged.get_json()
    assert (body["created"], body["relogged"]) == (True, False)
    entry = body["activity"]
    assert entry["kind"] == "email"
    assert entry["direction"] == "incoming"
    assert entry["subject"] == "Quote for 40 chairs"
    assert entry["snippet"].startswith("Hello Anna, Could you send me a quote")
    assert entry["sender_address"] == CLARA_ADDRESS
    assert entry["thread_id"] is not None
    roles = {(p["role"], p["address"]) for p in entry["participants"]}
    assert roles == {
        ("from", CLARA_ADDRESS),
        ("to", ANNA),
        ("cc", "dan@brightline-dental.co.uk"),
    }
    # The outside people became contacts (and their company), as capture would make them.
    with_contacts = {p["address"]: p["contact_id"] for p in entry["participants"]}
    assert with_contacts[ANNA] is None
    assert with_contacts[CLARA_ADDRESS] is not None
    assert with_contacts["dan@brightline-dental.co.uk"] is not None
    lookup = client.get(f"/api/v1/lookup?email={CLARA_ADDRESS}", headers=anna).get_json()
    assert [c["name"] for c in lookup["contacts"]] == ["Clara Jensen"]
    assert [c["name"] for c in lookup["companies"]] == ["Brightline Dental"]
    assert [a["id"] for a in lookup["timeline"]] == [entry["id"]]
    # Seen in Anna's own import link, folder "Logged from Outlook".
    with db.session() as session:
        link = session.scalars(
            select(MailboxLink)
            .join(MailboxObservation)
            .where(MailboxObservation.activity_id == entry["id"])
        ).one()
        assert (link.kind, link.owner_address, link.messages_captured) == ("import", ANNA, 1)
    assert client.get(f"/api/v1/activities/{entry['id']}", headers=anna).get_json() == entry

    again = client.post("/api/v1/activities/log", json=pane_payload(), headers=anna)
    assert again.status_code == 200
    assert (again.get_json()["activity"]["id"], again.get_json()["created"]) == (entry["id"], False)
    assert activity_count(db) == 1


def test_logging_an_email_already_captured_returns_the_same_activity(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna, ben = auth(token_for(db, ANNA)), auth(token_for(db, BEN))
    # Ben's private mailbox, read at metadata level, has it first.
    capture(db, settings, tmp_path, BEN, [clara_email(to=[ANNA, BEN])], capture_level="metadata")
    with db.session() as session:
        session.execute(update(MailboxLink).values(visibility="private"))
        captured = session.scalars(select(Activity)).one()
        assert captured.subject == ""  # a metadata-level mailbox keeps no subject
    assert client.get(f"/api/v1/activities/{captured.id}", headers=anna).status_code == 404

    # Anna has the email too and logs it from her Outlook: the same activity, not a second one.
    mine = client.post("/api/v1/activities/log", json=pane_payload(), headers=anna)
    assert mine.status_code == 200, mine.get_json()
    assert (mine.get_json()["activity"]["id"], mine.get_json()["created"]) == (captured.id, False)
    # What the pane sent fills in what the sparser mailbox left out, and Anna now sees it.
    assert mine.get_json()["activity"]["subject"] == "Quote for 40 chairs"
    seen = client.get(f"/api/v1/activities/{captured.id}", headers=anna)
    assert (seen.status_code, seen.get_json()["level"]) == (200, "full")
    # Within capture's date tolerance a pane's slightly different date is the same email.
    later = client.post(
        "/api/v1/activities/log",
        json=pane_payload(date=(BASE_DATE + days(1)).isoformat()),
        headers=anna,
    )
    assert later.get_json()["activity"]["id"] == captured.id
    assert activity_count(db) == 1
    assert client.get(f"/api/v1/activities/{captured.id}", headers=ben).status_code == 200


def test_unlog_sticks_through_reimport_and_relog_brings_it_back(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna = auth(token_for(db, ANNA))
    capture(db, settings, tmp_path, ANNA, [clara_email()])
    with db.session() as session:
        activity_id = session.scalars(select(Activity.id)).one()

    def timeline_ids() -> list[int]:
        body = client.get(f"/api/v1/lookup?email={CLARA_ADDRESS}", headers=anna).get_json()
        return [a["id"] for a in body["timeline"]]

    assert timeline_ids() == [activity_id]
    unlogged = client.post(f"/api/v1/activities/{activity_id}/unlog", headers=anna)
    assert unlogged.status_code == 200, unlogged.get_json()
    assert unlogged.get_json()["unlogged_at"] is not None
    assert timeline_ids() == []
    assert client.get(f"/api/v1/activities/{activity_id}", headers=anna).status_code == 404

    # The same mail imported again (a resync) does not bring it back.
    capture(db, settings, tmp_path, ANNA, [clara_email()])
    assert timeline_ids() == []
    assert activity_count(db) == 1
    with db.session() as session:
        hidden = session.get(Activity, activity_id)
        assert hidden is not None
        assert (hidden.subject, hidden.snippet, hidden.raw_blob) == ("", "", None)

    relogged = client.post(f"/api/v1/activities/{activity_id}/relog", headers=anna)
    assert relogged.status_code == 200, relogged.get_json()
    assert timeline_ids() == [activity_id]
    # Its content comes back the next time a mailbox holding it is read.
    capture(db, settings, tmp_path, ANNA, [clara_email()])
    assert client.get(f"/api/v1/activities/{activity_id}", headers=anna).get_json()["subject"] == (
        "Quote for 40 chairs"
    )


def test_logging_an_unlogged_email_from_the_pane_logs_it_again(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna = auth(token_for(db, ANNA))
    capture(db, settings, tmp_path, ANNA, [clara_email()])
    with db.session() as session:
        activity_id = session.scalars(select(Activity.id)).one()
    client.post(f"/api/v1/activities/{activity_id}/unlog", headers=anna)
    logged = client.post("/api/v1/activities/log", json=pane_payload(), headers=anna)
    assert logged.status_code == 200, logged.get_json()
    body = logged.get_json()
    assert (body["activity"]["id"], body["created"], body["relogged"]) == (
        activity_id,
        False,
        True,
    )
    assert body["activity"]["subject"] == "Quote for 40 chairs"
    assert body["activity"]["snippet"].startswith("Hello Anna")


def test_a_colleagues_private_mail_is_not_there_for_you(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna, ben = auth(token_for(db, ANNA)), auth(token_for(db, BEN))
    capture(db, settings, tmp_path, ANNA, [clara_email()])
    with db.session() as session:
        session.execute(update(MailboxLink).values(visibility="private"))
        activity_id = session.scalars(select(Activity.id)).one()
        clara = session.scalar(select(Contact.id).where(Contact.name == "Clara Jensen"))
        thread = session.scalar(select(Activity.thread_id))
    missing = client.get(f"/api/v1/activities/{activity_id}", headers=ben)
    never_was = client.get("/api/v1/activities/987654", headers=ben)
    assert missing.status_code == never_was.status_code == 404
    assert missing.get_json()["error"]["message"] == f"no activity {activity_id}"
    assert client.post(f"/api/v1/activities/{activity_id}/unlog", headers=ben).status_code == 404
    assert (
        client.get(f"/api/v1/activities?contact_id={clara}", headers=ben).get_json()["items"] == []
    )
    assert (
        client.get(f"/api/v1/activities?thread_id={thread}", headers=ben).get_json()["items"] == []
    )

    # Anna unlogs it; Ben still cannot relog (or learn of) it.
    client.post(f"/api/v1/activities/{activity_id}/unlog", headers=anna)
    assert client.post(f"/api/v1/activities/{activity_id}/relog", headers=ben).status_code == 404
    with db.session() as session:
        still = session.get(Activity, activity_id)
        assert still is not None and still.unlogged_at is not None
    # For Anna the thread is there again once she relogs it.
    assert client.post(f"/api/v1/activities/{activity_id}/relog", headers=anna).status_code == 200
    items = client.get(f"/api/v1/activities?thread_id={thread}", headers=anna).get_json()["items"]
    assert [a["id"] for a in items] == [activity_id]


def test_an_explicit_log_overrides_skip_rules_but_not_blocks(
    client: FlaskClient, db: Database
) -> None:
    anna = auth(token_for(db, ANNA))
    colleague = pane_payload(
        message_id="<internal-1@northwind-supplies.com>",
        subject="About Brightline's order",
        **{"from": {"address": BEN, "name": "Ben"}},
        cc=[],
    )
    internal = client.post("/api/v1/activities/log", json=colleague, headers=anna)
    assert internal.status_code == 201, internal.get_json()
    assert internal.get_json()["activity"]["direction"] == "internal"
    # Clara's domain is on Anna's own never-log list: her explicit log still wins.
    never_logged = pane_payload(message_id="<quote-2@brightline-dental.co.uk>", cc=[])
    with db.session() as session:
        anna_id = session.scalar(select(User.id).where(User.email == ANNA))
        session.add(CaptureRule(kind="never_log", value="brightline-dental.co.uk", user_id=anna_id))
        session.add(CaptureRule(kind="block_domain", value="blocked.example"))
    assert client.post("/api/v1/activities/log", json=never_logged, headers=anna).status_code == 201
    # An admin's block is the organisation's decision: refused, and nothing is stored.
    blocked = pane_payload(
        message_id="<b-1@blocked.example>", **{"from": {"address": "x@blocked.example"}}, cc=[]
    )
    refused = client.post("/api/v1/activities/log", json=blocked, headers=anna)
    assert refused.status_code == 403
    assert "blocked_domain" in refused.get_json()["error"]["message"]
    assert activity_count(db) == 2


def test_bad_pane_payloads_name_the_field(client: FlaskClient, db: Database) -> None:
    anna = auth(token_for(db, ANNA))
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        (pane_payload(message_id="<a b@c>"), 400, "message_id"),
        (pane_payload(message_id="\u0000"), 400, "message_id"),
        (pane_payload(message_id=f"<{'x' * 700}@example.com>"), 400, "message_id"),
        (pane_payload(**{"from": {"address": "not an address"}}), 400, "from.address"),
        (pane_payload(date="2026-09-01T09:00:00"), 422, "date"),
        (pane_payload(date="9999-12-31T23:59:59-12:00"), 400, "date"),
        (pane_payload(subject="a\u0000b", body="c\u0000d"), 201, None),
        ({"message_id": "<x@y>"}, 422, "from"),
    ]
    for payload, status, field in cases:
        response = client.post("/api/v1/activities/log", json=payload, headers=anna)
        assert response.status_code == status, (payload, response.get_json())
        if status != 201:
            assert response.get_json()["error"].get("field") == field, payload
    assert client.post("/api/v1/activities/log", json=pane_payload()).status_code == 401


def test_listing_the_timeline_needs_one_subject(client: FlaskClient, db: Database) -> None:
    anna = auth(token_for(db, ANNA))
    client.post("/api/v1/activities/log", json=pane_payload(), headers=anna)
    with db.session() as session:
        clara = session.scalar(
            select(ActivityParticipant.contact_id).where(
                ActivityParticipant.address == CLARA_ADDRESS
            )
        )
        company = session.scalar(select(Contact.company_id).where(Contact.id == clara))
    assert (
        len(client.get(f"/api/v1/activities?contact_id={clara}", headers=anna).get_json()["items"])
        == 1
    )
    assert (
        len(
            client.get(f"/api/v1/activities?company_id={company}", headers=anna).get_json()["items"]
        )
        == 1
    )
    assert client.get("/api/v1/activities", headers=anna).status_code == 400
    both = client.get(f"/api/v1/activities?contact_id={clara}&company_id={company}", headers=anna)
    assert both.status_code == 400
    assert client.get("/api/v1/activities?contact_id=987654", headers=anna).status_code == 404
    assert client.get("/api/v1/activities?deal_id=987654", headers=anna).status_code == 404
    assert client.get("/api/v1/activities?thread_id=987654", headers=anna).status_code == 404
    naive = "MjAyNi0wMS0wMVQwMDowMDowMHw1"  # "2026-01-01T00:00:00|5": no time zone
    bad = client.get(f"/api/v1/activities?contact_id={clara}&cursor={naive}", headers=anna)
    assert bad.status_code == 400
    assert bad.get_json()["error"]["field"] == "cursor"
    note = client.post("/api/v1/notes", json={"body": "x", "contact_id": clara}, headers=anna)
    unlog_note = client.post(f"/api/v1/activities/{note.get_json()['id']}/unlog", headers=anna)
    assert unlog_note.status_code == 400
    assert client.get("/api/v1/activities/1").status_code == 401
