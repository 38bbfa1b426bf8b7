"""Run-time settings an admin edits (capture policy and later retention, signals...), as JSON rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from server.crm.sql import upsert
from server.models import Setting, utcnow

DEFAULTS: dict[str, Any] = {
    "capture.skip_internal_only": True,
    "capture.skip_mailing_lists": True,
    "capture.skip_automated": True,
    "capture.auto_create_contacts": "all",  # all, sent, none
}


def get_setting(session: Session, key: str) -> Any:
    row = session.scalar(select(Setting).where(Setting.key == key))
    return DEFAULTS.get(key) if row is None else row.value


def get_settings(session: Session, keys: Iterable[str]) -> dict[str, Any]:
    """Several settings in one query: `get_setting` of each key."""
    wanted = list(keys)
    values = {key: DEFAULTS.get(key) for key in wanted}
    for row in session.scalars(select(Setting).where(Setting.key.in_(wanted))):
        values[row.key] = row.value
    return values


def set_setting(session: Session, key: str, value: Any) -> None:
    """Write one setting; an upsert, because two workers starting together may write it at once."""
    row = {"key": key, "value": value, "updated_at": utcnow()}
    upsert(session, "settings", ["key"], ["value", "updated_at"], [row])
    cached = session.identity_map.get(identity_key(Setting, key))
    if cached is not None:
        session.expire(cached)


def all_settings(session: Session, prefix: str = "") -> dict[str, Any]:
    values = {k: v for k, v in DEFAULTS.items() if k.startswith(prefix)}
    for row in session.scalars(select(Setting).where(Setting.key.startswith(prefix))):
        values[row.key] = row.value
    return values
