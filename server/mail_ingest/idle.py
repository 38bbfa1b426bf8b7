"""IMAP IDLE as a wake-up signal: new mail in INBOX makes its link due at once.

Polling every few minutes is the safety net; IDLE only shortens the wait. One connection per
mailbox is the most a server's per-user limit comfortably allows, so only INBOX is watched, and
only by the worker that last synced the link (recorded in `MailboxLink.lease_owner`), so several
workers never IDLE on the same mailbox. A watcher never captures anything itself: it sets the
link's `next_run_at` to now and the normal sync does the rest.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from sqlalchemy import select, update

from server.config import Settings
from server.crypto import SecretBox
from server.db import Database
from server.mail_ingest.errors import SourceError
from server.mail_ingest.sources.imap import ImapSource
from server.mail_ingest.sync import imap_settings
from server.models import MailboxLink, SyncCheckpoint, utcnow

log = logging.getLogger(__name__)

MAX_WATCHERS = 25
IDLE_SLICE = 60.0  # seconds per IDLE, so a stopping worker is not held up for long
RETRY_AFTER_ERROR = 60.0


class IdleWatchers:
    def __init__(self, db: Database, settings: Settings, owner: str) -> None:
        self.db = db
        self.settings = settings
        self.owner = owner
        self._stop = threading.Event()
        self._threads: dict[int, threading.Thread] = {}
        self._wanted: set[int] = set()
        self._sources: dict[int, ImapSource] = {}

    def refresh(self) -> None:
        """Watch the active IMAP links this worker synced last; stop watching the others."""
        with self.db.read_session() as session:
            wanted = set(
                session.scalars(
                    select(MailboxLink.id)
                    .where(
                        MailboxLink.kind == "imap",
                        MailboxLink.status == "active",
                        MailboxLink.lease_owner == self.owner,
                    )
                    .order_by(MailboxLink.id)
                    .limit(MAX_WATCHERS)
                )
            )
        self._wanted = wanted
        for link_id in wanted - set(self._threads):
            thread = threading.Thread(
                target=self._watch, args=(link_id,), name=f"idle-{link_id}", daemon=True
            )
            self._threads[link_id] = thread
            thread.start()
        for link_id in [i for i, t in self._threads.items() if not t.is_alive()]:
            del self._threads[link_id]

    def stop(self) -> None:
        """Stop at once: closing a watcher's connection ends its IDLE from under it."""
        self._stop.set()
        for source in list(self._sources.values()):
            with contextlib.suppress(Exception):  # it may be gone already; we are stopping
                source.close()
        for thread in self._threads.values():
            thread.join(timeout=5)

    def _watch(self, link_id: int) -> None:
        while not self._stop.is_set() and link_id in self._wanted:
            try:
                if self._wait_for_mail(link_id):
                    self._make_due(link_id)
            except SourceError as exc:
                if not self._stop.is_set():
                    log.info("idle watch paused", extra={"link_id": link_id, "error": exc.message})
                self._stop.wait(RETRY_AFTER_ERROR)
            except Exception:  # a bug here must not kill the worker; polling still runs
                if not self._stop.is_set():
                    log.exception("idle watcher failed", extra={"link_id": link_id})
                self._stop.wait(RETRY_AFTER_ERROR)

    def _wait_for_mail(self, link_id: int) -> bool:
        with self.db.read_session() as session:
            link = session.get(MailboxLink, link_id)
            if link is None or link.status != "active":
                self._wanted.discard(link_id)
                return False
            secret = SecretBox(self.settings.secret_keys).decrypt_json(link.secret or b"")
            state = session.scalar(
                select(SyncCheckpoint.state).where(
                    SyncCheckpoint.link_id == link_id, SyncCheckpoint.folder == "INBOX"
                )
            )
            source = ImapSource(imap_settings(link, secret, self.settings))
        self._sources[link_id] = source
        try:
            return source.idle_wait("INBOX", timeout=IDLE_SLICE, state=state)
        finally:
            self._sources.pop(link_id, None)
            source.close()

    def _make_due(self, link_id: int) -> None:
        with self.db.session() as session:
            session.execute(
                update(MailboxLink)
                .where(MailboxLink.id == link_id, MailboxLink.status == "active")
                .values(next_run_at=utcnow())
            )


def remember_syncer(db: Database, link_id: int, owner: str) -> None:
    """Record which worker synced a link last: that worker watches it between polls."""
    with db.session() as session:
        session.execute(
            update(MailboxLink).where(MailboxLink.id == link_id).values(lease_owner=owner)
        )
