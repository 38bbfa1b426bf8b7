"""Sign-in to the API: Entra ID access tokens from the pane (validated against a local key
endpoint), Rapport API tokens with scopes, the tokens resource, who may call what, and rate
limits per token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from server.api.auth import is_public
from server.api.security import MemoryWindowStore, RateLimiter
from server.api.spec import api
from server.app import create_app
from server.config import load_settings
from server.crm.users import add_user, create_token
from server.db import Database
from server.models import ApiToken, AuditEvent, User, utcnow
from tests.support.jwks import OTHER_TENANT_ID, TENANT_ID, JwksServer, SigningKey, TokenSigner

ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
LOOKUP = "/api/v1/lookup?email=clara@brightline-dental.co.uk"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_user(db: Database, address: str, role: str = "member", **fields: Any) -> int:
    with db.session() as session:
        user = add_user(session, address, role=role)
        for name, value in fields.items():
            setattr(user, name, value)
        return user.id


def api_token(
    db: Database, address: str, *, scopes: tuple[str, ...] = ("api",), role: str = "member"
) -> str:
    with db.session() as session:
        user = session.scalar(select(User).where(User.email == address))
        if user is None:
            user = add_user(session, address, role=role)
        issued = create_token(session, user, expires_in=timedelta(days=1), scopes=scopes)
        return issued.plaintext


# -- Entra ID ------------------------------------------------------------------------------------


@pytest.fixture
def tenant(tmp_path: Path) -> Iterator[JwksServer]:
    server = JwksServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def entra_app(env: dict[str, str], tenant: JwksServer, db: Database) -> Flask:
    return create_app(load_settings({**env, **tenant.env()}), db=db)


@pytest.fixture
def entra_client(entra_app: Flask) -> FlaskClient:
    return entra_app.test_client()


@pytest.fixture
def signer(tenant: JwksServer) -> TokenSigner:
    return TokenSigner(tenant.authority_host)


def test_a_valid_entra_token_opens_the_lookup_and_links_the_user_once(
    entra_client: FlaskClient, tenant: JwksServer, signer: TokenSigner, db: Database
) -> None:
    anna = make_user(db, ANNA)
    token = signer.token(
        tenant.keys[0], oid="oid-anna", preferred_username="Anna@Northwind-Supplies.com"
    )
    response = entra_client.get(LOOKUP, headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    with db.session() as session:
        user = session.get(User, anna)
        assert user is not None
        assert (user.entra_tenant_id, user.entra_object_id) == (TENANT_ID, "oid-anna")
        assert user.name == "Anna Berg"
        assert session.scalar(select(AuditEvent.action).where(AuditEvent.entity_id == anna)) == (
            "user.entra_linked"
        )
    # From now on the (tenant, object id) pair identifies her, whatever her address becomes.
    renamed = signer.token(tenant.keys[0], oid="oid-anna", preferred_username="a.berg@new.example")
    me = entra_client.get("/api/v1/me", headers=bearer(renamed)).get_json()
    assert (me["id"], me["email"]) == (anna, ANNA)
    assert me["credential"] == {"method": "entra", "scopes": ["api"], "token_id": None}
    assert tenant.hits[tenant.keys_path] == 1


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"aud": "api://someone-else"}, "not meant for this Rapport"),
        ({"iss": f"https://login.example.test/{TENANT_ID}/v2.0"}, "issuer"),
        ({"tid": OTHER_TENANT_ID}, "accepts only tenant"),
        ({"exp": 1_600_000_000, "nbf": 1_599_990_000}, "expired"),
        ({"nbf": 4_000_000_000, "exp": 4_000_003_600}, "not valid yet"),
        ({"scp": "User.Read"}, "does not grant the scope"),
        ({"ver": "1.0"}, "requestedAccessTokenVersion"),
    ],
    ids=["audience", "issuer", "tenant", "expired", "not-yet-valid", "scope", "v1"],
)
def test_bad_entra_tokens_get_401_with_a_clear_message(
    entra_client: FlaskClient,
    tenant: JwksServer,
    signer: TokenSigner,
    db: Database,
    claims: dict[str, Any],
    expected: str,
) -> None:
    make_user(db, ANNA)
    response = entra_client.get(LOOKUP, headers=bearer(signer.token(tenant.keys[0], **claims)))
    assert response.status_code == 401
    error = response.get_json()["error"]
    assert error["code"] == "unauthorized"
    assert expected in error["message"]
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_forged_signature_gets_401(
    entra_client: FlaskClient, tenant: JwksServer, signer: TokenSigner, db: Database
) -> None:
    make_user(db, ANNA)
    forged = signer.token(SigningKey("forger"), kid=tenant.keys[0].kid)
    response = entra_client.get(LOOKUP, headers=bearer(forged))
    assert response.status_code == 401
    assert "signature does not verify" in response.get_json()["error"]["message"]


def test_an_unknown_key_id_is_refetched_once_then_401(
    entra_client: FlaskClient, tenant: JwksServer, signer: TokenSigner, db: Database
) -> None:
    make_user(db, ANNA)
    assert entra_client.get(LOOKUP, headers=bearer(signer.token(tenant.keys[0]))).status_code == 200
    assert tenant.hits[tenant.keys_path] == 1
    stranger = SigningKey("never-published")
    response = entra_client.get(LOOKUP, headers=bearer(signer.token(stranger)))
    assert response.status_code == 401
    assert "does not publish" in response.get_json()["error"]["message"]
    assert tenant.hits[tenant.keys_path] == 2
    for n in range(5):
        entra_client.get(LOOKUP, headers=bearer(signer.token(stranger, kid=f"flood-{n}")))
    assert tenant.hits[tenant.keys_path] == 2


def test_a_key_rotated_in_after_start_is_found_by_the_refetch(
    entra_client: FlaskClient, tenant: JwksServer, signer: TokenSigner, db: Database
) -> None:
    make_user(db, ANNA)
    first = signer.token(tenant.keys[0], oid="oid-anna")
    assert entra_client.get(LOOKUP, headers=bearer(first)).status_code == 200
    rotated = SigningKey("key-2")
    tenant.keys.append(rotated)
    after = signer.token(rotated, oid="oid-anna")
    assert entra_client.get(LOOKUP, headers=bearer(after)).status_code == 200
    assert tenant.hits[tenant.keys_path] == 2


def test_unknown_people_are_not_created_but_told_to_ask_an_admin(
    entra_client: FlaskClient, tenant: JwksServer, signer: TokenSigner, db: Database
) -> None:
    token = signer.token(tenant.keys[0], preferred_username="newcomer@northwind-supplies.com")
    response = entra_client.get(LOOKUP, headers=bearer(token))
    assert response.status_code == 403
    assert "ask an admin to add you" in response.get_json()["error"]["message"]
    with db.session() as session:
        assert session.scalar(select(User).where(User.email.like("newcomer%"))) is None


def test_an_address_already_linked_to_another_account_is_not_taken_over(
    entra_client: FlaskClient, tenant: JwksServer, signer: TokenSigner, db: Database
) -> None:
    make_user(db, ANNA, entra_tenant_id=TENANT_ID, entra_object_id="oid-original")
    intruder = signer.token(tenant.keys[0], oid="oid-other", preferred_username=ANNA)
    response = entra_client.get(LOOKUP, headers=bearer(intruder))
    assert response.status_code == 403
    assert "ask an admin to add you" in response.get_json()["error"]["message"]
    original = signer.token(tenant.keys[0], oid="oid-original")
    assert entra_client.get(LOOKUP, headers=bearer(original)).status_code == 200


def test_a_disabled_entra_user_is_refused(
    entra_client: FlaskClient, tenant: JwksServer, signer: TokenSigner, db: Database
) -> None:
    make_user(db, ANNA, entra_tenant_id=TENANT_ID, entra_object_id="oid-anna", disabled_at=utcnow())
    response = entra_client.get(
        LOOKUP, headers=bearer(signer.token(tenant.keys[0], oid="oid-anna"))
    )
    assert response.status_code == 403
    assert "disabled" in response.get_json()["error"]["message"]


def test_entra_keys_out_of_reach_is_503_not_401(
    env: dict[str, str], tenant: JwksServer, signer: TokenSigner, db: Database
) -> None:
    # Without our CA the local endpoint's certificate is not trusted: nothing can be verified.
    settings = load_settings({**env, **tenant.env(), "RAPPORT_CA_BUNDLE": ""})
    client = create_app(settings, db=db).test_client()
    response = client.get(LOOKUP, headers=bearer(signer.token(tenant.keys[0])))
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "sign_in_unavailable"


def test_a_jwt_without_entra_configured_is_refused(client: FlaskClient) -> None:
    signer = TokenSigner("login.microsoftonline.com")
    response = client.get(LOOKUP, headers=bearer(signer.token(SigningKey("key-1"))))
    assert response.status_code == 401
    assert "not configured" in response.get_json()["error"]["message"]


# -- Rapport API tokens --------------------------------------------------------------------------


def test_a_read_token_reads_but_cannot_change_anything(client: FlaskClient, db: Database) -> None:
    token = api_token(db, ANNA, scopes=("read",))
    assert client.get(LOOKUP, headers=bearer(token)).status_code == 200
    response = client.post("/api/v1/tokens", json={"name": "x"}, headers=bearer(token))
    assert response.status_code == 403
    assert "may only read" in response.get_json()["error"]["message"]


def test_revoked_expired_and_disabled_tokens_get_401(client: FlaskClient, db: Database) -> None:
    revoked, expired, disabled = (
        api_token(db, a) for a in (ANNA, BEN, "cara@northwind-supplies.com")
    )
    with db.session() as session:
        session.execute(
            update(ApiToken).where(ApiToken.prefix == revoked[:10]).values(revoked_at=utcnow())
        )
        session.execute(
            update(ApiToken)
            .where(ApiToken.prefix == expired[:10])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        session.execute(update(User).where(User.email.like("cara@%")).values(disabled_at=utcnow()))
    for token, reason in [(revoked, "revoked"), (expired, "expired"), (disabled, "disabled")]:
        response = client.get(LOOKUP, headers=bearer(token))
        assert response.status_code == 401
        assert reason in response.get_json()["error"]["message"]


def test_garbage_tokens_and_other_schemes_get_401(client: FlaskClient) -> None:
    for header in ["Basic YW5uYTpwdw==", "Bearer ", "Bearer nonsense", "Bearer rpt_unknown"]:
        response = client.get(LOOKUP, headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.get_json()["error"]["code"] == "unauthorized"


def test_tokens_are_created_listed_and_revoked_by_their_owner(
    client: FlaskClient, db: Database
) -> None:
    anna = api_token(db, ANNA)
    created = client.post(
        "/api/v1/tokens",
        json={"name": "reporting", "scopes": ["read"], "expires_in_days": 30},
        headers=bearer(anna),
    )
    assert created.status_code == 201, created.get_json()
    assert created.headers["Cache-Control"] == "no-store"
    body = created.get_json()
    assert body["token"].startswith("rpt_") and body["scopes"] == ["read"]
    assert client.get(LOOKUP, headers=bearer(body["token"])).status_code == 200

    listed = client.get("/api/v1/tokens", headers=bearer(anna)).get_json()
    assert [t["name"] for t in listed["items"]] == ["reporting", ""]
    assert all("token" not in t for t in listed["items"])  # the secret is never shown again

    assert client.delete(f"/api/v1/tokens/{body['id']}", headers=bearer(anna)).status_code == 204
    assert client.get(LOOKUP, headers=bearer(body["token"])).status_code == 401
    missing = client.delete("/api/v1/tokens/999999", headers=bearer(anna))
    assert missing.status_code == 404


def test_bad_token_requests_name_the_field(client: FlaskClient, db: Database) -> None:
    anna = api_token(db, ANNA)
    for payload, field in [
        ({"scopes": ["admin"]}, "scopes.0"),
        ({"scopes": []}, "scopes"),
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": 10_000}, "expires_in_days"),
        ({"colour": "red"}, "colour"),
    ]:
        response = client.post("/api/v1/tokens", json=payload, headers=bearer(anna))
        assert response.status_code == 422, payload
        assert response.get_json()["error"]["field"] == field


def test_members_manage_only_their_own_tokens_admins_all(client: FlaskClient, db: Database) -> None:
    anna, ben = api_token(db, ANNA), api_token(db, BEN)
    admin = api_token(db, "boss@northwind-supplies.com", role="admin")
    with db.session() as session:
        bens_id = session.scalar(select(ApiToken.id).where(ApiToken.prefix == ben[:10]))
    refused = client.delete(f"/api/v1/tokens/{bens_id}", headers=bearer(anna))
    assert refused.status_code == 404  # another member's token: not even its existence
    assert client.get("/api/v1/tokens?all=true", headers=bearer(anna)).status_code == 403

    everyone = client.get("/api/v1/tokens?all=true", headers=bearer(admin)).get_json()
    assert len(everyone["items"]) == 3
    assert client.delete(f"/api/v1/tokens/{bens_id}", headers=bearer(admin)).status_code == 204
    assert client.get(LOOKUP, headers=bearer(ben)).status_code == 401


# -- who may call what ---------------------------------------------------------------------------

# The anonymous API: sign-in and the API's own description. Anything else made public must be
# added here on purpose.
PUBLIC_API = {
    ("POST", "/api/v1/auth/password"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/reference"),
    ("GET", "/api/v1/pane-config"),
    ("POST", "/api/v1/preview/demo-sign-in"),
    ("POST", "/api/v1/forms/lead"),  # the web lead form, posted by a page of another site
    ("GET", "/api/v1/graph/callback"),  # Entra ID's redirect after a delegated sign-in
    ("POST", "/api/v1/graph/notifications"),  # Graph's change notifications
    ("POST", "/api/v1/graph/lifecycle"),
}


def is_reference_page(url: str) -> bool:
    """SpecTree's own pages (the OpenAPI viewers), public by design."""
    return url.startswith(f"/{api.config.path}/")


def api_calls(app: Flask) -> list[tuple[str, str, str]]:
    """(method, url, endpoint) for every rule under /api/v1, with dummy path parameters."""
    calls = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        url = re.sub(
            r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>",
            lambda m: "1" if m.group(1) in {"int", "float"} else "x",
            rule.rule,
        )
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            calls.append((method, url, rule.endpoint))
    return calls


def test_the_public_api_endpoints_are_exactly_the_listed_ones(app: Flask) -> None:
    public = {
        (method, url)
        for method, url, endpoint in api_calls(app)
        if is_public(app, endpoint) and not is_reference_page(url)
    }
    assert public == PUBLIC_API


def test_anonymous_gets_401_json_on_every_other_endpoint(app: Flask) -> None:
    client = app.test_client()
    checked = 0
    for method, url, _endpoint in api_calls(app):
        if (method, url) in PUBLIC_API or is_reference_page(url):
            continue
        response = client.open(url, method=method, json={})
        assert response.status_code == 401, (method, url, response.status_code)
        assert response.get_json()["error"]["code"] == "unauthorized", (method, url)
        checked += 1
    assert checked >= 10


ADMIN_ONLY = [
    ("POST", "/api/v1/users", {"email": "new@northwind-supplies.com", "role": "member"}),
    ("POST", "/api/v1/users/{other}/password", {"password": "a long enough password"}),
    ("PATCH", "/api/v1/users/{other}", {"name": "Renamed"}),
    ("PATCH", "/api/v1/users/{me}", {"role": "admin"}),
    ("PATCH", "/api/v1/users/{me}", {"disabled": False}),
    ("GET", "/api/v1/tokens?all=true", None),
]


@pytest.mark.parametrize(("method", "url", "payload"), ADMIN_ONLY)
def test_members_get_403_on_admin_only_actions(
    client: FlaskClient, db: Database, method: str, url: str, payload: dict[str, Any] | None
) -> None:
    member = api_token(db, ANNA)
    ids = {"other": make_user(db, BEN)}
    with db.session() as session:
        ids["me"] = session.scalar(select(User.id).where(User.email == ANNA))
    response = client.open(url.format(**ids), method=method, json=payload, headers=bearer(member))
    assert response.status_code == 403, response.get_json()
    assert response.get_json()["error"]["code"] == "forbidden"


# -- rate limits ---------------------------------------------------------------------------------


def test_each_token_has_its_own_budget_per_minute(env: dict[str, str], db: Database) -> None:
    app = create_app(load_settings({**env, "RAPPORT_RATE_LIMIT_PER_MINUTE": "3"}), db=db)
    app.extensions["rapport.rate_limiter"] = RateLimiter(MemoryWindowStore, clock=lambda: 90.0)
    client = app.test_client()
    anna, ben = api_token(db, ANNA), api_token(db, BEN)
    answers = [client.get(LOOKUP, headers=bearer(anna)) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert answers[0].headers["RateLimit-Limit"] == "3"
    assert answers[2].headers["RateLimit-Remaining"] == "0"
    limited = answers[3]
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert client.get(LOOKUP, headers=bearer(ben)).status_code == 200


def test_a_fresh_token_used_by_many_requests_at_once_is_recorded_once_and_fails_none(
    app: Flask, db: Database
) -> None:
    """The first use of a token is written down in a transaction of its own: written inside
    the request's read transaction, concurrent first uses failed on SQLite ("database is
    locked") while another request wrote."""
    from concurrent.futures import ThreadPoolExecutor

    token = api_token(db, ANNA)
    writer = api_token(db, "ben@northwind-supplies.com")

    def read(_: int) -> int:
        return app.test_client().get("/api/v1/me", headers=bearer(token)).status_code

    def write(n: int) -> int:
        body = {"name": f"Someone {n}", "emails": [f"someone{n}@example.org"]}
        return (
            app.test_client()
            .post("/api/v1/contacts", json=body, headers=bearer(writer))
            .status_code
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        reads = [pool.submit(read, n) for n in range(24)]
        writes = [pool.submit(write, n) for n in range(8)]
        assert {f.result() for f in reads} == {200}
        assert {f.result() for f in writes} == {201}
    with db.session() as session:
        used = session.scalar(select(ApiToken.last_used_at).where(ApiToken.prefix == token[:10]))
    assert used is not None
