"""Bounces of campaign emails: a delivery report captured back marks the recipient `bounced`
and blocks the address for every later campaign.

Capture calls `record_bounces` for every item it takes in, before any capture rule is applied:
the rules skip automated mail (a bounce is automated mail), yet its bounce must still count. The
report is matched by the original's Message-ID, which for a campaign email is its recipient
row's idempotency key (`<rapport-c…@domain>`); a report about any other email changes nothing.
Only a hard bounce counts (Action failed with a 5.x.x status); a delay, or a failure with a 4.x.x
status, leaves the address alone. What was done is returned as a sentence for the capture trace.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.crm.consent import block_address
from server.crm.threads import normalise_message_id
from server.mail_ingest.dsn import DeliveryReport, RecipientStatus
from server.models import CampaignRecipient

CAMPAIGN_ID_PREFIX = "rapport-c"
BOUNCEABLE = ("sent", "sending", "unknown")  # states of an email that went out (or may have)
_ADDRESS = re.compile(r"[^\s<>;:,\"'()\[\]]+@[^\s<>;:,\"'()\[\]]+")


def record_bounces(session: Session, report: DeliveryReport | None) -> str:
    """Apply a delivery report to the campaign recipient it is about; the trace note ("" when
    the item is no delivery report)."""
    if report is None:
        return ""
    row = _recipient_of(session, report.message_ids)
    if row is None:
        if report.problem:
            return f"delivery report not read ({report.problem}): nothing changed"
        return "delivery report about an email that is no campaign's: nothing changed"
    where = f"campaign {row.campaign_id}, recipient {row.id}"
    status = _status_about(report.recipients, row.address)
    if status is None:
        return f"delivery report for {where} without a status ({report.problem}): nothing changed"
    said = " ".join(f"{status.action or '?'} {status.status} {status.diagnostic}".split())
    if not status.permanent:
        return f"delivery report for {where}: {said}; not a hard bounce, nothing changed"
    if row.state == "bounced":
        return f"bounce for {where}: {said}; already recorded"
    if row.state not in BOUNCEABLE:
        return f"bounce for {where}: {said}; the recipient is {row.state}, nothing changed"
    detail = _without_addresses(f"{status.status} {status.diagnostic}".strip())
    row.state = "bounced"
    row.provider_response = f"bounced: {detail}; when sent: {row.provider_response or ''}"[:2000]
    block_address(
        session,
        row.address,
        "bounced",
        contact_id=row.contact_id,
        campaign_id=row.campaign_id,
        detail=detail,
    )
    session.flush()
    return f"bounce for {where}: {said}; marked bounced, address blocked"


def _recipient_of(session: Session, message_ids: tuple[str, ...]) -> CampaignRecipient | None:
    """The campaign recipient row of the first of `message_ids` that is a campaign email's."""
    for raw in message_ids:
        message_id = normalise_message_id(raw)
        if message_id is None or not message_id.startswith(CAMPAIGN_ID_PREFIX):
            continue
        key = message_id.partition("@")[0]
        row = session.scalar(
            select(CampaignRecipient).where(CampaignRecipient.idempotency_key == key)
        )
        if row is not None and normalise_message_id(row.message_id) == message_id:
            return row
    return None


def _status_about(statuses: tuple[RecipientStatus, ...], address: str) -> RecipientStatus | None:
    """The status about `address` (a campaign email has one recipient, so when the report names
    another — an alias it was forwarded to — its first status is about ours), hard ones first."""
    mine = [s for s in statuses if address in (s.recipient, s.original_recipient)]
    candidates = mine or list(statuses)
    return next((s for s in candidates if s.permanent), candidates[0] if candidates else None)


def _without_addresses(text: str) -> str:
    """A block outlives the person's erasure, so its detail keeps no address."""
    return _ADDRESS.sub("<address>", text)[:500]
