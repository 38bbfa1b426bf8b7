"""A local Microsoft Graph (the Outlook mail and calendar part of v1.0) over HTTPS, for tests.

Rapport's Graph source runs unchanged against it: only RAPPORT_GRAPH_API_URL (`api_url`),
RAPPORT_GRAPH_AUTHORITY_HOST and RAPPORT_CA_BUNDLE differ from production. It trusts the access
tokens of an `IdentityEmulator` (tests/emulators/identity.py: same CA, same signing key) and
serves one Exchange Online mailbox per `add_mailbox`. Start it in a thread
(`GraphEmulator(identity).start()`, or `with`).

Endpoints, each following the Microsoft Learn page named in its handler's docstring, with that
page's sample payloads as the shapes of the answers:

    GET  /v1.0/users/{id|upn}/mailFolders[/{id|well-known}[/childFolders]]
    GET  /v1.0/users/{id}/mailFolders/{id}/messages/delta         Prefer: odata.maxpagesize,
                                                                   Prefer: IdType="ImmutableId",
                                                                   $select, $skiptoken/$deltatoken
    GET  /v1.0/users/{id}/messages/{id}[/$value]                  JSON, or the MIME content
    GET  /v1.0/users/{id}/calendar
    GET  /v1.0/users/{id}/calendarView/delta?startDateTime&endDateTime
    GET  /v1.0/users/{id}/events/{id}                             a series master, say
    GET  /v1.0/users/{id}/mailFolders/{id}/messages?$filter=internetMessageId eq '<...>'
    POST /v1.0/users/{id}/sendMail                                 MIME (base64, text/plain):
                                                                   202, the message is put in
                                                                   Sent Items as sent
    POST /v1.0/$batch                                              JSON batching, 20 a request
    POST /v1.0/subscriptions, GET|PATCH|DELETE /v1.0/subscriptions/{id}
                                                                   change notifications
    (/me/... for delegated tokens)

Access: an RS256 token from the identity emulator, not expired (nor expired by `expire_tokens`),
audience https://graph.microsoft.com, from the mailbox's tenant. App-only tokens need the
application roles Mail.Read (mail), Calendars.Read (calendar) or Mail.Send (sendMail) and, when the app is restricted
(`restrict_app`: an application access policy / RBAC for applications), the mailbox in its
scope. Delegated tokens need the scopes Mail.Read / Calendars.Read for the user's own mailbox,
Mail.Read.Shared / Calendars.Read.Shared plus a FullAccess grant (`grant_delegate`) for another
(a shared mailbox).

QUIRKS it reproduces (what the client must cope with):
- deltaLink only on the last page of a round; every other page carries a nextLink, and a replayed
  nextLink returns the same page again (pages are fixed when the round starts);
- the state tokens carry the round's query ($select, the calendarView window): a nextLink or
  deltaLink is followed as it is; the calendarView window cannot change without a new round;
- message ids change when a message moves to another folder, unless the request says
  `Prefer: IdType="ImmutableId"` (header per request; inside $batch per item, or the batch's);
  a move shows as `@removed` in the old folder's delta and as a new item in the new folder's;
- `@removed: {"reason": "deleted"}` tombstones for messages deleted or moved out; a message
  changed in any way (read, flagged) comes back whole in the next delta;
- default page sizes: 10 for message delta and mailFolders (as Graph's), larger on request
  (odata.maxpagesize for delta, $top for folders; at most 1000 here);
- internetMessageHeaders only when $select names it; copies in Sent Items carry none;
- calendarView delta returns single instances, occurrences and exceptions, never the series
  master (GET /events/{seriesMasterId} has it); v1.0 has no `uid` property;
- iCalUId is Exchange's GlobalObjectId in hex ([MS-OXOCAL] 2.2.1.27): a UID made elsewhere
  (a Google or Apple invite) is wrapped in it after "vCal-Uid"; each occurrence has its own,
  with the occurrence's date in bytes 16-19;
- $batch: at most 20 requests; responses in any order; a non-JSON body (the MIME of $value) as a
  base64 string; items run against a mailbox 4 at a time (`concurrency_limit`, counting the
  mailbox's other requests in flight), the others answer 429 "MailboxConcurrency" with their own
  Retry-After, item by item; a fifth request at once against one mailbox is refused the same
  way (`peak_in_flight` has the most a mailbox saw);
- faults: `faults(rate=..., kinds=("429", "503", "504"))` makes that share of requests (and,
  with `item_rate`, of batch items) fail; 429 carries Retry-After, 503 and 504 none (as Graph's
  front end often sends them) unless named in `retry_after_kinds`; `fail_next(...)` queues given
  failures; `expire_tokens()` (401 InvalidAuthenticationToken "Lifetime validation failed" for
  every token seen so far);
  `fail_next_delta(address, code)` (410 Gone, syncStateNotFound or resyncRequired, with a
  Location header holding the initial query with an empty $deltatoken); `delay` seconds added to
  every request, `slow_rate`/`slow_seconds` for some; `drop_rate`: that share of answers is cut
  off half-way through its body and the connection closed (a dropped connection; `dropped`
  counts them);
- change notifications: a subscription (messages of a folder or of the whole mailbox, or
  events) exists only after its notificationUrl -- and lifecycleNotificationUrl -- passed
  validation (HTTPS only; a POST with ?validationToken= that must come back as 200 text/plain
  within `validation_timeout`); expirationDateTime at most 10,080 minutes ahead; an expired
  subscription is deleted (a renewal then answers 404). `deliver`, `move`, `delete`,
  `mark_read` and `add_event` notify the matching subscriptions at once (`notify_on_change`);
  `notify(...)` and `lifecycle(id, event)` send one on demand; `deliveries` logs every POST
  made to a subscriber (validation, change, lifecycle) with the status it got;
- Retry-After is fractional here (`retry_after`, e.g. 0.2) so tests stay fast -- Graph sends
  whole seconds; the client reads either.

`log` records every request and batch item (time, mailbox, kind, status, Retry-After) and flags
any sent before the Retry-After of a throttled request to the same mailbox (or, for a batch item,
of the same item): `violations()` must stay empty. `count(kind=...)` counts requests by kind.

Pages cited (Microsoft Learn, learn.microsoft.com/graph/...):
- "message: delta" (api/message-delta) and "Get incremental changes to messages in a folder"
  (delta-query-messages): the delta rounds, $select, Prefer: odata.maxpagesize, @removed;
- "Use delta query to track changes in Microsoft Graph data" (delta-query-overview): state
  tokens, replays, "Synchronization reset" (410 with Location), syncStateNotFound;
- "mailFolder: delta" (api/mailfolder-delta) and "List mailFolders" (api/user-list-mailfolders),
  "mailFolder resource type" (well-known folder names);
- "event: delta" (api/event-delta) and "Get incremental changes to events in a calendar view"
  (delta-query-events); "event resource type" (iCalUId, seriesMasterId, originalStart, type);
- "Use query parameters to customize responses" (query-parameters): $select, $top, $skip;
- "Combine multiple HTTP requests using JSON batching" (json-batching);
- "Microsoft Graph throttling guidance" (throttling) and "Microsoft Graph service-specific
  throttling limits" (throttling-limits, "Outlook service limits": 10,000 requests per 10
  minutes and 4 concurrent requests per app per mailbox);
- "Get MIME content of a message" (outlook-get-mime-message);
- "Obtain immutable identifiers for Outlook resources" (outlook-immutable-id);
- "Microsoft Graph error responses and resource types" (errors): the error body;
- "subscription resource type" (api/resources/subscription), "Create subscription"
  (api/subscription-post-subscriptions), "Update subscription", "Delete subscription";
  "Receive change notifications through webhooks" (change-notifications-delivery-webhooks):
  validation and the changeNotificationCollection payload; "Reduce missing subscriptions and
  change notifications" (change-notifications-lifecycle-events): lifecycle notifications;
- "Limiting application permissions to specific Exchange Online mailboxes"
  (auth-limit-mailbox-access) and "Role Based Access Control for Applications in Exchange Online"
  (learn.microsoft.com/exchange/permissions-exo/application-rbac).
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import itertools
import json
import random
import re
import secrets
import ssl
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import jwt
import pytest
import requests

from tests.emulators.identity import GRAPH, HOST, App, IdentityEmulator, Tenant, _TlsServer

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"  # Microsoft Graph's own application id
VERSIONS = ("v1.0", "beta")
MAX_BATCH = 20
MAX_PAGE = 1000
DEFAULT_DELTA_PAGE = 10
DEFAULT_FOLDER_PAGE = 10
WELL_KNOWN = {
    "inbox": "Inbox",
    "sentitems": "Sent Items",
    "drafts": "Drafts",
    "deleteditems": "Deleted Items",
    "archive": "Archive",
    "junkemail": "Junk Email",
}
MAIL_ROLES = frozenset({"Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic.All"})
SEND_ROLES = frozenset({"Mail.Send"})
CALENDAR_ROLES = frozenset({"Calendars.Read", "Calendars.ReadWrite"})
EXCHANGE_UID_PREFIX = "040000008200E00074C5B7101A82E008"
_MESSAGE_FIELDS = (
    "subject",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "receivedDateTime",
    "sentDateTime",
    "internetMessageId",
    "conversationId",
    "parentFolderId",
    "hasAttachments",
    "isRead",
    "isDraft",
    "importance",
    "bodyPreview",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
)


def _new_id(prefix: str = "AAMkAG") -> str:
    """An id shaped like Exchange's (base64url of an entry id)."""
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(30)).decode().rstrip("=") + "="


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_precise(when: datetime) -> str:
    """lastModifiedDateTime as Graph writes it, with seven fractional digits
    ("2017-08-29T04:31:25.3624766Z", the event resource's sample): two changes within one second
    must still be told apart."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _graph_time(when: datetime) -> dict[str, str]:
    """A dateTimeTimeZone in UTC, as Graph answers without Prefer: outlook.timezone."""
    return {
        "dateTime": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"),
        "timeZone": "UTC",
    }


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _recipient(name: str, address: str) -> dict[str, Any]:
    return {"emailAddress": {"name": name or address, "address": address}}


# --------------------------------------------------------------------------------------------
# The mailbox store


@dataclass
class Folder:
    id: str
    display_name: str
    parent_id: str | None
    well_known: str | None = None


@dataclass
class Message:
    immutable_id: str
    rest_id: str  # the default (REST) id: changes on every move
    folder_id: str
    mime: bytes
    fields: dict[str, Any]  # message properties derived from the MIME
    headers: list[dict[str, str]]
    is_read: bool = False
    version: int = 0

    @property
    def change_key(self) -> str:
        return base64.b64encode(f"{self.immutable_id[-12:]}:{self.version}".encode()).decode()


@dataclass
class Series:
    """An event as its organizer made it: a single instance or a series master."""

    id: str
    ical_uid: str
    subject: str
    start: datetime
    end: datetime
    organizer: tuple[str, str]
    attendees: list[dict[str, Any]]
    recurrence: dict[str, Any] | None = None
    online_url: str = ""
    location: str = ""
    cancelled: bool = False
    all_day: bool = False
    sensitivity: str = "normal"
    own_response: str = "none"
    time_zone: str = "UTC"
    version: int = 0
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    # original start -> changes (start, end, subject, cancelled...) or None for a deleted one
    exceptions: dict[datetime, dict[str, Any] | None] = field(default_factory=dict)
    exception_ids: dict[datetime, str] = field(default_factory=dict)


@dataclass
class Mailbox:
    address: str
    tenant_id: str
    name: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    shared: bool = False
    licensed: bool = True  # False: "MailboxNotEnabledForRESTAPI" (no Exchange Online licence)
    folders: dict[str, Folder] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)  # by immutable id
    events: dict[str, Series] = field(default_factory=dict)
    delegates: set[str] = field(default_factory=set)  # users with FullAccess (upn)

    def folder(self, key: str) -> Folder | None:
        lowered = key.lower()
        for folder in self.folders.values():
            if folder.id == key or folder.well_known == lowered:
                return folder
        return None


@dataclass
class Round:
    """One delta round's pages, fixed when it starts (so a replayed nextLink repeats a page)."""

    mailbox: str
    kind: str  # "mail" or "calendar"
    scope: str  # folder id, or the calendarView window "start|end"
    select: tuple[str, ...] | None
    entries: list[dict[str, Any]]
    page_size: int
    snapshot: dict[str, Any]  # what the round's deltaLink will compare the next round against


@dataclass
class LoggedRequest:
    at: float
    mailbox: str | None
    kind: str
    method: str
    path: str
    status: int = 0
    retry_after: float | None = None
    in_batch: bool = False
    early: bool = False  # sent before a Retry-After that applied to it


@dataclass
class Subscription:
    """A change-notification subscription ("subscription resource type")."""

    id: str
    app_id: str
    tenant_id: str
    mailbox: str
    scope: str  # a folder id, "*" (the whole mailbox's messages) or "calendar"
    resource: str
    change_types: frozenset[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expires: datetime

    def json(self) -> dict[str, Any]:
        return {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": ",".join(sorted(self.change_types)),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": _iso_precise(self.expires),
            "creatorId": self.app_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "notificationUrlAppId": None,
        }


@dataclass(frozen=True)
class Delivery:
    """One POST the emulator made to a subscriber (validation, notification or lifecycle)."""

    kind: str
    url: str
    status: int
    subscription_id: str | None = None


class GraphError(Exception):
    """A Graph error answer ("Microsoft Graph error responses and resource types")."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": str(uuid.uuid4()),
                    "client-request-id": str(uuid.uuid4()),
                },
            }
        }


@dataclass
class _Caller:
    """Who a token says is calling."""

    app_id: str
    tenant_id: str
    roles: frozenset[str]
    scopes: frozenset[str]
    user: str | None  # upn, for a delegated token

    @property
    def delegated(self) -> bool:
        return self.user is not None


@dataclass
class _Answer:
    status: int
    body: Any  # dict (JSON), bytes, or None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; odata.metadata=minimal; charset=utf-8"


# --------------------------------------------------------------------------------------------
# The emulator


class GraphEmulator:
    """Microsoft Graph's Outlook endpoints on https://127.0.0.1:PORT/v1.0."""

    def __init__(self, identity: IdentityEmulator, *, seed: int = 1) -> None:
        self.identity = identity
        self.mailboxes: dict[str, Mailbox] = {}  # by lower-cased address
        self.log: list[LoggedRequest] = []
        self.rng = random.Random(seed)
        self._seed = seed
        self._lock = threading.RLock()
        self._rounds: dict[str, Round] = {}
        self._deltas: dict[str, Round] = {}  # deltatoken -> the finished round it continues
        self._expired_tokens: set[str] = set()  # jti of tokens refused as expired
        self._seen_tokens: set[str] = set()
        self._restricted: dict[str, set[str]] = {}  # app id -> mailboxes in its policy scope
        self._in_flight: Counter[str] = Counter()
        self.peak_in_flight: Counter[str] = Counter()  # most requests one mailbox had at once
        self._not_before: dict[tuple[str, str], float] = {}
        self._queued: list[tuple[str, int, str | None, float | None]] = []
        self._gone: list[tuple[str, str | None, str]] = []  # (mailbox, scope, code)
        self._counter = itertools.count(1)
        self.subscriptions: dict[str, Subscription] = {}
        self.deliveries: list[Delivery] = []
        self._server: _TlsServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> GraphEmulator:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # The identity emulator's CA issues this certificate too: one RAPPORT_CA_BUNDLE for both.
        self.identity._ca.issue_cert(HOST, "localhost").configure_cert(context)
        self._server = _TlsServer((HOST, 0), _handler(self), context)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="graph-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> GraphEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        assert self._server is not None, "start() the emulator first"
        return f"{HOST}:{self._server.server_address[1]}"

    @property
    def api_url(self) -> str:
        """What RAPPORT_GRAPH_API_URL takes."""
        return f"https://{self.host}/v1.0"

    def env(self) -> dict[str, str]:
        """The RAPPORT_* variables pointing a Rapport process at both emulators."""
        return {**self.identity.env(), "RAPPORT_GRAPH_API_URL": self.api_url}

    # -- switches -----------------------------------------------------------------------------

    def reset(self) -> None:
        """Fault switches off and the log cleared (mailboxes and issued tokens stay)."""
        with self._lock:
            self.fault_rate = 0.0
            self.fault_kinds: tuple[str, ...] = ("429", "503")
            self.retry_after_kinds: tuple[str, ...] = ("429",)  # faults that carry Retry-After
            self.item_fault_rate = 0.0
            self.retry_after = 2.0
            self.delay = 0.0
            self.slow_rate = 0.0
            self.slow_seconds = 0.0
            self.drop_rate = 0.0
            self.dropped = 0
            self.concurrency_limit = 4
            self._expire_countdown: int | None = None
            self.notify_on_change = True  # deliver/move/delete... notify the subscribers
            self.validation_timeout = 10.0  # seconds a subscriber has to echo the token
            self.subscriptions.clear()
            self.deliveries.clear()
            self.log.clear()
            self.peak_in_flight.clear()
            self.sent: list[tuple[str, bytes]] = []  # (mailbox, MIME) of each sendMail
            self._queued.clear()
            self._gone.clear()
            self._not_before.clear()
            self.rng.seed(self._seed)

    def faults(
        self,
        rate: float,
        *,
        kinds: Sequence[str] = ("429", "503"),
        item_rate: float | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Make `rate` of the requests (and `item_rate` of batch items; default the same) fail
        with one of `kinds`: "429" (with Retry-After), "503" and "504" (without)."""
        with self._lock:
            self.fault_rate = rate
            self.fault_kinds = tuple(kinds)
            self.item_fault_rate = rate if item_rate is None else item_rate
            if retry_after is not None:
                self.retry_after = retry_after

    def fail_next(
        self,
        kind: str,
        status: int,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests of `kind` ("delta", "calendar_delta", "batch",
        "folders", "event", "mime", or "item" for a batch item) with `status`."""
        with self._lock:
            for _ in range(times):
                self._queued.append((kind, status, code, retry_after))

    def fail_next_delta(
        self, address: str, *, folder: str | None = None, code: str = "syncStateNotFound"
    ) -> None:
        """The next delta request with a state token for this mailbox (and folder id, or
        "calendar") is refused: 410 Gone, `code`, Location = the initial query."""
        with self._lock:
            self._gone.append((address.lower(), folder, code))

    def expire_tokens(self) -> None:
        """Every access token presented so far is refused as expired from now on."""
        with self._lock:
            self._expired_tokens |= self._seen_tokens

    def expire_tokens_after(self, requests: int) -> None:
        """`expire_tokens()` once `requests` more requests have been answered: a token that
        expires in the middle of a sync."""
        with self._lock:
            self._expire_countdown = requests

    def restrict_app(self, app: App, mailboxes: Iterable[str]) -> None:
        """`New-ApplicationAccessPolicy -AccessRight RestrictAccess` (or an RBAC for
        Applications management scope): the app may open these mailboxes only."""
        with self._lock:
            self._restricted[app.client_id] = {m.lower() for m in mailboxes}

    def grant_delegate(self, mailbox: str, user: str) -> None:
        """`Add-MailboxPermission -User <user> -AccessRights FullAccess` on a (shared) mailbox."""
        with self._lock:
            self.mailboxes[mailbox.lower()].delegates.add(user.lower())

    # -- the directory and the mailboxes ------------------------------------------------------

    def graph_app(self, tenant: Tenant, **options: Any) -> App:
        """An app registration with the application permissions Mail.Read and Calendars.Read of
        Microsoft Graph, admin consent granted."""
        roles = options.pop("roles", {GRAPH: {"Mail.Read", "Calendars.Read"}})
        return self.identity.add_app(tenant, roles=roles, **options)

    def add_mailbox(
        self, tenant: Tenant, address: str, name: str | None = None, *, shared: bool = False
    ) -> Mailbox:
        """An Exchange Online mailbox with its well-known folders (a user of the tenant, or a
        shared mailbox: a disabled user object with a mailbox)."""
        user = self.identity.add_user(tenant, address, name)
        mailbox = Mailbox(address.lower(), tenant.id, user.name, id=user.oid, shared=shared)
        root = Folder(_new_id("AQMkAD"), "Top of Information Store", None, "msgfolderroot")
        mailbox.folders[root.id] = root
        for well_known, display in WELL_KNOWN.items():
            folder = Folder(_new_id("AQMkAD"), display, root.id, well_known)
            mailbox.folders[folder.id] = folder
        with self._lock:
            self.mailboxes[mailbox.address] = mailbox
        return mailbox

    def add_folder(self, address: str, name: str, parent: str = "msgfolderroot") -> str:
        with self._lock:
            mailbox = self.mailboxes[address.lower()]
            above = mailbox.folder(parent)
            assert above is not None, parent
            folder = Folder(_new_id("AQMkAD"), name, above.id)
            mailbox.folders[folder.id] = folder
            return folder.id

    def folder_id(self, address: str, key: str) -> str:
        with self._lock:
            mailbox = self.mailboxes[address.lower()]
            found = mailbox.folder(key) or next(
                (f for f in mailbox.folders.values() if f.display_name == key), None
            )
            assert found is not None, key
            return found.id

    def deliver(
        self, address: str, mime: bytes, folder: str = "inbox", *, is_read: bool = False
    ) -> str:
        """Put a message in a folder; its immutable id."""
        with self._lock:
            mailbox = self.mailboxes[address.lower()]
            target = mailbox.folder(folder) or mailbox.folders[self.folder_id(address, folder)]
            fields, headers = _message_fields(mime)
            if target.well_known in ("sentitems", "drafts"):
                headers = []  # never transported: no internet headers (see QUIRKS)
            message = Message(_new_id(), _new_id(), target.id, mime, fields, headers, is_read)
            mailbox.messages[message.immutable_id] = message
        self._changed(mailbox, target.id, "created", message.immutable_id)
        return message.immutable_id

    def move(self, address: str, message_id: str, folder: str) -> None:
        with self._lock:
            mailbox = self.mailboxes[address.lower()]
            message = mailbox.messages[message_id]
            target = mailbox.folder(folder) or mailbox.folders[self.folder_id(address, folder)]
            source = message.folder_id
            message.folder_id = target.id
            message.rest_id = _new_id()  # a new default id in the new folder (see QUIRKS)
            message.version += 1
        self._changed(mailbox, source, "deleted", message_id)
        self._changed(mailbox, target.id, "created", message_id)

    def delete(self, address: str, message_id: str) -> None:
        """Deleted for good (a hard delete; a soft one is a move to deleteditems)."""
        with self._lock:
            mailbox = self.mailboxes[address.lower()]
            gone = mailbox.messages.pop(message_id)
        self._changed(mailbox, gone.folder_id, "deleted", message_id)

    def mark_read(self, address: str, message_id: str, read: bool = True) -> None:
        with self._lock:
            mailbox = self.mailboxes[address.lower()]
            message = mailbox.messages[message_id]
            message.is_read = read
            message.version += 1
        self._changed(mailbox, message.folder_id, "updated", message_id)

    def messages_in(self, address: str, folder: str) -> list[Message]:
        with self._lock:
            mailbox = self.mailboxes[address.lower()]
            folder_id = (
                mailbox.folder(folder) or mailbox.folders[self.folder_id(address, folder)]
            ).id
            return [m for m in mailbox.messages.values() if m.folder_id == folder_id]

    # -- calendar -----------------------------------------------------------------------------

    def add_event(
        self,
        address: str,
        *,
        subject: str,
        start: datetime,
        minutes: int = 30,
        organizer: tuple[str, str],
        attendees: Mapping[str, tuple[str, str]] = {},
        recurrence: dict[str, Any] | None = None,
        ical_uid: str | None = None,
        online_url: str = "",
        location: str = "",
        own_response: str = "none",
        sensitivity: str = "normal",
    ) -> str:
        """A meeting in the mailbox's calendar; `attendees` maps address -> (name, response:
        none, accepted, tentativelyAccepted, declined, notResponded). Its event id."""
        people = [
            {
                "type": "required",
                "status": {"response": response, "time": "0001-01-01T00:00:00Z"},
                "emailAddress": {"name": who, "address": address_},
            }
            for address_, (who, response) in attendees.items()
        ]
        uid = _global_object_id(ical_uid) if ical_uid else _global_object_id(None)
        series = Series(
            _new_id("AAMkAGI"),
            uid,
            subject,
            start,
            start + timedelta(minutes=minutes),
            organizer,
            people,
            recurrence,
            online_url,
            location,
            sensitivity=sensitivity,
            own_response=own_response,
        )
        with self._lock:
            mailbox = self.mailboxes[address.lower()]
            mailbox.events[series.id] = series
        self._changed(mailbox, "calendar", "created", series.id)
        return series.id

    def change_occurrence(
        self, address: str, series_id: str, original_start: datetime, **changes: Any
    ) -> None:
        """Make one occurrence an exception: start/end (datetimes), subject, cancelled."""
        with self._lock:
            series = self.mailboxes[address.lower()].events[series_id]
            series.exceptions[original_start.astimezone(UTC)] = dict(changes)
            series.exception_ids.setdefault(original_start.astimezone(UTC), _new_id("AAMkAGE"))
            series.modified = datetime.now(UTC)

    def delete_occurrence(self, address: str, series_id: str, original_start: datetime) -> None:
        with self._lock:
            series = self.mailboxes[address.lower()].events[series_id]
            series.exceptions[original_start.astimezone(UTC)] = None
            series.modified = datetime.now(UTC)

    def update_event(self, address: str, event_id: str, **changes: Any) -> None:
        with self._lock:
            series = self.mailboxes[address.lower()].events[event_id]
            for name, value in changes.items():
                setattr(series, name, value)
            series.version += 1
            series.modified = datetime.now(UTC)

    def delete_event(self, address: str, event_id: str) -> None:
        with self._lock:
            del self.mailboxes[address.lower()].events[event_id]

    # -- the log --------------------------------------------------------------------------------

    def count(
        self,
        kind: str | None = None,
        *,
        mailbox: str | None = None,
        status: int | None = None,
        in_batch: bool | None = False,
    ) -> int:
        """Requests of a kind (top-level ones unless `in_batch` is True or None)."""
        with self._lock:
            return sum(
                1
                for entry in self.log
                if (kind is None or entry.kind == kind)
                and (mailbox is None or entry.mailbox == mailbox.lower())
                and (status is None or entry.status == status)
                and (in_batch is None or entry.in_batch == in_batch)
            )

    def kinds(self) -> Counter[str]:
        with self._lock:
            return Counter(("item:" if e.in_batch else "") + e.kind for e in self.log)

    def violations(self) -> list[LoggedRequest]:
        """Requests sent before a Retry-After that applied to them."""
        with self._lock:
            return [entry for entry in self.log if entry.early]

    # -- request handling -----------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> _Answer:
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        segments = _segments(path)
        if segments and segments[0] in VERSIONS:
            segments = segments[1:]
        kind, address = self._classify(method, segments, headers)
        entry = LoggedRequest(time.monotonic(), address, kind, method, path)
        # A throttled $batch (no mailbox of its own) keys its Retry-After as "$batch".
        throttle = address if address is not None else ("$batch" if kind == "batch" else None)
        self._record(entry, throttle)
        with self._lock:
            busy = 0
            if address is not None:
                self._in_flight[address] += 1
                busy = self._in_flight[address]
                self.peak_in_flight[address] = max(self.peak_in_flight[address], busy)
        try:
            if busy > self.concurrency_limit:
                raise _fault(429, "MailboxConcurrency", self.retry_after)
            self._pause()
            answer = self._answer(method, segments, query, headers, body, entry)
        except GraphError as refused:
            answer = _Answer(refused.status, refused.body(), refused.headers)
        except Exception:  # a bug of the emulator: loud, and a 500 rather than a dead socket
            traceback.print_exc()
            answer = _Answer(500, _fault(500, None, None).body())
        finally:
            with self._lock:
                if address is not None:
                    self._in_flight[address] -= 1
        self._finish(entry, answer, throttle)
        return answer

    def _pause(self) -> None:
        extra = self.delay
        if self.slow_rate and self._roll(self.slow_rate):
            extra += self.slow_seconds
        if extra:
            time.sleep(extra)

    def _roll(self, rate: float) -> bool:
        with self._lock:
            return self.rng.random() < rate

    def cut_short(self) -> bool:
        """Whether to drop this answer's connection half-way (`drop_rate`), counted."""
        if not self.drop_rate or not self._roll(self.drop_rate):
            return False
        with self._lock:
            self.dropped += 1
        return True

    def _record(
        self, entry: LoggedRequest, throttle: str | None, item_key: str | None = None
    ) -> None:
        with self._lock:
            if throttle is not None:
                deadlines = [self._not_before.get((throttle, "*"), 0.0)]
                if item_key is not None:
                    deadlines.append(self._not_before.get((throttle, item_key), 0.0))
                entry.early = entry.at < max(deadlines) - 0.005  # clock granularity
            self.log.append(entry)

    def _finish(
        self,
        entry: LoggedRequest,
        answer: _Answer,
        throttle: str | None,
        item_key: str | None = None,
    ) -> None:
        entry.status = answer.status
        header = answer.headers.get("Retry-After")
        entry.retry_after = float(header) if header is not None else None
        if entry.retry_after is not None and throttle is not None:
            key = (throttle, item_key or "*")
            with self._lock:
                self._not_before[key] = max(
                    self._not_before.get(key, 0.0), time.monotonic() + entry.retry_after
                )

    def _classify(
        self, method: str, segments: list[str], headers: Mapping[str, str]
    ) -> tuple[str, str | None]:
        if method == "POST" and segments == ["$batch"]:
            return "batch", None
        if segments[:1] == ["subscriptions"]:
            return "subscription", None
        address: str | None = None
        if len(segments) >= 2 and segments[0] == "users":
            address = segments[1].lower()
        elif segments and segments[0] == "me":
            address = self._token_user(headers)
        rest = segments[2:] if segments and segments[0] == "users" else segments[1:]
        if rest and rest[0] == "mailFolders":
            kind = "delta" if rest[-1] in ("delta", "microsoft.graph.delta()") else "folders"
        elif rest[:1] == ["messages"]:
            kind = "mime" if rest[-1] == "$value" else "message"
        elif rest == ["sendMail"]:
            kind = "send"
        elif rest[:1] == ["calendarView"]:
            kind = "calendar_delta"
        elif rest[:1] == ["events"]:
            kind = "event"
        elif rest[:1] == ["calendar"]:
            kind = "calendar"
        else:
            kind = "user"
        if address is not None:
            with self._lock:
                known = next((m.address for m in self.mailboxes.values() if m.id == address), None)
            address = known or address
        return kind, address

    def _token_user(self, headers: Mapping[str, str]) -> str | None:
        token = headers.get("authorization", "").removeprefix("Bearer ").strip()
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        upn = claims.get("upn")
        return str(upn).lower() if upn else None

    def _injected(self, kind: str, *, item: bool = False) -> GraphError | None:
        """A queued or random fault for this request (or batch item), if one is due."""
        with self._lock:
            wanted = "item" if item else kind
            queued = next((q for q in self._queued if q[0] == wanted), None)
            if queued is not None:
                self._queued.remove(queued)
                _, status, code, retry_after = queued
                return _fault(status, code, retry_after)
            rate = self.item_fault_rate if item else self.fault_rate
            if rate and self.rng.random() < rate:
                choice = self.rng.choice(self.fault_kinds)
                after = self.retry_after if choice in self.retry_after_kinds else None
                return _fault(int(choice), None, after)
        return None

    def _answer(
        self,
        method: str,
        segments: list[str],
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
        entry: LoggedRequest,
    ) -> _Answer:
        with self._lock:
            if self._expire_countdown is not None:
                self._expire_countdown -= 1
                if self._expire_countdown < 0:
                    self._expire_countdown = None
                    self._expired_tokens |= self._seen_tokens
        caller = self._authenticate(headers)
        fault = self._injected(entry.kind)
        if fault is not None:
            raise fault
        if entry.kind == "batch":
            if method != "POST":
                raise GraphError(405, "BadRequest", "Use POST for $batch.")
            return self.batch(caller, headers, body)
        if entry.kind == "subscription":
            return self.subscription_route(caller, method, segments, body)
        if entry.kind == "send" and method == "POST":
            return self.send_mail(caller, segments, headers, body)
        if method != "GET":
            raise GraphError(405, "ErrorInvalidRequest", f"{method} is not supported here.")
        return self.route(caller, segments, query, headers)

    # -- authentication ---------------------------------------------------------------------------

    def _authenticate(self, headers: Mapping[str, str]) -> _Caller:
        """Bearer token checks as Graph makes them (signature, lifetime, audience, tenant)."""
        auth = headers.get("authorization", "")
        challenge = {
            "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline'
            f'.com/common/oauth2/authorize", client_id="{GRAPH_APP_ID}"'
        }
        if not auth.startswith("Bearer "):
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", challenge)
        token = auth[len("Bearer ") :].strip()
        try:
            claims = jwt.decode(
                token,
                self.identity.signing_key.private.public_key(),
                algorithms=["RS256"],
                audience=[GRAPH, GRAPH_APP_ID],
            )
        except jwt.ExpiredSignatureError:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
                challenge,
            ) from None
        except jwt.InvalidAudienceError:
            raise GraphError(
                401, "InvalidAuthenticationToken", "Invalid audience.", challenge
            ) from None
        except jwt.PyJWTError:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "IDX14100: JWT is not well formed.",
                challenge,
            ) from None
        jti = str(claims.get("jti", ""))
        with self._lock:
            expired = jti in self._expired_tokens
            self._seen_tokens.add(jti)
        if expired:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
                challenge,
            )
        upn = claims.get("upn")
        return _Caller(
            app_id=str(claims.get("appid") or claims.get("azp") or ""),
            tenant_id=str(claims.get("tid", "")),
            roles=frozenset(claims.get("roles") or ()),
            scopes=frozenset(str(claims.get("scp") or "").split()),
            user=str(upn).lower() if upn else None,
        )

    def _mailbox(self, caller: _Caller, key: str, area: str) -> Mailbox:
        """The mailbox a path names, if this caller may read its `area` ("mail" or
        "calendar")."""
        with self._lock:
            lowered = key.lower()
            if lowered == "me":
                if caller.user is None:
                    raise GraphError(
                        400,
                        "BadRequest",
                        "/me request is only valid with delegated authentication flow.",
                    )
                lowered = caller.user
            mailbox = self.mailboxes.get(lowered) or next(
                (m for m in self.mailboxes.values() if m.id == lowered), None
            )
            restricted = self._restricted.get(caller.app_id)
        if mailbox is None or mailbox.tenant_id != caller.tenant_id:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
        if not mailbox.licensed:
            raise GraphError(
                404,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            )
        denied = GraphError(
            403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
        )
        wanted = {"mail": MAIL_ROLES, "calendar": CALENDAR_ROLES, "send": SEND_ROLES}[area]
        if not caller.delegated:
            if not caller.roles & wanted:
                raise denied
            if restricted is not None and mailbox.address not in restricted:
                raise GraphError(
                    403,
                    "ErrorAccessDenied",
                    "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly "
                    "AccessPolicy settings.",
                )
            return mailbox
        scope = {"mail": "Mail.Read", "calendar": "Calendars.Read", "send": "Mail.Send"}[area]
        if caller.user == mailbox.address:
            if not caller.scopes & {scope, scope.replace("Read", "ReadWrite")}:
                raise denied
            return mailbox
        shared = {f"{scope}.Shared", f"{scope.replace('Read', 'ReadWrite')}.Shared"}
        if not caller.scopes & shared or caller.user not in mailbox.delegates:
            raise denied
        return mailbox

    # -- routes -------------------------------------------------------------------------------

    def route(
        self,
        caller: _Caller,
        segments: list[str],
        query: dict[str, str],
        headers: Mapping[str, str],
    ) -> _Answer:
        if segments and segments[0] == "me":
            segments = ["users", "me", *segments[1:]]
        if len(segments) < 3 or segments[0] != "users":
            raise GraphError(400, "BadRequest", "Resource not found for the segment.")
        user, rest = segments[1], segments[2:]
        prefer = _prefer(headers)
        if rest[0] == "mailFolders":
            mailbox = self._mailbox(caller, user, "mail")
            if len(rest) == 1:
                return self.list_folders(mailbox, None, query)
            folder = mailbox.folder(rest[1])
            if folder is None:
                raise GraphError(
                    404, "ErrorItemNotFound", "The specified object was not found in the store."
                )
            if len(rest) == 2:
                return _Answer(200, _folder_json(mailbox, folder))
            if rest[2:] == ["childFolders"]:
                return self.list_folders(mailbox, folder, query)
            if rest[2:3] == ["messages"] and rest[-1] in ("delta", "microsoft.graph.delta()"):
                return self.message_delta(mailbox, folder, query, prefer)
            if rest[2:] == ["messages"]:
                return self.find_messages(mailbox, folder, query, prefer)
        if rest[0] == "messages" and len(rest) in (2, 3):
            mailbox = self._mailbox(caller, user, "mail")
            message = self._find_message(mailbox, rest[1])
            if len(rest) == 3 and rest[2] == "$value":
                return self.mime(message)
            return _Answer(200, _message_json(mailbox, message, _select(query), prefer))
        if rest == ["calendar"]:
            mailbox = self._mailbox(caller, user, "calendar")
            return _Answer(
                200,
                {
                    "id": _new_id("AAMkAGC"),
                    "name": "Calendar",
                    "owner": {"name": mailbox.name, "address": mailbox.address},
                },
            )
        if rest[:1] == ["calendarView"] and rest[-1] in ("delta", "microsoft.graph.delta()"):
            mailbox = self._mailbox(caller, user, "calendar")
            return self.calendar_delta(mailbox, query, prefer)
        if rest[:1] == ["events"] and len(rest) == 2:
            mailbox = self._mailbox(caller, user, "calendar")
            return self.event(mailbox, rest[1])
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[0]}'.")

    def list_folders(
        self, mailbox: Mailbox, parent: Folder | None, query: dict[str, str]
    ) -> _Answer:
        """ "List mailFolders" / "List childFolders": the top-level folders (under
        msgfolderroot), 10 a page by default ($top, $skip; @odata.nextLink)."""
        with self._lock:
            above = parent or mailbox.folder("msgfolderroot")
            assert above is not None
            children = [f for f in mailbox.folders.values() if f.parent_id == above.id]
        top = min(int(query.get("$top", DEFAULT_FOLDER_PAGE)), MAX_PAGE)
        skip = int(query.get("$skip", 0))
        page = children[skip : skip + top]
        answer: dict[str, Any] = {
            "@odata.context": f"{self.api_url}/$metadata#users('{mailbox.id}')/mailFolders",
            "value": [_folder_json(mailbox, f) for f in page],
        }
        if skip + top < len(children):
            where = f"mailFolders('{above.id}')/childFolders" if parent else "mailFolders"
            answer["@odata.nextLink"] = (
                f"{self.api_url}/users/{quote(mailbox.id)}/{where}?$top={top}&$skip={skip + top}"
            )
        return _Answer(200, answer)

    def _find_message(self, mailbox: Mailbox, message_id: str) -> Message:
        with self._lock:
            found = mailbox.messages.get(message_id) or next(
                (m for m in mailbox.messages.values() if m.rest_id == message_id), None
            )
        if found is None:
            raise GraphError(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return found

    def find_messages(
        self, mailbox: Mailbox, folder: Folder, query: Mapping[str, str], prefer: Mapping[str, str]
    ) -> _Answer:
        """ "List messages" with the one filter Rapport uses: `internetMessageId eq '<id>'`
        (the way to find a sent message again by its Message-ID)."""
        wanted = re.fullmatch(r"internetMessageId eq '(.*)'", query.get("$filter", "").strip())
        if wanted is None:
            raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The filter is not supported.")
        with self._lock:
            found = [
                m
                for m in mailbox.messages.values()
                if m.folder_id == folder.id
                and m.fields.get("internetMessageId") == wanted.group(1).replace("''", "'")
            ]
        items = [_message_json(mailbox, m, _select(query), prefer) for m in found]
        return _Answer(200, {"value": items})

    def send_mail(
        self, caller: _Caller, segments: list[str], headers: Mapping[str, str], body: bytes
    ) -> _Answer:
        """ "user: sendMail" in MIME format: POST /users/{id}/sendMail, Content-Type text/plain,
        the MIME content base64-encoded; 202 and no body. Graph keeps the message's own
        Message-ID and headers and saves a copy in Sent Items (saveToSentItems defaults to
        true); there is no idempotency key: posting it twice sends it twice."""
        user = "me" if segments[:1] == ["me"] else segments[1]
        mailbox = self._mailbox(caller, user, "send")
        if not headers.get("content-type", "").startswith("text/plain"):
            raise GraphError(400, "ErrorMimeContentInvalid", "Send the MIME as base64 text.")
        try:
            mime = base64.b64decode(body, validate=True)
        except ValueError:
            raise GraphError(
                400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME."
            ) from None
        self.deliver(mailbox.address, mime, "sentitems", is_read=True)
        with self._lock:
            self.sent.append((mailbox.address, mime))
        return _Answer(202, None)

    def mime(self, message: Message) -> _Answer:
        """ "Get MIME content of a message": GET /users/{id}/messages/{id}/$value."""
        return _Answer(200, message.mime, content_type="text/plain")

    # -- message delta ----------------------------------------------------------------------------

    def message_delta(
        self, mailbox: Mailbox, folder: Folder, query: dict[str, str], prefer: dict[str, str]
    ) -> _Answer:
        """ "message: delta" / "Get incremental changes to messages in a folder": a round of
        pages, nextLink until the last one, which carries the deltaLink."""
        page_size = _page_size(prefer)
        immutable = prefer.get("idtype", "").strip('"').lower() == "immutableid"
        base = f"{self.api_url}/users/{quote(mailbox.id)}/mailFolders('{folder.id}')/messages/delta"
        if "$skiptoken" in query or "$deltatoken" in query:
            self._check_gone(mailbox, folder.id, base)
        if "$skiptoken" in query:
            return self._page(query["$skiptoken"], base, immutable, mailbox)
        previous: Round | None = None
        if query.get("$deltatoken"):
            with self._lock:
                previous = self._deltas.get(query["$deltatoken"])
            if previous is None or previous.scope != folder.id:
                raise _gone(base, "syncStateNotFound")
        select = previous.select if previous is not None else _select(query)
        with self._lock:
            current = {
                m.immutable_id: m for m in mailbox.messages.values() if m.folder_id == folder.id
            }
            snapshot = {mid: (m.rest_id, m.version) for mid, m in current.items()}
            entries: list[dict[str, Any]] = []
            before: dict[str, tuple[str, int]] = previous.snapshot if previous else {}
            for mid, (rest_id, _version) in before.items():
                if mid not in current:
                    entries.append({"immutable": mid, "rest": rest_id, "removed": "deleted"})
                elif current[mid].rest_id != rest_id:
                    # moved out and back: to a client of default ids, the old id is gone
                    entries.append(
                        {"immutable": mid, "rest": rest_id, "removed": "deleted", "rest_only": True}
                    )
            for mid, message in current.items():
                if previous is not None and before.get(mid) == (message.rest_id, message.version):
                    continue
                entries.append(
                    {
                        "immutable": mid,
                        "rest": message.rest_id,
                        "json": _message_json(mailbox, message, select, {}),
                    }
                )
        round_ = Round(mailbox.address, "mail", folder.id, select, entries, page_size, snapshot)
        round_id = self._start_round(round_)
        return self._page(f"{round_id}.0", base, immutable, mailbox)

    def _start_round(self, round_: Round) -> str:
        round_id = f"{next(self._counter)}{secrets.token_hex(6)}"
        with self._lock:
            self._rounds[round_id] = round_
        return round_id

    def _page(self, skiptoken: str, base: str, immutable: bool, mailbox: Mailbox) -> _Answer:
        round_id, _, index_text = skiptoken.partition(".")
        with self._lock:
            round_ = self._rounds.get(round_id)
        if round_ is None or round_.mailbox != mailbox.address or not index_text.isdigit():
            raise _gone(base, "syncStateNotFound")
        index = int(index_text)
        size = round_.page_size
        chosen = round_.entries[index * size : (index + 1) * size]
        value = []
        for entry in chosen:
            if entry.get("rest_only") and immutable:
                continue
            item_id = entry["immutable"] if immutable else entry["rest"]
            if "removed" in entry:
                value.append(
                    {
                        "@odata.type": "#microsoft.graph.message"
                        if round_.kind == "mail"
                        else "#microsoft.graph.event",
                        "id": item_id,
                        "@removed": {"reason": entry["removed"]},
                    }
                )
            else:
                body = dict(entry["json"])
                if round_.kind == "mail":
                    body["id"] = item_id
                value.append(body)
        answer: dict[str, Any] = {"@odata.context": f"{self.api_url}/$metadata#Collection(message)"}
        if (index + 1) * size < len(round_.entries):
            answer["@odata.nextLink"] = f"{base}?$skiptoken={round_id}.{index + 1}"
        else:
            token = secrets.token_urlsafe(18)
            with self._lock:
                self._deltas[token] = round_
            answer["@odata.deltaLink"] = f"{base}?$deltatoken={token}"
        answer["value"] = value
        return _Answer(200, answer, {"Preference-Applied": f"odata.maxpagesize={size}"})

    def _check_gone(self, mailbox: Mailbox, scope: str, base: str) -> None:
        with self._lock:
            due = next(
                (
                    g
                    for g in self._gone
                    if g[0] == mailbox.address and (g[1] is None or g[1] == scope)
                ),
                None,
            )
            if due is not None:
                self._gone.remove(due)
        if due is not None:
            raise _gone(base, due[2])

    # -- calendar -----------------------------------------------------------------------------

    def calendar_delta(
        self, mailbox: Mailbox, query: dict[str, str], prefer: dict[str, str]
    ) -> _Answer:
        """ "event: delta" on a calendarView: the window (startDateTime, endDateTime) is fixed
        in the state tokens; single instances, occurrences and exceptions, no series masters."""
        base = f"{self.api_url}/users/{quote(mailbox.id)}/calendarView/delta"
        if "$skiptoken" in query or "$deltatoken" in query:
            self._check_gone(mailbox, "calendar", base)
        if "$skiptoken" in query:
            return self._page(query["$skiptoken"], base, True, mailbox)
        previous: Round | None = None
        if query.get("$deltatoken"):
            with self._lock:
                previous = self._deltas.get(query["$deltatoken"])
            if previous is None or previous.kind != "calendar":
                raise _gone(base, "syncStateNotFound")
            window = previous.scope
        else:
            start, end = query.get("startDateTime"), query.get("endDateTime")
            if not start or not end:
                raise GraphError(
                    400,
                    "ErrorInvalidParameter",
                    "This request requires a time window specified by the query string "
                    "parameters StartDateTime and EndDateTime.",
                )
            window = f"{_iso(_parse_time(start))}|{_iso(_parse_time(end))}"
        low, high = (_parse_time(t) for t in window.split("|"))
        with self._lock:
            instances = {
                i["id"]: i
                for s in mailbox.events.values()
                for i in _instances(s, mailbox, low, high)
            }
        snapshot = {key: value["changeKey"] for key, value in instances.items()}
        before: dict[str, str] = previous.snapshot if previous else {}
        entries: list[dict[str, Any]] = [
            {"immutable": key, "rest": key, "removed": "deleted"}
            for key in before
            if key not in instances
        ]
        entries += [
            {"immutable": key, "rest": key, "json": value}
            for key, value in instances.items()
            if before.get(key) != value["changeKey"]
        ]
        round_ = Round(
            mailbox.address, "calendar", window, None, entries, _page_size(prefer), snapshot
        )
        return self._page(f"{self._start_round(round_)}.0", base, True, mailbox)

    def event(self, mailbox: Mailbox, event_id: str) -> _Answer:
        """ "Get event": a series master (type seriesMaster, its recurrence, its iCalUId)."""
        with self._lock:
            series = mailbox.events.get(event_id)
        if series is None:
            raise GraphError(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return _Answer(200, _event_json(series, mailbox))

    # -- change notifications ---------------------------------------------------------------------

    def subscription_route(
        self, caller: _Caller, method: str, segments: list[str], body: bytes
    ) -> _Answer:
        """ "subscription resource type": create (POST /subscriptions), list, get, update
        (PATCH: expirationDateTime, notificationUrl) and delete, each app its own."""
        with self._lock:
            self._drop_expired()
        if len(segments) == 1:
            if method == "POST":
                return self.create_subscription(caller, _json_body(body))
            if method == "GET":
                with self._lock:
                    mine = [
                        s.json() for s in self.subscriptions.values() if s.app_id == caller.app_id
                    ]
                return _Answer(200, {"value": mine})
            raise GraphError(405, "BadRequest", f"{method} is not supported on /subscriptions.")
        if len(segments) != 2:
            raise GraphError(400, "BadRequest", "Resource not found for the segment.")
        with self._lock:
            found = self.subscriptions.get(segments[1])
        if found is None or found.app_id != caller.app_id:
            raise GraphError(404, "ResourceNotFound", "The object was not found.")
        if method == "GET":
            return _Answer(200, found.json())
        if method == "DELETE":
            with self._lock:
                self.subscriptions.pop(found.id, None)
            return _Answer(204, None)
        if method == "PATCH":
            changes = _json_body(body)
            expires = self._expiry(changes.get("expirationDateTime"), "Update")
            url = changes.get("notificationUrl")
            if url is not None:
                self._validate(str(url), found.id)
            with self._lock:
                found.expires = expires
                if url is not None:
                    found.notification_url = str(url)
            return _Answer(200, found.json())
        raise GraphError(405, "BadRequest", f"{method} is not supported on a subscription.")

    def create_subscription(self, caller: _Caller, request: Mapping[str, Any]) -> _Answer:
        """ "Create subscription": the resource must be one the caller may read; the
        notification URL (and the lifecycle one) must be HTTPS and pass validation -- Graph
        POSTs ?validationToken=... and wants the token back (200, text/plain) within 10
        seconds -- before the subscription exists (201)."""
        resource = str(request.get("resource") or "")
        mailbox, scope = self._subscribed(caller, resource)
        changes = frozenset(c.strip() for c in str(request.get("changeType") or "").split(","))
        if not changes or not changes <= {"created", "updated", "deleted"}:
            raise GraphError(400, "InvalidRequest", "changeType must be created, updated, deleted.")
        expires = self._expiry(request.get("expirationDateTime"), "Create")
        state = request.get("clientState")
        if state is not None and (not isinstance(state, str) or len(state) > 128):
            raise GraphError(400, "InvalidRequest", "clientState is at most 128 characters.")
        notification = str(request.get("notificationUrl") or "")
        lifecycle = request.get("lifecycleNotificationUrl")
        subscription_id = str(uuid.uuid4())
        for url in (notification, *([str(lifecycle)] if lifecycle else [])):
            self._validate(url, subscription_id)
        subscription = Subscription(
            subscription_id,
            caller.app_id,
            caller.tenant_id,
            mailbox.address,
            scope,
            resource,
            changes,
            notification,
            str(lifecycle) if lifecycle else None,
            state,
            expires,
        )
        with self._lock:
            self.subscriptions[subscription.id] = subscription
        return _Answer(201, subscription.json())

    def _subscribed(self, caller: _Caller, resource: str) -> tuple[Mailbox, str]:
        """The mailbox and scope of a subscription's resource: users/{id}/messages,
        users/{id}/mailFolders('{id}')/messages or users/{id}/events (or me/...)."""
        segments = _segments(unquote(resource))
        if segments and segments[0] in VERSIONS:
            segments = segments[1:]
        if segments[:1] == ["me"]:
            segments = ["users", "me", *segments[1:]]
        rest = segments[2:] if segments[:1] == ["users"] and len(segments) > 2 else []
        if rest == ["messages"]:
            return self._mailbox(caller, segments[1], "mail"), "*"
        if rest == ["events"]:
            return self._mailbox(caller, segments[1], "calendar"), "calendar"
        if len(rest) == 3 and rest[0] == "mailFolders" and rest[2] == "messages":
            mailbox = self._mailbox(caller, segments[1], "mail")
            folder = mailbox.folder(rest[1])
            if folder is None:
                raise GraphError(
                    404, "ErrorItemNotFound", "The specified object was not found in the store."
                )
            return mailbox, folder.id
        raise GraphError(
            400, "InvalidRequest", f"The resource '{resource}' is not supported for subscriptions."
        )

    def _expiry(self, value: object, operation: str) -> datetime:
        """ "subscription resource type", maximum length per resource: Outlook messages and
        events 10,080 minutes (under 7 days)."""
        try:
            expires = _parse_time(str(value))
        except ValueError:
            raise GraphError(400, "InvalidRequest", "expirationDateTime is required.") from None
        now = datetime.now(UTC)
        if expires <= now or expires > now + timedelta(minutes=10_080):
            raise GraphError(
                400,
                "ExtensionError",
                f"Operation: {operation}; Exception: [Status Code: BadRequest; Reason: "
                "Subscription expiration can only be 10080 minutes in the future.]",
            )
        return expires

    def _validate(self, url: str, subscription_id: str) -> None:
        """ "Receive change notifications through webhooks", "Notification endpoint
        validation"."""
        if not url.lower().startswith("https://"):
            raise GraphError(
                400, "InvalidRequest", f"The Notification Url '{url}' must be an HTTPS url."
            )
        token = (
            "Validation: Testing client application reachability for subscription Request-Id: "
            + str(uuid.uuid4())
        )
        status = 0
        echoed = ""
        try:
            with self._subscriber() as http:
                answer = http.post(
                    url,
                    params={"validationToken": token},
                    headers={"Content-Type": "text/plain; charset=utf-8"},
                    timeout=self.validation_timeout,
                )
            status, echoed = answer.status_code, answer.text
            plain = answer.headers.get("Content-Type", "").startswith("text/plain")
        except requests.RequestException:
            plain = False
        with self._lock:
            self.deliveries.append(Delivery("validation", url, status, subscription_id))
        if status != 200 or echoed != token or not plain:
            raise GraphError(
                400,
                "ValidationError",
                "Subscription validation request failed. Notification endpoint must respond "
                "with 200 OK to validation request.",
            )

    def _subscriber(self) -> requests.Session:
        """How the emulator reaches a subscriber: HTTPS trusting the emulators' CA (a test's
        Rapport serves with a certificate from it)."""
        http = requests.Session()
        http.trust_env = False
        http.verify = str(self.identity.ca_path)
        return http

    def _drop_expired(self) -> None:
        """Graph deletes a subscription when it expires."""
        now = datetime.now(UTC)
        for key in [k for k, s in self.subscriptions.items() if s.expires <= now]:
            del self.subscriptions[key]

    def _changed(self, mailbox: Mailbox, scope: str, change: str, item_id: str) -> None:
        """Something changed in a folder (or the calendar): notify the subscribers, as Graph
        does after the change (here at once, from the caller's thread)."""
        if not self.notify_on_change:
            return
        self.notify(mailbox.address, scope, change, item_id=item_id)

    def notify(
        self, address: str, folder: str = "inbox", change: str = "created", *, item_id: str = ""
    ) -> list[int]:
        """POST a change notification ("changeNotificationCollection") to every subscription
        on this mailbox's folder ("calendar" for events); the statuses the subscribers gave."""
        with self._lock:
            self._drop_expired()
            mailbox = self.mailboxes[address.lower()]
            scope = folder
            if folder != "calendar":
                scope = (
                    mailbox.folder(folder) or mailbox.folders[self.folder_id(address, folder)]
                ).id
            targets = [
                s
                for s in self.subscriptions.values()
                if s.mailbox == mailbox.address
                and change in s.change_types
                and (s.scope == scope or (s.scope == "*" and scope != "calendar"))
            ]
        kind = "Events" if scope == "calendar" else "Messages"
        item = item_id or _new_id()
        statuses = []
        for subscription in targets:
            notification = {
                "id": str(uuid.uuid4()),
                "subscriptionId": subscription.id,
                "subscriptionExpirationDateTime": _iso_precise(subscription.expires),
                "changeType": change,
                "resource": f"Users/{mailbox.id}/{kind}/{item}",
                "resourceData": {
                    "@odata.type": f"#Microsoft.Graph.{kind[:-1]}",
                    "@odata.id": f"Users/{mailbox.id}/{kind}/{item}",
                    "@odata.etag": 'W/"CQAAABYAAAB"',
                    "id": item,
                },
                "clientState": subscription.client_state,
                "tenantId": subscription.tenant_id,
            }
            statuses.append(
                self._post(subscription, subscription.notification_url, notification, "change")
            )
        return statuses

    def lifecycle(self, subscription_id: str, event: str) -> int:
        """ "Reduce missing subscriptions and change notifications": POST a lifecycle
        notification (reauthorizationRequired, subscriptionRemoved -- the subscription is gone
        first --, missed) to the subscription's lifecycleNotificationUrl; the status."""
        with self._lock:
            subscription = self.subscriptions[subscription_id]
            if event == "subscriptionRemoved":
                del self.subscriptions[subscription_id]
        if subscription.lifecycle_url is None:
            return 0
        notification = {
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": _iso_precise(subscription.expires),
            "tenantId": subscription.tenant_id,
            "clientState": subscription.client_state,
            "lifecycleEvent": event,
        }
        return self._post(subscription, subscription.lifecycle_url, notification, event)

    def _post(
        self, subscription: Subscription, url: str, notification: dict[str, Any], kind: str
    ) -> int:
        try:
            with self._subscriber() as http:
                status = http.post(url, json={"value": [notification]}, timeout=10).status_code
        except requests.RequestException:
            status = 0
        with self._lock:
            self.deliveries.append(Delivery(kind, url, status, subscription.id))
        return status

    def subscriptions_of(self, address: str) -> list[Subscription]:
        with self._lock:
            self._drop_expired()
            return [s for s in self.subscriptions.values() if s.mailbox == address.lower()]

    # -- JSON batching ----------------------------------------------------------------------------

    def batch(self, caller: _Caller, headers: Mapping[str, str], body: bytes) -> _Answer:
        """ "Combine multiple HTTP requests using JSON batching": up to 20 requests, answered
        in any order; items against one mailbox run 4 at a time."""
        try:
            requests_ = json.loads(body)["requests"]
        except (ValueError, KeyError, TypeError):
            raise GraphError(400, "BadRequest", "Invalid batch payload format.") from None
        if not isinstance(requests_, list) or not requests_:
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(requests_) > MAX_BATCH:
            raise GraphError(
                400, "BadRequest", f"Number of requests in batch exceeds the limit of {MAX_BATCH}."
            )
        outer = {
            k.lower(): v for k, v in headers.items() if k.lower() in ("authorization", "prefer")
        }
        responses = []
        groups = [requests_[i : i + 4] for i in range(0, len(requests_), 4)]
        for group in groups:
            by_mailbox: Counter[str] = Counter()
            for request in group:
                responses.append(self._batch_item(caller, request, outer, by_mailbox))
        with self._lock:
            self.rng.shuffle(responses)
        return _Answer(200, {"responses": responses})

    def _batch_item(
        self,
        caller: _Caller,
        request: Mapping[str, Any],
        outer: Mapping[str, str],
        running: Counter[str],
    ) -> dict[str, Any]:
        item_headers = {
            **outer,
            **{k.lower(): str(v) for k, v in (request.get("headers") or {}).items()},
        }
        url = str(request.get("url", ""))
        parts = urlsplit(url if url.startswith("/") else "/" + url)
        segments = _segments(unquote(parts.path))
        if segments and segments[0] in VERSIONS:
            segments = segments[1:]
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        kind, address = self._classify(str(request.get("method", "GET")), segments, item_headers)
        entry = LoggedRequest(time.monotonic(), address, kind, "GET", parts.path, in_batch=True)
        self._record(entry, address, item_key=url)
        try:
            if address is not None:
                running[address] += 1
                with self._lock:
                    busy = self._in_flight[address] + running[address]
                if busy > self.concurrency_limit:
                    raise _fault(429, "MailboxConcurrency", self.retry_after)
            fault = self._injected(kind, item=True)
            if fault is not None:
                raise fault
            answer = self.route(caller, segments, query, item_headers)
        except GraphError as refused:
            answer = _Answer(refused.status, refused.body(), refused.headers)
        self._finish(entry, answer, address, item_key=url)
        response: dict[str, Any] = {
            "id": request.get("id"),
            "status": answer.status,
            "headers": {"Content-Type": answer.content_type, **answer.headers},
        }
        if isinstance(answer.body, bytes):
            response["body"] = base64.b64encode(answer.body).decode("ascii")
        elif answer.body is not None:
            response["body"] = answer.body
        return response


# --------------------------------------------------------------------------------------------
# Shapes


def _segments(path: str) -> list[str]:
    """Path segments, with OData key syntax (mailFolders('X')) split like mailFolders/X."""
    out: list[str] = []
    for segment in path.split("/"):
        if not segment:
            continue
        keyed = re.fullmatch(r"([A-Za-z.]+)\('([^']*)'\)", segment)
        if keyed:
            out += [keyed.group(1), keyed.group(2)]
        else:
            out.append(segment)
    return out


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None
    if not isinstance(value, dict):
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.")
    return value


def _prefer(headers: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for piece in headers.get("prefer", "").split(","):
        name, _, value = piece.strip().partition("=")
        if name:
            found[name.strip().lower()] = value.strip()
    return found


def _page_size(prefer: Mapping[str, str]) -> int:
    value = prefer.get("odata.maxpagesize", "")
    return min(int(value), MAX_PAGE) if value.isdigit() and int(value) > 0 else DEFAULT_DELTA_PAGE


def _select(query: Mapping[str, str]) -> tuple[str, ...] | None:
    raw = query.get("$select")
    return tuple(s.strip() for s in raw.split(",") if s.strip()) if raw else None


def _fault(status: int, code: str | None, retry_after: float | None) -> GraphError:
    headers = {"Retry-After": _seconds_text(retry_after)} if retry_after is not None else {}
    messages = {
        429: ("ApplicationThrottled", "Application is over its MailboxConcurrency limit."
              if code == "MailboxConcurrency" else "Too many requests"),
        503: ("ServiceUnavailable", "Service Unavailable"),
        504: ("UnknownError", "Gateway Timeout"),
        500: ("UnknownError", "Internal Server Error"),
    }  # fmt: skip
    default_code, message = messages.get(status, ("UnknownError", "Emulated failure."))
    if code == "MailboxConcurrency":
        code = None
    return GraphError(status, code or default_code, message, headers)


def _gone(base: str, code: str) -> GraphError:
    """ "Synchronization reset": 410 Gone, and the initial query in Location."""
    return GraphError(
        410,
        code,
        "The sync state generation is not found or has expired; resynchronise."
        if code.lower() == "syncstatenotfound"
        else "Resync required. Replace any local cached data with a fresh full sync.",
        {"Location": f"{base}?$deltatoken="},
    )


def _seconds_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}".rstrip("0")


def _folder_json(mailbox: Mailbox, folder: Folder) -> dict[str, Any]:
    """A mailFolder as "mailFolder resource type" shows one."""
    children = sum(1 for f in mailbox.folders.values() if f.parent_id == folder.id)
    inside = [m for m in mailbox.messages.values() if m.folder_id == folder.id]
    return {
        "id": folder.id,
        "displayName": folder.display_name,
        "parentFolderId": folder.parent_id,
        "childFolderCount": children,
        "unreadItemCount": sum(1 for m in inside if not m.is_read),
        "totalItemCount": len(inside),
        "isHidden": False,
    }


def _message_fields(mime: bytes) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A message's properties as Exchange derives them from the MIME it received."""
    parsed = email.message_from_bytes(mime, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)

    def people(name: str) -> list[dict[str, Any]]:
        header = parsed.get(name)
        if header is None:
            return []
        return [
            _recipient(a.display_name, a.addr_spec.lower())
            for a in getattr(header, "addresses", ())
        ]

    date = parsed.get("Date")
    sent = (
        date.datetime if date is not None and getattr(date, "datetime", None) else datetime.now(UTC)
    )
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    message_id = str(parsed.get("Message-ID") or "").strip() or None
    references = str(parsed.get("References") or "").split()
    root = references[0] if references else (message_id or secrets.token_hex(8))
    has_attachments = (
        any(True for _ in parsed.iter_attachments()) if parsed.is_multipart() else False
    )
    from_ = people("From")
    fields: dict[str, Any] = {
        "subject": str(parsed.get("Subject") or ""),
        "from": from_[0] if from_ else None,
        "sender": (people("Sender") or from_ or [None])[0],
        "toRecipients": people("To"),
        "ccRecipients": people("Cc"),
        "bccRecipients": people("Bcc"),
        "replyTo": people("Reply-To"),
        "sentDateTime": _iso(sent),
        "receivedDateTime": _iso(sent),
        "createdDateTime": _iso(sent),
        "internetMessageId": message_id,
        "conversationId": "AAQkAG" + hashlib.sha256(root.encode()).hexdigest()[:40] + "=",
        "hasAttachments": has_attachments,
        "isDraft": False,
        "importance": "normal",
        "bodyPreview": "",
    }
    headers = [{"name": k, "value": str(v)} for k, v in parsed.items()]
    return fields, headers


def _message_json(
    mailbox: Mailbox, message: Message, select: Sequence[str] | None, prefer: Mapping[str, str]
) -> dict[str, Any]:
    immutable = prefer.get("idtype", "").strip('"').lower() == "immutableid"
    full = {
        **message.fields,
        "parentFolderId": message.folder_id,
        "isRead": message.is_read,
        "changeKey": message.change_key,
        "lastModifiedDateTime": message.fields["createdDateTime"],
    }
    names = list(select) if select else list(_MESSAGE_FIELDS)
    body: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.message",
        "@odata.etag": f'W/"{message.change_key}"',
    }
    for name in names:
        if name == "internetMessageHeaders":
            if message.headers:  # absent, not empty, on copies that were never transported
                body[name] = list(message.headers)
        elif name in full:
            body[name] = full[name]
    body["id"] = message.immutable_id if immutable else message.rest_id
    return body


# -- calendar shapes ----------------------------------------------------------------------------

_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _occurrence_starts(series: Series, until: datetime) -> list[datetime]:
    """Original starts of a series (daily and weekly patterns; numbered, endDate, noEnd)."""
    assert series.recurrence is not None
    pattern, limits = series.recurrence["pattern"], series.recurrence["range"]
    interval = int(pattern.get("interval", 1))
    count = int(limits.get("numberOfOccurrences") or 0) if limits["type"] == "numbered" else 0
    end_date = limits.get("endDate") if limits["type"] == "endDate" else None
    last = (
        datetime.fromisoformat(end_date).replace(tzinfo=UTC) + timedelta(days=1)
        if end_date
        else until
    )
    starts: list[datetime] = []
    day = series.start
    days = {_WEEKDAYS.index(d.lower()) for d in pattern.get("daysOfWeek", [])} or {
        series.start.weekday()
    }
    step = 0
    while day < min(last, until) and (not count or len(starts) < count) and step < 5000:
        week = (day.date() - series.start.date()).days // 7
        if pattern["type"] == "daily":
            if (day.date() - series.start.date()).days % interval == 0:
                starts.append(day)
        elif pattern["type"] == "weekly":
            if day.weekday() in days and week % interval == 0:
                starts.append(day)
        else:
            raise NotImplementedError(pattern["type"])
        day += timedelta(days=1)
        step += 1
    return starts


def _global_object_id(uid: str | None) -> str:
    """The iCalUId Exchange gives an event ([MS-OXOCAL] 2.2.1.27, PidLidGlobalObjectId, hex):
    its own GlobalObjectId, or, for a UID made elsewhere, one wrapping it after "vCal-Uid"."""
    if uid is not None and uid.upper().startswith(EXCHANGE_UID_PREFIX):
        return uid.upper()
    if uid is None:
        data = secrets.token_bytes(16)
    else:
        data = b"vCal-Uid" + (1).to_bytes(4, "little") + uid.encode() + b"\x00"
    raw = bytes.fromhex(EXCHANGE_UID_PREFIX) + bytes(4 + 8 + 8) + len(data).to_bytes(4, "little")
    return (raw + data).hex().upper()


def _occurrence_uid(uid: str, original: datetime) -> str:
    """The per-occurrence iCalUId: the GlobalObjectId with the occurrence's date in bytes
    16-19."""
    return f"{uid[:32]}{original.year:04X}{original.month:02X}{original.day:02X}{uid[40:]}"


def _people_json(series: Series) -> dict[str, Any]:
    name, address = series.organizer
    return {"organizer": _recipient(name, address), "attendees": series.attendees}


def _event_json(series: Series, mailbox: Mailbox) -> dict[str, Any]:
    """A single instance or series master, as "event resource type" shows one."""
    return {
        "@odata.type": "#microsoft.graph.event",
        "id": series.id,
        "iCalUId": series.ical_uid,
        "type": "seriesMaster" if series.recurrence else "singleInstance",
        "subject": series.subject,
        "start": _graph_time(series.start),
        "end": _graph_time(series.end),
        "isAllDay": series.all_day,
        "isCancelled": series.cancelled,
        "isOrganizer": series.organizer[1].lower() == mailbox.address,
        "sensitivity": series.sensitivity,
        "originalStartTimeZone": series.time_zone,
        "originalEndTimeZone": series.time_zone,
        "location": {"displayName": series.location},
        "isOnlineMeeting": bool(series.online_url),
        "onlineMeeting": {"joinUrl": series.online_url} if series.online_url else None,
        "recurrence": series.recurrence,
        "seriesMasterId": None,
        "responseStatus": {"response": series.own_response, "time": "0001-01-01T00:00:00Z"},
        "lastModifiedDateTime": _iso_precise(series.modified),
        "changeKey": base64.b64encode(f"{series.id[-8:]}{series.version}".encode()).decode(),
        **_people_json(series),
    }


def _instances(
    series: Series, mailbox: Mailbox, low: datetime, high: datetime
) -> Iterable[dict[str, Any]]:
    """What a calendarView over [low, high) holds of an event."""
    base = _event_json(series, mailbox)
    if series.recurrence is None:
        if series.start < high and series.end > low:
            yield base
        return
    length = series.end - series.start
    for original in _occurrence_starts(series, high):
        changes = series.exceptions.get(original, {}) if original in series.exceptions else {}
        if changes is None:
            continue  # deleted occurrence
        start = changes.get("start", original)
        end = changes.get("end", start + length)
        if not (start < high and end > low):
            continue
        exception = original in series.exceptions
        item_id = (
            series.exception_ids[original]
            if exception
            else f"{series.id[:-1]}_{original:%Y%m%dT%H%M}="
        )
        item = {
            **base,
            "id": item_id,
            "type": "exception" if exception else "occurrence",
            "iCalUId": _occurrence_uid(series.ical_uid, original),
            "seriesMasterId": series.id,
            "originalStart": _iso(original),
            "start": _graph_time(start),
            "end": _graph_time(end),
            "subject": changes.get("subject", series.subject),
            "isCancelled": bool(changes.get("cancelled", series.cancelled)),
            "recurrence": None,
        }
        version = f"{item_id[-8:]}{series.version}{json.dumps(changes, default=str)}"
        item["changeKey"] = base64.b64encode(hashlib.sha1(version.encode()).digest()).decode()  # noqa: S324
        yield item


# --------------------------------------------------------------------------------------------
# HTTP plumbing


def _handler(emulator: GraphEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            answer = emulator.handle(method, self.path, headers, body)
            if isinstance(answer.body, bytes):
                data = answer.body
            elif answer.body is None:
                data = b""
            else:
                data = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("request-id", str(uuid.uuid4()))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if emulator.cut_short():  # the connection drops mid-answer: half a body, then EOF
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


# --------------------------------------------------------------------------------------------
# pytest fixtures (import them next to the identity ones: `from tests.emulators.graph import
# graph, graph_server`)


@pytest.fixture(scope="session")
def graph_server(identity_server: IdentityEmulator) -> Iterable[GraphEmulator]:
    with GraphEmulator(identity_server) as emulator:
        yield emulator


@pytest.fixture
def graph(graph_server: GraphEmulator, identity: IdentityEmulator) -> Iterable[GraphEmulator]:
    """The Graph emulator with its switches reset (after the identity emulator's)."""
    graph_server.reset()
    yield graph_server
    graph_server.reset()
