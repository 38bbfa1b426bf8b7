"""Email campaigns as people manage them: create, change, preview, check, schedule, pause,
resume, cancel, and their numbers. Sending itself is `server.mail_out.campaigns`.

    draft ──send/schedule──▶ scheduled ──(runner)──▶ sending ──▶ done
      │                        │  ▲                    │
      │                        ▼  │resume              ▼
      │                       paused ◀───pause─────────┘
      └──────────cancel (from any state but done)──────▶ cancelled

Scheduling freezes the recipients: one `CampaignRecipient` row per person of the segment,
queued (with the time it is due) or skipped (with why), and queues the campaign's job. A
campaign is its owner's: other members do not see it; admins do. It is sent as its owner, from
their own mailbox (Graph) or through the configured SMTP server.

Rate limits are per sending path (`campaigns.limits.<path>` settings, defaults Microsoft 365's:
10,000 recipients a day and 30 messages a minute per mailbox); a campaign may go slower, not
faster, and one that would take the sender past the daily limit is refused when scheduled.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from server.crm.addresses import normalise_address
from server.crm.campaign_rules import Verdict, judge, render_for
from server.crm.custom_fields import clean_text, valid_id
from server.crm.errors import Conflict, DomainError, NotFound
from server.crm.segments import get_segment, segment_query
from server.crm.settings import get_setting, set_setting
from server.crm.templates import Rendered, check_text, get_template
from server.crm.viewer import Viewer
from server.jobs import enqueue
from server.models import (
    Activity,
    ActivityParticipant,
    Campaign,
    CampaignRecipient,
    Contact,
    MailboxLink,
    MailingBlock,
    Meeting,
    User,
    utcnow,
)
from server.models.campaigns import SENDING_PATHS

JOB = "campaign_send"
DEFAULT_LIMITS = {"per_minute": 30, "per_day": 10_000}  # Microsoft 365, per mailbox
EDITABLE = ("draft",)
STOPPABLE = ("draft", "scheduled", "sending", "paused")


class CampaignFields(TypedDict, total=False):
    name: str
    segment_id: int | None
    template_id: int | None
    subject: str
    body_text: str
    body_html: str
    sending_path: str
    per_minute: int
    per_day: int


@dataclass(frozen=True)
class Stats:
    recipients: int
    queued: int
    sent: int
    skipped: int
    bounced: int
    failed: int
    unknown: int
    replied: int
    unsubscribed: int
    skip_reasons: dict[str, int]


# -- limits ----------------------------------------------------------------------------------


def path_limits(session: Session, path: str) -> dict[str, int]:
    stored = get_setting(session, f"campaigns.limits.{path}")
    limits = dict(DEFAULT_LIMITS)
    if isinstance(stored, dict):
        limits.update({k: int(v) for k, v in stored.items() if k in DEFAULT_LIMITS})
    return limits


def set_path_limits(session: Session, path: str, limits: Mapping[str, int]) -> dict[str, int]:
    if path not in SENDING_PATHS:
        raise DomainError(f"path must be one of {', '.join(SENDING_PATHS)}", field="path")
    merged = {**path_limits(session, path), **limits}
    if any(v < 1 for v in merged.values()):
        raise DomainError("limits must be at least 1", field="limits")
    set_setting(session, f"campaigns.limits.{path}", merged)
    return merged


# -- managing them ---------------------------------------------------------------------------


def get_campaign(session: Session, viewer: Viewer, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id) if valid_id(campaign_id) else None
    if campaign is None or (campaign.owner_id != viewer.id and not viewer.is_admin):
        raise NotFound(f"there is no campaign {campaign_id}")
    return campaign


def list_campaigns(session: Session, viewer: Viewer) -> list[Campaign]:
    query = select(Campaign).order_by(Campaign.created_at.desc(), Campaign.id.desc())
    if not viewer.is_admin:
        query = query.where(Campaign.owner_id == viewer.id)
    return list(session.scalars(query))


def create_campaign(session: Session, viewer: Viewer, fields: CampaignFields) -> Campaign:
    campaign = Campaign(
        name="", owner_id=viewer.id, sender_id=viewer.id, status="draft", sending_path="smtp"
    )
    _apply(session, viewer, campaign, {"name": "", **fields})
    session.add(campaign)
    session.flush()
    return campaign


def update_campaign(
    session: Session, viewer: Viewer, campaign_id: int, fields: CampaignFields
) -> Campaign:
    campaign = get_campaign(session, viewer, campaign_id)
    if campaign.status not in EDITABLE:
        raise Conflict(f"campaign {campaign.id} is {campaign.status}: only a draft is changed")
    _apply(session, viewer, campaign, fields)
    campaign.updated_at = utcnow()
    session.flush()
    return campaign


def delete_campaign(session: Session, viewer: Viewer, campaign_id: int) -> None:
    campaign = get_campaign(session, viewer, campaign_id)
    if campaign.status in ("scheduled", "sending"):
        raise Conflict(f"campaign {campaign.id} is {campaign.status}: cancel it first")
    session.delete(campaign)
    session.flush()


def _apply(session: Session, viewer: Viewer, campaign: Campaign, fields: CampaignFields) -> None:
    if "name" in fields:
        campaign.name = clean_text(fields["name"], "name", max_length=200, required=True)
    if "segment_id" in fields:
        segment_id = fields["segment_id"]
        campaign.segment_id = get_segment(session, segment_id).id if segment_id else None
    if fields.get("template_id"):
        # The template is copied: editing it later does not change a campaign under way.
        template = get_template(session, viewer, int(fields["template_id"] or 0))
        campaign.template_id = template.id
        campaign.subject, campaign.body_text, campaign.body_html = (
            template.subject,
            template.body,
            "",
        )
    for name, limit in (("subject", 1000), ("body_text", 100_000), ("body_html", 200_000)):
        if name in fields:
            setattr(campaign, name, check_text(str(fields[name]), name, limit))  # type: ignore[literal-required]
    if "sending_path" in fields:
        path = fields["sending_path"]
        if path not in SENDING_PATHS:
            raise DomainError(
                f"sending_path must be one of {', '.join(SENDING_PATHS)}", field="sending_path"
            )
        campaign.sending_path = path
    limits = path_limits(session, campaign.sending_path)
    for name in ("per_minute", "per_day"):
        value = fields.get(name) or getattr(campaign, name) or limits[name]
        if not isinstance(value, int) or value < 1:
            raise DomainError(f"{name} must be at least 1", field=name)
        if value > limits[name]:
            raise DomainError(
                f"{name} is at most {limits[name]} when sending through {campaign.sending_path}",
                field=name,
            )
        setattr(campaign, name, value)


def graph_link_of(session: Session, user_id: int) -> MailboxLink | None:
    """The user's own linked Graph mailbox, the way a Graph campaign goes out."""
    return session.scalar(
        select(MailboxLink)
        .where(
            MailboxLink.kind == "graph",
            MailboxLink.owner_user_id == user_id,
            MailboxLink.status.in_(("active", "error")),
        )
        .order_by(MailboxLink.id)
        .limit(1)
    )


# -- before sending --------------------------------------------------------------------------


def preview(session: Session, viewer: Viewer, campaign_id: int, contact_id: int) -> Rendered:
    campaign = get_campaign(session, viewer, campaign_id)
    return render_for(session, campaign, contact_id)


def _audience(session: Session, campaign: Campaign) -> Sequence[Contact]:
    if campaign.segment_id is None:
        raise DomainError("choose a segment first", field="segment_id")
    segment = get_segment(session, campaign.segment_id)
    return list(session.scalars(segment_query(session, segment.filters).order_by(Contact.id)))


def check(session: Session, viewer: Viewer, campaign_id: int) -> list[Verdict]:
    """Every person of the segment with the reason they would be skipped (None: mailed)."""
    campaign = get_campaign(session, viewer, campaign_id)
    return judge(session, campaign, _audience(session, campaign))


# -- scheduling ------------------------------------------------------------------------------


def contact_time_zones(session: Session, contact_ids: Sequence[int]) -> dict[int, str]:
    """A contact's time zone where Rapport knows one: that of the latest meeting they organised
    (contacts have no time zone field of their own)."""
    found: dict[int, str] = {}
    for start in range(0, len(contact_ids), 1000):
        chunk = list(contact_ids[start : start + 1000])
        rows = session.execute(
            select(ActivityParticipant.contact_id, Meeting.time_zone)
            .join(Meeting, Meeting.activity_id == ActivityParticipant.activity_id)
            .where(
                ActivityParticipant.contact_id.in_(chunk),
                ActivityParticipant.role == "organizer",
                Meeting.time_zone.is_not(None),
            )
            .order_by(ActivityParticipant.contact_id, Meeting.starts_at.desc())
        )
        for contact_id, zone in rows:
            if zone and contact_id is not None and contact_id not in found and _zone(zone):
                found[contact_id] = zone
    return found


def _zone(name: str | None) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def schedule(
    session: Session,
    viewer: Viewer,
    campaign_id: int,
    *,
    send_at: datetime | None = None,
    local_time: bool = False,
) -> Campaign:
    """Freeze the recipients and queue the sending: now, at `send_at`, or — `local_time` — at
    `send_at`'s wall-clock time in each recipient's time zone (their meetings' when known, else
    the sender's)."""
    campaign = get_campaign(session, viewer, campaign_id)
    if campaign.status != "draft":
        raise Conflict(f"campaign {campaign.id} is {campaign.status}, not a draft")
    if not campaign.subject.strip() or not (campaign.body_text.strip() or campaign.body_html):
        raise DomainError("the campaign needs a subject and a body", field="subject")
    if campaign.sending_path == "graph" and graph_link_of(session, campaign.sender_id) is None:
        raise DomainError(
            "you have no linked Microsoft 365 (Graph) mailbox to send from: link it, or send "
            "through SMTP",
            field="sending_path",
        )
    if local_time and send_at is None:
        raise DomainError("local_time needs send_at (the wall-clock time)", field="send_at")
    verdicts = judge(session, campaign, _audience(session, campaign))
    mailed = [v for v in verdicts if v.reason is None]
    _check_daily_limit(session, campaign, len(mailed))
    due = _due_times(session, campaign, [v.contact_id for v in mailed], send_at, local_time)
    domain = _domain_of(session, campaign.sender_id)
    for verdict in verdicts:
        key = f"rapport-c{campaign.id}-{verdict.contact_id}-{secrets.token_hex(6)}"
        session.add(
            CampaignRecipient(
                campaign_id=campaign.id,
                contact_id=verdict.contact_id,
                address=verdict.address or "",
                idempotency_key=key,
                message_id=f"<{key}@{domain}>",
                state="queued" if verdict.reason is None else "skipped",
                skip_reason=verdict.reason,
                provider_response=verdict.detail or None,
                due_at=due.get(verdict.contact_id, utcnow()),
            )
        )
    campaign.status = "scheduled"
    campaign.send_at = send_at
    campaign.local_time = local_time
    campaign.updated_at = utcnow()
    session.flush()
    first = min(due.values(), default=utcnow())
    enqueue(session, JOB, {"campaign_id": campaign.id}, run_after=first, unique_key=_key(campaign))
    return campaign


def _key(campaign: Campaign) -> str:
    return f"campaign:{campaign.id}"


def _domain_of(session: Session, user_id: int) -> str:
    user = session.get(User, user_id)
    address = normalise_address(user.email) if user else None
    return address.rsplit("@", 1)[1] if address else "rapport.invalid"


def _check_daily_limit(session: Session, campaign: Campaign, count: int) -> None:
    limit = min(campaign.per_day, path_limits(session, campaign.sending_path)["per_day"])
    since = utcnow() - timedelta(days=1)
    sent = session.scalar(
        select(func.count())
        .select_from(CampaignRecipient)
        .join(Campaign, Campaign.id == CampaignRecipient.campaign_id)
        .where(
            Campaign.sender_id == campaign.sender_id,
            or_(
                CampaignRecipient.sent_at >= since,
                CampaignRecipient.state.in_(("queued", "sending")),
            ),
        )
    )
    already = int(sent or 0)
    if already + count > limit:
        raise DomainError(
            f"this campaign has {count} recipients and you sent or queued {already} others in "
            f"the last 24 hours: more than the daily limit of {limit} recipients through "
            f"{campaign.sending_path}. Split the segment, or send the rest tomorrow",
            field="per_day",
        )


def _due_times(
    session: Session,
    campaign: Campaign,
    contact_ids: Sequence[int],
    send_at: datetime | None,
    local_time: bool,
) -> dict[int, datetime]:
    now = utcnow()
    if send_at is None:
        return dict.fromkeys(contact_ids, now)
    if not local_time:
        when = send_at if send_at.tzinfo else send_at.replace(tzinfo=UTC)
        return dict.fromkeys(contact_ids, max(when, now))
    sender = session.get(User, campaign.sender_id)
    fallback = _zone(sender.time_zone if sender else None) or ZoneInfo("UTC")
    zones = contact_time_zones(session, contact_ids)
    wall = send_at.replace(tzinfo=None)
    due = {}
    for contact_id in contact_ids:
        zone = _zone(zones.get(contact_id)) or fallback
        due[contact_id] = max(wall.replace(tzinfo=zone).astimezone(UTC), now)
    return due


# -- while sending ---------------------------------------------------------------------------


def pause(session: Session, viewer: Viewer, campaign_id: int) -> Campaign:
    campaign = get_campaign(session, viewer, campaign_id)
    if campaign.status not in ("scheduled", "sending"):
        raise Conflict(f"campaign {campaign.id} is {campaign.status}: nothing to pause")
    campaign.status = "paused"
    campaign.updated_at = utcnow()
    session.flush()
    return campaign


def resume(session: Session, viewer: Viewer, campaign_id: int) -> Campaign:
    campaign = get_campaign(session, viewer, campaign_id)
    if campaign.status != "paused":
        raise Conflict(f"campaign {campaign.id} is {campaign.status}, not paused")
    campaign.status = "scheduled"
    campaign.updated_at = utcnow()
    session.flush()
    enqueue(session, JOB, {"campaign_id": campaign.id}, unique_key=_key(campaign))
    return campaign


def cancel(session: Session, viewer: Viewer, campaign_id: int) -> Campaign:
    """Stop for good: whoever was not mailed yet is skipped as "cancelled"."""
    campaign = get_campaign(session, viewer, campaign_id)
    if campaign.status not in STOPPABLE:
        raise Conflict(f"campaign {campaign.id} is {campaign.status}: nothing to cancel")
    campaign.status = "cancelled"
    campaign.finished_at = utcnow()
    campaign.updated_at = utcnow()
    session.execute(
        update(CampaignRecipient)
        .where(CampaignRecipient.campaign_id == campaign.id, CampaignRecipient.state == "queued")
        .values(state="skipped", skip_reason="cancelled")
    )
    session.flush()
    return campaign


# -- numbers ---------------------------------------------------------------------------------


def stats(session: Session, viewer: Viewer, campaign_id: int) -> Stats:
    campaign = get_campaign(session, viewer, campaign_id)
    by_state: dict[str, int] = {}
    for state, count in session.execute(
        select(CampaignRecipient.state, func.count())
        .where(CampaignRecipient.campaign_id == campaign.id)
        .group_by(CampaignRecipient.state)
    ):
        by_state[state] = int(count)
    reasons = {
        str(reason): int(count)
        for reason, count in session.execute(
            select(CampaignRecipient.skip_reason, func.count())
            .where(
                CampaignRecipient.campaign_id == campaign.id,
                CampaignRecipient.state == "skipped",
            )
            .group_by(CampaignRecipient.skip_reason)
        )
    }
    unsubscribed = session.scalar(
        select(func.count())
        .select_from(MailingBlock)
        .where(MailingBlock.campaign_id == campaign.id, MailingBlock.reason == "unsubscribed")
    )
    return Stats(
        recipients=sum(by_state.values()),
        queued=by_state.get("queued", 0) + by_state.get("sending", 0),
        sent=by_state.get("sent", 0) + by_state.get("bounced", 0),
        skipped=by_state.get("skipped", 0),
        bounced=by_state.get("bounced", 0),
        failed=by_state.get("failed", 0),
        unknown=by_state.get("unknown", 0),
        replied=replied_count(session, campaign.id),
        unsubscribed=int(unsubscribed or 0),
        skip_reasons=reasons,
    )


def replied_count(session: Session, campaign_id: int) -> int:
    """Recipients who answered: an incoming email from them in the thread of the one they got."""
    sent = (
        select(CampaignRecipient.contact_id, Activity.thread_id)
        .join(Activity, Activity.id == CampaignRecipient.activity_id)
        .where(CampaignRecipient.campaign_id == campaign_id, Activity.thread_id.is_not(None))
        .subquery()
    )
    reply = (
        select(func.count(func.distinct(sent.c.contact_id)))
        .select_from(sent)
        .join(Activity, Activity.thread_id == sent.c.thread_id)
        .join(
            ActivityParticipant,
            (ActivityParticipant.activity_id == Activity.id)
            & (ActivityParticipant.contact_id == sent.c.contact_id)
            & (ActivityParticipant.role == "from"),
        )
        .where(Activity.direction == "incoming")
    )
    return int(session.scalar(reply) or 0)
