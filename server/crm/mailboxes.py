"""Linked mailboxes: creating them, and what capture needs to know about one."""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from server.crm.addresses import normalise_address
from server.crm.capture import LinkInfo
from server.crm.errors import Conflict, DomainError, NotFound
from server.crm.paging import Page, keyset_page
from server.mail_ingest.items import CAPTURE_LEVELS
from server.models import (
    Activity,
    CaptureDecision,
    MailboxLink,
    MailboxObservation,
    SyncCheckpoint,
    User,
    utcnow,
)

if TYPE_CHECKING:
    from server.crypto import SecretBox  # type only: cryptography is not needed to capture


def owner_address(raw: str) -> str:
    address = normalise_address(raw)
    if address is None:
        raise DomainError(f"'{raw}' is not an email address", field="owner")
    return address


def check_level(level: str) -> str:
    if level not in CAPTURE_LEVELS:
        raise DomainError(
            f"capture level must be one of {', '.join(CAPTURE_LEVELS)}", field="capture_level"
        )
    return level


def import_link(
    session: Session,
    owner: str,
    *,
    capture_level: str | None = None,
    aliases: Sequence[str] = (),
) -> MailboxLink:
    """The owner's file-import link (one per owner), created on first use; new aliases add up."""
    address = owner_address(owner)
    link = session.scalar(
        select(MailboxLink).where(
            MailboxLink.kind == "import", MailboxLink.owner_address == address
        )
    )
    if link is None:
        user_id = session.scalar(select(User.id).where(User.email == address))
        link = MailboxLink(
            kind="import",
            owner_address=address,
            owner_user_id=user_id,
            capture_level=check_level(capture_level or "full"),
            status="active",
        )
        session.add(link)
        session.flush()
    elif capture_level is not None:
        link.capture_level = check_level(capture_level)
    added = [owner_address(a) for a in aliases]
    if added:
        link.aliases = sorted({*map(str, link.aliases), *added})
    return link


def link_info(link: MailboxLink) -> LinkInfo:
    aliases = {a for a in (normalise_address(str(x)) for x in link.aliases) if a}
    return LinkInfo(
        id=link.id,
        owner_addresses=frozenset({link.owner_address, *aliases}),
        owner_user_id=link.owner_user_id,
        capture_level=link.capture_level,
    )


# -- linked mailboxes: creation, status and its changes ------------------------------------------

POLL_INTERVAL = timedelta(minutes=2)
ATTENTION_KINDS = ("AuthExpired", "PermissionDenied")


def _owner_user_id(session: Session, address: str) -> int | None:
    return session.scalar(select(User.id).where(User.email == address))


def add_link(
    session: Session,
    box: SecretBox,
    *,
    kind: str,
    owner: str,
    settings: Mapping[str, object],
    secret: Mapping[str, object] | None,
    capture_level: str = "full",
    aliases: Sequence[str] = (),
    visibility: str = "team",
) -> MailboxLink:
    """A new link, due for its first sync at once; its secret stored encrypted."""
    address = owner_address(owner)
    if visibility not in ("team", "private"):
        raise DomainError("visibility must be team or private", field="visibility")
    link = MailboxLink(
        kind=kind,
        owner_address=address,
        owner_user_id=_owner_user_id(session, address),
        aliases=sorted({owner_address(a) for a in aliases}),
        settings=dict(settings),
        secret=box.encrypt_json(dict(secret)) if secret is not None else None,
        capture_level=check_level(capture_level),
        visibility=visibility,
        status="active",
        next_run_at=utcnow(),
    )
    session.add(link)
    session.flush()
    return link


def add_drop_link(
    session: Session,
    *,
    owner: str,
    domain: str | None,
    capture_level: str = "full",
    visibility: str = "team",
) -> tuple[MailboxLink, str]:
    """A personal drop address for `owner`: mail BCC'd or forwarded to it is captured as theirs."""
    if visibility not in ("team", "private"):
        raise DomainError("visibility must be team or private", field="visibility")
    if domain is None:
        raise DomainError(
            "set RAPPORT_DROP_DOMAIN (the domain your drop addresses live under) first",
            field="RAPPORT_DROP_DOMAIN",
        )
    address = owner_address(owner)
    existing = session.scalar(
        select(MailboxLink).where(
            MailboxLink.kind == "drop",
            MailboxLink.owner_address == address,
            MailboxLink.status != "removed",
        )
    )
    if existing is not None:
        raise Conflict(
            f"{address} already has a drop address (link {existing.id}); "
            f"rotate it with `rapport mailbox rotate {existing.id}`"
        )
    link = MailboxLink(
        kind="drop",
        owner_address=address,
        owner_user_id=_owner_user_id(session, address),
        drop_token=new_drop_token(),
        capture_level=check_level(capture_level),
        visibility=visibility,
        status="active",
    )
    session.add(link)
    session.flush()
    return link, drop_address(link, domain)


def new_drop_token() -> str:
    # Lower-case letters and digits only: mail systems may change the case of a local part.
    return secrets.token_hex(10)


def drop_address(link: MailboxLink, domain: str) -> str:
    return f"crm+{link.drop_token}@{domain}"


def rotate_drop_token(session: Session, link_id: int, domain: str | None) -> str:
    link = get_link(session, link_id)
    if link.kind != "drop":
        raise DomainError(
            f"only drop links have an address to rotate; link {link_id} is {link.kind}"
        )
    if domain is None:
        raise DomainError(
            "set RAPPORT_DROP_DOMAIN (the domain your drop addresses live under) first",
            field="RAPPORT_DROP_DOMAIN",
        )
    link.drop_token = new_drop_token()
    return drop_address(link, domain)


# Ids are 32-bit integers on PostgreSQL, and SQLite refuses a number past 64 bits outright: a
# larger id asked for through the API cannot exist, so it is "not found" without a query.
MAX_ID = 2**31 - 1


def get_link(session: Session, link_id: int) -> MailboxLink:
    link = session.get(MailboxLink, link_id) if 0 < link_id <= MAX_ID else None
    if link is None or link.status == "removed":
        raise NotFound(f"no mailbox link {link_id}; `rapport mailbox list` shows them")
    return link


def list_links(session: Session) -> list[MailboxLink]:
    return list(
        session.scalars(
            select(MailboxLink).where(MailboxLink.status != "removed").order_by(MailboxLink.id)
        )
    )


def pause_link(session: Session, link_id: int) -> MailboxLink:
    link = get_link(session, link_id)
    link.status = "paused"
    link.next_run_at = None
    return link


def resume_link(session: Session, link_id: int) -> MailboxLink:
    """Back to active and due at once (also how an admin retries after fixing a problem)."""
    link = get_link(session, link_id)
    link.status = "active"
    link.status_reason = None
    link.consecutive_failures = 0
    link.next_run_at = utcnow()
    return link


def remove_link(session: Session, link_id: int, *, purge: bool = False) -> int:
    """Stop capturing; history stays unless `purge`, which deletes what only this link saw.
    Returns the number of activities purged."""
    link = get_link(session, link_id)
    purged = 0
    if purge:
        only_here = select(MailboxObservation.activity_id).where(
            MailboxObservation.link_id == link.id
        )
        elsewhere = select(MailboxObservation.activity_id).where(
            MailboxObservation.link_id != link.id
        )
        ids = list(
            session.scalars(
                select(Activity.id).where(Activity.id.in_(only_here), Activity.id.not_in(elsewhere))
            )
        )
        for start in range(0, len(ids), 500):
            session.execute(delete(Activity).where(Activity.id.in_(ids[start : start + 500])))
        purged = len(ids)
        session.execute(delete(MailboxObservation).where(MailboxObservation.link_id == link.id))
        from server.crm.activities import collect_orphan_blobs

        collect_orphan_blobs(session)
    link.status = "removed"
    link.next_run_at = None
    link.secret = None
    link.drop_token = None
    return purged


def record_success(session: Session, link_id: int, *, backlog: int = 0) -> None:
    link = session.get(MailboxLink, link_id)
    if link is None:
        return
    now = utcnow()
    link.last_success_at = now
    link.consecutive_failures = 0
    link.backlog = backlog
    if link.status in ("active", "error"):
        link.status = "active"
        link.status_reason = None
        poll = int(link.settings.get("poll_seconds", POLL_INTERVAL.total_seconds()))
        link.next_run_at = now + timedelta(seconds=poll)


def record_failure(
    session: Session,
    link_id: int,
    *,
    kind: str,
    message: str,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> None:
    """What the admin sees, and when the link runs again, decided from the error's kind alone."""
    link = session.get(MailboxLink, link_id)
    if link is None:
        return
    now = utcnow()
    link.last_error = message[:4000]
    link.last_error_at = now
    link.consecutive_failures += 1
    if link.status == "paused":
        return
    if kind in ATTENTION_KINDS:
        # Retrying a revoked password or a missing permission only locks accounts: stop.
        link.status = "needs_attention"
        link.status_reason = f"{message} — fix it, then `rapport mailbox resume {link.id}`"
        link.next_run_at = None
        return
    link.status = "error"
    link.status_reason = message
    if retry_after is not None:
        delay = retry_after
    else:
        base = min(30 * 2 ** min(link.consecutive_failures - 1, 10), 3600)
        delay = base * (rng or random).uniform(0.5, 1.5)
    link.next_run_at = now + timedelta(seconds=delay)


# -- what an admin, or the link's owner, sees of a link ------------------------------------------

# Credentials live encrypted in `secret`; a setting whose name says it is one is hidden as well,
# so a source that ever stores one among the settings by mistake still never shows it.
_SECRET_NAME = re.compile(r"pass|secret|token|credential|key", re.IGNORECASE)


def public_settings(link: MailboxLink) -> dict[str, Any]:
    """The link's settings that are safe to show (host, user, folders...), never a secret."""
    return {k: v for k, v in link.settings.items() if not _SECRET_NAME.search(k)}


def what_to_do(link: MailboxLink) -> str | None:
    """The link's status in words an admin can act on; None while all is well."""
    if link.status == "needs_attention":
        return link.status_reason or (
            f"{link.last_error or 'the mail server refused Rapport'} — fix it, then resume "
            f"link {link.id}"
        )
    if link.status == "error":
        retry = f" at {link.next_run_at.strftime('%Y-%m-%d %H:%M')} UTC" if link.next_run_at else ""
        problem = link.status_reason or link.last_error or "the last sync failed"
        return f"{problem}; Rapport tries again by itself{retry}"
    if link.status == "paused":
        return "paused: nothing is captured until the link is resumed"
    return None


def links_page(
    session: Session,
    *,
    kind: str | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[MailboxLink]:
    """Links in the order they were made, removed ones left out."""
    conditions: list[ColumnElement[bool]] = [MailboxLink.status != "removed"]
    if kind is not None:
        conditions.append(MailboxLink.kind == kind)
    if status is not None:
        conditions.append(MailboxLink.status == status)
    return keyset_page(
        session,
        select(MailboxLink).where(*conditions),
        sort=MailboxLink.id,
        ident=MailboxLink.id,
        limit=limit,
        cursor=cursor,
    )


def links_owned_by(session: Session, user_id: int, address: str) -> list[MailboxLink]:
    """The links capturing this person's mail: linked to their user, or to their address before
    they had one (a link made before the user keeps `owner_user_id` empty)."""
    return list(
        session.scalars(
            select(MailboxLink)
            .where(
                MailboxLink.status != "removed",
                or_(
                    MailboxLink.owner_user_id == user_id,
                    and_(MailboxLink.owner_user_id.is_(None), MailboxLink.owner_address == address),
                ),
            )
            .order_by(MailboxLink.id)
        )
    )


@dataclass(frozen=True)
class FolderState:
    """Where one folder of a link stands: its checkpoint's age and what we hold of it."""

    folder: str
    checkpoint_updated_at: datetime | None
    messages: int  # observations still present in the folder
    gone: int  # observations since moved out or deleted (history keeps them)


def folder_states(session: Session, link_id: int) -> list[FolderState]:
    rows = session.execute(
        select(SyncCheckpoint.folder, SyncCheckpoint.updated_at).where(
            SyncCheckpoint.link_id == link_id
        )
    ).all()
    checkpoints: dict[str, datetime | None] = dict(rows)
    counts = {
        folder: (int(total), int(gone))
        for folder, total, gone in session.execute(
            select(
                MailboxObservation.folder,
                func.count(),
                func.count(MailboxObservation.deleted_at),
            )
            .where(MailboxObservation.link_id == link_id)
            .group_by(MailboxObservation.folder)
        )
    }
    states = []
    for folder in sorted({*checkpoints, *counts}):
        total, gone = counts.get(folder, (0, 0))
        states.append(FolderState(folder, checkpoints.get(folder), total - gone, gone))
    return states


@dataclass(frozen=True)
class DecisionCount:
    decision: str
    rule: str | None
    count: int
    last_at: datetime


def decision_counts(session: Session, link_id: int, since: datetime) -> list[DecisionCount]:
    """How the link's recent mail was decided (captured, skipped by which rule, quarantined)."""
    rows = session.execute(
        select(
            CaptureDecision.decision,
            CaptureDecision.rule,
            func.count(),
            func.max(CaptureDecision.decided_at),
        )
        .where(CaptureDecision.link_id == link_id, CaptureDecision.decided_at >= since)
        .group_by(CaptureDecision.decision, CaptureDecision.rule)
    )
    counts = [DecisionCount(d, r, int(n), last) for d, r, n, last in rows]
    return sorted(counts, key=lambda c: (-c.count, c.decision, c.rule or ""))


def recent_decisions(session: Session, link_id: int, limit: int = 20) -> list[CaptureDecision]:
    return list(
        session.scalars(
            select(CaptureDecision)
            .where(CaptureDecision.link_id == link_id)
            .order_by(CaptureDecision.decided_at.desc(), CaptureDecision.id.desc())
            .limit(limit)
        )
    )
