"""Validating the Entra ID access tokens the task pane sends (nested app authentication).

Why this exists: the pane signs the user in with Microsoft and sends an access token for Rapport's
own API (the add-in's app registration). Anyone can make a JWT; one is accepted only when the
tenant's published signing key verifies it and every claim says it was made for us: our audience,
our tenant and its issuer, our scope, inside its time window, in the v2.0 format. The person is
then the pair (tenant id, object id) — names and addresses change, those two do not.

Decisions:
- One tenant (RAPPORT_ENTRA_TENANT_ID). Multi-tenant sign-in is not supported: a token from any
  other tenant is refused, even though all tenants share Microsoft's signing keys.
- v2.0 tokens only. A v1.0 token (the app registration's default) gets an error telling the admin
  to set `requestedAccessTokenVersion` to 2.
- Signing keys come from the tenant's OpenID discovery document, are cached for a day and
  refetched early when a token names an unknown key id (Microsoft rotates keys) — at most once
  per `refetch_interval`, so a flood of made-up key ids cannot hammer the key endpoint.

No Flask and no HTTP client here: the caller passes `fetch_json(url)`, which the API builds on
`requests` (with its own CA rules) and the unit tests replace with a dict.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.exceptions import PyJWKError

log = logging.getLogger(__name__)

DAY = 24 * 3600.0
ALGORITHMS = ["RS256"]

V1_REFUSAL = (
    "this is a v1.0 Entra ID access token; Rapport accepts v2.0 tokens only. An admin sets "
    '"requestedAccessTokenVersion": 2 in the add-in\'s app registration (Manifest), then users '
    "sign in again"
)


class EntraTokenRejected(Exception):
    """The token is not one we accept; `message` says why, in words an admin can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SigningKeysUnavailable(Exception):
    """The tenant's signing keys could not be fetched: no Entra token can be checked right now."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FetchError(Exception):
    """Raised by a `fetch_json` that could not get a JSON object from a URL."""


FetchJson = Callable[[str], Mapping[str, Any]]


@dataclass(frozen=True)
class EntraConfig:
    """What a token must match: the add-in's app registration in one tenant."""

    tenant_id: str
    client_id: str
    authority_host: str = "login.microsoftonline.com"
    scope: str = "access_as_user"
    # Application ID URIs other than api://CLIENT_ID that an admin gave the API (e.g. the
    # api://HOST/CLIENT_ID form). v2.0 tokens carry the bare client id, but both forms are
    # documented for `aud`, so both are accepted.
    extra_audiences: tuple[str, ...] = ()
    leeway_seconds: int = 60

    @property
    def discovery_url(self) -> str:
        return (
            f"https://{self.authority_host}/{self.tenant_id}/v2.0/.well-known/openid-configuration"
        )

    @property
    def issuer(self) -> str:
        return f"https://{self.authority_host}/{self.tenant_id}/v2.0"

    @property
    def audiences(self) -> tuple[str, ...]:
        return (self.client_id, f"api://{self.client_id}", *self.extra_audiences)

    @property
    def scope_uri(self) -> str:
        """What the pane asks Microsoft for."""
        return f"api://{self.client_id}/{self.scope}"


@dataclass(frozen=True)
class EntraIdentity:
    """Who a valid token speaks for. `email` is only a hint for the first sign-in's link."""

    tenant_id: str
    object_id: str
    email: str | None
    name: str
    scopes: frozenset[str]


class SigningKeys:
    """The tenant's token signing keys by key id, fetched through its discovery document."""

    def __init__(
        self,
        discovery_url: str,
        fetch_json: FetchJson,
        *,
        max_age: float = DAY,
        refetch_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.discovery_url = discovery_url
        self._fetch_json = fetch_json
        self._max_age = max_age
        self._refetch_interval = refetch_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._fetched_at = 0.0
        self._last_refetch: float | None = None  # the last refetch for an unknown key id
        self._last_failure: float | None = None

    def get(self, kid: str) -> jwt.PyJWK | None:
        """The key with this id, or None if the tenant does not publish it (after one refetch)."""
        with self._lock:
            now = self._clock()
            if self._keys is None or now - self._fetched_at > self._max_age:
                self._refresh(now)
            assert self._keys is not None
            key = self._keys.get(kid)
            if key is None and not self._recent(self._last_refetch, now):
                self._last_refetch = now
                self._refresh(now)
                key = self._keys.get(kid)
            return key

    def _recent(self, moment: float | None, now: float) -> bool:
        return moment is not None and now - moment < self._refetch_interval

    def _refresh(self, now: float) -> None:
        """Fetch the keys; on failure keep the keys we had (if any) and wait before retrying."""
        if self._recent(self._last_failure, now):
            if self._keys is None:
                raise SigningKeysUnavailable(
                    f"Entra ID signing keys are unavailable (the last fetch from "
                    f"{self.discovery_url} failed); retrying shortly"
                )
            return
        try:
            self._keys = self._load()
            self._fetched_at = now
            self._last_failure = None
        except FetchError as exc:
            self._last_failure = now
            if self._keys is None:
                raise SigningKeysUnavailable(
                    f"cannot fetch Entra ID signing keys: {exc}; check RAPPORT_ENTRA_TENANT_ID, "
                    "RAPPORT_GRAPH_AUTHORITY_HOST and RAPPORT_CA_BUNDLE"
                ) from exc
            log.warning("entra signing keys: refresh failed, keeping the cached keys: %s", exc)

    def _load(self) -> dict[str, jwt.PyJWK]:
        discovery = self._fetch_json(self.discovery_url)
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise FetchError(f"{self.discovery_url} names no https jwks_uri")
        document = self._fetch_json(jwks_uri)
        raw_keys = document.get("keys")
        if not isinstance(raw_keys, list):
            raise FetchError(f"{jwks_uri} holds no 'keys' list")
        keys: dict[str, jwt.PyJWK] = {}
        for raw in raw_keys:
            if not isinstance(raw, dict) or not isinstance(raw.get("kid"), str):
                continue
            if raw.get("use", "sig") != "sig":
                continue
            try:
                keys[raw["kid"]] = jwt.PyJWK(raw)
            except (PyJWKError, ValueError, TypeError):
                log.warning("entra signing keys: skipped unusable key %s", raw.get("kid"))
        if not keys:
            raise FetchError(f"{jwks_uri} holds no usable signing key")
        return keys


class TokenValidator:
    """Checks an Entra ID access token and says who it speaks for, or why it is refused."""

    def __init__(self, config: EntraConfig, keys: SigningKeys) -> None:
        self.config = config
        self.keys = keys

    def validate(self, token: str) -> EntraIdentity:
        config = self.config
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise EntraTokenRejected("this is not a well-formed JWT access token") from None
        # The version decides which rules apply, so it is looked at before anything else; a
        # forged token learns nothing from this message but the setting an admin must change.
        version = unverified.get("ver")
        if version == "1.0":
            raise EntraTokenRejected(V1_REFUSAL)
        if version != "2.0":
            raise EntraTokenRejected(
                f"unsupported token version {version!r}; Rapport accepts Entra ID v2.0 tokens"
            )
        if header.get("alg") not in ALGORITHMS:
            raise EntraTokenRejected(
                f"the token is signed with {header.get('alg')!r}; Entra ID signs with RS256"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise EntraTokenRejected("the token names no signing key (kid)")
        key = self.keys.get(kid)
        if key is None:
            raise EntraTokenRejected(
                f"the token is signed with key {kid!r}, which tenant {config.tenant_id} does "
                "not publish: it is not an Entra ID token of this tenant"
            )
        claims = self._verified_claims(token, key)
        tenant = str(claims["tid"])
        if tenant.lower() != config.tenant_id.lower():
            raise EntraTokenRejected(
                f"the token comes from tenant {tenant}, but this Rapport accepts only tenant "
                f"{config.tenant_id} (RAPPORT_ENTRA_TENANT_ID); sign-in from other tenants is "
                "not supported"
            )
        if claims["iss"] != config.issuer:
            raise EntraTokenRejected(
                f"the token's issuer is {claims['iss']!r}, not {config.issuer!r}; check "
                "RAPPORT_GRAPH_AUTHORITY_HOST and RAPPORT_ENTRA_TENANT_ID"
            )
        scp = claims.get("scp")
        scopes = frozenset(scp.split()) if isinstance(scp, str) else frozenset()
        if config.scope not in scopes:
            got = ", ".join(sorted(scopes)) or "none (an app-only token is not accepted)"
            raise EntraTokenRejected(
                f"the token does not grant the scope {config.scope!r} (it has: {got}); the pane "
                f"must ask for {config.scope_uri}"
            )
        email = next(
            (
                str(claims[name]).strip()
                for name in ("preferred_username", "email", "upn")
                if isinstance(claims.get(name), str) and "@" in claims[name]
            ),
            None,
        )
        return EntraIdentity(
            tenant_id=tenant,
            object_id=str(claims["oid"]),
            email=email,
            name=str(claims.get("name") or ""),
            scopes=scopes,
        )

    def _verified_claims(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        config = self.config
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=ALGORITHMS,
                audience=list(config.audiences),
                leeway=config.leeway_seconds,
                options={"require": ["exp", "nbf", "aud", "iss", "tid", "oid"]},
            )
        except jwt.ExpiredSignatureError:
            raise EntraTokenRejected(
                "the token has expired; the pane gets a fresh one when it signs in again"
            ) from None
        except jwt.ImmatureSignatureError:
            raise EntraTokenRejected(
                "the token is not valid yet (nbf is in the future); check this server's clock"
            ) from None
        except jwt.InvalidAudienceError:
            raise EntraTokenRejected(
                f"the token is not meant for this Rapport: its audience must be "
                f"{config.client_id} (RAPPORT_ENTRA_CLIENT_ID); the pane must ask for "
                f"{config.scope_uri}"
            ) from None
        except jwt.InvalidSignatureError:
            raise EntraTokenRejected(
                "the token's signature does not verify with the tenant's signing key"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise EntraTokenRejected(f"the token lacks the {exc.claim!r} claim") from None
        except jwt.InvalidTokenError as exc:
            raise EntraTokenRejected(f"the token is not valid: {exc}") from None
        return claims
