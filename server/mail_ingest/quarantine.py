"""Retrying quarantined messages after a fix: `rapport capture retry`.

Quarantined bytes are kept exactly as received. When a newer Rapport reads what an older one
could not, a retry parses them again and captures the ones that now parse, through the same
pipeline and rules as any other mail; the rest stay quarantined with their (new) reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select, update

from server.crm.blobs import get_blob
from server.crm.capture import CaptureCounts
from server.crm.mailboxes import link_info
from server.crm.prepared import Prepared
from server.crm.rules import load_policy
from server.db import Database
from server.mail_ingest.pipeline import capture, prepare_options
from server.mail_ingest.prepare import PrepareOptions, prepare_raw
from server.mail_ingest.sources.files import ICS_SUFFIXES, RawMessage
from server.models import MailboxLink, QuarantinedItem, utcnow


@dataclass
class RetryResult:
    tried: int
    resolved: int
    counts: CaptureCounts


def retry_quarantined(db: Database, *, link_id: int | None = None) -> RetryResult:
    with db.session() as session:
        query = select(QuarantinedItem.id, QuarantinedItem.link_id).where(
            QuarantinedItem.resolved_at.is_(None), QuarantinedItem.reason != "too_large"
        )
        if link_id is not None:
            query = query.where(QuarantinedItem.link_id == link_id)
        by_link: dict[int, list[int]] = {}
        for item_id, owner_link in session.execute(query):
            by_link.setdefault(owner_link, []).append(item_id)
        policy = load_policy(session)
        links = {
            link.id: link_info(link)
            for link in session.scalars(select(MailboxLink).where(MailboxLink.id.in_(by_link)))
        }
    total = CaptureCounts()
    resolved = 0
    for owner_link, item_ids in by_link.items():
        info = links[owner_link]
        options = prepare_options(info, policy)
        parsed: list[int] = []
        run = capture(db, info, policy, _reparsed(db, item_ids, options, parsed))
        total.add(run.counts)
        if parsed:
            with db.session() as session:
                session.execute(
                    update(QuarantinedItem)
                    .where(QuarantinedItem.id.in_(parsed))
                    .values(resolved_at=utcnow())
                )
            resolved += len(parsed)
    tried = sum(len(ids) for ids in by_link.values())
    return RetryResult(tried=tried, resolved=resolved, counts=total)


def _reparsed(
    db: Database, item_ids: list[int], options: PrepareOptions, parsed: list[int]
) -> Iterator[Prepared]:
    """Each quarantined item parsed again; the ids that now parse are appended to `parsed`."""
    for item_id in item_ids:
        with db.read_session() as session:
            item = session.get(QuarantinedItem, item_id)
            assert item is not None
            raw = get_blob(session, item.raw_sha256)
            kind = "calendar" if item.provider_id.lower().endswith(ICS_SUFFIXES) else "mail"
            message = RawMessage(raw, item.folder, item.provider_id, kind)
        result = prepare_raw(message, options)
        if result.quarantine_reason is None:
            parsed.append(item_id)
        yield result
