"""The thresholds behind every signal, with their defaults and their checks.

Admins change them at run time (`PUT /api/v1/admin/signal-settings`); they are stored as one JSON
setting (`signals.settings` in the settings table) holding only what differs from the defaults
below, so a default improved in a later release reaches everyone who never changed it. Loading
is forgiving (an unknown or broken stored value falls back to its default); saving is strict
(`DomainError` naming the field).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date, time, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.crm.errors import DomainError
from server.crm.signals.model import KINDS
from server.crm.signals.worktime import WorkWeek
from server.models.contacts import LIFECYCLE_STAGES

SETTING_KEY = "signals.settings"


def _stage_days() -> dict[str, int]:
    return {"lead": 30, "qualified": 21, "opportunity": 14, "customer": 60}


@dataclass(frozen=True)
class SignalSettings:
    # which signals are computed at all
    enabled: tuple[str, ...] = KINDS
    # working time, in each signal owner's own time zone (this one when they have none)
    time_zone: str = "UTC"
    work_days: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0
    work_start: str = "09:00"
    work_end: str = "17:00"
    holidays: tuple[str, ...] = ()  # ISO dates
    # awaiting reply: our email, no reply after this many business days
    awaiting_reply_days: float = 2.0
    # unanswered: the customer's email, no answer within this many business hours
    unanswered_hours: float = 8.0
    # meeting without follow-up: no email to the attendees this many business days after it
    meeting_follow_up_days: float = 2.0
    # a signal not acted on leaves the list this many days after it became due (deal rotting
    # and top customer stay until resolved)
    expire_after_days: int = 30
    # going cold: silence longer than `multiple` x the contact's median gap (at least
    # `floor_days`, with `min_exchanges` exchanges of history), or the stage's fixed limit
    going_cold_multiple: float = 2.0
    going_cold_floor_days: int = 14
    going_cold_min_exchanges: int = 4
    going_cold_stage_days: Mapping[str, int] = field(default_factory=_stage_days)
    going_cold_stages: tuple[str, ...] = ("lead", "qualified", "opportunity", "customer")
    # deal rotting: stages without their own "rot days" use this (None: they never rot)
    deal_rot_days: int | None = None
    # top customer: won deals (in one currency) or this money/number company field
    top_customer_threshold: Decimal = Decimal(50000)
    top_customer_field: str | None = None
    top_customer_tag: str = "top customer"
    # churn risk, for contacts at these stages
    churn_stages: tuple[str, ...] = ("customer",)
    churn_window_days: int = 90
    churn_drop_share: float = 0.5  # engagement down by at least this share...
    churn_min_before: int = 4  # ...from at least this many exchanges in the window before
    churn_unanswered_emails: int = 3  # or our last K emails all went unanswered

    # -- derived ----------------------------------------------------------------------------

    @property
    def work_week(self) -> WorkWeek:
        return WorkWeek(
            days=frozenset(self.work_days),
            start=time.fromisoformat(self.work_start),
            end=time.fromisoformat(self.work_end),
            holidays=frozenset(date.fromisoformat(d) for d in self.holidays),
        )

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.time_zone)

    def is_enabled(self, kind: str) -> bool:
        return kind in self.enabled

    # -- JSON -------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    def changed_from_default(self) -> dict[str, Any]:
        default = DEFAULTS.to_json()
        return {k: v for k, v in self.to_json().items() if default[k] != v}


DEFAULTS = SignalSettings()
NAMES = frozenset(f.name for f in fields(SignalSettings))


def from_stored(stored: object) -> SignalSettings:
    """Settings from what the database holds: each value that does not check out falls back to
    its default (a bad row must never stop the signals)."""
    settings = DEFAULTS
    if not isinstance(stored, Mapping):
        return settings
    for name, value in stored.items():
        if name not in NAMES:
            continue
        try:
            settings = updated(settings, {name: value})
        except DomainError:
            continue
    return settings


def updated(settings: SignalSettings, changes: Mapping[str, Any]) -> SignalSettings:
    """`settings` with `changes` applied, every changed value checked (DomainError names it)."""
    values: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in NAMES:
            raise DomainError(f"there is no signal setting '{name}'", field=name)
        values[name] = _clean(name, value)
    result = replace(settings, **values)
    if time.fromisoformat(result.work_start) >= time.fromisoformat(result.work_end):
        raise DomainError("the working day must end after it starts", field="work_end")
    return result


def _clean(name: str, value: Any) -> Any:  # one branch per kind of field
    if name in ("enabled",):
        return _choices(name, value, KINDS)
    if name in ("going_cold_stages", "churn_stages"):
        return _choices(name, value, LIFECYCLE_STAGES)
    if name == "time_zone":
        if not isinstance(value, str) or not value or not value.isprintable():
            raise DomainError("give an IANA time zone name, e.g. Europe/Berlin", field=name)
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise DomainError(
                f"'{value}' is not a time zone this server knows", field=name
            ) from None
        return value
    if name == "work_days":
        days = _int_list(name, value, 0, 6)
        if not days:
            raise DomainError(
                "give at least one working day (0 = Monday ... 6 = Sunday)", field=name
            )
        return tuple(sorted(set(days)))
    if name in ("work_start", "work_end"):
        try:
            parsed = time.fromisoformat(str(value))
        except ValueError:
            raise DomainError("give a time of day as HH:MM", field=name) from None
        if parsed.tzinfo is not None:
            raise DomainError("give a local time of day without an offset", field=name)
        return parsed.strftime("%H:%M")
    if name == "holidays":
        if not isinstance(value, list | tuple):
            raise DomainError("give a list of dates (YYYY-MM-DD)", field=name)
        try:
            return tuple(sorted({date.fromisoformat(str(d)).isoformat() for d in value}))
        except ValueError:
            raise DomainError("give dates as YYYY-MM-DD", field=name) from None
    if name in ("awaiting_reply_days", "meeting_follow_up_days"):
        return _number(name, value, 0, 30)
    if name == "unanswered_hours":
        return _number(name, value, 0, 240)
    if name == "going_cold_multiple":
        return _number(name, value, 1, 20)
    if name == "churn_drop_share":
        return _number(name, value, 0.05, 1)
    if name in ("expire_after_days", "going_cold_floor_days", "churn_window_days"):
        return int(_number(name, value, 1, 3650, whole=True))
    if name in ("going_cold_min_exchanges", "churn_min_before", "churn_unanswered_emails"):
        return int(_number(name, value, 1, 1000, whole=True))
    if name == "deal_rot_days":
        return None if value is None else int(_number(name, value, 1, 3650, whole=True))
    if name == "going_cold_stage_days":
        if not isinstance(value, Mapping):
            raise DomainError("give an object: lifecycle stage -> days", field=name)
        out: dict[str, int] = {}
        for stage, days in value.items():
            if stage not in LIFECYCLE_STAGES:
                raise DomainError(f"'{stage}' is not a lifecycle stage", field=name)
            out[stage] = int(_number(name, days, 1, 3650, whole=True))
        return out
    if name == "top_customer_threshold":
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise DomainError("give an amount, e.g. 50000", field=name) from None
        if not amount.is_finite() or amount <= 0 or amount >= Decimal(10) ** 12:
            raise DomainError("give a positive amount below 10^12", field=name)
        return amount
    if name == "top_customer_field":
        if value is None or value == "":
            return None
        if not isinstance(value, str) or len(value) > 64 or not value.isprintable():
            raise DomainError("give the key of a company custom field", field=name)
        return value
    if name == "top_customer_tag":
        if not isinstance(value, str) or not value.isprintable():
            raise DomainError("give a tag of printable characters", field=name)
        if not value.strip() or len(value.strip()) > 100:
            raise DomainError("give a tag of 1 to 100 characters", field=name)
        return value.strip()
    raise AssertionError(name)  # every name in NAMES has its branch


def _choices(name: str, value: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise DomainError(f"give a list of: {', '.join(allowed)}", field=name)
    unknown = [v for v in value if v not in allowed]
    if unknown:
        raise DomainError(f"'{unknown[0]}' is not one of: {', '.join(allowed)}", field=name)
    return tuple(v for v in allowed if v in value)


def _int_list(name: str, value: Any, low: int, high: int) -> list[int]:
    if not isinstance(value, list | tuple):
        raise DomainError(f"give a list of numbers from {low} to {high}", field=name)
    return [int(_number(name, v, low, high, whole=True)) for v in value]


def _number(name: str, value: Any, low: float, high: float, *, whole: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise DomainError(f"give a number from {low:g} to {high:g}", field=name)
    try:
        number = float(value)
    except ValueError:
        raise DomainError(f"give a number from {low:g} to {high:g}", field=name) from None
    if not math.isfinite(number) or not low <= number <= high:
        raise DomainError(f"give a number from {low:g} to {high:g}", field=name)
    if whole and number != int(number):
        raise DomainError("give a whole number", field=name)
    return number
