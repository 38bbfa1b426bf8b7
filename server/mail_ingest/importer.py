"""`rapport import`: mail archives and calendar files on disk captured as if seen in one owner's
mailbox (.mbox, Maildir, .eml, and .ics files whose events become meetings)."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from server.config import Settings
from server.crm.capture import CaptureCounts
from server.crm.mailboxes import import_link, link_info
from server.crm.rules import load_policy, seed_internal_domains
from server.db import Database
from server.mail_ingest.import_start import ImportStart, start_import
from server.mail_ingest.parse_pool import default_jobs
from server.mail_ingest.pipeline import CaptureRun, capture, prepare_options, prepared_stream
from server.mail_ingest.sources.files import Unreadable

# Net new objects that set off a young collection while capture runs (Python's default is 700).
YOUNG_COLLECTION_THRESHOLD = 50_000


@dataclass
class ImportResult:
    run: CaptureRun
    link_id: int
    unreadable: list[Unreadable] = field(default_factory=list)


def import_files(
    db: Database,
    settings: Settings,
    paths: Sequence[Path],
    *,
    owner: str,
    since: datetime | None = None,
    capture_level: str | None = None,
    aliases: Sequence[str] = (),
    jobs: int | None = None,
    on_progress: Callable[[CaptureCounts], None] | None = None,
    start: ImportStart | None = None,
) -> ImportResult:
    """Capture the files' messages; `start` is `start_import(paths, ...)` called earlier (the
    command line does, to set the workers going sooner)."""
    if start is None:
        start = start_import(paths, jobs=jobs or default_jobs())
    try:
        with db.session() as session:
            seed_internal_domains(session, settings.internal_domains)
            link = import_link(session, owner, capture_level=capture_level, aliases=aliases)
            info = link_info(link)
            policy = load_policy(session)
        options = prepare_options(info, policy)
        stream = prepared_stream(start.messages, options, jobs=start.jobs, started=start.stream)
        with _collections_for_batches():
            run = capture(db, info, policy, stream, since=since, on_progress=on_progress)
    finally:
        start.close()
    return ImportResult(run=run, link_id=info.id, unreadable=start.unreadable)


@contextmanager
def _collections_for_batches() -> Iterator[None]:
    """The garbage collector tuned for capture's batches, then put back.

    What exists when capture starts (modules, mappers, the policy) outlives it: frozen out of
    the collector's sight, collections walk only what capture makes. Unfrozen after, so that a
    process that imports again (the tests) can still collect what it made before.

    A batch holds a few hundred thousand live objects until it is written, and nearly all of
    them are freed by reference counting when it is. At the default threshold the collector
    walked them ~320 times in a 5,000-message import (0.22-0.26 s of the main process's 4 s);
    at 50,000 it runs once or twice, and cyclic garbage waits at most that many objects.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
