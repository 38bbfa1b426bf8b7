"""Outgoing webhooks: an admin subscribes a URL to events; each event becomes one delivery per
subscriber, queued in the same transaction as the change it reports (so a change that rolls back
sends nothing, and one that commits is delivered even if the process dies right after).

Events and their payloads (ids, never a copy of an email):

    contact.created, contact.updated   {"contact_id", "name", "emails", "owner_id", "lifecycle_stage"}
    activity.captured                  {"activity_ids": [...], "link_id"} (one per capture batch)
    deal.stage_changed                 {"deal_id", "title", "from_stage_id", "to_stage_id", "status"}
    follow_up.due                      {"follow_up_id", "title", "due_at", "owner_id", "contact_id",
                                        "deal_id"}
    ping                               {} (the "send a test" button)

Sending, signing, retries and the automatic pause: `server.mail_out.webhooks`. Each
subscription has its own secret (shown once when it is made; stored encrypted) for the
`X-Rapport-Signature` HMAC.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.crm.errors import DomainError, NotFound
from server.jobs import enqueue
from server.models import FollowUp, Webhook, WebhookDelivery, utcnow

if TYPE_CHECKING:
    from server.crypto import SecretBox

EVENTS = (
    "contact.created",
    "contact.updated",
    "activity.captured",
    "deal.stage_changed",
    "follow_up.due",
)
JOB = "webhook_deliver"
MAX_WEBHOOKS = 50


def check_url(url: str) -> str:
    """https, or http to this machine only (a receiver on loopback: tests, a local bridge)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise DomainError("the URL must be https://HOST/...", field="url")
    if parts.scheme == "http":
        try:
            loopback = ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = parts.hostname == "localhost"
        if not loopback:
            raise DomainError(
                "events are sent over https only (http only to this machine)", field="url"
            )
    if parts.username or parts.password:
        raise DomainError("put no credentials in the URL: check the signature instead", field="url")
    return url.strip()


def check_events(events: Sequence[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENTS]
    if unknown or not events:
        raise DomainError(
            f"events are some of {', '.join(EVENTS)}" + (f"; not {unknown[0]}" if unknown else ""),
            field="events",
        )
    return sorted(set(events))


def create_webhook(
    session: Session, box: SecretBox, *, url: str, events: Sequence[str]
) -> tuple[Webhook, str]:
    """A new subscription and its secret (returned this once)."""
    if len(session.scalars(select(Webhook.id)).all()) >= MAX_WEBHOOKS:
        raise DomainError(f"at most {MAX_WEBHOOKS} webhooks", field="url")
    secret = "whsec_" + secrets.token_urlsafe(32)
    webhook = Webhook(
        url=check_url(url), events=check_events(events), secret=box.encrypt_json({"secret": secret})
    )
    session.add(webhook)
    session.flush()
    return webhook, secret


def get_webhook(session: Session, webhook_id: int) -> Webhook:
    # deferred: custom_fields pulls in the timeline, which capture (it calls emit) never needs
    from server.crm.custom_fields import valid_id

    found = session.get(Webhook, webhook_id) if valid_id(webhook_id) else None
    if found is None:
        raise NotFound(f"no webhook {webhook_id}")
    return found


def update_webhook(
    session: Session,
    webhook_id: int,
    *,
    url: str | None = None,
    events: Sequence[str] | None = None,
    active: bool | None = None,
) -> Webhook:
    webhook = get_webhook(session, webhook_id)
    if url is not None:
        webhook.url = check_url(url)
    if events is not None:
        webhook.events = check_events(events)
    if active is not None:
        webhook.active = active
        if active:  # resumed by an admin: a fresh start
            webhook.paused_at = None
            webhook.consecutive_failures = 0
    webhook.updated_at = utcnow()
    session.flush()
    return webhook


def delete_webhook(session: Session, webhook_id: int) -> None:
    session.delete(get_webhook(session, webhook_id))
    session.flush()


def secret_of(box: SecretBox, webhook: Webhook) -> str:
    return str(box.decrypt_json(webhook.secret)["secret"])


def emit(
    session: Session,
    event: str,
    payload: Mapping[str, Any],
    *,
    only: int | None = None,
    at: datetime | None = None,
) -> int:
    """Queue one delivery of `event` per active subscriber (or to webhook `only`); how many."""
    query = select(Webhook.id, Webhook.events).where(Webhook.active.is_(True))
    if only is not None:
        query = query.where(Webhook.id == only)
    queued = 0
    for webhook_id, events in session.execute(query):
        if only is None and event not in events:
            continue
        body = {"event": event, "at": (at or utcnow()).isoformat(), "data": dict(payload)}
        delivery = WebhookDelivery(webhook_id=webhook_id, event=event, payload=body)
        session.add(delivery)
        session.flush()
        enqueue(session, JOB, {"delivery_id": delivery.id}, max_attempts=ATTEMPTS)
        queued += 1
    return queued


ATTEMPTS = 6  # 30 s, 1, 2, 4, 8 minutes apart (the job queue's backoff), then failed


DUE_WINDOW = timedelta(days=1)  # older due follow-ups are not announced (a new subscriber
# would otherwise receive every past one at once)


def announce_due_follow_ups(session: Session, now: datetime | None = None) -> int:
    """One follow_up.due event per open follow-up that became due (in the last day) and was not
    announced yet; returns how many. Called by the worker every minute."""
    now = now or utcnow()
    wanted = [
        events
        for (events,) in session.execute(select(Webhook.events).where(Webhook.active.is_(True)))
    ]
    if not any("follow_up.due" in events for events in wanted):
        return 0
    due = session.scalars(
        select(FollowUp)
        .where(
            FollowUp.done_at.is_(None),
            FollowUp.notified_at.is_(None),
            FollowUp.due_at <= now,
            FollowUp.due_at > now - DUE_WINDOW,
        )
        .order_by(FollowUp.due_at, FollowUp.id)
        .limit(500)
    ).all()
    for item in due:
        item.notified_at = now
        emit(
            session,
            "follow_up.due",
            {
                "follow_up_id": item.id,
                "title": item.title,
                "due_at": item.due_at.isoformat(),
                "owner_id": item.owner_id,
                "contact_id": item.contact_id,
                "deal_id": item.deal_id,
            },
        )
    return len(due)


def deliveries(session: Session, webhook_id: int, limit: int = 50) -> list[WebhookDelivery]:
    get_webhook(session, webhook_id)
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
    )
