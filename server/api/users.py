"""/api/v1/me and /api/v1/users — who am I, the team directory, and the users admin.

Members see the team directory (names, addresses, roles: the pane shows who owns a contact) and
change their own name, time zone and password; admins add users, change roles, disable people,
set passwords and unlink a Microsoft account. Sign-in details (password set, Microsoft account
linked, locked until) are shown to admins and to the user themselves only.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, current_app
from pydantic import BaseModel, ConfigDict, Field
from spectree import Response as Responses

from server.api.auth import admin_only, current_credential, current_viewer
from server.api.common import ListQuery, PageOut, reading, writing
from server.api.schemas import ErrorOut, Out
from server.api.spec import api
from server.crm.errors import Forbidden
from server.crm.users import (
    UserChanges,
    change_own_password,
    create_user,
    get_user,
    list_users,
    set_password,
    update_user,
)
from server.crm.viewer import Viewer
from server.models import User

bp = Blueprint("users", __name__, url_prefix="/api/v1")


class SignInOut(Out):
    password: bool = Field(description="The user can sign in with a password")
    entra: bool = Field(description="A Microsoft (Entra ID) account is linked")
    locked_until: datetime | None = Field(description="Password sign-in locked until then")


class UserOut(Out):
    id: int
    email: str
    name: str
    role: str
    time_zone: str
    disabled: bool
    created_at: datetime
    sign_in: SignInOut | None = Field(
        None, description="Only for admins and for the user themselves"
    )


class CredentialOut(BaseModel):
    method: str = Field(description="api_token or entra")
    scopes: list[str]
    token_id: int | None


class MeOut(UserOut):
    credential: CredentialOut


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320)
    role: str = Field("member", description="admin or member")
    name: str = Field("", max_length=200)
    time_zone: str = Field("UTC", max_length=64, description="IANA zone, e.g. Europe/Berlin")
    password: str | None = Field(None, description="Only for people who do not use Entra ID")


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    time_zone: str | None = Field(None, max_length=64, description="IANA zone")
    role: str | None = Field(None, description="Admins only: admin or member")
    disabled: bool | None = Field(None, description="Admins only")
    unlink_entra: bool = Field(
        False, description="Admins only: forget the linked Microsoft account"
    )


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(max_length=1024)


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    old_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


def user_out(user: User, viewer: Viewer) -> UserOut:
    details = viewer.is_admin or viewer.id == user.id
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        time_zone=user.time_zone,
        disabled=user.disabled_at is not None,
        created_at=user.created_at,
        sign_in=SignInOut(
            password=user.password_hash is not None,
            entra=user.entra_object_id is not None,
            locked_until=user.locked_until,
        )
        if details
        else None,
    )


def _created(body: BaseModel) -> Response:
    return current_app.response_class(body.model_dump_json(), 201, mimetype="application/json")


@bp.get("/me")
@api.validate(resp=Responses(HTTP_200=MeOut, HTTP_401=ErrorOut), tags=["users"])
def me() -> MeOut:
    """You, and how this request signed in."""
    viewer = current_viewer()
    credential = current_credential()
    with reading() as session:
        out = user_out(get_user(session, viewer.id), viewer)
    return MeOut(
        **out.model_dump(),
        credential=CredentialOut(
            method=credential.method,
            scopes=sorted(credential.scopes),
            token_id=credential.token_id,
        ),
    )


@bp.get("/users")
@api.validate(
    query=ListQuery, resp=Responses(HTTP_200=PageOut[UserOut], HTTP_401=ErrorOut), tags=["users"]
)
def list_(query: ListQuery) -> PageOut[UserOut]:
    """The team: everyone who uses Rapport."""
    viewer = current_viewer()
    with reading() as session:
        page = list_users(session, limit=query.limit, cursor=query.cursor)
        return PageOut[UserOut](
            items=[user_out(u, viewer) for u in page.items], next_cursor=page.next_cursor
        )


@bp.post("/users")
@admin_only
@api.validate(
    json=UserIn,
    resp=Responses(
        HTTP_201=UserOut, HTTP_400=ErrorOut, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_409=ErrorOut
    ),
    tags=["users"],
)
def create(json: UserIn) -> Response:
    """Add a user (admins)."""
    viewer = current_viewer()
    with writing() as session:
        user = create_user(
            session,
            viewer,
            json.email,
            role=json.role,
            name=json.name,
            time_zone=json.time_zone,
            password=json.password,
        )
        return _created(user_out(user, viewer))


@bp.get("/users/<int:user_id>")
@api.validate(
    resp=Responses(HTTP_200=UserOut, HTTP_401=ErrorOut, HTTP_404=ErrorOut), tags=["users"]
)
def get(user_id: int) -> UserOut:
    """One user."""
    with reading() as session:
        return user_out(get_user(session, user_id), current_viewer())


@bp.patch("/users/<int:user_id>")
@api.validate(
    json=UserPatch,
    resp=Responses(
        HTTP_200=UserOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_404=ErrorOut,
        HTTP_409=ErrorOut,
    ),
    tags=["users"],
)
def patch(user_id: int, json: UserPatch) -> UserOut:
    """Change a user: yourself (name, time zone) or anyone (admins: also role, disabled)."""
    viewer = current_viewer()
    changes = UserChanges(
        name=json.name,
        time_zone=json.time_zone,
        role=json.role,
        disabled=json.disabled,
        unlink_entra=json.unlink_entra,
    )
    with writing() as session:
        return user_out(update_user(session, viewer, user_id, changes), viewer)


@bp.post("/users/<int:user_id>/password")
@admin_only
@api.validate(
    json=PasswordIn,
    resp=Responses(
        HTTP_204=None, HTTP_400=ErrorOut, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut
    ),
    tags=["users"],
)
def set_user_password(user_id: int, json: PasswordIn) -> tuple[str, int]:
    """Set someone's password (admins); it also lifts a lockout."""
    with writing() as session:
        set_password(
            session, get_user(session, user_id), json.password, actor_id=current_viewer().id
        )
    return "", 204


@bp.post("/users/me/password")
@api.validate(
    json=PasswordChangeIn,
    resp=Responses(HTTP_204=None, HTTP_400=ErrorOut, HTTP_401=ErrorOut, HTTP_403=ErrorOut),
    tags=["users"],
)
def change_password(json: PasswordChangeIn) -> tuple[str, int]:
    """Change your own password; you must give the current one."""
    with writing() as session:
        changed = change_own_password(
            session, get_user(session, current_viewer().id), json.old_password, json.new_password
        )
    # Outside the unit of work: a wrong old password is counted (and committed) before refusing.
    if not changed:
        raise Forbidden(
            "the current password is wrong (after 5 wrong tries in a row it is locked for 15 "
            "minutes)",
            field="old_password",
        )
    return "", 204
