"""/api/v1/signals — whom to contact, when and why; /api/v1/admin/signal-settings — the thresholds.

`GET /signals?mine=1` is a person's to-do list ("My day"): each entry names the contact (name and
address), the kind, the reason (which emails, which dates) and the date it became due. A member
sees only signals whose cited activities they may see (server/crm/signals/read.py). Snoozes and
dismissals are the caller's own; `DELETE` takes one back.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from flask import Blueprint
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from spectree import Response

from server.api.auth import admin_only, current_viewer
from server.api.common import ListQuery, PageOut, reading, writing
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.crm.custom_fields import MAX_DB_ID
from server.crm.errors import NotFound
from server.crm.signals import KINDS, read
from server.crm.signals.config import SignalSettings
from server.crm.signals.store import load_settings, save_settings
from server.crm.signals.upkeep import request_recompute

bp = Blueprint("signals", __name__, url_prefix="/api/v1")
TAGS = ["signals"]
KEY = re.compile(r"[a-z_]{1,40}(:[A-Za-z0-9_]{1,40}){1,4}")

SignalKind = Literal[
    "awaiting_reply",
    "unanswered",
    "going_cold",
    "deal_rotting",
    "top_customer",
    "churn_risk",
    "meeting_without_follow_up",
]
assert set(SignalKind.__args__) == set(KINDS)  # type: ignore[attr-defined]


class SignalsQuery(ListQuery):
    mine: bool = Field(False, description="Only your own to-do list (signals you own)")
    kind: list[SignalKind] = Field(default_factory=list, description="Only these kinds")
    contact_id: Annotated[int, Field(ge=1, le=MAX_DB_ID)] | None = None


class ContactRefOut(BaseModel):
    id: int
    name: str
    address: str | None = Field(description="Their primary address")


class NamedOut(BaseModel):
    id: int
    name: str


class ReasonOut(BaseModel):
    summary: str = Field(description="Why, in one sentence")
    activity_ids: list[int] = Field(description="The emails and meetings it is about")
    facts: dict[str, Any] = Field(description="Dates (ISO 8601), counts and limits behind it")


class SignalOut(BaseModel):
    key: str = Field(description="Names this very signal: snooze or dismiss it by this key")
    kind: SignalKind
    due_at: datetime = Field(description="When it became (or becomes) something to act on")
    expires_at: datetime | None = Field(description="When it leaves the list if not acted on")
    owner_id: int | None = Field(description="Whose to-do it is")
    contact: ContactRefOut | None
    company: NamedOut | None
    deal: NamedOut | None
    reason: ReasonOut


class SnoozeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    until: AwareDatetime = Field(description="It comes back then (with its UTC offset)")


class DismissIn(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignalStateOut(BaseModel):
    key: str
    state: Literal["snoozed", "dismissed"]
    until: datetime | None


class SignalSettingsOut(BaseModel):
    enabled: list[SignalKind] = Field(description="The kinds computed at all")
    time_zone: str = Field(description="For signal owners without a time zone of their own")
    work_days: list[int] = Field(description="Working days, 0 = Monday ... 6 = Sunday")
    work_start: str = Field(description="Start of the working day, HH:MM (local time)")
    work_end: str
    holidays: list[str] = Field(description="Dates (YYYY-MM-DD) that are not working days")
    awaiting_reply_days: float = Field(description="Business days before an email of ours is late")
    unanswered_hours: float = Field(description="Response-time target, in business hours")
    meeting_follow_up_days: float = Field(
        description="Business days after a meeting for a follow-up email"
    )
    expire_after_days: int = Field(description="Days a signal stays listed once due")
    going_cold_multiple: float = Field(description="Going cold after this x the median gap")
    going_cold_floor_days: int = Field(description="...but never sooner than this")
    going_cold_min_exchanges: int = Field(description="Exchanges needed to know a rhythm")
    going_cold_stage_days: dict[str, int] = Field(description="Fixed limit per lifecycle stage")
    going_cold_stages: list[str] = Field(description="Lifecycle stages that can go cold")
    deal_rot_days: int | None = Field(
        description="Rot days for stages without their own (null: they never rot)"
    )
    top_customer_threshold: Decimal = Field(description="Won deals (one currency) or field value")
    top_customer_field: str | None = Field(description="A money/number company field to use")
    top_customer_tag: str = Field(description="The tag a top customer's company gets")
    churn_stages: list[str] = Field(description="Lifecycle stages watched for churn")
    churn_window_days: int
    churn_drop_share: float = Field(description="0.5: engagement halved")
    churn_min_before: int = Field(description="Days with an exchange needed in the window before")
    churn_unanswered_emails: int = Field(description="Our last K emails unanswered")


Share = Annotated[float, Field(ge=0, le=1)]


class SignalSettingsIn(BaseModel):
    """What you send changes; what you leave out keeps its value (checked on the server too)."""

    model_config = ConfigDict(extra="forbid")

    enabled: list[SignalKind] | None = None
    time_zone: Annotated[str, Field(max_length=64)] | None = None
    work_days: Annotated[list[Annotated[int, Field(ge=0, le=6)]], Field(max_length=7)] | None = None
    work_start: Annotated[str, Field(max_length=8)] | None = None
    work_end: Annotated[str, Field(max_length=8)] | None = None
    holidays: (
        Annotated[list[Annotated[str, Field(max_length=10)]], Field(max_length=400)] | None
    ) = None
    awaiting_reply_days: Annotated[float, Field(ge=0, le=30)] | None = None
    unanswered_hours: Annotated[float, Field(ge=0, le=240)] | None = None
    meeting_follow_up_days: Annotated[float, Field(ge=0, le=30)] | None = None
    expire_after_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    going_cold_multiple: Annotated[float, Field(ge=1, le=20)] | None = None
    going_cold_floor_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    going_cold_min_exchanges: Annotated[int, Field(ge=1, le=1000)] | None = None
    going_cold_stage_days: dict[str, Annotated[int, Field(ge=1, le=3650)]] | None = None
    going_cold_stages: list[str] | None = None
    deal_rot_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    top_customer_threshold: Annotated[Decimal, Field(gt=0, lt=10**12)] | None = None
    top_customer_field: Annotated[str, Field(max_length=64)] | None = None
    top_customer_tag: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    churn_stages: list[str] | None = None
    churn_window_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    churn_drop_share: Annotated[float, Field(ge=0.05, le=1)] | None = None
    churn_min_before: Annotated[int, Field(ge=1, le=1000)] | None = None
    churn_unanswered_emails: Annotated[int, Field(ge=1, le=1000)] | None = None


def signal_out(view: read.SignalView) -> SignalOut:
    reason = view.reason
    return SignalOut(
        key=view.key,
        kind=view.kind,  # type: ignore[arg-type]
        due_at=view.due_at,
        expires_at=view.expires_at,
        owner_id=view.owner_id,
        contact=ContactRefOut(**vars(view.contact)) if view.contact else None,
        company=NamedOut(**vars(view.company)) if view.company else None,
        deal=NamedOut(**vars(view.deal)) if view.deal else None,
        reason=ReasonOut(
            summary=str(reason.get("summary", "")),
            activity_ids=list(reason.get("activity_ids", [])),
            facts=dict(reason.get("facts", {})),
        ),
    )


def settings_out(settings: SignalSettings) -> SignalSettingsOut:
    return SignalSettingsOut.model_validate(settings.to_json())


def _key(key: str) -> str:
    if not KEY.fullmatch(key):
        raise NotFound(f"no signal {key[:80]}")
    return key


ERRORS = {"HTTP_401": ErrorOut, "HTTP_404": ErrorOut}


@bp.get("/signals")
@api.validate(
    query=SignalsQuery,
    resp=Response(
        HTTP_200=PageOut[SignalOut], HTTP_400=ErrorOut, HTTP_401=ErrorOut, HTTP_422=ErrorOut
    ),
    tags=TAGS,
)
def list_signals(query: SignalsQuery) -> PageOut[SignalOut]:
    """Signals due now, the longest due first: yours (`mine=1`) or all you may see."""
    with reading() as session:
        page = read.list_signals(
            session,
            current_viewer(),
            mine=query.mine,
            kinds=query.kind,
            contact_id=query.contact_id,
            limit=query.limit,
            cursor=query.cursor,
        )
        return PageOut[SignalOut](
            items=[signal_out(v) for v in page.items], next_cursor=page.next_cursor
        )


@bp.post("/signals/<key>/snooze")
@api.validate(
    json=SnoozeIn,
    resp=Response(HTTP_200=SignalStateOut, HTTP_400=ErrorOut, HTTP_422=ErrorOut, **ERRORS),
    tags=TAGS,
)
def snooze(key: str, json: SnoozeIn) -> SignalStateOut:
    """Hide it from you until a time in the future."""
    with writing() as session:
        state = read.snooze(session, current_viewer(), _key(key), json.until)
        return SignalStateOut(key=state.key, state="snoozed", until=state.until)


@bp.delete("/signals/<key>/snooze")
@api.validate(resp=Response(HTTP_204=None, **ERRORS), tags=TAGS)
def unsnooze(key: str) -> tuple[str, int]:
    """Take your snooze back (nothing to take back is fine)."""
    with writing() as session:
        read.undo(session, current_viewer(), _key(key), "snoozed")
    return "", 204


@bp.post("/signals/<key>/dismiss")
@api.validate(json=DismissIn, resp=Response(HTTP_200=SignalStateOut, **ERRORS), tags=TAGS)
def dismiss(key: str, json: DismissIn) -> SignalStateOut:
    """Hide it from you for good (a new email or a new situation is a new signal)."""
    with writing() as session:
        state = read.dismiss(session, current_viewer(), _key(key))
        return SignalStateOut(key=state.key, state="dismissed", until=None)


@bp.delete("/signals/<key>/dismiss")
@api.validate(resp=Response(HTTP_204=None, **ERRORS), tags=TAGS)
def undismiss(key: str) -> tuple[str, int]:
    """Take your dismissal back."""
    with writing() as session:
        read.undo(session, current_viewer(), _key(key), "dismissed")
    return "", 204


@bp.get("/admin/signal-settings")
@admin_only
@api.validate(
    resp=Response(HTTP_200=SignalSettingsOut, HTTP_401=ErrorOut, HTTP_403=ErrorOut),
    tags=["admin: signals"],
)
def get_settings() -> SignalSettingsOut:
    """The thresholds behind every signal (docs/signals.md)."""
    with reading() as session:
        return settings_out(load_settings(session))


@bp.put("/admin/signal-settings")
@admin_only
@api.validate(
    json=SignalSettingsIn,
    resp=Response(
        HTTP_200=SignalSettingsOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=["admin: signals"],
)
def put_settings(json: SignalSettingsIn) -> SignalSettingsOut:
    """Change thresholds; every signal is recomputed with them shortly after (by the worker)."""
    changes = {
        name: value
        for name, value in json.model_dump(mode="json").items()
        if name in json.model_fields_set and (value is not None or name in NULLABLE)
    }
    with writing() as session:
        settings = save_settings(session, changes)
        request_recompute(session)
        return settings_out(settings)


NULLABLE = frozenset({"deal_rot_days", "top_customer_field"})
