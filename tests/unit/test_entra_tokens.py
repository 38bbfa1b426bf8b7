"""Entra ID access tokens: what is accepted, what is refused and with which words, how the signing
keys are cached and refetched, and how they are fetched over HTTPS with our own CA rules."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from server.api.auth import entra_validator, https_json_fetcher
from server.config import load_settings
from server.crm.entra import (
    EntraConfig,
    EntraTokenRejected,
    FetchError,
    SigningKeys,
    SigningKeysUnavailable,
    TokenValidator,
)
from tests.support.jwks import (
    CLIENT_ID,
    OTHER_TENANT_ID,
    TENANT_ID,
    JwksServer,
    SigningKey,
    TokenSigner,
)

HOST = "login.example.test"
DISCOVERY = f"https://{HOST}/{TENANT_ID}/v2.0/.well-known/openid-configuration"
KEYS_URL = f"https://{HOST}/{TENANT_ID}/discovery/v2.0/keys"


class FakeTenant:
    """The two documents Entra ID serves, from memory, counting fetches."""

    def __init__(self) -> None:
        self.keys = [SigningKey("key-1")]
        self.fetches: list[str] = []
        self.down = False

    def fetch(self, url: str) -> Mapping[str, Any]:
        self.fetches.append(url)
        if self.down:
            raise FetchError(f"{url}: connection refused")
        if url == DISCOVERY:
            return {"jwks_uri": KEYS_URL, "issuer": f"https://{HOST}/{TENANT_ID}/v2.0"}
        if url == KEYS_URL:
            return {"keys": [k.jwk for k in self.keys]}
        raise FetchError(f"{url}: 404")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def tenant() -> FakeTenant:
    return FakeTenant()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def validator(tenant: FakeTenant, clock: Clock) -> TokenValidator:
    config = EntraConfig(tenant_id=TENANT_ID, client_id=CLIENT_ID, authority_host=HOST)
    return TokenValidator(config, SigningKeys(config.discovery_url, tenant.fetch, clock=clock))


@pytest.fixture
def signer() -> TokenSigner:
    return TokenSigner(HOST)


def refusal(validator: TokenValidator, token: str) -> str:
    with pytest.raises(EntraTokenRejected) as caught:
        validator.validate(token)
    return caught.value.message


def test_a_valid_token_names_tenant_and_object_id(
    validator: TokenValidator, signer: TokenSigner, tenant: FakeTenant
) -> None:
    token = signer.token(tenant.keys[0], oid="oid-anna", scp="access_as_user Other.Scope")
    identity = validator.validate(token)
    assert (identity.tenant_id, identity.object_id) == (TENANT_ID, "oid-anna")
    assert identity.email == "anna@northwind-supplies.com"
    assert identity.scopes == {"access_as_user", "Other.Scope"}
    assert tenant.fetches == [DISCOVERY, KEYS_URL]
    # The keys are cached: a second token fetches nothing.
    validator.validate(signer.token(tenant.keys[0]))
    assert len(tenant.fetches) == 2


def test_the_api_uri_form_of_the_audience_is_accepted(
    validator: TokenValidator, signer: TokenSigner, tenant: FakeTenant
) -> None:
    token = signer.token(tenant.keys[0], aud=f"api://{CLIENT_ID}")
    assert validator.validate(token).tenant_id == TENANT_ID


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"aud": "11111111-2222-3333-4444-555555555555"}, "not meant for this Rapport"),
        ({"iss": f"https://sts.example.test/{TENANT_ID}/v2.0"}, "issuer"),
        ({"tid": OTHER_TENANT_ID}, "accepts only tenant"),
        ({"exp": 1_000_000_000, "nbf": 999_999_000}, "expired"),
        ({"nbf": 4_000_000_000, "exp": 4_000_003_600}, "not valid yet"),
        ({"scp": "User.Read"}, "does not grant the scope 'access_as_user'"),
        ({"scp": None, "roles": ["Everything.All"]}, "app-only token"),
        ({"oid": None}, "lacks the 'oid' claim"),
        (
            {"ver": "1.0", "iss": f"https://sts.windows.net/{TENANT_ID}/"},
            "requestedAccessTokenVersion",
        ),
        ({"ver": None}, "unsupported token version"),
    ],
    ids=[
        "wrong-audience",
        "wrong-issuer",
        "wrong-tenant",
        "expired",
        "not-yet-valid",
        "missing-scope",
        "app-only",
        "no-object-id",
        "v1-token",
        "no-version",
    ],
)
def test_tokens_not_made_for_us_are_refused_with_a_reason(
    validator: TokenValidator,
    signer: TokenSigner,
    tenant: FakeTenant,
    claims: dict[str, Any],
    expected: str,
) -> None:
    assert expected in refusal(validator, signer.token(tenant.keys[0], **claims))


def test_clock_skew_within_the_leeway_is_tolerated(
    validator: TokenValidator, signer: TokenSigner, tenant: FakeTenant
) -> None:
    import time

    now = int(time.time())
    token = signer.token(tenant.keys[0], nbf=now + 30, exp=now + 3600)
    assert validator.validate(token).object_id


def test_a_forged_signature_is_refused(
    validator: TokenValidator, signer: TokenSigner, tenant: FakeTenant
) -> None:
    forger = SigningKey("forger")
    # Signed with another key but claiming the tenant's key id.
    token = signer.token(forger, kid="key-1")
    assert "signature does not verify" in refusal(validator, token)


def test_an_unsigned_or_hmac_token_is_refused(
    validator: TokenValidator, signer: TokenSigner
) -> None:
    import jwt

    unsigned = jwt.encode(signer.claims(), None, algorithm="none", headers={"kid": "key-1"})
    assert "signed with 'none'" in refusal(validator, unsigned)
    hmac = jwt.encode(signer.claims(), "x" * 32, algorithm="HS256", headers={"kid": "key-1"})
    assert "signed with 'HS256'" in refusal(validator, hmac)
    assert "not a well-formed JWT" in refusal(validator, "eyJ.not.a-token")


def test_an_unknown_key_id_refetches_once_then_refuses(
    validator: TokenValidator, signer: TokenSigner, tenant: FakeTenant, clock: Clock
) -> None:
    validator.validate(signer.token(tenant.keys[0]))
    assert len(tenant.fetches) == 2
    clock.now += 120
    stranger = SigningKey("not-published")
    assert "does not publish" in refusal(validator, signer.token(stranger))
    assert len(tenant.fetches) == 4  # discovery + keys, once
    # A flood of made-up key ids inside the refetch interval fetches nothing more.
    for n in range(20):
        refusal(validator, signer.token(stranger, kid=f"made-up-{n}"))
    assert len(tenant.fetches) == 4


def test_a_rotated_key_is_picked_up_by_the_refetch(
    validator: TokenValidator, signer: TokenSigner, tenant: FakeTenant, clock: Clock
) -> None:
    validator.validate(signer.token(tenant.keys[0]))
    clock.now += 120
    rotated = SigningKey("key-2")
    tenant.keys.append(rotated)
    assert validator.validate(signer.token(rotated)).tenant_id == TENANT_ID


def test_keys_are_refreshed_daily_and_kept_when_the_refresh_fails(
    validator: TokenValidator, signer: TokenSigner, tenant: FakeTenant, clock: Clock
) -> None:
    validator.validate(signer.token(tenant.keys[0]))
    clock.now += 25 * 3600
    tenant.down = True
    # The day-old keys still verify while Entra ID cannot be reached.
    assert validator.validate(signer.token(tenant.keys[0])).tenant_id == TENANT_ID
    assert len(tenant.fetches) == 3


def test_no_keys_at_all_is_unavailable_not_a_refusal(
    validator: TokenValidator, signer: TokenSigner, tenant: FakeTenant
) -> None:
    tenant.down = True
    with pytest.raises(SigningKeysUnavailable, match="RAPPORT_CA_BUNDLE"):
        validator.validate(signer.token(tenant.keys[0]))
    # Retried only after the refetch interval, not on every request.
    with pytest.raises(SigningKeysUnavailable, match="retrying shortly"):
        validator.validate(signer.token(tenant.keys[0]))
    assert len(tenant.fetches) == 1


# -- over HTTPS, as in production -----------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[JwksServer]:
    running = JwksServer(tmp_path).start()
    yield running
    running.stop()


def settings_for(server: JwksServer, tmp_path: Path, **extra: str) -> Any:
    env = {
        "RAPPORT_DATA_DIR": str(tmp_path / "data"),
        "RAPPORT_SECRET_KEY": "k" * 40,
        **server.env(),
        **extra,
    }
    return load_settings({k: v for k, v in env.items() if v})


def test_keys_are_fetched_over_https_trusting_the_configured_ca(
    server: JwksServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The machine's REQUESTS_CA_BUNDLE must not replace our CA rules (trust_env=False).
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(tmp_path / "missing.pem"))
    validator = entra_validator(settings_for(server, tmp_path))
    assert validator is not None
    signer = TokenSigner(server.authority_host)
    identity = validator.validate(signer.token(server.keys[0], oid="oid-1"))
    assert identity.object_id == "oid-1"
    assert server.hits == {server.discovery_path: 1, server.keys_path: 1}


def test_without_the_ca_the_keys_cannot_be_fetched(server: JwksServer, tmp_path: Path) -> None:
    settings = settings_for(server, tmp_path, RAPPORT_CA_BUNDLE="")
    fetch = https_json_fetcher(settings)
    with pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED"):
        fetch(f"https://{server.authority_host}{server.discovery_path}")
    assert server.hits == {}


def test_the_fetcher_refuses_plain_http_and_non_json(server: JwksServer, tmp_path: Path) -> None:
    fetch = https_json_fetcher(settings_for(server, tmp_path))
    with pytest.raises(FetchError, match="not an https URL"):
        fetch(f"http://{server.authority_host}{server.discovery_path}")
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(f"https://{server.authority_host}/nothing")


def test_entra_sign_in_is_off_unless_tenant_and_client_are_set(tmp_path: Path) -> None:
    base = {"RAPPORT_DATA_DIR": str(tmp_path), "RAPPORT_SECRET_KEY": "k" * 40}
    assert entra_validator(load_settings(base)) is None
    half = load_settings({**base, "RAPPORT_ENTRA_TENANT_ID": TENANT_ID})
    assert entra_validator(half) is None
