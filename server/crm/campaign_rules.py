"""Whether a campaign may mail a person, and what they get: the skip rules and the rendering.

Skip reasons, in the order they are checked (the first names the decision):

    erased             the person was erased (privacy suppression list): never mailed
    unsubscribed       the address used an unsubscribe link (or was blocked by hand)
    bounced            a delivery status notification said the address does not take mail
    consent_withdrawn  the contact's marketing consent is withdrawn
    no_consent         the contact's marketing consent is not granted (unknown)
    no_address         the contact has no email address
    missing_value      a placeholder has no value and no fallback (`detail` names it)

The same rules run three times: in the check before sending, when the recipients are frozen at
scheduling, and again just before each email goes out — so an unsubscribe, an erasure or a bounce
that happens mid-campaign is honoured for everyone not yet mailed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.crm import privacy
from server.crm.consent import blocked_among, consent_states
from server.crm.templates import Rendered, render_text
from server.crm.viewer import Viewer
from server.models import Campaign, Contact, ContactEmail, User


@dataclass(frozen=True)
class Verdict:
    contact_id: int
    name: str
    address: str | None
    reason: str | None  # None: will be mailed
    detail: str = ""


def primary_addresses(session: Session, contact_ids: Sequence[int]) -> dict[int, str]:
    """Each contact's primary address (else their first)."""
    found: dict[int, str] = {}
    for start in range(0, len(contact_ids), 1000):
        chunk = list(contact_ids[start : start + 1000])
        rows = session.execute(
            select(ContactEmail.contact_id, ContactEmail.address)
            .where(ContactEmail.contact_id.in_(chunk))
            .order_by(ContactEmail.contact_id, ContactEmail.is_primary.desc(), ContactEmail.id)
        )
        for contact_id, address in rows:
            found.setdefault(contact_id, address)
    return found


def sender_viewer(session: Session, campaign: Campaign) -> Viewer:
    sender = session.get(User, campaign.sender_id)
    assert sender is not None  # the campaign goes with its sender (ON DELETE CASCADE)
    return Viewer.of(sender)


def render_for(session: Session, campaign: Campaign, contact_id: int | None) -> Rendered:
    """The campaign's email as this contact (or, without one, as a blank contact) gets it."""
    return render_text(
        session,
        sender_viewer(session, campaign),
        campaign.subject,
        campaign.body_text,
        body_html=campaign.body_html or None,
        contact_id=contact_id,
    )


def judge(session: Session, campaign: Campaign, contacts: Sequence[Contact]) -> list[Verdict]:
    """The skip verdict of each contact, in the order given."""
    ids = [c.id for c in contacts]
    addresses = primary_addresses(session, ids)
    key = privacy.suppression_key(session)
    erased = privacy.suppressed_among(session, key, addresses.values()) if key else {}
    blocked = blocked_among(session, addresses.values())
    consents = consent_states(session, ids)
    verdicts = []
    for contact in contacts:
        address = addresses.get(contact.id)
        reason, detail = None, ""
        if address in erased:
            reason = "erased"
        elif address in blocked:
            reason = blocked[address]
        elif consents.get(contact.id) == "withdrawn":
            reason = "consent_withdrawn"
        elif consents.get(contact.id) != "granted":
            reason = "no_consent"
        elif address is None:
            reason = "no_address"
        else:
            missing = render_for(session, campaign, contact.id).missing
            if missing:
                reason, detail = "missing_value", ", ".join(missing)
        verdicts.append(Verdict(contact.id, contact.name, address, reason, detail))
    return verdicts
