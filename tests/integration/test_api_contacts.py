"""/api/v1/contacts: create, read, change, delete, list with filters, sort and cursor paging."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from server.config import Settings
from server.crm.settings import set_setting
from server.crm.users import add_user, create_token
from server.db import Database
from server.mail_ingest.importer import import_files
from server.models import (
    Activity,
    ActivityParticipant,
    AuditEvent,
    Contact,
    Deal,
    DealContact,
    FollowUp,
    Pipeline,
    Stage,
    User,
)
from tests.support.mail import BASE_DATE, days, make_email, write_maildir

ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
ADMIN = "admin@northwind-supplies.com"


# -- helpers shared by the API tests of contacts, companies, custom fields, merge and CSV ---------


def token_for(db: Database, address: str, role: str = "member") -> str:
    with db.session() as session:
        user = add_user(session, address, role=role)
        return create_token(session, user, expires_in=timedelta(days=1)).plaintext


def user_id(db: Database, address: str) -> int:
    with db.session() as session:
        found = session.scalar(select(User.id).where(User.email == address))
        assert found is not None
        return found


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def capture(
    db: Database, settings: Settings, tmp_path: Path, owner: str, emails: list[bytes], **kw: Any
) -> None:
    box = write_maildir(tmp_path / f"{owner.split('@')[0]}-{len(list(tmp_path.iterdir()))}", emails)
    import_files(db, settings, [box], owner=owner, jobs=1, **kw)


def no_auto_create(db: Database) -> None:
    """Capture stores participants but creates no contacts (so people can be added by hand)."""
    with db.session() as session:
        set_setting(session, "capture.auto_create_contacts", "none")


def create(client: FlaskClient, token: str, path: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/api/v1/{path}", json=body, headers=auth(token))
    assert response.status_code == 201, response.get_json()
    result: dict[str, Any] = response.get_json()
    return result


def make_deal(
    db: Database,
    title: str,
    *,
    contact_ids: tuple[int, ...] = (),
    company_id: int | None = None,
    status: str = "open",
) -> int:
    with db.session() as session:
        pipeline = session.scalar(select(Pipeline).where(Pipeline.name == "Sales"))
        if pipeline is None:
            pipeline = Pipeline(name="Sales", is_default=True)
            pipeline.stages.append(Stage(name="Proposal", position=1, probability=50))
            session.add(pipeline)
            session.flush()
        deal = Deal(
            title=title,
            pipeline_id=pipeline.id,
            stage_id=pipeline.stages[0].id,
            status=status,
            company_id=company_id,
        )
        session.add(deal)
        session.flush()
        for contact_id in contact_ids:
            session.add(DealContact(deal_id=deal.id, contact_id=contact_id))
        return deal.id


def make_follow_up(
    db: Database, title: str, *, contact_id: int | None = None, deal_id: int | None = None
) -> int:
    with db.session() as session:
        follow_up = FollowUp(
            title=title, contact_id=contact_id, deal_id=deal_id, due_at=BASE_DATE + days(7)
        )
        session.add(follow_up)
        session.flush()
        return follow_up.id


def make_note(
    db: Database, text: str, *, contact_id: int | None = None, company_id: int | None = None
) -> int:
    """A note, as the notes service stores one: an activity of kind note about a contact."""
    with db.session() as session:
        note = Activity(
            kind="note",
            occurred_at=BASE_DATE + days(3),
            subject=text,
            snippet=text,
            body_text=text,
            content_level="full",
            company_id=company_id,
        )
        session.add(note)
        session.flush()
        if contact_id is not None:
            session.add(
                ActivityParticipant(
                    activity_id=note.id,
                    role="about",
                    address=None,
                    contact_id=contact_id,
                    occurred_at=note.occurred_at,
                )
            )
        return note.id


# -- tests ----------------------------------------------------------------------------------------


def test_contacts_need_a_token(client: FlaskClient) -> None:
    assert client.get("/api/v1/contacts").status_code == 401
    assert client.get("/api/v1/contacts/1").status_code == 401
    response = client.post("/api/v1/contacts", json={"name": "X"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_create_read_update_and_delete_a_contact(client: FlaskClient, db: Database) -> None:
    token = token_for(db, ANNA, role="admin")
    created = create(
        client,
        token,
        "contacts",
        name="Clara Jensen",
        emails=["Clara Jensen <Clara@Brightline-Dental.co.uk>", "clara.j@gmail.com"],
        title="Practice manager",
        phone="+44 20 7946 0000",
        company_name="Brightline Dental",
        lifecycle_stage="qualified",
        tags=["VIP", " dentists  uk "],
    )
    assert created["emails"] == ["clara@brightline-dental.co.uk", "clara.j@gmail.com"]
    assert created["company"]["name"] == "Brightline Dental"
    assert created["tags"] == ["dentists uk", "vip"]
    assert created["source"] == "user"
    assert created["version"] == 1

    contact_id = created["id"]
    detail = client.get(f"/api/v1/contacts/{contact_id}", headers=auth(token)).get_json()
    assert detail["name"] == "Clara Jensen"
    assert detail["timeline"] == [] and detail["deals"] == [] and detail["follow_ups"] == []

    # The company was created with the contact's company domain (not the free-mail one).
    company = client.get(
        f"/api/v1/companies/{created['company']['id']}", headers=auth(token)
    ).get_json()
    assert company["domains"] == ["brightline-dental.co.uk"]

    changed = client.patch(
        f"/api/v1/contacts/{contact_id}",
        json={"version": 1, "title": "Owner", "remove_emails": ["clara.j@gmail.com"], "tags": []},
        headers=auth(token),
    )
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert (body["title"], body["emails"], body["tags"]) == (
        "Owner",
        ["clara@brightline-dental.co.uk"],
        [],
    )
    assert body["version"] == 2
    assert body["phone"] == "+44 20 7946 0000"  # untouched fields stay

    deleted = client.delete(f"/api/v1/contacts/{contact_id}", headers=auth(token))
    assert deleted.status_code == 204
    assert client.get(f"/api/v1/contacts/{contact_id}", headers=auth(token)).status_code == 404
    with db.session() as session:
        audit = session.scalar(select(AuditEvent).where(AuditEvent.action == "contact.delete"))
        assert audit is not None and audit.entity_id == contact_id


def test_an_address_belongs_to_one_contact(client: FlaskClient, db: Database) -> None:
    token = token_for(db, ANNA)
    first = create(
        client, token, "contacts", name="Clara", emails=["clara@brightline-dental.co.uk"]
    )
    other = create(client, token, "contacts", name="Dan", emails=["dan@brightline-dental.co.uk"])

    again = client.post(
        "/api/v1/contacts",
        json={"name": "Clara twin", "emails": ["CLARA@brightline-dental.co.uk"]},
        headers=auth(token),
    )
    assert again.status_code == 409
    error = again.get_json()["error"]
    assert error["field"] == "emails"
    assert "clara@brightline-dental.co.uk" in error["message"]
    assert str(first["id"]) in error["message"]

    steal = client.patch(
        f"/api/v1/contacts/{other['id']}",
        json={"version": other["version"], "add_emails": ["clara@brightline-dental.co.uk"]},
        headers=auth(token),
    )
    assert steal.status_code == 409
    assert steal.get_json()["error"]["field"] == "add_emails"
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 2


def test_a_stale_version_is_refused_and_nothing_changes(client: FlaskClient, db: Database) -> None:
    token = token_for(db, ANNA)
    contact = create(client, token, "contacts", name="Clara", emails=["clara@example.org"])
    url = f"/api/v1/contacts/{contact['id']}"
    first = client.patch(url, json={"version": 1, "title": "CEO"}, headers=auth(token))
    assert first.status_code == 200

    stale = client.patch(
        url,
        json={"version": 1, "title": "Intern", "add_emails": ["c2@example.org"], "tags": ["x"]},
        headers=auth(token),
    )
    assert stale.status_code == 409
    assert stale.get_json()["error"]["code"] == "conflict"
    now = client.get(url, headers=auth(token)).get_json()
    assert (now["title"], now["emails"], now["tags"], now["version"]) == (
        "CEO",
        ["clara@example.org"],
        [],
        2,
    )

    missing = client.patch(url, json={"title": "No version"}, headers=auth(token))
    assert missing.status_code == 422
    assert missing.get_json()["error"]["field"] == "version"


def test_bad_input_names_the_field(client: FlaskClient, db: Database) -> None:
    token = token_for(db, ANNA)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"name": "X", "lifecycle_stage": "friend"}, 400, "lifecycle_stage"),
        ({"name": "X", "emails": ["not an address"]}, 400, "emails"),
        ({"name": "X", "email": "x@example.org"}, 422, "email"),
        ({"name": "X", "owner_id": 999}, 400, "owner_id"),
        ({"name": "X", "company_id": 999}, 400, "company_id"),
        ({"name": "Nul\x00byte"}, 400, "name"),
        ({"name": "X" * 301}, 422, "name"),
        ({"name": "X", "tags": ["a;b"]}, 400, "tags"),
        ({"name": "X", "custom_fields": {"size": 3}}, 400, "custom_fields.size"),
    ]
    for body, status, field in cases:
        response = client.post("/api/v1/contacts", json=body, headers=auth(token))
        assert response.status_code == status, (body, response.get_json())
        assert response.get_json()["error"]["field"] == field, body

    for query, field in [
        ("cursor=%%%", "cursor"),
        ("cursor=WyJ4IiwgMV0", "cursor"),  # a well-formed cursor for another sort
        ("sort=size", "sort"),
        ("limit=0", "limit"),
        ("colour=red", "colour"),
        ("cf.nothing=1", "cf.nothing"),
        ("q=%00", "q"),
    ]:
        response = client.get(
            f"/api/v1/contacts?{query}&sort=created_at"
            if "cursor" in query
            else f"/api/v1/contacts?{query}",
            headers=auth(token),
        )
        assert response.status_code in (400, 422), (query, response.get_json())
        assert response.get_json()["error"]["field"] == field, query

    assert client.get("/api/v1/contacts/424242", headers=auth(token)).status_code == 404
    huge = client.get(f"/api/v1/contacts/{2**70}", headers=auth(token))
    assert huge.status_code == 404
    patch_missing = client.patch(
        "/api/v1/contacts/424242", json={"version": 1}, headers=auth(token)
    )
    assert patch_missing.status_code == 404
    null_name = client.post("/api/v1/contacts", json={"name": "Y"}, headers=auth(token)).get_json()
    refused = client.patch(
        f"/api/v1/contacts/{null_name['id']}",
        json={"version": 1, "name": None},
        headers=auth(token),
    )
    assert refused.status_code == 422
    assert refused.get_json()["error"]["field"] == "name"

    # A hand-made timeline cursor with an id no database can hold is refused, not a 500.
    forged = base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00|" + b"9" * 30).decode()
    timeline = client.get(
        f"/api/v1/contacts/{null_name['id']}/timeline?cursor={forged}", headers=auth(token)
    )
    assert timeline.status_code == 400
    assert timeline.get_json()["error"]["field"] == "cursor"


def _page_through(client: FlaskClient, token: str, query: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10):
        url = f"/api/v1/contacts?limit=25&{query}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(url, headers=auth(token))
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert len(body["items"]) <= 25
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("paging did not end")


def test_paging_through_sixty_contacts_has_no_gaps_or_duplicates(
    client: FlaskClient, db: Database
) -> None:
    token = token_for(db, ANNA)
    with db.session() as session:
        for n in range(60):
            session.add(
                Contact(
                    # Ties on purpose: three people share each name, so ids break them.
                    name=f"Person {n // 3:02d}",
                    last_contacted_at=None if n % 4 == 0 else BASE_DATE + timedelta(hours=n % 7),
                    created_at=BASE_DATE + timedelta(minutes=n % 5),
                )
            )
    for query in (
        "sort=name",
        "sort=name&order=desc",
        "sort=created_at",
        "sort=updated_at&order=desc",
        "sort=last_contacted_at",
        "sort=last_contacted_at&order=desc",
    ):
        seen = _page_through(client, token, query)
        ids = [c["id"] for c in seen]
        assert len(ids) == 60 and len(set(ids)) == 60, query
    by_name = [c["name"] for c in _page_through(client, token, "sort=name")]
    assert by_name == sorted(by_name)
    recent = _page_through(client, token, "sort=last_contacted_at&order=desc")
    stamps = [c["last_contacted_at"] for c in recent]
    assert stamps[:45] == sorted(stamps[:45], reverse=True) and None not in stamps[:45]
    assert stamps[45:] == [None] * 15  # never contacted: last when the most recent come first


def test_filters_narrow_the_list(client: FlaskClient, db: Database) -> None:
    admin = token_for(db, ADMIN, role="admin")
    token = token_for(db, ANNA)
    anna = user_id(db, ANNA)
    for key, kind in (("seats", "number"), ("renewal", "date"), ("budget", "money")):
        response = client.post(
            "/api/v1/custom-fields",
            json={"entity": "contact", "key": key, "label": key.title(), "field_type": kind},
            headers=auth(admin),
        )
        assert response.status_code == 201, response.get_json()
    clara = create(
        client,
        token,
        "contacts",
        name="Clara Jensen",
        emails=["clara@brightline-dental.co.uk"],
        company_name="Brightline",
        owner_id=anna,
        tags=["vip"],
        lifecycle_stage="customer",
        custom_fields={
            "seats": 40,
            "renewal": "2026-03-01",
            "budget": {"amount": "1200", "currency": "eur"},
        },
    )
    dan = create(
        client,
        token,
        "contacts",
        name="Dan O'Neill",
        emails=["dan@oneill.ie"],
        custom_fields={
            "seats": 5,
            "renewal": "2027-01-15",
            "budget": {"amount": 99.5, "currency": "EUR"},
        },
    )
    create(client, token, "contacts", name="Erin Clarke", emails=["erin@example.org"])
    assert clara["custom_fields"]["budget"] == {"amount": "1200.00", "currency": "EUR"}
    with db.session() as session:
        session.get_one(Contact, clara["id"]).last_contacted_at = datetime(2026, 5, 1, tzinfo=UTC)
        session.get_one(Contact, dan["id"]).last_contacted_at = datetime(2026, 8, 1, tzinfo=UTC)

    def names(query: str) -> list[str]:
        response = client.get(f"/api/v1/contacts?{query}", headers=auth(token))
        assert response.status_code == 200, (query, response.get_json())
        return [c["name"] for c in response.get_json()["items"]]

    assert names("q=cla") == ["Clara Jensen", "Erin Clarke"]  # first name, and a later word
    assert names("q=dan@") == ["Dan O'Neill"]  # an address prefix
    assert names("q=100%25") == []  # LIKE wildcards are literal
    assert names(f"owner_id={anna}") == ["Clara Jensen"]
    assert names("lifecycle_stage=customer") == ["Clara Jensen"]
    assert names("tag=VIP") == ["Clara Jensen"]
    assert names(f"company_id={clara['company']['id']}") == ["Clara Jensen"]
    assert names("last_contacted_after=2026-06-01") == ["Dan O'Neill"]
    assert names("last_contacted_before=2026-06-01T00:00:00Z") == ["Clara Jensen"]
    assert names("never_contacted=true") == ["Erin Clarke"]
    assert names("never_contacted=false") == ["Clara Jensen", "Dan O'Neill"]
    assert names("cf.seats=40") == ["Clara Jensen"]
    assert names("cf.seats.gte=5&cf.seats.lte=39") == ["Dan O'Neill"]
    assert names("cf.renewal.gte=2026-12-31") == ["Dan O'Neill"]
    assert names("cf.renewal=2026-03-01") == ["Clara Jensen"]
    assert names("cf.budget.gte=100") == ["Clara Jensen"]
    assert names("cf.budget.lte=99.50") == ["Dan O'Neill"]

    wrong = client.get("/api/v1/contacts?cf.seats=many", headers=auth(token))
    assert wrong.status_code == 400
    assert wrong.get_json()["error"]["field"] == "cf.seats"


def test_an_added_address_brings_its_past_mail(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    token = token_for(db, ANNA)
    no_auto_create(db)
    clara_old = "clara@old-practice.co.uk"
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [
            make_email(sender=clara_old, to=ANNA, subject="From my old job", date=BASE_DATE),
            make_email(
                sender="clara@brightline-dental.co.uk",
                to=ANNA,
                subject="Hello",
                date=BASE_DATE + days(1),
            ),
        ],
    )
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 0

    # Creating a contact links the mail of its address...
    clara = create(
        client, token, "contacts", name="Clara", emails=["clara@brightline-dental.co.uk"]
    )
    assert clara["last_contacted_at"] is not None
    detail = client.get(f"/api/v1/contacts/{clara['id']}", headers=auth(token)).get_json()
    assert [a["subject"] for a in detail["timeline"]] == ["Hello"]

    # ...and so does adding an address later.
    response = client.patch(
        f"/api/v1/contacts/{clara['id']}",
        json={"version": clara["version"], "add_emails": [clara_old]},
        headers=auth(token),
    )
    assert response.status_code == 200, response.get_json()
    detail = client.get(f"/api/v1/contacts/{clara['id']}", headers=auth(token)).get_json()
    assert [a["subject"] for a in detail["timeline"]] == ["Hello", "From my old job"]

    # Taking the address off takes its mail with it (the mail keeps the address).
    response = client.patch(
        f"/api/v1/contacts/{clara['id']}",
        json={"version": detail["version"], "remove_emails": [clara_old]},
        headers=auth(token),
    )
    assert response.status_code == 200
    page = client.get(f"/api/v1/contacts/{clara['id']}/timeline", headers=auth(token)).get_json()
    assert [a["subject"] for a in page["items"]] == ["Hello"]
    with db.session() as session:
        kept = session.scalars(
            select(ActivityParticipant.address).where(ActivityParticipant.address == clara_old)
        ).all()
        assert kept == [clara_old]


def test_a_name_typed_by_a_person_is_not_renamed_by_capture(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    token = token_for(db, ANNA)
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [make_email(sender="C Jensen <clara@brightline-dental.co.uk>", to=ANNA)],
    )
    listed = client.get("/api/v1/contacts?q=clara@", headers=auth(token)).get_json()["items"]
    assert [(c["name"], c["source"]) for c in listed] == [("C Jensen", "capture")]
    contact = listed[0]
    response = client.patch(
        f"/api/v1/contacts/{contact['id']}",
        json={"version": contact["version"], "name": "Clara Jensen"},
        headers=auth(token),
    )
    assert response.status_code == 200
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [
            make_email(
                sender="Dr. C. Jensen <clara@brightline-dental.co.uk>",
                to=ANNA,
                subject="Later",
                date=BASE_DATE + days(30),
            )
        ],
    )
    after = client.get(f"/api/v1/contacts/{contact['id']}", headers=auth(token)).get_json()
    assert after["name"] == "Clara Jensen"
    assert after["timeline"][0]["subject"] == "Later"


def test_the_contact_page_shows_timeline_deals_and_follow_ups(
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
                sender="clara@brightline-dental.co.uk",
                to=ANNA,
                subject=f"Mail {n}",
                date=BASE_DATE + days(n),
            )
            for n in range(3)
        ],
    )
    contact = client.get("/api/v1/contacts?q=clara", headers=auth(token)).get_json()["items"][0]
    open_deal = make_deal(db, "40 chairs", contact_ids=(contact["id"],))
    make_deal(db, "Old order", contact_ids=(contact["id"],), status="won")
    make_follow_up(db, "Call back", contact_id=contact["id"])
    make_note(db, "Prefers mornings", contact_id=contact["id"])

    detail = client.get(f"/api/v1/contacts/{contact['id']}?limit=2", headers=auth(token)).get_json()
    assert [a["subject"] for a in detail["timeline"]] == ["Prefers mornings", "Mail 2"]
    assert [d["id"] for d in detail["deals"]] == [open_deal]
    assert detail["deals"][0]["stage"]["name"] == "Proposal"
    assert [f["title"] for f in detail["follow_ups"]] == ["Call back"]
    more = client.get(
        f"/api/v1/contacts/{contact['id']}/timeline?limit=2&cursor={detail['timeline_next_cursor']}",
        headers=auth(token),
    ).get_json()
    assert [a["subject"] for a in more["items"]] == ["Mail 1", "Mail 0"]
    assert more["next_cursor"] is None


def test_deleting_is_for_an_admin_or_the_owner(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna, ben = token_for(db, ANNA), token_for(db, BEN)
    admin = token_for(db, ADMIN, role="admin")
    capture(
        db, settings, tmp_path, ANNA, [make_email(sender="clara@brightline-dental.co.uk", to=ANNA)]
    )
    captured = client.get("/api/v1/contacts?q=clara", headers=auth(anna)).get_json()["items"][0]
    mine = create(client, anna, "contacts", name="Anna's", owner_id=user_id(db, ANNA))

    assert client.delete(f"/api/v1/contacts/{mine['id']}", headers=auth(ben)).status_code == 403
    assert (
        client.delete(f"/api/v1/contacts/{captured['id']}", headers=auth(anna)).status_code == 403
    )
    assert client.delete(f"/api/v1/contacts/{mine['id']}", headers=auth(anna)).status_code == 204

    deal = make_deal(db, "Chairs", contact_ids=(captured["id"],))
    alone = make_follow_up(db, "Call Clara", contact_id=captured["id"])
    with_deal = make_follow_up(db, "Send the quote", contact_id=captured["id"], deal_id=deal)
    assert (
        client.delete(f"/api/v1/contacts/{captured['id']}", headers=auth(admin)).status_code == 204
    )
    with db.session() as session:
        participant = session.scalars(
            select(ActivityParticipant).where(
                ActivityParticipant.address == "clara@brightline-dental.co.uk"
            )
        ).one()
        assert participant.contact_id is None  # the mail keeps the address
        assert session.get(Deal, deal) is not None
        assert session.scalars(select(DealContact).where(DealContact.deal_id == deal)).all() == []
        assert session.get(FollowUp, alone) is None
        kept = session.get(FollowUp, with_deal)
        assert kept is not None and kept.contact_id is None and kept.deal_id == deal


def test_a_full_address_list_names_the_primary_address_first(
    client: FlaskClient, db: Database
) -> None:
    token = token_for(db, ANNA)
    contact = create(
        client, token, "contacts", name="Clara", emails=["a@example.org", "b@example.org"]
    )
    response = client.patch(
        f"/api/v1/contacts/{contact['id']}",
        json={"version": 1, "emails": ["b@example.org", "a@example.org"]},
        headers=auth(token),
    )
    assert response.status_code == 200
    assert response.get_json()["emails"] == ["b@example.org", "a@example.org"]
    assert response.get_json()["version"] == 2
