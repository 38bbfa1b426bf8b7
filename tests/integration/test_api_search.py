"""GET /api/v1/search: contacts, companies, deals and mail in one box, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, select, text, update
from sqlalchemy.engine import Connection

from server.config import Settings
from server.crm.search import fts5_match, parse_query, search, tsquery_text
from server.crm.viewer import Viewer
from server.db import Database
from server.models import (
    Activity,
    ActivityParticipant,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    MailboxLink,
    User,
)
from tests.integration.test_api_contacts import (
    ANNA,
    BEN,
    auth,
    capture,
    create,
    make_deal,
    token_for,
)
from tests.support.mail import BASE_DATE, days, make_email

CARL = "carl@northwind-supplies.com"
CLARA = "Clara Jensen <clara@brightline-dental.co.uk>"
JURGEN = "Jürgen Müller <j.mueller@zahnarzt-berlin.de>"


def find(client: FlaskClient, token: str, q: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/search", query_string={"q": q, **params}, headers=auth(token))
    assert response.status_code == 200, response.get_json()
    items: list[dict[str, Any]] = response.get_json()["items"]
    return items


def titles(items: list[dict[str, Any]], type_: str | None = None) -> list[str]:
    return [i["title"] for i in items if type_ is None or i["type"] == type_]


def activity_id(db: Database, subject: str) -> int:
    with db.session() as session:
        found = session.scalar(select(Activity.id).where(Activity.subject == subject))
        assert found is not None
        return found


# -- the query never becomes syntax ---------------------------------------------------------------


def test_words_become_quoted_strings_and_nothing_else() -> None:
    query = parse_query("  Clara \" OR 1=1 -- NEAR( * Jürgen's x ")
    # Unaccented, case kept; one-letter words ("1", "s", "x") dropped.
    assert query.words == ("Clara", "OR", "NEAR", "Jurgen")
    # Names: every word a prefix. Mail: the last word only, the one still being typed.
    assert fts5_match(query.words) == '"Clara"* AND "OR"* AND "NEAR"* AND "Jurgen"*'
    assert (
        fts5_match(query.words, prefix_last_only=True)
        == '"Clara" AND "OR" AND "NEAR" AND "Jurgen"*'
    )
    assert fts5_match(['a"b'], prefix_last_only=True) == '"a""b"*'
    assert tsquery_text(["o'b", "a\\b"]) == "'o''b':* & 'a\\\\b':*"
    assert tsquery_text(["o'b", "a\\b"], prefix_last_only=True) == "'o''b' & 'a\\\\b':*"
    assert query.prefix is None  # has spaces: not the start of an address
    assert parse_query("Clara@Bright").prefix == "clara@bright"
    assert parse_query("clara@bright").words == ("clara", "bright")
    assert parse_query("ﬁne ½").words == ("fine",)  # compatibility forms unfolded first
    assert parse_query("J").words == () and parse_query("J").prefix == "j"
    assert parse_query("Brightline-Dental Ltd.").key == "brightline dental ltd"


# -- finding each kind ----------------------------------------------------------------------------


def test_search_needs_a_token(client: FlaskClient) -> None:
    response = client.get("/api/v1/search?q=clara")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_each_type_is_found_with_what_a_search_box_shows(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    token = token_for(db, ANNA)
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [
            make_email(
                sender=CLARA,
                to=ANNA,
                subject="Quote for 40 chairs",
                body="Could you include the ergonomic armrests?",
            )
        ],
    )
    with db.session() as session:
        company_id = session.scalar(select(Company.id).where(Company.name == "Brightline Dental"))
    deal_id = make_deal(db, "Brightline waiting room", company_id=company_id)

    contacts = find(client, token, "cla", types="contact")
    assert titles(contacts) == ["Clara Jensen"]
    clara = contacts[0]
    assert clara["email"] == "clara@brightline-dental.co.uk"
    assert clara["company"]["name"] == "Brightline Dental"
    assert clara["subtitle"] == "Brightline Dental · clara@brightline-dental.co.uk"

    bright = find(client, token, "bright")
    assert ("company", "Brightline Dental") in [(i["type"], i["title"]) for i in bright]
    company = next(i for i in bright if i["type"] == "company")
    assert company["domains"] == ["brightline-dental.co.uk"]
    assert company["subtitle"] == "brightline-dental.co.uk"
    deal = next(i for i in bright if i["type"] == "deal")
    assert (deal["id"], deal["title"], deal["stage"]["name"]) == (
        deal_id,
        "Brightline waiting room",
        "Proposal",
    )
    assert deal["company"] == {"id": company_id, "name": "Brightline Dental"}

    by_address = find(client, token, "clara@bright")
    assert by_address[0]["type"] == "contact" and by_address[0]["title"] == "Clara Jensen"

    by_domain = find(client, token, "brightline-dental.co", types="company")
    assert titles(by_domain) == ["Brightline Dental"]

    mail = find(client, token, "ergonomic", types="activity")
    assert titles(mail) == ["Quote for 40 chairs"]
    assert mail[0]["snippet"].startswith("Could you include the ergonomic armrests")
    assert mail[0]["subtitle"] == "Email from Clara Jensen"
    assert mail[0]["activity"]["level"] == "full"
    assert mail[0]["activity"]["sender_address"] == "clara@brightline-dental.co.uk"

    note = client.post(
        "/api/v1/notes",
        json={"body": "Wants the walnut finish, call after ten", "company_id": company_id},
        headers=auth(token),
    )
    assert note.status_code == 201, note.get_json()
    notes = find(client, token, "walnut")
    assert [(i["type"], i["title"], i["id"]) for i in notes] == [
        ("activity", "Note", note.get_json()["id"])
    ]
    assert notes[0]["subtitle"] == "Note by anna@northwind-supplies.com"


def test_types_narrow_the_search_and_a_bad_one_is_named(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    token = token_for(db, ANNA)
    capture(db, settings, tmp_path, ANNA, [make_email(sender=CLARA, to=ANNA, subject="Brightly")])
    # Clara too: "bright" starts a word of her address.
    assert {i["type"] for i in find(client, token, "bright")} == {"contact", "company", "activity"}
    assert {i["type"] for i in find(client, token, "bright", types="activity")} == {"activity"}
    assert {i["type"] for i in find(client, token, "bright", types=" Company ,deal")} == {"company"}
    wrong = client.get("/api/v1/search?q=bright&types=contact,people", headers=auth(token))
    assert wrong.status_code == 400
    assert wrong.get_json()["error"]["field"] == "types"
    assert "people" in wrong.get_json()["error"]["message"]
    too_many = client.get("/api/v1/search?q=bright&limit=500", headers=auth(token))
    assert too_many.status_code == 422
    assert too_many.get_json()["error"]["field"] == "limit"


def test_accents_and_case_do_not_matter(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    token = token_for(db, ANNA)
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [make_email(sender=JURGEN, to=ANNA, subject="Angebot für Übergrößen")],
    )
    for q in ("Jurgen", "jürg", "MULL", "jurgen muller", "Müller Jür"):
        assert titles(find(client, token, q, types="contact")) == ["Jürgen Müller"], q
    assert titles(find(client, token, "ubergrossen", types="activity")) == []  # ß is not ss
    assert titles(find(client, token, "ubergro", types="activity")) == ["Angebot für Übergrößen"]
    assert titles(find(client, token, "ANGEBOT FUR", types="activity")) == [
        "Angebot für Übergrößen"
    ]


def test_in_mail_earlier_words_match_whole_words_while_names_match_by_prefix(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    token = token_for(db, ANNA)
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [make_email(sender=CLARA, to=ANNA, subject="Pallets arriving Thursday")],
    )
    subject = ["Pallets arriving Thursday"]
    # The last word is the one still being typed: a prefix.
    assert titles(find(client, token, "pallets thur", types="activity")) == subject
    assert titles(find(client, token, "thursday pall", types="activity")) == subject
    # An earlier word is finished: "pall" is not a word of that email.
    assert titles(find(client, token, "pall thursday", types="activity")) == []
    assert titles(find(client, token, "pallet arriving", types="activity")) == []
    # Names, addresses and domains still match every word by its start.
    assert titles(find(client, token, "cla jen", types="contact")) == ["Clara Jensen"]
    assert titles(find(client, token, "jen cla", types="contact")) == ["Clara Jensen"]
    assert titles(find(client, token, "bright den", types="company")) == ["Brightline Dental"]


def test_mail_whose_subject_holds_the_words_ranks_before_newer_mail_with_them_in_the_text(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    token = token_for(db, ANNA)
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [
            make_email(sender=CLARA, to=ANNA, subject="Samples in walnut", date=BASE_DATE),
            make_email(
                sender=CLARA,
                to=ANNA,
                subject="Order 1182",
                body="Same again, in walnut please",
                date=BASE_DATE + days(3),
            ),
        ],
    )
    assert titles(find(client, token, "walnut", types="activity")) == [
        "Samples in walnut",
        "Order 1182",
    ]
    assert titles(find(client, token, "again walnut", types="activity")) == ["Order 1182"]


def test_an_exact_match_comes_first_then_starts_with_then_the_rest(
    client: FlaskClient, db: Database
) -> None:
    token = token_for(db, ANNA)
    # Oldest first, so recency alone would put the exact match last.
    for name, address in [
        ("Anna", "a.k@kestrel.example"),
        ("Anna Berg", "anna@berg.example"),
        ("Annabel Fox", "annabel@fox.example"),
        ("Joanna Anna-Lee", "jal@lee.example"),
    ]:
        create(client, token, "contacts", name=name, emails=[address])
    assert titles(find(client, token, "anna", types="contact")) == [
        "Anna",  # equal to the query
        "Anna Berg",  # starts with its words
        "Annabel Fox",  # starts with it
        "Joanna Anna-Lee",  # only a later word starts with it
    ]
    # An address equal to the query beats names that merely start with it.
    assert titles(find(client, token, "anna@berg.example", types="contact"))[0] == "Anna Berg"


# -- visibility -----------------------------------------------------------------------------------


def test_a_colleagues_private_mailbox_is_not_searched(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna, ben = token_for(db, ANNA), token_for(db, BEN)
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [make_email(sender=CLARA, to=ANNA, subject="Salary negotiation", body="confidential")],
    )
    with db.session() as session:
        session.execute(
            update(MailboxLink)
            .where(MailboxLink.owner_address == ANNA)
            .values(visibility="private")
        )
    assert titles(find(client, anna, "salary")) == ["Salary negotiation"]
    assert titles(find(client, ben, "salary")) == []
    assert titles(find(client, ben, "confidential")) == []
    # The contact capture created is the team's, private mailbox or not.
    assert titles(find(client, ben, "clara")) == ["Clara Jensen"]


def test_a_subject_level_viewer_does_not_find_words_only_in_the_text(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna, ben = token_for(db, ANNA), token_for(db, BEN)
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [
            make_email(
                sender=CLARA, to=ANNA, subject="Invoice overdue", body="The zirconia crowns cracked"
            )
        ],
    )
    assert titles(find(client, ben, "zirconia")) == ["Invoice overdue"]  # the link is full

    with db.session() as session:
        session.execute(
            update(MailboxLink)
            .where(MailboxLink.owner_address == ANNA)
            .values(capture_level="subject")
        )
    for token in (anna, ben):
        assert titles(find(client, token, "zirconia")) == []
        assert titles(find(client, token, "invoice zirconia")) == []
        hits = find(client, token, "invoice")
        assert titles(hits) == ["Invoice overdue"]
        assert hits[0]["snippet"] is None and hits[0]["activity"]["snippet"] == ""
        assert hits[0]["activity"]["level"] == "subject"

    with db.session() as session:
        session.execute(update(MailboxLink).values(capture_level="metadata"))
    assert find(client, ben, "invoice") == []


def test_an_unlogged_email_leaves_the_index(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna = token_for(db, ANNA)
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [
            make_email(sender=CLARA, to=ANNA, subject="Lunch on Friday?", date=BASE_DATE),
            make_email(sender=CLARA, to=ANNA, subject="Lunch moved", date=BASE_DATE + days(1)),
        ],
    )
    assert titles(find(client, anna, "lunch")) == ["Lunch moved", "Lunch on Friday?"]
    unlogged = client.post(
        f"/api/v1/activities/{activity_id(db, 'Lunch on Friday?')}/unlog", headers=auth(anna)
    )
    assert unlogged.status_code == 200, unlogged.get_json()
    assert titles(find(client, anna, "lunch")) == ["Lunch moved"]
    assert titles(find(client, anna, "friday")) == []


def test_a_renamed_contact_is_found_by_the_new_name_only(client: FlaskClient, db: Database) -> None:
    token = token_for(db, ANNA)
    contact = create(
        client, token, "contacts", name="Margaret Thorne", emails=["mthorne@example.org"]
    )
    assert titles(find(client, token, "margaret")) == ["Margaret Thorne"]
    renamed = client.patch(
        f"/api/v1/contacts/{contact['id']}",
        json={"version": contact["version"], "name": "Peggy Thorne"},
        headers=auth(token),
    )
    assert renamed.status_code == 200, renamed.get_json()
    assert titles(find(client, token, "peggy")) == ["Peggy Thorne"]
    assert find(client, token, "margaret") == []


def test_addresses_and_domains_follow_their_rows(client: FlaskClient, db: Database) -> None:
    token = token_for(db, ANNA, role="admin")
    contact = create(client, token, "contacts", name="Ola Nordmann", emails=["ola@fjord.example"])
    assert titles(find(client, token, "fjord")) == ["Ola Nordmann"]
    with db.session() as session:
        row = session.scalars(select(ContactEmail).where(ContactEmail.contact_id == contact["id"]))
        row.one().address = "ola@skog.example"
        session.add(Company(name="Skogen AS", domains=[CompanyDomain(domain="skog.example")]))
    assert titles(find(client, token, "fjord")) == []
    assert titles(find(client, token, "ola@skog", types="contact")) == ["Ola Nordmann"]
    assert titles(find(client, token, "skog.ex", types="company")) == ["Skogen AS"]
    deleted = client.delete(f"/api/v1/contacts/{contact['id']}", headers=auth(token))
    assert deleted.status_code == 204
    assert find(client, token, "ola", types="contact") == []


# -- hostile input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "q",
    [
        '" OR 1=1 --',
        "*",
        "NEAR(",
        "NEAR(a b, 2)",
        "'",
        "\\",
        "a:*",
        "clara & !x | y <-> z",
        "{title} : x",
        "^clara",
        "😀🎉",
        "Clara 😀",
        "\x00clara",
        "%_%",
        "",
        "   ",
        "x" * 500,
        "é" * 300,
    ],
)
def test_hostile_queries_are_only_ever_data(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path, q: str
) -> None:
    token = token_for(db, ANNA)
    capture(db, settings, tmp_path, ANNA, [make_email(sender=CLARA, to=ANNA, subject="Hello")])
    response = client.get("/api/v1/search", query_string={"q": q}, headers=auth(token))
    assert response.status_code == 200, response.get_json()
    assert isinstance(response.get_json()["items"], list)


def test_a_query_too_long_is_refused_with_a_reason(client: FlaskClient, db: Database) -> None:
    token = token_for(db, ANNA)
    response = client.get("/api/v1/search", query_string={"q": "x" * 10_240}, headers=auth(token))
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["field"] == "q" and "at most 500" in error["message"]
    missing = client.get("/api/v1/search", headers=auth(token))
    assert missing.status_code == 422
    assert missing.get_json()["error"]["field"] == "q"


# -- the indexes ----------------------------------------------------------------------------------


def test_the_upgrade_indexes_rows_that_already_exist(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        db.upgrade("0003")
        with db.session() as session:
            user = User(email=ANNA)
            session.add(user)
            session.add(Contact(name="Dorothea Vogt", emails=[ContactEmail(address="dv@vogt.de")]))
            session.add(
                Activity(
                    kind="email",
                    occurred_at=BASE_DATE,
                    subject="Rechnung",
                    snippet="Sehr geehrte",
                    content_level="full",
                    participants=[
                        ActivityParticipant(
                            role="from", address="dv@vogt.de", occurred_at=BASE_DATE
                        )
                    ],
                )
            )
        db.upgrade()
        with db.session() as session:
            viewer = Viewer.of(session.scalars(select(User)).one())
            hits = search(session, viewer, "vogt")
            assert [(h.type, h.title) for h in hits] == [("contact", "Dorothea Vogt")]
            assert [h.title for h in search(session, viewer, "geehrte")] == ["Rechnung"]
    finally:
        db.dispose()


@contextmanager
def statements(db: Database) -> Iterator[list[tuple[str, Any]]]:
    """The SELECTs the code inside runs, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def record(
        _conn: Connection, _cursor: Any, sql: str, params: Any, _context: Any, _many: bool
    ) -> None:
        if sql.lstrip().upper().startswith("SELECT"):
            seen.append((sql, params))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_every_search_query_is_answered_from_an_index(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    """The PostgreSQL expressions must be spelled as in the index definitions, or the planner
    quietly scans the table; this reads each query's plan (sequential scans discouraged, since
    the tables are tiny here)."""
    capture(
        db, settings, tmp_path, ANNA, [make_email(sender=CLARA, to=ANNA, subject="Quote Bright")]
    )
    token_for(db, ANNA)
    with db.session() as session:
        viewer = Viewer.of(session.scalars(select(User).where(User.email == ANNA)).one())
    with statements(db) as seen, db.session() as session:
        assert search(session, viewer, "bright")  # the company, the contact's address, the mail
        assert search(session, viewer, "clara@bright")
    searches = [(sql, params) for sql, params in seen if "MATCH" in sql or "@@" in sql]
    prefixes = [(sql, params) for sql, params in seen if "~>=~" in sql or "address >=" in sql]
    assert len(searches) >= 4 and len(prefixes) >= 1
    with db.engine.connect() as conn:
        if db.is_sqlite:
            for sql, params in searches:
                plan = " | ".join(
                    r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
                )
                assert "VIRTUAL TABLE INDEX" in plan, plan
            for sql, params in prefixes:
                plan = " | ".join(
                    r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
                )
                # The unique constraint's index (sqlite_autoindex_...), as a range.
                assert "USING INDEX" in plan and "<?" in plan, plan
        else:
            conn.execute(text("SET enable_seqscan = off"))
            for sql, params in [*searches, *prefixes]:
                # Mail may also be read newest first off the date index (a common word); with
                # that way closed, its words must be read off their own index.
                mail = "search_doc" in sql
                conn.execute(text(f"SET enable_indexscan = {'off' if mail else 'on'}"))
                plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}", params))
                assert "ix_search_" in plan, f"{sql}\n{plan}"
