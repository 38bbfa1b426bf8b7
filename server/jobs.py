"""The durable job queue: mail sync, webhook deliveries and digests all run through it.

A job is claimed with a lease (a random token and an expiry). The handler's work and the job's
completion commit in ONE transaction, and completion only succeeds while the runner still holds
the lease token, so a runner whose lease expired (and whose job another runner took over) rolls
its work back instead of committing it a second time. On PostgreSQL runners claim with
`FOR UPDATE SKIP LOCKED`; on SQLite the write lock taken at BEGIN serialises claims.

    queued ──claim──▶ running ──complete──▶ done
      ▲                 │  └──lease expires──▶ (claimable again)
      └──fail (retry)───┘──fail (attempts used up)──▶ dead
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from server.crm.sql import insert_ignore_returning
from server.db import Database
from server.models import Job, utcnow

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=5)
BACKOFF_BASE_SECONDS = 30.0
BACKOFF_CAP_SECONDS = 3600.0

Handler = Callable[[Session, Mapping[str, Any]], None]
# A long job (a mailbox sync) commits in several transactions of its own, each of which calls
# `heartbeat` so that a runner whose lease expired cannot commit anything more.
LongHandler = Callable[[Database, "ClaimedJob"], None]


class LeaseLost(Exception):
    """The runner no longer holds the job's lease: its work must not be committed."""


class Requeue(Exception):
    """Raised by a handler that stopped part-way on purpose (the worker is shutting down, or a
    campaign must wait for its send rate): the job goes back to the queue, due after `delay`
    (default: at once), and the attempt does not count as a failure."""

    def __init__(self, delay: timedelta | None = None) -> None:
        super().__init__()
        self.delay = delay


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    lease_token: str


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def enqueue(
    session: Session,
    kind: str,
    payload: Mapping[str, Any] | None = None,
    *,
    run_after: datetime | None = None,
    unique_key: str | None = None,
    max_attempts: int = 8,
) -> int | None:
    """Add a job and return its id; with `unique_key`, nothing is added (None) while a job with
    that key is pending — decided by the database, so two processes racing add one job."""
    values = {
        "kind": kind,
        "payload": dict(payload or {}),
        "run_after": run_after or utcnow(),
        "unique_key": unique_key,
        "max_attempts": max_attempts,
        "status": "queued",
        "attempts": 0,
        "created_at": utcnow(),
    }
    if unique_key is None:
        return int(session.execute(insert(Job).values(**values).returning(Job.id)).scalar_one())
    rows = insert_ignore_returning(session, "jobs", ["unique_key"], ["id"], [values])
    return int(rows[0][0]) if rows else None


def claim(
    db: Database,
    *,
    owner: str,
    kinds: Collection[str] | None = None,
    lease: timedelta = DEFAULT_LEASE,
    now: datetime | None = None,
    unique_key: str | None = None,
) -> ClaimedJob | None:
    """Lease the next due job (or one whose previous runner's lease ran out), or None; with
    `unique_key`, only that job."""
    now = now or utcnow()
    due = or_(
        and_(Job.status == "queued", Job.run_after <= now),
        and_(Job.status == "running", Job.lease_expires_at < now),
    )
    query = select(Job).where(due).order_by(Job.run_after, Job.id).limit(1)
    if kinds is not None:
        query = query.where(Job.kind.in_(list(kinds)))
    if unique_key is not None:
        query = query.where(Job.unique_key == unique_key)
    if not db.is_sqlite:
        query = query.with_for_update(skip_locked=True)
    with db.session() as session:
        job = session.scalar(query)
        if job is None:
            return None
        token = secrets.token_hex(16)
        job.status = "running"
        job.lease_token = token
        job.lease_owner = owner
        job.lease_expires_at = now + lease
        job.attempts += 1
        return ClaimedJob(
            job.id, job.kind, dict(job.payload), job.attempts, job.max_attempts, token
        )


def renew(db: Database, job: ClaimedJob, *, lease: timedelta = DEFAULT_LEASE) -> bool:
    """Extend a long job's lease; False when it was lost (stop working on it)."""
    with db.session() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.lease_token == job.lease_token, Job.status == "running")
            .values(lease_expires_at=utcnow() + lease)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def heartbeat(session: Session, job: ClaimedJob, *, lease: timedelta = DEFAULT_LEASE) -> None:
    """Inside a long job's transaction: prove the lease is still ours (and extend it), or raise
    LeaseLost so that the transaction, and the work in it, rolls back."""
    result = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.lease_token == job.lease_token, Job.status == "running")
        .values(lease_expires_at=utcnow() + lease)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise LeaseLost(f"job {job.id} ({job.kind}) was taken over after its lease expired")


def complete(session: Session, job: ClaimedJob) -> None:
    """Mark the job done inside the handler's transaction; LeaseLost if the lease is gone."""
    result = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.lease_token == job.lease_token, Job.status == "running")
        .values(status="done", finished_at=utcnow(), lease_token=None, unique_key=None)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise LeaseLost(f"job {job.id} ({job.kind}) was taken over after its lease expired")


def release(db: Database, job: ClaimedJob, *, delay: timedelta | None = None) -> None:
    """Give a claimed job back to the queue, due now (or after `delay`), without counting the
    attempt."""
    with db.session() as session:
        session.execute(
            update(Job)
            .where(Job.id == job.id, Job.lease_token == job.lease_token)
            .values(
                status="queued",
                run_after=utcnow() + (delay or timedelta()),
                attempts=Job.attempts - 1,
                lease_token=None,
                lease_owner=None,
                lease_expires_at=None,
            )
        )


KEEP_DONE = timedelta(days=1)  # long enough to see what just ran (`rapport jobs`)
KEEP_DEAD = timedelta(days=30)  # failed work stays in sight of the admin pages for a month


def prune(db: Database, *, now: datetime | None = None) -> int:
    """Delete finished jobs past keeping: each poll of each mailbox is a job (hundreds a day per
    mailbox), and a drop-address job holds the message it carried. Returns how many went."""
    now = now or utcnow()
    with db.session() as session:
        result = session.execute(
            delete(Job).where(
                or_(
                    and_(Job.status == "done", Job.finished_at < now - KEEP_DONE),
                    and_(Job.status == "dead", Job.finished_at < now - KEEP_DEAD),
                )
            )
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def backoff(attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with jitter, so many failing jobs do not retry in lockstep."""
    base = min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS)
    return timedelta(seconds=base * (rng or random).uniform(0.5, 1.5))


def fail(db: Database, job: ClaimedJob, error: str, *, retry_in: timedelta | None = None) -> str:
    """Record a failure: queue a retry with backoff, or mark the job dead. Returns the status."""
    dead = job.attempts >= job.max_attempts
    status = "dead" if dead else "queued"
    values: dict[str, Any] = {
        "status": status,
        "last_error": error[:4000],
        "lease_token": None,
        "lease_expires_at": None,
        "lease_owner": None,
    }
    if dead:
        values.update(finished_at=utcnow(), unique_key=None)
    else:
        values["run_after"] = utcnow() + (retry_in or backoff(job.attempts))
    with db.session() as session:
        session.execute(
            update(Job).where(Job.id == job.id, Job.lease_token == job.lease_token).values(**values)
        )
    if dead:
        log.error("job dead", extra={"job_id": job.id, "kind": job.kind, "error": error[:500]})
    return status


class Runner:
    """Claims jobs and runs their handlers, one at a time, until told to stop."""

    def __init__(
        self,
        db: Database,
        handlers: Mapping[str, Handler],
        *,
        long_handlers: Mapping[str, LongHandler] | None = None,
        owner: str | None = None,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        self.db = db
        self.handlers = dict(handlers)
        self.long_handlers = dict(long_handlers or {})
        self.owner = owner or runner_id()
        self.lease = lease
        self.stopping = False
        # Jobs whose failure could not be written because the database was gone: given back to
        # the queue (not counted as an attempt) as soon as it answers again.
        self.stranded: list[ClaimedJob] = []

    def give_back_stranded(self) -> None:
        """Release the jobs a database outage stranded; raises while it is still unreachable."""
        while self.stranded:
            release(self.db, self.stranded[0])
            self.stranded.pop(0)

    def run_one(self) -> ClaimedJob | None:
        """Claim and run one due job; returns it, or None when nothing was due."""
        self.give_back_stranded()
        kinds = [*self.handlers, *self.long_handlers]
        job = claim(self.db, owner=self.owner, kinds=kinds, lease=self.lease)
        if job is None:
            return None
        started = time.monotonic()
        try:
            if job.kind in self.long_handlers:
                self.long_handlers[job.kind](self.db, job)
                with self.db.session() as session:
                    complete(session, job)
            else:
                with self.db.session() as session:
                    self.handlers[job.kind](session, job.payload)
                    complete(session, job)
            log.info(
                "job done",
                extra={
                    "job_id": job.id,
                    "kind": job.kind,
                    "seconds": round(time.monotonic() - started, 3),
                },
            )
        except LeaseLost:
            log.warning("lease lost, work rolled back", extra={"job_id": job.id})
        except Requeue as requeue:
            release(self.db, job, delay=requeue.delay)
        except Exception as exc:
            log.exception("job failed", extra={"job_id": job.id, "kind": job.kind})
            try:
                fail(self.db, job, f"{type(exc).__name__}: {exc}")
            except OperationalError:
                self.stranded.append(job)  # the database is gone, not the job at fault
                raise
        return job

    def run(self, *, idle_sleep: float = 1.0, once: bool = False) -> int:
        """Run jobs until `stopping` (or, with once, until nothing is due). Returns jobs run."""
        count = 0
        while not self.stopping:
            job = self.run_one()
            if job is not None:
                count += 1
                continue
            if once:
                break
            time.sleep(idle_sleep)
        return count
