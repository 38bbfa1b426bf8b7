"""Syncing one linked mailbox: its source's pages → capture, each page with its checkpoint.

A page's messages, its removals and the folder's new checkpoint commit in ONE transaction, which
also proves (heartbeat) that this worker still holds the sync job's lease. So a crash at any
point loses nothing and repeats nothing: the next run resumes from the last committed checkpoint,
and re-seen messages are recognised by their identity. Errors are turned into the link's status
by their kind (see `server.crm.mailboxes.record_failure`), never by their text.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.config import Settings
from server.crm.capture import CaptureCounts, Capturer
from server.crm.mailboxes import link_info, record_failure, record_success
from server.crm.prepared import Prepared
from server.crm.rules import load_policy, seed_internal_domains
from server.crm.sql import upsert
from server.crm.timeparse import parse_since
from server.crypto import SecretBox
from server.db import Database
from server.jobs import ClaimedJob, heartbeat
from server.mail_ingest.errors import SessionRefused, SourceError
from server.mail_ingest.items import CalendarItem, MailItem
from server.mail_ingest.oauth import (
    IdentityEndpoints,
    link_graph_token_source,
    link_token_source,
)
from server.mail_ingest.parse_pool import CHUNK_SIZE, default_jobs
from server.mail_ingest.pipeline import Preparer, commit_batch, prepare_options
from server.mail_ingest.prefetch import Prefetch
from server.mail_ingest.prepare import Failures, PrepareOptions, prepare_item
from server.mail_ingest.sources.ews import EwsFolder, EwsSettings, EwsSource, ews_token_source
from server.mail_ingest.sources.files import RawMessage
from server.mail_ingest.sources.graph import GraphFolder, GraphSettings, GraphSource
from server.mail_ingest.sources.imap import ImapSettings, ImapSource
from server.models import MailboxLink, MailboxObservation, SyncCheckpoint, utcnow

log = logging.getLogger(__name__)

PAGES_AHEAD = 2


class Page(Protocol):
    @property
    def folder(self) -> str: ...
    @property
    def messages(self) -> list[RawMessage]: ...
    @property
    def removed(self) -> list[str]: ...
    @property
    def failures(self) -> list[tuple[str, str]]: ...
    @property
    def state(self) -> Mapping[str, Any]: ...
    @property
    def validity_changed(self) -> bool: ...


class Source(Protocol):
    def folders(self) -> list[str]: ...

    def sync_folder(
        self,
        folder: str,
        state: Mapping[str, object] | None,
        known_ids: Callable[[], Iterable[str]] | None = None,
    ) -> Iterator[Page]: ...

    def close(self) -> None: ...


SourceFactory = Callable[[MailboxLink, dict[str, Any], Settings], Source]


def imap_settings(link: MailboxLink, secret: dict[str, Any], settings: Settings) -> ImapSettings:
    config = link.settings
    return ImapSettings(
        host=str(config["host"]),
        port=int(config["port"]),
        security=config.get("security", "ssl"),
        user=str(config["user"]),
        password=secret.get("password"),
        oauth_token=secret.get("oauth_token"),
        token_source=link_token_source(link, secret, settings),  # None: a password link
        folders=config.get("folders"),
        ca_bundle=settings.ca_bundle,
    )


def imap_source(link: MailboxLink, secret: dict[str, Any], settings: Settings) -> Source:
    return ImapSource(imap_settings(link, secret, settings))


def graph_settings(link: MailboxLink, secret: dict[str, Any], settings: Settings) -> GraphSettings:
    config = link.settings
    return GraphSettings(
        mailbox=str(config["mailbox"]),
        token_source=link_graph_token_source(link, secret, settings),
        folders=tuple(GraphFolder(str(f["name"]), str(f["id"])) for f in config["folders"]),
        api_url=settings.graph_api_url,
        calendar=bool(config.get("calendar", True)),
        capture_level=link.capture_level,
        since=parse_since(config["since"]) if config.get("since") else None,
        ca_bundle=settings.ca_bundle,
    )


def graph_source(link: MailboxLink, secret: dict[str, Any], settings: Settings) -> Source:
    return GraphSource(graph_settings(link, secret, settings))


def ews_settings(link: MailboxLink, secret: dict[str, Any], settings: Settings) -> EwsSettings:
    config = link.settings
    version = config.get("server_version")
    return EwsSettings(
        server=str(config["server"]),
        mailbox=str(config["mailbox"]),
        user=str(config["user"]),
        password=str(secret.get("password") or ""),
        auth=str(config.get("auth", "ntlm")),
        access=str(config.get("access", "impersonation")),
        folders=tuple(EwsFolder(str(f["name"]), str(f["id"])) for f in config["folders"]),
        calendar=bool(config.get("calendar_id")),
        calendar_id=config.get("calendar_id"),
        capture_level=link.capture_level,
        since=parse_since(config["since"]) if config.get("since") else None,
        ca_bundle=settings.ca_bundle,
        version=(int(version[0]), int(version[1]), int(version[2]), int(version[3]))
        if isinstance(version, list) and len(version) == 4
        else None,
        api_version=config.get("api_version"),
        token_source=ews_token_source(config, secret, IdentityEndpoints.from_settings(settings)),
    )


def ews_source(link: MailboxLink, secret: dict[str, Any], settings: Settings) -> Source:
    return EwsSource(ews_settings(link, secret, settings))


# One line per source kind; the rest of the worker never branches on the provider.
SOURCES: dict[str, SourceFactory] = {"imap": imap_source, "graph": graph_source, "ews": ews_source}


@dataclass
class SyncResult:
    link_id: int
    counts: CaptureCounts = field(default_factory=CaptureCounts)
    pages: int = 0
    error: str | None = None


def sync_link(
    db: Database,
    settings: Settings,
    link_id: int,
    *,
    job: ClaimedJob | None = None,
    jobs: int | None = None,
    stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[CaptureCounts], None] | None = None,
) -> SyncResult:
    """One pass over every folder of a link. Errors end up in the link's status, not raised."""
    box = SecretBox(settings.secret_keys)
    with db.session() as session:
        seed_internal_domains(session, settings.internal_domains)
        link = session.get(MailboxLink, link_id)
        if link is None or link.kind not in SOURCES or link.status not in ("active", "error"):
            return SyncResult(link_id, error="not an active link with a source")
        info = link_info(link)
        policy = load_policy(session)
        secret = box.decrypt_json(link.secret) if link.secret else {}
        since = parse_since(link.settings["since"]) if link.settings.get("since") else None
        source = SOURCES[link.kind](link, secret, settings)
    result = SyncResult(link_id)
    capturer = Capturer(info, policy, since=since)
    options = prepare_options(info, policy)
    try:
        with (
            Preparer(options, jobs=jobs or default_jobs()) as preparer,
            db.background_checkpoints(),
        ):
            fetch_elsewhere = getattr(source, "fetch_elsewhere", None)
            if fetch_elsewhere is not None and preparer.parallel:
                fetch_elsewhere(CHUNK_SIZE)  # big pages: fetched by the workers that parse them
            run = _FolderRun(db, link_id, job, capturer, preparer, result, stop, on_progress)
            for folder in source.folders():
                if stop():
                    break
                try:
                    run.sync(source, folder)
                except SessionRefused as exc:
                    assert fetch_elsewhere is not None
                    log.warning(
                        "a parse worker could not open its own session; fetching in one",
                        extra={"link_id": link_id, "folder": folder, "error": exc.message},
                    )
                    fetch_elsewhere(None)
                    run.sync(source, folder)  # again from the folder's last checkpoint
        with db.session() as session:
            record_success(session, link_id)
    except SourceError as exc:
        result.error = exc.message
        log.warning(
            "sync failed",
            extra={"link_id": link_id, "kind": type(exc).__name__, "error": exc.message},
        )
        with db.session() as session:
            record_failure(
                session,
                link_id,
                kind=type(exc).__name__,
                message=exc.message,
                retry_after=getattr(exc, "retry_after", None),
            )
    finally:
        source.close()
    return result


@dataclass
class _FolderRun:
    """Syncing a link's folders one by one, each page committed with its checkpoint."""

    db: Database
    link_id: int
    job: ClaimedJob | None
    capturer: Capturer
    preparer: Preparer
    result: SyncResult
    stop: Callable[[], bool]
    on_progress: Callable[[CaptureCounts], None] | None

    def sync(self, source: Source, folder: str) -> None:
        pages = source.sync_folder(
            folder,
            _checkpoint(self.db, self.link_id, folder),
            known_ids=_known_ids(self.db, self.link_id, folder),
        )
        # While a page is written, the next one is parsed and the one after it fetched.
        with Prefetch(pages) as fetched:
            for page, parsed, failures in _parsed_ahead(fetched, self.preparer):
                prepared = parsed + _ready_items(page, self.preparer.options)
                counts = commit_batch(
                    self.db,
                    self.capturer,
                    prepared,
                    also=_page_commit(self.link_id, page, failures, self.job),
                )
                self.result.counts.add(counts)
                self.result.pages += 1
                if self.on_progress is not None:
                    self.on_progress(counts)
                if self.stop():
                    break


def _checkpoint(db: Database, link_id: int, folder: str) -> dict[str, Any]:
    with db.read_session() as session:
        row = session.scalar(
            select(SyncCheckpoint).where(
                SyncCheckpoint.link_id == link_id, SyncCheckpoint.folder == folder
            )
        )
        return dict(row.state) if row is not None else {}


def _parsed_ahead(
    pages: Iterable[Page], preparer: Preparer
) -> Iterator[tuple[Page, list[Prepared], Failures]]:
    """Each page with its messages prepared and the messages its server would not send, in
    order. A page's parsing starts as soon as it has arrived (or, left for the workers to fetch,
    as soon as it is named), up to PAGES_AHEAD pages before the one being written: with only one,
    the workers waited for each commit, and the commit for them."""
    started: deque[tuple[Page, Callable[[], tuple[list[Prepared], Failures]]]] = deque()
    for page in pages:
        started.append((page, _start(page, preparer)))
        if len(started) > PAGES_AHEAD:
            page_, result = started.popleft()
            yield page_, *result()
    while started:
        page_, result = started.popleft()
        yield page_, *result()


def _start(page: Page, preparer: Preparer) -> Callable[[], tuple[list[Prepared], Failures]]:
    pending = getattr(page, "pending", None)
    if pending is not None:
        return preparer.start_fetch(pending)
    parsed = preparer.start(page.messages)
    return lambda: (parsed(), page.failures)


def _ready_items(page: Page, options: PrepareOptions) -> list[Prepared]:
    """Items a source built itself (Graph's JSON: emails at capture levels below full, calendar
    events), prepared like parsed ones; sources without them have no `items`."""
    prepared: list[Prepared] = []
    for item in getattr(page, "items", None) or ():
        if isinstance(item, MailItem):
            prepared.append(prepare_item(item, options))
        elif isinstance(item, CalendarItem):
            prepared.append(
                Prepared(
                    folder=item.folder,
                    provider_id=item.provider_id,
                    calendar=[item],
                    message_key=f"event:{item.provider_id}",
                )
            )
    return prepared


class HeldIds:
    """The provider ids we hold (live) for a folder: called, it streams them (never a whole
    mailbox in memory); `among(ids)` answers for a few ids with one query per 500."""

    def __init__(self, db: Database, link_id: int, folder: str) -> None:
        self.db = db
        self.link_id = link_id
        self.folder = folder

    def _live(self) -> Any:
        return (
            (MailboxObservation.link_id == self.link_id)
            & (MailboxObservation.folder == self.folder)
            & MailboxObservation.deleted_at.is_(None)
        )

    def __call__(self) -> Iterator[str]:
        with self.db.read_session() as session:
            rows = session.execute(
                select(MailboxObservation.provider_id)
                .where(self._live())
                .execution_options(yield_per=2000)
            )
            for (provider_id,) in rows:
                yield provider_id

    def among(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        unique = sorted(set(ids))
        with self.db.read_session() as session:
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                found.update(
                    session.scalars(
                        select(MailboxObservation.provider_id).where(
                            self._live(), MailboxObservation.provider_id.in_(chunk)
                        )
                    )
                )
        return found


def _known_ids(db: Database, link_id: int, folder: str) -> HeldIds:
    """The provider ids we hold for a folder (see HeldIds)."""
    return HeldIds(db, link_id, folder)


def _page_commit(
    link_id: int, page: Page, failures: Failures, job: ClaimedJob | None
) -> Callable[[Session], None]:
    """What commits with a page besides its messages: lease proof, removals, checkpoint."""

    def also(session: Session) -> None:
        if job is not None:
            heartbeat(session, job)
        now = utcnow()
        in_folder = (MailboxObservation.link_id == link_id) & (
            MailboxObservation.folder == page.folder
        )
        if page.validity_changed:
            # Every id we held is void; the resync re-finds (and undeletes) what is still there.
            session.execute(
                update(MailboxObservation)
                .where(in_folder, MailboxObservation.deleted_at.is_(None))
                .values(deleted_at=now)
            )
        for start in range(0, len(page.removed), 500):
            chunk = page.removed[start : start + 500]
            session.execute(
                update(MailboxObservation)
                .where(in_folder, MailboxObservation.provider_id.in_(chunk))
                .values(deleted_at=now)
            )
        for provider_id, reason in failures:
            _record_fetch_failure(session, link_id, page.folder, provider_id, reason)
        _save_checkpoint(session, link_id, page.folder, page.state)

    return also


def _record_fetch_failure(
    session: Session, link_id: int, folder: str, provider_id: str, reason: str
) -> None:
    upsert(
        session,
        "capture_decisions",
        ("link_id", "folder", "message_key"),
        ("decision", "rule", "detail", "decided_at"),
        [
            {
                "link_id": link_id,
                "folder": folder,
                "message_key": f"provider:{provider_id}",
                "provider_id": provider_id,
                "decision": "quarantined",
                "rule": "fetch_failed",
                "detail": reason[:4000],
                "decided_at": utcnow(),
            }
        ],
    )


def _save_checkpoint(session: Session, link_id: int, folder: str, state: Mapping[str, Any]) -> None:
    row = session.scalar(
        select(SyncCheckpoint).where(
            SyncCheckpoint.link_id == link_id, SyncCheckpoint.folder == folder
        )
    )
    if row is None:
        session.add(
            SyncCheckpoint(link_id=link_id, folder=folder, state=state, updated_at=utcnow())
        )
    else:
        row.state = dict(state)
        row.updated_at = utcnow()
