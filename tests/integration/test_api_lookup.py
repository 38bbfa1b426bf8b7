"""GET /api/v1/lookup: the pane's one call, with sign-in and mailbox visibility."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import select, update

from server.config import Settings
from server.crm.users import add_user, create_token
from server.db import Database
from server.mail_ingest.importer import import_files
from server.models import MailboxLink
from tests.support.mail import BASE_DATE, days, make_email, write_maildir

ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
CLARA = "Clara Jensen <clara@brightline-dental.co.uk>"


def token_for(db: Database, address: str, role: str = "member") -> str:
    with db.session() as session:
        user = add_user(session, address, role=role)
        return create_token(session, user, expires_in=timedelta(days=1)).plaintext


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def capture(
    db: Database, settings: Settings, tmp_path: Path, owner: str, emails: list[bytes], **kw: object
) -> None:
    box = write_maildir(tmp_path / owner.split("@")[0], emails)
    import_files(db, settings, [box], owner=owner, jobs=1, **kw)  # type: ignore[arg-type]


def test_lookup_needs_a_token(client: FlaskClient) -> None:
    response = client.get("/api/v1/lookup?email=clara@brightline-dental.co.uk")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    bad = client.get("/api/v1/lookup?email=x@y.z", headers=auth("rpt_not-a-real-token"))
    assert bad.status_code == 401


def test_lookup_returns_contact_company_and_timeline(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    token = token_for(db, ANNA)
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [
            make_email(sender=CLARA, to=ANNA, subject="Quote please", date=BASE_DATE),
            make_email(sender=ANNA, to=CLARA, subject="Re: Quote please", date=BASE_DATE + days(1)),
        ],
    )
    response = client.get(
        "/api/v1/lookup?email=Clara@Brightline-Dental.co.uk&email=new.person@brightline-dental.co.uk",
        headers=auth(token),
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert [c["name"] for c in body["contacts"]] == ["Clara Jensen"]
    assert body["contacts"][0]["emails"] == ["clara@brightline-dental.co.uk"]
    assert [c["name"] for c in body["companies"]] == ["Brightline Dental"]
    assert [a["subject"] for a in body["timeline"]] == ["Re: Quote please", "Quote please"]
    assert body["timeline"][0]["direction"] == "outgoing"
    unknown = body["unknown"]
    assert [u["address"] for u in unknown] == ["new.person@brightline-dental.co.uk"]
    assert unknown[0]["suggested_company"] == "Brightline Dental"
    assert unknown[0]["company_id"] == body["companies"][0]["id"]


def test_timeline_pages_with_a_cursor(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    token = token_for(db, ANNA)
    emails = [
        make_email(sender=CLARA, to=ANNA, subject=f"Note {n}", date=BASE_DATE + days(n))
        for n in range(5)
    ]
    capture(db, settings, tmp_path, ANNA, emails)
    first = client.get(
        "/api/v1/lookup?email=clara@brightline-dental.co.uk&limit=2", headers=auth(token)
    ).get_json()
    assert [a["subject"] for a in first["timeline"]] == ["Note 4", "Note 3"]
    second = client.get(
        f"/api/v1/lookup?email=clara@brightline-dental.co.uk&limit=2&cursor={first['next_cursor']}",
        headers=auth(token),
    ).get_json()
    assert [a["subject"] for a in second["timeline"]] == ["Note 2", "Note 1"]


def test_bad_input_names_the_field(client: FlaskClient, db: Database) -> None:
    token = token_for(db, ANNA)
    missing = client.get("/api/v1/lookup", headers=auth(token))
    assert missing.status_code == 422
    assert missing.get_json()["error"]["field"] == "email"
    wrong = client.get("/api/v1/lookup?email=not-an-address", headers=auth(token))
    assert wrong.status_code == 400
    assert wrong.get_json()["error"] == {
        "code": "invalid",
        "message": "'not-an-address' is not an email address",
        "field": "email",
    }
    cursor = client.get("/api/v1/lookup?email=a@b.example&cursor=%%%", headers=auth(token))
    assert cursor.status_code == 400
    assert cursor.get_json()["error"]["field"] == "cursor"


def test_private_mailboxes_and_levels_decide_what_a_colleague_sees(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna, ben = token_for(db, ANNA), token_for(db, BEN)
    capture(
        db, settings, tmp_path, ANNA, [make_email(sender=CLARA, to=ANNA, subject="For Anna only")]
    )
    capture(
        db,
        settings,
        tmp_path,
        BEN,
        [
            make_email(sender=CLARA, to=BEN, subject="Ben metadata", date=BASE_DATE + days(1)),
            make_email(
                sender=CLARA,
                to=BEN,
                subject="Ben private",
                date=BASE_DATE + days(2),
                headers={"Sensitivity": "Private"},
            ),
        ],
        capture_level="metadata",
    )
    with db.session() as session:
        session.execute(
            update(MailboxLink)
            .where(MailboxLink.owner_address == ANNA)
            .values(visibility="private")
        )
        assert (
            session.scalar(select(MailboxLink.visibility).where(MailboxLink.owner_address == BEN))
            == "team"
        )

    def seen_by(token: str) -> list[tuple[str, str]]:
        body = client.get(
            "/api/v1/lookup?email=clara@brightline-dental.co.uk", headers=auth(token)
        ).get_json()
        return [(a["subject"], a["level"]) for a in body["timeline"]]

    # Ben sees his own two (at metadata: no subject) and not Anna's private mailbox.
    assert seen_by(ben) == [("", "metadata"), ("", "metadata")]
    # Anna sees her own mail in full and Ben's team mail at its metadata level, but not his private one.
    assert seen_by(anna) == [("", "metadata"), ("For Anna only", "full")]
