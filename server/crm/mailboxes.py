"""Linked mailboxes: creating them, and what capture needs to know about one."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.crm.addresses import normalise_address
from server.crm.capture import LinkInfo
from server.crm.errors import DomainError
from server.mail_ingest.items import CAPTURE_LEVELS
from server.models import MailboxLink, User


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
