"""Who may receive a campaign: marketing consent per contact, and addresses never to mail again.

Consent is a `ContactConsent` row per contact (granted, unknown, withdrawn) with its source (a
sentence: "web form 2026-03-01", "unsubscribe link", "asked by phone") and date; no row means
unknown. Campaigns mail only `granted` contacts (see `server.crm.campaign_rules`).

A `MailingBlock` holds an address that unsubscribed or bounces, as the keyed hash of
`server.crm.privacy` (so the block outlives the person's erasure and stores no address). An
unsubscribe also withdraws the contact's consent, which stops every address of theirs.

The unsubscribe link's token is the recipient row's id with an HMAC-SHA256 over it (a key made
on first use and kept in the settings table): ids cannot be guessed or walked.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.crm import privacy
from server.crm.addresses import normalise_address
from server.crm.errors import DomainError
from server.crm.settings import get_setting
from server.crm.sql import insert_ignore
from server.crm.viewer import Viewer
from server.models import CampaignRecipient, ContactConsent, MailingBlock, utcnow
from server.models.campaigns import CONSENT_STATES

UNSUBSCRIBE_KEY_SETTING = "campaigns.unsubscribe_key"
TOKEN_MAC_BYTES = 16


@dataclass(frozen=True)
class Consent:
    contact_id: int
    state: str
    source: str
    changed_at: datetime | None


# -- consent ---------------------------------------------------------------------------------


def get_consent(session: Session, contact_id: int) -> Consent:
    from server.crm.contacts import get_contact  # heavy (contacts → companies, signals): deferred

    contact = get_contact(session, contact_id)
    row = session.get(ContactConsent, contact.id)
    if row is None:
        return Consent(contact.id, "unknown", "", None)
    return Consent(contact.id, row.state, row.source, row.changed_at)


def set_consent(
    session: Session, viewer: Viewer | None, contact_id: int, *, state: str, source: str
) -> Consent:
    if state not in CONSENT_STATES:
        raise DomainError(f"state must be one of {', '.join(CONSENT_STATES)}", field="state")
    from server.crm.contacts import get_contact  # heavy (contacts → companies, signals): deferred

    contact = get_contact(session, contact_id)
    row = session.get(ContactConsent, contact.id)
    if row is None:
        row = ContactConsent(contact_id=contact.id)
        session.add(row)
    row.state = state
    row.source = source.strip()[:200]
    row.changed_at = utcnow()
    row.changed_by_id = viewer.id if viewer is not None else None
    session.flush()
    return Consent(contact.id, row.state, row.source, row.changed_at)


def consent_states(session: Session, contact_ids: Iterable[int]) -> dict[int, str]:
    """Each contact's consent state (contacts without a row are left out: unknown)."""
    ids = list(contact_ids)
    found: dict[int, str] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        rows = session.execute(
            select(ContactConsent.contact_id, ContactConsent.state).where(
                ContactConsent.contact_id.in_(chunk)
            )
        )
        found.update({cid: state for cid, state in rows})  # noqa: C416 - rows, not pairs
    return found


# -- blocked addresses -----------------------------------------------------------------------


def _hash_of(session: Session, address: str) -> str:
    key = privacy.suppression_key(session, create=True)
    assert key is not None
    return privacy.address_hash(key, address)


def block_address(
    session: Session,
    address: str,
    reason: str,
    *,
    contact_id: int | None = None,
    campaign_id: int | None = None,
    detail: str = "",
) -> None:
    """Never mail this address again (the first reason recorded stays)."""
    normalised = normalise_address(address) or address.strip().lower()
    row = {
        "address_hash": _hash_of(session, normalised),
        "reason": reason,
        "contact_id": contact_id,
        "campaign_id": campaign_id,
        "detail": detail[:500],
        "created_at": utcnow(),
    }
    insert_ignore(session, "mailing_blocks", ["address_hash"], [row])


def blocked_among(session: Session, addresses: Iterable[str]) -> dict[str, str]:
    """Which of `addresses` are blocked, each with its reason (unsubscribed, bounced)."""
    wanted = {a for a in addresses if a}
    if not wanted:
        return {}
    key = privacy.suppression_key(session, create=True)
    assert key is not None
    by_hash = {privacy.address_hash(key, a): a for a in wanted}
    hashes = sorted(by_hash)
    found: dict[str, str] = {}
    for start in range(0, len(hashes), 1000):
        chunk = hashes[start : start + 1000]
        rows = session.execute(
            select(MailingBlock.address_hash, MailingBlock.reason).where(
                MailingBlock.address_hash.in_(chunk)
            )
        )
        found.update({by_hash[digest]: reason for digest, reason in rows})
    return found


# -- unsubscribing ---------------------------------------------------------------------------


def _token_key(session: Session) -> bytes:
    value = get_setting(session, UNSUBSCRIBE_KEY_SETTING)
    if not (isinstance(value, str) and value):
        row = {"key": UNSUBSCRIBE_KEY_SETTING, "value": secrets.token_hex(32)}
        insert_ignore(session, "settings", ["key"], [row])
        value = get_setting(session, UNSUBSCRIBE_KEY_SETTING)
    return bytes.fromhex(str(value))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsubscribe_token(session: Session, recipient_id: int) -> str:
    ident = recipient_id.to_bytes(8, "big")
    mac = hmac.digest(_token_key(session), b"unsubscribe:" + ident, "sha256")[:TOKEN_MAC_BYTES]
    return _b64(ident + mac)


def recipient_of_token(session: Session, token: str) -> CampaignRecipient | None:
    """The recipient a token was made for, or None for a forged, mangled or stale token."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    if len(raw) != 8 + TOKEN_MAC_BYTES:
        return None
    ident, mac = raw[:8], raw[8:]
    expected = hmac.digest(_token_key(session), b"unsubscribe:" + ident, "sha256")
    if not hmac.compare_digest(mac, expected[:TOKEN_MAC_BYTES]):
        return None
    return session.get(CampaignRecipient, int.from_bytes(ident, "big"))


def unsubscribe(session: Session, recipient: CampaignRecipient) -> None:
    """Honoured at once: the address is blocked and the contact's consent withdrawn."""
    block_address(
        session,
        recipient.address,
        "unsubscribed",
        contact_id=recipient.contact_id,
        campaign_id=recipient.campaign_id,
    )
    if recipient.contact_id is not None:
        row = session.get(ContactConsent, recipient.contact_id)
        if row is None:
            row = ContactConsent(contact_id=recipient.contact_id)
            session.add(row)
        if row.state != "withdrawn":
            row.state = "withdrawn"
            row.source = f"unsubscribe link (campaign {recipient.campaign_id})"
            row.changed_at = utcnow()
            row.changed_by_id = None
    session.flush()
