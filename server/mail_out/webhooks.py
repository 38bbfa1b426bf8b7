"""Delivering webhook events: one POST per delivery, signed, retried, and paused when a receiver
keeps failing.

The request: `POST <url>` with the JSON body `{"event", "at", "data"}` and the headers
`X-Rapport-Event`, `X-Rapport-Delivery` (the delivery's id: a receiver that sees it twice has
seen a retry), `X-Rapport-Timestamp` (Unix seconds) and `X-Rapport-Signature: sha256=<hex>`, the
HMAC-SHA256 of `"<timestamp>.<body>"` with the subscription's secret — so a receiver checks who
sent it and refuses a replay (a timestamp more than five minutes old).

A 2xx answer within 10 s is a delivery. Anything else (another status, a timeout, a refused
connection, a TLS failure) is recorded on the delivery (attempts, last status, the error) and
retried by the job queue with backoff, up to `ATTEMPTS` tries; then the delivery is "failed".
After `PAUSE_AFTER` failed deliveries in a row the subscription is paused (an admin resumes it);
one success resets the count. Redirects are not followed (a receiver answers where it was
subscribed). Requests go through a session with `trust_env=False` and the system's CAs plus
RAPPORT_CA_BUNDLE, as every outgoing HTTPS call here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import requests

from server.config import Settings
from server.crm.webhooks import ATTEMPTS, secret_of
from server.crypto import SecretBox
from server.db import Database
from server.jobs import ClaimedJob
from server.models import Webhook, WebhookDelivery, utcnow

TIMEOUT = 10.0
PAUSE_AFTER = 5


class DeliveryFailed(Exception):
    """The receiver did not take the event; the job queue tries again later."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class Deliverer:
    """The worker's handler for "webhook_deliver" jobs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.box = SecretBox(settings.secret_keys)
        self.http = requests.Session()
        self.http.trust_env = False
        if settings.ca_bundle is not None:
            self.http.verify = str(settings.ca_bundle)

    def close(self) -> None:
        """Close the kept-alive connections (the worker stops)."""
        self.http.close()

    def job(self, db: Database, job: ClaimedJob) -> None:
        delivery_id = int(job.payload["delivery_id"])
        with db.read_session() as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            webhook = session.get(Webhook, delivery.webhook_id) if delivery else None
            if delivery is None or webhook is None or delivery.status == "delivered":
                return  # deleted meanwhile, or delivered by an earlier attempt
            if not webhook.active:
                self._record(db, delivery_id, "skipped", None, "the webhook is paused")
                return
            url, secret = webhook.url, secret_of(self.box, webhook)
            sent = {
                k: delivery.payload[k] for k in ("event", "at", "data") if k in delivery.payload
            }
            body = json.dumps(sent, separators=(",", ":"), sort_keys=True).encode()
            event = delivery.event
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Rapport-Webhooks/1",
            "X-Rapport-Event": event,
            "X-Rapport-Delivery": str(delivery_id),
            "X-Rapport-Timestamp": str(stamp),
            "X-Rapport-Signature": signature(secret, stamp, body),
        }
        code: int | None = None
        try:
            answer = self.http.post(
                url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False
            )
            code = answer.status_code
            error = None if 200 <= code < 300 else f"the receiver answered {code}"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        if error is None:
            self._record(db, delivery_id, "delivered", code, None)
            return
        last = job.attempts >= job.max_attempts
        self._record(db, delivery_id, "failed" if last else "retrying", code, error)
        raise DeliveryFailed(error)

    def _record(
        self, db: Database, delivery_id: int, status: str, code: int | None, error: str | None
    ) -> None:
        with db.session() as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery is None:
                return
            delivery.status = status
            delivery.response_code = code
            delivery.attempts += 1
            # kept beside what is sent (only event, at and data are), for the delivery log
            delivery.payload = {**delivery.payload, "last_error": error}
            webhook = session.get(Webhook, delivery.webhook_id)
            if webhook is None:
                return
            if status == "delivered":
                delivery.delivered_at = utcnow()
                webhook.consecutive_failures = 0
            elif status == "failed":
                webhook.consecutive_failures += 1
                if webhook.consecutive_failures >= PAUSE_AFTER and webhook.active:
                    webhook.active = False
                    webhook.paused_at = utcnow()


__all__ = ["ATTEMPTS", "PAUSE_AFTER", "Deliverer", "DeliveryFailed", "signature"]
