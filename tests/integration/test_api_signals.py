"""/api/v1/signals and /api/v1/admin/signal-settings on both databases: the to-do list, privacy,
snoozes and dismissals, settings, and signals kept current by the worker after capture."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete as sa_delete
from sqlalchemy import func, select, update

from server.config import Settings
from server.crm.deals import DealInput, create_deal
from server.crm.signals import store
from server.crm.signals.store import refresh_dirty
from server.crm.signals.upkeep import (
    RECOMPUTE_JOB,
    REFRESH_JOB,
    TICK_JOB,
    recompute_all,
    schedule,
    tick,
)
from server.crm.viewer import Viewer
from server.db import Database
from server.mail_ingest.worker import Worker
from server.models import (
    CompanyTag,
    Contact,
    ContactEmail,
    Deal,
    Job,
    MailboxLink,
    SignalDirty,
    Stage,
    User,
    utcnow,
)
from tests.conftest import Cli
from tests.integration.test_api_lookup import auth, capture, token_for
from tests.support.mail import make_email

ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
BOSS = "boss@northwind-supplies.com"
CLARA = "Clara Jensen <clara@brightline-dental.co.uk>"
DAN = "Dan Okafor <dan@brightline-dental.co.uk>"


def ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)


def awaiting_and_unanswered() -> list[bytes]:
    """Anna wrote to Clara ten days ago and heard nothing; Dan wrote to Anna and got no answer."""
    return [
        make_email(
            sender=ANNA,
            to=CLARA,
            subject="Your quote",
            message_id="<quote@northwind-supplies.com>",
            date=ago(10),
        ),
        make_email(
            sender=DAN,
            to=ANNA,
            subject="Delivery dates?",
            message_id="<dates@brightline-dental.co.uk>",
            date=ago(9),
        ),
    ]


def drain(db: Database) -> None:
    with db.session() as session:
        refresh_dirty(session, limit=1000)


def listed(client: FlaskClient, headers: dict[str, str], query: str = "mine=1") -> list[Any]:
    response = client.get(f"/api/v1/signals?{query}", headers=headers)
    assert response.status_code == 200, response.get_json()
    return list(response.get_json()["items"])


def test_my_day_names_the_contact_the_kind_the_reason_and_the_date(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna, ben = auth(token_for(db, ANNA)), auth(token_for(db, BEN))
    capture(db, settings, tmp_path, ANNA, awaiting_and_unanswered())
    assert listed(client, anna) == []  # not recomputed yet: capture only marked the contacts
    drain(db)
    items = listed(client, anna)
    assert [(i["kind"], i["contact"]["name"], i["contact"]["address"]) for i in items] == [
        ("awaiting_reply", "Clara Jensen", "clara@brightline-dental.co.uk"),
        ("unanswered", "Dan Okafor", "dan@brightline-dental.co.uk"),
    ]
    awaiting = items[0]
    assert awaiting["key"].startswith("awaiting_reply:")
    assert datetime.fromisoformat(awaiting["due_at"]) <= utcnow()
    assert awaiting["reason"]["summary"].startswith("No reply to the email sent on")
    assert len(awaiting["reason"]["activity_ids"]) == 1
    assert awaiting["reason"]["facts"]["business_days"] == 2
    assert awaiting["company"]["name"]  # Brightline Dental, from the domain
    assert awaiting["owner_id"] is not None
    # the emails it cites are Anna's, shared with the team: Ben sees them, but they are not his
    assert listed(client, ben) == []
    assert [i["key"] for i in listed(client, ben, "mine=0")] == [i["key"] for i in items]
    assert [i["kind"] for i in listed(client, anna, "kind=unanswered")] == ["unanswered"]
    first = client.get("/api/v1/signals?mine=1&limit=1", headers=anna).get_json()
    assert [i["key"] for i in first["items"]] == [items[0]["key"]]
    rest = client.get(
        f"/api/v1/signals?mine=1&limit=1&cursor={first['next_cursor']}", headers=anna
    ).get_json()
    assert [i["key"] for i in rest["items"]] == [items[1]["key"]]
    assert rest["next_cursor"] is None
    # the task pane's lookup of an email to Clara carries her signal, on its first page only
    looked = client.get("/api/v1/lookup?email=clara@brightline-dental.co.uk&limit=1", headers=anna)
    assert looked.status_code == 200
    body = looked.get_json()
    assert [(s["kind"], s["contact"]["name"]) for s in body["signals"]] == [
        ("awaiting_reply", "Clara Jensen")
    ]
    assert body["signals"][0]["key"] == awaiting["key"]
    # Ben may see the emails it cites (Anna's, shared), so his pane shows it too
    assert [s["key"] for s in lookup_signals(client, ben, "clara@brightline-dental.co.uk")] == [
        awaiting["key"]
    ]
    # a snooze takes it off Anna's pane, not Ben's
    until = (utcnow() + timedelta(days=1)).isoformat()
    snoozed = client.post(
        f"/api/v1/signals/{awaiting['key']}/snooze", json={"until": until}, headers=anna
    )
    assert snoozed.status_code == 200
    assert lookup_signals(client, anna, "clara@brightline-dental.co.uk") == []
    assert len(lookup_signals(client, ben, "clara@brightline-dental.co.uk")) == 1


def lookup_signals(client: FlaskClient, headers: dict[str, str], address: str) -> list[Any]:
    response = client.get(f"/api/v1/lookup?email={address}", headers=headers)
    assert response.status_code == 200, response.get_json()
    return list(response.get_json()["signals"])


def test_a_reply_clears_the_signal_when_the_worker_runs(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna = auth(token_for(db, ANNA))
    capture(db, settings, tmp_path, ANNA, awaiting_and_unanswered())
    Worker(db, settings, idle_sleep=0).run(once=True)
    assert [i["kind"] for i in listed(client, anna)] == ["awaiting_reply", "unanswered"]
    reply = make_email(
        sender="Clara Jensen <clara.jensen@gmail.com>",  # her other address
        to=ANNA,
        subject="Re: Your quote",
        in_reply_to="<quote@northwind-supplies.com>",
        date=ago(1),
    )
    with db.session() as session:  # the gmail address is Clara's too
        clara = session.scalars(select(Contact).where(Contact.name == "Clara Jensen")).one()
        session.add(ContactEmail(contact_id=clara.id, address="clara.jensen@gmail.com"))
    capture(db, settings, tmp_path / "more", ANNA, [reply])
    with db.read_session() as session:
        assert (session.scalar(select(func.count()).select_from(SignalDirty)) or 0) > 0
    Worker(db, settings, idle_sleep=0).run(once=True)
    with db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(SignalDirty)) == 0
    kinds = [i["kind"] for i in listed(client, anna)]
    assert "awaiting_reply" not in kinds and "unanswered" in kinds


def test_private_mail_never_shows_through_a_signal(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna, ben = auth(token_for(db, ANNA)), auth(token_for(db, BEN))
    boss = auth(token_for(db, BOSS, role="admin"))
    capture(db, settings, tmp_path, ANNA, awaiting_and_unanswered())
    with db.session() as session:
        session.execute(update(MailboxLink).values(visibility="private"))
    drain(db)
    mine = listed(client, anna)
    assert len(mine) == 2
    assert listed(client, ben, "mine=0") == []
    assert listed(client, boss, "mine=0") == []  # private means private, for admins too
    assert len(lookup_signals(client, anna, "clara@brightline-dental.co.uk")) == 1
    assert lookup_signals(client, ben, "clara@brightline-dental.co.uk") == []
    assert lookup_signals(client, boss, "clara@brightline-dental.co.uk") == []
    key = mine[0]["key"]
    until = (utcnow() + timedelta(days=2)).isoformat()
    refused = client.post(f"/api/v1/signals/{key}/snooze", json={"until": until}, headers=ben)
    assert refused.status_code == 404
    assert client.post(f"/api/v1/signals/{key}/dismiss", json={}, headers=ben).status_code == 404


def test_snooze_dismiss_and_take_back_are_per_user(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna, ben = auth(token_for(db, ANNA)), auth(token_for(db, BEN))
    capture(db, settings, tmp_path, ANNA, awaiting_and_unanswered())
    drain(db)
    key = listed(client, anna)[0]["key"]
    url = f"/api/v1/signals/{key}"
    until = utcnow() + timedelta(days=3)
    snoozed = client.post(f"{url}/snooze", json={"until": until.isoformat()}, headers=anna)
    assert snoozed.status_code == 200, snoozed.get_json()
    body = snoozed.get_json()
    assert (body["key"], body["state"]) == (key, "snoozed")
    assert datetime.fromisoformat(body["until"]) == until.replace(microsecond=until.microsecond)
    assert key not in [i["key"] for i in listed(client, anna)]
    assert key in [i["key"] for i in listed(client, ben, "mine=0")]  # Ben's list is his own
    assert client.delete(f"{url}/snooze", headers=anna).status_code == 204
    assert key in [i["key"] for i in listed(client, anna)]
    dismissed = client.post(f"{url}/dismiss", json={}, headers=anna)
    assert dismissed.get_json() == {"key": key, "state": "dismissed", "until": None}
    assert key not in [i["key"] for i in listed(client, anna)]
    assert client.post(f"{url}/dismiss", headers=anna).status_code == 200  # no body is fine
    assert client.delete(f"{url}/snooze", headers=anna).status_code == 204  # not snoozed: no-op
    assert key not in [i["key"] for i in listed(client, anna)]
    assert client.delete(f"{url}/dismiss", headers=anna).status_code == 204
    assert key in [i["key"] for i in listed(client, anna)]

    past = client.post(
        f"{url}/snooze", json={"until": (utcnow() - timedelta(hours=1)).isoformat()}, headers=anna
    )
    assert past.status_code == 400 and past.get_json()["error"]["field"] == "until"
    naive = client.post(f"{url}/snooze", json={"until": "2030-01-01T09:00:00"}, headers=anna)
    assert naive.status_code == 422
    far = client.post(f"{url}/snooze", json={"until": "9999-12-31T23:59:59-12:00"}, headers=anna)
    assert far.status_code == 400
    for missing in ("awaiting_reply:999999", "not a key", "x" * 300):
        answer = client.post(f"/api/v1/signals/{missing}/dismiss", json={}, headers=anna)
        assert answer.status_code == 404, missing
    bad_kind = client.get("/api/v1/signals?kind=gossip", headers=anna)
    assert bad_kind.status_code == 422


def test_admins_change_the_thresholds_and_everything_is_recomputed(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna, boss = auth(token_for(db, ANNA)), auth(token_for(db, BOSS, role="admin"))
    assert client.get("/api/v1/admin/signal-settings", headers=anna).status_code == 403
    assert client.put("/api/v1/admin/signal-settings", json={}, headers=anna).status_code == 403
    current = client.get("/api/v1/admin/signal-settings", headers=boss).get_json()
    assert current["awaiting_reply_days"] == 2 and current["work_days"] == [0, 1, 2, 3, 4]
    assert current["deal_rot_days"] is None

    capture(db, settings, tmp_path, ANNA, awaiting_and_unanswered())
    drain(db)
    before = {i["kind"]: i["due_at"] for i in listed(client, anna)}
    changed = client.put(
        "/api/v1/admin/signal-settings",
        json={"awaiting_reply_days": 1, "time_zone": "Europe/Berlin", "deal_rot_days": 10},
        headers=boss,
    )
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert (body["awaiting_reply_days"], body["time_zone"], body["deal_rot_days"]) == (
        1,
        "Europe/Berlin",
        10,
    )
    assert client.get("/api/v1/admin/signal-settings", headers=boss).get_json() == body
    cleared = client.put(
        "/api/v1/admin/signal-settings", json={"deal_rot_days": None}, headers=boss
    )
    assert cleared.get_json()["deal_rot_days"] is None
    with db.read_session() as session:
        queued = session.scalars(select(Job.kind).where(Job.status == "queued")).all()
    assert RECOMPUTE_JOB in queued
    recompute_all(db)
    after = {i["kind"]: i["due_at"] for i in listed(client, anna)}
    assert after["awaiting_reply"] < before["awaiting_reply"]
    assert after["unanswered"] == before["unanswered"]

    for wrong, field in (
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"work_start": "18:00"}, "work_end"),
        ({"going_cold_stages": ["vip"]}, "going_cold_stages"),
    ):
        refused = client.put("/api/v1/admin/signal-settings", json=wrong, headers=boss)
        assert refused.status_code == 400, wrong
        assert refused.get_json()["error"]["field"] == field
    malformed: list[dict[str, Any]] = [
        {"awaiting_reply_days": -1},
        {"enabled": ["gossip"]},
        {"colour": "red"},
    ]
    for wrong in malformed:
        refused = client.put("/api/v1/admin/signal-settings", json=wrong, headers=boss)
        assert refused.status_code == 422, wrong


def chairs_and_fit_out(db: Database, settings: Settings, tmp_path: Path) -> tuple[int, int, int]:
    """Clara's company: "40 chairs" open and 30 days in a 14-day stage, and "Fit-out" won for
    80,000. Returns (the open deal, the won deal, the company)."""
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [
            make_email(sender=CLARA, to=ANNA, subject="Chairs", date=ago(40)),
            make_email(sender=ANNA, to=CLARA, subject="Re: Chairs", date=ago(39)),
        ],
    )
    with db.session() as session:
        user = session.scalars(select(User).where(User.email == ANNA)).one()
        clara = session.scalars(select(Contact).where(Contact.name == "Clara Jensen")).one()
        viewer = Viewer.of(user)
        given = frozenset({"title", "amount", "company_id", "contact_ids", "owner_id"})
        rotting = create_deal(
            session,
            viewer,
            DealInput(
                title="40 chairs",
                amount="4000",
                company_id=clara.company_id,
                contact_ids=[clara.id],
                owner_id=user.id,
                given=given,
            ),
        )
        big = create_deal(
            session,
            viewer,
            DealInput(
                title="Fit-out",
                amount="80000",
                company_id=clara.company_id,
                contact_ids=[clara.id],
                owner_id=user.id,
                given=given,
            ),
        )
        session.execute(update(Stage).values(rot_days=14))
        session.execute(update(Deal).where(Deal.id == rotting.id).values(stage_entered_at=ago(30)))
        won_stage = session.scalar(select(Stage.id).where(Stage.outcome == "won"))
        session.execute(
            update(Deal)
            .where(Deal.id == big.id)
            .values(status="won", stage_id=won_stage, closed_at=ago(5))
        )
        company_id = clara.company_id
    return rotting.id, big.id, company_id


def test_rotting_deals_and_top_customers(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path, cli: Cli
) -> None:
    anna = auth(token_for(db, ANNA))
    _rotting, _big, company_id = chairs_and_fit_out(db, settings, tmp_path)
    result = cli("signals", "recompute")
    assert result.exit_code == 0, result.output
    assert "1 open deals" in result.output
    items = {i["kind"]: i for i in listed(client, anna)}
    deal = items["deal_rotting"]
    assert deal["deal"]["name"] == "40 chairs"
    assert deal["contact"]["name"] == "Clara Jensen"  # the deal's contact
    assert "for 14 days" in deal["reason"]["summary"]
    top = items["top_customer"]
    assert top["company"]["id"] == company_id
    assert top["reason"]["facts"]["amount"] == "80000.00"
    with db.read_session() as session:
        tags = session.scalars(select(CompanyTag.tag).where(CompanyTag.company_id == company_id))
        assert "top customer" in list(tags)
    listing = cli("signals", "list", ANNA)
    assert listing.exit_code == 0
    assert "deal_rotting" in listing.output and "Clara Jensen" in listing.output
    assert "40 chairs" in listing.output
    assert cli("signals", "list", "nobody@example.org").exit_code == 1


def test_signals_need_a_token(client: FlaskClient) -> None:
    assert client.get("/api/v1/signals").status_code == 401
    assert client.get("/api/v1/admin/signal-settings").status_code == 401


def test_recompute_marked_only_from_the_command_line(
    db: Database, settings: Settings, tmp_path: Path, cli: Cli
) -> None:
    token_for(db, ANNA)
    capture(db, settings, tmp_path, ANNA, awaiting_and_unanswered())
    result = cli("signals", "recompute", "--marked")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("2 signals from ")
    with db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(SignalDirty)) == 0
    assert cli("signals", "recompute", "--marked").output.startswith("0 signals")


def test_the_worker_schedules_refreshes_and_an_hourly_tick(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna = auth(token_for(db, ANNA))
    now = utcnow()
    schedule(db, now=now)  # the first run only sets the clock: nothing is marked yet
    with db.read_session() as session:
        assert session.scalars(select(Job.kind)).all() == []
    capture(db, settings, tmp_path, ANNA, awaiting_and_unanswered())
    schedule(db, now=now)
    schedule(db, now=now)  # one refresh at a time
    with db.read_session() as session:
        assert session.scalars(select(Job.kind)).all() == [REFRESH_JOB]
    schedule(db, now=now + timedelta(hours=1, minutes=1))
    with db.read_session() as session:
        assert sorted(session.scalars(select(Job.kind)).all()) == [REFRESH_JOB, TICK_JOB]

    tick(db, now=now)  # the first tick recomputes everything
    assert len(listed(client, anna)) == 2
    with db.session() as session:  # a deal starts rotting without any new mail
        user = session.scalars(select(User).where(User.email == ANNA)).one()
        clara = session.scalars(select(Contact).where(Contact.name == "Clara Jensen")).one()
        deal = create_deal(
            session,
            Viewer.of(user),
            DealInput(
                title="Crates",
                contact_ids=[clara.id],
                owner_id=user.id,
                given=frozenset({"title", "contact_ids", "owner_id"}),
            ),
        )
        session.execute(update(Stage).values(rot_days=3))
        session.execute(update(Deal).where(Deal.id == deal.id).values(stage_entered_at=ago(20)))
    tick(db, now=now + timedelta(hours=1))  # the hourly tick: deals and companies
    kinds = [i["kind"] for i in listed(client, anna)]
    assert "deal_rotting" in kinds


def test_deals_moved_and_contacts_edited_by_people_update_signals_at_once(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path, cli: Cli
) -> None:
    anna = auth(token_for(db, ANNA))
    rotting, big, company_id = chairs_and_fit_out(db, settings, tmp_path)
    assert cli("signals", "recompute").exit_code == 0
    assert {i["kind"] for i in listed(client, anna)} >= {"deal_rotting", "top_customer"}
    with db.read_session() as session:
        stages = {row.name: row.id for row in session.execute(select(Stage.name, Stage.id))}

    # Moving the rotting deal on clears it, with no worker and no recompute in between.
    moved = client.post(
        f"/api/v1/deals/{rotting}/stage", json={"stage_id": stages["Negotiation"]}, headers=anna
    )
    assert moved.status_code == 200, moved.get_json()
    assert "deal_rotting" not in {i["kind"] for i in listed(client, anna)}

    # Reopening the won deal takes the company below the threshold: no longer a top customer.
    reopened = client.post(
        f"/api/v1/deals/{big}/stage", json={"stage_id": stages["Proposal"]}, headers=anna
    )
    assert reopened.status_code == 200, reopened.get_json()
    assert "top_customer" not in {i["kind"] for i in listed(client, anna)}
    won = client.post(f"/api/v1/deals/{big}/stage", json={"stage_id": stages["Won"]}, headers=anna)
    assert won.status_code == 200
    top = [i for i in listed(client, anna) if i["kind"] == "top_customer"]
    assert [i["company"]["id"] for i in top] == [company_id]

    # A contact's stage changed by a person: marked for the worker, as new mail would be.
    with db.session() as session:
        session.execute(sa_delete(SignalDirty))
        clara = session.scalars(select(Contact).where(Contact.name == "Clara Jensen")).one()
        clara_id, version = clara.id, clara.version
    edited = client.patch(
        f"/api/v1/contacts/{clara_id}",
        json={"version": version, "lifecycle_stage": "customer"},
        headers=anna,
    )
    assert edited.status_code == 200, edited.get_json()
    with db.read_session() as session:
        assert list(session.scalars(select(SignalDirty.contact_id))) == [clara_id]


def test_a_recompute_holds_a_bounded_number_of_activities_and_finds_the_same_signals(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Contacts are recomputed in batches cut by the activities they hold, not only by count: a
    worker recomputing after a big first sync holds one batch at a time. Batches of one contact
    find what one batch of all does."""
    anna = auth(token_for(db, ANNA))
    capture(db, settings, tmp_path, ANNA, awaiting_and_unanswered())
    with db.read_session() as session:
        contacts = list(session.scalars(select(Contact.id).order_by(Contact.id)))
        assert len(contacts) == 2
        assert list(store._batches(session, contacts)) == [contacts]
        monkeypatch.setattr(store, "ACTIVITIES_PER_BATCH", 1)
        assert list(store._batches(session, contacts)) == [[c] for c in contacts]
    drain(db)
    assert [(i["kind"], i["contact"]["name"]) for i in listed(client, anna)] == [
        ("awaiting_reply", "Clara Jensen"),
        ("unanswered", "Dan Okafor"),
    ]
