"""Password sign-in: the page the pane opens in a dialog, the call behind it, the lockout, and
changing passwords."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from server.api.security import MemoryWindowStore, RateLimiter
from server.app import create_app
from server.config import load_settings
from server.crm import passwords
from server.crm.users import add_user, create_token, set_password
from server.db import Database
from server.models import AuditEvent, User, utcnow

ANNA = "anna@northwind-supplies.com"
PASSWORD = "correct horse battery staple"
SIGN_IN = "/api/v1/auth/password"


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fast argon2 parameters: these tests are about the rules, not the cost of a guess."""
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    passwords._dummy_hash.cache_clear()
    yield
    passwords._dummy_hash.cache_clear()


def with_password(
    db: Database, address: str = ANNA, password: str = PASSWORD, **fields: object
) -> int:
    with db.session() as session:
        user = add_user(session, address, role="member", name="Anna Berg")
        set_password(session, user, password)
        for name, value in fields.items():
            setattr(user, name, value)
        return user.id


def sign_in(client: FlaskClient, email: str, password: str) -> tuple[int, dict[str, object]]:
    response = client.post(SIGN_IN, json={"email": email, "password": password})
    return response.status_code, response.get_json()


def test_the_sign_in_page_is_served_for_the_office_dialog(client: FlaskClient) -> None:
    page = client.get("/signin")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'src="/signin/signin.js"' in html
    assert "appsforoffice.microsoft.com/lib/1/hosted/office.js" in html
    assert "X-Frame-Options" not in page.headers
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self' https://appsforoffice.microsoft.com" in policy
    assert "https://outlook.office.com" in policy.split("frame-ancestors", 1)[1]
    script = client.get("/signin/signin.js")
    assert script.status_code == 200
    assert "messageParent" in script.get_data(as_text=True)
    assert "sessionStorage" in script.get_data(as_text=True)
    assert client.get("/signin/signin.css").status_code == 200
    assert client.get("/signin/..%2Fpyproject.toml").status_code == 404
    assert client.get("/signin/secrets.txt").status_code == 404


def test_a_password_sign_in_returns_a_twelve_hour_api_token(
    client: FlaskClient, db: Database
) -> None:
    user_id = with_password(db)
    response = client.post(
        SIGN_IN, json={"email": "Anna@Northwind-Supplies.com", "password": PASSWORD}
    )
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["user"]["id"] == user_id
    assert body["scopes"] == ["api"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.get_json()["credential"]["method"] == "api_token"
    with db.session() as session:
        user = session.get(User, user_id)
        assert user is not None
        token = user.tokens[0]
        assert token.expires_at is not None
        lifetime = token.expires_at - token.created_at
        assert timedelta(hours=11) < lifetime <= timedelta(hours=12)


def test_passwords_are_stored_as_argon2id_hashes(
    monkeypatch: pytest.MonkeyPatch, db: Database
) -> None:
    monkeypatch.undo()  # the production parameters, not the tests' cheap ones
    user_id = with_password(db)
    with db.session() as session:
        user = session.get(User, user_id)
        assert user is not None and user.password_hash is not None
        assert user.password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert PASSWORD not in user.password_hash


def test_unknown_address_and_wrong_password_get_the_same_answer(
    client: FlaskClient, db: Database
) -> None:
    with_password(db)
    with db.session() as session:
        add_user(session, "entra.only@northwind-supplies.com", role="member")
    wrong = sign_in(client, ANNA, "not the password at all")
    unknown = sign_in(client, "nobody@northwind-supplies.com", PASSWORD)
    no_password = sign_in(client, "entra.only@northwind-supplies.com", PASSWORD)
    not_an_address = sign_in(client, "nobody", PASSWORD)
    assert wrong == unknown == no_password == not_an_address
    assert wrong[0] == 401


def test_five_failures_lock_the_account_for_fifteen_minutes(
    client: FlaskClient, db: Database
) -> None:
    user_id = with_password(db)
    for _ in range(5):
        assert sign_in(client, ANNA, "wrong password!")[0] == 401
    # Locked: even the right password is refused, with the same answer as a wrong one.
    locked = sign_in(client, ANNA, PASSWORD)
    assert locked == sign_in(client, "nobody@northwind-supplies.com", PASSWORD)
    with db.session() as session:
        user = session.get(User, user_id)
        assert user is not None and user.locked_until is not None
        remaining = user.locked_until - utcnow()
        assert timedelta(minutes=14) < remaining <= timedelta(minutes=15)
        assert session.scalar(select(AuditEvent.action).where(AuditEvent.action == "user.locked"))
        # A quarter of an hour later...
        user.locked_until = utcnow() - timedelta(seconds=1)
    assert sign_in(client, ANNA, PASSWORD)[0] == 200


def test_a_success_resets_the_failure_count(client: FlaskClient, db: Database) -> None:
    user_id = with_password(db)
    for _ in range(4):
        sign_in(client, ANNA, "wrong password!")
    assert sign_in(client, ANNA, PASSWORD)[0] == 200
    for _ in range(4):
        sign_in(client, ANNA, "wrong password!")
    assert sign_in(client, ANNA, PASSWORD)[0] == 200
    with db.session() as session:
        user = session.get(User, user_id)
        assert user is not None and user.failed_logins == 0 and user.locked_until is None


def test_a_disabled_user_cannot_sign_in(client: FlaskClient, db: Database) -> None:
    with_password(db, disabled_at=utcnow())
    assert sign_in(client, ANNA, PASSWORD)[0] == 401


def test_sign_in_attempts_are_limited_per_client_address(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    with_password(db)
    # One fixed moment, so the attempts cannot straddle two one-minute windows.
    app.extensions["rapport.rate_limiter"] = RateLimiter(MemoryWindowStore, clock=lambda: 90.0)
    codes = [sign_in(client, f"nobody{n}@example.com", "whatever pass")[0] for n in range(21)]
    assert codes[:20] == [401] * 20
    assert codes[20] == 429


def test_bad_sign_in_payloads_name_the_field(client: FlaskClient) -> None:
    response = client.post(SIGN_IN, json={"email": ANNA})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "password"
    huge = client.post(SIGN_IN, json={"email": ANNA, "password": "x" * 5000})
    assert huge.status_code == 422


def test_users_change_their_own_password_with_the_old_one(
    client: FlaskClient, db: Database
) -> None:
    with_password(db)
    _, body = sign_in(client, ANNA, PASSWORD)
    auth = {"Authorization": f"Bearer {body['token']}"}
    wrong = client.post(
        "/api/v1/users/me/password",
        json={"old_password": "a wrong guess!", "new_password": "a brand new passphrase"},
        headers=auth,
    )
    assert wrong.status_code == 403
    assert wrong.get_json()["error"]["field"] == "old_password"
    short = client.post(
        "/api/v1/users/me/password",
        json={"old_password": PASSWORD, "new_password": "short"},
        headers=auth,
    )
    assert short.status_code == 400
    assert short.get_json()["error"]["field"] == "password"
    changed = client.post(
        "/api/v1/users/me/password",
        json={"old_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=auth,
    )
    assert changed.status_code == 204
    assert sign_in(client, ANNA, PASSWORD)[0] == 401
    assert sign_in(client, ANNA, "a brand new passphrase")[0] == 200


def test_wrong_old_passwords_count_towards_the_lockout(client: FlaskClient, db: Database) -> None:
    user_id = with_password(db)
    with db.session() as session:
        user = session.get(User, user_id)
        assert user is not None
        token = create_token(session, user, expires_in=timedelta(hours=1)).plaintext
    for _ in range(5):
        client.post(
            "/api/v1/users/me/password",
            json={"old_password": "guess guess guess", "new_password": "whatever whatever"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert sign_in(client, ANNA, PASSWORD)[0] == 401


def test_an_admin_sets_a_password_and_lifts_the_lockout(client: FlaskClient, db: Database) -> None:
    user_id = with_password(db)
    with db.session() as session:
        session.execute(
            update(User)
            .where(User.id == user_id)
            .values(locked_until=utcnow() + timedelta(minutes=10))
        )
        admin = add_user(session, "boss@northwind-supplies.com", role="admin")
        token = create_token(session, admin, expires_in=timedelta(hours=1)).plaintext
    response = client.post(
        f"/api/v1/users/{user_id}/password",
        json={"password": "set by the admin 42"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 204
    assert sign_in(client, ANNA, "set by the admin 42")[0] == 200


def test_the_pane_can_sign_in_from_a_configured_origin(env: dict[str, str], db: Database) -> None:
    app: Flask = create_app(
        load_settings({**env, "RAPPORT_CORS_ORIGINS": "https://intranet.example.com"}), db=db
    )
    client = app.test_client()
    with_password(db)
    preflight = client.options(
        SIGN_IN,
        headers={
            "Origin": "https://intranet.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 204
    response = client.post(
        SIGN_IN,
        json={"email": ANNA, "password": PASSWORD},
        headers={"Origin": "https://intranet.example.com"},
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://intranet.example.com"
    assert "Access-Control-Allow-Credentials" not in response.headers
