"""OAuth access tokens for mail servers that refuse passwords, and what an identity provider's
refusal means.

Exchange Online switched basic authentication off and Gmail wants OAuth (or an app password), so
an IMAP link may sign in with SASL XOAUTH2 instead of a password. This module is where those
links get their access tokens; the IMAP source asks a `TokenSource` for one at each connection.
The Graph source (issue 9) reuses the same identity side: the HTTP session, the msal set-up and
the error normaliser.

Two flows:

* Microsoft Entra ID, app-only (OAuth 2.0 client credentials, through `msal`), for Exchange Online
  IMAP: a confidential app with a client secret or a certificate asks for
  `https://outlook.office365.com/.default` in its own tenant (a tenant id or domain, never
  `common`: an app-only token belongs to one tenant). The IMAP user name is the mailbox's address.
  Exchange Online accepts the token only when (Microsoft, "Authenticate an IMAP, POP or SMTP
  connection using OAuth", section "Use client credentials grant flow to authenticate SMTP, IMAP
  and POP connections"):
    1. the app has the application permission IMAP.AccessAsApp of "Office 365 Exchange Online",
       with admin consent;
    2. the app's service principal is registered in Exchange Online:
       `New-ServicePrincipal -AppId <application id> -ObjectId <enterprise application object id>`
       (the object id of the Enterprise application, not of the App registration);
    3. that service principal may open the mailbox:
       `Add-MailboxPermission -Identity <mailbox> -User <service principal id> -AccessRights FullAccess`.
  msal keeps the token in memory, per process, and asks for a new one shortly before it expires;
  nothing needs storing.

* A refresh token (OAuth 2.0 refresh grant, RFC 6749 section 6, with plain `requests`), for other
  providers such as Gmail: client id, client secret and a refresh token the mailbox's owner
  obtained once, against the provider's token endpoint (Google:
  https://oauth2.googleapis.com/token, scope https://mail.google.com/). A provider that rotates
  refresh tokens sends a new one with each access token: it replaces the old one in the link's
  encrypted secret at once (`SecretStore`), or the link would die when the old one is retired.

Every HTTP request goes through `https_session`: `trust_env=False`, so REQUESTS_CA_BUNDLE /
CURL_CA_BUNDLE (set on many machines) cannot silently replace the trusted CAs, and proxies from
the environment do not apply; the system's CAs plus RAPPORT_CA_BUNDLE are trusted. The authority
host comes from RAPPORT_GRAPH_AUTHORITY_HOST; for a host Microsoft does not list as its own (a
sovereign cloud is listed, a test emulator is not) msal's instance discovery at
login.microsoftonline.com is switched off, or msal would ask Microsoft about a host it has never
heard of.

`classify_identity_failure` is the one pure function that turns what the identity provider said
(an OAuth error, AADSTS codes, an HTTP status, a network or TLS failure) into our error kinds,
with the setting to fix and what to do: a wrong secret or a revoked grant is `AuthExpired` (the
link needs attention), missing consent or a blocking policy `PermissionDenied`, a 429 `Throttled`,
a 5xx or a network failure `Temporary`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import ssl
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from server.mail_ingest.errors import (
    AuthExpired,
    PermissionDenied,
    SourceError,
    Temporary,
    Throttled,
)
from server.tls import ExtraCAAdapter

if TYPE_CHECKING:
    from server.config import Settings
    from server.models import MailboxLink

log = logging.getLogger(__name__)

EXCHANGE_IMAP_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_TOKEN_ENDPOINT = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
GOOGLE_SCOPE = "https://mail.google.com/"
DEFAULT_AUTHORITY_HOST = "login.microsoftonline.com"
PROVIDERS = ("microsoft", "google")
REFRESH_AHEAD = 300  # seconds: an access token this close to expiry is renewed first
MAX_RESPONSE = 1024 * 1024  # a token endpoint's answer is a few KB
_MAX_APPS = 256  # msal apps kept per process (one per tenant, client id and credential)

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.I)
_MULTI_TENANT = ("common", "organizations", "consumers")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.DOTALL)


# --------------------------------------------------------------------------------------------
# Where the identity providers are, and how we talk to them


@dataclass(frozen=True)
class IdentityEndpoints:
    """The deployment's identity settings: Entra's host (RAPPORT_GRAPH_AUTHORITY_HOST, a host
    with an optional port) and the extra trusted CA (RAPPORT_CA_BUNDLE)."""

    authority_host: str = DEFAULT_AUTHORITY_HOST
    ca_bundle: Path | None = None
    timeout: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = 30.0) -> IdentityEndpoints:
        return cls(settings.graph_authority_host, settings.ca_bundle, timeout)

    def authority(self, tenant: str) -> str:
        return f"https://{self.authority_host}/{tenant}"

    @property
    def known_to_microsoft(self) -> bool:
        from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS  # type: ignore[import-untyped]

        return self.authority_host.lower() in WELL_KNOWN_AUTHORITY_HOSTS


class IdentitySession(requests.Session):
    """A requests session for identity providers: the environment ignored, CAs as configured, a
    default timeout, and (per thread) the status and Retry-After of the last answer, which msal
    does not pass on."""

    def __init__(self, ca_bundle: Path | None, timeout: float) -> None:
        super().__init__()
        self.trust_env = False
        self.timeout = timeout
        self.mount("https://", ExtraCAAdapter(ca_bundle))
        self._last = threading.local()

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout)
        kwargs["verify"] = True  # what "trusted" means is the adapter's context, nothing else
        response = super().request(method, url, *args, **kwargs)
        self._last.answer = (response.status_code, response.headers.get("Retry-After"))
        return response

    def forget_last(self) -> None:
        self._last.answer = None

    @property
    def last_answer(self) -> tuple[int, str | None] | None:
        return getattr(self._last, "answer", None)


def https_session(endpoints: IdentityEndpoints) -> IdentitySession:
    return IdentitySession(endpoints.ca_bundle, endpoints.timeout)


# --------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class IdentityProblem:
    """Why no token could be had: the error kind (what the worker does), a code and the setting
    to fix (what a form points at), and a message saying what to do."""

    kind: type[SourceError]
    code: str
    field: str
    message: str
    retry_after: float | None = None

    def error(self) -> SourceError:
        if self.kind is Throttled:
            return Throttled(self.message, retry_after=self.retry_after)
        return self.kind(self.message)


class IdentityError(Exception):
    """Carries an IdentityProblem as the cause of the SourceError a token source raises, so a
    connection test can tell the form which setting to fix."""

    def __init__(self, problem: IdentityProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def identity_problem_of(exc: BaseException) -> IdentityProblem | None:
    """The identity problem behind an error a token source (or a source using one) raised."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, IdentityError):
            return current.problem
        seen.add(id(current))
        current = current.__cause__
    return None


@dataclass(frozen=True)
class TokenFailure:
    """What happened when a token was asked for, as raw facts (input of the classifier)."""

    provider: str  # "microsoft", "google" or another provider's name
    where: str  # the identity host, for messages
    error: str | None = None  # OAuth "error"
    description: str | None = None  # OAuth "error_description"
    codes: tuple[int, ...] = ()  # Entra's "error_codes" (AADSTS numbers)
    status: int | None = None  # HTTP status, when known
    retry_after: float | None = None
    exception: BaseException | None = None
    client_id: str = ""
    tenant: str = ""


# AADSTS codes (Microsoft, "Microsoft Entra authentication and authorization error codes",
# https://learn.microsoft.com/entra/identity-platform/reference-error-codes) -> kind, form code,
# setting to fix, what to do. {client_id} and {tenant} are filled in.
_AADSTS: dict[int, tuple[type[SourceError], str, str, str]] = {
    7000215: (AuthExpired, "oauth_client_secret", "client_secret",
              "the client secret is wrong: give the secret's Value, not its Secret ID"),
    7000222: (AuthExpired, "oauth_client_secret", "client_secret",
              "the client secret has expired: add a new one under Certificates & secrets in the "
              "app registration and re-link"),
    7000218: (AuthExpired, "oauth_client_secret", "client_secret",
              "the app needs a client secret or a certificate and none was sent"),
    700016: (AuthExpired, "oauth_client_id", "client_id",
             "no app with client id {client_id} in tenant {tenant}: check the Application "
             "(client) ID and the Directory (tenant) ID on the app's Overview page"),
    700027: (AuthExpired, "oauth_certificate", "certificate",
             "the certificate is not registered on app {client_id}: upload its public part "
             "under Certificates & secrets"),
    700024: (AuthExpired, "oauth_certificate", "certificate",
             "the signed client assertion is outside its valid time: check this machine's clock"),
    700021: (AuthExpired, "oauth_certificate", "certificate",
             "the client assertion was refused (it names another app)"),
    700023: (AuthExpired, "oauth_certificate", "certificate",
             "the client assertion was refused (wrong audience)"),
    50027: (AuthExpired, "oauth_certificate", "certificate",
            "the client assertion was refused as malformed"),
    90002: (AuthExpired, "oauth_tenant", "tenant",
            "tenant {tenant} does not exist: give the Directory (tenant) ID from the app's "
            "Overview page"),
    900023: (AuthExpired, "oauth_tenant", "tenant",
             "{tenant} is not a tenant id: give the Directory (tenant) ID (a GUID) or the "
             "tenant's domain"),
    50059: (AuthExpired, "oauth_tenant", "tenant",
            "app-only sign-in needs the tenant's id, not common or organizations"),
    50194: (AuthExpired, "oauth_tenant", "tenant",
            "the app is single-tenant: use the tenant it is registered in"),
    7000112: (PermissionDenied, "oauth_client_id", "client_id",
              "app {client_id} is disabled in the tenant: enable it (Enterprise applications)"),
    65001: (PermissionDenied, "oauth_consent", "client_id",
            "an administrator must grant admin consent to app {client_id} (App registrations "
            "> API permissions > Grant admin consent)"),
    650057: (PermissionDenied, "oauth_consent", "client_id",
             "app {client_id} lacks the permission asked for: add it under API permissions and "
             "grant admin consent"),
    500011: (PermissionDenied, "oauth_resource", "client_id",
             "the service asked for is not in tenant {tenant} (does it have Exchange Online?)"),
    1002012: (PermissionDenied, "oauth_scope", "client_id",
              "the scope asked for is not valid for app-only sign-in"),
    70011: (PermissionDenied, "oauth_scope", "client_id", "the scope asked for is not valid"),
    70008: (AuthExpired, "oauth_grant", "refresh_token",
            "the refresh token has expired: sign in again and re-link"),
    700082: (AuthExpired, "oauth_grant", "refresh_token",
             "the refresh token expired after a long time unused: sign in again and re-link"),
    50173: (AuthExpired, "oauth_grant", "refresh_token",
            "the grant was revoked (a password change or a sign-out everywhere): sign in again "
            "and re-link"),
    50133: (AuthExpired, "oauth_grant", "refresh_token",
            "the session was revoked after a password change: sign in again and re-link"),
    54005: (AuthExpired, "oauth_grant", "refresh_token",
            "the authorization code was already used: sign in again"),
    # The browser sign-in (authorization code with PKCE): what the redirect or the code
    # redemption can say.
    65004: (PermissionDenied, "oauth_consent", "user",
            "the user declined to consent to app {client_id}: sign in again and accept, or have "
            "an administrator grant consent for the organisation"),
    501481: (AuthExpired, "oauth_grant", "user",
             "the sign-in's PKCE code verifier did not match its challenge: start the sign-in "
             "again"),
    50011: (PermissionDenied, "oauth_redirect", "client_id",
            "the redirect URI is not registered on app {client_id}: add it under "
            "Authentication > Web"),
    50076: (PermissionDenied, "oauth_policy", "user",
            "the tenant requires multi-factor sign-in for this: sign in interactively"),
    50079: (PermissionDenied, "oauth_policy", "user",
            "the tenant requires multi-factor sign-in for this: sign in interactively"),
    53003: (PermissionDenied, "oauth_policy", "user",
            "a Conditional Access policy of the tenant blocks this sign-in: ask its admin"),
    50057: (AuthExpired, "oauth_account", "user", "the user account is disabled"),
    50053: (AuthExpired, "oauth_account", "user", "the user account is locked"),
    50126: (AuthExpired, "oauth_account", "user", "the user name or password is wrong"),
    50034: (AuthExpired, "oauth_account", "user", "the user account does not exist"),
    90033: (Temporary, "oauth_unavailable", "host", "the identity service had a transient error"),
    50196: (Throttled, "oauth_throttled", "host",
            "the identity service saw too many requests in a loop"),
}  # fmt: skip

# OAuth "error" values (RFC 6749 section 5.2, RFC 8628 section 3.5, OIDC) when no code matched.
_OAUTH_ERRORS: dict[str, tuple[type[SourceError], str, str, str]] = {
    "invalid_client": (AuthExpired, "oauth_client_secret", "client_secret",
                       "the client id or client secret is wrong"),
    "unauthorized_client": (AuthExpired, "oauth_client_id", "client_id",
                            "client {client_id} may not use this grant (or the refresh token "
                            "belongs to another client)"),
    "invalid_grant": (AuthExpired, "oauth_grant", "refresh_token",
                      "the refresh token has expired or was revoked: get a new one and re-link"),
    "invalid_tenant": (AuthExpired, "oauth_tenant", "tenant", "tenant {tenant} does not exist"),
    "expired_token": (AuthExpired, "oauth_grant", "refresh_token",
                      "the sign-in code expired before it was used: start again"),
    "authorization_declined": (AuthExpired, "oauth_grant", "refresh_token",
                               "the sign-in was declined"),
    "consent_required": (PermissionDenied, "oauth_consent", "client_id",
                         "consent is missing: an administrator must grant it"),
    "interaction_required": (PermissionDenied, "oauth_consent", "client_id",
                             "the provider wants an interactive sign-in"),
    "access_denied": (PermissionDenied, "oauth_consent", "client_id", "access was denied"),
    "invalid_scope": (PermissionDenied, "oauth_scope", "client_id",
                      "the scope asked for is not valid"),
    "invalid_resource": (PermissionDenied, "oauth_resource", "client_id",
                         "the service asked for is not known to the tenant"),
    "invalid_request": (PermissionDenied, "oauth_invalid", "client_id",
                        "the provider refused the request as malformed"),
    "temporarily_unavailable": (Temporary, "oauth_unavailable", "host",
                                "the identity service is busy"),
    "server_error": (Temporary, "oauth_unavailable", "host", "the identity service failed"),
    "slow_down": (Throttled, "oauth_throttled", "host", "the identity service asks to slow down"),
}  # fmt: skip

_AADSTS_IN_TEXT = re.compile(r"AADSTS(\d+)")
_HTTP_ERROR = re.compile(r"HTTP Error: (\d{3})")
_PROVIDER_NAMES = {"microsoft": "Microsoft Entra ID", "google": "Google"}


def classify_identity_failure(failure: TokenFailure) -> IdentityProblem:
    """Map an identity provider's refusal, or a failure to reach it, to one of our error kinds
    with the setting to fix and what to do next (pure; table-tested)."""
    who = _PROVIDER_NAMES.get(failure.provider, failure.provider)
    if failure.exception is not None and failure.error is None:
        found = _from_exception(failure, who)
        if found is not None:
            return found
    said = _first_line(failure.description) or failure.error or ""
    codes = failure.codes or tuple(
        int(c) for c in _AADSTS_IN_TEXT.findall(failure.description or "")
    )
    entry = next((_AADSTS[c] for c in codes if c in _AADSTS), None)
    if entry is None and failure.error:
        entry = _OAUTH_ERRORS.get(failure.error)
    status = failure.status
    if status == 429 or (entry is None and status is not None and status >= 500):
        if status == 429 or failure.retry_after is not None:
            return IdentityProblem(
                Throttled,
                "oauth_throttled",
                "host",
                f"{who} ({failure.where}) asks to slow down (HTTP {status})",
                failure.retry_after,
            )
        return IdentityProblem(
            Temporary,
            "oauth_unavailable",
            "host",
            f"{who} ({failure.where}) is not available right now (HTTP {status})",
        )
    if entry is None:
        if (status is not None and 400 <= status < 500) or failure.error:
            # An error we have no entry for: a retry will not change a 4xx; the admin must look.
            return IdentityProblem(
                PermissionDenied,
                "oauth_refused",
                "client_id",
                f"{who} refused the token request for app {failure.client_id or '?'}"
                f"{_quote(said)}; check the app registration, then re-link",
            )
        return IdentityProblem(
            Temporary,
            "oauth_unavailable",
            "host",
            f"{who} ({failure.where}) gave no usable answer{_quote(said)}",
        )
    kind, code, setting, advice = entry
    if kind is Temporary and failure.retry_after is not None:
        kind = Throttled  # the provider said when to come back: honour it
    advice = advice.format(client_id=failure.client_id or "?", tenant=failure.tenant or "?")
    if kind in (Temporary, Throttled):
        message = f"{who} ({failure.where}): {advice}{_quote(said)}"
    else:
        message = f"{who} refused the token request: {advice}{_quote(said)}"
    return IdentityProblem(kind, code, setting, message, failure.retry_after)


def _from_exception(failure: TokenFailure, who: str) -> IdentityProblem | None:
    exc = failure.exception
    assert exc is not None
    chain = _chain(exc)
    where = failure.where
    untrusted = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
    if untrusted is not None:
        return IdentityProblem(
            Temporary,
            "oauth_tls_untrusted",
            "host",
            f"the TLS certificate of {where} is not trusted "
            f"({getattr(untrusted, 'verify_message', None) or untrusted}); for "
            "a private CA set RAPPORT_CA_BUNDLE to its certificate (PEM)",
        )
    if any(isinstance(e, (ssl.SSLError, requests.exceptions.SSLError)) for e in chain):
        return IdentityProblem(
            Temporary, "oauth_tls", "host", f"TLS with {where} failed ({_short(exc)})"
        )
    if any(isinstance(e, requests.exceptions.Timeout | TimeoutError) for e in chain):
        return IdentityProblem(
            Temporary, "oauth_unreachable", "host", f"{who} ({where}) did not answer in time"
        )
    if any(isinstance(e, requests.exceptions.ConnectionError | OSError) for e in chain):
        hint = (
            "; check RAPPORT_GRAPH_AUTHORITY_HOST"
            if failure.provider == "microsoft"
            else "; check the token endpoint"
        )
        return IdentityProblem(
            Temporary,
            "oauth_unreachable",
            "host",
            f"cannot reach {who} at {where} ({_short(exc)}){hint}",
        )
    for item in chain:
        text = str(item)
        status = _HTTP_ERROR.search(text)
        if status is not None:  # msal: "HTTP Error: 503" (it keeps no more of a 5xx)
            return classify_identity_failure(
                TokenFailure(
                    failure.provider,
                    where,
                    status=int(status.group(1)),
                    retry_after=failure.retry_after,
                    client_id=failure.client_id,
                    tenant=failure.tenant,
                )
            )
        body = _embedded_json(text)
        if body is not None:  # msal's failed OIDC discovery carries Entra's JSON answer
            return classify_identity_failure(
                TokenFailure(
                    failure.provider,
                    where,
                    error=str(body.get("error") or "") or None,
                    description=str(body.get("error_description") or "") or None,
                    codes=tuple(int(c) for c in body.get("error_codes") or () if _is_int(c)),
                    client_id=failure.client_id,
                    tenant=failure.tenant,
                )
            )
    if any("authority configuration" in str(e) for e in chain):  # msal, discovery refused
        return IdentityProblem(
            AuthExpired,
            "oauth_tenant",
            "tenant",
            f"{who} at {where} knows no tenant {failure.tenant or '?'}: give the Directory "
            "(tenant) ID from the app's Overview page",
        )
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    stack: list[BaseException | None] = [exc]
    while stack:
        item = stack.pop()
        if item is None or any(item is seen for seen in found):
            continue
        found.append(item)
        stack += [item.__cause__, item.__context__, *[a for a in item.args if _is_exc(a)]]
    return found


def _is_exc(value: object) -> bool:
    return isinstance(value, BaseException)


def _is_int(value: object) -> bool:
    return isinstance(value, int) or (isinstance(value, str) and value.isdigit())


def _embedded_json(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    return value if isinstance(value, dict) and "error" in value else None


def _first_line(text: str | None) -> str:
    """The provider's own words, without Entra's "Trace ID: ..." lines."""
    if not text:
        return ""
    return text.strip().splitlines()[0].strip()[:300]


def _quote(said: str) -> str:
    return f' (it said: "{said}")' if said else ""


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


def _raise(problem: IdentityProblem) -> None:
    raise problem.error() from IdentityError(problem)


# --------------------------------------------------------------------------------------------
# Credentials, as an admin gives them


@dataclass(frozen=True)
class MicrosoftApp:
    """An Entra app registration signing in as itself (client credentials)."""

    tenant: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    certificate_pem: str | None = field(default=None, repr=False)  # private key + certificate
    scope: str = EXCHANGE_IMAP_SCOPE

    provider = "microsoft"

    def link_settings(self) -> dict[str, Any]:
        """What the link's (visible) settings keep: nothing secret. For a certificate, its
        thumbprint, as the app registration lists it, so an admin can tell which one is used."""
        settings: dict[str, Any] = {
            "provider": self.provider,
            "tenant": self.tenant,
            "client_id": self.client_id,
            "client_auth": "certificate" if self.certificate_pem else "secret",
        }
        if self.certificate_pem:
            settings["certificate_thumbprint"] = certificate_thumbprint(self.certificate_pem)
        return settings

    def link_secret(self) -> dict[str, Any]:
        if self.certificate_pem:
            return {"certificate_pem": self.certificate_pem}
        return {"client_secret": self.client_secret}

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.client_secret,) if s)


@dataclass(frozen=True)
class RefreshGrant:
    """A refresh token for an OAuth client (Google, or another provider with the same flow)."""

    provider: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    token_endpoint: str = GOOGLE_TOKEN_ENDPOINT
    scope: str = GOOGLE_SCOPE

    def link_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"provider": self.provider, "client_id": self.client_id}
        if self.token_endpoint != GOOGLE_TOKEN_ENDPOINT:
            settings["endpoint"] = self.token_endpoint
        return settings

    def link_secret(self) -> dict[str, Any]:
        return {"client_secret": self.client_secret, "refresh_token": self.refresh_token}

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.client_secret, self.refresh_token)


OAuthCredentials = MicrosoftApp | RefreshGrant


def credentials_from_link(
    settings: Mapping[str, Any], secret: Mapping[str, Any]
) -> OAuthCredentials | None:
    """The OAuth credentials of a stored link (settings["oauth"] + its decrypted secret), or None
    for a password link."""
    oauth = settings.get("oauth")
    if not isinstance(oauth, Mapping):
        return None
    if oauth.get("provider") == "microsoft":
        return MicrosoftApp(
            tenant=str(oauth.get("tenant", "")),
            client_id=str(oauth.get("client_id", "")),
            client_secret=secret.get("client_secret"),
            certificate_pem=secret.get("certificate_pem"),
        )
    return RefreshGrant(
        provider=str(oauth.get("provider", "google")),
        client_id=str(oauth.get("client_id", "")),
        client_secret=str(secret.get("client_secret", "")),
        refresh_token=str(secret.get("refresh_token", "")),
        token_endpoint=str(oauth.get("endpoint") or GOOGLE_TOKEN_ENDPOINT),
    )


def check_credentials(credentials: OAuthCredentials) -> None:
    """Refuse what no provider would accept, before asking one (IdentityError saying what)."""

    def bad(code: str, setting: str, message: str) -> None:
        raise IdentityError(IdentityProblem(AuthExpired, code, setting, message))

    if not credentials.client_id.strip() or any(c.isspace() for c in credentials.client_id):
        bad("oauth_client_id", "client_id", "the client id is empty or holds spaces")
    if isinstance(credentials, MicrosoftApp):
        tenant = credentials.tenant.strip()
        if tenant.lower() in _MULTI_TENANT:
            bad(
                "oauth_tenant",
                "tenant",
                f"app-only sign-in needs the tenant's own id, not {tenant!r}: give the "
                "Directory (tenant) ID from the app's Overview page",
            )
        if not (_GUID.match(tenant) or _DOMAIN.match(tenant)):
            bad(
                "oauth_tenant",
                "tenant",
                f"{credentials.tenant!r} is not a tenant id: give the Directory (tenant) ID (a "
                "GUID) or the tenant's domain (contoso.onmicrosoft.com)",
            )
        if bool(credentials.client_secret) == bool(credentials.certificate_pem):
            bad("oauth_client_secret", "client_secret", "give a client secret or a certificate")
        if credentials.certificate_pem:
            try:
                _certificate_credential(credentials.certificate_pem)
            except ValueError as exc:
                bad("oauth_certificate", "certificate", str(exc))
        return
    if not credentials.client_secret:
        bad("oauth_client_secret", "client_secret", "the client secret is empty")
    if not credentials.refresh_token or any(c.isspace() for c in credentials.refresh_token):
        bad("oauth_grant", "refresh_token", "the refresh token is empty or holds spaces")
    parts = urlsplit(credentials.token_endpoint)
    if parts.scheme != "https" or not parts.hostname:
        bad("oauth_endpoint", "endpoint", "the token endpoint must be an https:// URL")


def _certificate_credential(pem: str) -> dict[str, str]:
    """msal's client_credential for a PEM holding a private key and its certificate; the
    SHA-256 thumbprint (x5t#S256, PS256 assertions) is computed by msal from the certificate."""
    blocks = {m.group(1).decode(): m.group(0) for m in _PEM_BLOCK.finditer(pem.encode())}
    cert_pem = blocks.get("CERTIFICATE")
    key_pem = next((v for k, v in blocks.items() if k.endswith("PRIVATE KEY")), None)
    if cert_pem is None or key_pem is None:
        raise ValueError(
            "the certificate file must hold the private key and the certificate, both PEM "
            "(e.g. `cat key.pem cert.pem`)"
        )
    if "ENCRYPTED" in next(k for k in blocks if k.endswith("PRIVATE KEY")):
        raise ValueError(
            "the private key is encrypted; give it unencrypted (openssl pkey -in key.pem)"
        )
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"the certificate file cannot be read ({exc})") from None
    public = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ours = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if public != ours:
        raise ValueError("the private key does not belong to the certificate in the file")
    return {"private_key": key_pem.decode(), "public_certificate": cert_pem.decode()}


def certificate_thumbprint(pem: str) -> str:
    """The certificate's SHA-1 thumbprint as the Entra portal shows it (upper-case hex)."""
    blocks = {m.group(1).decode(): m.group(0) for m in _PEM_BLOCK.finditer(pem.encode())}
    certificate = x509.load_pem_x509_certificate(blocks["CERTIFICATE"])
    return (
        hashlib.sha1(  # noqa: S324 - the portal's identifier, not a security check
            certificate.public_bytes(serialization.Encoding.DER)
        )
        .hexdigest()
        .upper()
    )


# --------------------------------------------------------------------------------------------
# Token sources


class TokenSource(Protocol):
    """Where a link's access tokens come from. `token()` may answer from a cache; after the
    server refused one, `token(force_refresh=True)` asks the provider for a new one. Failures
    are SourceErrors caused by an IdentityError."""

    def token(self, *, force_refresh: bool = False) -> str: ...

    def refusal_hint(self, user: str) -> str:
        """What to check when the mail server refuses a freshly issued token for `user`."""
        ...


class SecretStore(Protocol):
    """A link's encrypted secret, read and updated in place (a rotated refresh token)."""

    def load(self) -> Mapping[str, Any]: ...

    def save(self, changes: Mapping[str, Any]) -> None: ...


class ClientCredentialsSource:
    """App-only tokens from Entra ID through msal, cached in memory by msal (per process, per
    app: several links sharing one app share its token)."""

    def __init__(self, app: MicrosoftApp, endpoints: IdentityEndpoints) -> None:
        self.app = app
        self.endpoints = endpoints

    def token(self, *, force_refresh: bool = False) -> str:
        client, session = _msal_client(self.app, self.endpoints)
        if force_refresh:
            client.remove_tokens_for_client()
        session.forget_last()
        try:
            result = client.acquire_token_for_client([self.app.scope])
        except Exception as exc:  # msal raises requests' errors, ValueError, MsalServiceError
            problem = classify_identity_failure(self._failure(session, exception=exc))
        else:
            if isinstance(result, dict) and isinstance(result.get("access_token"), str):
                return str(result["access_token"])
            body = result if isinstance(result, dict) else {}
            problem = classify_identity_failure(
                self._failure(
                    session,
                    error=str(body.get("error") or "unknown_error"),
                    description=str(body.get("error_description") or ""),
                    codes=tuple(int(c) for c in body.get("error_codes") or () if _is_int(c)),
                )
            )
        if problem.kind in (AuthExpired, PermissionDenied):
            _evict(self.app, self.endpoints)
        _raise(problem)
        raise AssertionError("unreachable")

    def _failure(self, session: IdentitySession, **facts: Any) -> TokenFailure:
        status = retry_after = None
        if session.last_answer is not None:
            status, header = session.last_answer
            retry_after = _seconds(header)
        return TokenFailure(
            "microsoft",
            self.endpoints.authority_host,
            status=status,
            retry_after=retry_after,
            client_id=self.app.client_id,
            tenant=self.app.tenant,
            **facts,
        )

    def refusal_hint(self, user: str) -> str:
        return (
            f"the token of app {self.app.client_id} was refused for {user}: in Entra ID the app "
            "needs the application permission IMAP.AccessAsApp (Office 365 Exchange Online) "
            "with admin consent; in Exchange Online its service principal must be registered "
            "(New-ServicePrincipal) and have FullAccess on this mailbox (Add-MailboxPermission); "
            "and --user must be the mailbox's address"
        )


_apps: OrderedDict[tuple[str, ...], tuple[Any, IdentitySession]] = OrderedDict()
_apps_lock = threading.Lock()


def _app_key(app: MicrosoftApp, endpoints: IdentityEndpoints) -> tuple[str, ...]:
    credential = app.certificate_pem or app.client_secret or ""
    return (
        endpoints.authority_host.lower(),
        str(endpoints.ca_bundle),
        app.tenant.lower(),
        app.client_id,
        hashlib.sha256(credential.encode()).hexdigest(),
    )


def _msal_client(app: MicrosoftApp, endpoints: IdentityEndpoints) -> tuple[Any, IdentitySession]:
    """The process's msal app for these credentials (its token cache lives as long as it), and
    the session it talks through."""
    import msal  # type: ignore[import-untyped]

    key = _app_key(app, endpoints)
    with _apps_lock:
        known = _apps.get(key)
        if known is not None:
            _apps.move_to_end(key)
            return known
    credential: str | dict[str, str] = (
        _certificate_credential(app.certificate_pem)
        if app.certificate_pem
        else app.client_secret or ""
    )
    session = https_session(endpoints)
    failure = TokenFailure(
        "microsoft", endpoints.authority_host, client_id=app.client_id, tenant=app.tenant
    )
    try:
        # The constructor fetches the tenant's OpenID configuration (and refuses unknown ones).
        client = msal.ConfidentialClientApplication(
            app.client_id,
            client_credential=credential,
            authority=endpoints.authority(app.tenant),
            http_client=session,
            instance_discovery=None if endpoints.known_to_microsoft else False,
        )
    except Exception as exc:
        session.close()
        status = session.last_answer
        _raise(
            classify_identity_failure(
                TokenFailure(
                    failure.provider,
                    failure.where,
                    exception=exc,
                    status=None if status is None else status[0],
                    retry_after=None if status is None else _seconds(status[1]),
                    client_id=app.client_id,
                    tenant=app.tenant,
                )
            )
        )
    with _apps_lock:
        _apps[key] = (client, session)
        while len(_apps) > _MAX_APPS:
            _, (_old, old_session) = _apps.popitem(last=False)
            old_session.close()
    return client, session


def _evict(app: MicrosoftApp, endpoints: IdentityEndpoints) -> None:
    """Forget an app whose credentials were refused (a corrected secret is a new key anyway;
    this only keeps refused ones from piling up)."""
    with _apps_lock:
        known = _apps.pop(_app_key(app, endpoints), None)
    if known is not None:
        known[1].close()


def forget_cached_tokens() -> None:
    """Drop every msal app and refresh-grant state of this process (tests; a key rotation)."""
    with _apps_lock:
        while _apps:
            _, (_client, session) = _apps.popitem()
            session.close()
    with _grants_lock:
        _grants.clear()


@dataclass
class _GrantState:
    """A refresh grant's live state in this process, shared by all its users (the sync and the
    IDLE watcher of one link): one refresh at a time, so a rotating provider never sees the old
    refresh token used after it issued the new one."""

    refresh_token: str
    loaded: str  # the refresh token the stored secret held when this state was made
    access_token: str | None = None
    expires_at: float = 0.0
    unsaved: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


_grants: dict[object, _GrantState] = {}
_grants_lock = threading.Lock()


class RefreshTokenSource:
    """Access tokens from a refresh token at a provider's token endpoint (RFC 6749 section 6)."""

    def __init__(
        self,
        grant: RefreshGrant,
        endpoints: IdentityEndpoints,
        *,
        store: SecretStore | None = None,
        key: object | None = None,
    ) -> None:
        """`key` (a link id) shares the state between this process's users of one link;
        `store` is where a rotated refresh token goes."""
        self.grant = grant
        self.endpoints = endpoints
        self.store = store
        if key is None:
            self._state = _GrantState(grant.refresh_token, grant.refresh_token)
            return
        with _grants_lock:
            state = _grants.get(key)
            if state is None or grant.refresh_token not in (state.loaded, state.refresh_token):
                # New, or the stored secret changed under us (re-linked, or another process
                # rotated it): the stored one is the truth.
                state = _GrantState(grant.refresh_token, grant.refresh_token)
                _grants[key] = state
            self._state = state

    @property
    def refresh_token(self) -> str:
        """The current refresh token (after a rotation, the new one)."""
        return self._state.refresh_token

    def token(self, *, force_refresh: bool = False) -> str:
        state = self._state
        with state.lock:
            if state.unsaved:
                self._save()
            fresh = (
                state.access_token is not None and state.expires_at - REFRESH_AHEAD > time.time()
            )
            if fresh and not force_refresh:
                assert state.access_token is not None
                return state.access_token
            return self._refresh(state, retried=False)

    def _refresh(self, state: _GrantState, *, retried: bool) -> str:
        answer, status, retry_after, failure = self._post(state.refresh_token)
        if failure is None and isinstance(answer.get("access_token"), str):
            state.access_token = str(answer["access_token"])
            lifetime = _seconds(answer.get("expires_in")) or 3600.0
            state.expires_at = time.time() + lifetime
            rotated = answer.get("refresh_token")
            if isinstance(rotated, str) and rotated and rotated != state.refresh_token:
                state.refresh_token = rotated
                state.unsaved = True
                self._save()
            return state.access_token
        problem = classify_identity_failure(
            TokenFailure(
                self.grant.provider,
                urlsplit(self.grant.token_endpoint).netloc,
                error=None if failure else str(answer.get("error") or "") or None,
                description=None if failure else str(answer.get("error_description") or ""),
                status=status,
                retry_after=retry_after,
                exception=failure,
                client_id=self.grant.client_id,
            )
        )
        if problem.code == "oauth_grant" and not retried and self._adopt_stored(state):
            return self._refresh(state, retried=True)
        _raise(problem)
        raise AssertionError("unreachable")

    def _post(
        self, refresh_token: str
    ) -> tuple[dict[str, Any], int | None, float | None, BaseException | None]:
        form = self._form(refresh_token)
        try:  # a session per refresh: one an hour or so, nothing to keep open meanwhile
            with (
                https_session(self.endpoints) as session,
                session.post(
                    self.grant.token_endpoint,
                    data=form,
                    headers={"Accept": "application/json"},
                    allow_redirects=False,
                    stream=True,
                ) as response,
            ):
                raw = response.raw.read(MAX_RESPONSE + 1, decode_content=True)
                status = response.status_code
                retry_after = _seconds(response.headers.get("Retry-After"))
        except requests.RequestException as exc:
            return {}, None, None, exc
        try:
            answer = json.loads(raw) if len(raw) <= MAX_RESPONSE else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            answer = {}
        if status != 200 and "error" not in answer:
            answer = {"error": None}
        return answer, status, retry_after, None

    def _form(self, refresh_token: str) -> dict[str, str]:
        """The refresh request's form (RFC 6749 section 6)."""
        return {
            "grant_type": "refresh_token",
            "client_id": self.grant.client_id,
            "client_secret": self.grant.client_secret,
            "refresh_token": refresh_token,
        }

    def _adopt_stored(self, state: _GrantState) -> bool:
        """After invalid_grant: another process may have rotated the refresh token and stored
        the new one; use that one (once) if so."""
        if self.store is None:
            return False
        try:
            stored = self.store.load().get("refresh_token")
        except Exception:  # the database is not reachable: the grant error stands
            log.warning("could not re-read a link's secret", exc_info=True)
            return False
        if not isinstance(stored, str) or stored in (state.refresh_token, ""):
            return False
        state.refresh_token = stored
        state.loaded = stored
        state.unsaved = False
        return True

    def _save(self) -> None:
        """Store the rotated refresh token (encrypted, in the link's secret); on failure it stays
        in memory and the next token() tries again."""
        state = self._state
        if self.store is None:
            return
        try:
            self.store.save({"refresh_token": state.refresh_token})
        except Exception:
            log.error(
                "a rotated refresh token could not be stored; retrying at the next token",
                exc_info=True,
            )
            return
        state.loaded = state.refresh_token
        state.unsaved = False

    def refusal_hint(self, user: str) -> str:
        return (
            f"a fresh access token was refused for {user}: the refresh token must belong to "
            f"this account and carry the {self.grant.scope} scope, and IMAP must be enabled for "
            "it"
        )


def token_source(
    credentials: OAuthCredentials,
    endpoints: IdentityEndpoints,
    *,
    store: SecretStore | None = None,
    key: object | None = None,
) -> ClientCredentialsSource | RefreshTokenSource:
    if isinstance(credentials, MicrosoftApp):
        return ClientCredentialsSource(credentials, endpoints)
    return RefreshTokenSource(credentials, endpoints, store=store, key=key)


def _seconds(value: object) -> float | None:
    """A number of seconds from a header or a JSON field ("120", 120), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return float(value.strip())
    return None


# --------------------------------------------------------------------------------------------
# Links: a stored link's token source, and its secret as a SecretStore


class LinkSecretStore:
    """A linked mailbox's encrypted secret. Used rarely (a rotated refresh token), from inside a
    sync or an IDLE watcher, so it opens its own short-lived database connection."""

    def __init__(self, database_url: str, secret_keys: Sequence[str], link_id: int) -> None:
        self.database_url = database_url
        self.secret_keys = tuple(secret_keys)
        self.link_id = link_id

    def load(self) -> Mapping[str, Any]:
        from server.crypto import SecretBox
        from server.db import Database
        from server.models import MailboxLink

        db = Database(self.database_url)
        try:
            with db.read_session() as session:
                link = session.get(MailboxLink, self.link_id)
                if link is None or link.secret is None:
                    return {}
                value = SecretBox(self.secret_keys).decrypt_json(link.secret)
                return value if isinstance(value, dict) else {}
        finally:
            db.dispose()

    def save(self, changes: Mapping[str, Any]) -> None:
        from sqlalchemy import select

        from server.crypto import SecretBox
        from server.db import Database
        from server.models import MailboxLink

        db = Database(self.database_url)
        box = SecretBox(self.secret_keys)
        try:
            with db.session() as session:
                link = session.scalar(
                    select(MailboxLink).where(MailboxLink.id == self.link_id).with_for_update()
                )
                if link is None or link.secret is None or link.status == "removed":
                    return
                secret = box.decrypt_json(link.secret)
                secret.update(changes)
                link.secret = box.encrypt_json(secret)
        finally:
            db.dispose()


def link_token_source(
    link: MailboxLink, secret: Mapping[str, Any], settings: Settings
) -> TokenSource | None:
    """The token source of a stored link (with its decrypted secret), or None for a link that
    signs in with a password."""
    credentials = credentials_from_link(link.settings, secret)
    if credentials is None:
        return None
    store = LinkSecretStore(settings.database_url, settings.secret_keys, link.id)
    return token_source(
        credentials, IdentityEndpoints.from_settings(settings), store=store, key=link.id
    )


# --------------------------------------------------------------------------------------------
# Microsoft Graph (issue 9): the tokens of a Graph mail link
#
# App-only: the same client credentials as for IMAP (`MicrosoftApp`), asking for Graph's
# `/.default` scope, i.e. the application permissions the app has admin consent for (Mail.Read,
# Calendars.Read). Delegated: a user's refresh token (from the device-code flow in the terminal,
# or the authorization code flow with PKCE from the admin page), refreshed at Entra's token
# endpoint by a public client (no secret) or a confidential one, rotated and stored encrypted
# like any refresh token (`RefreshTokenSource`).

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_SCOPE = f"{GRAPH_RESOURCE}/.default"
# Delegated permissions: the user's own mailbox; .Shared adds the mailboxes they have FullAccess
# to (a shared mailbox linked with delegated access).
GRAPH_DELEGATED_SCOPES = (f"{GRAPH_RESOURCE}/Mail.Read", f"{GRAPH_RESOURCE}/Calendars.Read")
GRAPH_SHARED_SCOPES = (
    f"{GRAPH_RESOURCE}/Mail.Read.Shared",
    f"{GRAPH_RESOURCE}/Calendars.Read.Shared",
)


def graph_app(
    tenant: str,
    client_id: str,
    *,
    client_secret: str | None = None,
    certificate_pem: str | None = None,
) -> MicrosoftApp:
    """An app signing in as itself for Microsoft Graph (application permissions)."""
    return MicrosoftApp(
        tenant=tenant,
        client_id=client_id,
        client_secret=client_secret,
        certificate_pem=certificate_pem,
        scope=GRAPH_SCOPE,
    )


def entra_token_endpoint(endpoints: IdentityEndpoints, tenant: str) -> str:
    return f"{endpoints.authority(tenant)}/oauth2/v2.0/token"


@dataclass(frozen=True)
class DelegatedGrant:
    """A user's consent to an app, as its refresh token (delegated Graph access)."""

    tenant: str
    client_id: str
    refresh_token: str = field(repr=False)
    scopes: tuple[str, ...] = GRAPH_DELEGATED_SCOPES
    client_secret: str | None = field(default=None, repr=False)  # None: a public client
    user: str = ""  # who signed in (their UPN), for messages

    def link_settings(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "client_id": self.client_id,
            "client_auth": "delegated",
            "scopes": list(self.scopes),
            "signed_in_as": self.user,
        }

    def link_secret(self) -> dict[str, Any]:
        secret: dict[str, Any] = {"refresh_token": self.refresh_token}
        if self.client_secret:
            secret["client_secret"] = self.client_secret
        return secret

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.refresh_token, self.client_secret) if s)


class EntraRefreshTokenSource(RefreshTokenSource):
    """Delegated tokens: the refresh grant at Entra ID's v2.0 token endpoint, with the scopes
    asked for (Entra answers each refresh with a new refresh token, which is stored at once)."""

    def __init__(
        self,
        grant: DelegatedGrant,
        endpoints: IdentityEndpoints,
        *,
        store: SecretStore | None = None,
        key: object | None = None,
    ) -> None:
        self.delegated = grant
        super().__init__(
            RefreshGrant(
                provider="microsoft",
                client_id=grant.client_id,
                client_secret=grant.client_secret or "",
                refresh_token=grant.refresh_token,
                token_endpoint=entra_token_endpoint(endpoints, grant.tenant),
                scope=" ".join(grant.scopes),
            ),
            endpoints,
            store=store,
            key=key,
        )

    def _form(self, refresh_token: str) -> dict[str, str]:
        form = {
            "grant_type": "refresh_token",
            "client_id": self.grant.client_id,
            "refresh_token": refresh_token,
            "scope": " ".join([*self.delegated.scopes, "offline_access"]),
        }
        if self.grant.client_secret:  # a public client sends none
            form["client_secret"] = self.grant.client_secret
        return form

    def refusal_hint(self, user: str) -> str:
        who = self.delegated.user or "the user who signed in"
        return (
            f"Microsoft Graph refused the delegated token of {who} for {user}: they need "
            "FullAccess on that mailbox (a shared one), and the app the delegated permissions "
            f"{', '.join(s.rsplit('/', 1)[1] for s in self.delegated.scopes)}"
        )


def graph_token_source(
    config: Mapping[str, Any],
    secret: Mapping[str, Any],
    endpoints: IdentityEndpoints,
    *,
    store: SecretStore | None = None,
    key: object | None = None,
) -> TokenSource:
    """The token source of a Graph link, from its settings and its decrypted secret."""
    tenant, client_id = str(config.get("tenant", "")), str(config.get("client_id", ""))
    if config.get("client_auth") == "delegated":
        scopes = tuple(str(s) for s in config.get("scopes") or GRAPH_DELEGATED_SCOPES)
        grant = DelegatedGrant(
            tenant,
            client_id,
            str(secret.get("refresh_token", "")),
            scopes,
            secret.get("client_secret"),
            str(config.get("signed_in_as", "")),
        )
        return EntraRefreshTokenSource(grant, endpoints, store=store, key=key)
    app = graph_app(
        tenant,
        client_id,
        client_secret=secret.get("client_secret"),
        certificate_pem=secret.get("certificate_pem"),
    )
    return ClientCredentialsSource(app, endpoints)


def link_graph_token_source(
    link: MailboxLink, secret: Mapping[str, Any], settings: Settings
) -> TokenSource:
    """The token source of a stored Graph link (a rotated refresh token is saved to it)."""
    store = LinkSecretStore(settings.database_url, settings.secret_keys, link.id)
    return graph_token_source(
        link.settings, secret, IdentityEndpoints.from_settings(settings), store=store, key=link.id
    )


@dataclass
class DeviceSignIn:
    """A device-code sign-in under way: show `message` (where to go, which code to type)."""

    tenant: str
    client_id: str
    scopes: tuple[str, ...]
    message: str
    user_code: str
    verification_uri: str
    expires_in: int
    flow: dict[str, Any] = field(repr=False)
    client: Any = field(repr=False)


def start_device_sign_in(
    tenant: str,
    client_id: str,
    endpoints: IdentityEndpoints,
    *,
    scopes: Sequence[str] = GRAPH_DELEGATED_SCOPES,
) -> DeviceSignIn:
    """Start the OAuth 2.0 device authorization grant (RFC 8628) with msal, for a public client
    ("Allow public client flows" on the app registration). Failures are SourceErrors caused by
    an IdentityError (what to fix)."""
    import msal

    session = https_session(endpoints)
    failure = TokenFailure(
        "microsoft", endpoints.authority_host, client_id=client_id, tenant=tenant
    )
    try:
        client = msal.PublicClientApplication(
            client_id,
            authority=endpoints.authority(tenant),
            http_client=session,
            instance_discovery=None if endpoints.known_to_microsoft else False,
        )
        flow = client.initiate_device_flow(scopes=list(scopes))
    except Exception as exc:
        session.close()
        _raise(classify_identity_failure(_with_exception(failure, exc)))
        raise AssertionError("unreachable") from None
    if "user_code" not in flow:
        session.close()
        _raise(classify_identity_failure(_with_answer(failure, flow)))
    return DeviceSignIn(
        tenant,
        client_id,
        tuple(scopes),
        str(flow.get("message", "")),
        str(flow["user_code"]),
        str(flow.get("verification_uri", "")),
        int(flow.get("expires_in", 900)),
        flow,
        client,
    )


def finish_device_sign_in(sign_in: DeviceSignIn) -> DelegatedGrant:
    """Wait (polling as the provider says) until the user signed in; their grant. A refusal
    (declined, expired, blocked by a Conditional Access policy) is a SourceError saying so."""
    failure = TokenFailure("microsoft", "", client_id=sign_in.client_id, tenant=sign_in.tenant)
    try:
        result = sign_in.client.acquire_token_by_device_flow(sign_in.flow)
    except Exception as exc:
        _raise(classify_identity_failure(_with_exception(failure, exc)))
        raise AssertionError("unreachable") from None
    finally:
        http = getattr(sign_in.client, "http_client", None)
        if isinstance(http, requests.Session):
            http.close()
    if not isinstance(result, dict) or not result.get("refresh_token"):
        _raise(classify_identity_failure(_with_answer(failure, result)))
    claims = result.get("id_token_claims") or {}
    return DelegatedGrant(
        sign_in.tenant,
        sign_in.client_id,
        str(result["refresh_token"]),
        sign_in.scopes,
        user=str(claims.get("preferred_username") or ""),
    )


# The browser sign-in from the admin page: OAuth 2.0 authorization code with PKCE (Microsoft,
# "Microsoft identity platform and OAuth 2.0 authorization code flow",
# learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow). msal makes the state,
# the nonce and the PKCE verifier (S256); the flow it returns is kept by the caller, server-side
# and encrypted, until Entra sends the browser back to the redirect URI with a code (or an
# error) and the state. The app signs in as a public client ("Allow public client flows", as
# for the device code) unless a client secret is given; Entra rejects the code unless the
# redirect URI is registered on the app as a Web platform URI.

GRAPH_USER_READ = f"{GRAPH_RESOURCE}/User.Read"
# What the browser sign-in asks for: the device code's permissions (the user's own mailbox,
# and mailboxes they have FullAccess to) and User.Read, the sign-in permission Entra adds to
# every new app registration. msal adds openid, profile and offline_access.
GRAPH_BROWSER_SCOPES = (*GRAPH_DELEGATED_SCOPES, *GRAPH_SHARED_SCOPES, GRAPH_USER_READ)


@dataclass(frozen=True)
class BrowserSignIn:
    """An authorization code sign-in under way: send the browser to `authorize_url`; keep
    `flow` (state, PKCE code verifier, nonce, redirect URI) until the browser comes back."""

    authorize_url: str
    state: str
    flow: dict[str, Any] = field(repr=False)


def _delegated_client(
    tenant: str, client_id: str, endpoints: IdentityEndpoints, client_secret: str | None
) -> tuple[Any, IdentitySession]:
    """An msal app for a user's sign-in (its constructor fetches the tenant's OpenID
    configuration: an unknown tenant fails here)."""
    import msal

    session = https_session(endpoints)
    discovery = None if endpoints.known_to_microsoft else False
    try:
        if client_secret:
            client = msal.ConfidentialClientApplication(
                client_id,
                client_credential=client_secret,
                authority=endpoints.authority(tenant),
                http_client=session,
                instance_discovery=discovery,
            )
        else:
            client = msal.PublicClientApplication(
                client_id,
                authority=endpoints.authority(tenant),
                http_client=session,
                instance_discovery=discovery,
            )
    except Exception:
        session.close()
        raise
    return client, session


def start_browser_sign_in(
    tenant: str,
    client_id: str,
    endpoints: IdentityEndpoints,
    *,
    redirect_uri: str,
    client_secret: str | None = None,
    scopes: Sequence[str] = GRAPH_BROWSER_SCOPES,
    state: str | None = None,
) -> BrowserSignIn:
    """The Entra authorize URL for a user's sign-in (PKCE, response_mode query), and the flow
    to keep. Failures (an unknown tenant, Entra unreachable) are SourceErrors caused by an
    IdentityError saying what to fix."""
    failure = TokenFailure(
        "microsoft", endpoints.authority_host, client_id=client_id, tenant=tenant
    )
    try:
        client, session = _delegated_client(tenant, client_id, endpoints, client_secret)
    except Exception as exc:
        _raise(classify_identity_failure(_with_exception(failure, exc)))
        raise AssertionError("unreachable") from None
    try:
        with warnings.catch_warnings():
            # msal recommends response_mode=form_post (RFC 9700 section 4.3.1: a code in a URL
            # can leak). The callback is a GET because every POST of this API takes JSON only;
            # a leaked code is worthless here: it is redeemed once, only with the PKCE verifier
            # that never leaves the server, and the callback page sends no Referer and is not
            # cached.
            warnings.filterwarnings(
                "ignore", message="response_mode='form_post' is recommended", category=UserWarning
            )
            flow = client.initiate_auth_code_flow(
                list(scopes), redirect_uri=redirect_uri, state=state, response_mode="query"
            )
    except Exception as exc:
        _raise(classify_identity_failure(_with_exception(failure, exc)))
        raise AssertionError("unreachable") from None
    finally:
        session.close()
    return BrowserSignIn(str(flow["auth_uri"]), str(flow["state"]), dict(flow))


def finish_browser_sign_in(
    tenant: str,
    client_id: str,
    endpoints: IdentityEndpoints,
    flow: Mapping[str, Any],
    answer: Mapping[str, str],
    *,
    client_secret: str | None = None,
) -> DelegatedGrant:
    """Redeem what Entra sent back to the redirect URI (`answer`: code and state, or error and
    error_description) for the user's grant; msal checks the state, sends the PKCE verifier and
    checks the ID token's nonce. A refusal (consent declined, a code used twice, a verifier that
    does not match) is a SourceError caused by an IdentityError saying what to do."""
    failure = TokenFailure(
        "microsoft", endpoints.authority_host, client_id=client_id, tenant=tenant
    )
    try:
        client, session = _delegated_client(tenant, client_id, endpoints, client_secret)
    except Exception as exc:
        _raise(classify_identity_failure(_with_exception(failure, exc)))
        raise AssertionError("unreachable") from None
    try:
        result = client.acquire_token_by_auth_code_flow(dict(flow), dict(answer))
    except Exception as exc:  # ValueError: state mismatch; RuntimeError: nonce mismatch
        _raise(classify_identity_failure(_with_exception(failure, exc)))
        raise AssertionError("unreachable") from None
    finally:
        session.close()
    if not isinstance(result, dict) or not result.get("refresh_token"):
        _raise(classify_identity_failure(_with_answer(failure, result)))
    claims = result.get("id_token_claims") or {}
    signed_in_tenant = str(claims.get("tid") or "")
    if _GUID.match(tenant) and signed_in_tenant and signed_in_tenant.lower() != tenant.lower():
        _raise(
            IdentityProblem(
                AuthExpired,
                "oauth_tenant",
                "tenant",
                f"the user signed in to tenant {signed_in_tenant}, not {tenant}: sign in with "
                "an account of the tenant the app is registered in",
            )
        )
    scopes = tuple(str(s) for s in flow.get("scope") or () if str(s).startswith("https://"))
    return DelegatedGrant(
        tenant,
        client_id,
        str(result["refresh_token"]),
        scopes or GRAPH_BROWSER_SCOPES,
        client_secret,
        user=str(claims.get("preferred_username") or ""),
    )


def _with_exception(failure: TokenFailure, exc: BaseException) -> TokenFailure:
    return TokenFailure(
        failure.provider,
        failure.where,
        exception=exc,
        client_id=failure.client_id,
        tenant=failure.tenant,
    )


def _with_answer(failure: TokenFailure, answer: object) -> TokenFailure:
    body = answer if isinstance(answer, dict) else {}
    return TokenFailure(
        failure.provider,
        failure.where,
        error=str(body.get("error") or "unknown_error"),
        description=str(body.get("error_description") or ""),
        codes=tuple(int(c) for c in body.get("error_codes") or () if _is_int(c)),
        client_id=failure.client_id,
        tenant=failure.tenant,
    )
