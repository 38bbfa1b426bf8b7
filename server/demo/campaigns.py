"""The demo's email campaigns: marketing consent, a segment, one campaign sent three weeks ago and one
draft ready to send — through the services the API uses (`server.crm.segments`, `.campaigns`,
`.consent`), and the emails through the capture core, so the timelines hold them as real mail.

The sent campaign went to the demo's customers from the admin's address: each email is recorded
as sent the way the campaign sender records it (`record_sent`: the sender's own outgoing mail),
three customers answered (their replies captured as incoming mail to the admin, In-Reply-To the
campaign email, so they thread to it and count as replies), one address bounced and one person
used the unsubscribe link (so the draft's check lists both as skipped, and no later campaign
mails them). Nothing here is queued to go out; a campaign a person sends in the running demo
goes to the demo's outbox, and `server.demo.responder` has some of its recipients answer.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.crm import campaigns, consent, segments
from server.crm.campaign_rules import render_for
from server.crm.capture import Capturer
from server.crm.mailboxes import import_link, link_info
from server.crm.rules import load_policy, log_header_key, log_header_value
from server.crm.viewer import Viewer
from server.mail_ingest.prepare import PrepareOptions, prepare_raw
from server.mail_ingest.sources.files import RawMessage
from server.mail_out.campaign_mail import build_message, unsubscribe_url
from server.mail_out.campaigns import record_sent
from server.models import Campaign, CampaignRecipient, Contact, Job, User

CONSENT_SOURCE = "demo import"
SEGMENT = "Our customers"
SENT_DAYS_AGO = 20  # older than any stage's rot limit: the demo's rotting deal stays rotting
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"

SENT = (
    "Spring price list",
    "Our new price list, {{ contact.first_name | there }}",
    "Hello {{ contact.first_name | there }},\n\nOur price list for the spring is attached to our "
    "website: prices hold until the end of June for {{ company.name | your team }}. Reply to this "
    "email for a quote on your usual order.\n\nBest regards,\n{{ sender.name }}",
)
DRAFT = (
    "Autumn catalogue",
    "{{ contact.first_name | there }}, our autumn catalogue is out",
    "Hello {{ contact.first_name | there }},\n\nOur autumn catalogue is out, with the compostable "
    "range {{ company.name | your team }} asked about. Shall I send you samples?\n\n"
    "Best regards,\n{{ sender.name }}",
)
REPLIES = (
    "Thanks — please send a quote for our usual monthly order.",
    "Good to know. Can we keep last year's prices until September?",
    "Received, thank you. I'll pass it on to our practice manager.",
)


@dataclass(frozen=True)
class DemoCampaigns:
    sent_id: int
    draft_id: int
    replied: int
    bounced: str
    unsubscribed: str


def record_campaigns(
    session: Session, admin: User, now: datetime, *, public_url: str = ""
) -> DemoCampaigns:
    viewer = Viewer.of(admin)
    _grant_consent(session, viewer)
    segment = segments.create_segment(
        session, viewer, name=SEGMENT, filters={"lifecycle_stage": "customer"}
    )
    sent = _sent_campaign(session, viewer, admin, segment.id, now, public_url or DEFAULT_PUBLIC_URL)
    name, subject, body = DRAFT
    draft = campaigns.create_campaign(
        session,
        viewer,
        {"name": name, "segment_id": segment.id, "subject": subject, "body_text": body},
    )
    return DemoCampaigns(sent.campaign_id, draft.id, sent.replied, sent.bounced, sent.unsubscribed)


def _grant_consent(session: Session, viewer: Viewer) -> None:
    """Everyone at a customer or prospect company agreed to hear from us; the rest are unknown."""
    people = session.scalars(
        select(Contact.id).where(Contact.company_id.is_not(None)).order_by(Contact.id)
    )
    for contact_id in list(people):
        consent.set_consent(session, viewer, contact_id, state="granted", source=CONSENT_SOURCE)


@dataclass(frozen=True)
class _Sent:
    campaign_id: int
    replied: int
    bounced: str
    unsubscribed: str


def _sent_campaign(
    session: Session, viewer: Viewer, admin: User, segment_id: int, now: datetime, public: str
) -> _Sent:
    name, subject, body = SENT
    campaign = campaigns.create_campaign(
        session,
        viewer,
        {"name": name, "segment_id": segment_id, "subject": subject, "body_text": body},
    )
    campaigns.schedule(session, viewer, campaign.id)
    # It went out weeks ago: the job the scheduling queued has nothing left to do.
    _drop_send_job(session, campaign.id)
    sent_at = now - timedelta(days=SENT_DAYS_AGO)
    rows = list(
        session.scalars(
            select(CampaignRecipient)
            .where(CampaignRecipient.campaign_id == campaign.id)
            .order_by(CampaignRecipient.id)
        )
    )
    mailed = [r for r in rows if r.state == "queued"]
    marker = log_header_value(log_header_key(session), admin.id)
    for index, row in enumerate(mailed):
        contact = session.get(Contact, row.contact_id) if row.contact_id else None
        raw = build_message(
            render_for(session, campaign, row.contact_id),
            sender_name=admin.name,
            sender_address=admin.email,
            to_name=contact.name if contact else "",
            to_address=row.address,
            message_id=row.message_id,
            unsubscribe=unsubscribe_url(public, consent.unsubscribe_token(session, row.id)),
            log_marker=marker,
        )
        when = sent_at + timedelta(minutes=2 * index)
        record_sent(session, row.id, "250 2.0.0 Ok (demo)", _dated(raw, when))
        row.claimed_at = row.sent_at = when
    campaign.status = "done"
    campaign.started_at = sent_at
    campaign.finished_at = sent_at + timedelta(minutes=2 * len(mailed))
    # Three answered, one address bounced, one person unsubscribed (all different people).
    answering, bouncing, leaving = mailed[:3], mailed[3], mailed[4]
    for offset, (row, text) in enumerate(zip(answering, REPLIES, strict=True)):
        contact = session.get(Contact, row.contact_id) if row.contact_id else None
        capture_reply(
            session,
            admin,
            row,
            contact.name if contact else "",
            campaign.subject,
            text,
            sent_at + timedelta(hours=3 + 20 * offset),
        )
    bouncing.state = "bounced"
    bouncing.provider_response = "550 5.1.1 mailbox unavailable (demo)"
    consent.block_address(
        session,
        bouncing.address,
        "bounced",
        contact_id=bouncing.contact_id,
        campaign_id=campaign.id,
        detail=bouncing.provider_response,
    )
    consent.unsubscribe(session, leaving)
    session.flush()
    return _Sent(campaign.id, len(answering), bouncing.address, leaving.address)


def _drop_send_job(session: Session, campaign_id: int) -> None:
    # the unique key `server.crm.campaigns.schedule` queues the campaign's job under
    session.execute(
        delete(Job).where(Job.kind == campaigns.JOB, Job.unique_key == f"campaign:{campaign_id}")
    )


def _dated(raw: bytes, when: datetime) -> bytes:
    message = email.message_from_bytes(raw, policy=email.policy.SMTP)
    message.replace_header("Date", format_datetime(when))
    return message.as_bytes()


def capture_reply(
    session: Session,
    admin: User,
    row: CampaignRecipient,
    name: str,
    subject: str,
    text: str,
    when: datetime,
) -> None:
    """The customer's answer, as the sender's mailbox would have captured it: one Message-ID
    per recipient, so capturing it again finds the same email."""
    reply = EmailMessage()
    reply["From"] = f"{name} <{row.address}>" if name else row.address
    reply["To"] = f"{admin.name} <{admin.email}>"
    reply["Subject"] = f"Re: {_rendered_subject(session, row, subject)}"
    reply["Date"] = format_datetime(when)
    reply["Message-ID"] = reply_id(row)
    reply["In-Reply-To"] = row.message_id
    reply["References"] = row.message_id
    reply.set_content(f"{text}\n\n{name}\n")
    capture_as(session, admin.email, reply.as_bytes(), "Inbox", f"demo-reply:{row.id}")


def reply_id(row: CampaignRecipient) -> str:
    return f"<demo-reply-{row.id}@{row.address.rsplit('@', 1)[-1]}>"


def _rendered_subject(session: Session, row: CampaignRecipient, subject: str) -> str:
    campaign = session.get(Campaign, row.campaign_id)
    return render_for(session, campaign, row.contact_id).subject if campaign else subject


def capture_as(session: Session, owner: str, raw: bytes, folder: str, key: str) -> None:
    """Capture one message as seen in `owner`'s mailbox (their import link), through the same
    capture core as mail read from a mailbox."""
    link = link_info(import_link(session, owner))
    policy = load_policy(session)
    options = PrepareOptions(link.capture_level, policy.internal_domains, link.owner_addresses)
    Capturer(link, policy).capture_batch(
        session, [prepare_raw(RawMessage(raw, folder, key), options)]
    )
