"""A local Microsoft identity platform (Entra ID v2.0 endpoints) over HTTPS, for tests.

Rapport's identity code (msal, plain requests) runs unchanged against it: only the authority host
(RAPPORT_GRAPH_AUTHORITY_HOST = `authority_host`) and the trusted CA (RAPPORT_CA_BUNDLE =
`ca_path`, a throwaway `trustme` CA) differ from production. Start it in a thread on a loopback
port (`IdentityEmulator(directory).start()`, or `with`); the Graph emulator reuses it for its
tokens and signing keys.

Endpoints, each following the Microsoft documentation page named in its handler's docstring, with
that page's sample payloads as the shapes of the answers:

    GET  /{tenant}/v2.0/.well-known/openid-configuration   OIDC discovery
    GET  /{tenant}/discovery/v2.0/keys                     signing keys (JWKS)
    POST /{tenant}/oauth2/v2.0/token                       client_credentials (secret, or a
                                                           certificate's signed assertion),
                                                           refresh_token (rotating),
                                                           authorization_code (PKCE), device_code
    GET  /{tenant}/oauth2/v2.0/authorize                   auth code + PKCE; "signs in"
                                                           `signed_in_user` without a browser
    POST /{tenant}/oauth2/v2.0/devicecode                  device authorization
    POST /google/token                                     Google's token endpoint (refresh grant)
    POST /introspect                                       RFC 7662 token introspection -- not a
                                                           Microsoft endpoint: it lets a test
                                                           Dovecot judge tokens as Exchange Online
                                                           and Gmail do (see `introspect`)

Access tokens are RS256 JWTs signed with the key published in the JWKS (`aud`, `iss`, `tid`,
`roles` for app-only or `scp` for delegated tokens, `exp`...); Google's are opaque `ya29.` strings
as Google's are. Refresh tokens, codes and device codes are opaque.

The directory is configured in Python: `add_tenant`, `add_user`, `add_app` (secrets with expiry,
certificates, public client, redirect URIs, application permissions with admin consent,
delegated permissions), `grant_mailbox` (Exchange Online's New-ServicePrincipal +
Add-MailboxPermission), `add_google_client`, `google_refresh_token`.

Quirks and faults it reproduces:
- an app-only token is issued without a `roles` claim when no application permission has admin
  consent (Entra does not refuse it; the resource does) -- see "Controlling tokens without the
  roles claim" in the client credentials page;
- Entra returns a new refresh token with every refresh; old ones stay valid unless
  `single_use_refresh_tokens` (providers with strict rotation) is set;
- a secret past its expiry gives AADSTS7000222, a wrong one AADSTS7000215, an unknown app
  AADSTS700016, an unknown tenant AADSTS90002 (already at discovery), `common` with client
  credentials AADSTS50059, a scope without /.default AADSTS1002012;
- fault switches: `expire_tokens()` (every access token issued so far is expired now),
  `revoke_refresh_token(rt)` / `revoke_user_grants(upn)` (AADSTS50173), `fail_next(...)` (an AADSTS
  error, or a 5xx with or without Retry-After, for the next requests to an endpoint),
  `block_device_code` (a Conditional Access policy refusing the device-code flow, AADSTS53003),
  `token_lifetime` (seconds);
- at /authorize, `signed_in_user` is who signs in; `decline_consent` makes them cancel the
  consent prompt (the browser comes back with error=access_denied, AADSTS65004); permissions
  nobody consented to come back as error=consent_required (AADSTS65001); a redirect_uri not
  registered on the app, an unknown app or a response_type other than code is an error page
  (Entra does not redirect to an unverified address).
- `hits` counts requests per endpoint; `token_requests` records each token request's grant type,
  client and outcome.

The pages cited (Microsoft Learn unless said otherwise):
- "OpenID Connect on the Microsoft identity platform": entra/identity-platform/v2-protocols-oidc
- "Microsoft identity platform and the OAuth 2.0 client credentials flow":
  entra/identity-platform/v2-oauth2-client-creds-grant-flow
- "Microsoft identity platform application authentication certificate credentials":
  entra/identity-platform/certificate-credentials
- "Microsoft identity platform and OAuth 2.0 authorization code flow":
  entra/identity-platform/v2-oauth2-auth-code-flow
- "Microsoft identity platform and the OAuth 2.0 device authorization grant flow":
  entra/identity-platform/v2-oauth2-device-code
- "Access token claims reference": entra/identity-platform/access-token-claims-reference;
  "ID token claims reference": entra/identity-platform/id-token-claims-reference
- "Signing key rollover in the Microsoft identity platform": entra/identity-platform/signing-key-rollover
- "Microsoft Entra authentication and authorization error codes":
  entra/identity-platform/reference-error-codes
- "Authenticate an IMAP, POP or SMTP connection using OAuth":
  exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth
- Google, "Using OAuth 2.0 for Web Server Applications" (developers.google.com/identity/protocols/
  oauth2/web-server) and "OAuth 2.0 Mechanism" (developers.google.com/gmail/imap/xoauth2-protocol)
- RFC 7662 (OAuth 2.0 Token Introspection), RFC 7636 (PKCE), RFC 8628 (device grant)
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import ssl
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socket import IPPROTO_TCP, TCP_NODELAY, socket
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.support.jwks import SigningKey

HOST = "127.0.0.1"
EXCHANGE = "https://outlook.office365.com"
EXCHANGE_ALIAS = "https://outlook.office.com"
GRAPH = "https://graph.microsoft.com"
GOOGLE_MAIL = "https://mail.google.com/"
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Resources every emulated tenant has (its service principals): Exchange Online, Graph.
RESOURCES = frozenset({EXCHANGE, EXCHANGE_ALIAS, GRAPH})


# --------------------------------------------------------------------------------------------
# The directory


@dataclass
class User:
    upn: str
    name: str
    oid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Tenant:
    id: str
    domains: list[str]
    users: dict[str, User] = field(default_factory=dict)
    resources: set[str] = field(default_factory=lambda: set(RESOURCES))


@dataclass
class App:
    """An app registration and its service principal in its home tenant."""

    client_id: str
    tenant_id: str
    name: str
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # service principal
    secrets: dict[str, float | None] = field(default_factory=dict)  # secret -> expires at
    certificates: list[x509.Certificate] = field(default_factory=list)
    public_client: bool = False  # "Allow public client flows"
    redirect_uris: list[str] = field(default_factory=list)
    roles: dict[str, set[str]] = field(default_factory=dict)  # resource -> consented app roles
    delegated: dict[str, set[str]] = field(default_factory=dict)  # resource -> consented scopes
    mailboxes: set[str] = field(default_factory=set)  # Exchange: FullAccess granted to the SP
    enabled: bool = True


@dataclass
class Grant:
    """What a refresh token stands for."""

    tenant_id: str
    client_id: str
    user: str  # upn, or a Google account's address
    scopes: list[str]
    revoked: bool = False
    used: bool = False


@dataclass
class AuthCode:
    grant: Grant
    redirect_uri: str
    challenge: str | None
    method: str
    nonce: str | None
    redeemed: bool = False


@dataclass
class DeviceCode:
    tenant_id: str
    client_id: str
    scopes: list[str]
    user_code: str
    expires_at: float
    user: str | None = None
    declined: bool = False


@dataclass
class Fault:
    endpoint: str
    status: int
    error: str | None
    code: int | None
    description: str | None
    retry_after: int | None


@dataclass(frozen=True)
class ClientCertificate:
    """An app credential: `pem` holds the private key and the certificate, as `--certificate`
    takes it; `certificate` is what gets uploaded to the app registration."""

    pem: str
    certificate: x509.Certificate


@cache
def _key(name: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def client_certificate(name: str = "rapport-imap") -> ClientCertificate:
    """A self-signed certificate with its key, as `New-SelfSignedCertificate` or openssl make."""
    key = _key(f"client-cert-{name}")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ) + certificate.public_bytes(serialization.Encoding.PEM)
    return ClientCertificate(pem.decode("ascii"), certificate)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _thumbprints(certificate: x509.Certificate) -> tuple[str, str]:
    """(x5t, x5t#S256) as a client assertion's header carries them."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    return (
        _b64url(hashlib.sha1(der).digest()),  # noqa: S324 - the x5t header is SHA-1 by definition
        _b64url(hashlib.sha256(der).digest()),
    )


class _Refused(Exception):
    """An error answer: status, JSON body, extra headers."""

    def __init__(
        self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(body.get("error"))
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


# --------------------------------------------------------------------------------------------
# The emulator


class IdentityEmulator:
    """Entra ID's v2.0 endpoints (and Google's token endpoint) on https://127.0.0.1:PORT."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._ca = trustme.CA()
        self.ca_path = directory / "identity-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_path))
        self.signing_key = SigningKey("identity-emulator-1")
        self.tenants: dict[str, Tenant] = {}
        self.apps: dict[str, App] = {}
        self.google_clients: dict[str, str] = {}  # client id -> secret
        self.token_lifetime = 3599  # seconds, as in the docs' sample answers
        self.device_code_interval = 5
        self.single_use_refresh_tokens = False
        self.block_device_code = False
        self.signed_in_user: str | None = None  # who "signs in" at /authorize
        self.decline_consent = False  # the user answers the consent prompt with Cancel
        self.hits: Counter[str] = Counter()
        self.token_requests: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self._faults: deque[Fault] = deque()
        self._refresh: dict[str, Grant] = {}
        self._codes: dict[str, AuthCode] = {}
        self._devices: dict[str, DeviceCode] = {}
        self._issued: dict[str, float] = {}  # access token id (jti, or the opaque token) -> when
        self._google_access: dict[str, tuple[str, str, float]] = {}  # token -> user, client, exp
        self._valid_after = 0.0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> IdentityEmulator:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ca.issue_cert(HOST, "localhost").configure_cert(context)
        self._server = _TlsServer((HOST, 0), _handler(self), context)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="identity-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> IdentityEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def authority_host(self) -> str:
        """HOST:PORT, what RAPPORT_GRAPH_AUTHORITY_HOST takes."""
        assert self._server is not None, "start() the emulator first"
        return f"{HOST}:{self._server.server_address[1]}"

    def url(self, path: str) -> str:
        return f"https://{self.authority_host}{path}"

    @property
    def introspection_url(self) -> str:
        return self.url("/introspect")

    @property
    def google_token_url(self) -> str:
        return self.url("/google/token")

    def env(self) -> dict[str, str]:
        """The RAPPORT_* variables pointing a Rapport process at this emulator."""
        return {
            "RAPPORT_GRAPH_AUTHORITY_HOST": self.authority_host,
            "RAPPORT_CA_BUNDLE": str(self.ca_path),
        }

    # -- the directory ------------------------------------------------------------------------

    def add_tenant(self, tenant_id: str | None = None, domain: str | None = None) -> Tenant:
        tenant = Tenant(tenant_id or str(uuid.uuid4()), [domain] if domain else [])
        with self._lock:
            self.tenants[tenant.id] = tenant
        return tenant

    def add_user(self, tenant: Tenant, upn: str, name: str | None = None) -> User:
        user = User(upn, name or upn.split("@")[0].title())
        with self._lock:
            tenant.users[upn.lower()] = user
        return user

    def add_app(
        self,
        tenant: Tenant,
        *,
        name: str = "Rapport",
        client_id: str | None = None,
        secret: str | None = None,
        secret_expires_at: float | None = None,
        certificate: x509.Certificate | None = None,
        public_client: bool = False,
        redirect_uris: tuple[str, ...] = (),
        roles: Mapping[str, set[str]] | None = None,
        delegated: Mapping[str, set[str]] | None = None,
    ) -> App:
        """An app registration; `roles` are application permissions with admin consent,
        `delegated` the delegated permissions consented to (by an admin, for everyone)."""
        app = App(client_id or str(uuid.uuid4()), tenant.id, name)
        if secret is not None:
            app.secrets[secret] = secret_expires_at
        if certificate is not None:
            app.certificates.append(certificate)
        app.public_client = public_client
        app.redirect_uris = list(redirect_uris)
        app.roles = {k: set(v) for k, v in (roles or {}).items()}
        app.delegated = {k: set(v) for k, v in (delegated or {}).items()}
        with self._lock:
            self.apps[app.client_id] = app
        return app

    def imap_app(self, tenant: Tenant, mailbox: str, **options: Any) -> App:
        """An app set up as Exchange Online wants for IMAP app-only access: IMAP.AccessAsApp with
        admin consent, its service principal registered and given FullAccess on `mailbox`."""
        app = self.add_app(tenant, roles={EXCHANGE: {"IMAP.AccessAsApp"}}, **options)
        self.grant_mailbox(app, mailbox)
        return app

    def grant_mailbox(self, app: App, mailbox: str) -> None:
        """`New-ServicePrincipal` + `Add-MailboxPermission -AccessRights FullAccess`."""
        with self._lock:
            app.mailboxes.add(mailbox.lower())

    def add_google_client(
        self, client_id: str | None = None, secret: str | None = None
    ) -> tuple[str, str]:
        client = client_id or f"{secrets.randbelow(10**12)}-test.apps.googleusercontent.com"
        with self._lock:
            self.google_clients[client] = secret or f"GOCSPX-{secrets.token_urlsafe(21)}"
            return client, self.google_clients[client]

    def google_refresh_token(self, client_id: str, user: str) -> str:
        """A refresh token as Google's consent screen gives one (offline access, Gmail scope)."""
        token = f"1//{secrets.token_urlsafe(60)}"
        with self._lock:
            self._refresh[token] = Grant("google", client_id, user, [GOOGLE_MAIL])
        return token

    def user_refresh_token(self, app: App, upn: str, scopes: list[str]) -> str:
        """A refresh token for `upn` as an earlier interactive sign-in would have left one."""
        token = f"0.A{secrets.token_urlsafe(90)}"
        with self._lock:
            self._refresh[token] = Grant(app.tenant_id, app.client_id, upn.lower(), list(scopes))
        return token

    def app_token(self, app: App, scope: str = f"{EXCHANGE}/.default") -> str:
        """An app-only access token as the token endpoint would issue it (without HTTP)."""
        form = {"client_id": app.client_id, "scope": scope}
        form["client_secret"] = next(iter(app.secrets), "")
        return str(self._client_credentials(app.tenant_id, form)["access_token"])

    # -- fault switches -----------------------------------------------------------------------

    def reset(self) -> None:
        """Switches back to normal (the directory and issued tokens stay): between tests."""
        with self._lock:
            self._faults.clear()
            self.token_lifetime = 3599
            self.device_code_interval = 5
            self.single_use_refresh_tokens = False
            self.block_device_code = False
            self.signed_in_user = None
            self.decline_consent = False
            self.hits.clear()
            self.token_requests.clear()

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now (the resource refuses it)."""
        with self._lock:
            self._valid_after = time.time()

    def token_withdrawn(self, claims: Mapping[str, Any]) -> bool:
        """Whether an access token of ours (its verified claims) was issued before
        `expire_tokens()`, or not by us at all: a resource refuses it as expired."""
        with self._lock:
            issued = self._issued.get(str(claims.get("jti")))
            return issued is None or issued <= self._valid_after

    def revoke_refresh_token(self, token: str) -> None:
        with self._lock:
            self._refresh[token].revoked = True

    def revoke_user_grants(self, user: str) -> None:
        """`Revoke-MgUserSignInSession`: every refresh token of the user stops working."""
        with self._lock:
            for grant in self._refresh.values():
                if grant.user == user.lower():
                    grant.revoked = True

    def fail_next(
        self,
        times: int = 1,
        *,
        endpoint: str = "token",
        status: int = 400,
        error: str | None = None,
        code: int | None = None,
        description: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next `times` requests to `endpoint` (token, discovery, devicecode,
        google, introspect) with an error: an AADSTS `code` with its `error`, or a bare 5xx
        (with Retry-After when given)."""
        with self._lock:
            for _ in range(times):
                self._faults.append(Fault(endpoint, status, error, code, description, retry_after))

    def approve_device_code(self, user_code: str, upn: str) -> None:
        """The user typed the code at the verification page and signed in."""
        with self._lock:
            device = next(d for d in self._devices.values() if d.user_code == user_code)
            device.user = upn.lower()

    def decline_device_code(self, user_code: str) -> None:
        with self._lock:
            device = next(d for d in self._devices.values() if d.user_code == user_code)
            device.declined = True

    # -- request handling ---------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], form: dict[str, str]
    ) -> tuple[int, dict[str, Any] | str, dict[str, str]]:
        parts = [p for p in path.split("/") if p]
        try:
            if method == "POST" and parts == ["introspect"]:
                return self._answer("introspect", lambda: self.introspect(form))
            if method == "POST" and parts == ["google", "token"]:
                return self._answer("google", lambda: self.google_token(form))
            if len(parts) >= 2:
                tenant, rest = parts[0], parts[1:]
                if method == "GET" and rest == ["v2.0", ".well-known", "openid-configuration"]:
                    return self._answer("discovery", lambda: self.discovery(tenant))
                if method == "GET" and rest == ["discovery", "v2.0", "keys"]:
                    return self._answer("keys", lambda: self.keys(tenant))
                if method == "POST" and rest == ["oauth2", "v2.0", "token"]:
                    return self._answer("token", lambda: self.token(tenant, form))
                if method == "POST" and rest == ["oauth2", "v2.0", "devicecode"]:
                    return self._answer("devicecode", lambda: self.devicecode(tenant, form))
                if method == "GET" and rest == ["oauth2", "v2.0", "authorize"]:
                    self.hits["authorize"] += 1
                    return self.authorize(tenant, query)
        except _Refused as refused:
            return refused.status, refused.body, refused.headers
        return 404, {"error": "not_found", "error_description": f"no endpoint {path}"}, {}

    def _answer(
        self, endpoint: str, produce: Any
    ) -> tuple[int, dict[str, Any] | str, dict[str, str]]:
        self.hits[endpoint] += 1
        with self._lock:
            fault = next((f for f in self._faults if f.endpoint == endpoint), None)
            if fault is not None:
                self._faults.remove(fault)
        if fault is not None:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
            if fault.code is not None or fault.error is not None:
                body = self._entra_error(
                    fault.error or "invalid_request",
                    fault.code or 90000,
                    fault.description or "Emulated failure.",
                )
            else:  # a 5xx from the front end, as Entra's answer when it is overloaded
                body = self._entra_error(
                    "temporarily_unavailable",
                    90033,
                    "A transient error has occurred. Please try again.",
                )
            return fault.status, body, headers
        status, body = produce()
        return status, body, {}

    def _entra_error(self, error: str, code: int, text: str) -> dict[str, Any]:
        """The error shape of the token endpoint ("Microsoft identity platform and the OAuth 2.0
        client credentials flow", section "Error response", sample payload)."""
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        return {
            "error": error,
            "error_description": f"AADSTS{code}: {text}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {correlation}\r\nTimestamp: {stamp}",
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"https://{self.authority_host}/error?code={code}",
        }

    def _refuse(self, status: int, error: str, code: int, text: str) -> _Refused:
        return _Refused(status, self._entra_error(error, code, text))

    def _tenant(self, name: str) -> Tenant:
        with self._lock:
            tenant = self.tenants.get(name) or next(
                (t for t in self.tenants.values() if name.lower() in t.domains), None
            )
        if tenant is None:
            raise self._refuse(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud. Check with your subscription "
                "administrator, this may happen if there are no active subscriptions for the "
                "tenant.",
            )
        return tenant

    # -- discovery ------------------------------------------------------------------------------

    def discovery(self, tenant_name: str) -> tuple[int, dict[str, Any]]:
        """OpenID configuration ("OpenID Connect on the Microsoft identity platform", section
        "Find your app's OpenID configuration document URI", sample document)."""
        if tenant_name.lower() in ("common", "organizations"):
            tid, segment = "{tenantid}", tenant_name
        else:
            tenant = self._tenant(tenant_name)
            tid = segment = tenant.id
        base = f"https://{self.authority_host}/{segment}"
        return 200, {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"https://{self.authority_host}/{tid}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "cloud_instance_name",
                "cloud_instance_host_name",
                "cloud_graph_host_name",
                "msgraph_host",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "acr",
                "nonce",
                "preferred_username",
                "name",
                "tid",
                "ver",
                "at_hash",
                "c_hash",
                "email",
            ],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def keys(self, tenant_name: str) -> tuple[int, dict[str, Any]]:
        """Signing keys ("Signing key rollover in the Microsoft identity platform"; the JWKS at
        jwks_uri, one RSA key per entry with kid, use and the tenant's issuer)."""
        if tenant_name not in ("common", "organizations"):
            self._tenant(tenant_name)
        key = {**self.signing_key.jwk, "issuer": f"https://{self.authority_host}/{{tenantid}}/v2.0"}
        key.pop("alg", None)
        return 200, {"keys": [key]}

    # -- token endpoint -------------------------------------------------------------------------

    def token(self, tenant_name: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant_type = form.get("grant_type", "")
        record: dict[str, Any] = {
            "grant_type": grant_type,
            "client_id": form.get("client_id"),
            "tenant": tenant_name,
            "ok": False,
        }
        with self._lock:
            self.token_requests.append(record)
        handlers = {
            "client_credentials": self._client_credentials,
            "refresh_token": self._refresh_token,
            "authorization_code": self._authorization_code,
            DEVICE_GRANT: self._device_code,
        }
        handler = handlers.get(grant_type)
        if handler is None:
            raise self._refuse(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        try:
            answer = handler(tenant_name, form)
        except _Refused as refused:
            record["error"] = refused.body.get("error")
            record["codes"] = refused.body.get("error_codes")
            raise
        record["ok"] = True
        return 200, answer

    def _client(self, tenant: Tenant, form: dict[str, str], *, confidential: bool) -> App:
        """Client authentication ("Microsoft identity platform application authentication
        certificate credentials" for the assertion; a secret in client_secret)."""
        client_id = form.get("client_id", "")
        with self._lock:
            app = self.apps.get(client_id)
        if app is None or app.tenant_id != tenant.id:
            raise self._refuse(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant.domains[0] if tenant.domains else tenant.id}'. This can happen if the "
                "application has not been installed by the administrator of the tenant or "
                "consented to by any user in the tenant. You might have sent your "
                "authentication request to the wrong tenant.",
            )
        if not app.enabled:
            raise self._refuse(
                400, "unauthorized_client", 7000112, f"Application '{client_id}' is disabled."
            )
        if "client_secret" in form:
            secret = form["client_secret"]
            if secret not in app.secrets:
                raise self._refuse(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    "is the client secret value, not the client secret ID, for a secret added to "
                    f"app '{client_id}'.",
                )
            expires = app.secrets[secret]
            if expires is not None and expires < time.time():
                raise self._refuse(
                    401,
                    "invalid_client",
                    7000222,
                    f"The provided client secret keys for app '{client_id}' are expired. Visit "
                    "the Azure portal to create new keys for your app.",
                )
            return app
        if form.get("client_assertion_type") == ASSERTION_TYPE:
            self._check_assertion(tenant, app, form.get("client_assertion", ""))
            return app
        if confidential or not app.public_client:
            raise self._refuse(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        return app

    def _check_assertion(self, tenant: Tenant, app: App, assertion: str) -> None:
        """The signed JWT of a certificate credential: header alg RS256 or PS256 with x5t or
        x5t#S256 naming a certificate uploaded to the app; claims aud (the token endpoint),
        iss = sub = client id, jti, exp, nbf."""
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise self._refuse(
                401, "invalid_client", 50027, "JWT token is invalid or malformed."
            ) from None
        # msal pads its base64url thumbprints ("...=") and Entra accepts that: compare unpadded.
        wanted = str(header.get("x5t#S256") or header.get("x5t") or "").rstrip("=")
        certificate = next((c for c in app.certificates if wanted in _thumbprints(c)), None)
        if certificate is None or header.get("alg") not in ("RS256", "PS256"):
            raise self._refuse(
                401,
                "invalid_client",
                700027,
                "The certificate with identifier used to sign the client assertion is not "
                "registered on application. [Reason - The key was not found., Thumbprint of "
                f"key used by client: '{wanted}']",
            )
        audiences = [
            f"https://{self.authority_host}/{name}/oauth2/v2.0/token"
            for name in (tenant.id, *tenant.domains)
        ]
        try:
            claims = jwt.decode(
                assertion,
                certificate.public_key(),  # type: ignore[arg-type]
                algorithms=[header["alg"]],
                audience=audiences,
                options={"require": ["aud", "iss", "sub", "exp", "jti"]},
                leeway=300,
            )
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
            raise self._refuse(
                401,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            ) from None
        except jwt.InvalidAudienceError:
            raise self._refuse(
                401,
                "invalid_client",
                700023,
                "The audience claim in the client assertion does not match the token endpoint.",
            ) from None
        except jwt.PyJWTError:
            raise self._refuse(
                401, "invalid_client", 700027, "Client assertion failed signature validation."
            ) from None
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            raise self._refuse(
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            )

    def _client_credentials(self, tenant_name: str, form: dict[str, str]) -> dict[str, Any]:
        """ "Microsoft identity platform and the OAuth 2.0 client credentials flow", section
        "Get a token": scope is one resource's /.default; the answer is the doc's sample
        (token_type, expires_in, ext_expires_in, access_token)."""
        if tenant_name.lower() in ("common", "organizations", "consumers"):
            raise self._refuse(
                400,
                "invalid_request",
                50059,
                "No tenant-identifying information found in either the request or implied by "
                "any provided credentials.",
            )
        tenant = self._tenant(tenant_name)
        app = self._client(tenant, form, confidential=True)
        scope = form.get("scope", "").strip()
        if " " in scope or not scope.endswith("/.default"):
            raise self._refuse(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        resource = scope.removesuffix("/.default")
        if resource not in tenant.resources:
            raise self._refuse(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{tenant.id}. This can happen if the application has not been installed by "
                "the administrator of the tenant or consented to by any user in the tenant.",
            )
        claims: dict[str, Any] = {
            "aud": resource,
            "oid": app.object_id,
            "sub": app.object_id,
            "azp": app.client_id,
            "appid": app.client_id,
            "idtyp": "app",
        }
        roles = sorted(app.roles.get(resource, ()))
        if roles:  # without admin consent Entra still issues the token, without roles
            claims["roles"] = roles
        access = self._access_token(tenant, claims)
        return {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": access,
        }

    def _refresh_token(self, tenant_name: str, form: dict[str, str]) -> dict[str, Any]:
        """ "Microsoft identity platform and OAuth 2.0 authorization code flow", section "Refresh
        the access token": a new access token and a new refresh token each time."""
        tenant = self._tenant(tenant_name)
        app = self._client(tenant, form, confidential=False)
        token = form.get("refresh_token", "")
        with self._lock:
            grant = self._refresh.get(token)
        if grant is None or grant.client_id != app.client_id:
            raise self._refuse(
                400,
                "invalid_grant",
                9002313,
                "Invalid request. Request is malformed or invalid. - The refresh token is "
                "malformed or not valid.",
            )
        if grant.revoked:
            raise self._refuse(
                400,
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token "
                "is needed. The user might have changed or reset their password.",
            )
        if grant.used and self.single_use_refresh_tokens:
            raise self._refuse(
                400,
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to "
                "inactivity. Send a new interactive authorization request for this user and "
                "resource.",
            )
        scopes = form.get("scope", "").split() or grant.scopes
        answer = self._user_tokens(tenant, app, grant.user, scopes, nonce=None, form=form)
        with self._lock:
            grant.used = True
        return answer

    def _user_tokens(
        self,
        tenant: Tenant,
        app: App,
        upn: str,
        scopes: list[str],
        *,
        nonce: str | None,
        form: Mapping[str, str],
    ) -> dict[str, Any]:
        resource, permissions = _resource_scopes(scopes)
        missing = permissions - app.delegated.get(resource, set())
        if missing:
            raise self._refuse(
                400,
                "invalid_grant",
                65001,
                f"The user or administrator has not consented to use the application with ID "
                f"'{app.client_id}' named '{app.name}'. Send an interactive authorization "
                "request for this user and resource.",
            )
        user = tenant.users.get(upn)
        if user is None:
            raise self._refuse(
                400, "invalid_grant", 50034, f"The user account {upn} does not exist."
            )
        claims = {
            "aud": resource,
            "scp": " ".join(sorted(permissions)),
            "oid": user.oid,
            "sub": _b64url(hashlib.sha256(f"{user.oid}{app.client_id}".encode()).digest()),
            "azp": app.client_id,
            "appid": app.client_id,
            "upn": user.upn,
            "preferred_username": user.upn,
            "name": user.name,
            "idtyp": "user",
        }
        answer: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(
                [f"{resource}/{p}" for p in sorted(permissions)]
                + sorted(s for s in scopes if s in OIDC_SCOPES)
            ),
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": self._access_token(tenant, claims),
        }
        if "offline_access" in scopes:
            refresh = f"0.A{secrets.token_urlsafe(90)}"
            with self._lock:
                self._refresh[refresh] = Grant(tenant.id, app.client_id, user.upn.lower(), scopes)
            answer["refresh_token"] = refresh
        if "openid" in scopes:
            answer["id_token"] = self._id_token(tenant, app, user, nonce)
        if form.get("client_info") == "1":
            answer["client_info"] = _b64url(
                json.dumps({"uid": user.oid, "utid": tenant.id}).encode()
            )
        return answer

    def _id_token(self, tenant: Tenant, app: App, user: User, nonce: str | None) -> str:
        """ "Microsoft identity platform ID tokens" (v2.0 claims: aud, iss, iat, nbf, exp, name,
        oid, preferred_username, sub, tid, ver, nonce)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": app.client_id,
            "iss": f"https://{self.authority_host}/{tenant.id}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": user.name,
            "oid": user.oid,
            "preferred_username": user.upn,
            "sub": _b64url(hashlib.sha256(f"{user.oid}{app.client_id}".encode()).digest()),
            "tid": tenant.id,
            "ver": "2.0",
        }
        if nonce:
            claims["nonce"] = nonce
        return self._sign(claims)

    def _access_token(self, tenant: Tenant, claims: Mapping[str, Any]) -> str:
        """ "Access token claims reference": aud, iss, iat, nbf, exp, tid, oid, sub, azp, ver,
        roles (app-only) or scp (delegated), uti."""
        now = time.time()
        jti = _b64url(secrets.token_bytes(16))
        full = {
            "iss": f"https://{self.authority_host}/{tenant.id}/v2.0",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now) + self.token_lifetime,
            "tid": tenant.id,
            "ver": "2.0",
            "uti": jti,
            "jti": jti,
            **claims,
        }
        with self._lock:
            self._issued[jti] = now
        return self._sign(full)

    def _sign(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(
            dict(claims),
            self.signing_key.private,
            algorithm="RS256",
            headers={"kid": self.signing_key.kid, "typ": "JWT"},
        )

    # -- authorization code with PKCE ----------------------------------------------------------

    def authorize(
        self, tenant_name: str, query: dict[str, str]
    ) -> tuple[int, dict[str, Any] | str, dict[str, str]]:
        """ "Microsoft identity platform and OAuth 2.0 authorization code flow", sections
        "Request an authorization code" and "Successful response": the browser comes back to
        redirect_uri with code and state (query response mode, or form_post), and "Error
        response" (error, error_description, state). The user is `signed_in_user`; the PKCE
        code_challenge (S256 or plain) is kept with the code for its redemption."""
        tenant = self._tenant(tenant_name)
        with self._lock:
            app = self.apps.get(query.get("client_id", ""))
        redirect = query.get("redirect_uri", "")
        if app is None or app.tenant_id != tenant.id:
            return 400, "AADSTS700016: Application not found in the directory.", {}
        if redirect not in app.redirect_uris:
            return (
                400,
                f"AADSTS50011: The redirect URI '{redirect}' specified in the request does not "
                f"match the redirect URIs configured for the application '{app.client_id}'.",
                {},
            )
        if query.get("response_type") != "code":
            return 400, "AADSTS900144: The request body must contain the parameter 'code'.", {}
        state = query.get("state", "")
        scopes = query.get("scope", "").split()
        resource, permissions = _resource_scopes(scopes)
        if self.decline_consent:
            # Section "Error response": the user (or admin) denied the request; Entra's own
            # error code for a cancelled consent prompt is AADSTS65004.
            error = self._entra_error(
                "access_denied", 65004, "User declined to consent to access the app."
            )
            location = _with_query(
                redirect,
                error="access_denied",
                error_subcode="cancel",
                error_description=error["error_description"],
                state=state,
            )
            return 302, "", {"Location": location}
        if permissions - app.delegated.get(resource, set()):
            error = self._entra_error(
                "consent_required", 65001, "The user or administrator has not consented."
            )
            location = _with_query(
                redirect,
                error="consent_required",
                error_description=error["error_description"],
                state=state,
            )
            return 302, "", {"Location": location}
        if self.signed_in_user is None or self.signed_in_user.lower() not in tenant.users:
            return 400, "No user is signed in (set IdentityEmulator.signed_in_user).", {}
        code = f"0.A{secrets.token_urlsafe(120)}"
        with self._lock:
            self._codes[code] = AuthCode(
                Grant(tenant.id, app.client_id, self.signed_in_user.lower(), scopes),
                redirect,
                query.get("code_challenge"),
                query.get("code_challenge_method", "plain"),
                query.get("nonce"),
            )
        answer = {"code": code, "state": state, "session_state": str(uuid.uuid4())}
        if query.get("response_mode") == "form_post":
            # The browser posts the answer to redirect_uri (response_mode=form_post).
            fields = "".join(
                f'<input type="hidden" name="{k}" value="{html.escape(v)}"/>'
                for k, v in answer.items()
            )
            page = (
                f'<html><body onload="document.forms[0].submit()"><form method="POST" '
                f'action="{html.escape(redirect)}">{fields}</form></body></html>'
            )
            return 200, page, {"Content-Type": "text/html; charset=utf-8"}
        return 302, "", {"Location": _with_query(redirect, **answer)}

    def _authorization_code(self, tenant_name: str, form: dict[str, str]) -> dict[str, Any]:
        """ "Redeem a code for an access token": redirect_uri as in the request, code_verifier
        for the code_challenge (RFC 7636, S256), a code only once (AADSTS54005)."""
        tenant = self._tenant(tenant_name)
        app = self._client(tenant, form, confidential=False)
        with self._lock:
            code = self._codes.get(form.get("code", ""))
            if code is not None and code.redeemed:
                raise self._refuse(
                    400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed."
                )
            if code is not None:
                code.redeemed = True
        if code is None or code.grant.client_id != app.client_id:
            raise self._refuse(
                400, "invalid_grant", 70000, "The provided value for the 'code' is not valid."
            )
        if form.get("redirect_uri") != code.redirect_uri:
            raise self._refuse(
                400,
                "invalid_grant",
                50011,
                "The redirect URI does not match the one the code was issued for.",
            )
        if code.challenge is not None:
            verifier = form.get("code_verifier", "")
            computed = (
                _b64url(hashlib.sha256(verifier.encode("ascii")).digest())
                if code.method == "S256"
                else verifier
            )
            if computed != code.challenge:
                raise self._refuse(
                    400,
                    "invalid_grant",
                    501481,
                    "The Code_Verifier does not match the code_challenge supplied in the "
                    "authorization request.",
                )
        scopes = form.get("scope", "").split() or code.grant.scopes
        return self._user_tokens(tenant, app, code.grant.user, scopes, nonce=code.nonce, form=form)

    # -- device code ----------------------------------------------------------------------------

    def devicecode(self, tenant_name: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """ "Microsoft identity platform and the OAuth 2.0 device authorization grant flow",
        section "Device authorization response" (the doc's fields and message)."""
        tenant = self._tenant(tenant_name)
        with self._lock:
            app = self.apps.get(form.get("client_id", ""))
        if app is None or app.tenant_id != tenant.id:
            raise self._refuse(
                400, "unauthorized_client", 700016, "Application not found in the directory."
            )
        user_code = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9))
        device = f"DAQABAAEAAAD{secrets.token_urlsafe(150)}"
        with self._lock:
            self._devices[device] = DeviceCode(
                tenant.id,
                app.client_id,
                form.get("scope", "").split(),
                user_code,
                time.time() + 900,
            )
        page = self.url("/devicelogin")
        return 200, {
            "device_code": device,
            "user_code": user_code,
            "verification_uri": page,
            "expires_in": 900,
            "interval": self.device_code_interval,
            "message": f"To sign in, use a web browser to open the page {page} and enter the "
            f"code {user_code} to authenticate.",
        }

    def _device_code(self, tenant_name: str, form: dict[str, str]) -> dict[str, Any]:
        """ "Authenticating the user": authorization_pending until the user acts, then the
        tokens; authorization_declined, expired_token, bad_verification_code otherwise."""
        tenant = self._tenant(tenant_name)
        app = self._client(tenant, form, confidential=False)
        with self._lock:
            device = self._devices.get(form.get("device_code", ""))
        if device is None or device.client_id != app.client_id:
            raise self._refuse(400, "bad_verification_code", 70000, "The device code is not valid.")
        if self.block_device_code:
            raise self._refuse(
                400,
                "access_denied",
                53003,
                "Access has been blocked by Conditional Access policies. The access policy does "
                "not allow token issuance.",
            )
        if device.declined:
            raise self._refuse(400, "authorization_declined", 70000, "The user declined.")
        if device.expires_at < time.time():
            raise self._refuse(400, "expired_token", 70019, "Verification code expired.")
        if device.user is None:
            raise self._refuse(
                400,
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        with self._lock:
            del self._devices[form["device_code"]]
        return self._user_tokens(tenant, app, device.user, device.scopes, nonce=None, form=form)

    # -- Google -------------------------------------------------------------------------------

    def google_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Google's token endpoint, refresh grant ("Using OAuth 2.0 for Web Server
        Applications", section "Refreshing an access token (offline access)": the answer holds
        access_token, expires_in, scope, token_type; a revoked token gives invalid_grant
        "Token has been expired or revoked.")."""
        client_id = form.get("client_id", "")
        with self._lock:
            secret = self.google_clients.get(client_id)
            grant = self._refresh.get(form.get("refresh_token", ""))
        if secret is None:
            raise _Refused(
                401,
                {"error": "invalid_client", "error_description": "The OAuth client was not found."},
            )
        if form.get("client_secret") != secret:
            raise _Refused(401, {"error": "invalid_client", "error_description": "Unauthorized"})
        if form.get("grant_type") != "refresh_token":
            raise _Refused(
                400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}
            )
        if grant is None or grant.tenant_id != "google" or grant.client_id != client_id:
            raise _Refused(400, {"error": "invalid_grant", "error_description": "Bad Request"})
        if grant.revoked:
            raise _Refused(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "Token has been expired or revoked.",
                },
            )
        token = f"ya29.{secrets.token_urlsafe(120)}"
        now = time.time()
        with self._lock:
            self._google_access[token] = (grant.user, client_id, now + self.token_lifetime)
            self._issued[token] = now
        answer: dict[str, Any] = {
            "access_token": token,
            "expires_in": self.token_lifetime,
            "scope": " ".join(grant.scopes),
            "token_type": "Bearer",
        }
        if self.single_use_refresh_tokens:  # strict rotation, for providers that do it
            rotated = f"1//{secrets.token_urlsafe(60)}"
            with self._lock:
                self._refresh[rotated] = Grant("google", client_id, grant.user, grant.scopes)
                grant.revoked = True
            answer["refresh_token"] = rotated
        return 200, answer

    # -- introspection (for the test Dovecot) --------------------------------------------------

    def introspect(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """RFC 7662 token introspection (section 2.2's response), answering as the resource
        would judge the token -- Microsoft and Google have no such endpoint; Exchange Online
        and Gmail check tokens themselves:

        - Exchange Online (aud https://outlook.office365.com): an app-only token needs the role
          IMAP.AccessAsApp and its service principal FullAccess on a mailbox; Dovecot's passdb
          passes only the token, not the mailbox asked for, so `username` is the one mailbox the
          app was granted (an app granted several is refused here: give each test app one). A
          delegated token needs the scope IMAP.AccessAsUser.All; `username` is its user.
        - Gmail: an opaque access token with the https://mail.google.com/ scope.
        Expired tokens (or issued before `expire_tokens()`) are inactive."""
        token = form.get("token", "")
        inactive: tuple[int, dict[str, Any]] = (200, {"active": False})
        now = time.time()
        with self._lock:
            issued = self._issued.get(token)
            google = self._google_access.get(token)
        if google is not None:
            user, client_id, expires = google
            if expires < now or issued is None or issued <= self._valid_after:
                return inactive
            return 200, {
                "active": True,
                "username": user,
                "client_id": client_id,
                "scope": GOOGLE_MAIL,
                "exp": int(expires),
                "token_type": "Bearer",
            }
        try:
            claims = jwt.decode(
                token,
                self.signing_key.private.public_key(),
                algorithms=["RS256"],
                options={"verify_aud": False},
            )
        except jwt.PyJWTError:
            return inactive
        with self._lock:
            issued = self._issued.get(str(claims.get("jti")))
            app = self.apps.get(str(claims.get("azp")))
        if issued is None or issued <= self._valid_after:
            return inactive
        if claims.get("aud") not in (EXCHANGE, EXCHANGE_ALIAS):
            return inactive
        if claims.get("idtyp") == "app":
            if app is None or "IMAP.AccessAsApp" not in claims.get("roles", ()):
                return inactive
            if len(app.mailboxes) != 1:
                return inactive
            username = next(iter(app.mailboxes))
            scope = " ".join(claims.get("roles", ()))
        else:
            if "IMAP.AccessAsUser.All" not in str(claims.get("scp", "")).split():
                return inactive
            username = str(claims.get("upn"))
            scope = str(claims.get("scp"))
        return 200, {
            "active": True,
            "username": username,
            "client_id": claims.get("azp"),
            "scope": scope,
            "sub": claims.get("sub"),
            "aud": claims.get("aud"),
            "iss": claims.get("iss"),
            "exp": claims.get("exp"),
            "iat": claims.get("iat"),
            "token_type": "Bearer",
        }

    # -- for assertions -------------------------------------------------------------------------

    def decode(self, token: str) -> dict[str, Any]:
        """The claims of an access token this emulator issued (signature checked)."""
        return dict(
            jwt.decode(
                token,
                self.signing_key.private.public_key(),
                algorithms=["RS256"],
                options={"verify_aud": False},
            )
        )

    def grants_of(self, user: str) -> Iterator[tuple[str, Grant]]:
        with self._lock:
            items = list(self._refresh.items())
        for token, grant in items:
            if grant.user == user.lower():
                yield token, grant


def _resource_scopes(scopes: list[str]) -> tuple[str, set[str]]:
    """The resource and permission names of delegated scopes ("Scopes and permissions in the
    Microsoft identity platform": a bare permission means Microsoft Graph)."""
    resource = GRAPH
    permissions: set[str] = set()
    for scope in scopes:
        if scope in OIDC_SCOPES:
            continue
        if scope.startswith("https://"):
            base, _, name = scope.rpartition("/")
            resource = base
            permissions.add(name)
        else:
            permissions.add(scope)
    return resource, permissions


def _with_query(url: str, **values: str) -> str:
    separator = "&" if urlsplit(url).query else "?"
    return f"{url}{separator}{urlencode(values)}"


# --------------------------------------------------------------------------------------------
# HTTP plumbing


class _TlsServer(ThreadingHTTPServer):
    """TLS per connection, in the connection's own thread (a slow handshake holds up no one)."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        context: ssl.SSLContext,
    ) -> None:
        self.context = context
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        assert isinstance(request, socket)
        # Headers and body go out in two writes; without this, Nagle holds the body back until
        # the client's delayed ACK (40 ms), a stall no real service adds.
        request.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
        try:
            wrapped = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a client that does not trust us, or went away
        # The plain socket is detached into `wrapped`: closing it is ours (socketserver's
        # shutdown_request only sees the detached one).
        with wrapped:
            super().finish_request(wrapped, client_address)


def _handler(emulator: IdentityEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            form: dict[str, str] = {}
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                raw = self.rfile.read(length).decode("utf-8", "replace")
                form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            status, body, headers = emulator.handle(method, parts.path, query, form)
            if isinstance(body, dict):
                data = json.dumps(body).encode()
                content_type = "application/json; charset=utf-8"
            else:
                data = body.encode()
                content_type = "text/plain; charset=utf-8"
            content_type = headers.pop("Content-Type", content_type)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: the test output is not the place

    return Handler
