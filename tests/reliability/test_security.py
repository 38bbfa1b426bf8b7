"""The security suite of issue 15: what tests/integration does not already prove.

The matrix of every endpoint × caller (tests/integration/test_authz_matrix.py), bad Entra claims
against a local key set (test_api_auth.py), headers and CORS basics (test_api_security.py),
sign-in limits (test_api_signin.py), rotation of the columns (test_secrets.py) and schemathesis
(test_schemathesis.py) stay where they are; docs/reliability.md maps each point of the issue to
its test. Added here:

- another member's private mail never shows through any GET answer of the app, for anyone;
- Entra ID tokens against the identity emulator's real signing key: expired, meant for Graph,
  another issuer or tenant, signed by another key, alg=none, HS256 keyed with the public key,
  a payload swapped under a valid signature; Rapport API tokens revoked by the API and the CLI;
- CSRF: no cookie is ever set or read, so a cross-site form post carries no credential;
- security headers on every kind of answer, errors included; CORS on errors and preflights;
- rate limits per Entra user and per sign-in address answer 429 with Retry-After and change
  nothing;
- secrets (IMAP, EWS and sign-in passwords, a Graph client secret, webhook secrets, API tokens)
  in no log record at DEBUG, JSON or text, and in no API answer but the one that issues them;
- `rapport secrets rotate`, then the old key dropped: every secret decrypts and links sync;
- hostile input in every query parameter, path id and static path, in the lead form and the CSV
  import: no 5xx, nothing changed; `rapport import` of FIFOs, devices and symlinks never hangs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import os
import re
import resource
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from werkzeug.test import TestResponse

from server.api.auth import public
from server.api.security import MemoryWindowStore, RateLimiter
from server.app import create_app
from server.config import load_settings
from server.crm.leads import save_settings
from server.crm.users import add_user, create_token, set_password
from server.db import Database
from server.logs import JsonFormatter, TextFormatter
from server.mail_ingest.importer import import_files
from server.models import Activity, Contact, MailboxLink, User
from tests.conftest import SECRET_KEY, Cli
from tests.emulators.ews import ews, ews_server  # noqa: F401
from tests.emulators.fixtures import identity, identity_server  # noqa: F401
from tests.emulators.graph import graph, graph_server  # noqa: F401
from tests.emulators.identity import IdentityEmulator, Tenant
from tests.reliability.dbscan import snapshot
from tests.support.jwks import CLIENT_ID, SigningKey, TokenSigner
from tests.support.mail import BASE_DATE, make_email, write_maildir

ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
BOSS = "boss@northwind-supplies.com"
CLARA = "Clara Jensen <clara@brightline-dental.co.uk>"
PASSWORD = "correct horse battery staple 42"
ORIGIN = "https://intranet.northwind-supplies.com"
EVIL = "https://evil.example"
# Tables a read may legitimately write to: rate-limit counters, a token's last use.
BOOKKEEPING = frozenset({"rate_limit_windows", "api_tokens"})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_user(db: Database, address: str, role: str = "member", **fields: Any) -> int:
    with db.session() as session:
        user = add_user(session, address, role=role)
        for name, value in fields.items():
            setattr(user, name, value)
        set_password(session, user, PASSWORD)
        return user.id


def token_of(db: Database, address: str) -> str:
    with db.session() as session:
        user = session.scalars(select(User).where(User.email == address)).one()
        return create_token(session, user, expires_in=timedelta(days=1)).plaintext


def app_with(env: dict[str, str], db: Database, **settings: str) -> Flask:
    return create_app(load_settings({**env, **settings}), db=db)


# -- another member's private items, through every GET answer ------------------------------------

MARKER = "Zanzibar-7731"  # in the subject and text of Ben's private mail only


def _get_urls(app: Flask, ids: dict[str, int]) -> list[str]:
    """Every GET route of the app, its path parameters filled with ids of real items."""
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or set()):
            continue
        url = rule.rule
        for arg in rule.arguments:
            url = re.sub(rf"<(?:[^:>]+:)?{arg}>", str(ids.get(arg, 1)), url)
        urls.append(url)
    return sorted(set(urls))


QUERIES = {
    "/api/v1/search": f"q={MARKER}",
    "/api/v1/lookup": "email=clara@brightline-dental.co.uk",
    "/api/v1/activities": "contact_id={contact_id}",
}


def test_another_members_private_mail_shows_through_no_get_answer(
    client: FlaskClient, app: Flask, db: Database, settings: Any, tmp_path: Path
) -> None:
    make_user(db, ANNA)
    make_user(db, BEN)
    make_user(db, BOSS, role="admin")
    private = make_email(
        sender=CLARA, to=BEN, subject=f"Offer {MARKER}", body=f"The code is {MARKER}."
    )
    shared = make_email(sender=CLARA, to=ANNA, subject="Team mail", body="Visible to the team.")
    import_files(db, settings, [write_maildir(tmp_path / "ben", [private])], owner=BEN, jobs=1)
    import_files(db, settings, [write_maildir(tmp_path / "anna", [shared])], owner=ANNA, jobs=1)
    with db.session() as session:
        session.execute(
            update(MailboxLink).where(MailboxLink.owner_address == BEN).values(visibility="private")
        )
        contact_id = session.scalars(select(Contact.id)).one()
    tokens = {who: token_of(db, who) for who in (ANNA, BEN, BOSS)}
    # Ben finds it: the marker is where a leak would show.
    found = client.get(f"/api/v1/search?q={MARKER}", headers=bearer(tokens[BEN]))
    assert MARKER in found.get_data(as_text=True)
    ids = {"contact_id": contact_id, "company_id": 1, "activity_id": 1, "user_id": 1}
    urls = _get_urls(app, ids)
    urls += [f"{path}?{query.format(contact_id=contact_id)}" for path, query in QUERIES.items()]
    assert len(urls) > 60
    checked = 0
    for who in (ANNA, BOSS):
        for url in urls:
            response = client.get(url, headers=bearer(tokens[who]))
            body = response.get_data(as_text=True)
            response.close()
            assert response.status_code < 500, (who, url, body[:300])
            assert MARKER not in body, f"{who} sees Ben's private mail in GET {url}"
            checked += response.status_code == 200
    assert checked > 80


# -- Entra ID tokens against the identity emulator -----------------------------------------------


@pytest.fixture
def entra_tenant(identity: IdentityEmulator) -> Tenant:  # noqa: F811
    return identity.add_tenant()


@pytest.fixture
def entra_client(
    env: dict[str, str],
    db: Database,
    identity: IdentityEmulator,  # noqa: F811
    entra_tenant: Tenant,
) -> FlaskClient:
    settings = {
        **identity.env(),
        "RAPPORT_ENTRA_TENANT_ID": entra_tenant.id,
        "RAPPORT_ENTRA_CLIENT_ID": CLIENT_ID,
    }
    return app_with(env, db, **settings).test_client()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _hs256_with_public_key(key: SigningKey, claims: dict[str, Any]) -> str:
    """The classic key-confusion forgery: HMAC keyed with the RSA public key's PEM."""
    pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = _unsigned({"alg": "HS256", "kid": key.kid, "typ": "JWT"}, claims)
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _swapped_payload(token: str, claims: dict[str, Any]) -> str:
    header, _payload, signature = token.split(".")
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def test_entra_tokens_are_refused_unless_made_for_us_and_signed_by_the_tenant(
    entra_client: FlaskClient,
    db: Database,
    identity: IdentityEmulator,  # noqa: F811
    entra_tenant: Tenant,
) -> None:
    signer = TokenSigner(identity.authority_host, entra_tenant.id)
    key = identity.signing_key  # the key the emulator publishes at the tenant's jwks_uri
    make_user(db, ANNA, entra_tenant_id=entra_tenant.id, entra_object_id="oid-anna")
    make_user(db, BOSS, role="admin", entra_tenant_id=entra_tenant.id, entra_object_id="oid-boss")
    anna = {"oid": "oid-anna", "preferred_username": ANNA}
    valid = signer.token(key, **anna)
    me = entra_client.get("/api/v1/me", headers=bearer(valid))
    assert me.status_code == 200, me.get_json()
    assert (me.get_json()["email"], me.get_json()["role"]) == (ANNA, "member")

    other = identity.add_tenant()
    graph_app = identity.add_app(entra_tenant, secret="s3cret-graph-app")
    admin_claims = signer.claims(oid="oid-boss", preferred_username=BOSS)
    refused = {
        "expired": (signer.token(key, exp=1_700_000_000, nbf=1_699_990_000, **anna), "expired"),
        # A real token of the emulator, for Microsoft Graph: not meant for Rapport.
        "meant for Graph": (
            identity.app_token(graph_app, "https://graph.microsoft.com/.default"),
            "not meant",
        ),
        "wrong audience": (signer.token(key, aud="api://another-app", **anna), "not meant"),
        "wrong issuer": (
            signer.token(key, iss="https://sts.windows.net/x/", **anna),
            "issuer",
        ),
        # Every tenant's tokens are signed with Microsoft's shared keys: only tid/iss tell.
        "other tenant": (
            TokenSigner(identity.authority_host, other.id).token(key, **anna),
            "accepts only tenant",
        ),
        "another key, same kid": (signer.token(SigningKey("forger"), kid=key.kid, **anna), ""),
        "unknown kid": (signer.token(SigningKey("forger"), **anna), "does not publish"),
        "alg none": (_unsigned({"alg": "none", "kid": key.kid}, signer.claims(**anna)) + ".", ""),
        "HS256 keyed with the public key": (_hs256_with_public_key(key, admin_claims), "RS256"),
        "payload swapped under a valid signature": (_swapped_payload(valid, admin_claims), ""),
        "jku pointing elsewhere": (
            jwt.encode(
                signer.claims(**anna),
                SigningKey("forger").private,
                algorithm="RS256",
                headers={"kid": key.kid, "jku": "https://evil.example/keys"},
            ),
            "",
        ),
    }
    for case, (token, reason) in refused.items():
        response = entra_client.get("/api/v1/me", headers=bearer(token))
        assert response.status_code == 401, (case, response.get_json())
        assert reason in response.get_json()["error"]["message"], case
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"], case
    # Nothing was linked or changed by any of them.
    with db.read_session() as session:
        users = session.scalars(select(User).order_by(User.email)).all()
        assert [(u.email, u.entra_object_id) for u in users] == [
            (ANNA, "oid-anna"),
            (BOSS, "oid-boss"),
        ]


def test_a_revoked_api_token_stops_at_once_by_the_api_and_by_the_cli(
    client: FlaskClient, db: Database, cli: Cli
) -> None:
    make_user(db, ANNA)
    session_token = token_of(db, ANNA)
    made = client.post("/api/v1/tokens", json={"name": "script"}, headers=bearer(session_token))
    assert made.status_code == 201
    script = made.get_json()["token"]
    assert client.get("/api/v1/me", headers=bearer(script)).status_code == 200
    gone = client.delete(f"/api/v1/tokens/{made.get_json()['id']}", headers=bearer(session_token))
    assert gone.status_code == 204
    after = client.get("/api/v1/me", headers=bearer(script))
    assert after.status_code == 401 and "revoked" in after.get_json()["error"]["message"]

    with db.read_session() as session:
        from server.models import ApiToken

        token_id = session.scalars(
            select(ApiToken.id).where(ApiToken.revoked_at.is_(None)).order_by(ApiToken.id)
        ).first()
    assert token_id is not None
    assert cli("token", "revoke", str(token_id)).exit_code == 0
    assert client.get("/api/v1/me", headers=bearer(session_token)).status_code == 401


# -- CSRF: no cookie, no ambient credential ------------------------------------------------------


def test_no_answer_sets_a_cookie_and_a_cookie_never_signs_in(
    client: FlaskClient, db: Database
) -> None:
    """The browser apps keep their token in sessionStorage/localStorage and send it as a header;
    a cross-site page can make a browser send cookies, never that header."""
    make_user(db, ANNA)
    token = token_of(db, ANNA)
    answers = [
        client.post("/api/v1/auth/password", json={"email": ANNA, "password": PASSWORD}),
        client.get("/signin"),
        client.get("/app/"),
        client.get("/pane/"),
        client.get("/api/v1/me", headers=bearer(token)),
        client.get("/api/v1/contacts", headers=bearer(token)),
    ]
    for answer in answers:
        assert answer.status_code == 200
        assert "Set-Cookie" not in answer.headers, answer.request.path
    for name in ("session", "token", "rapport.token", "Authorization", "access_token"):
        client.set_cookie(name, token)
        assert client.get("/api/v1/me").status_code == 401, name
        client.delete_cookie(name)


def test_a_cross_site_form_post_changes_nothing(client: FlaskClient, db: Database) -> None:
    make_user(db, ANNA)
    token = token_of(db, ANNA)
    client.set_cookie("session", token)  # whatever a browser might hold for this host
    before = snapshot(db)
    forms = [
        ("/api/v1/contacts", {"name": "Mallory", "emails": "m@evil.example"}),
        ("/api/v1/tokens", {"name": "stolen"}),
        ("/api/v1/users/me/password", {"old_password": PASSWORD, "new_password": "pwned pwned"}),
        ("/api/v1/admin/privacy/erase", {"email": ANNA, "confirm": "true"}),
    ]
    for url, fields in forms:
        for content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            response = client.post(
                url,
                data=fields,
                content_type=content_type,
                headers={"Origin": EVIL, "Referer": f"{EVIL}/page"},
            )
            assert response.status_code == 401, (url, response.get_json())
        # enctype="text/plain" can smuggle a JSON-looking body: still no credential.
        smuggled = client.post(
            url,
            data=json.dumps(fields) + "=",
            content_type="text/plain",
            headers={"Origin": EVIL},
        )
        assert smuggled.status_code == 401
    # Signing a victim's browser in as the attacker (login CSRF) needs a JSON body: 415.
    login = client.post(
        "/api/v1/auth/password",
        data={"email": ANNA, "password": PASSWORD},
        headers={"Origin": EVIL},
    )
    assert login.status_code == 415
    assert snapshot(db, ignore=BOOKKEEPING) == {
        k: v for k, v in before.items() if k not in BOOKKEEPING
    }


# -- headers on every kind of answer, CORS on errors ---------------------------------------------


def _boom() -> None:
    raise RuntimeError("an unexpected failure inside a view")


@pytest.fixture
def header_app(env: dict[str, str], db: Database) -> Flask:
    app = app_with(
        env,
        db,
        RAPPORT_CORS_ORIGINS=ORIGIN,
        RAPPORT_PUBLIC_URL="https://crm.northwind-supplies.com",
        RAPPORT_RATE_LIMIT_PER_MINUTE="2",
    )
    # A view that fails, to see the headers of a 500 (the error handler's own answer).
    app.add_url_rule("/boom", "boom", public(_boom))
    app.extensions["rapport.rate_limiter"] = RateLimiter(MemoryWindowStore, clock=lambda: 90.0)
    return app


def test_every_kind_of_answer_carries_the_security_headers(header_app: Flask, db: Database) -> None:
    client = header_app.test_client()
    make_user(db, ANNA)
    auth = bearer(token_of(db, ANNA))
    answers: dict[str, TestResponse] = {
        "json": client.get("/api/v1/me", headers=auth),
        "json list": client.get("/api/v1/contacts", headers=auth),
        "openapi": client.get("/api/v1/openapi.json"),
        "health": client.get("/healthz"),
        "page: web app": client.get("/app/"),
        "page: pane": client.get("/pane/"),
        "page: sign-in": client.get("/signin"),
        "page: form thanks": client.get("/forms/thanks"),
        "static css": client.get("/app/app.css"),
        "static script": client.get("/signin/signin.js"),
        "static vendor script": client.get("/vendor/msal-browser.min.js"),
        "static image": client.get("/addin/assets/icon-16.png"),
        "csv": client.get("/api/v1/contacts/export.csv", headers=auth),
        "401": client.get("/api/v1/contacts"),
        "404 api": client.get("/api/v1/contacts/999999", headers=auth),
        "404 path": client.get("/no/such/page"),
        "405": client.get("/api/v1/auth/password"),
        "415": client.post("/api/v1/notes", data={"x": "y"}, headers=auth),
        "500": client.get("/boom"),
        "429": client.get("/api/v1/me", headers=auth),  # the third in this minute
    }
    assert answers["429"].status_code == 429
    assert answers["500"].status_code == 500
    assert answers["500"].get_json()["error"]["code"] == "internal_error"
    for kind, answer in answers.items():
        answer.close()
        headers = answer.headers
        assert headers["X-Content-Type-Options"] == "nosniff", kind
        assert headers["Referrer-Policy"] == "no-referrer", kind
        assert headers["Strict-Transport-Security"].startswith("max-age="), kind
        assert "Set-Cookie" not in headers, kind
        policy = headers.get("Content-Security-Policy")
        if answer.mimetype in ("text/javascript", "application/javascript"):
            continue  # a policy on a script would bind a worker it starts (security.py)
        assert policy, kind
        if answer.mimetype == "text/html":
            assert "object-src 'none'" in policy and "frame-ancestors 'self'" in policy, kind
            assert "'unsafe-eval'" not in policy and "script-src 'self' " in policy, kind
        else:
            assert policy.startswith("default-src 'none'"), kind
            assert "frame-ancestors 'none'" in policy, kind
    # The 500 tells nothing of the code that failed.
    assert "an unexpected failure" not in answers["500"].get_data(as_text=True)


def test_cors_errors_are_readable_by_allowed_origins_only_and_preflights_need_no_token(
    header_app: Flask, db: Database
) -> None:
    client = header_app.test_client()
    for origin, allowed in [
        (ORIGIN, True),
        (EVIL, False),
        ("null", False),
        (ORIGIN + ".evil", False),
    ]:
        answers = [
            client.get("/api/v1/contacts", headers={"Origin": origin}),  # 401
            client.get("/api/v1/nothing-here", headers={"Origin": origin}),  # 404
        ]
        for answer in answers:
            assert ("Access-Control-Allow-Origin" in answer.headers) is allowed, origin
            assert "Access-Control-Allow-Credentials" not in answer.headers
            assert "Origin" in answer.headers["Vary"]
        preflight = client.options(
            "/api/v1/contacts",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == (204 if allowed else 403), origin
        if allowed:
            assert preflight.headers["Access-Control-Allow-Origin"] == origin
            assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
            assert preflight.headers["Access-Control-Max-Age"] == "600"
        else:
            assert "Access-Control-Allow-Origin" not in preflight.headers


# -- rate limits -----------------------------------------------------------------------------------


def test_an_entra_user_has_one_budget_whatever_token_they_hold_and_429_changes_nothing(
    env: dict[str, str],
    db: Database,
    identity: IdentityEmulator,  # noqa: F811
    entra_tenant: Tenant,
) -> None:
    app = app_with(
        env,
        db,
        **identity.env(),
        RAPPORT_ENTRA_TENANT_ID=entra_tenant.id,
        RAPPORT_ENTRA_CLIENT_ID=CLIENT_ID,
        RAPPORT_RATE_LIMIT_PER_MINUTE="3",
    )
    app.extensions["rapport.rate_limiter"] = RateLimiter(MemoryWindowStore, clock=lambda: 100.0)
    client = app.test_client()
    make_user(db, ANNA, entra_tenant_id=entra_tenant.id, entra_object_id="oid-anna")
    signer = TokenSigner(identity.authority_host, entra_tenant.id)
    # The pane renews its token hourly: each request here with a new one.
    tokens = [
        signer.token(identity.signing_key, oid="oid-anna", jti=str(n), iat=1_000 + n)
        for n in range(4)
    ]
    codes = [client.get("/api/v1/me", headers=bearer(t)).status_code for t in tokens[:3]]
    assert codes == [200, 200, 200]
    limited = client.post(
        "/api/v1/contacts", json={"name": "Over budget"}, headers=bearer(tokens[3])
    )
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert limited.headers["Retry-After"] == limited.headers["RateLimit-Reset"] == "20"
    with db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 0


def test_sign_in_attempts_are_limited_per_address_with_retry_after_even_for_the_right_password(
    app: Flask, client: FlaskClient, db: Database
) -> None:
    make_user(db, ANNA)
    app.extensions["rapport.rate_limiter"] = RateLimiter(MemoryWindowStore, clock=lambda: 130.0)

    def attempt(ip: str, password: str) -> TestResponse:
        return client.post(
            "/api/v1/auth/password",
            json={"email": f"x{ip}@example.org", "password": password},
            environ_base={"REMOTE_ADDR": ip},
        )

    for _ in range(20):
        assert attempt("203.0.113.5", "guess guess").status_code == 401
    right = client.post(
        "/api/v1/auth/password",
        json={"email": ANNA, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "203.0.113.5"},
    )
    assert right.status_code == 429
    assert right.headers["Retry-After"] == "50"
    assert "token" not in right.get_data(as_text=True).lower().replace("rate_limited", "")
    # Another address is not punished for the first one's guesses.
    other = client.post(
        "/api/v1/auth/password",
        json={"email": ANNA, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "198.51.100.9"},
    )
    assert other.status_code == 200 and other.get_json()["token"].startswith("rpt_")
    # The guesses counted against no account: Anna is not locked out.
    with db.read_session() as session:
        anna = session.scalars(select(User).where(User.email == ANNA)).one()
        assert anna.locked_until is None


# -- hostile input: query parameters, ids, static paths, the lead form, CSV ----------------------

HOSTILE = [
    "' OR '1'='1' --",
    '"; DROP TABLE contacts; --',
    "clara* NEAR(a b, 2) OR x:*",
    "a & !b | c <-> d:*",
    "%_%\\",
    "../../../../etc/passwd",
    "{{7*7}}${7*7}",
    "x" * 10_000,
]


def _query_parameters(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, name) of every string query parameter of every GET operation."""
    found = []
    for path, operations in openapi["paths"].items():
        get = operations.get("get")
        if not get:
            continue
        for parameter in get.get("parameters", []):
            schema = parameter.get("schema", {})
            kinds = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
            if parameter["in"] == "query" and "string" in kinds:
                found.append((re.sub(r"\{[^}]+\}", "1", path), parameter["name"]))
    return found


def _boss_client(env: dict[str, str], db: Database, settings: Any, tmp_path: Path) -> Any:
    client = app_with(env, db, RAPPORT_RATE_LIMIT_PER_MINUTE="0").test_client()
    make_user(db, BOSS, role="admin")
    mail = [make_email(sender=CLARA, to=BOSS, subject="Gloves", date=BASE_DATE)]
    import_files(db, settings, [write_maildir(tmp_path / "boss", mail)], owner=BOSS, jobs=1)
    return client, bearer(token_of(db, BOSS))


def _server_errors(
    client: FlaskClient, auth: dict[str, str], values: list[str], answers: dict[int, int]
) -> list[str]:
    """Every (path, parameter, value) of the API's GET operations that answered 5xx."""
    parameters = _query_parameters(client.get("/api/v1/openapi.json").get_json())
    assert len(parameters) > 20
    assert ("/api/v1/search", "q") in parameters and ("/api/v1/contacts", "q") in parameters
    failures = []
    for path, name in parameters:
        for value in values:
            response = client.get(path, query_string={name: value}, headers=auth)
            response.close()
            if response.status_code >= 500:
                failures.append(f"{path}?{name}={value[:30]!r}")
            answers[response.status_code] = answers.get(response.status_code, 0) + 1
    return failures


def test_hostile_strings_in_every_query_parameter_are_only_data(
    env: dict[str, str], db: Database, settings: Any, tmp_path: Path
) -> None:
    client, auth = _boss_client(env, db, settings, tmp_path)
    before = snapshot(db, ignore=BOOKKEEPING)
    answers: dict[int, int] = {}
    assert _server_errors(client, auth, HOSTILE, answers) == []
    assert answers.get(200, 0) > 50  # answered as data; the rest refused plainly (4xx)
    assert set(answers) <= {200, 400, 404, 409, 422}
    assert snapshot(db, ignore=BOOKKEEPING) == before


def test_nul_bytes_in_query_parameters_and_the_lead_form_are_refused_plainly(
    env: dict[str, str],
    db: Database,
    settings: Any,
    tmp_path: Path,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    client, auth = _boss_client(env, db, settings, tmp_path)
    with db.session() as session:
        save_settings(session, {"enabled": True})
    failures = _server_errors(client, auth, ["\x00clara\x00", "a\x00"], {})
    for n, field in enumerate(("name", "company", "message", "phone")):
        response = client.post(
            "/api/v1/forms/lead",
            data={"email": f"nul{n}@example.org", field: "bad\x00value"},
            environ_base={"REMOTE_ADDR": f"10.9.0.{n}"},
        )
        if response.status_code >= 400:  # a NUL nobody typed is dropped: the lead is taken
            failures.append(f"POST /api/v1/forms/lead {field}: {response.status_code}")
    assert failures == []
    with db.read_session() as session:
        names = set(session.scalars(select(Contact.name)))
    assert "badvalue" in names and not any("\x00" in name for name in names)
    # A filter of the audit log: refused with the field named.
    refused = client.get("/api/v1/admin/audit", query_string={"action": "a\x00"}, headers=auth)
    assert refused.status_code == 422 and refused.get_json()["error"]["field"] == "action"
    # In JSON: refused (400, as the views refused a NUL they checked) with the field named, however deep (the long schemathesis form found
    # an API token named with a NUL answered 500 on PostgreSQL), before anything is stored.
    for url, body, field in [
        ("/api/v1/notes", {"body": "ok\x00"}, "body"),
        ("/api/v1/tokens", {"name": "\x00ci"}, "name"),
        ("/api/v1/contacts", {"name": "Ann", "emails": ["ann@example.org", "a\x00"]}, "emails.1"),
    ]:
        refused = client.post(url, json=body, headers=auth)
        assert refused.status_code == 400, (url, refused.get_json())
        assert refused.get_json()["error"]["field"] == field
    with db.read_session() as session:
        assert not session.scalar(select(Contact.id).where(Contact.name == "Ann"))
    # Integers no column can hold: refused by the schema or the view, never a 500.
    for owner in (2**70, 2**40):
        big = client.post("/api/v1/contacts", json={"name": "Big", "owner_id": owner}, headers=auth)
        assert 400 <= big.status_code < 500, big.get_json()
        assert big.get_json()["error"]["field"] == "owner_id"
    # The pane logging an email keeps it: a NUL copied from a broken client is dropped instead.
    logged = client.post(
        "/api/v1/activities/log",
        json={
            "message_id": f"<nul-{backend}@example.org>",
            "from": {"address": "nul.sender@example.org", "name": "Nul\x00 Sender"},
            "to": [{"address": BOSS}],
            "date": "2026-11-02T09:00:00+00:00",
            "subject": "Quote\x00 for chairs",
            "body": "Hello\x00 there",
        },
        headers=auth,
    )
    assert logged.status_code == 201, logged.get_json()
    with db.read_session() as session:
        subject = session.scalar(
            select(Activity.subject).where(Activity.id == logged.get_json()["activity"]["id"])
        )
    assert subject == "Quote for chairs"


def test_hostile_ids_and_traversal_in_paths_get_404(client: FlaskClient, db: Database) -> None:
    make_user(db, BOSS, role="admin")
    auth = bearer(token_of(db, BOSS))
    for url in [
        "/api/v1/contacts/99999999999999999999999",
        "/api/v1/contacts/1%20OR%201=1",
        "/api/v1/contacts/1;DROP%20TABLE%20contacts",
        "/api/v1/deals/-1",
        "/api/v1/activities/0x10",
        "/api/v1/campaigns/9223372036854775808",
    ]:
        response = client.get(url, headers=auth)
        assert response.status_code == 404, (url, response.get_json())
    root = Path(__file__).resolve().parents[2]
    secret_files = {"pyproject.toml": "[project]", "server/config.py": "RAPPORT_SECRET_KEY"}
    for prefix in ("/app/", "/pane/", "/preview/", "/vendor/", "/addin/assets/", "/signin/"):
        for target, content in secret_files.items():
            assert content in (root / target).read_text()
            for spelled in (
                f"../../{target}",
                f"..%2f..%2f{target}",
                f"%2e%2e/%2e%2e/{target}",
                f"....//....//{target}",
                f"..\\..\\{target}",
                f"/{root}/{target}",
            ):
                response = client.get(prefix + spelled)
                body = response.get_data(as_text=True)
                response.close()
                assert response.status_code in (301, 308, 400, 404), (prefix, spelled)
                assert content not in body, f"{prefix}{spelled} served {target}"


def test_the_lead_form_takes_hostile_fields_as_data(client: FlaskClient, db: Database) -> None:
    make_user(db, BOSS, role="admin")
    with db.session() as session:
        save_settings(session, {"enabled": True})
    before = snapshot(db, ignore=BOOKKEEPING | {"settings", "jobs"})
    statuses = []
    for n, value in enumerate(HOSTILE):
        for field in ("name", "company", "message", "email", "phone"):
            fields = {"email": f"lead{n}@example.org", "name": "Lead", field: value}
            response = client.post(
                "/api/v1/forms/lead",
                data=fields,
                environ_base={"REMOTE_ADDR": f"10.0.{n}.{len(field)}"},
            )
            statuses.append(response.status_code)
            assert response.status_code in (303, 400, 413), (field, value[:30], response.data[:200])
    with db.read_session() as session:
        contacts = session.scalars(select(Contact)).all()
    # Only the submissions with a good address made a contact (one per address), named as sent.
    assert 0 < len(contacts) <= len(HOSTILE)
    assert all(c.source == "form" for c in contacts)
    after = snapshot(db, ignore=BOOKKEEPING | {"settings", "jobs"})
    untouched = {"users", "capture_rules", "pipelines", "stages", "mailbox_links", "webhooks"}
    for table in untouched & set(before):
        assert after[table] == before[table], table
    assert statuses.count(303) >= len(HOSTILE)


def test_a_hostile_csv_import_writes_only_its_good_rows_and_exports_no_formula(
    client: FlaskClient, db: Database
) -> None:
    make_user(db, BOSS, role="admin")
    auth = bearer(token_of(db, BOSS))
    rows = [
        "name,email,title,tags",
        'Formula,f1@example.org,=HYPERLINK("http://evil.example"),x',
        "Plus,f2@example.org,+1+cmd|' /C calc'!A0,@SUM(1)",
        'Quote,"q\'@example.org","\'; DROP TABLE contacts; --",a',
        "Nul,nul@example.org,bad\x00title,b",
        'Unbalanced,"oops@example.org,broken',
        "Long," + "l" * 400 + "@example.org,x,y",
    ]
    body = ("\n".join(rows) + "\n").encode()
    for data in (body, b"\xff\xfe" + body.decode().encode("utf-16-le"), b"\x00" * 1000):
        preview = client.post(
            "/api/v1/contacts/import?dry_run=1", data=data, content_type="text/csv", headers=auth
        )
        assert preview.status_code in (200, 400), preview.get_json()
    with db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 0  # previews only
    done = client.post("/api/v1/contacts/import", data=body, content_type="text/csv", headers=auth)
    assert done.status_code == 200, done.get_json()
    report = done.get_json()
    assert report["created"] >= 2
    exported = client.get("/api/v1/contacts/export.csv", headers=auth).get_data(as_text=True)
    for line in exported.splitlines()[1:]:
        for cell in line.split(","):
            assert not cell.strip('"').startswith(("=", "+", "@")), line
    assert "DROP TABLE contacts" in exported  # kept as the text it was
    with db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1


# -- `rapport import` of paths that are not mail -------------------------------------------------

IMPORT_TIMEOUT = 30  # seconds; an import of a few small files takes about two


def _limit_memory() -> None:
    # A file that never ends (a device) must not take the machine's memory with it.
    resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))


def run_import(env: dict[str, str], *paths: Path | str) -> subprocess.CompletedProcess[str]:
    """`rapport import` in its own process group, killed (and failed) if it hangs."""
    command = [sys.executable, "-m", "server", "import", *map(str, paths), "--mailbox", ANNA]
    process = subprocess.Popen(
        command,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_limit_memory,
    )
    try:
        out, err = process.communicate(timeout=IMPORT_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"rapport import {' '.join(map(str, paths))} hung for {IMPORT_TIMEOUT} s")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def _assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode in (0, 1, 2), (result.returncode, result.stderr[-2000:])


@pytest.mark.parametrize("backend", ["sqlite"])
def test_import_of_traversal_paths_and_symlinks_out_of_the_tree_is_plain(
    env: dict[str, str], db: Database, tmp_path: Path
) -> None:
    make_user(db, ANNA)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.eml").write_bytes(make_email(sender=CLARA, to=ANNA, subject="Outside"))
    archive = tmp_path / "archive" / "inner"
    archive.mkdir(parents=True)
    (archive / "inside.eml").write_bytes(make_email(sender=CLARA, to=ANNA, subject="Inside"))
    (archive / "escape.eml").symlink_to(outside / "private.eml")
    (archive / "outdir").symlink_to(outside, target_is_directory=True)
    (archive / "loop").symlink_to(archive, target_is_directory=True)
    (archive / "dangling.eml").symlink_to(tmp_path / "nowhere.eml")
    result = run_import(env, archive, f"{archive}/../../archive/inner/../../nothing-here")
    _assert_clean(result)
    assert "no such file or directory" in (result.stdout + result.stderr)
    # The admin named the tree; a link inside it is followed like any file the admin can read.
    # What must hold: no loop, no crash, every path accounted for in the summary.
    with db.read_session() as session:
        subjects = set(session.scalars(select(func.distinct(Contact.name))))
    assert subjects  # Clara was captured from the tree


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    "kind",
    [
        "fifo given",
        "device given",
        "fifo named .mbox in a folder",
        "device linked as .mbox in a folder",
        "device linked as .eml in a maildir",
    ],
)
def test_import_of_fifos_and_devices_never_hangs(
    env: dict[str, str], db: Database, tmp_path: Path, kind: str
) -> None:
    make_user(db, ANNA)
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "good.eml").write_bytes(make_email(sender=CLARA, to=ANNA, subject="Good"))
    if kind == "fifo given":
        target: Path = tmp_path / "pipe"
        os.mkfifo(target)
    elif kind == "device given":
        target = Path("/dev/zero")
    elif kind == "fifo named .mbox in a folder":
        os.mkfifo(folder / "pipe.mbox")
        target = folder
    elif kind == "device linked as .mbox in a folder":
        (folder / "zero.mbox").symlink_to("/dev/zero")
        target = folder
    else:
        maildir = write_maildir(tmp_path / "maildir", [make_email(sender=CLARA, to=ANNA)])
        (maildir / "cur" / "123.zero:2,S").symlink_to("/dev/zero")
        target = maildir
    _assert_clean(run_import(env, target))


# -- secrets: never in logs or answers; rotation -----------------------------------------------

IMAP_FOLDERS = ["INBOX", "Sent"]
USER_PASSWORD = "Anna's own pass phrase 2026!"
NEW_KEY = "rotated-secret-key-ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210"


@pytest.fixture
def linked_env(
    env: dict[str, str],
    dovecot_server: Any,
    graph: Any,  # noqa: F811
    ews: Any,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    tmp_path: Path,
) -> dict[str, str]:
    """One CA file trusting Dovecot and the emulators, as a server with a private CA would."""
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_bytes(
        dovecot_server.ca_path.read_bytes()
        + identity.ca_path.read_bytes()
        + ews.ca_path.read_bytes()
    )
    return {
        **env,
        **graph.env(),
        "RAPPORT_CA_BUNDLE": str(bundle),
        "RAPPORT_EWS_AUTODISCOVER_URL": ews.env()["RAPPORT_EWS_AUTODISCOVER_URL"],
        "RAPPORT_PUBLIC_URL": "http://127.0.0.1:8000",
    }


class LogCapture:
    """Rapport's own JSON and text formats, at DEBUG, on the root logger, for the test's span."""

    def __init__(self) -> None:
        self.json, self.text = io.StringIO(), io.StringIO()
        self._handlers = []
        for stream, formatter in ((self.json, JsonFormatter()), (self.text, TextFormatter())):
            handler = logging.StreamHandler(stream)
            handler.setFormatter(formatter)
            handler.setLevel(logging.DEBUG)
            self._handlers.append(handler)

    def __enter__(self) -> LogCapture:
        root = logging.getLogger()
        self._level = root.level
        for handler in self._handlers:
            root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        for handler in self._handlers:
            root.removeHandler(handler)
        root.setLevel(self._level)


def link_everything(
    api: Any,
    db: Database,
    imap_account: Any,
    graph: Any,  # noqa: F811
    ews: Any,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
) -> dict[str, Any]:
    """IMAP (password), Graph (client secret), EWS (password) links for three mailboxes, each
    with one email waiting; a webhook; Anna's password sign-in and an API token of hers."""
    from tests.integration.test_api_admin_exchange_links import (
        PASSWORD as EWS_PASSWORD,
    )
    from tests.integration.test_api_admin_exchange_links import (
        SECRET as GRAPH_SECRET,
    )
    from tests.integration.test_api_admin_exchange_links import (
        SERVICE,
        ews_body,
        graph_body,
        new_address,
    )
    from tests.integration.test_api_admin_mailboxes import ANNA as LINK_OWNER
    from tests.integration.test_api_admin_mailboxes import imap_body

    mail = make_email(sender=CLARA, to=LINK_OWNER, subject="Over IMAP")
    imap_account.server.append(imap_account.user, "INBOX", mail)
    links = {}
    made = api("POST", "/api/v1/admin/mailboxes/imap", imap_body(imap_account))
    assert made.status_code == 201, made.get_json()
    links["imap"] = made.get_json()["id"]
    tenant = identity.add_tenant()
    entra_app = graph.graph_app(tenant, secret=GRAPH_SECRET)
    graph_owner = new_address()
    graph.add_mailbox(tenant, graph_owner)
    graph.deliver(graph_owner, make_email(sender=CLARA, to=graph_owner, subject="Over Graph"))
    made = api("POST", "/api/v1/admin/mailboxes/graph", graph_body(graph_owner, tenant, entra_app))
    assert made.status_code == 201, made.get_json()
    links["graph"] = made.get_json()["id"]
    ews.add_account(SERVICE, EWS_PASSWORD, impersonation=True)
    ews_owner = new_address()
    ews.add_mailbox(ews_owner)
    ews.deliver(ews_owner, make_email(sender=CLARA, to=ews_owner, subject="Over EWS"))
    made = api("POST", "/api/v1/admin/mailboxes/ews", ews_body(ews_owner, ews.url))
    assert made.status_code == 201, made.get_json()
    links["ews"] = made.get_json()["id"]
    hook = api(
        "POST",
        "/api/v1/admin/webhooks",
        {"url": "http://127.0.0.1:9/hook", "events": ["contact.created"]},
    )
    assert hook.status_code == 201, hook.get_json()
    with db.read_session() as session:
        anna_id = session.scalars(select(User.id).where(User.email == LINK_OWNER)).one()
    assert (
        api("POST", f"/api/v1/users/{anna_id}/password", {"password": USER_PASSWORD}).status_code
        == 204
    )
    signed_in = api(
        "POST", "/api/v1/auth/password", {"email": LINK_OWNER, "password": USER_PASSWORD}
    )
    assert signed_in.status_code == 200
    wrong = api(
        "POST", "/api/v1/auth/password", {"email": LINK_OWNER, "password": USER_PASSWORD + "x"}
    )
    assert wrong.status_code == 401
    token = api("POST", "/api/v1/tokens", {"name": "script"}, as_user=LINK_OWNER)
    assert token.status_code == 201
    return {
        "links": links,
        "tenant": tenant,
        "entra_app": entra_app,
        "never": [imap_account.password, GRAPH_SECRET, EWS_PASSWORD, USER_PASSWORD],
        "issued": {
            "webhook secret": (hook.get_json()["secret"], len(api.bodies) - 5),
            "sign-in token": (signed_in.get_json()["token"], len(api.bodies) - 3),
            "API token": (token.get_json()["token"], len(api.bodies) - 1),
        },
    }


def test_secrets_are_in_no_log_record_and_no_answer_but_the_one_that_issues_them(
    linked_env: dict[str, str],
    db: Database,
    imap_account: Any,
    graph: Any,  # noqa: F811
    ews: Any,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.integration.test_api_admin_mailboxes import Api

    app = app_with(linked_env, db, RAPPORT_RATE_LIMIT_PER_MINUTE="0")
    api = Api(app.test_client(), db)
    cli = Cli({**linked_env, "RAPPORT_LOG_LEVEL": "DEBUG", "RAPPORT_LOG_FORMAT": "json"})
    caplog.set_level(logging.DEBUG)
    with LogCapture() as logs:
        world = link_everything(api, db, imap_account, graph, ews, identity)
        for link_id in world["links"].values():
            synced = cli("mailbox", "sync", str(link_id))
            assert synced.exit_code == 0, synced.output
        assert cli("worker", "--once").exit_code == 0
        for url in [
            "/api/v1/admin/mailboxes",
            *[f"/api/v1/admin/mailboxes/{i}" for i in world["links"].values()],
            "/api/v1/admin/webhooks",
            "/api/v1/admin/webhooks/1",
            "/api/v1/admin/webhooks/1/deliveries",
            "/api/v1/tokens",
            "/api/v1/users",
            "/api/v1/admin/jobs",
            "/api/v1/me",
            "/api/v1/openapi.json",
        ]:
            assert api("GET", url).status_code == 200, url
    with db.read_session() as session:
        captured = set(session.scalars(select(func.count()).select_from(Contact)))
        assert captured == {1}  # Clara, from all three mailboxes
        ciphertexts = [s for s in session.scalars(select(MailboxLink.secret)) if s]
    records = caplog.records
    assert sum(r.levelno == logging.DEBUG for r in records) > 10  # DEBUG really was on
    log_text = "\n".join(
        [logs.json.getvalue(), logs.text.getvalue(), caplog.text]
        + [repr(r.__dict__) for r in records]
    )
    issued = {name: value for name, (value, _) in world["issued"].items()}
    needles = {
        **{f"never-shown secret {n}": s for n, s in enumerate(world["never"])},
        **issued,
        **{f"ciphertext {n}": c.decode("latin-1") for n, c in enumerate(ciphertexts)},
        **{f"admin's token {n}": t for n, t in enumerate(api.tokens.values())},
    }
    for name, secret in needles.items():
        assert secret not in log_text, f"the {name} is in the logs"
        for quoted in (json.dumps(secret)[1:-1], base64.b64encode(secret.encode()).decode()):
            assert quoted not in log_text, f"the {name} is in the logs (escaped)"
    for name, (secret, where) in world["issued"].items():
        showing = [n for n, body in enumerate(api.bodies) if secret in body]
        assert showing == [where], f"the {name} is in answers {showing}, not only its own"
    for n, secret in enumerate(world["never"] + [c.decode("latin-1") for c in ciphertexts]):
        assert not any(secret in body for body in api.bodies), f"secret {n} in an answer"


def test_after_rotation_and_the_old_key_dropped_every_secret_decrypts_and_links_sync(
    linked_env: dict[str, str],
    db: Database,
    imap_account: Any,
    graph: Any,  # noqa: F811
    ews: Any,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
) -> None:
    from server.crm.secrets import ENCRYPTED_COLUMNS
    from server.crypto import SecretBox, SecretError
    from tests.integration.test_api_admin_mailboxes import Api

    app = app_with(linked_env, db, RAPPORT_RATE_LIMIT_PER_MINUTE="0")
    world = link_everything(Api(app.test_client(), db), db, imap_account, graph, ews, identity)
    cli = Cli(linked_env)
    rotated = cli("secrets", "rotate", env={"RAPPORT_SECRET_KEY": f"{NEW_KEY},{SECRET_KEY}"})
    assert rotated.exit_code == 0, rotated.output
    new_only, old_only = SecretBox([NEW_KEY]), SecretBox([SECRET_KEY])
    decrypted = 0
    with db.read_session() as session:
        for column in ENCRYPTED_COLUMNS:
            for value in session.scalars(select(column).where(column.is_not(None))):
                assert new_only.decrypt(value)
                with pytest.raises(SecretError):
                    old_only.decrypt(value)
                decrypted += 1
    assert decrypted == 4  # three links, one webhook
    assert f"{decrypted} secrets re-encrypted" in rotated.output
    # From now on only the new key: every link still signs in and captures new mail.
    imap_account.server.append(
        imap_account.user, "INBOX", make_email(sender=CLARA, to=ANNA, subject="After rotation")
    )
    for link_id in world["links"].values():
        synced = cli("mailbox", "sync", str(link_id), env={"RAPPORT_SECRET_KEY": NEW_KEY})
        assert synced.exit_code == 0, synced.output
    with db.read_session() as session:
        links = session.scalars(select(MailboxLink).where(MailboxLink.kind != "import")).all()
        assert {(link.kind, link.status, link.last_error) for link in links} == {
            ("imap", "active", None),
            ("graph", "active", None),
            ("ews", "active", None),
        }
        from server.models import Activity

        assert session.scalar(select(Activity.id).where(Activity.subject == "After rotation"))


def test_rotation_also_re_encrypts_a_pending_graph_sign_in_in_the_settings(
    linked_env: dict[str, str],
    db: Database,
    graph: Any,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
) -> None:
    from server.crypto import SecretBox
    from server.models import Setting
    from tests.integration.test_api_admin_mailboxes import Api

    api = Api(app_with(linked_env, db).test_client(), db)
    tenant = identity.add_tenant()
    entra_app = graph.graph_app(
        tenant, redirect_uris=("http://127.0.0.1:8000/api/v1/graph/callback",)
    )
    graph.add_mailbox(tenant, "carl@northwind-supplies.com")
    started = api(
        "POST",
        "/api/v1/admin/mailboxes/graph/authorize",
        {
            "owner": "carl@northwind-supplies.com",
            "tenant": tenant.id,
            "client_id": entra_app.client_id,
        },
    )
    assert started.status_code in (200, 201), started.get_json()
    rotated = Cli(linked_env)(
        "secrets", "rotate", env={"RAPPORT_SECRET_KEY": f"{NEW_KEY},{SECRET_KEY}"}
    )
    assert rotated.exit_code == 0
    with db.read_session() as session:
        pending = session.scalars(
            select(Setting).where(Setting.key.startswith("graph.signin."))
        ).all()
    assert pending
    for row in pending:
        assert SecretBox([NEW_KEY]).decrypt_json(str(row.value["sealed"]).encode())
