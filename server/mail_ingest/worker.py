"""`rapport worker`: captures from every linked mailbox that is due, and runs the drop address.

Scheduling goes through the job queue: each due link gets one "sync_link" job (its unique key
keeps it to one at a time), which whichever worker claims it runs under the job's lease. Several
workers on several machines share the links through PostgreSQL this way; on SQLite a second
worker refuses to start. SIGTERM or Ctrl-C stops after the page being captured, and the job goes
back to the queue. Mail sent to a drop address is stored as a "capture_drop" job before the SMTP
server says 250, then captured by the same runner. The same runner keeps relationship signals
current (`server.crm.signals.upkeep`: after captured mail, and every hour).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import logging
import os
import signal
import ssl
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import IO, Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from server.config import Settings
from server.crm import retention
from server.crm.campaigns import JOB as CAMPAIGN_JOB
from server.crm.capture import Capturer
from server.crm.errors import Conflict, DomainError
from server.crm.mailboxes import link_info
from server.crm.rules import load_policy
from server.crm.signals import upkeep as signal_upkeep
from server.crm.webhooks import JOB as WEBHOOK_JOB
from server.crm.webhooks import announce_due_follow_ups
from server.db import Database
from server.jobs import ClaimedJob, Requeue, Runner, claim, enqueue, heartbeat, runner_id
from server.jobs import prune as prune_jobs
from server.mail_ingest import parse_server
from server.mail_ingest.graph_notify import JOB as SUBSCRIPTIONS_JOB
from server.mail_ingest.graph_notify import SubscriptionKeeper
from server.mail_ingest.idle import IdleWatchers, remember_syncer
from server.mail_ingest.parse_pool import default_jobs
from server.mail_ingest.pipeline import prepare_options
from server.mail_ingest.prepare import prepare_raw
from server.mail_ingest.sources.drop import DropServer, DropTarget, drop_content
from server.mail_ingest.sources.files import RawMessage
from server.mail_ingest.sync import SOURCES, sync_link
from server.mail_out.campaigns import CampaignSender
from server.mail_out.digests import JOB as DIGEST_JOB
from server.mail_out.digests import DigestScheduler
from server.mail_out.webhooks import Deliverer
from server.models import Job, MailboxLink, utcnow

RETENTION_JOB = "retention_sweep"

log = logging.getLogger(__name__)

DROP_MAX_SIZE = 25 * 1024 * 1024
WATCH_REFRESH_SECONDS = 15.0


def schedule_due_links(db: Database) -> int:
    """Queue a sync for every link that is due (one pending sync per link at most)."""
    now = utcnow()
    queued = 0
    with db.session() as session:
        due = session.scalars(
            select(MailboxLink.id).where(
                MailboxLink.kind.in_(list(SOURCES)),
                MailboxLink.status.in_(("active", "error")),
                or_(MailboxLink.next_run_at.is_(None), MailboxLink.next_run_at <= now),
            )
        ).all()
        for link_id in due:
            if enqueue(session, "sync_link", {"link_id": link_id}, unique_key=f"sync:{link_id}"):
                queued += 1
    return queued


def claim_sync_now(db: Database, link_id: int) -> ClaimedJob:
    """Take the link's sync job for this process (`rapport mailbox sync`), or say who has it."""
    key = f"sync:{link_id}"
    with db.session() as session:
        enqueue(session, "sync_link", {"link_id": link_id}, unique_key=key)
        session.execute(
            update(Job)
            .where(Job.unique_key == key, Job.status == "queued")
            .values(run_after=utcnow())
        )
    job = claim(db, owner=runner_id(), kinds=["sync_link"], unique_key=key)
    if job is None:
        with db.read_session() as session:
            holder = session.scalar(select(Job.lease_owner).where(Job.unique_key == key))
        raise Conflict(f"link {link_id} is being synced right now by worker {holder}; try later")
    return job


# -- the drop address -------------------------------------------------------------------------


def resolve_drop_token(db: Database, token: str) -> DropTarget | None:
    with db.read_session() as session:
        link = session.scalar(
            select(MailboxLink).where(
                MailboxLink.kind == "drop",
                MailboxLink.drop_token == token.lower(),
                MailboxLink.status == "active",
            )
        )
        if link is None:
            return None
        info = link_info(link)
        return DropTarget(
            token=token.lower(), user_id=link.id, owner_addresses=info.owner_addresses
        )


def store_drop(db: Database, target: DropTarget, raw: bytes, _sender: str, _rcpt: str) -> None:
    """Durably queue what was sent to a drop address (before the SMTP server says 250)."""
    content = drop_content(raw, target.owner_addresses)
    with db.session() as session:
        enqueue(
            session,
            "capture_drop",
            {"link_id": target.user_id, "raw": base64.b64encode(content).decode("ascii")},
        )


def capture_drop(session: Session, payload: Mapping[str, Any]) -> None:
    """Capture one message from a drop address, in the job's transaction."""
    link = session.get(MailboxLink, int(payload["link_id"]))
    if link is None or link.status != "active":
        return
    raw = base64.b64decode(payload["raw"])
    info = link_info(link)
    policy = load_policy(session)
    options = prepare_options(info, policy)
    prepared = prepare_raw(RawMessage(raw, "drop", hashlib.sha256(raw).hexdigest()), options)
    Capturer(info, policy).capture_batch(session, [prepared])
    link.last_success_at = utcnow()


# -- the worker -------------------------------------------------------------------------------


class Outage:
    """How long to wait before asking an unreachable database again: 0.5 s, doubling up to 30 s;
    logged once when it starts and once when it ends, not on every try."""

    def __init__(self) -> None:
        self.wait = 0.0
        self.since: float | None = None

    def next_wait(self, exc: Exception) -> float:
        if self.since is None:
            self.since = time.monotonic()
            log.warning("the database is unreachable; waiting for it: %s", str(exc).strip()[:300])
        self.wait = min(30.0, max(0.5, self.wait * 2))
        return self.wait

    def over(self) -> None:
        if self.since is not None:
            log.warning("the database answers again after %.0f s", time.monotonic() - self.since)
        self.since, self.wait = None, 0.0


class Worker:
    def __init__(self, db: Database, settings: Settings, *, idle_sleep: float = 1.0) -> None:
        self.db = db
        self.settings = settings
        self.idle_sleep = idle_sleep
        self.digests = DigestScheduler(db, settings)
        self.webhooks = Deliverer(settings)
        self.campaigns = CampaignSender(settings, stopping=lambda: self.stopping)
        self._next_due_check = 0.0
        self._next_retention_check = 0.0
        self._next_prune = 0.0
        # Set by a sync: this worker may now be the one to watch its link with IDLE, from the
        # next round on rather than at the next periodic refresh (up to 15 s later).
        self._watch_again = False
        self.subscriptions = SubscriptionKeeper(db, settings)  # Graph change notifications
        self.runner = Runner(
            db,
            {"capture_drop": capture_drop, **signal_upkeep.HANDLERS},
            long_handlers={
                "sync_link": self._sync,
                DIGEST_JOB: self.digests.job,
                WEBHOOK_JOB: self.webhooks.job,
                CAMPAIGN_JOB: self.campaigns.job,
                RETENTION_JOB: self._retention,
                SUBSCRIPTIONS_JOB: self.subscriptions.job,
                **signal_upkeep.LONG_HANDLERS,
            },
        )
        self._lock: IO[str] | None = None

    @property
    def stopping(self) -> bool:
        return self.runner.stopping

    def stop(self, *_args: object) -> None:
        self.runner.stopping = True

    def _sync(self, db: Database, job: ClaimedJob) -> None:
        link_id = int(job.payload["link_id"])
        result = sync_link(db, self.settings, link_id, job=job, stop=lambda: self.stopping)
        if result.error is None:
            remember_syncer(db, link_id, self.runner.owner)
            self._watch_again = True
        if self.stopping and result.error is None:
            # Interrupted between pages: back to the queue; it resumes from its checkpoint.
            raise Requeue()

    def run(self, *, once: bool = False) -> int:
        """Run until stopped (or, with once, until nothing is due). Returns jobs run."""
        self._take_sqlite_lock()
        handlers = {
            signal.SIGTERM: signal.signal(signal.SIGTERM, self._on_signal),
            signal.SIGINT: signal.signal(signal.SIGINT, self._on_signal),
        }
        drop = self._start_drop()
        if not once and default_jobs() > 1:
            parse_server.start()  # warm for the first sync, while the worker looks for work
        watchers = IdleWatchers(self.db, self.settings, self.runner.owner)
        count = 0
        last_refresh = 0.0
        outage = Outage()
        try:
            while not self.stopping:
                try:
                    since_refresh = time.monotonic() - last_refresh
                    if not once and (self._watch_again or since_refresh > WATCH_REFRESH_SECONDS):
                        self._watch_again = False
                        watchers.refresh()
                        last_refresh = time.monotonic()
                    job = self._one_round()
                except OperationalError as exc:
                    if once:
                        raise
                    # The database is gone (restarted, failed over, the network): wait for it
                    # rather than exit; the job in hand goes back to the queue once it answers.
                    self._wait(outage.next_wait(exc))
                    continue
                outage.over()
                if job is not None:
                    count += 1
                    continue
                if once:
                    break
                time.sleep(self.idle_sleep)
        finally:
            watchers.stop()
            self.webhooks.close()
            if drop is not None:
                drop.stop()
            for sig, previous in handlers.items():
                signal.signal(sig, previous)
            self._release_lock()
        return count

    def _one_round(self) -> ClaimedJob | None:
        """Queue what is due, then run one job (None when there was none)."""
        schedule_due_links(self.db)
        signal_upkeep.schedule(self.db)
        self.digests.schedule()
        self._announce_due_follow_ups()
        self._schedule_retention()
        self._prune_jobs()
        self.subscriptions.schedule()
        return self.runner.run_one()

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.2, seconds))

    def _announce_due_follow_ups(self) -> None:
        """follow_up.due webhooks, looked for once a minute."""
        if time.monotonic() < self._next_due_check:
            return
        self._next_due_check = time.monotonic() + 60
        with self.db.session() as session:
            announce_due_follow_ups(session)

    def _schedule_retention(self) -> None:
        """The daily sweep of old email content, when an admin set a limit (every 10 minutes
        the worker looks whether one is due; a unique key makes it one job across workers)."""
        if time.monotonic() < self._next_retention_check:
            return
        self._next_retention_check = time.monotonic() + 600
        with self.db.read_session() as session:
            if not retention.due(session, utcnow()):
                return
        with self.db.session() as session:
            enqueue(session, RETENTION_JOB, {}, unique_key="retention")

    def _prune_jobs(self) -> None:
        """Finished jobs past keeping go, looked for once an hour (any worker may do it)."""
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + 3600
        pruned = prune_jobs(self.db)
        if pruned:
            log.info("finished jobs deleted", extra={"count": pruned})

    def _retention(self, db: Database, job: ClaimedJob) -> None:
        @contextmanager
        def unit() -> Iterator[Session]:
            with db.session() as session:
                heartbeat(session, job)
                yield session

        dropped = retention.sweep(unit)
        log.info("retention sweep", extra={"emails": dropped})

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("stopping after the current page", extra={"signal": signum})
        self.stop()

    def _start_drop(self) -> DropServer | None:
        if self.settings.drop_listen is None:
            return None
        host, port = self.settings.drop_listen
        server = DropServer(
            host,
            port,
            domain=self.settings.drop_domain or "",
            resolve_token=lambda token: resolve_drop_token(self.db, token),
            store=lambda target, raw, sender, rcpt: store_drop(self.db, target, raw, sender, rcpt),
            max_size=DROP_MAX_SIZE,
            tls_context=_drop_tls(self.settings),
        )
        server.start()
        return server

    def _take_sqlite_lock(self) -> None:
        if not self.db.is_sqlite:
            return
        path = self.settings.data_dir / "worker.lock"
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise DomainError(
                f"another rapport worker ({holder}) is running on this SQLite database; SQLite "
                "takes one worker: stop it, or move to PostgreSQL to run several"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._lock = handle

    def _release_lock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def _drop_tls(settings: Settings) -> ssl.SSLContext | None:
    if settings.drop_tls_cert is None or settings.drop_tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.drop_tls_cert, settings.drop_tls_key)
    return context
