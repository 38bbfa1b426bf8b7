"""Linking an IMAP mailbox and asking for a sync: the services `rapport mailbox` and the admin
API both call, so the two can never check, save or queue a link differently.

An IMAP link is tested before it is saved: a link that cannot sign in or is missing a folder
would only turn into "needs attention" on its first sync, after the admin has moved on. The test
runs outside any database transaction (it talks to a remote server for up to a few seconds). A
failed test becomes `ConnectionFailed`, whose `field` names the setting to fix and whose `code`
tells a form which kind of problem it is; the password never appears in it.

A link signs in with a password or, for servers that refuse passwords (Exchange Online, Gmail),
with OAuth (`ImapConnection.oauth`, see `server.mail_ingest.oauth`): the test then also proves
that a token can be had (a wrong secret, tenant or revoked grant stops it with what to fix) and
that the server takes it. The OAuth secrets (client secret, certificate, refresh token) are
stored encrypted like a password; a refresh token the provider rotated during the test is the
one saved.
"""

from __future__ import annotations

import hashlib
import secrets
import socket
import ssl
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from requests_ntlm import HttpNtlmAuth
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from server.crm.errors import Conflict, DomainError, NotFound
from server.crm.mailboxes import add_link, check_level, get_link, owner_address, resume_link
from server.crm.settings import set_setting
from server.crm.timeparse import parse_since
from server.crm.users import audit
from server.crypto import SecretBox, SecretError
from server.db import Database
from server.jobs import enqueue
from server.mail_ingest.autodiscover import DEFAULT_TEMPLATES as DEFAULT_AUTODISCOVER
from server.mail_ingest.autodiscover import AutodiscoverFailed, BearerToken, discover
from server.mail_ingest.errors import AuthExpired, PermissionDenied, SourceError, Throttled
from server.mail_ingest.oauth import (
    DEFAULT_AUTHORITY_HOST,
    ClientCredentialsSource,
    DelegatedGrant,
    EntraRefreshTokenSource,
    IdentityEndpoints,
    IdentityError,
    MicrosoftApp,
    OAuthCredentials,
    RefreshTokenSource,
    TokenSource,
    certificate_thumbprint,
    check_credentials,
    finish_browser_sign_in,
    graph_app,
    identity_problem_of,
    start_browser_sign_in,
    token_source,
)
from server.mail_ingest.sources import ews as ews_source
from server.mail_ingest.sources import graph as graph_source
from server.mail_ingest.sources import imap
from server.mail_ingest.sync import SOURCES
from server.models import Job, MailboxLink, Setting, utcnow

# Seconds per network step of a connection test: a person (or a web request) is waiting.
TEST_TIMEOUT = 15.0
Security = Literal["ssl", "starttls"]


class ConnectionFailed(DomainError):
    """The connection test failed; `field` is the setting to fix, `code` the kind of problem."""

    def __init__(self, message: str, *, code: str, field: str) -> None:
        super().__init__(message, field=field)
        self.code = code


@dataclass(frozen=True)
class ImapConnection:
    """How to reach an IMAP mailbox, as an admin types it in: a password, or OAuth credentials
    (exactly one of them)."""

    host: str
    user: str
    password: str | None = field(default=None, repr=False)
    port: int | None = None  # default: 993 for ssl, 143 for starttls
    security: Security = "ssl"
    folders: tuple[str, ...] | None = None  # None: INBOX and the folder marked \\Sent
    oauth: OAuthCredentials | None = field(default=None, repr=False)

    @property
    def resolved_port(self) -> int:
        return self.port or (993 if self.security == "ssl" else 143)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Everything that must never appear in a message."""
        own = (self.password,) if self.password else ()
        return own + (self.oauth.secrets if self.oauth is not None else ())

    def settings(
        self,
        ca_bundle: Path | None,
        *,
        timeout: float = TEST_TIMEOUT,
        tokens: TokenSource | None = None,
    ) -> imap.ImapSettings:
        return imap.ImapSettings(
            host=self.host,
            port=self.resolved_port,
            security=self.security,
            user=self.user,
            password=self.password,
            token_source=tokens,
            folders=list(self.folders) if self.folders is not None else None,
            ca_bundle=ca_bundle,
            timeout=timeout,
        )


@dataclass(frozen=True)
class LinkOptions:
    """Whose mailbox it is and what to keep of it."""

    owner: str
    capture_level: str = "full"
    aliases: Sequence[str] = ()
    visibility: str = "team"
    since: str | None = None  # "2026-01-31" or an age like "90d"


@dataclass(frozen=True)
class LinkedImap:
    link: MailboxLink
    folders: list[str]  # what the test found and the worker will sync


def check_imap(
    connection: ImapConnection,
    ca_bundle: Path | None,
    *,
    authority_host: str = DEFAULT_AUTHORITY_HOST,
) -> list[str]:
    """Sign in and resolve the folders; their names, or ConnectionFailed saying what to fix.
    `authority_host` is Entra ID's (RAPPORT_GRAPH_AUTHORITY_HOST), for Microsoft OAuth links."""
    return _test(connection, ca_bundle, authority_host)[0]


def _test(
    connection: ImapConnection, ca_bundle: Path | None, authority_host: str
) -> tuple[list[str], dict[str, object]]:
    """The folders, and the secret to store (a rotated refresh token is the new one)."""
    _check_host(connection.host)
    if connection.port is not None and not 1 <= connection.port <= 65535:
        raise ConnectionFailed(
            f"port {connection.port} is not a TCP port (1 to 65535)", code="imap_port", field="port"
        )
    _check_printable(connection.user, "user", "the user name")
    if (connection.password is None) == (connection.oauth is None):
        raise ConnectionFailed(
            "give either a password or OAuth credentials (exactly one)",
            code="imap_invalid",
            field="password",
        )
    tokens: TokenSource | None = None
    if connection.oauth is not None:
        try:
            check_credentials(connection.oauth)
        except IdentityError as exc:
            raise ConnectionFailed(
                exc.problem.message, code=exc.problem.code, field=exc.problem.field
            ) from None
        endpoints = IdentityEndpoints(authority_host, ca_bundle, TEST_TIMEOUT)
        tokens = token_source(connection.oauth, endpoints)
    else:
        assert connection.password is not None
        _check_printable(connection.password, "password", "the password")
    for folder in connection.folders or ():
        _check_printable(folder, "folders", f"the folder name {folder!r}")
    try:
        folders = imap.test_connection(connection.settings(ca_bundle, tokens=tokens))
    except SourceError as exc:
        code, setting = failure_kind(exc)
        if connection.oauth is not None and code == "imap_credentials":
            # The provider issued a token and the mail server refused it: the mailbox (or the
            # app's rights on it) is what to fix.
            code, setting = "imap_oauth_refused", "user"
        raise ConnectionFailed(
            _without(exc.message, connection.secrets), code=code, field=setting
        ) from None
    except (ValueError, UnicodeError):
        raise ConnectionFailed(
            f"{connection.host!r} is not a host name or address", code="imap_host", field="host"
        ) from None
    if connection.oauth is None:
        return folders, {"password": connection.password}
    secret: dict[str, object] = connection.oauth.link_secret()
    if isinstance(tokens, RefreshTokenSource):
        secret["refresh_token"] = tokens.refresh_token
    return folders, secret


def link_imap(
    db: Database,
    box: SecretBox,
    connection: ImapConnection,
    options: LinkOptions,
    *,
    ca_bundle: Path | None,
    authority_host: str = DEFAULT_AUTHORITY_HOST,
) -> LinkedImap:
    """Check the options, test the connection, then save the link (password or OAuth secrets
    encrypted); nothing is saved when any of it fails."""
    _check_options(options)
    with db.read_session() as session:
        _refuse_duplicate(session, connection)
    try:
        folders, secret = _test(connection, ca_bundle, authority_host)
    except ConnectionFailed as exc:
        raise ConnectionFailed(
            f"the link was not saved: {exc.message}", code=exc.code, field=exc.field or "host"
        ) from None
    config: dict[str, object] = {
        "host": connection.host,
        "port": connection.resolved_port,
        "security": connection.security,
        "user": connection.user,
        "folders": list(connection.folders) if connection.folders is not None else None,
    }
    if connection.oauth is not None:
        config["oauth"] = connection.oauth.link_settings()
    if options.since:
        config["since"] = options.since
    with db.session() as session:
        link = add_link(
            session,
            box,
            kind="imap",
            owner=options.owner,
            settings=config,
            secret=secret,
            capture_level=options.capture_level,
            aliases=options.aliases,
            visibility=options.visibility,
        )
    return LinkedImap(link, folders)


def failure_kind(exc: SourceError) -> tuple[str, str]:
    """(code, setting to fix) for a failed connection test, from the error's kind and the
    failure underneath it (pure; table-tested)."""
    problem = identity_problem_of(exc)
    if problem is not None:  # no token could be had: the identity provider said why
        return problem.code, problem.field
    cause = _root_cause(exc)
    if isinstance(exc, AuthExpired):
        return "imap_credentials", "password"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return "imap_tls_untrusted", "security"
    if isinstance(cause, ssl.SSLError):
        return "imap_tls", "security"
    if isinstance(cause, socket.gaierror):
        return "imap_host", "host"
    if isinstance(cause, ConnectionRefusedError):
        return "imap_port", "port"
    if isinstance(cause, TimeoutError):
        return "imap_unreachable", "host"
    if isinstance(exc, PermissionDenied):
        if "does not exist" in exc.message:  # sources.imap: "folder 'X' does not exist on ..."
            return "imap_folder", "folders"
        if "STARTTLS" in exc.message or "unencrypted" in exc.message:
            return "imap_tls", "security"
        return "imap_permission", "user"
    if isinstance(exc, Throttled):
        return "imap_throttled", "host"
    return "imap_unavailable", "host"


def _root_cause(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while exc.__cause__ is not None and id(exc.__cause__) not in seen:
        exc = exc.__cause__
        seen.add(id(exc))
    return exc


def _without(message: str, secrets: Sequence[str]) -> str:
    """Servers do not echo passwords, but a message that did must not carry one further."""
    # (Shorter "passwords" are refused by any server and too likely to be a word of the message.)
    for secret in secrets:
        if len(secret) >= 4:
            message = message.replace(secret, "********")
    return message


def _check_host(host: str) -> None:
    text = host.strip()
    if not text or text != host or any(c.isspace() or not c.isprintable() for c in text):
        raise ConnectionFailed(
            f"{host!r} is not a host name or address", code="imap_host", field="host"
        )


def _check_printable(value: str, setting: str, what: str) -> None:
    # A line break would end the IMAP command early and let the rest be read as another one.
    if not value or any(unicodedata.category(c) == "Cc" for c in value):
        raise ConnectionFailed(
            f"{what} is empty or holds a control character (a line break, a tab...)",
            code="imap_invalid",
            field=setting,
        )


def _check_options(options: LinkOptions) -> None:
    owner_address(options.owner)
    for alias in options.aliases:
        owner_address(alias)
    check_level(options.capture_level)
    if options.visibility not in ("team", "private"):
        raise DomainError("visibility must be team or private", field="visibility")
    if options.since:
        try:
            parse_since(options.since)
        except ValueError as exc:
            raise DomainError(str(exc), field="since") from None


def _refuse_duplicate(session: Session, connection: ImapConnection) -> None:
    """Two links on one mailbox would fetch everything twice and fight over its connections."""
    existing = session.scalars(
        select(MailboxLink).where(MailboxLink.kind == "imap", MailboxLink.status != "removed")
    )
    for link in existing:
        same_host = str(link.settings.get("host", "")).casefold() == connection.host.casefold()
        if same_host and link.settings.get("user") == connection.user:
            raise Conflict(
                f"mailbox link {link.id} already captures {connection.user} on {connection.host}; "
                "resume or remove that one instead",
                field="user",
            )


# -- Microsoft Graph ---------------------------------------------------------------------------
#
# A Graph link reads one Microsoft 365 mailbox (a person's, or a shared one such as sales@) with
# an app registration: app-only (a client secret or a certificate; application permissions with
# admin consent, one app for many links) or delegated (a user's refresh token, from the device
# code flow in the terminal or the browser sign-in of the admin page). The test before saving
# proves the whole chain: a token is issued, the mailbox exists and may be read, the folders
# exist, the calendar can be read (unless it is not wanted).


@dataclass(frozen=True)
class GraphConnection:
    """A Microsoft 365 mailbox as an admin links it: its address, the app (tenant, client id)
    and exactly one credential -- a client secret, a certificate, or a user's grant."""

    mailbox: str
    tenant: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    certificate_pem: str | None = field(default=None, repr=False)
    delegated: DelegatedGrant | None = field(default=None, repr=False)
    folders: tuple[str, ...] | None = None  # None: Inbox and Sent Items
    calendar: bool = True

    @property
    def secrets(self) -> tuple[str, ...]:
        own = tuple(s for s in (self.client_secret,) if s)
        return own + (self.delegated.secrets if self.delegated is not None else ())

    def app_only(self) -> MicrosoftApp:
        return graph_app(
            self.tenant,
            self.client_id,
            client_secret=self.client_secret,
            certificate_pem=self.certificate_pem,
        )


@dataclass(frozen=True)
class LinkedGraph:
    link: MailboxLink
    folders: list[str]  # what the test found and the worker will sync
    calendar: bool


def check_graph(
    connection: GraphConnection,
    *,
    api_url: str,
    ca_bundle: Path | None,
    authority_host: str = DEFAULT_AUTHORITY_HOST,
) -> graph_source.MailboxCheck:
    """Sign in and read the mailbox's folders (and calendar); what was found, or
    ConnectionFailed saying what to fix."""
    return _test_graph(connection, api_url, ca_bundle, authority_host)[0]


def _test_graph(
    connection: GraphConnection, api_url: str, ca_bundle: Path | None, authority_host: str
) -> tuple[graph_source.MailboxCheck, dict[str, object]]:
    """What the test found, and the secret to store (a rotated refresh token is the new one)."""
    owner_address(connection.mailbox)
    credentials = [connection.client_secret, connection.certificate_pem, connection.delegated]
    if sum(c is not None for c in credentials) != 1:
        raise ConnectionFailed(
            "give exactly one of a client secret, a certificate or a delegated sign-in",
            code="graph_invalid",
            field="client_secret",
        )
    for folder in connection.folders or ():
        _check_printable(folder, "folders", f"the folder name {folder!r}")
    endpoints = IdentityEndpoints(authority_host, ca_bundle, TEST_TIMEOUT)
    tokens: TokenSource
    try:
        if connection.delegated is not None:
            _check_app_ids(connection.tenant, connection.client_id)
            tokens = EntraRefreshTokenSource(connection.delegated, endpoints)
        else:
            check_credentials(connection.app_only())
            tokens = ClientCredentialsSource(connection.app_only(), endpoints)
    except IdentityError as exc:
        raise ConnectionFailed(
            exc.problem.message, code=exc.problem.code, field=exc.problem.field
        ) from None
    settings = graph_source.GraphSettings(
        mailbox=connection.mailbox.strip().lower(),
        token_source=tokens,
        folders=(),
        api_url=api_url,
        calendar=connection.calendar,
        ca_bundle=ca_bundle,
        timeout=TEST_TIMEOUT,
        attempts=2,  # a person is waiting: one retry, not a long backoff
    )
    try:
        found = graph_source.check_mailbox(settings, connection.folders)
    except SourceError as exc:
        code, setting = graph_failure_kind(exc)
        raise ConnectionFailed(
            _without(exc.message, connection.secrets), code=code, field=setting
        ) from None
    if connection.delegated is None:
        secret: dict[str, object] = (
            {"certificate_pem": connection.certificate_pem}
            if connection.certificate_pem
            else {"client_secret": connection.client_secret}
        )
        return found, secret
    secret = connection.delegated.link_secret()
    assert isinstance(tokens, RefreshTokenSource)
    secret["refresh_token"] = tokens.refresh_token  # Entra rotated it during the test
    return found, secret


def _check_app_ids(tenant: str, client_id: str) -> None:
    """The checks `check_credentials` makes of a tenant and client id, for a delegated link
    (which has no secret of the app's to check)."""
    try:
        check_credentials(graph_app(tenant, client_id, client_secret="-"))  # noqa: S106 - ids only
    except IdentityError as exc:
        if exc.problem.field in ("tenant", "client_id"):
            raise


def graph_failure_kind(exc: SourceError) -> tuple[str, str]:
    """(code, setting to fix) for a failed Graph link test (pure; table-tested)."""
    problem = identity_problem_of(exc)
    if problem is not None:  # no token could be had: Entra ID said why
        return problem.code, problem.field
    message = exc.message
    if isinstance(exc, PermissionDenied):
        if "application access policy" in message:
            return "graph_policy", "mailbox"
        if "no mailbox" in message or "Exchange Online mailbox" in message:
            return "graph_mailbox", "mailbox"
        if message.startswith("folder "):
            return "graph_folder", "folders"
        if "Mail.Read" in message:
            return "graph_consent", "client_id"
        return "graph_refused", "client_id"
    if isinstance(exc, AuthExpired):
        return "graph_token_refused", "client_id"
    if isinstance(exc, Throttled):
        return "graph_throttled", "host"
    if "TLS" in message or "RAPPORT_GRAPH_API_URL" in message:
        return "graph_unreachable", "host"
    return "graph_unavailable", "host"


def link_graph(
    db: Database,
    box: SecretBox,
    connection: GraphConnection,
    options: LinkOptions,
    *,
    api_url: str,
    ca_bundle: Path | None,
    authority_host: str = DEFAULT_AUTHORITY_HOST,
) -> LinkedGraph:
    """Check the options, test the link, then save it (its credential encrypted); nothing is
    saved when any of it fails. The owner is the mailbox (a shared mailbox's address counts as
    the owner for direction)."""
    _check_options(options)
    mailbox = owner_address(connection.mailbox)
    with db.read_session() as session:
        for link in session.scalars(
            select(MailboxLink).where(MailboxLink.kind == "graph", MailboxLink.status != "removed")
        ):
            if str(link.settings.get("mailbox", "")).lower() == mailbox:
                raise Conflict(
                    f"mailbox link {link.id} already captures {mailbox} through Microsoft Graph; "
                    "resume or remove that one instead",
                    field="owner",
                )
    try:
        found, secret = _test_graph(connection, api_url, ca_bundle, authority_host)
    except ConnectionFailed as exc:
        raise ConnectionFailed(
            f"the link was not saved: {exc.message}", code=exc.code, field=exc.field or "host"
        ) from None
    config: dict[str, object] = {
        "mailbox": mailbox,
        "tenant": connection.tenant,
        "client_id": connection.client_id,
        "folders": [{"name": f.name, "id": f.id} for f in found.folders],
        "calendar": found.calendar,
    }
    if connection.delegated is not None:
        config.update(connection.delegated.link_settings())
    elif connection.certificate_pem:
        config["client_auth"] = "certificate"
        config["certificate_thumbprint"] = certificate_thumbprint(connection.certificate_pem)
    else:
        config["client_auth"] = "secret"
    if options.since:
        config["since"] = options.since
    with db.session() as session:
        link = add_link(
            session,
            box,
            kind="graph",
            owner=options.owner,
            settings=config,
            secret=secret,
            capture_level=options.capture_level,
            aliases=options.aliases,
            visibility=options.visibility,
        )
    return LinkedGraph(link, [f.name for f in found.folders], found.calendar)


# -- Microsoft Graph: the browser sign-in from the admin page ----------------------------------
#
# Delegated access for a user without admin rights, where the device code is blocked: the admin
# page asks for an authorize URL (`begin_graph_sign_in`), the browser signs in at Entra ID and
# comes back to the redirect URI with a code and the state (`finish_graph_sign_in`), which
# redeems the code (PKCE), tests the mailbox like `link_graph` and saves the link -- or, for a
# re-connect, gives an existing link the new grant and resumes it.
#
# Between the two, the pending sign-in (msal's flow: state, PKCE verifier, nonce; what to link)
# waits in the settings table, encrypted with the app's SecretBox, under a key derived from the
# state, for SIGN_IN_LIFETIME at most. The state is the callback's only credential (the browser
# carries no token): 256 random bits, used once (the row is deleted as it is read), never
# stored in the clear.

SIGN_IN_LIFETIME = timedelta(minutes=10)
SIGN_IN_PREFIX = "graph.signin."


@dataclass(frozen=True)
class GraphSignInRequest:
    """What the admin page sends to start a browser sign-in: a new link (owner, tenant, client
    id and the link's options), or a re-connect (`link_id`; tenant and client id default to the
    link's, the rest is the link's own)."""

    owner: str | None = None
    tenant: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)  # None: a public client
    folders: tuple[str, ...] | None = None
    calendar: bool = True
    capture_level: str = "full"
    aliases: tuple[str, ...] = ()
    visibility: str = "team"
    since: str | None = None
    link_id: int | None = None


@dataclass(frozen=True)
class PendingSignIn:
    authorize_url: str
    state: str
    redirect_uri: str
    expires_at: datetime


@dataclass(frozen=True)
class GraphSignedIn:
    """What the callback did: the link saved (or re-connected), who signed in."""

    link: MailboxLink
    folders: list[str]
    calendar: bool
    signed_in_as: str
    reconnected: bool


def _sign_in_key(state: str) -> str:
    return SIGN_IN_PREFIX + hashlib.sha256(state.encode("utf-8", "replace")).hexdigest()[:64]


def begin_graph_sign_in(
    db: Database,
    box: SecretBox,
    request: GraphSignInRequest,
    *,
    redirect_uri: str,
    authority_host: str = DEFAULT_AUTHORITY_HOST,
    ca_bundle: Path | None = None,
    actor_id: int | None = None,
    now: datetime | None = None,
) -> PendingSignIn:
    """Check what can be checked before the user is sent to Microsoft (the options, the ids, a
    duplicate link, the tenant -- Entra's OpenID configuration is fetched), then keep the flow
    and return the URL to send the browser to."""
    record = _sign_in_record(db, request)
    endpoints = IdentityEndpoints(authority_host, ca_bundle, TEST_TIMEOUT)
    state = secrets.token_urlsafe(32)
    try:
        sign_in = start_browser_sign_in(
            record["tenant"],
            record["client_id"],
            endpoints,
            redirect_uri=redirect_uri,
            client_secret=request.client_secret,
            state=state,
        )
    except SourceError as exc:
        code, setting = graph_failure_kind(exc)
        raise ConnectionFailed(exc.message, code=code, field=setting) from None
    now = now or utcnow()
    expires = now + SIGN_IN_LIFETIME
    record.update(flow=sign_in.flow, client_secret=request.client_secret, actor_id=actor_id)
    with db.session() as session:
        _forget_expired_sign_ins(session, now)
        set_setting(
            session,
            _sign_in_key(sign_in.state),
            {
                "sealed": box.encrypt_json(record).decode("ascii"),
                "expires_at": expires.isoformat(),
            },
        )
    return PendingSignIn(sign_in.authorize_url, sign_in.state, redirect_uri, expires)


def _sign_in_record(db: Database, request: GraphSignInRequest) -> dict[str, Any]:
    """The pending sign-in's plan (checked): whose mailbox, which app, what to link."""
    for folder in request.folders or ():
        _check_printable(folder, "folders", f"the folder name {folder!r}")
    if request.link_id is not None:
        with db.read_session() as session:
            link = get_link(session, request.link_id)
            kind, config = link.kind, dict(link.settings)
        if kind != "graph":
            raise DomainError(
                f"mailbox link {request.link_id} is a {kind} link; only Microsoft Graph links "
                "re-connect with a Microsoft sign-in",
                field="link_id",
            )
        mailbox = str(config.get("mailbox", ""))
        if request.owner and owner_address(request.owner) != mailbox:
            raise DomainError(
                f"link {request.link_id} captures {mailbox}, not {request.owner}; leave owner "
                "out to re-connect it",
                field="owner",
            )
        tenant = request.tenant or str(config.get("tenant", ""))
        client_id = request.client_id or str(config.get("client_id", ""))
        plan: dict[str, Any] = {"link_id": request.link_id, "mailbox": mailbox}
    else:
        if not (request.owner and request.tenant and request.client_id):
            raise DomainError(
                "give owner, tenant and client_id (or link_id to re-connect a link)",
                field="owner" if not request.owner else "tenant",
            )
        options = LinkOptions(
            owner=request.owner,
            capture_level=request.capture_level,
            aliases=request.aliases,
            visibility=request.visibility,
            since=request.since,
        )
        _check_options(options)
        mailbox = owner_address(request.owner)
        with db.read_session() as session:
            _refuse_duplicate_graph(session, mailbox)
        tenant, client_id = request.tenant, request.client_id
        plan = {
            "link_id": None,
            "mailbox": mailbox,
            "folders": list(request.folders) if request.folders is not None else None,
            "calendar": request.calendar,
            "options": {
                "capture_level": request.capture_level,
                "aliases": list(request.aliases),
                "visibility": request.visibility,
                "since": request.since,
            },
        }
    try:
        _check_app_ids(tenant, client_id)
    except IdentityError as exc:
        raise ConnectionFailed(
            exc.problem.message, code=exc.problem.code, field=exc.problem.field
        ) from None
    return {**plan, "tenant": tenant.strip(), "client_id": client_id.strip()}


def _refuse_duplicate_graph(session: Session, mailbox: str) -> None:
    for link in session.scalars(
        select(MailboxLink).where(MailboxLink.kind == "graph", MailboxLink.status != "removed")
    ):
        if str(link.settings.get("mailbox", "")).lower() == mailbox:
            raise Conflict(
                f"mailbox link {link.id} already captures {mailbox} through Microsoft Graph; "
                "re-connect, resume or remove that one instead",
                field="owner",
            )


def _forget_expired_sign_ins(session: Session, now: datetime) -> None:
    """Sign-ins nobody finished: their rows go (a handful at most, so a prefix scan)."""
    for row in session.scalars(select(Setting).where(Setting.key.startswith(SIGN_IN_PREFIX))):
        value = row.value if isinstance(row.value, dict) else {}
        try:
            expired = datetime.fromisoformat(str(value.get("expires_at"))) <= now
        except ValueError:
            expired = True
        if expired:
            session.delete(row)


def _take_sign_in(db: Database, box: SecretBox, state: str, now: datetime) -> dict[str, Any]:
    """The pending sign-in of this state, removed as it is read (a replayed state finds
    nothing); ConnectionFailed when there is none or it expired."""
    unknown = ConnectionFailed(
        "this sign-in is unknown, already used or expired (sign-ins last "
        f"{int(SIGN_IN_LIFETIME.total_seconds() // 60)} minutes): start it again from the admin "
        "page",
        code="signin_state",
        field="state",
    )
    if not state or len(state) > 200:
        raise unknown
    with db.session() as session:
        value = session.scalar(
            delete(Setting).where(Setting.key == _sign_in_key(state)).returning(Setting.value)
        )
    if not isinstance(value, dict):
        raise unknown
    try:
        expired = datetime.fromisoformat(str(value.get("expires_at"))) <= now
        record = box.decrypt_json(str(value["sealed"]).encode("ascii"))
    except (KeyError, ValueError, SecretError):
        raise unknown from None
    if expired or not isinstance(record, dict) or record.get("flow", {}).get("state") != state:
        raise unknown
    return record


def finish_graph_sign_in(
    db: Database,
    box: SecretBox,
    state: str,
    answer: Mapping[str, str],
    *,
    api_url: str,
    ca_bundle: Path | None,
    authority_host: str = DEFAULT_AUTHORITY_HOST,
    now: datetime | None = None,
) -> GraphSignedIn:
    """The browser is back from Entra ID (`answer`: its query, code and state or error): redeem
    the code, test the mailbox with the user's grant, and save the link (or give the link being
    re-connected its new grant and resume it). ConnectionFailed says what went wrong and what
    to fix; nothing is saved then."""
    record = _take_sign_in(db, box, state, now or utcnow())
    endpoints = IdentityEndpoints(authority_host, ca_bundle, TEST_TIMEOUT)
    try:
        grant = finish_browser_sign_in(
            record["tenant"],
            record["client_id"],
            endpoints,
            record["flow"],
            answer,
            client_secret=record.get("client_secret"),
        )
    except SourceError as exc:
        code, setting = graph_failure_kind(exc)
        raise ConnectionFailed(
            f"the sign-in failed: {exc.message}", code=code, field=setting
        ) from None
    if record.get("link_id") is not None:
        return _reconnect_graph(
            db,
            box,
            int(record["link_id"]),
            grant,
            api_url=api_url,
            ca_bundle=ca_bundle,
            authority_host=authority_host,
            actor_id=record.get("actor_id"),
        )
    options = record["options"]
    folders = record.get("folders")
    linked = link_graph(
        db,
        box,
        GraphConnection(
            mailbox=record["mailbox"],
            tenant=record["tenant"],
            client_id=record["client_id"],
            delegated=grant,
            folders=tuple(folders) if folders is not None else None,
            calendar=bool(record.get("calendar", True)),
        ),
        LinkOptions(
            owner=record["mailbox"],
            capture_level=options["capture_level"],
            aliases=tuple(options["aliases"]),
            visibility=options["visibility"],
            since=options["since"],
        ),
        api_url=api_url,
        ca_bundle=ca_bundle,
        authority_host=authority_host,
    )
    with db.session() as session:
        audit(
            session,
            record.get("actor_id"),
            "mailbox.linked",
            "mailbox_link",
            linked.link.id,
            kind="graph",
            how="browser_sign_in",
        )
    return GraphSignedIn(linked.link, linked.folders, linked.calendar, grant.user, False)


def _reconnect_graph(
    db: Database,
    box: SecretBox,
    link_id: int,
    grant: DelegatedGrant,
    *,
    api_url: str,
    ca_bundle: Path | None,
    authority_host: str,
    actor_id: int | None,
) -> GraphSignedIn:
    """Test the link's mailbox and folders with the new grant, then store it (encrypted) in
    place of the old credential and resume the link if it was waiting for this."""
    with db.read_session() as session:
        link = get_link(session, link_id)
        config = dict(link.settings)
    folders = tuple(str(f["name"]) for f in config.get("folders") or ())
    try:
        found, secret = _test_graph(
            GraphConnection(
                mailbox=str(config["mailbox"]),
                tenant=grant.tenant,
                client_id=grant.client_id,
                delegated=grant,
                folders=folders or None,
                calendar=bool(config.get("calendar", True)),
            ),
            api_url,
            ca_bundle,
            authority_host,
        )
    except ConnectionFailed as exc:
        raise ConnectionFailed(
            f"link {link_id} was not changed: {exc.message}",
            code=exc.code,
            field=exc.field or "host",
        ) from None
    with db.session() as session:
        locked = session.scalar(
            select(MailboxLink).where(MailboxLink.id == link_id).with_for_update()
        )
        if locked is None or locked.status == "removed":
            raise NotFound(f"mailbox link {link_id} was removed during the sign-in")
        settings = {k: v for k, v in locked.settings.items() if k != "certificate_thumbprint"}
        settings.update(grant.link_settings())
        settings["folders"] = [{"name": f.name, "id": f.id} for f in found.folders]
        settings["calendar"] = found.calendar
        locked.settings = settings
        locked.secret = box.encrypt_json(secret)
        if locked.status in ("needs_attention", "error"):
            resume_link(session, link_id)
        audit(session, actor_id, "mailbox.reconnected", "mailbox_link", link_id, kind="graph")
        session.flush()
        session.expunge(locked)
    return GraphSignedIn(locked, [f.name for f in found.folders], found.calendar, grant.user, True)


# -- Exchange Web Services (on-premises Exchange) ---------------------------------------------
#
# An EWS link reads one mailbox on an on-premises Exchange server with a service account: by
# impersonation (the account holds the ApplicationImpersonation role; one account for many
# links) or as a delegate (FullAccess on that mailbox). With hybrid modern authentication
# (Exchange Server 2019 CU13 or later, Subscription Edition) an Entra ID app signs in instead,
# app-only (client credentials; the full_access_as_app permission), and opens the mailbox by
# impersonation. Without a server, Autodiscover finds the EWS URL from the mailbox's address.
# The test before saving proves the whole chain: the server answers over trusted TLS, the
# account (or the app's token) signs in, it may open the mailbox, the folders exist, the
# calendar can be read (unless it is not wanted); the server's version is kept with the link
# so syncs need not probe it.

EwsAuth = Literal["ntlm", "basic", "oauth"]
EwsAccess = Literal["impersonation", "delegate"]


@dataclass(frozen=True)
class EwsConnection:
    """An on-premises Exchange mailbox as an admin links it: the EWS URL (or just the server's
    host name; None or empty: found by Autodiscover), the mailbox's address, and who opens it
    -- a service account (`user`, `password`) or, with `auth` "oauth", an Entra ID app
    (`tenant`, `client_id`, `client_secret`; `user` and `password` unused)."""

    server: str | None
    mailbox: str
    user: str
    password: str = field(repr=False)
    auth: EwsAuth = "ntlm"
    access: EwsAccess = "impersonation"
    folders: tuple[str, ...] | None = None  # None: Inbox and Sent Items
    calendar: bool = True
    tenant: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """https://HOST/EWS/Exchange.asmx, from a URL or a bare host name ("" when none was
        given)."""
        text = (self.server or "").strip()
        if text and "://" not in text:
            return f"https://{text.strip('/')}/EWS/Exchange.asmx"
        return text

    @property
    def secrets(self) -> tuple[str, ...]:
        """Everything that must never appear in a message."""
        return tuple(s for s in (self.password, self.client_secret) if s)

    def app(self, server: str) -> MicrosoftApp:
        return ews_source.ews_app(
            (self.tenant or "").strip(), (self.client_id or "").strip(), self.client_secret, server
        )


@dataclass(frozen=True)
class LinkedEws:
    link: MailboxLink
    folders: list[str]  # what the test found and the worker will sync
    calendar: bool
    server: str = ""  # the EWS URL (found by Autodiscover when none was given)


def check_ews(
    connection: EwsConnection,
    *,
    ca_bundle: Path | None,
    authority_host: str = DEFAULT_AUTHORITY_HOST,
    autodiscover_urls: Sequence[str] = DEFAULT_AUTODISCOVER,
) -> ews_source.MailboxCheck:
    """Sign in and read the mailbox's folders (and calendar); what was found (with the EWS
    URL used), or ConnectionFailed saying what to fix."""
    return _test_ews(connection, ca_bundle, authority_host, autodiscover_urls)


def _test_ews(
    connection: EwsConnection,
    ca_bundle: Path | None,
    authority_host: str = DEFAULT_AUTHORITY_HOST,
    autodiscover_urls: Sequence[str] = DEFAULT_AUTODISCOVER,
) -> ews_source.MailboxCheck:
    mailbox = owner_address(connection.mailbox)
    if connection.auth not in ews_source.AUTH_TYPES:
        raise ConnectionFailed(
            "auth must be ntlm, basic or oauth", code="ews_invalid", field="auth"
        )
    if connection.access not in ("impersonation", "delegate"):
        raise ConnectionFailed(
            "access must be impersonation or delegate", code="ews_invalid", field="access"
        )
    endpoints = IdentityEndpoints(authority_host, ca_bundle, TEST_TIMEOUT)
    oauth = connection.auth == "oauth"
    if oauth:
        if connection.access != "impersonation":
            raise ConnectionFailed(
                "an app signing in with OAuth has no mailbox of its own: it opens mailboxes by "
                "impersonation (full_access_as_app), not as a delegate",
                code="ews_invalid",
                field="access",
            )
        try:
            check_credentials(connection.app("https://exchange.invalid/"))
        except IdentityError as exc:
            raise ConnectionFailed(
                exc.problem.message, code=exc.problem.code, field=exc.problem.field
            ) from None
    else:
        _check_printable(connection.user, "user", "the user name")
        _check_printable(connection.password, "password", "the password")
    for folder in connection.folders or ():
        _check_printable(folder, "folders", f"the folder name {folder!r}")
    url = connection.url or _autodiscover(
        connection, mailbox, endpoints, ca_bundle, autodiscover_urls
    )
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or any(c.isspace() for c in url):
        raise ConnectionFailed(
            f"{url!r} is not an EWS URL: give https://HOST/EWS/Exchange.asmx (or the server's "
            "host name); Rapport talks to Exchange over TLS only",
            code="ews_url",
            field="server",
        )
    settings = ews_source.EwsSettings(
        server=url,
        mailbox=mailbox,
        user="" if oauth else connection.user,
        password="" if oauth else connection.password,
        auth=connection.auth,
        access=connection.access,
        calendar=connection.calendar,
        ca_bundle=ca_bundle,
        timeout=TEST_TIMEOUT,
        attempts=2,  # a person is waiting: one retry, not a long backoff
        token_source=ClientCredentialsSource(connection.app(url), endpoints) if oauth else None,
    )
    try:
        return ews_source.check_mailbox(settings, connection.folders)
    except SourceError as exc:
        problem = identity_problem_of(exc)
        if problem is None:
            code, setting = ews_failure_kind(exc)
            message = exc.message
        elif problem.code == "oauth_resource":  # AADSTS500011: the host is no SPN
            code, setting = "ews_oauth_resource", "server"
            message = (
                f"Entra ID issues no token for {ews_source.oauth_scope(url)}: add "
                f"{urlsplit(url).scheme}://{parts.netloc} as a service principal name of "
                "Office 365 Exchange Online (hybrid modern authentication: the Hybrid "
                f"Configuration Wizard, or docs/ews.md) ({problem.message})"
            )
        else:
            code, setting, message = problem.code, problem.field, problem.message
        raise ConnectionFailed(
            _without(message, connection.secrets), code=code, field=setting
        ) from None


def _autodiscover(
    connection: EwsConnection,
    mailbox: str,
    endpoints: IdentityEndpoints,
    ca_bundle: Path | None,
    templates: Sequence[str],
) -> str:
    """The EWS URL Autodiscover gives for the mailbox, asked as the link signs in."""

    def auth(url: str) -> requests.auth.AuthBase:
        if connection.auth == "oauth":
            source = ClientCredentialsSource(connection.app(url), endpoints)
            return BearerToken(source.token())
        if connection.auth == "basic":
            return requests.auth.HTTPBasicAuth(connection.user, connection.password)
        return HttpNtlmAuth(connection.user, connection.password)

    try:
        return discover(
            mailbox, templates=templates, auth=auth, ca_bundle=ca_bundle, timeout=TEST_TIMEOUT
        ).ews_url
    except AutodiscoverFailed as exc:
        refused = exc.refused
        raise ConnectionFailed(
            _without(str(exc), connection.secrets),
            code="ews_credentials" if refused else "ews_autodiscover",
            field=("client_secret" if connection.auth == "oauth" else "password")
            if refused
            else "server",
        ) from None


def ews_failure_kind(exc: SourceError) -> tuple[str, str]:
    """(code, setting to fix) for a failed EWS link test (pure; table-tested)."""
    message = exc.message
    if isinstance(exc, AuthExpired):
        if "OAuth token" in message:
            return "ews_oauth_refused", "client_id"
        return "ews_credentials", "password"
    if isinstance(exc, PermissionDenied):
        if "impersonate" in message:
            return "ews_impersonation", "user"
        if "no mailbox" in message:
            return "ews_mailbox", "owner"
        if message.startswith("folder "):
            return "ews_folder", "folders"
        if "redirected" in message:
            return "ews_url", "server"
        return "ews_access", "user"
    if isinstance(exc, Throttled):
        return "ews_throttled", "server"
    if "RAPPORT_CA_BUNDLE" in message:
        return "ews_tls_untrusted", "server"
    if "cannot reach" in message or "did not answer" in message or "TLS" in message:
        return "ews_unreachable", "server"
    if "no EWS answer" in message:
        return "ews_url", "server"
    return "ews_unavailable", "server"


def _ews_duplicate(db: Database, url: str, mailbox: str) -> None:
    with db.read_session() as session:
        for link in session.scalars(
            select(MailboxLink).where(MailboxLink.kind == "ews", MailboxLink.status != "removed")
        ):
            same = str(link.settings.get("server", "")).casefold() == url.casefold()
            if same and str(link.settings.get("mailbox", "")).lower() == mailbox:
                raise Conflict(
                    f"mailbox link {link.id} already captures {mailbox} through {url}; resume "
                    "or remove that one instead",
                    field="owner",
                )


def link_ews(
    db: Database,
    box: SecretBox,
    connection: EwsConnection,
    options: LinkOptions,
    *,
    ca_bundle: Path | None,
    authority_host: str = DEFAULT_AUTHORITY_HOST,
    autodiscover_urls: Sequence[str] = DEFAULT_AUTODISCOVER,
) -> LinkedEws:
    """Check the options, test the link (finding the EWS URL by Autodiscover when none was
    given), then save it (the password or client secret encrypted); nothing is saved when any
    of it fails. The owner is the mailbox (a shared mailbox's address counts as the owner for
    direction)."""
    _check_options(options)
    mailbox = owner_address(connection.mailbox)
    if connection.url:
        _ews_duplicate(db, connection.url, mailbox)
    try:
        found = _test_ews(connection, ca_bundle, authority_host, autodiscover_urls)
    except ConnectionFailed as exc:
        raise ConnectionFailed(
            f"the link was not saved: {exc.message}", code=exc.code, field=exc.field or "server"
        ) from None
    url = found.server
    if not connection.url:
        _ews_duplicate(db, url, mailbox)
    oauth = connection.auth == "oauth"
    config: dict[str, object] = {
        "server": url,
        "autodiscovered": not connection.url,
        "mailbox": mailbox,
        "user": "" if oauth else connection.user,
        "auth": connection.auth,
        "access": connection.access,
        "folders": [{"name": f.name, "id": f.id} for f in found.folders],
        "calendar_id": found.calendar_id,
        "server_version": list(found.version),
        "api_version": found.api_version,
    }
    secret: dict[str, object] = {"password": connection.password}
    if oauth:
        config.update(tenant=(connection.tenant or "").strip(), client_id=connection.client_id)
        secret = {"client_secret": connection.client_secret}
    if options.since:
        config["since"] = options.since
    with db.session() as session:
        link = add_link(
            session,
            box,
            kind="ews",
            owner=options.owner,
            settings=config,
            secret=secret,
            capture_level=options.capture_level,
            aliases=options.aliases,
            visibility=options.visibility,
        )
    return LinkedEws(link, [f.name for f in found.folders], found.calendar_id is not None, url)


# -- a new password ------------------------------------------------------------------------------


def replace_password(
    db: Database,
    box: SecretBox,
    link_id: int,
    password: str,
    *,
    ca_bundle: Path | None,
    actor_id: int | None = None,
) -> MailboxLink:
    """The mailbox's password changed: test the link with the new one, store it (encrypted) and
    resume the link when it was waiting for this (needs attention or failing); nothing changes
    when the test fails. For IMAP and EWS links that sign in with a password; an OAuth link gets
    its new secret by being linked again."""
    with db.read_session() as session:
        link = get_link(session, link_id)
        kind, config = link.kind, dict(link.settings)
    if kind == "imap" and not config.get("oauth"):
        connection = ImapConnection(
            host=str(config["host"]),
            user=str(config["user"]),
            password=password,
            port=int(config["port"]),
            security=config.get("security", "ssl"),
            folders=tuple(config["folders"]) if config.get("folders") else None,
        )
        _, secret = _test(connection, ca_bundle, DEFAULT_AUTHORITY_HOST)
    elif kind == "ews" and config.get("auth") != "oauth":
        folders = tuple(str(f["name"]) for f in config.get("folders") or ())
        _test_ews(
            EwsConnection(
                server=str(config["server"]),
                mailbox=str(config["mailbox"]),
                user=str(config["user"]),
                password=password,
                auth=config.get("auth", "ntlm"),
                access=config.get("access", "impersonation"),
                folders=folders or None,
                calendar=config.get("calendar_id") is not None,
            ),
            ca_bundle,
        )
        secret = {"password": password}
    else:
        how = "OAuth" if kind in ("imap", "ews") else kind
        raise DomainError(
            f"mailbox link {link_id} signs in with {how}, not a password: link it again with the "
            "new credentials (and remove this one; its history stays)",
            field="password",
        )
    with db.session() as session:
        link = get_link(session, link_id)
        link.secret = box.encrypt_json(secret)
        if link.status in ("needs_attention", "error"):
            resume_link(session, link_id)
        audit(session, actor_id, "mailbox.password_replaced", "mailbox_link", link_id)
        session.flush()
        session.expunge(link)
    return link


# -- sync now --------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueuedSync:
    link_id: int
    job_id: int | None
    running: bool  # a worker is syncing the link right now; nothing more was queued

    @property
    def message(self) -> str:
        if self.running:
            return (
                f"link {self.link_id} is being synced right now; its new mail shows up as that "
                "sync goes"
            )
        return (
            f"link {self.link_id} is queued: the next free `rapport worker` syncs it in a few "
            "seconds (this answer does not wait for it)"
        )


def queue_sync(session: Session, link_id: int) -> QueuedSync:
    """Make the link due now and put its sync job at the front of the queue. A sync can take
    minutes, so it runs in a worker, never in the caller; the link's unique job key keeps it to
    one pending sync however often this is asked."""
    link = get_link(session, link_id)
    if link.kind not in SOURCES:
        how = (
            "mail sent to it is captured as it arrives"
            if link.kind == "drop"
            else ("it is filled by `rapport import`")
        )
        raise Conflict(f"a {link.kind} link has nothing to sync: {how}")
    if link.status not in ("active", "error"):
        raise Conflict(
            f"link {link.id} is {link.status.replace('_', ' ')}; resume it (which also syncs it "
            "at once)"
        )
    now = utcnow()
    link.next_run_at = now
    key = f"sync:{link.id}"
    enqueue(session, "sync_link", {"link_id": link.id}, unique_key=key)
    session.execute(
        update(Job).where(Job.unique_key == key, Job.status == "queued").values(run_after=now)
    )
    job = session.scalar(select(Job).where(Job.unique_key == key))
    if job is None:  # a worker finished it a moment ago; the link being due queues the next
        return QueuedSync(link.id, None, running=False)
    return QueuedSync(link.id, job.id, running=job.status == "running")
