"""/api/v1/admin/rules — capture rules for admins; /api/v1/me/never-log — each person's own list.

Admins edit the team's lists (internal domains, blocked addresses and domains, anyone's never-log
entries) and the policy switches. A new entry applies to mail captured before it too, and the
answer says how many captured emails it emptied. Members keep their own never-log list: mail
with those addresses or domains is never logged from their mailboxes, and what only their
mailboxes captured of it is emptied (a colleague's own copy stays the colleague's).

Same services as `rapport rule ...` (`server.crm.rule_admin`, through `server.crm.rule_lists`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from flask import Blueprint
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from spectree import Response

from server.api.auth import admin_only, current_viewer
from server.api.common import ListQuery, reading, writing
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.crm import rule_lists
from server.crm.mailboxes import MAX_ID
from server.models import CaptureRule

bp = Blueprint("admin_rules", __name__, url_prefix="/api/v1")
TAGS = ["admin: capture rules"]

RuleKind = Literal["internal_domain", "block_address", "block_domain", "never_log"]
RuleValue = Annotated[
    str, Field(min_length=1, max_length=320, description="An address or a domain")
]


class RuleOut(BaseModel):
    id: int
    kind: str
    value: str = Field(description="Normalised: lower-case address or domain")
    user_id: int | None = Field(description="For never_log: whose list")
    user_email: str | None
    created_at: datetime


class CaptureSettingsOut(BaseModel):
    skip_internal_only: bool = Field(description="Skip mail where every participant is internal")
    skip_mailing_lists: bool
    skip_automated: bool = Field(description="Skip bulk mail, auto-replies, no-reply senders")
    auto_create_contacts: str = Field(description="all, sent (only people you wrote to) or none")


class RulesOut(BaseModel):
    items: list[RuleOut]
    next_cursor: str | None
    settings: CaptureSettingsOut


class RuleListQuery(ListQuery):
    kind: RuleKind | None = None
    user_id: int | None = Field(None, ge=1, le=MAX_ID, description="Only this user's never-log")


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: RuleKind
    value: RuleValue
    user_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="Required for never_log (whose list); else not allowed"
    )


class AddedRuleOut(BaseModel):
    rule: RuleOut
    emptied: int = Field(description="Captured emails whose content the new rule removed")


class CaptureSettingsIn(BaseModel):
    """Switches left out keep their value."""

    model_config = ConfigDict(extra="forbid")

    skip_internal_only: StrictBool | None = None
    skip_mailing_lists: StrictBool | None = None
    skip_automated: StrictBool | None = None
    auto_create_contacts: Literal["all", "sent", "none"] | None = None


class NeverLogOut(BaseModel):
    id: int
    value: str
    created_at: datetime


class NeverLogListOut(BaseModel):
    items: list[NeverLogOut]


class NeverLogIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: RuleValue


class AddedNeverLogOut(BaseModel):
    entry: NeverLogOut
    emptied: int = Field(description="Emails only your mailboxes captured, now emptied")


def rule_out(rule: CaptureRule, addresses: dict[int, str]) -> RuleOut:
    return RuleOut(
        id=rule.id,
        kind=rule.kind,
        value=rule.value,
        user_id=rule.user_id,
        user_email=addresses.get(rule.user_id) if rule.user_id is not None else None,
        created_at=rule.created_at,
    )


def never_log_out(rule: CaptureRule) -> NeverLogOut:
    return NeverLogOut(id=rule.id, value=rule.value, created_at=rule.created_at)


@bp.get("/admin/rules")
@admin_only
@api.validate(
    query=RuleListQuery,
    resp=Response(HTTP_200=RulesOut, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_422=ErrorOut),
    tags=TAGS,
)
def list_rules(query: RuleListQuery) -> RulesOut:
    """The rule lists' entries (paged) and the capture policy switches."""
    with reading() as session:
        page = rule_lists.rule_page(
            session, kind=query.kind, user_id=query.user_id, limit=query.limit, cursor=query.cursor
        )
        addresses = rule_lists.user_addresses(
            session, {r.user_id for r in page.items if r.user_id is not None}
        )
        settings = rule_lists.capture_settings(session)
        return RulesOut(
            items=[rule_out(r, addresses) for r in page.items],
            next_cursor=page.next_cursor,
            settings=CaptureSettingsOut(**settings),
        )


@bp.post("/admin/rules")
@admin_only
@api.validate(
    json=RuleIn,
    resp=Response(
        HTTP_201=AddedRuleOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_409=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def create_rule(json: RuleIn) -> tuple[AddedRuleOut, int]:
    """Add an entry; it applies to mail already captured, and `emptied` says to how much."""
    with writing() as session:
        added = rule_lists.create_rule(session, json.kind, json.value, user_id=json.user_id)
        addresses = rule_lists.user_addresses(
            session, {added.rule.user_id} if added.rule.user_id is not None else set()
        )
        return AddedRuleOut(rule=rule_out(added.rule, addresses), emptied=added.emptied), 201


@bp.delete("/admin/rules/<int:rule_id>")
@admin_only
@api.validate(
    resp=Response(HTTP_204=None, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut),
    tags=TAGS,
)
def delete_rule(rule_id: int) -> tuple[str, int]:
    """Remove an entry. Content it removed is not brought back."""
    with writing() as session:
        rule_lists.delete_rule(session, rule_id)
    return "", 204


@bp.put("/admin/rules/settings")
@admin_only
@api.validate(
    json=CaptureSettingsIn,
    resp=Response(
        HTTP_200=CaptureSettingsOut, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_422=ErrorOut
    ),
    tags=TAGS,
)
def put_settings(json: CaptureSettingsIn) -> CaptureSettingsOut:
    """Set the capture policy switches; they apply to mail captured from now on."""
    with writing() as session:
        settings = rule_lists.change_capture_settings(session, json.model_dump(exclude_none=True))
        return CaptureSettingsOut(**settings)


@bp.get("/me/never-log")
@api.validate(resp=Response(HTTP_200=NeverLogListOut, HTTP_401=ErrorOut), tags=["never-log"])
def my_never_log() -> NeverLogListOut:
    """Your never-log list: addresses and domains whose mail your mailboxes never log."""
    with reading() as session:
        entries = rule_lists.never_log_entries(session, current_viewer().id)
        return NeverLogListOut(items=[never_log_out(r) for r in entries])


@bp.post("/me/never-log")
@api.validate(
    json=NeverLogIn,
    resp=Response(
        HTTP_201=AddedNeverLogOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_409=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=["never-log"],
)
def add_my_never_log(json: NeverLogIn) -> tuple[AddedNeverLogOut, int]:
    """Never log mail with this address (or domain) from your mailboxes, from now on and back:
    what only your mailboxes captured of it is emptied."""
    with writing() as session:
        added = rule_lists.add_never_log(session, current_viewer().id, json.value)
        return AddedNeverLogOut(entry=never_log_out(added.rule), emptied=added.emptied), 201


@bp.delete("/me/never-log/<int:rule_id>")
@api.validate(
    resp=Response(HTTP_204=None, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut),
    tags=["never-log"],
)
def delete_my_never_log(rule_id: int) -> tuple[str, int]:
    """Take an entry off your list (emptied mail stays emptied)."""
    with writing() as session:
        rule_lists.remove_never_log(session, current_viewer().id, rule_id)
    return "", 204
