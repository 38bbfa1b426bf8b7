"""Reading the capture rules and editing them on someone's behalf: the admin's rule lists and
policy switches, and each member's own never-log list.

Adding and removing entries goes through `server.crm.rule_admin` (so a new rule empties what it
covers in captured mail, whoever adds it); this module adds what an API needs around that: pages
of entries, the rule row that was created, and the rule that a member may touch being only their
own never-log entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from server.crm.errors import DomainError, NotFound
from server.crm.mailboxes import MAX_ID
from server.crm.paging import Page, keyset_page
from server.crm.rule_admin import add_rule, remove_rule, set_capture_setting
from server.crm.rules import normalise_rule_value
from server.crm.settings import all_settings
from server.models import CaptureRule, User

SETTING_NAMES = (
    "skip_internal_only",
    "skip_mailing_lists",
    "skip_automated",
    "auto_create_contacts",
)


@dataclass(frozen=True)
class AddedRule:
    rule: CaptureRule
    emptied: int  # captured emails whose content the new rule removed


def rule_page(
    session: Session,
    *,
    kind: str | None = None,
    user_id: int | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[CaptureRule]:
    conditions: list[ColumnElement[bool]] = []
    if kind is not None:
        conditions.append(CaptureRule.kind == kind)
    if user_id is not None:
        conditions.append(CaptureRule.user_id == user_id)
    return keyset_page(
        session,
        select(CaptureRule).where(*conditions),
        sort=CaptureRule.id,
        ident=CaptureRule.id,
        limit=limit,
        cursor=cursor,
    )


def user_addresses(session: Session, user_ids: set[int]) -> dict[int, str]:
    """Whose never-log entries these are, for showing them by address."""
    if not user_ids:
        return {}
    rows = session.execute(select(User.id, User.email).where(User.id.in_(user_ids)))
    return {int(user_id): str(email) for user_id, email in rows}


def create_rule(
    session: Session, kind: str, value: str, *, user_id: int | None = None
) -> AddedRule:
    """Add a list entry (applied to captured mail at once) and return it with what it emptied."""
    if kind == "never_log":
        if user_id is None:
            raise DomainError("a never-log entry belongs to a user: give user_id", field="user_id")
        if not 0 < user_id <= MAX_ID or session.get(User, user_id) is None:
            raise DomainError(f"no user {user_id}", field="user_id")
    elif user_id is not None:
        raise DomainError(
            f"only never_log entries belong to a user; {kind} applies to everyone",
            field="user_id",
        )
    emptied = add_rule(session, kind, value, user_id=user_id)
    normalised = normalise_rule_value(kind, value)
    owner = CaptureRule.user_id.is_(None) if user_id is None else CaptureRule.user_id == user_id
    rule = session.scalars(
        select(CaptureRule).where(CaptureRule.kind == kind, CaptureRule.value == normalised, owner)
    ).one()
    return AddedRule(rule, emptied)


def capture_settings(session: Session) -> dict[str, Any]:
    """The capture policy switches, by their short names (skip_automated...)."""
    values = all_settings(session, "capture.")
    return {name: values.get(f"capture.{name}") for name in SETTING_NAMES}


def change_capture_settings(session: Session, changes: Mapping[str, object]) -> dict[str, Any]:
    """Set the given switches (the others keep their values); returns all of them."""
    for name, value in changes.items():
        if name not in SETTING_NAMES:
            raise DomainError(f"unknown capture setting {name}", field=name)
        set_capture_setting(session, f"capture.{name}", value)
    session.flush()
    return capture_settings(session)


# -- a member's own never-log list ---------------------------------------------------------------


def never_log_entries(session: Session, user_id: int) -> list[CaptureRule]:
    return list(
        session.scalars(
            select(CaptureRule)
            .where(CaptureRule.kind == "never_log", CaptureRule.user_id == user_id)
            .order_by(CaptureRule.value)
        )
    )


def add_never_log(session: Session, user_id: int, value: str) -> AddedRule:
    """Never log mail with this address or domain from the user's own mailboxes; mail already
    captured only through their mailboxes is emptied (a colleague's copy stays theirs)."""
    return create_rule(session, "never_log", value, user_id=user_id)


def delete_rule(session: Session, rule_id: int) -> None:
    """Remove any entry (admins); content it removed is not brought back."""
    if not 0 < rule_id <= MAX_ID:
        raise NotFound(f"no capture rule {rule_id}")
    remove_rule(session, rule_id)


def remove_never_log(session: Session, user_id: int, rule_id: int) -> None:
    """Remove one of the user's own entries; anyone else's is "not found" to them."""
    rule = session.get(CaptureRule, rule_id) if 0 < rule_id <= MAX_ID else None
    if rule is None or rule.kind != "never_log" or rule.user_id != user_id:
        raise NotFound(f"no never-log entry {rule_id} of yours")
    remove_rule(session, rule_id)
