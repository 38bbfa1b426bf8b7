"""Editing capture rules — and applying a new rule to what was already captured.

A rule added later must hold for the past too: blocking a domain removes the content of its
emails already captured; a user's never-log entry empties the emails only that user's mailboxes
saw (a colleague's own copy is the colleague's); a new internal domain empties the emails that
are now internal-only. Removed content is not brought back if the rule is removed again.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.crm.activities import activities_with_participant, remove_content
from server.crm.errors import Conflict, NotFound
from server.crm.rules import LIST_KINDS, in_domains, normalise_rule_value
from server.crm.settings import set_setting
from server.models import (
    Activity,
    ActivityParticipant,
    CaptureRule,
    MailboxLink,
    MailboxObservation,
)

SETTING_CHOICES = {
    "capture.skip_internal_only": (True, False),
    "capture.skip_mailing_lists": (True, False),
    "capture.skip_automated": (True, False),
    "capture.auto_create_contacts": ("all", "sent", "none"),
}


def add_rule(session: Session, kind: str, value: str, *, user_id: int | None = None) -> int:
    """Add a list entry and apply it to captured mail; returns how many emails it emptied."""
    normalised = normalise_rule_value(kind, value)
    if kind == "never_log" and user_id is None:
        raise Conflict("a never-log entry belongs to a user")
    scope_user = user_id if kind == "never_log" else None
    duplicate = session.scalar(
        select(CaptureRule.id).where(
            CaptureRule.kind == kind,
            CaptureRule.value == normalised,
            CaptureRule.user_id.is_(None)
            if scope_user is None
            else CaptureRule.user_id == scope_user,
        )
    )
    if duplicate is not None:
        raise Conflict(f"the rule {kind} {normalised} exists already")
    session.add(CaptureRule(kind=kind, value=normalised, user_id=scope_user))
    session.flush()
    return apply_rule(session, kind, normalised, user_id=scope_user)


def remove_rule(session: Session, rule_id: int) -> None:
    rule = session.get(CaptureRule, rule_id)
    if rule is None:
        raise NotFound(f"no capture rule {rule_id}")
    session.delete(rule)


def set_capture_setting(session: Session, key: str, value: object) -> None:
    if key not in SETTING_CHOICES or value not in SETTING_CHOICES[key]:
        choices = ", ".join(f"{k}: {v}" for k, v in SETTING_CHOICES.items())
        raise Conflict(f"unknown setting or value; settings are {choices}")
    set_setting(session, key, value)


def apply_rule(session: Session, kind: str, value: str, *, user_id: int | None = None) -> int:
    if kind == "block_address":
        ids = activities_with_participant(session, address=value)
    elif kind == "block_domain":
        ids = activities_with_participant(session, domain=value)
    elif kind == "never_log":
        ids = _only_seen_by_user(session, value, user_id)
    elif kind == "internal_domain":
        ids = _now_internal_only(session)
    else:  # pragma: no cover - normalise_rule_value refused it
        raise NotFound(f"unknown rule kind {kind}; use one of {', '.join(LIST_KINDS)}")
    visible = _still_showing(session, ids)
    return remove_content(session, visible, f"{kind}: {value}")


def _still_showing(session: Session, ids: list[int]) -> list[int]:
    result: list[int] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        result.extend(
            session.scalars(
                select(Activity.id).where(
                    Activity.id.in_(chunk),
                    Activity.unlogged_at.is_(None),
                    Activity.content_removed_reason.is_(None),
                )
            )
        )
    return result


def _only_seen_by_user(session: Session, value: str, user_id: int | None) -> list[int]:
    if "@" in value:
        candidates = activities_with_participant(session, address=value)
    else:
        candidates = activities_with_participant(session, domain=value)
    result = []
    for activity_id in candidates:
        owners = set(
            session.scalars(
                select(MailboxLink.owner_user_id)
                .join(MailboxObservation, MailboxObservation.link_id == MailboxLink.id)
                .where(MailboxObservation.activity_id == activity_id)
            )
        )
        if owners == {user_id}:
            result.append(activity_id)
    return result


def _now_internal_only(session: Session) -> list[int]:
    domains = set(
        session.scalars(select(CaptureRule.value).where(CaptureRule.kind == "internal_domain"))
    )
    result = []
    rows = session.execute(
        select(ActivityParticipant.activity_id, ActivityParticipant.address)
        .join(Activity, Activity.id == ActivityParticipant.activity_id)
        .where(Activity.kind == "email", Activity.content_removed_reason.is_(None))
        .order_by(ActivityParticipant.activity_id)
    )
    current, internal = None, True
    for activity_id, address in rows:
        if activity_id != current:
            if current is not None and internal:
                result.append(current)
            current, internal = activity_id, True
        if address and not in_domains(address, domains):
            internal = False
    if current is not None and internal:
        result.append(current)
    return result
