"""The demo's customers answer campaign emails, so a person trying the demo sees replies arrive.

A few seconds after a campaign email goes out in the running demo (to the outbox: the demo has no
SMTP server), every third recipient (by recipient id, so the same people each time) answers:
the reply is captured into the sender's mailbox through the capture core, In-Reply-To the
campaign email, exactly as a real answer read from the mailbox would be — so it threads to the
email on the customer's timeline and the campaign counts it as replied. Demo mode only
(`rapport demo` runs it beside the server and the worker).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import select

from server.crm.threads import normalise_message_id
from server.db import Database
from server.demo.campaigns import capture_reply, reply_id
from server.models import Activity, Campaign, CampaignRecipient, Contact, User, utcnow

log = logging.getLogger(__name__)

ANSWER_AFTER = timedelta(seconds=4)
LOOK_BACK = timedelta(hours=1)  # only emails the running demo sent
EVERY = 3  # one recipient in three answers
ANSWERS = (
    "Thanks — yes please, send me the details.",
    "Interesting. Could you call me next week about it?",
    "Received, thank you. I'll forward it to our office manager.",
)


def answer_due(db: Database) -> int:
    """Capture the answers now due; returns how many."""
    now = utcnow()
    answered = 0
    with db.session() as session:
        rows = session.scalars(
            select(CampaignRecipient).where(
                CampaignRecipient.state == "sent",
                CampaignRecipient.sent_at <= now - ANSWER_AFTER,
                CampaignRecipient.sent_at >= now - LOOK_BACK,
                CampaignRecipient.id % EVERY == 0,
            )
        ).all()
        for row in rows:
            key = f"mid:{normalise_message_id(reply_id(row))}"
            if session.scalar(select(Activity.id).where(Activity.message_key == key)):
                continue
            campaign = session.get(Campaign, row.campaign_id)
            sender = session.get(User, campaign.sender_id) if campaign else None
            if campaign is None or sender is None:
                continue
            contact = session.get(Contact, row.contact_id) if row.contact_id else None
            text = ANSWERS[row.id % len(ANSWERS)]
            name = contact.name if contact else ""
            capture_reply(session, sender, row, name, campaign.subject, text, now)
            answered += 1
    return answered


def run(db: Database, stop: threading.Event, interval: float = 2.0) -> None:
    """Answer as emails go out, until `stop` is set."""
    while not stop.wait(interval):
        try:
            answer_due(db)
        except Exception:  # a demo nicety must never take the demo down
            log.exception("demo responder: answering failed")
