"""The identity emulator answers msal as Entra ID does, for the flows the Graph links need next:
authorization code with PKCE, device code, refresh with rotation, certificate credentials, keys.
Minimal on purpose: the IMAP tests (tests/integration/test_imap_oauth.py) use it in depth."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import jwt
import msal  # type: ignore[import-untyped]
import pytest
import requests
import trustme

from server.mail_ingest.errors import AuthExpired, PermissionDenied, Throttled
from server.mail_ingest.oauth import (
    IdentityEndpoints,
    MicrosoftApp,
    TokenFailure,
    classify_identity_failure,
    https_session,
    identity_problem_of,
    token_source,
)
from tests.emulators.fixtures import identity, identity_server  # noqa: F401
from tests.emulators.identity import EXCHANGE, GRAPH, IdentityEmulator, client_certificate

REDIRECT = "http://localhost:8765/signed-in"
IMAP_USER_SCOPE = "https://outlook.office.com/IMAP.AccessAsUser.All"


@pytest.fixture
def session(identity: IdentityEmulator) -> Iterator[requests.Session]:  # noqa: F811
    endpoints = IdentityEndpoints(identity.authority_host, identity.ca_path, 10)
    with https_session(endpoints) as http:
        yield http


def test_authorization_code_with_pkce_then_a_rotating_refresh(
    identity: IdentityEmulator,  # noqa: F811
    session: requests.Session,
) -> None:
    tenant = identity.add_tenant()
    identity.add_user(tenant, "anna@contoso.example", "Anna Berg")
    app = identity.add_app(
        tenant,
        secret="app-secret",
        redirect_uris=(REDIRECT,),
        delegated={"https://outlook.office.com": {"IMAP.AccessAsUser.All"}},
    )
    client = msal.ConfidentialClientApplication(
        app.client_id,
        client_credential="app-secret",
        authority=identity.url(f"/{tenant.id}"),
        http_client=session,
        instance_discovery=False,
    )
    flow = client.initiate_auth_code_flow(
        [IMAP_USER_SCOPE], redirect_uri=REDIRECT, response_mode="form_post"
    )
    assert flow["code_verifier"] and "code_challenge=" in flow["auth_uri"]
    identity.signed_in_user = "anna@contoso.example"
    page = session.get(flow["auth_uri"], allow_redirects=False)
    assert page.status_code == 200  # a form the browser posts to the redirect URI
    assert f'action="{REDIRECT}"' in page.text
    query = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
    result = client.acquire_token_by_auth_code_flow(flow, query)
    assert "access_token" in result, result
    claims = identity.decode(result["access_token"])
    assert claims["scp"] == "IMAP.AccessAsUser.All"
    assert claims["upn"] == "anna@contoso.example"
    assert result["id_token_claims"]["preferred_username"] == "anna@contoso.example"

    # The code is single-use; the refresh token rotates.
    again = client.acquire_token_by_auth_code_flow(flow, query)
    assert "error" in again
    account = client.get_accounts()[0]
    before = {rt["secret"] for rt in client.token_cache.search("RefreshToken")}
    refreshed = client.acquire_token_silent([IMAP_USER_SCOPE], account, force_refresh=True)
    assert refreshed and "access_token" in refreshed
    after = {rt["secret"] for rt in client.token_cache.search("RefreshToken")}
    assert after and after != before


def test_device_code_flow_and_a_policy_that_blocks_it(
    identity: IdentityEmulator,  # noqa: F811
    session: requests.Session,
) -> None:
    tenant = identity.add_tenant()
    identity.add_user(tenant, "ben@contoso.example")
    app = identity.add_app(tenant, public_client=True, delegated={GRAPH: {"Mail.Read"}})
    client = msal.PublicClientApplication(
        app.client_id,
        authority=identity.url(f"/{tenant.id}"),
        http_client=session,
        instance_discovery=False,
    )
    flow = client.initiate_device_flow(["Mail.Read"])
    assert flow["user_code"] in flow["message"]
    identity.approve_device_code(flow["user_code"], "ben@contoso.example")
    result = client.acquire_token_by_device_flow(flow)
    assert identity.decode(result["access_token"])["scp"] == "Mail.Read"

    identity.block_device_code = True
    flow = client.initiate_device_flow(["Mail.Read"])
    refused = client.acquire_token_by_device_flow(flow)
    problem = classify_identity_failure(
        TokenFailure(
            "microsoft",
            identity.authority_host,
            error=refused["error"],
            description=refused["error_description"],
            codes=tuple(refused["error_codes"]),
        )
    )
    assert problem.kind is PermissionDenied and "Conditional Access" in problem.message


def test_a_pending_device_code_answers_authorization_pending(
    identity: IdentityEmulator,  # noqa: F811
    session: requests.Session,
) -> None:
    tenant = identity.add_tenant()
    app = identity.add_app(tenant, public_client=True, delegated={GRAPH: {"Mail.Read"}})
    base = identity.url(f"/{tenant.id}/oauth2/v2.0")
    device = session.post(
        f"{base}/devicecode", data={"client_id": app.client_id, "scope": "Mail.Read"}
    ).json()
    poll = session.post(
        f"{base}/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "client_id": app.client_id,
            "device_code": device["device_code"],
        },
    )
    assert poll.status_code == 400
    assert poll.json()["error"] == "authorization_pending"
    assert poll.json()["error_codes"] == [70016]


def test_certificate_credentials_are_checked_against_the_registered_certificate(
    identity: IdentityEmulator,  # noqa: F811
) -> None:
    tenant = identity.add_tenant()
    registered, other = client_certificate("registered"), client_certificate("someone-else")
    app = identity.imap_app(tenant, "a@contoso.example", certificate=registered.certificate)
    endpoints = IdentityEndpoints(identity.authority_host, identity.ca_path, 10)
    good = token_source(
        MicrosoftApp(tenant.id, app.client_id, certificate_pem=registered.pem), endpoints
    )
    token = good.token()
    keys = requests.get(  # the token verifies with the published key set
        identity.url(f"/{tenant.id}/discovery/v2.0/keys"), verify=str(identity.ca_path), timeout=10
    ).json()["keys"]
    public = jwt.PyJWK(keys[0]).key
    claims = jwt.decode(token, public, algorithms=["RS256"], audience=EXCHANGE)
    assert claims["roles"] == ["IMAP.AccessAsApp"] and claims["tid"] == tenant.id

    bad = token_source(MicrosoftApp(tenant.id, app.client_id, certificate_pem=other.pem), endpoints)
    with pytest.raises(AuthExpired, match="not registered on app") as refused:
        bad.token()
    problem = identity_problem_of(refused.value)
    assert problem is not None and problem.field == "certificate"


def test_rapport_ca_bundle_wins_over_requests_ca_bundle(
    identity: IdentityEmulator,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    decoy = tmp_path / "decoy.pem"
    trustme.CA().cert_pem.write_to_path(str(decoy))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(decoy))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(decoy))
    url = identity.url("/common/v2.0/.well-known/openid-configuration")
    with requests.Session() as plain:
        plain.verify = str(identity.ca_path)  # silently replaced by REQUESTS_CA_BUNDLE
        with pytest.raises(requests.exceptions.SSLError):
            plain.get(url, timeout=10)
    endpoints = IdentityEndpoints(identity.authority_host, identity.ca_path, 10)
    with https_session(endpoints) as ours:
        assert ours.get(url).status_code == 200


def test_an_untrusted_identity_host_is_a_tls_problem_with_what_to_do(
    identity: IdentityEmulator,  # noqa: F811
) -> None:
    tenant = identity.add_tenant()
    app = identity.imap_app(tenant, "a@contoso.example", secret="s")
    endpoints = IdentityEndpoints(identity.authority_host, None, 10)  # no RAPPORT_CA_BUNDLE
    source = token_source(MicrosoftApp(tenant.id, app.client_id, client_secret="s"), endpoints)
    with pytest.raises(Exception, match="RAPPORT_CA_BUNDLE") as failed:
        source.token()
    problem = identity_problem_of(failed.value)
    assert problem is not None and problem.code == "oauth_tls_untrusted"


def test_server_errors_with_retry_after_are_throttling(
    identity: IdentityEmulator,  # noqa: F811
) -> None:
    tenant = identity.add_tenant()
    app = identity.imap_app(tenant, "a@contoso.example", secret="s")
    endpoints = IdentityEndpoints(identity.authority_host, identity.ca_path, 10)
    source = token_source(MicrosoftApp(tenant.id, app.client_id, client_secret="s"), endpoints)
    identity.fail_next(status=503, retry_after=30)
    with pytest.raises(Throttled) as throttled:
        source.token()
    assert throttled.value.retry_after == 30
    # (msal replays a throttled answer until its Retry-After: another app for the next case)
    other = identity.imap_app(tenant, "b@contoso.example", secret="t")
    identity.fail_next(status=429, error="temporarily_unavailable", code=90055, retry_after=12)
    source = token_source(MicrosoftApp(tenant.id, other.client_id, client_secret="t"), endpoints)
    with pytest.raises(Throttled) as second:
        source.token()
    assert second.value.retry_after == 12
