"""The KPIs on a hand-built data set, through the API (JSON and CSV), on both databases."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import select, update

from server.config import Settings
from server.crm.deals import DealInput, create_deal, move_stage
from server.crm.notes import create_note
from server.crm.pipelines import ensure_default_pipeline
from server.crm.viewer import Viewer
from server.db import Database
from server.models import Contact, MailboxLink, Stage, User, utcnow
from tests.integration.test_api_lookup import auth, capture, token_for
from tests.support.mail import make_email

ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
CLARA = "Clara Jensen <clara@brightline-dental.co.uk>"
DAN = "Dan Okafor <dan@brightline-dental.co.uk>"
EVE = "Eve Marsh <eve.marsh@gmail.com>"
FRED = "Fred Lund <fred@kestrel-logistik.de>"
NOW = utcnow().replace(microsecond=0)
MONDAY = (NOW - timedelta(days=NOW.weekday() + 14)).replace(hour=9, minute=0, second=0)


def at(hours: float) -> datetime:
    """Hours after 09:00 on the Monday two weeks ago."""
    return MONDAY + timedelta(hours=hours)


def mail() -> list[bytes]:
    """Clara answered by Anna after 2 h; Dan answered by Ben after 5 h; Eve never answered;
    Fred writes twice and Anna answers 10 h after his first."""
    return [
        make_email(sender=CLARA, to=ANNA, subject="Gloves", message_id="<c1@x>", date=at(0)),
        make_email(sender=ANNA, to=CLARA, subject="Re: Gloves", in_reply_to="<c1@x>", date=at(2)),
        make_email(sender=DAN, to=ANNA, subject="Wipes", message_id="<d1@x>", date=at(1)),
        make_email(
            sender=BEN, to=DAN, cc=[ANNA], subject="Re: Wipes", in_reply_to="<d1@x>", date=at(6)
        ),
        make_email(sender=EVE, to=ANNA, subject="A question", message_id="<e1@x>", date=at(3)),
        make_email(sender=FRED, to=ANNA, subject="Pallets", message_id="<f1@x>", date=at(24)),
        make_email(sender=FRED, to=ANNA, subject="Re: Pallets", in_reply_to="<f1@x>", date=at(28)),
        make_email(sender=ANNA, to=FRED, subject="Re: Pallets", in_reply_to="<f1@x>", date=at(34)),
    ]


def build(db: Database, settings: Settings, tmp_path: Path) -> dict[str, str]:
    anna, ben = token_for(db, ANNA), token_for(db, BEN)
    capture(db, settings, tmp_path, ANNA, mail())
    with db.session() as session:
        user = session.scalars(select(User).where(User.email == ANNA)).one()
        viewer = Viewer.of(user)
        clara = session.scalars(select(Contact).where(Contact.name == "Clara Jensen")).one()
        fred = session.scalars(select(Contact).where(Contact.name == "Fred Lund")).one()
        create_note(session, viewer, "Called Clara", contact_id=clara.id, now=at(3))
        ensure_default_pipeline(session)
        stages = {s.name: s.id for s in session.scalars(select(Stage))}
        deals = [
            ("Gloves 2026", "12000", "GBP", clara.company_id, "Won", 40, 10),
            ("Wipes", "3000", "GBP", clara.company_id, "Lost", 30, 12),
            ("Pallets", "20000", "EUR", fred.company_id, "Won", 20, 5),
            ("Tape", "500", "EUR", fred.company_id, "Proposal", 3, 1),
            ("Towels", "700", "GBP", clara.company_id, "Proposal", 3, 1),
            ("Cups", None, "GBP", clara.company_id, "Qualified", 3, 1),
            ("Old win", "99999", "GBP", fred.company_id, "Won", 400, 200),  # before the period
        ]
        for title, amount, currency, company, stage, created, closed in deals:
            deal = create_deal(
                session,
                viewer,
                DealInput(title=title, amount=amount, currency=currency, company_id=company),
                now=NOW - timedelta(days=created),
            )
            move_stage(session, viewer, deal.id, stages[stage], now=NOW - timedelta(days=closed))
    return {"anna": anna, "ben": ben}


def get(client: FlaskClient, token: str, path: str) -> dict:  # type: ignore[type-arg]
    response = client.get(f"/api/v1/reports/{path}", headers=auth(token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def test_response_time_per_person_and_team(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    tokens = build(db, settings, tmp_path)
    report = get(client, tokens["anna"], "response-time")
    people = {p["name"]: p for p in report["people"]}
    assert people[ANNA]["answered"] == 2 and people[ANNA]["median_hours"] == 6.0
    assert people[BEN]["answered"] == 1 and people[BEN]["median_hours"] == 5.0
    assert report["team"]["answered"] == 3 and report["team"]["median_hours"] == 5.0
    assert report["team"]["p90_hours"] == 10.0
    assert report["unanswered"] == 1  # Eve
    # Anna's mailbox private: Ben sees none of it, not even as a number.
    with db.session() as session:
        session.execute(update(MailboxLink).values(visibility="private"))
    ben = get(client, tokens["ben"], "response-time")
    assert ben["team"]["answered"] == 0 and ben["unanswered"] == 0
    # a period that ends before the mail: nothing
    early = get(
        client, tokens["anna"], f"response-time?to={at(-1).isoformat().replace('+', '%2B')}"
    )
    assert early["team"]["answered"] == 0


def test_activity_new_contacts_pipeline_win_rate_and_top_customers(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    tokens = build(db, settings, tmp_path)
    anna = tokens["anna"]
    weeks = get(client, anna, "activity")["weeks"]
    mine = [w for w in weeks if w["name"] == ANNA]
    assert sum(w["emails_sent"] for w in mine) == 2 and sum(w["notes"] for w in mine) == 1
    assert sum(w["emails_sent"] for w in weeks if w["name"] == BEN) == 1
    assert {w["week"] for w in mine} == {MONDAY.date().isoformat()}

    new = get(client, anna, "new-contacts")["weeks"]
    assert sum(w["contacts"] for w in new) == 4  # Clara, Dan, Eve, Fred: created on capture

    stages = get(client, anna, "pipeline")["stages"]
    by = {(s["stage"], s["currency"]): (s["deals"], s["value"]) for s in stages}
    assert by[("Proposal", "GBP")] == (1, "700.00")
    assert by[("Proposal", "EUR")] == (1, "500.00")  # never added to pounds
    assert by[("Qualified", "GBP")] == (1, "0")
    assert ("Won", "GBP") not in by, "open deals only"

    rate = get(client, anna, "win-rate")
    assert (rate["won"], rate["lost"], rate["rate"]) == (2, 1, 0.6667)
    assert rate["cycle_median_days"] == 22.5  # 30 and 15 days

    top = get(client, anna, "top-customers")["customers"]
    assert [(c["currency"], c["value"]) for c in top] == [("EUR", "20000.00"), ("GBP", "12000.00")]


def test_every_report_as_csv_with_the_same_numbers(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    tokens = build(db, settings, tmp_path)
    for name, key in [
        ("response-time", "people"),
        ("activity", "weeks"),
        ("new-contacts", "weeks"),
        ("pipeline", "stages"),
        ("top-customers", "customers"),
    ]:
        response = client.get(f"/api/v1/reports/{name}.csv", headers=auth(tokens["anna"]))
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert f'filename="{name}.csv"' in response.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
        assert len(rows) == len(get(client, tokens["anna"], name)[key]), name
    win = client.get("/api/v1/reports/win-rate.csv", headers=auth(tokens["anna"]))
    (row,) = csv.DictReader(io.StringIO(win.get_data(as_text=True)))
    assert (row["won"], row["lost"], row["rate"]) == ("2", "1", "0.6667")


def test_bad_periods_are_refused_naming_the_field(client: FlaskClient, db: Database) -> None:
    token = token_for(db, ANNA)
    backwards = client.get(
        "/api/v1/reports/win-rate?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z",
        headers=auth(token),
    )
    assert backwards.status_code == 400
    assert backwards.get_json()["error"]["field"] == "from"
    naive = client.get("/api/v1/reports/activity.csv?from=2026-03-01", headers=auth(token))
    assert naive.status_code == 422
    # Near the ends of the calendar (found by the schemathesis long form: a 500 from an
    # overflow while the default start was worked out), on every report.
    for report in ("activity", "activity.csv", "new-contacts", "response-time", "win-rate"):
        for query, field in (
            ("to=0001-01-01T01:13:08Z", "to"),
            ("to=9999-12-31T23:00:00Z", "to"),
            ("from=0001-01-01T00:00:00Z&to=0001-02-01T00:00:00Z", "to"),
            ("from=1899-12-01T00:00:00Z&to=1900-02-01T00:00:00Z", "from"),
        ):
            refused = client.get(f"/api/v1/reports/{report}?{query}", headers=auth(token))
            assert refused.status_code == 400, (report, query, refused.get_json())
            assert refused.get_json()["error"]["field"] == field
    assert client.get("/api/v1/reports/pipeline").status_code == 401
