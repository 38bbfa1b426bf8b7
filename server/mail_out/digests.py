"""Daily digests on their way out: the worker's job and schedule, and `rapport digest send`.

The worker calls `schedule` from its loop; at most every few minutes it asks which users' digest
hour has come (`server.crm.digest.due_users`) and queues one "digest_send" job per user and local
day, under a unique key: several workers, on several machines, queue it once. The job builds the
digest, sends it, and records the day as sent — in that order, so a crash between sending and
recording sends it again rather than never (at least once; the job queue retries a failure with
backoff, and a digest that cannot go out after its attempts is a failed job an admin sees in
`rapport jobs`). An empty day is recorded without sending anything.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date, datetime

from server.config import Settings
from server.crm.digest import build_digest, due_users, record_sent, render_digest, was_sent
from server.db import Database
from server.jobs import ClaimedJob, enqueue
from server.mail_out.smtp import send, sender_of
from server.models import utcnow

log = logging.getLogger(__name__)

JOB = "digest_send"
CHECK_EVERY_SECONDS = 300.0


@dataclass(frozen=True)
class Outcome:
    address: str
    sent: bool
    things: int


def send_digest(
    db: Database,
    settings: Settings,
    user_id: int,
    *,
    day: date | None = None,
    force: bool = False,
) -> Outcome:
    """Build and send one user's digest as things stand now, for `day` (the local day it was
    queued for; default: theirs today), unless that day's went out already or `force`."""
    with db.read_session() as session:
        digest = build_digest(session, user_id, now=utcnow(), app_url=settings.public_url)
        day = day or digest.day
        done = was_sent(session, user_id, day)
    if done and not force:
        return Outcome(digest.address, False, digest.count)
    if not digest.empty:
        message = render_digest(digest, sender=sender_of(settings), app_url=settings.public_url)
        send(settings, message)
    with db.session() as session:
        record_sent(session, user_id, day)
    return Outcome(digest.address, not digest.empty, digest.count)


class DigestScheduler:
    """The worker's part: look for due digests now and then, queue a job for each."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._next = 0.0

    def schedule(self, *, now: datetime | None = None) -> int:
        can_send = self.settings.smtp_url or self.settings.demo
        if not can_send or time.monotonic() < self._next:
            return 0
        self._next = time.monotonic() + CHECK_EVERY_SECONDS
        with self.db.read_session() as session:
            due = due_users(session, now)
        if not due:
            return 0
        queued = 0
        with self.db.session() as session:
            for user_id, day in due:
                key = f"digest:{user_id}:{day.isoformat()}"
                payload = {"user_id": user_id, "day": day.isoformat()}
                if enqueue(session, JOB, payload, unique_key=key, max_attempts=6):
                    queued += 1
        return queued

    def job(self, db: Database, job: ClaimedJob) -> None:
        day = date.fromisoformat(str(job.payload["day"])) if job.payload.get("day") else None
        outcome = send_digest(db, self.settings, int(job.payload["user_id"]), day=day)
        log.info(
            "digest",
            extra={"user": outcome.address, "sent": outcome.sent, "things": outcome.things},
        )
