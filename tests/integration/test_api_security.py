"""Web security: the headers on every answer, CORS for configured origins only, and rate limits
that hold across several server processes (counted in the database when its table exists)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from server.api.security import (
    DatabaseWindowStore,
    MemoryWindowStore,
    RateLimiter,
    choose_store,
    limiter,
)
from server.app import create_app
from server.config import ConfigError, load_settings
from server.crm.users import add_user, create_token
from server.db import Database

ANNA = "anna@northwind-supplies.com"
ORIGIN = "https://intranet.example.com"
# What the migration is to create; made here by hand (if missing) to test the store.
RATE_LIMIT_TABLE = (
    "CREATE TABLE IF NOT EXISTS rate_limit_windows ("
    " bucket VARCHAR(100) NOT NULL,"
    " window_start BIGINT NOT NULL,"
    " hits INTEGER NOT NULL,"
    " PRIMARY KEY (bucket, window_start))"
)


def token_for(db: Database, address: str = ANNA) -> dict[str, str]:
    with db.session() as session:
        user = add_user(session, address, role="member")
        token = create_token(session, user, expires_in=timedelta(hours=1)).plaintext
    return {"Authorization": f"Bearer {token}"}


def app_with(env: dict[str, str], db: Database, **settings: str) -> Flask:
    return create_app(load_settings({**env, **settings}), db=db)


# -- headers -------------------------------------------------------------------------------------


def test_json_answers_carry_the_strict_headers(client: FlaskClient) -> None:
    response = client.get("/api/v1/lookup?email=a@b.example")
    assert response.status_code == 401
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "Strict-Transport-Security" not in response.headers
    assert "Access-Control-Allow-Origin" not in response.headers


def test_pages_may_be_framed_by_outlook_and_load_office_js(client: FlaskClient) -> None:
    response = client.get("/signin")
    policy = response.headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self' https://appsforoffice.microsoft.com"
    assert "https://login.microsoftonline.com" in directives["connect-src"]
    ancestors = directives["frame-ancestors"].split()
    for host in [
        "'self'",
        "https://outlook.office.com",
        "https://outlook.office365.com",
        "https://outlook.live.com",
        "https://*.cloud.microsoft",
    ]:
        assert host in ancestors
    assert "X-Frame-Options" not in response.headers
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_an_on_premises_outlook_can_be_allowed_to_frame_the_pages(
    env: dict[str, str], db: Database
) -> None:
    app = app_with(env, db, RAPPORT_FRAME_ANCESTORS="https://mail.northwind-supplies.com")
    policy = app.test_client().get("/signin").headers["Content-Security-Policy"]
    assert "https://mail.northwind-supplies.com" in policy.split("frame-ancestors", 1)[1]


def test_hsts_only_when_the_public_url_is_https(env: dict[str, str], db: Database) -> None:
    https = app_with(env, db, RAPPORT_PUBLIC_URL="https://crm.northwind-supplies.com")
    assert (
        https.test_client()
        .get("/healthz")
        .headers["Strict-Transport-Security"]
        .startswith("max-age=")
    )
    local = app_with(env, db, RAPPORT_PUBLIC_URL="http://localhost:8000")
    assert "Strict-Transport-Security" not in local.test_client().get("/healthz").headers


def test_the_api_reference_pages_are_not_framable(client: FlaskClient) -> None:
    response = client.get("/api/v1/reference")
    assert response.status_code == 200
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


# -- CORS ----------------------------------------------------------------------------------------


def test_no_cross_origin_access_unless_configured(client: FlaskClient, db: Database) -> None:
    auth = token_for(db)
    response = client.get("/api/v1/me", headers={**auth, "Origin": "https://evil.example"})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = client.options(
        "/api/v1/me",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_a_configured_origin_gets_preflight_and_cors_headers(
    env: dict[str, str], db: Database
) -> None:
    client = app_with(
        env, db, RAPPORT_CORS_ORIGINS=f"{ORIGIN}, https://other.example.com"
    ).test_client()
    auth = token_for(db)
    preflight = client.options(
        "/api/v1/users/1",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    assert "Origin" in preflight.headers["Vary"]

    response = client.get("/api/v1/me", headers={**auth, "Origin": ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "RateLimit-Remaining" in response.headers["Access-Control-Expose-Headers"]
    assert "Origin" in response.headers["Vary"]
    stranger = client.get("/api/v1/me", headers={**auth, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in stranger.headers
    assert "Origin" in stranger.headers["Vary"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RAPPORT_CORS_ORIGINS", "*"),
        ("RAPPORT_CORS_ORIGINS", "https://example.com/path"),
        ("RAPPORT_CORS_ORIGINS", "example.com"),
        ("RAPPORT_CORS_ORIGINS", 'https://example.com"; script-src *'),
        ("RAPPORT_FRAME_ANCESTORS", "http://mail.example.com"),
        ("RAPPORT_FRAME_ANCESTORS", "https://mail.example.com; script-src *"),
        ("RAPPORT_ENTRA_SCOPE", "api://x/access_as_user"),
        ("RAPPORT_RATE_LIMIT_PER_MINUTE", "-5"),
    ],
)
def test_header_settings_refuse_values_that_could_break_a_header(
    tmp_path: Path, variable: str, value: str
) -> None:
    env = {"RAPPORT_DATA_DIR": str(tmp_path), "RAPPORT_SECRET_KEY": "k" * 40, variable: value}
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert caught.value.variable == variable


def test_header_settings_are_normalised(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "RAPPORT_DATA_DIR": str(tmp_path),
            "RAPPORT_SECRET_KEY": "k" * 40,
            "RAPPORT_CORS_ORIGINS": "https://A.example.com/, http://localhost:3000",
            "RAPPORT_FRAME_ANCESTORS": "https://*.northwind.example",
            "RAPPORT_RATE_LIMIT_PER_MINUTE": "0",
        }
    )
    assert settings.cors_origins == ("https://a.example.com", "http://localhost:3000")
    assert settings.frame_ancestors == ("https://*.northwind.example",)
    assert settings.rate_limit_per_minute == 0
    assert settings.entra_scope == "access_as_user"


# -- rate limits ---------------------------------------------------------------------------------


def test_without_the_table_each_process_counts_alone(db: Database) -> None:
    with db.engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS rate_limit_windows"))
    assert isinstance(choose_store(db), MemoryWindowStore)


def test_with_the_table_limits_hold_across_processes(env: dict[str, str], db: Database) -> None:
    with db.engine.begin() as connection:
        connection.execute(text(RATE_LIMIT_TABLE))
    # Two apps with their own database pools stand for two server processes.
    second_db = Database(db.url)
    try:
        first_app = app_with(env, db, RAPPORT_RATE_LIMIT_PER_MINUTE="4")
        second_app = create_app(
            load_settings({**env, "RAPPORT_RATE_LIMIT_PER_MINUTE": "4"}), db=second_db
        )
        for each, database in [(first_app, db), (second_app, second_db)]:
            # One fixed moment, so the requests cannot straddle two one-minute windows.
            each.extensions["rapport.rate_limiter"] = RateLimiter(
                lambda database=database: choose_store(database), clock=lambda: 90.0
            )
        first, second = first_app.test_client(), second_app.test_client()
        auth = token_for(db)
        codes = [
            (first if n % 2 == 0 else second).get("/api/v1/me", headers=auth).status_code
            for n in range(5)
        ]
        assert codes == [200, 200, 200, 200, 429]
        assert isinstance(limiter(second_app).store, DatabaseWindowStore)
    finally:
        second_db.dispose()


def test_the_database_store_counts_per_bucket_and_window_and_prunes(db: Database) -> None:
    with db.engine.begin() as connection:
        connection.execute(text(RATE_LIMIT_TABLE))
    store = DatabaseWindowStore(db)
    assert [store.hit("token:1", 60, 60) for _ in range(3)] == [1, 2, 3]
    assert store.hit("token:2", 60, 60) == 1
    assert store.hit("token:1", 180, 60) == 1
    with db.engine.connect() as connection:
        windows = connection.execute(
            text("SELECT DISTINCT window_start FROM rate_limit_windows")
        ).scalars()
        assert set(windows) == {180}


def test_windows_are_fixed_minutes() -> None:
    now = [120.0]
    rate = RateLimiter(MemoryWindowStore, clock=lambda: now[0])
    assert [rate.hit("user:1", 2).allowed for _ in range(3)] == [True, True, False]
    now[0] = 179.0
    refused = rate.hit("user:1", 2)
    assert not refused.allowed and refused.reset_seconds == 1
    now[0] = 180.0
    assert rate.hit("user:1", 2).allowed


def test_rate_limits_can_be_switched_off(env: dict[str, str], db: Database) -> None:
    client = app_with(env, db, RAPPORT_RATE_LIMIT_PER_MINUTE="0").test_client()
    auth = token_for(db)
    response = client.get("/api/v1/me", headers=auth)
    assert response.status_code == 200
    assert "RateLimit-Limit" not in response.headers
