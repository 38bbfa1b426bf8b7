"""Password sign-in, for people not on Entra ID: the sign-in page and the call behind it.

The task pane opens `GET /signin` with `Office.context.ui.displayDialogAsync`; the page posts the
address and password to `POST /api/v1/auth/password` and hands the short-lived API token it gets
back to the pane with `Office.context.ui.messageParent`. The answer to a failed sign-in is always
the same, whether the address is unknown, the password wrong or the account locked, so that the
page cannot be used to find out who has an account; each client address also gets a small budget
of attempts per minute, since every attempt costs an argon2 hash.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, current_app, request
from pydantic import BaseModel, ConfigDict, Field
from spectree import Response as Responses

from server.api import security
from server.api.auth import public
from server.api.common import writing
from server.api.errors import error_response
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.api.tokens import IssuedTokenOut, issued_out, no_store
from server.api.users import UserOut, user_out
from server.crm.users import (
    SIGN_IN_TOKEN_LIFETIME,
    SIGN_IN_TOKEN_NAME,
    create_token,
    password_sign_in,
)
from server.crm.viewer import Viewer

bp = Blueprint("signin", __name__)

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
PAGE_ASSETS = {"signin.js": "text/javascript", "signin.css": "text/css"}
ATTEMPTS_PER_MINUTE = 20
FAILED = (
    "wrong email address or password (after 5 failed tries in a row an account is locked for "
    "15 minutes)"
)


class PasswordSignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class SignedInOut(IssuedTokenOut):
    user: UserOut


def _static(name: str, mimetype: str) -> Response:
    # Three small files, read whole: no file handle outlives the request.
    response = current_app.response_class((STATIC_DIR / name).read_bytes(), mimetype=mimetype)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/signin")
@public
def page() -> Response:
    """The sign-in page the task pane opens in a dialog."""
    return _static("signin.html", "text/html")


@bp.get("/signin/<name>")
@public
def asset(name: str) -> Response:
    if name not in PAGE_ASSETS:
        abort(404)
    return _static(name, PAGE_ASSETS[name])


@bp.post("/api/v1/auth/password")
@public
@api.validate(
    json=PasswordSignIn,
    resp=Responses(HTTP_200=SignedInOut, HTTP_401=ErrorOut, HTTP_429=ErrorOut),
    tags=["sign-in"],
    security={},
)
def password(json: PasswordSignIn) -> Response:
    """Sign in with an email address and password; the answer holds an API token for 12 hours."""
    limited = security.check_rate(f"signin:{request.remote_addr}", ATTEMPTS_PER_MINUTE)
    if limited is not None:
        return limited
    with writing() as session:
        user = password_sign_in(session, json.email, json.password)
        if user is not None:
            issued = create_token(
                session, user, name=SIGN_IN_TOKEN_NAME, expires_in=SIGN_IN_TOKEN_LIFETIME
            )
            body = SignedInOut(
                **issued_out(issued).model_dump(), user=user_out(user, Viewer.of(user))
            )
    # The failure count was committed above; only now is the failure answered.
    if user is None:
        response = error_response(401, "unauthorized", FAILED)
        response.headers["WWW-Authenticate"] = 'Bearer realm="rapport"'
        return no_store(response)
    return no_store(
        current_app.response_class(body.model_dump_json(), 200, mimetype="application/json")
    )
