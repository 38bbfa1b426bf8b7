"""Every API call is authenticated: a Bearer token, either a Rapport API token or (when the
app registration is configured) an Entra ID access token. The anonymous endpoints are listed
here and nowhere else."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, g, request

from server.api.errors import error_response
from server.app_context import rapport
from server.crm.errors import Forbidden, NotFound
from server.crm.users import TOKEN_PREFIX, authenticate_token
from server.crm.viewer import Viewer

F = TypeVar("F", bound=Callable[..., Any])

# Endpoints anyone may call: health checks and the API's own description.
PUBLIC_ENDPOINTS = frozenset({"health.healthz", "static"})
PUBLIC_PREFIXES = ("openapi_",)


def public(view: F) -> F:
    """Mark a view as callable without a token (sign-in, the lead form...)."""
    view._rapport_public = True  # type: ignore[attr-defined]
    return view


def _is_public(endpoint: str | None) -> bool:
    if endpoint is None:
        return True  # 404/405: nothing to protect, the error handler answers
    if endpoint in PUBLIC_ENDPOINTS or endpoint.startswith(PUBLIC_PREFIXES):
        return True
    view = current_app.view_functions.get(endpoint)
    return bool(getattr(view, "_rapport_public", False))


def _unauthorized(message: str) -> Response:
    response = error_response(401, "unauthorized", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="rapport"'
    return response


def authenticate() -> Response | None:
    if _is_public(request.endpoint):
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized("sign in first: send 'Authorization: Bearer <token>'")
    token = token.strip()
    state = rapport(current_app)
    if token.startswith(TOKEN_PREFIX):
        try:
            with state.db.read_session() as session:
                g.viewer = Viewer.of(authenticate_token(session, token))
        except NotFound as exc:
            return _unauthorized(exc.message)
        return None
    return _unauthorized("this is not a Rapport API token, and Entra ID sign-in is not configured")


def init_app(app: Flask) -> None:
    app.before_request(authenticate)


def current_viewer() -> Viewer:
    return cast(Viewer, g.viewer)


def admin_only(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_viewer().is_admin:
            raise Forbidden("this needs an admin")
        return view(*args, **kwargs)

    return cast(F, wrapper)
