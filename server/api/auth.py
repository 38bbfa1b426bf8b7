"""Every API call is authenticated: a Bearer token, either a Rapport API token (`rpt_...`) or, when
the add-in's app registration is configured, an Entra ID access token from the task pane. The
anonymous endpoints are listed here (or marked `@public` beside their view) and nowhere else.

After sign-in, three checks run for every request, in one place so no view can forget them:
a `read` token may only read; every token (every Entra user) has a request budget per minute;
and admin-only views say so with `@admin_only`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any, Literal, TypeVar, cast

import requests
from flask import Flask, Response, current_app, g, request
from sqlalchemy.exc import OperationalError

from server.api import security
from server.api.errors import error_response
from server.app_context import rapport
from server.config import Settings
from server.crm.entra import (
    EntraConfig,
    EntraTokenRejected,
    FetchError,
    FetchJson,
    SigningKeys,
    SigningKeysUnavailable,
    TokenValidator,
)
from server.crm.errors import Forbidden, NotFound
from server.crm.users import (
    TOKEN_PREFIX,
    authenticate_api_token,
    check_active,
    find_entra_user,
    link_entra_user,
    record_token_use,
)
from server.crm.viewer import Viewer
from server.models import utcnow
from server.tls import ExtraCAAdapter

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Endpoints anyone may call: health checks and the API's own description.
PUBLIC_ENDPOINTS = frozenset({"health.healthz", "static"})
PUBLIC_PREFIXES = ("openapi_",)
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FETCH_TIMEOUT = (5.0, 10.0)  # connect, read (seconds)
MAX_KEYS_DOCUMENT = 1024 * 1024


@dataclass(frozen=True)
class Credential:
    """How the request signed in: which kind of token, what it may do, what its budget is."""

    method: Literal["api_token", "entra"]
    scopes: frozenset[str]
    token_id: int | None = None

    @property
    def read_only(self) -> bool:
        return "api" not in self.scopes

    def rate_bucket(self, viewer: Viewer) -> str:
        # Entra tokens are renewed hourly, so their budget is the user's, not the token's.
        return f"token:{self.token_id}" if self.token_id is not None else f"user:{viewer.id}"


def public(view: F) -> F:
    """Mark a view as callable without a token (sign-in, the lead form...)."""
    view._rapport_public = True  # type: ignore[attr-defined]
    return view


def is_public(app: Flask, endpoint: str | None) -> bool:
    if endpoint is None:
        return True  # 404/405: nothing to protect, the error handler answers
    if endpoint in PUBLIC_ENDPOINTS or endpoint.startswith(PUBLIC_PREFIXES):
        return True
    view = app.view_functions.get(endpoint)
    return bool(getattr(view, "_rapport_public", False))


def _unauthorized(message: str, *, invalid_token: bool = True) -> Response:
    response = error_response(401, "unauthorized", message)
    challenge = 'Bearer realm="rapport"'
    if invalid_token:
        challenge += ', error="invalid_token"'
    response.headers["WWW-Authenticate"] = challenge
    return response


def _looks_like_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


def authenticate() -> Response | None:
    if is_public(current_app, request.endpoint):
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized(
            "sign in first: send 'Authorization: Bearer <token>'", invalid_token=False
        )
    token = token.strip()
    if token.startswith(TOKEN_PREFIX):
        refused = _sign_in_with_api_token(token)
    elif _looks_like_jwt(token):
        refused = _sign_in_with_entra(token)
    else:
        refused = _unauthorized("this is neither a Rapport API token nor an Entra ID access token")
    if refused is not None:
        return refused
    credential = current_credential()
    if credential.read_only and request.method not in READ_METHODS:
        raise Forbidden(
            "this token may only read (scope 'read'); use a token with scope 'api' to make changes"
        )
    return security.check_rate(
        credential.rate_bucket(current_viewer()),
        rapport(current_app).settings.rate_limit_per_minute,
    )


def _sign_in_with_api_token(token: str) -> Response | None:
    db = rapport(current_app).db
    now = utcnow()
    with db.connection() as connection:
        try:
            found = authenticate_api_token(connection, token, now=now)
        except NotFound as exc:
            return _unauthorized(exc.message)
        g.viewer = found.viewer
        g.credential = Credential("api_token", found.scopes, found.token_id)
    if found.use_is_news(now):
        try:
            with db.session() as session:
                record_token_use(session, found.token_id, now)
        except OperationalError as exc:  # bookkeeping only: never fail the request over it
            log.warning("could not record an API token's use: %s", exc)
    return None


def _sign_in_with_entra(token: str) -> Response | None:
    validator: TokenValidator | None = current_app.extensions.get("rapport.entra")
    if validator is None:
        return _unauthorized(
            "Entra ID sign-in is not configured on this server (RAPPORT_ENTRA_TENANT_ID and "
            "RAPPORT_ENTRA_CLIENT_ID); use a Rapport API token"
        )
    try:
        identity = validator.validate(token)
    except EntraTokenRejected as exc:
        return _unauthorized(exc.message)
    except SigningKeysUnavailable as exc:
        log.error("entra sign-in unavailable: %s", exc.message)
        return error_response(503, "sign_in_unavailable", exc.message)
    db = rapport(current_app).db
    with db.reads() as session:
        user = find_entra_user(session, identity.tenant_id, identity.object_id)
        viewer = Viewer.of(user) if user is not None else None
        if user is not None:
            check_active(user)
    if viewer is None:
        # First sign-in of this Microsoft account: link it (a write, so its own transaction).
        with db.session() as session:
            user = link_entra_user(session, identity)
            check_active(user)
            viewer = Viewer.of(user)
    g.viewer = viewer
    g.credential = Credential("entra", frozenset({"api"}))
    return None


def current_viewer() -> Viewer:
    return cast(Viewer, g.viewer)


def current_credential() -> Credential:
    return cast(Credential, g.credential)


def admin_only(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_viewer().is_admin:
            raise Forbidden("this needs an admin")
        return view(*args, **kwargs)

    return cast(F, wrapper)


# -- Entra ID signing keys over HTTPS ------------------------------------------------------------


def https_json_fetcher(settings: Settings) -> FetchJson:
    """GET a JSON object over verified HTTPS, ignoring the process environment.

    `trust_env=False`: REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (which would silently replace the
    trusted CAs) and proxy variables do not apply; RAPPORT_CA_BUNDLE is the only knob. Keys are
    fetched about once a day, so each fetch has its own session, closed at once (no idle
    connections left to the garbage collector).
    """
    adapter = ExtraCAAdapter(settings.ca_bundle)

    def fetch(url: str) -> Mapping[str, Any]:
        if not url.startswith("https://"):
            raise FetchError(f"{url} is not an https URL")
        try:
            with requests.Session() as session:
                session.trust_env = False
                session.mount("https://", adapter)
                with session.get(
                    url, timeout=FETCH_TIMEOUT, allow_redirects=False, stream=True, verify=True
                ) as response:
                    if response.status_code != 200:
                        raise FetchError(f"{url} answered HTTP {response.status_code}")
                    body = response.raw.read(MAX_KEYS_DOCUMENT + 1, decode_content=True)
        except requests.RequestException as exc:
            raise FetchError(f"{url}: {exc}") from exc
        if len(body) > MAX_KEYS_DOCUMENT:
            raise FetchError(f"{url} sent more than {MAX_KEYS_DOCUMENT} bytes")
        try:
            document = json.loads(body)
        except ValueError:
            raise FetchError(f"{url} did not send JSON") from None
        if not isinstance(document, dict):
            raise FetchError(f"{url} did not send a JSON object")
        return document

    return fetch


def entra_validator(
    settings: Settings, fetch_json: FetchJson | None = None
) -> TokenValidator | None:
    """The validator for the add-in's app registration, or None when it is not configured."""
    if not (settings.entra_tenant_id and settings.entra_client_id):
        return None
    extra: tuple[str, ...] = ()
    if settings.public_url:
        host = settings.public_url.split("://", 1)[1]
        extra = (f"api://{host}/{settings.entra_client_id}",)
    config = EntraConfig(
        tenant_id=settings.entra_tenant_id,
        client_id=settings.entra_client_id,
        authority_host=settings.graph_authority_host,
        scope=settings.entra_scope,
        extra_audiences=extra,
    )
    keys = SigningKeys(config.discovery_url, fetch_json or https_json_fetcher(settings))
    return TokenValidator(config, keys)


def init_app(app: Flask) -> None:
    validator = entra_validator(rapport(app).settings)
    if validator is not None:
        app.extensions["rapport.entra"] = validator
    else:
        settings = rapport(app).settings
        if settings.entra_tenant_id or settings.entra_client_id:
            log.warning(
                "Entra ID sign-in is off: set both RAPPORT_ENTRA_TENANT_ID and "
                "RAPPORT_ENTRA_CLIENT_ID"
            )
    app.before_request(authenticate)
