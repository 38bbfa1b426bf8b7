"""Keeping signals current in the background: the job kinds `rapport worker` runs.

- "signals_refresh": contacts marked by capture (`server.crm.signals.dirty`) are recomputed, a
  batch per job, in the job's own transaction. The worker queues it whenever marks are waiting
  (`schedule`, called from its loop), one at a time (a unique key).
- "signals_tick", every hour: deal and company signals (deals move and close through the API,
  not through mail), contacts whose shown signals expired (a churn window moves on), and
  snoozes or dismissals of signals that are gone. Once a day it recomputes everything, which
  also catches what changes outside mail (a contact's stage or owner, a merge, a setting).
- "signals_recompute": everything, now (after an admin changed the settings).

Most signals need no recompute as time passes: each is stored with the moment it becomes due.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.crm.settings import get_setting, set_setting
from server.crm.signals import dirty
from server.crm.signals.read import forget_stale_states
from server.crm.signals.store import (
    RecomputeStats,
    load_context,
    recompute_companies,
    recompute_contacts,
    recompute_deals,
    recompute_everything,
    refresh_dirty,
)
from server.db import Database
from server.jobs import ClaimedJob, enqueue, heartbeat
from server.models import Signal, utcnow

REFRESH_JOB = "signals_refresh"
TICK_JOB = "signals_tick"
RECOMPUTE_JOB = "signals_recompute"
TICK_EVERY = timedelta(hours=1)
FULL_EVERY = timedelta(days=1)
NEXT_TICK = "signals.next_tick_at"
LAST_FULL = "signals.last_full_at"
REFRESH_BATCH = 1000  # marked contacts per refresh job


def refresh_job(session: Session, _payload: Mapping[str, Any]) -> None:
    refresh_dirty(session, limit=REFRESH_BATCH)


def tick_job(db: Database, job: ClaimedJob) -> None:
    tick(db, job=job)


def recompute_job(db: Database, job: ClaimedJob) -> None:
    recompute_all(db, job=job)


HANDLERS = {REFRESH_JOB: refresh_job}
LONG_HANDLERS = {TICK_JOB: tick_job, RECOMPUTE_JOB: recompute_job}


def schedule(db: Database, *, now: datetime | None = None) -> None:
    """Queue what is due (from the worker's loop; reads only, unless something is due)."""
    now = now or utcnow()
    with db.read_session() as session:
        marked = dirty.pending(session)
        next_tick = _when(get_setting(session, NEXT_TICK))
    if not marked and next_tick is not None and next_tick > now:
        return
    with db.session() as session:
        if marked:
            enqueue(session, REFRESH_JOB, {}, unique_key="signals:refresh")
        if next_tick is not None and next_tick <= now:
            enqueue(session, TICK_JOB, {}, unique_key="signals:tick")
        if next_tick is None or next_tick <= now:
            # The first tick comes an hour after the first worker started: captured mail is
            # marked as it lands, and `rapport signals recompute` covers mail already stored.
            set_setting(session, NEXT_TICK, (now + TICK_EVERY).isoformat())


def request_recompute(session: Session) -> None:
    """Recompute everything soon (the settings changed)."""
    enqueue(session, RECOMPUTE_JOB, {}, unique_key="signals:recompute")


def tick(db: Database, *, job: ClaimedJob | None = None, now: datetime | None = None) -> None:
    now = now or utcnow()
    last_full = None
    with _unit(db, job) as session:
        last_full = _when(get_setting(session, LAST_FULL))
    if last_full is None or now - last_full >= FULL_EVERY:
        recompute_all(db, job=job, now=now)
        return
    with _unit(db, job) as session:
        ctx = load_context(session, now)
        recompute_deals(session, None, ctx)
        recompute_companies(session, None, ctx)
        expired = session.scalars(
            select(Signal.contact_id)
            .where(Signal.expires_at <= now, Signal.contact_id.is_not(None))
            .distinct()
        ).all()
        recompute_contacts(session, [c for c in expired if c is not None], ctx)
        forget_stale_states(session)


def recompute_all(
    db: Database, *, job: ClaimedJob | None = None, now: datetime | None = None
) -> RecomputeStats:
    now = now or utcnow()
    stats = recompute_everything(
        db.session, now=now, between=(lambda s: heartbeat(s, job)) if job else None
    )
    with _unit(db, job) as session:
        forget_stale_states(session)
        set_setting(session, LAST_FULL, now.isoformat())
    return stats


@contextmanager
def _unit(db: Database, job: ClaimedJob | None) -> Iterator[Session]:
    with db.session() as session:
        if job is not None:
            heartbeat(session, job)
        yield session


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
