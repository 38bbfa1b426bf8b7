"""GET /api/v1/lookup: the pane's one call, with sign-in and mailbox visibility."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, select, update

from server.config import Settings
from server.crm.companies import set_tags as set_company_tags
from server.crm.contacts import set_tags as set_contact_tags
from server.crm.users import add_user, create_token
from server.db import Database
from server.mail_ingest.importer import import_files
from server.models import Contact, MailboxLink
from tests.support.mail import BASE_DATE, days, make_email, write_maildir

ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
BOSS = "boss@northwind-supplies.com"
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


DAN = "Dan Okafor <dan@brightline-dental.co.uk>"
EVE = "Eve Marsh <eve.marsh@gmail.com>"


def all_pages(client: FlaskClient, token: str, query: str, limit: int) -> list[dict[str, Any]]:
    """Every timeline entry of a lookup, page after page."""
    entries: list[dict[str, Any]] = []
    cursor = ""
    while True:
        body = client.get(
            f"/api/v1/lookup?{query}&limit={limit}{cursor}", headers=auth(token)
        ).get_json()
        entries += body["timeline"]
        if body["next_cursor"] is None:
            return entries
        cursor = f"&cursor={body['next_cursor']}"


def test_several_people_share_one_timeline_with_each_email_once(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    token = token_for(db, ANNA)
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [
            make_email(sender=CLARA, to=ANNA, subject="Clara asks", date=BASE_DATE),
            make_email(
                sender=DAN, to=ANNA, cc=[CLARA], subject="Both write", date=BASE_DATE + days(1)
            ),
            make_email(sender=ANNA, to=DAN, subject="Anna answers Dan", date=BASE_DATE + days(2)),
            # Clara twice on one email (From and Reply-To): still one entry.
            make_email(
                sender=CLARA,
                to=ANNA,
                subject="Clara again",
                date=BASE_DATE + days(3),
                headers={"Reply-To": CLARA},
            ),
        ],
    )
    query = "email=clara@brightline-dental.co.uk&email=dan@brightline-dental.co.uk"
    for limit in (1, 2, 3, 20):
        subjects = [e["subject"] for e in all_pages(client, token, query, limit)]
        assert subjects == ["Clara again", "Anna answers Dan", "Both write", "Clara asks"], limit


def test_people_timeline_shows_what_the_general_timeline_shows(
    client: FlaskClient,
    db: Database,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lookup's one-statement timeline of people agrees, entry for entry and level for level,
    with the general timeline query, whoever asks: private mailboxes, private emails, metadata
    links, one email seen by two mailboxes, notes, and an address with no contact."""
    anna, ben = token_for(db, ANNA), token_for(db, BEN)
    shared = make_email(
        sender=CLARA, to=[ANNA, BEN], subject="To both", date=BASE_DATE + days(4), cc=[EVE]
    )
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [
            make_email(sender=CLARA, to=ANNA, subject="Anna 1", date=BASE_DATE),
            make_email(sender=ANNA, to=CLARA, cc=[DAN], subject="Anna 2", date=BASE_DATE + days(1)),
            make_email(
                sender=DAN,
                to=ANNA,
                subject="Anna private",
                date=BASE_DATE + days(2),
                headers={"Sensitivity": "Private"},
            ),
            make_email(sender=EVE, to=ANNA, subject="Eve to Anna", date=BASE_DATE + days(3)),
            shared,
        ],
    )
    capture(
        db,
        settings,
        tmp_path,
        BEN,
        [
            make_email(sender=CLARA, to=BEN, subject="Ben 1", date=BASE_DATE + days(5)),
            make_email(sender=DAN, to=BEN, cc=[CLARA], subject="Ben 2", date=BASE_DATE + days(6)),
            shared,
        ],
        capture_level="metadata",
    )
    with db.session() as session:
        clara = session.scalar(select(Contact.id).where(Contact.name == "Clara Jensen"))
        session.execute(
            update(MailboxLink).where(MailboxLink.owner_address == BEN).values(visibility="private")
        )
    note = client.post(
        "/api/v1/notes", json={"body": "Call after 10", "contact_id": clara}, headers=auth(anna)
    )
    assert note.status_code == 201, note.get_json()
    # Eve's contact goes; her address stays on the emails, a bare address now.
    with db.session() as session:
        eve = session.scalar(select(Contact.id).where(Contact.name == "Eve Marsh"))
    admin = auth(token_for(db, BOSS, role="admin"))
    assert client.delete(f"/api/v1/contacts/{eve}", headers=admin).status_code == 204

    queries = [
        "email=clara@brightline-dental.co.uk",
        "email=clara@brightline-dental.co.uk&email=dan@brightline-dental.co.uk",
        "email=dan@brightline-dental.co.uk&email=eve.marsh@gmail.com",
        "email=eve.marsh@gmail.com&email=clara@brightline-dental.co.uk&email=dan@brightline-dental.co.uk",
    ]
    seen: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for general in (False, True):
        if general:
            monkeypatch.setattr("server.crm.timeline.PEOPLE_BRANCHES_MAX", 0)
        for who, token in (("anna", anna), ("ben", ben)):
            for query in queries:
                for limit in (1, 3, 20):
                    entries = all_pages(client, token, query, limit)
                    if general:
                        assert entries == seen[(who, query, limit)], (who, query, limit)
                    else:
                        seen[(who, query, limit)] = entries

    # And the data did exercise what it should: levels differ by viewer, privacy hides.
    def shown(who: str) -> list[tuple[str, str, str]]:
        return [(e["kind"], e["subject"], e["level"]) for e in seen[(who, queries[3], 20)]]

    # And the data did exercise what it should: a private email is the owner's only (and only
    # its metadata is kept), Ben's private mailbox is his, and an email both mailboxes saw is
    # shown at the better of the two levels.
    assert shown("anna") == [
        ("note", "", "full"),
        ("email", "To both", "full"),
        ("email", "Eve to Anna", "full"),
        ("email", "", "metadata"),
        ("email", "Anna 2", "full"),
        ("email", "Anna 1", "full"),
    ]
    assert shown("ben") == [
        ("note", "", "full"),
        ("email", "", "metadata"),
        ("email", "", "metadata"),
        ("email", "To both", "full"),
        ("email", "Eve to Anna", "full"),
        ("email", "Anna 2", "full"),
        ("email", "Anna 1", "full"),
    ]


def test_addresses_without_a_contact_get_suggestions_but_not_our_own(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    token = token_for(db, ANNA)
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [
            make_email(sender=CLARA, to=ANNA, subject="Hello", date=BASE_DATE),
            make_email(sender="Sam Lee <sam.lee@brightline-dental.co.uk>", to=ANNA, date=BASE_DATE),
        ],
    )
    with db.session() as session:
        sam = session.scalar(select(Contact.id).where(Contact.name == "Sam Lee"))
    admin = auth(token_for(db, BOSS, role="admin"))
    assert client.delete(f"/api/v1/contacts/{sam}", headers=admin).status_code == 204
    body = client.get(
        "/api/v1/lookup?email=clara@brightline-dental.co.uk&email=sam.lee@brightline-dental.co.uk"
        "&email=colleague@northwind-supplies.com&email=someone@unheard-of.example",
        headers=auth(token),
    ).get_json()
    unknown = {u["address"]: u for u in body["unknown"]}
    assert list(unknown) == ["sam.lee@brightline-dental.co.uk", "someone@unheard-of.example"]
    sam_seen = unknown["sam.lee@brightline-dental.co.uk"]
    assert (sam_seen["suggested_name"], sam_seen["seen_in"]) == ("Sam Lee", 1)
    assert sam_seen["company_id"] == body["companies"][0]["id"]
    nobody = unknown["someone@unheard-of.example"]
    assert (nobody["seen_in"], nobody["company_id"]) == (0, None)
    # Sam's email is on the timeline through his bare address, beside Clara's.
    assert len(body["timeline"]) == 2


def test_lookup_shows_tags_and_costs_the_same_statements_for_one_person_or_many(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    token = token_for(db, ANNA)
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [
            make_email(sender=CLARA, to=ANNA, subject="One", date=BASE_DATE),
            *(
                make_email(
                    sender=DAN,
                    to=ANNA,
                    cc=[CLARA, EVE],
                    subject=f"Many {n}",
                    date=BASE_DATE + days(n),
                )
                for n in range(1, 8)
            ),
        ],
    )
    with db.session() as session:
        clara = session.scalar(select(Contact).where(Contact.name == "Clara Jensen"))
        assert clara is not None and clara.company_id is not None
        set_contact_tags(session, clara.id, ["dentist", "vip"])
        set_company_tags(session, clara.company_id, ["key account"])

    # The first call also notes the token's use and finds the rate limit table: not counted.
    assert client.get("/api/v1/lookup?email=x@y.example", headers=auth(token)).status_code == 200
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.startswith(("BEGIN", "COMMIT", "INSERT INTO rate_limit")):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        counts = []
        for query in (
            "email=clara@brightline-dental.co.uk",
            "email=clara@brightline-dental.co.uk&email=dan@brightline-dental.co.uk"
            "&email=eve.marsh@gmail.com",
        ):
            statements.clear()
            body = client.get(f"/api/v1/lookup?{query}", headers=auth(token)).get_json()
            counts.append(len(statements))
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert counts[0] == counts[1], statements
    # Sign-in (token, user) plus one statement per section: contacts (with their tags),
    # timeline (with its participants), deals, follow-ups, signals (none here: with some, the
    # people, companies and deals they name are read too, a statement each).
    assert counts[1] <= 7, statements
    assert len(body["timeline"]) == 8
    assert {c["name"]: c["tags"] for c in body["contacts"]}["Clara Jensen"] == ["dentist", "vip"]
    assert body["companies"][0]["tags"] == ["key account"]


def test_lookup_shows_each_address_and_domain_once_and_a_shared_company_once(
    client: FlaskClient, db: Database
) -> None:
    """The contacts statement has a row per (contact, address, company domain): two addresses
    at a company of three domains must still come back as two addresses and three domains."""
    token = token_for(db, ANNA)
    headers = auth(token)
    company = client.post(
        "/api/v1/companies",
        json={
            "name": "Fjord Clinics",
            "domains": ["fjord-clinics.no", "fjordclinics.com", "fjord-klinikk.no"],
            "tags": ["key account"],
        },
        headers=headers,
    ).get_json()
    made = [
        client.post(
            "/api/v1/contacts",
            json={"name": name, "emails": emails, "company_id": company["id"], "tags": tags},
            headers=headers,
        )
        for name, emails, tags in (
            ("Ingrid Dahl", ["ingrid@fjord-clinics.no", "ingrid.dahl@fjordclinics.com"], ["vip"]),
            ("Ola Berg", ["ola@fjord-clinics.no"], []),
        )
    ]
    assert all(r.status_code == 201 for r in made), [r.get_json() for r in made]

    body = client.get(
        "/api/v1/lookup?email=ola@fjord-clinics.no&email=ingrid.dahl@fjordclinics.com",
        headers=headers,
    ).get_json()

    assert [(c["name"], c["emails"], c["tags"]) for c in body["contacts"]] == [
        ("Ola Berg", ["ola@fjord-clinics.no"], []),
        ("Ingrid Dahl", ["ingrid@fjord-clinics.no", "ingrid.dahl@fjordclinics.com"], ["vip"]),
    ]
    assert {c["company"]["name"] for c in body["contacts"]} == {"Fjord Clinics"}
    assert [(c["name"], sorted(c["domains"]), c["tags"]) for c in body["companies"]] == [
        (
            "Fjord Clinics",
            ["fjord-clinics.no", "fjord-klinikk.no", "fjordclinics.com"],
            ["key account"],
        )
    ]
    assert body["companies"][0]["version"] == company["version"]


def test_sign_in_rate_limit_and_lookup_share_one_connection_on_postgresql(
    client: FlaskClient, db: Database
) -> None:
    """On PostgreSQL each pool checkout costs a liveness ping and each transaction a BEGIN and a
    COMMIT: the request's reads share one autocommitted connection (`Database.pin`). SQLite has
    no round trips to save and keeps a transaction per step."""
    headers = auth(token_for(db, ANNA))
    assert client.get("/api/v1/lookup?email=x@y.example", headers=headers).status_code == 200
    checkouts: list[object] = []

    def count(*_: Any) -> None:
        checkouts.append(_)

    event.listen(db.engine.pool, "checkout", count)
    try:
        response = client.get("/api/v1/lookup?email=x@y.example", headers=headers)
    finally:
        event.remove(db.engine.pool, "checkout", count)
    assert response.status_code == 200
    assert len(checkouts) == (3 if db.is_sqlite else 1)
    remaining = int(response.headers["RateLimit-Remaining"])
    assert remaining == int(response.headers["RateLimit-Limit"]) - 2  # both calls were counted
