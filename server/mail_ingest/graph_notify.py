"""Change notifications from Microsoft Graph: new mail within seconds, polling as the safety net.

Why: polling every two minutes costs a request per folder per poll and still leaves mail up to
two minutes late. Where Rapport has a public HTTPS address (RAPPORT_PUBLIC_URL, https://...),
the worker subscribes each Graph link's folders (and calendar) to change notifications; Graph
then POSTs to `<public URL>/api/v1/graph/notifications` when something changes, and that view
queues the link's sync at once (`links.queue_sync`: the sync runs in a worker, never in the
request). Nothing else changes: the sync is the same delta query, so a notification lost,
delayed or doubled costs nothing but latency, and the poll still runs.

Microsoft's pages this follows (learn.microsoft.com/graph/...):
- "Receive change notifications through webhooks" (change-notifications-delivery-webhooks):
  the validation handshake (Graph POSTs `?validationToken=...`; answer 200, text/plain, the
  token, within 10 seconds), answering notifications with 202 at once, checking `clientState`;
- "subscription resource type" (api/resources/subscription): create (POST /subscriptions),
  renew (PATCH expirationDateTime), delete; the maximum length per resource -- Outlook messages
  and events: 10,080 minutes (under 7 days);
- "Reduce missing subscriptions and change notifications" (change-notifications-lifecycle-events):
  `lifecycleNotificationUrl` (validated like the notification URL), and what to do on
  reauthorizationRequired (renew, or reauthorize), subscriptionRemoved (create it again) and
  missed (resynchronise with delta).

Subscriptions, per link: one per synced folder (resource
`/users/{mailbox}/mailFolders('{id}')/messages`) and one for the calendar
(`/users/{mailbox}/events`), changeType created,updated,deleted, kept in the link's settings
(`notifications.subscriptions`: id, resource, expiry, which key made its clientState). The
worker looks now and then (`SubscriptionKeeper.schedule`) and queues an upkeep job for a link
whose subscriptions are missing, expire within a day, or were made with a key no longer
current: it creates what is missing, renews (a renewal answered 404 means Graph dropped it:
create it again), and deletes subscriptions of folders no longer synced. A failure (the app may
not subscribe, Graph cannot reach the URL) is recorded in `notifications.error` and retried
half an hour later; the link itself stays as it is -- polling carries on.

`clientState` is a per-link secret derived from RAPPORT_SECRET_KEY (HMAC-SHA256 of the link
id), prefixed with the link id: "42.<43 characters>". Nothing to store; a notification names
its link and proves it came from a subscription Rapport made. After a key rotation every
configured key still verifies, and the upkeep replaces subscriptions made with an old key.

Without an https public URL nothing subscribes (Graph accepts only HTTPS notification URLs,
and http://localhost, which RAPPORT_PUBLIC_URL allows for the add-in's development, is not
reachable from Microsoft anyway): polling is what runs. Subscriptions of a removed link are not
deleted (its credentials are gone with it); they expire within a week and their notifications
are ignored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.config import Settings
from server.crm.errors import Conflict, NotFound
from server.crypto import SecretBox
from server.db import Database
from server.jobs import ClaimedJob, enqueue
from server.mail_ingest.errors import SourceError, Temporary
from server.mail_ingest.links import queue_sync
from server.mail_ingest.sources.graph import CALENDAR_FOLDER, GraphClient
from server.mail_ingest.sync import graph_settings
from server.models import Job, MailboxLink, utcnow

log = logging.getLogger(__name__)

JOB = "graph_subscriptions"
NOTIFICATIONS_PATH = "/api/v1/graph/notifications"
LIFECYCLE_PATH = "/api/v1/graph/lifecycle"
CHANGE_TYPES = "created,updated,deleted"
# Outlook messages and events: at most 10,080 minutes; ten minutes less leaves room for clocks.
MAX_LIFETIME = timedelta(minutes=10_080)
LIFETIME = MAX_LIFETIME - timedelta(minutes=10)
RENEW_BEFORE = timedelta(hours=24)
RETRY_AFTER_FAILURE = timedelta(minutes=30)
CHECK_EVERY_SECONDS = 60.0
MAX_VALIDATION_TOKEN = 4096
MAX_ITEMS = 1000  # notifications per POST (Graph batches a few)
TIMEOUT = 30.0  # seconds per Graph request; creating waits for Graph's validation (<= 10 s)


def notifications_enabled(settings: Settings) -> bool:
    """Subscriptions need a public HTTPS address Graph can reach."""
    return bool(settings.public_url and settings.public_url.startswith("https://"))


# -- clientState ---------------------------------------------------------------------------------


def client_state(key: str, link_id: int) -> str:
    """The link's clientState under `key`: its id and an HMAC of it (see the module docstring)."""
    mac = hmac.new(
        key.encode("utf-8"), f"rapport/graph-notifications/{link_id}".encode(), hashlib.sha256
    ).digest()
    return f"{link_id}.{base64.urlsafe_b64encode(mac).decode('ascii').rstrip('=')}"


def key_id(key: str) -> str:
    """Which key made a clientState (not the key: a digest of it)."""
    return hashlib.sha256(b"rapport/graph-client-state-key/" + key.encode("utf-8")).hexdigest()[:16]


def link_of(keys: Sequence[str], value: object) -> int | None:
    """The link a clientState names, if any configured key made it; None for anything else."""
    if not isinstance(value, str) or len(value) > 128:
        return None
    head, _, _ = value.partition(".")
    if not head.isdigit() or len(head) > 10:
        return None
    link_id = int(head)
    for key in keys:
        if hmac.compare_digest(client_state(key, link_id).encode(), value.encode()):
            return link_id
    return None


# -- what a link should be subscribed to ---------------------------------------------------------


def wanted_resources(config: Mapping[str, Any]) -> dict[str, str]:
    """Folder name (as the sync names it) -> the Graph resource to subscribe to."""
    user = quote(str(config.get("mailbox", "")), safe="@")
    wanted = {
        str(f["name"]): f"/users/{user}/mailFolders('{quote(str(f['id']), safe='')}')/messages"
        for f in config.get("folders") or ()
    }
    if config.get("calendar", True):
        wanted[CALENDAR_FOLDER] = f"/users/{user}/events"
    return wanted


def _state(config: Mapping[str, Any]) -> dict[str, Any]:
    value = config.get("notifications")
    return dict(value) if isinstance(value, Mapping) else {}


def _when(text: object) -> datetime | None:
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def upkeep_due(config: Mapping[str, Any], current_key: str, now: datetime) -> bool:
    """Whether the link's subscriptions need work (missing, expiring, made with an old key, for
    a folder no longer synced), unless a failure asked to wait."""
    state = _state(config)
    retry = _when(state.get("retry_at"))
    if retry is not None and retry > now:
        return False
    held: Mapping[str, Any] = state.get("subscriptions") or {}
    wanted = wanted_resources(config)
    if set(held) != set(wanted):
        return True
    kid = key_id(current_key)
    for name, resource in wanted.items():
        record = held[name]
        expires = _when(record.get("expires_at"))
        if record.get("resource") != resource or record.get("key_id") != kid:
            return True
        if expires is None or expires - now < RENEW_BEFORE:
            return True
    return False


# -- the worker's part ---------------------------------------------------------------------------


@dataclass
class Upkeep:
    link_id: int
    created: int = 0
    renewed: int = 0
    deleted: int = 0
    error: str | None = None


class SubscriptionKeeper:
    """Called from the worker's loop: now and then, queue an upkeep job for each Graph link whose
    subscriptions need work; the job does it."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._next = 0.0

    def schedule(self, *, now: datetime | None = None) -> int:
        if not notifications_enabled(self.settings) or time.monotonic() < self._next:
            return 0
        self._next = time.monotonic() + CHECK_EVERY_SECONDS
        now = now or utcnow()
        key = self.settings.secret_keys[0]
        with self.db.read_session() as session:
            due = [
                link.id
                for link in session.scalars(
                    select(MailboxLink).where(
                        MailboxLink.kind == "graph", MailboxLink.status.in_(("active", "error"))
                    )
                )
                if upkeep_due(link.settings, key, now)
            ]
        if not due:
            return 0
        queued = 0
        with self.db.session() as session:
            for link_id in due:
                key_ = f"graph-subscriptions:{link_id}"
                if enqueue(session, JOB, {"link_id": link_id}, unique_key=key_, max_attempts=3):
                    queued += 1
        return queued

    def job(self, db: Database, job: ClaimedJob) -> None:
        done = keep_subscriptions(
            db,
            self.settings,
            int(job.payload["link_id"]),
            renew_all=bool(job.payload.get("renew_all")),
        )
        log.info(
            "graph subscriptions",
            extra={
                "link_id": done.link_id,
                "created": done.created,
                "renewed": done.renewed,
                "deleted": done.deleted,
                "error": done.error,
            },
        )


def keep_subscriptions(
    db: Database,
    settings: Settings,
    link_id: int,
    *,
    renew_all: bool = False,
    now: datetime | None = None,
) -> Upkeep:
    """Bring one link's subscriptions to what it syncs: create the missing ones, renew those
    that expire within a day (all of them with `renew_all`, after a lifecycle event), replace
    those of an old key, delete the others. Graph's refusals end up in the link's
    `notifications.error` (and a retry in half an hour), never in its status."""
    result = Upkeep(link_id)
    if not notifications_enabled(settings):
        return result
    now = now or utcnow()
    box = SecretBox(settings.secret_keys)
    with db.read_session() as session:
        link = session.get(MailboxLink, link_id)
        if link is None or link.kind != "graph" or link.status not in ("active", "error"):
            return result
        config = dict(link.settings)
        secret = box.decrypt_json(link.secret) if link.secret else {}
        reach = replace(graph_settings(link, secret, settings), timeout=TIMEOUT)
    key = settings.secret_keys[0]
    maker = _Maker(
        settings.public_url or "", client_state(key, link_id), key_id(key), config["mailbox"]
    )
    held: dict[str, dict[str, Any]] = {
        k: dict(v) for k, v in (_state(config).get("subscriptions") or {}).items()
    }
    client = GraphClient(reach)
    try:
        for name, resource in wanted_resources(config).items():
            record = held.get(name)
            if record is not None and (
                record.get("resource") != resource or record.get("key_id") != maker.key_id
            ):
                maker.delete(client, str(record.get("id")))
                result.deleted += 1
                del held[name]
                record = None
            if record is None:
                held[name] = maker.create(client, resource, now)
                result.created += 1
                continue
            expires = _when(record.get("expires_at"))
            if renew_all or expires is None or expires - now < RENEW_BEFORE:
                renewed = maker.renew(client, record, now)
                if renewed is None:  # gone at Graph (expired, or removed): make it again
                    held[name] = maker.create(client, resource, now)
                    result.created += 1
                else:
                    held[name] = renewed
                    result.renewed += 1
        for name in [n for n in held if n not in wanted_resources(config)]:
            maker.delete(client, str(held[name].get("id")))
            del held[name]
            result.deleted += 1
    except SourceError as exc:
        result.error = exc.message
        log.warning("graph subscriptions failed", extra={"link_id": link_id, "error": exc.message})
    finally:
        client.close()
    _save(db, link_id, held, result.error, now)
    return result


@dataclass(frozen=True)
class _Maker:
    """Graph's subscription calls for one link."""

    base: str
    client_state: str
    key_id: str
    mailbox: str

    def create(self, client: GraphClient, resource: str, now: datetime) -> dict[str, Any]:
        body = {
            "changeType": CHANGE_TYPES,
            "notificationUrl": self.base + NOTIFICATIONS_PATH,
            "lifecycleNotificationUrl": self.base + LIFECYCLE_PATH,
            "resource": resource,
            "expirationDateTime": _iso(now + LIFETIME),
            "clientState": self.client_state,
        }
        what = f"a change-notification subscription for {self.mailbox}"
        with client.send(
            "POST", client.url("/subscriptions"), "subscription", body=body, what=what
        ) as response:
            data = _json(response)
        return self._record(data, resource)

    def renew(
        self, client: GraphClient, record: Mapping[str, Any], now: datetime
    ) -> dict[str, Any] | None:
        """The renewed record, or None when Graph no longer has the subscription (404)."""
        url = client.url(f"/subscriptions/{quote(str(record.get('id')), safe='')}")
        body = {"expirationDateTime": _iso(now + LIFETIME)}
        with client.send(
            "PATCH", url, "subscription", body=body, accept=(404,), what="a subscription"
        ) as response:
            if response.status_code == 404:
                return None
            data = _json(response)
        return self._record(data, str(record.get("resource")))

    def delete(self, client: GraphClient, subscription_id: str) -> None:
        url = client.url(f"/subscriptions/{quote(subscription_id, safe='')}")
        with client.send("DELETE", url, "subscription", accept=(404,), what="a subscription"):
            pass

    def _record(self, data: Mapping[str, Any], resource: str) -> dict[str, Any]:
        expires = _when(data.get("expirationDateTime"))
        if not data.get("id") or expires is None:
            raise Temporary("Microsoft Graph answered a subscription request without its id")
        return {
            "id": str(data["id"]),
            "resource": resource,
            "expires_at": expires.isoformat(),
            "key_id": self.key_id,
        }


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _json(response: Any) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise Temporary("Microsoft Graph answered a subscription request with no JSON") from None
    return data if isinstance(data, dict) else {}


def _save(
    db: Database, link_id: int, held: dict[str, dict[str, Any]], error: str | None, now: datetime
) -> None:
    """Only the `notifications` part of the link's settings changes (under a row lock: the
    rest may be changing at the same time)."""
    with db.session() as session:
        link = session.scalar(
            select(MailboxLink).where(MailboxLink.id == link_id).with_for_update()
        )
        if link is None:
            return
        config = dict(link.settings)
        config["notifications"] = {
            "subscriptions": held,
            "checked_at": now.isoformat(),
            "error": error,
            "retry_at": (now + RETRY_AFTER_FAILURE).isoformat() if error else None,
        }
        link.settings = config


# -- what Graph sends ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """What came in: notifications whose clientState checked out, and the others."""

    accepted: int
    refused: int
    link_ids: tuple[int, ...]

    @property
    def all_refused(self) -> bool:
        return self.refused > 0 and self.accepted == 0


def items_of(body: object) -> list[Mapping[str, Any]] | None:
    """The notifications of a POST body ({"value": [...]}), or None when it is not one."""
    if not isinstance(body, Mapping):
        return None
    value = body.get("value")
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        return None
    return [item for item in value if isinstance(item, Mapping)]


def _sort(
    keys: Sequence[str], items: Iterable[Mapping[str, Any]]
) -> tuple[dict[int, set[str]], int]:
    """Each named link's lifecycle events ("" for a change), and how many were refused."""
    links: dict[int, set[str]] = {}
    refused = 0
    for item in items:
        link_id = link_of(keys, item.get("clientState"))
        if link_id is None:
            refused += 1
            continue
        links.setdefault(link_id, set()).add(str(item.get("lifecycleEvent") or ""))
    return links, refused


def receive_changes(
    session: Session, keys: Sequence[str], items: Sequence[Mapping[str, Any]]
) -> Received:
    """Change notifications: queue a sync of each link they name (once per link). The sync
    finds what changed; the notification's own content is not needed."""
    links, refused = _sort(keys, items)
    for link_id in sorted(links):
        _queue_sync(session, link_id)
    return Received(len(items) - refused, refused, tuple(sorted(links)))


def receive_lifecycle(
    session: Session, keys: Sequence[str], items: Sequence[Mapping[str, Any]]
) -> Received:
    """Lifecycle notifications: reauthorizationRequired and subscriptionRemoved renew the
    link's subscriptions (a removed one is created again, its renewal answering 404); missed
    queues a sync (delta finds what the missed notifications were about)."""
    links, refused = _sort(keys, items)
    for link_id, events in sorted(links.items()):
        if "missed" in events:
            _queue_sync(session, link_id)
        if events & {"reauthorizationRequired", "subscriptionRemoved"}:
            link = session.get(MailboxLink, link_id)
            if link is None or link.kind != "graph":
                continue
            key = f"graph-subscriptions-renew:{link_id}"
            enqueue(session, JOB, {"link_id": link_id, "renew_all": True}, unique_key=key)
            session.execute(
                update(Job)
                .where(Job.unique_key == key, Job.status == "queued")
                .values(run_after=utcnow())
            )
    return Received(len(items) - refused, refused, tuple(sorted(links)))


def _queue_sync(session: Session, link_id: int) -> None:
    link = session.get(MailboxLink, link_id)
    if link is None or link.kind != "graph":
        return
    try:
        queue_sync(session, link_id)
    except (Conflict, NotFound):  # paused, removed or needing attention: nothing to do now
        log.info("a change notification for a link that does not sync", extra={"link_id": link_id})
