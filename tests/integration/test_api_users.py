"""/api/v1/me and /api/v1/users: the team directory, self-service and the users admin."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient
from sqlalchemy import select

from server.crm import passwords
from server.crm.users import add_user, create_token
from server.db import Database
from server.models import AuditEvent, User
from tests.support.jwks import TENANT_ID

ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
BOSS = "boss@northwind-supplies.com"


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fast argon2 parameters: these tests are about the rules, not the cost of a guess."""
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    passwords._dummy_hash.cache_clear()
    yield
    passwords._dummy_hash.cache_clear()


class Team:
    """Anna and Ben (members) and Boss (admin), each with a token."""

    def __init__(self, db: Database) -> None:
        self.ids: dict[str, int] = {}
        self.tokens: dict[str, str] = {}
        with db.session() as session:
            for address, role in [(ANNA, "member"), (BEN, "member"), (BOSS, "admin")]:
                user = add_user(session, address, role=role, name=address.split("@")[0].title())
                self.ids[address] = user.id
                self.tokens[address] = create_token(
                    session, user, expires_in=timedelta(hours=1)
                ).plaintext

    def auth(self, address: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[address]}"}


@pytest.fixture
def team(db: Database) -> Team:
    return Team(db)


def test_me_says_who_i_am_and_how_i_signed_in(client: FlaskClient, team: Team) -> None:
    me = client.get("/api/v1/me", headers=team.auth(ANNA)).get_json()
    assert (me["id"], me["email"], me["role"]) == (team.ids[ANNA], ANNA, "member")
    assert me["sign_in"] == {"password": False, "entra": False, "locked_until": None}
    assert me["credential"]["method"] == "api_token"
    assert me["credential"]["scopes"] == ["api"]


def test_members_see_the_team_but_not_others_sign_in_details(
    client: FlaskClient, team: Team
) -> None:
    listed = client.get("/api/v1/users", headers=team.auth(ANNA)).get_json()
    assert [u["email"] for u in listed["items"]] == [ANNA, BEN, BOSS]
    details = {u["email"]: u["sign_in"] for u in listed["items"]}
    assert details[ANNA] is not None
    assert details[BEN] is None and details[BOSS] is None
    as_admin = client.get("/api/v1/users", headers=team.auth(BOSS)).get_json()
    assert all(u["sign_in"] is not None for u in as_admin["items"])


def test_the_user_list_pages_with_a_cursor(client: FlaskClient, team: Team) -> None:
    first = client.get("/api/v1/users?limit=2", headers=team.auth(BOSS)).get_json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = client.get(
        f"/api/v1/users?limit=2&cursor={first['next_cursor']}", headers=team.auth(BOSS)
    ).get_json()
    assert [u["email"] for u in rest["items"]] == [BOSS]
    assert rest["next_cursor"] is None


def test_an_admin_adds_a_user_who_can_then_sign_in(client: FlaskClient, team: Team) -> None:
    created = client.post(
        "/api/v1/users",
        json={
            "email": "Cara@Northwind-Supplies.com",
            "name": "Cara",
            "role": "member",
            "time_zone": "Europe/Berlin",
            "password": "cara's own passphrase",
        },
        headers=team.auth(BOSS),
    )
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["email"] == "cara@northwind-supplies.com"
    assert body["time_zone"] == "Europe/Berlin"
    assert body["sign_in"]["password"] is True
    signed_in = client.post(
        "/api/v1/auth/password",
        json={"email": "cara@northwind-supplies.com", "password": "cara's own passphrase"},
    )
    assert signed_in.status_code == 200
    again = client.post("/api/v1/users", json={"email": ANNA}, headers=team.auth(BOSS))
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"email": "not-an-address"}, 400, "email"),
        ({"email": "x@northwind-supplies.com", "role": "owner"}, 400, "role"),
        ({"email": "x@northwind-supplies.com", "time_zone": "Mars/Olympus"}, 400, "time_zone"),
        ({"email": "x@northwind-supplies.com", "password": "short"}, 400, "password"),
        ({"email": "x@northwind-supplies.com", "shoe_size": 44}, 422, "shoe_size"),
        ({}, 422, "email"),
    ],
)
def test_bad_new_users_are_refused_naming_the_field(
    client: FlaskClient,
    team: Team,
    db: Database,
    payload: dict[str, object],
    status: int,
    field: str,
) -> None:
    response = client.post("/api/v1/users", json=payload, headers=team.auth(BOSS))
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["field"] == field
    with db.session() as session:
        assert session.scalar(select(User).where(User.email == "x@northwind-supplies.com")) is None


def test_people_change_their_own_name_and_time_zone(client: FlaskClient, team: Team) -> None:
    url = f"/api/v1/users/{team.ids[ANNA]}"
    changed = client.patch(
        url, json={"name": "Anna Berg", "time_zone": "America/New_York"}, headers=team.auth(ANNA)
    )
    assert changed.status_code == 200
    assert (changed.get_json()["name"], changed.get_json()["time_zone"]) == (
        "Anna Berg",
        "America/New_York",
    )
    bad_zone = client.patch(url, json={"time_zone": "../../etc/passwd"}, headers=team.auth(ANNA))
    assert bad_zone.status_code == 400
    assert bad_zone.get_json()["error"]["field"] == "time_zone"
    other = client.patch(
        f"/api/v1/users/{team.ids[BEN]}", json={"name": "Benny"}, headers=team.auth(ANNA)
    )
    assert other.status_code == 403


def test_an_admin_changes_roles_and_disables_people(
    client: FlaskClient, team: Team, db: Database
) -> None:
    ben = f"/api/v1/users/{team.ids[BEN]}"
    promoted = client.patch(ben, json={"role": "admin"}, headers=team.auth(BOSS))
    assert promoted.status_code == 200 and promoted.get_json()["role"] == "admin"
    disabled = client.patch(ben, json={"disabled": True}, headers=team.auth(BOSS))
    assert disabled.get_json()["disabled"] is True
    # A disabled user's tokens stop working at once.
    assert client.get("/api/v1/me", headers=team.auth(BEN)).status_code == 401
    client.patch(ben, json={"disabled": False}, headers=team.auth(BOSS))
    assert client.get("/api/v1/me", headers=team.auth(BEN)).status_code == 200
    with db.session() as session:
        actions = list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.entity_id == team.ids[BEN], AuditEvent.user_id == team.ids[BOSS])
                .order_by(AuditEvent.id)
            )
        )
    # the service says what changed; each request is recorded too (server/api/audit.py)
    said = [a for a in actions if a.startswith("user.")]
    assert said == ["user.role_changed", "user.disabled", "user.enabled"]
    assert actions.count("PATCH /api/v1/users/<int:user_id>") == 3


def test_the_last_admin_cannot_be_demoted_or_disabled(client: FlaskClient, team: Team) -> None:
    boss = f"/api/v1/users/{team.ids[BOSS]}"
    for change in [{"role": "member"}, {"disabled": True}]:
        response = client.patch(boss, json=change, headers=team.auth(BOSS))
        assert response.status_code == 409
        assert "last active admin" in response.get_json()["error"]["message"]
    client.patch(f"/api/v1/users/{team.ids[ANNA]}", json={"role": "admin"}, headers=team.auth(BOSS))
    assert client.patch(boss, json={"role": "member"}, headers=team.auth(BOSS)).status_code == 200


def test_an_admin_unlinks_a_microsoft_account(
    client: FlaskClient, team: Team, db: Database
) -> None:
    with db.session() as session:
        anna = session.get(User, team.ids[ANNA])
        assert anna is not None
        anna.entra_tenant_id, anna.entra_object_id = TENANT_ID, "oid-old"
    url = f"/api/v1/users/{team.ids[ANNA]}"
    refused = client.patch(url, json={"unlink_entra": True}, headers=team.auth(ANNA))
    assert refused.status_code == 403
    response = client.patch(url, json={"unlink_entra": True}, headers=team.auth(BOSS))
    assert response.get_json()["sign_in"]["entra"] is False


def test_unknown_users_are_404(client: FlaskClient, team: Team) -> None:
    assert client.get("/api/v1/users/999999", headers=team.auth(ANNA)).status_code == 404
    missing = client.patch("/api/v1/users/999999", json={"name": "x"}, headers=team.auth(BOSS))
    assert missing.status_code == 404
