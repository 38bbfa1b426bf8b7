"""Sending a campaign: the worker's "campaign_send" job, resumable, and at most once per person.

Each recipient row moves through its own small state machine, each arrow one committed
transaction of the job (which also proves, by heartbeat, that this runner still holds the job):

    queued ──claim──▶ sending ──sent (and the timeline activity)──▶ sent
      │  ▲               │ └──refused (NotSent, permanent)──▶ failed
      │  └─refused for now (NotSent): back, the job waits ─┘
      └──a skip rule says no at send time──▶ skipped

The claim re-checks the skip rules (an unsubscribe or erasure since scheduling wins), renders the
email, and commits "sending" with the time BEFORE anything is handed to the provider; the
Message-ID is fixed since scheduling. So a crash between handing the message over and recording
it leaves a "sending" row, and a restarted job never sends a "sending" row again:

* Graph: it looks for the Message-ID in the mailbox's Sent Items; found → sent; not found after
  `grace` (sendMail saves to Sent Items within seconds) → queued again, since Graph evidently
  did not take it; not found earlier → the job waits.
* SMTP: there is no way to ask, so the row becomes "unknown" and is NOT sent again: at most
  once. The campaign's numbers show these people, and a user may mail them by hand.

The one window for a double send is Graph's: a message accepted but not in Sent Items after the
grace period (a mailbox whose Sent Items copy is off, or an outage longer than `grace`).

Rate: before each claim, the sender's messages in the last minute and day (all their campaigns)
are counted against the campaign's limits; a full window puts the job back in the queue until a
slot frees (a short wait is slept through). Pausing or cancelling is seen at the next claim.

Each sent email is captured as its sender's own outgoing mail (their import link, folder
"Sent Items", with the "log this email" marker), through the same capture core as mail read from
a mailbox: the activity's identity is the Message-ID and sender, so the copy a later Graph or IMAP
sync finds in Sent Items is the same activity, and a reply (In-Reply-To) threads to it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.config import Settings
from server.crm.campaign_rules import judge, render_for
from server.crm.campaigns import get_campaign, graph_link_of, path_limits
from server.crm.capture import Capturer
from server.crm.consent import unsubscribe_token
from server.crm.errors import DomainError
from server.crm.mailboxes import import_link, link_info
from server.crm.rules import load_policy, log_header_key, log_header_value
from server.crm.threads import normalise_message_id
from server.crm.viewer import Viewer
from server.db import Database
from server.jobs import ClaimedJob, Requeue, heartbeat
from server.mail_ingest.prepare import PrepareOptions, prepare_raw
from server.mail_ingest.sources.files import RawMessage
from server.mail_out.campaign_mail import build_message, unsubscribe_url
from server.mail_out.campaign_paths import (
    GraphPath,
    InDoubt,
    NotSent,
    OutboxPath,
    SendingPath,
    SmtpPath,
)
from server.models import Activity, Campaign, CampaignRecipient, Contact, User, utcnow

log = logging.getLogger(__name__)

SENT_FOLDER = "Sent Items"
GRACE = timedelta(minutes=10)
SLEEP_UP_TO = 3.0  # seconds: a shorter wait for the send rate is slept, a longer one requeues
COUNTED = ("sending", "sent", "bounced", "unknown")
UNKNOWN = (
    "Rapport stopped, or the connection broke, after handing this email to the SMTP server and "
    "before recording it: it may have gone out, so it is not sent again (at most once)"
)


class CampaignFailed(Exception):
    """The campaign cannot be sent at all (no public URL, no mailbox): said on the campaign."""


@dataclass(frozen=True)
class Claimed:
    recipient_id: int
    raw: bytes
    sender: str
    address: str


@dataclass(frozen=True)
class Wait:
    seconds: float


class CampaignSender:
    """The worker's handler for "campaign_send" jobs."""

    def __init__(
        self,
        settings: Settings,
        *,
        open_path: Callable[[Settings, Session, Campaign], SendingPath] | None = None,
        grace: timedelta = GRACE,
        sleep: Callable[[float], None] = time.sleep,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.open_path = open_path or default_path
        self.grace = grace
        self.sleep = sleep
        self.stopping = stopping

    def job(self, db: Database, job: ClaimedJob) -> None:
        campaign_id = int(job.payload["campaign_id"])
        with db.session() as session:
            heartbeat(session, job)
            campaign = session.get(Campaign, campaign_id)
            if campaign is None or campaign.status not in ("scheduled", "sending"):
                return  # paused, cancelled or deleted: resume queues a new job
            try:
                if not self.settings.public_url:
                    raise CampaignFailed(
                        "RAPPORT_PUBLIC_URL is not set: campaign emails need it for their "
                        "unsubscribe link"
                    )
                path = self.open_path(self.settings, session, campaign)
            except CampaignFailed as exc:
                campaign.status, campaign.last_error = "paused", str(exc)
                return
            if campaign.status == "scheduled":
                campaign.status, campaign.started_at = "sending", utcnow()
        try:
            self._recover(db, job, campaign_id, path)
            while True:
                if self.stopping():
                    raise Requeue()
                step = self._claim(db, job, campaign_id)
                if step is None:
                    return
                if isinstance(step, Wait):
                    if step.seconds > SLEEP_UP_TO:
                        raise Requeue(timedelta(seconds=step.seconds))
                    self.sleep(step.seconds)
                    continue
                if isinstance(step, Claimed):
                    self._send(db, job, path, step)
        finally:
            path.close()

    # -- one recipient ---------------------------------------------------------------------

    def _send(self, db: Database, job: ClaimedJob, path: SendingPath, step: Claimed) -> None:
        try:
            response = path.send(step.raw, step.sender, step.address)
        except NotSent as refused:
            with db.session() as session:
                row = session.get(CampaignRecipient, step.recipient_id)
                assert row is not None
                row.provider_response = refused.reason
                row.state = "failed" if refused.permanent else "queued"
            if not refused.permanent:
                raise Requeue(timedelta(seconds=refused.retry_after or 60.0)) from None
            return
        except InDoubt as doubt:
            log.warning("campaign email in doubt", extra={"recipient": step.recipient_id})
            with db.session() as session:
                row = session.get(CampaignRecipient, step.recipient_id)
                assert row is not None
                row.provider_response = str(doubt)[:500]
            return  # stays "sending": the recovery decides (Graph) or marks it unknown (SMTP)
        with db.session() as session:
            heartbeat(session, job)
            record_sent(session, step.recipient_id, response, step.raw)

    def _claim(
        self, db: Database, job: ClaimedJob, campaign_id: int
    ) -> Claimed | Wait | bool | None:
        """The next recipient, marked "sending" and committed; a Wait for the rate or a later
        due time; True after skipping one; None when the campaign is finished or stopped."""
        with db.session() as session:
            heartbeat(session, job)
            campaign = session.get(Campaign, campaign_id)
            if campaign is None or campaign.status != "sending":
                return None
            now = utcnow()
            wait = _rate_wait(session, campaign, now)
            if wait is not None:
                return wait
            query = (
                select(CampaignRecipient)
                .where(
                    CampaignRecipient.campaign_id == campaign.id,
                    CampaignRecipient.state == "queued",
                    CampaignRecipient.due_at <= now,
                )
                .order_by(CampaignRecipient.due_at, CampaignRecipient.id)
                .limit(1)
            )
            if not db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            row = session.scalar(query)
            if row is None:
                return _nothing_due(session, campaign, now, self.grace)
            contact = session.get(Contact, row.contact_id) if row.contact_id else None
            verdict = judge(session, campaign, [contact])[0] if contact else None
            if verdict is None or verdict.reason is not None or verdict.address is None:
                row.state = "skipped"
                row.skip_reason = verdict.reason if verdict else "contact_deleted"
                row.provider_response = verdict.detail if verdict else None
                return True
            row.address = verdict.address
            raw, sender = self._message(session, campaign, row, contact)
            row.state, row.claimed_at = "sending", now
            return Claimed(row.id, raw, sender, row.address)

    def _message(
        self,
        session: Session,
        campaign: Campaign,
        row: CampaignRecipient,
        contact: Contact | None,
    ) -> tuple[bytes, str]:
        sender = session.get(User, campaign.sender_id)
        assert sender is not None and self.settings.public_url
        rendered = render_for(session, campaign, row.contact_id)
        raw = build_message(
            rendered,
            sender_name=sender.name,
            sender_address=sender.email,
            to_name=contact.name if contact else "",
            to_address=row.address,
            message_id=row.message_id,
            unsubscribe=unsubscribe_url(
                self.settings.public_url, unsubscribe_token(session, row.id)
            ),
            log_marker=log_header_value(log_header_key(session), sender.id),
        )
        return raw, sender.email

    # -- after a crash ---------------------------------------------------------------------

    def _recover(self, db: Database, job: ClaimedJob, campaign_id: int, path: SendingPath) -> None:
        """Decide every row left "sending" by an earlier run (see the module docstring)."""
        with db.read_session() as session:
            rows = list(
                session.execute(
                    select(
                        CampaignRecipient.id,
                        CampaignRecipient.message_id,
                        CampaignRecipient.claimed_at,
                    ).where(
                        CampaignRecipient.campaign_id == campaign_id,
                        CampaignRecipient.state == "sending",
                    )
                )
            )
        for recipient_id, message_id, claimed_at in rows:
            found = path.recover(message_id)
            with db.session() as session:
                heartbeat(session, job)
                row = session.get(CampaignRecipient, recipient_id)
                if row is None or row.state != "sending":
                    continue
                if found is None:
                    row.state, row.provider_response = "unknown", UNKNOWN
                elif found:
                    campaign = session.get(Campaign, campaign_id)
                    contact = session.get(Contact, row.contact_id) if row.contact_id else None
                    assert campaign is not None
                    raw, _sender = self._message(session, campaign, row, contact)
                    record_sent(session, row.id, "found in Sent Items after a restart", raw)
                elif claimed_at is None or claimed_at < utcnow() - self.grace:
                    row.state = "queued"
                    row.provider_response = "not in Sent Items after a restart: sent again"


def _rate_wait(session: Session, campaign: Campaign, now: datetime) -> Wait | None:
    limits = path_limits(session, campaign.sending_path)
    for window, limit in (
        (timedelta(minutes=1), min(campaign.per_minute, limits["per_minute"])),
        (timedelta(days=1), min(campaign.per_day, limits["per_day"])),
    ):
        count, oldest = session.execute(
            select(func.count(), func.min(CampaignRecipient.claimed_at))
            .join(Campaign, Campaign.id == CampaignRecipient.campaign_id)
            .where(
                Campaign.sender_id == campaign.sender_id,
                CampaignRecipient.state.in_(COUNTED),
                CampaignRecipient.claimed_at > now - window,
            )
        ).one()
        if count >= limit and oldest is not None:
            return Wait(max((oldest + window - now).total_seconds(), 0.05))
    return None


def _nothing_due(
    session: Session, campaign: Campaign, now: datetime, grace: timedelta
) -> Wait | None:
    """No one is due now: wait for the next due time, or for rows in doubt; else it is done."""
    next_due = session.scalar(
        select(func.min(CampaignRecipient.due_at)).where(
            CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.state == "queued"
        )
    )
    if next_due is not None:
        return Wait(max((next_due - now).total_seconds(), 0.05))
    in_doubt = session.scalar(
        select(func.count()).where(
            CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.state == "sending"
        )
    )
    if in_doubt:
        return Wait(grace.total_seconds())
    campaign.status, campaign.finished_at = "done", now
    return None


def record_sent(session: Session, recipient_id: int, response: str, raw: bytes) -> None:
    """The recipient is sent, and the email is on their timeline as the sender's own mail."""
    row = session.get(CampaignRecipient, recipient_id)
    assert row is not None
    campaign = session.get(Campaign, row.campaign_id)
    sender = session.get(User, campaign.sender_id) if campaign else None
    row.state, row.sent_at, row.provider_response = "sent", utcnow(), response[:500]
    if sender is None:
        return
    link = link_info(import_link(session, sender.email))
    policy = load_policy(session)
    options = PrepareOptions(link.capture_level, policy.internal_domains, link.owner_addresses)
    prepared = prepare_raw(RawMessage(raw, SENT_FOLDER, f"campaign:{row.message_id}"), options)
    Capturer(link, policy).capture_batch(session, [prepared])
    key = normalise_message_id(row.message_id)
    row.activity_id = session.scalar(
        select(Activity.id).where(
            Activity.message_key == f"mid:{key}", Activity.sender_address == sender.email
        )
    )


def default_path(settings: Settings, session: Session, campaign: Campaign) -> SendingPath:
    if campaign.sending_path == "graph":
        link = graph_link_of(session, campaign.sender_id)
        if link is None:
            raise CampaignFailed("the sender has no linked Microsoft 365 mailbox any more")
        return GraphPath(settings, link)
    if not settings.smtp_url:
        if settings.demo:
            return OutboxPath(settings)
        raise CampaignFailed("RAPPORT_SMTP_URL is not set: there is no SMTP server to send with")
    return SmtpPath(settings)


def send_test(
    db: Database, settings: Settings, viewer: Viewer, campaign_id: int, contact_id: int | None
) -> str:
    """The campaign's email, rendered for a contact (or none), sent to its sender alone now by
    the campaign's path; nothing is recorded. Returns the address it went to."""
    with db.read_session() as session:
        campaign = get_campaign(session, viewer, campaign_id)
        try:
            path = default_path(settings, session, campaign)
        except CampaignFailed as exc:
            raise DomainError(str(exc)) from None
        sender = session.get(User, campaign.sender_id)
        assert sender is not None
        rendered = render_for(session, campaign, contact_id)
        domain = sender.email.rsplit("@", 1)[-1]
        raw = build_message(
            replace(rendered, subject=f"[Test] {rendered.subject}"),
            sender_name=sender.name,
            sender_address=sender.email,
            to_name=sender.name,
            to_address=sender.email,
            message_id=f"<rapport-test-{secrets.token_hex(8)}@{domain}>",
            unsubscribe=unsubscribe_url(settings.public_url or "http://localhost", "test"),
            log_marker="",
        )
    try:
        path.send(raw, sender.email, sender.email)
    except (NotSent, InDoubt) as exc:
        raise DomainError(f"the test email did not go out: {exc}") from None
    finally:
        path.close()
    return sender.email
