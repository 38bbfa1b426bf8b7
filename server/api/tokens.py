"""/api/v1/tokens — Rapport API tokens for scripts and integrations: create (shown once), list,
revoke. Everyone manages their own; admins see and revoke everyone's."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from flask import Blueprint, Response, current_app
from pydantic import BaseModel, ConfigDict, Field
from spectree import Response as Responses

from server.api.auth import current_viewer
from server.api.common import ListQuery, PageOut, reading, writing
from server.api.schemas import ErrorOut, Out
from server.api.spec import api
from server.crm.errors import Forbidden, NotFound
from server.crm.users import IssuedToken, create_token, get_token, get_user, list_tokens
from server.crm.users import revoke_token as revoke
from server.models import ApiToken

bp = Blueprint("tokens", __name__, url_prefix="/api/v1/tokens")


class TokenOut(Out):
    id: int
    user_id: int
    name: str
    prefix: str = Field(description="The first characters, to recognise a token in a list")
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class IssuedTokenOut(TokenOut):
    token: str = Field(description="The token itself: shown this once, only its hash is stored")


class TokenListQuery(ListQuery):
    all: bool = Field(False, description="Admins: everyone's tokens, not only yours")


Scope = Literal["api", "read"]


def _full_access() -> list[Scope]:
    return ["api"]


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("", max_length=200, description="What the token is for")
    scopes: list[Scope] = Field(
        default_factory=_full_access,
        min_length=1,
        description="api: everything you may do; read: GET and HEAD only",
    )
    expires_in_days: int = Field(90, ge=1, le=366)


def token_out(token: ApiToken) -> TokenOut:
    return TokenOut(
        id=token.id,
        user_id=token.user_id,
        name=token.name,
        prefix=token.prefix,
        scopes=token.scopes.split(),
        created_at=token.created_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
        last_used_at=token.last_used_at,
    )


def issued_out(issued: IssuedToken) -> IssuedTokenOut:
    return IssuedTokenOut(**token_out(issued.token).model_dump(), token=issued.plaintext)


def no_store(response: Response) -> Response:
    """Answers carrying a token must not be kept by any cache."""
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("")
@api.validate(
    query=TokenListQuery,
    resp=Responses(HTTP_200=PageOut[TokenOut], HTTP_401=ErrorOut, HTTP_403=ErrorOut),
    tags=["tokens"],
)
def list_(query: TokenListQuery) -> PageOut[TokenOut]:
    """Your API tokens, newest first (admins: everyone's with ?all=true)."""
    viewer = current_viewer()
    if query.all and not viewer.is_admin:
        raise Forbidden("only an admin can list everyone's tokens")
    with reading() as session:
        page = list_tokens(
            session,
            user_id=None if query.all else viewer.id,
            limit=query.limit,
            cursor=query.cursor,
        )
        return PageOut[TokenOut](
            items=[token_out(t) for t in page.items], next_cursor=page.next_cursor
        )


@bp.post("")
@api.validate(
    json=TokenIn,
    resp=Responses(HTTP_201=IssuedTokenOut, HTTP_401=ErrorOut, HTTP_403=ErrorOut),
    tags=["tokens"],
)
def create(json: TokenIn) -> Response:
    """A new token for yourself; the answer is the only time it is shown."""
    with writing() as session:
        issued = create_token(
            session,
            get_user(session, current_viewer().id),
            name=json.name,
            scopes=json.scopes,
            expires_in=timedelta(days=json.expires_in_days),
        )
        body = issued_out(issued)
    response = current_app.response_class(body.model_dump_json(), 201, mimetype="application/json")
    return no_store(response)


@bp.delete("/<int:token_id>")
@api.validate(
    resp=Responses(HTTP_204=None, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut),
    tags=["tokens"],
)
def delete(token_id: int) -> tuple[str, int]:
    """Revoke a token at once (yours, or anyone's for an admin; others' are not found)."""
    viewer = current_viewer()
    with writing() as session:
        owner_id = get_token(session, token_id).user_id
        if not (viewer.is_admin or owner_id == viewer.id):
            # No list shows a member anyone else's tokens: to them, one is simply not there.
            raise NotFound(f"no API token with id {token_id}")
        revoke(session, token_id, actor_id=viewer.id)
    return "", 204
