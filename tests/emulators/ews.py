"""A local on-premises Exchange (its Exchange Web Services endpoint) over HTTPS, for tests.

Rapport's EWS source runs unchanged against it: only the EWS URL the admin gives (`--server`,
`EwsEmulator.url`) and RAPPORT_CA_BUNDLE (`ca_path`, a throwaway `trustme` CA) differ from
production. Start it in a thread (`EwsEmulator(directory).start()`, or `with`).

It answers POST /EWS/Exchange.asmx with the SOAP operations exchangelib sends for Rapport, each
following the Microsoft Learn page ("EWS reference for Exchange") named in its handler's
docstring, with that page's sample responses as the shapes of the answers:

    ConvertId        exchangelib's version probe: answered ErrorInvalidIdMalformed for its dummy
                     id, with the ServerVersionInfo header every answer carries
    GetFolder        DistinguishedFolderId (root, msgfolderroot, inbox, sentitems, drafts,
                     deleteditems, junkemail, outbox, calendar; with or without a Mailbox) and
                     FolderId
    FindFolder       Traversal="Shallow" under one parent, IndexedPageFolderView paging
    SyncFolderItems  SyncState, MaxChangesReturned (at most 512), IdOnly shape plus
                     AdditionalProperties; Create / Update / Delete / ReadFlagChange changes
    GetItem          MimeContent and the message and calendar properties asked for;
                     ErrorItemNotFound per item

Access: a service account signs in with NTLM (NTLMv2, checked against its password: the
challenge-response runs on one keep-alive connection, which stays signed in, as IIS does) or
Basic (`auth="basic"`); anything else is a 401 with WWW-Authenticate. It opens a mailbox by
impersonation (an ExchangeImpersonation SOAP header: the account needs `grant_impersonation`,
else ErrorImpersonateUserDenied as a SOAP fault) or as a delegate (FullAccess,
`grant_full_access`, else ErrorAccessDenied); an unknown mailbox is ErrorNonExistentMailbox.

QUIRKS it reproduces (what the client must cope with):
- a sync round's pages are computed from the state the client sends, so a replayed SyncState
  returns the same page again (as long as the folder did not change);
- an item's ItemId changes when it moves to another folder (Delete in the old folder's sync,
  Create in the new one's); marking it read is a ReadFlagChange, any other change an Update;
- calendar folders hold single appointments and recurring masters; an exception is reached
  through its master's ModifiedOccurrences (GetItem on the occurrence's own ItemId), a deleted
  occurrence is listed in DeletedOccurrences;
- UID is an Exchange meeting's GlobalObjectId in hex ([MS-OXOCAL] 2.2.1.27), or the UID an
  invite from elsewhere carried;
- ErrorServerBusy is an HTTP 500 SOAP fault whose detail's MessageXml carries
  BackOffMilliseconds ("EWS throttling in Exchange");
- every answer's SOAP header carries ServerVersionInfo (Exchange 2019: 15.2, Version
  "V2017_07_11", which clients do not send back).

Fault switches: `server_busy(rate, back_off_ms)` (that share of requests answered
ErrorServerBusy), `busy_next(times, back_off_ms)`; `invalidate_sync_state(address, folder)`
(the next SyncFolderItems with a state for that folder answers ErrorInvalidSyncStateData);
`change_password(user, new)` (a 401 from then on for the old one); `page_limit` (fewer
changes per page than asked for, as a loaded server answers); `delay` seconds added to every
request, `slow_rate`/`slow_seconds` for some; `drop_rate`: that share of SOAP answers is cut off
half-way through its body and the connection closed (a dropped connection; `dropped` counts
them).

`log` records every SOAP request (time, operation, mailbox, response code) and flags any sent
before the back-off of an ErrorServerBusy to the same account ran out: `violations()` must stay
empty. `count(operation=...)` counts requests by operation.

Pages cited (learn.microsoft.com/exchange/client-developer/web-service-reference/...):
convertid-operation, getfolder-operation, findfolder-operation, syncfolderitems-operation,
getitem-operation (and the element pages of the elements answered: changes-items, mimecontent,
internetmessageheaders, calendaritem, modifiedoccurrences, deletedoccurrences, recurrence-
recurrencetype, attendee, mailbox, serverversioninfo, responsecode, exchangeimpersonation),
and "EWS throttling in Exchange" (exchange-web-services/ews-throttling-in-exchange).
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import hmac
import itertools
import random
import secrets
import ssl
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import jwt
import pytest
import trustme
from lxml import etree
from spnego._ntlm_raw.crypto import ntowfv1, ntowfv2
from spnego._ntlm_raw.messages import (
    Authenticate,
    AvId,
    Challenge,
    FileTime,
    NegotiateFlags,
    TargetInfo,
)

from tests.emulators.identity import HOST, IdentityEmulator, Tenant, _TlsServer

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
NS = {"s": SOAP, "m": M, "t": T}
EXCHANGE_UID_PREFIX = "040000008200E00074C5B7101A82E008"
MAX_CHANGES = 512
DISTINGUISHED = {
    "inbox": ("Inbox", "IPF.Note"),
    "sentitems": ("Sent Items", "IPF.Note"),
    "drafts": ("Drafts", "IPF.Note"),
    "deleteditems": ("Deleted Items", "IPF.Note"),
    "junkemail": ("Junk Email", "IPF.Note"),
    "outbox": ("Outbox", "IPF.Note"),
    "calendar": ("Calendar", "IPF.Appointment"),
}
_RESPONSE_TYPES = {
    "none": "NoResponseReceived",
    "accepted": "Accept",
    "tentativelyaccepted": "Tentative",
    "declined": "Decline",
    "organizer": "Organizer",
}
AUTODISCOVER_REQUEST = (
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
)
AUTODISCOVER = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
AUTODISCOVER_OUTLOOK = (
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)
FULL_ACCESS_AS_APP = "full_access_as_app"
_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _new_id(prefix: str = "AAMkAD") -> str:
    """An id shaped like Exchange's (base64 of an entry id)."""
    return prefix + base64.b64encode(secrets.token_bytes(36)).decode()


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# The store


@dataclass
class Folder:
    id: str
    name: str
    parent_id: str | None
    distinguished: str | None = None
    folder_class: str = "IPF.Note"


@dataclass
class Message:
    id: str
    folder_id: str
    mime: bytes
    received: datetime
    is_read: bool = False
    version: int = 0

    @property
    def change_key(self) -> str:
        return "CQAAABYAAA" + base64.b64encode(f"{self.id[-10:]}:{self.version}".encode()).decode()


@dataclass
class Series:
    """An appointment as its organizer made it: single, or a recurring master."""

    id: str
    folder_id: str
    uid: str
    subject: str
    start: datetime
    end: datetime
    organizer: tuple[str, str]
    attendees: list[tuple[str, str, str]]  # (address, name, response)
    recurrence: dict[str, Any] | None = None
    location: str = ""
    cancelled: bool = False
    all_day: bool = False
    sensitivity: str = "Normal"
    own_response: str = "Organizer"
    time_zone: str = "UTC"
    version: int = 0
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    # original start -> changes (start, end, subject, cancelled) or None for a deleted one
    exceptions: dict[datetime, dict[str, Any] | None] = field(default_factory=dict)
    exception_ids: dict[datetime, str] = field(default_factory=dict)

    @property
    def change_key(self) -> str:
        return "DwAAABYAAA" + base64.b64encode(f"{self.id[-10:]}:{self.version}".encode()).decode()


@dataclass
class Mailbox:
    address: str
    name: str
    folders: dict[str, Folder] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)
    events: dict[str, Series] = field(default_factory=dict)
    full_access: set[str] = field(default_factory=set)  # service accounts with FullAccess

    def folder(self, key: str) -> Folder | None:
        lowered = key.lower()
        for folder in self.folders.values():
            if folder.id == key or folder.distinguished == lowered:
                return folder
        return None


@dataclass
class ServiceAccount:
    user: str  # "CONTOSO\\svc-rapport" or "svc-rapport@contoso.com"
    password: str
    impersonation: bool = False


@dataclass
class SyncSnapshot:
    folder_id: str
    items: dict[str, tuple[str, bool]]  # item id -> (change key, is read)


@dataclass
class LoggedRequest:
    at: float
    operation: str
    user: str | None
    mailbox: str | None = None
    code: str = ""
    status: int = 200
    back_off: float | None = None
    early: bool = False  # sent before a back-off that applied to it
    fields: frozenset[str] = frozenset()  # the FieldURIs its ItemShape asked for
    anchor: str | None = None  # its X-AnchorMailbox header


class EwsFault(Exception):
    """An answer that is not a normal response message: a SOAP fault or an HTTP error."""

    def __init__(
        self, status: int, code: str, message: str, back_off_ms: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.back_off_ms = back_off_ms


class ItemError(Exception):
    """One response message answered with ResponseClass="Error"."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------------------------
# XML helpers


def _el(tag: str, text: object = None, /, **attrs: object) -> etree._Element:
    prefix, _, name = tag.partition(":")
    element = etree.Element(f"{{{NS[prefix]}}}{name}", nsmap={prefix: NS[prefix]})
    for key, value in attrs.items():
        if value is not None:
            element.set(key, str(value))
    if text is not None:
        element.text = str(text)
    return element


def _add(
    parent: etree._Element, tag: str, text: object = None, /, **attrs: object
) -> etree._Element:
    child = _el(tag, text, **attrs)
    parent.append(child)
    return child


def _mailbox_el(parent: etree._Element, tag: str, name: str, address: str) -> None:
    holder = _add(parent, tag)
    box = _add(holder, "t:Mailbox") if tag != "t:Mailbox" else holder
    _add(box, "t:Name", name or address)
    _add(box, "t:EmailAddress", address)
    _add(box, "t:RoutingType", "SMTP")
    _add(box, "t:MailboxType", "OneOff")


def _addresses(parsed: EmailMessage, header: str) -> list[tuple[str, str]]:
    value = parsed.get(header)
    if value is None:
        return []
    return [(a.display_name, a.addr_spec.lower()) for a in getattr(value, "addresses", ())]


# --------------------------------------------------------------------------------------------
# The emulator


class EwsEmulator:
    """An Exchange 2019 server's EWS on https://127.0.0.1:PORT/EWS/Exchange.asmx."""

    def __init__(
        self,
        directory: Path,
        *,
        auth: str = "ntlm",
        seed: int = 1,
        identity: IdentityEmulator | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        # With hybrid modern authentication the server trusts Entra ID's tokens; its
        # certificate comes from the identity emulator's CA, so one RAPPORT_CA_BUNDLE serves.
        self.identity = identity
        if identity is not None:
            self._ca = identity._ca
            self.ca_path = identity.ca_path
        else:
            self._ca = trustme.CA()
            self.ca_path = directory / "ews-ca.pem"
            self._ca.cert_pem.write_to_path(str(self.ca_path))
        self.auth = auth  # "ntlm" or "basic" (and OAuth bearer tokens, given an identity)
        self.accounts: dict[str, ServiceAccount] = {}
        self.mailboxes: dict[str, Mailbox] = {}
        self.log: list[LoggedRequest] = []
        self.rng = random.Random(seed)
        self._seed = seed
        self._lock = threading.RLock()
        self._snapshots: dict[str, SyncSnapshot] = {}
        self._invalid: list[tuple[str, str | None]] = []
        self._busy_queue: list[int] = []
        self._not_before: dict[str, float] = {}
        self._counter = itertools.count(1)
        self._server: _TlsServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> EwsEmulator:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ca.issue_cert(HOST, "localhost").configure_cert(context)
        self._server = _TlsServer((HOST, 0), _handler(self), context)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ews-emulator", daemon=True
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

    def __enter__(self) -> EwsEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The EWS URL an admin gives (`--server`)."""
        assert self._server is not None, "start() the emulator first"
        return f"https://{HOST}:{self._server.server_address[1]}/EWS/Exchange.asmx"

    @property
    def origin(self) -> str:
        """https://HOST:PORT: the resource an OAuth token for this server names (audience)."""
        assert self._server is not None, "start() the emulator first"
        return f"https://{HOST}:{self._server.server_address[1]}"

    def autodiscover_template(self, host: str) -> str:
        """A RAPPORT_EWS_AUTODISCOVER_URL template for this emulator: `host` (with {domain})
        becomes the first path segment, standing for the host Autodiscover would ask."""
        return f"{self.origin}/{host}/autodiscover/autodiscover.xml"

    def env(self) -> dict[str, str]:
        env = self.identity.env() if self.identity is not None else {}
        templates = ",".join(
            self.autodiscover_template(h) for h in ("{domain}", "autodiscover.{domain}")
        )
        return {
            **env,
            "RAPPORT_CA_BUNDLE": str(self.ca_path),
            "RAPPORT_EWS_AUTODISCOVER_URL": templates,
        }

    # -- switches -----------------------------------------------------------------------------

    def reset(self) -> None:
        """Fault switches off and the log cleared (mailboxes and accounts stay)."""
        with self._lock:
            self.busy_rate = 0.0
            self.back_off_ms = 50
            self.delay = 0.0
            self.slow_rate = 0.0
            self.slow_seconds = 0.0
            self.drop_rate = 0.0
            self.dropped = 0
            self.page_limit = MAX_CHANGES
            self.audience: str | None = None  # None: this server's own origin
            self.refused_tokens = 0  # 401s answered to bearer tokens
            self._expire_after: int | None = None
            self.autodiscover_hosts: set[str] = set()
            self.redirects: dict[str, str] = {}
            self.log.clear()
            self._invalid.clear()
            self._busy_queue.clear()
            self._not_before.clear()
            self.rng.seed(self._seed)

    def server_busy(self, rate: float, *, back_off_ms: int = 50) -> None:
        """Answer `rate` of the requests ErrorServerBusy with BackOffMilliseconds."""
        with self._lock:
            self.busy_rate = rate
            self.back_off_ms = back_off_ms

    def busy_next(self, times: int = 1, *, back_off_ms: int = 50) -> None:
        with self._lock:
            self._busy_queue.extend([back_off_ms] * times)

    def invalidate_sync_state(self, address: str, folder: str | None = None) -> None:
        """The next SyncFolderItems with a SyncState for this mailbox (and folder: an id or a
        distinguished name) answers ErrorInvalidSyncStateData."""
        with self._lock:
            folder_id = None
            if folder is not None:
                found = self.mailboxes[address.lower()].folder(folder)
                folder_id = found.id if found is not None else folder
            self._invalid.append((address.lower(), folder_id))

    def register_with(self, tenant: Tenant) -> None:
        """What the Hybrid Configuration Wizard does for modern authentication: this server's
        URL becomes a service principal name of Office 365 Exchange Online in the tenant, so
        Entra ID issues tokens for it."""
        tenant.resources.add(self.origin)

    def expire_tokens_after(self, requests: int) -> None:
        """After this many more EWS requests, every access token issued so far expires (the
        identity emulator's `expire_tokens`): a token running out in the middle of a sync."""
        with self._lock:
            self._expire_after = requests

    def serve_autodiscover(self, host: str) -> None:
        """Answer Autodiscover requests addressed to `host` (autodiscover.contoso.com)."""
        with self._lock:
            self.autodiscover_hosts.add(host.lower())

    def redirect_address(self, address: str, to: str) -> None:
        """Autodiscover answers `address` with Action redirectAddr to `to`."""
        with self._lock:
            self.redirects[address.lower()] = to

    def change_password(self, user: str, password: str) -> None:
        with self._lock:
            self.accounts[user.lower()].password = password

    # -- the directory and the mailboxes ------------------------------------------------------

    def add_account(
        self, user: str, password: str, *, impersonation: bool = False
    ) -> ServiceAccount:
        account = ServiceAccount(user, password, impersonation)
        with self._lock:
            self.accounts[user.lower()] = account
        return account

    def grant_impersonation(self, user: str, allowed: bool = True) -> None:
        """New-ManagementRoleAssignment -Role ApplicationImpersonation -User <user>."""
        with self._lock:
            self.accounts[user.lower()].impersonation = allowed

    def grant_full_access(self, mailbox: str, user: str) -> None:
        """Add-MailboxPermission <mailbox> -User <user> -AccessRights FullAccess."""
        with self._lock:
            self.mailboxes[mailbox.lower()].full_access.add(user.lower())

    def add_mailbox(self, address: str, name: str | None = None) -> Mailbox:
        mailbox = Mailbox(address.lower(), name or address.split("@")[0].title())
        root = Folder(_new_id("AQMkAD"), "Root", None, "root", "")
        tois = Folder(_new_id("AQMkAD"), "Top of Information Store", root.id, "msgfolderroot", "")
        mailbox.folders[root.id] = root
        mailbox.folders[tois.id] = tois
        for key, (display, kind) in DISTINGUISHED.items():
            folder = Folder(_new_id("AQMkAD"), display, tois.id, key, kind)
            mailbox.folders[folder.id] = folder
        with self._lock:
            self.mailboxes[mailbox.address] = mailbox
        return mailbox

    def add_folder(self, address: str, name: str, parent: str = "msgfolderroot") -> str:
        with self._lock:
            mailbox = self.mailboxes[address.lower()]
            above = mailbox.folder(parent) or self._by_name(mailbox, parent)
            folder = Folder(_new_id("AQMkAD"), name, above.id)
            mailbox.folders[folder.id] = folder
            return folder.id

    def _by_name(self, mailbox: Mailbox, name: str) -> Folder:
        found = next((f for f in mailbox.folders.values() if f.name == name), None)
        assert found is not None, name
        return found

    def folder_id(self, address: str, key: str) -> str:
        with self._lock:
            mailbox = self.mailboxes[address.lower()]
            return (mailbox.folder(key) or self._by_name(mailbox, key)).id

    def deliver(self, address: str, mime: bytes, folder: str = "inbox") -> str:
        """Put a message in a folder; its ItemId."""
        with self._lock:
            mailbox = self.mailboxes[address.lower()]
            target = mailbox.folder(folder) or self._by_name(mailbox, folder)
            parsed = email.message_from_bytes(mime, policy=email.policy.default)
            header = parsed.get("Date")
            when = getattr(header, "datetime", None) or datetime.now(UTC)
            when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
            message = Message(_new_id(), target.id, mime, when)
            mailbox.messages[message.id] = message
            return message.id

    def move(self, address: str, item_id: str, folder: str) -> str:
        """Move a message; its new ItemId (EWS ids change with the folder, see QUIRKS)."""
        with self._lock:
            mailbox = self.mailboxes[address.lower()]
            message = mailbox.messages.pop(item_id)
            target = mailbox.folder(folder) or self._by_name(mailbox, folder)
            message.id = _new_id()
            message.folder_id = target.id
            mailbox.messages[message.id] = message
            return message.id

    def delete(self, address: str, item_id: str) -> None:
        """Deleted for good (a hard delete; a soft one is a move to deleteditems)."""
        with self._lock:
            del self.mailboxes[address.lower()].messages[item_id]

    def mark_read(self, address: str, item_id: str, read: bool = True) -> None:
        with self._lock:
            self.mailboxes[address.lower()].messages[item_id].is_read = read

    def messages_in(self, address: str, folder: str) -> list[Message]:
        with self._lock:
            mailbox = self.mailboxes[address.lower()]
            target = mailbox.folder(folder) or self._by_name(mailbox, folder)
            return [m for m in mailbox.messages.values() if m.folder_id == target.id]

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
        uid: str | None = None,
        location: str = "",
        time_zone: str = "UTC",
        own_response: str = "Organizer",
    ) -> str:
        """An appointment in the mailbox's calendar; `attendees` maps address -> (name,
        response: none, accepted, tentativelyAccepted, declined). `recurrence`: {"type": "daily"
        or "weekly", "interval": n, "days": ["monday"...], "count": n}. Its ItemId."""
        with self._lock:
            mailbox = self.mailboxes[address.lower()]
            calendar = mailbox.folder("calendar")
            assert calendar is not None
            series = Series(
                _new_id("AAMkAGI"),
                calendar.id,
                uid or _global_object_id(),
                subject,
                start,
                start + timedelta(minutes=minutes),
                organizer,
                [(a, n, r) for a, (n, r) in attendees.items()],
                recurrence,
                location,
                time_zone=time_zone,
                own_response=own_response,
            )
            mailbox.events[series.id] = series
            return series.id

    def change_occurrence(
        self, address: str, series_id: str, original_start: datetime, **changes: Any
    ) -> None:
        """Make one occurrence an exception: start/end (datetimes), subject, cancelled."""
        with self._lock:
            series = self.mailboxes[address.lower()].events[series_id]
            key = original_start.astimezone(UTC)
            series.exceptions[key] = dict(changes)
            series.exception_ids.setdefault(key, _new_id("AAMkAGE"))
            series.version += 1
            series.modified = datetime.now(UTC)

    def delete_occurrence(self, address: str, series_id: str, original_start: datetime) -> None:
        with self._lock:
            series = self.mailboxes[address.lower()].events[series_id]
            series.exceptions[original_start.astimezone(UTC)] = None
            series.version += 1
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

    def count(self, operation: str | None = None, *, code: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for entry in self.log
                if (operation is None or entry.operation == operation)
                and (code is None or entry.code == code)
            )

    def operations(self) -> Counter[str]:
        with self._lock:
            return Counter(entry.operation for entry in self.log)

    def violations(self) -> list[LoggedRequest]:
        """Requests sent before the back-off of an ErrorServerBusy to the same account ran out."""
        with self._lock:
            return [entry for entry in self.log if entry.early]

    # -- authentication ---------------------------------------------------------------------------

    def challenge_headers(self) -> list[tuple[str, str]]:
        if self.auth == "basic":
            return [("WWW-Authenticate", f'Basic realm="{HOST}"')]
        return [("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", "NTLM")]

    def check_basic(self, token: str) -> str | None:
        try:
            user, _, password = base64.b64decode(token).decode().partition(":")
        except (ValueError, UnicodeError):
            return None
        with self._lock:
            account = self.accounts.get(user.lower())
        if account is None or not hmac.compare_digest(account.password, password):
            return None
        return account.user.lower()

    def ntlm_challenge(self) -> tuple[bytes, bytes]:
        """A CHALLENGE_MESSAGE ([MS-NLMP] 2.2.1.2) and its server challenge."""
        server_challenge = secrets.token_bytes(8)
        info = TargetInfo()
        info[AvId.nb_domain_name] = "CONTOSO"
        info[AvId.nb_computer_name] = "EXCH01"
        info[AvId.dns_domain_name] = "contoso.local"
        info[AvId.dns_computer_name] = "exch01.contoso.local"
        info[AvId.timestamp] = FileTime.now()
        flags = (
            NegotiateFlags.unicode
            | NegotiateFlags.request_target
            | NegotiateFlags.ntlm
            | NegotiateFlags.always_sign
            | NegotiateFlags.extended_session_security
            | NegotiateFlags.target_info
            | NegotiateFlags.target_type_domain
            | NegotiateFlags.key_128
            | NegotiateFlags.key_exch
            | NegotiateFlags.key_56
            | NegotiateFlags.sign
            | NegotiateFlags.seal
        )
        message = Challenge(
            flags=flags, server_challenge=server_challenge, target_name="CONTOSO", target_info=info
        )
        return message.pack(), server_challenge

    def check_ntlm(self, authenticate: bytes, server_challenge: bytes) -> str | None:
        """The account an AUTHENTICATE_MESSAGE proves (NTLMv2: NTProofStr recomputed from the
        account's password), or None."""
        try:
            message = Authenticate.unpack(authenticate)
        except Exception:
            return None
        user = message.user_name or ""
        domain = message.domain_name or ""
        response = message.nt_challenge_response or b""
        if len(response) <= 24:
            return None  # NTLMv1: refused (LmCompatibilityLevel 5)
        with self._lock:
            account = next(
                (
                    a
                    for a in self.accounts.values()
                    if a.user.lower() in (user.lower(), f"{domain}\\{user}".lower())
                ),
                None,
            )
        if account is None:
            return None
        key = ntowfv2(user, ntowfv1(account.password), domain)
        proof = hmac.new(key, server_challenge + response[16:], "md5").digest()
        if not hmac.compare_digest(proof, response[:16]):
            return None
        return account.user.lower()

    def check_bearer(self, token: str) -> tuple[str | None, str]:
        """The app an OAuth access token proves (as Exchange checks one: Entra ID's signature,
        lifetime, the audience is this server, the role full_access_as_app), or None and the
        x-ms-diagnostics value Exchange sends with its 401."""
        if self.identity is None:
            return None, '2000001;reason="OAuth is not enabled on this server."'
        wanted = self.audience or self.origin
        try:
            claims = jwt.decode(
                token,
                self.identity.signing_key.private.public_key(),
                algorithms=["RS256"],
                audience=wanted,
            )
        except jwt.ExpiredSignatureError:
            return None, '2000008;reason="The token has expired.";error_category="invalid_token"'
        except jwt.InvalidAudienceError:
            return None, (
                '2000003;reason="The audience claim value is invalid for current resource. '
                f"Audience claim is '{_claims(token).get('aud')}', request url is "
                f'\'{wanted}/EWS/Exchange.asmx\'.";error_category="invalid_resource"'
            )
        except jwt.PyJWTError:
            return None, '2000001;reason="The token is malformed.";error_category="invalid_token"'
        if self.identity.token_withdrawn(claims):
            return None, '2000008;reason="The token has expired.";error_category="invalid_token"'
        if FULL_ACCESS_AS_APP not in claims.get("roles", ()):
            return None, (
                '2000005;reason="The token has no role full_access_as_app.";'
                'error_category="invalid_grant"'
            )
        user = f"app:{claims.get('azp') or claims.get('appid')}".lower()
        with self._lock:
            if user not in self.accounts:  # full_access_as_app: any mailbox, by impersonation
                self.accounts[user] = ServiceAccount(user, "", impersonation=True)
        return user, ""

    def autodiscover(self, host: str, body: bytes) -> tuple[int, bytes]:
        """POX Autodiscover ("Autodiscover for Exchange", the Autodiscover XML reference):
        for a mailbox, Action settings with the EWS URL in the EXCH and EXPR Protocol
        elements' EwsUrl; Action redirectAddr with RedirectAddr for an address redirected;
        an Error element (ErrorCode 500) for an unknown address."""
        try:
            request = etree.fromstring(body)
        except etree.XMLSyntaxError:
            return 400, b"Bad Request"
        ns = {"a": AUTODISCOVER_REQUEST}
        address = (request.findtext("a:Request/a:EMailAddress", namespaces=ns) or "").lower()
        with self._lock:
            self.log.append(LoggedRequest(time.monotonic(), "Autodiscover", host, address))
            redirect = self.redirects.get(address)
            mailbox = self.mailboxes.get(address)
        root = etree.Element(f"{{{AUTODISCOVER}}}Autodiscover", nsmap={None: AUTODISCOVER})
        if redirect is None and mailbox is None:
            response = etree.SubElement(root, f"{{{AUTODISCOVER}}}Response")
            error = etree.SubElement(
                response, f"{{{AUTODISCOVER}}}Error", Time=time.strftime("%H:%M:%S"), Id="1"
            )
            etree.SubElement(error, f"{{{AUTODISCOVER}}}ErrorCode").text = "500"
            etree.SubElement(
                error, f"{{{AUTODISCOVER}}}Message"
            ).text = "The email address can't be found."
            etree.SubElement(error, f"{{{AUTODISCOVER}}}DebugData")
            return 200, etree.tostring(root, xml_declaration=True, encoding="utf-8")

        def add(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
            child = etree.SubElement(parent, f"{{{AUTODISCOVER_OUTLOOK}}}{tag}")
            child.text = text
            return child

        response = etree.SubElement(
            root, f"{{{AUTODISCOVER_OUTLOOK}}}Response", nsmap={None: AUTODISCOVER_OUTLOOK}
        )
        if mailbox is not None and redirect is None:
            user = add(response, "User")
            add(user, "DisplayName", mailbox.name)
            add(user, "AutoDiscoverSMTPAddress", mailbox.address)
        account = add(response, "Account")
        add(account, "AccountType", "email")
        if redirect is not None:
            add(account, "Action", "redirectAddr")
            add(account, "RedirectAddr", redirect)
        else:
            add(account, "Action", "settings")
            for kind in ("EXCH", "EXPR"):
                protocol = add(account, "Protocol")
                add(protocol, "Type", kind)
                add(protocol, "Server", "exch01.contoso.local" if kind == "EXCH" else HOST)
                add(protocol, "ASUrl", f"{self.origin}/EWS/Exchange.asmx")
                add(protocol, "EwsUrl", self.url)
        return 200, etree.tostring(root, xml_declaration=True, encoding="utf-8")

    # -- request handling -----------------------------------------------------------------------

    def handle(self, user: str, body: bytes, anchor: str | None = None) -> tuple[int, bytes]:
        """A signed-in request: its HTTP status and SOAP answer."""
        try:
            envelope = etree.fromstring(body)
        except etree.XMLSyntaxError:
            return 400, b"Bad Request"
        header = envelope.find("s:Header", NS)
        payload_body = envelope.find("s:Body", NS)
        request = payload_body[0] if payload_body is not None and len(payload_body) else None
        operation = etree.QName(request).localname if request is not None else ""
        impersonated = None
        if header is not None:
            found = header.find("t:ExchangeImpersonation", NS)
            if found is not None:
                impersonated = "".join(found.itertext()).strip().lower() or None
        shape = request.find("m:ItemShape", NS) if request is not None else None
        entry = LoggedRequest(
            time.monotonic(),
            operation,
            user,
            impersonated,
            fields=frozenset(_requested(shape)),
            anchor=anchor,
        )
        with self._lock:
            entry.early = entry.at < self._not_before.get(user, 0.0) - 0.005
            self.log.append(entry)
            if self._expire_after is not None:
                self._expire_after -= 1
                if self._expire_after <= 0 and self.identity is not None:
                    self._expire_after = None
                    self.identity.expire_tokens()
        self._pause()
        try:
            if request is None:
                raise EwsFault(500, "ErrorInvalidRequest", "The request is invalid.")
            busy = self._busy()
            if busy is not None:
                raise EwsFault(
                    500,
                    "ErrorServerBusy",
                    "The server cannot service this request right now. Try again later.",
                    busy,
                )
            handler = getattr(self, f"op_{operation}", None)
            if handler is None:
                raise EwsFault(500, "ErrorInvalidRequest", f"{operation} is not served here.")
            account = self.accounts[user]
            messages = handler(account, impersonated, request)
            entry.code = next(
                (
                    str(code)
                    for code in (m.findtext("m:ResponseCode", namespaces=NS) for m in messages)
                    if code != "NoError"
                ),
                "NoError",
            )
            return 200, _envelope(_response(operation, messages))
        except EwsFault as fault:
            entry.code, entry.status = fault.code, fault.status
            if fault.back_off_ms is not None:
                entry.back_off = fault.back_off_ms / 1000
                with self._lock:
                    self._not_before[user] = max(
                        self._not_before.get(user, 0.0), time.monotonic() + entry.back_off
                    )
            return fault.status, _envelope(_fault(fault))
        except Exception:  # a bug of the emulator: loud, and a 500 rather than a dead socket
            traceback.print_exc()
            entry.code, entry.status = "ErrorInternalServerError", 500
            return 500, _envelope(
                _fault(EwsFault(500, "ErrorInternalServerError", "An internal server error."))
            )

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

    def _busy(self) -> int | None:
        with self._lock:
            if self._busy_queue:
                return self._busy_queue.pop(0)
            if self.busy_rate and self.rng.random() < self.busy_rate:
                return self.back_off_ms
        return None

    # -- whose mailbox ------------------------------------------------------------------------------

    def _open(self, account: ServiceAccount, impersonated: str | None, address: str) -> Mailbox:
        """The mailbox a request acts on, if this account may open it."""
        with self._lock:
            mailbox = self.mailboxes.get(address.lower())
        if impersonated is not None:
            if not account.impersonation:
                raise EwsFault(
                    500,
                    "ErrorImpersonateUserDenied",
                    "The account does not have permission to impersonate the requested user.",
                )
            if mailbox is None:
                raise EwsFault(
                    500,
                    "ErrorNonExistentMailbox",
                    "The SMTP address has no mailbox associated with it.",
                )
            return mailbox
        if mailbox is None:
            raise ItemError(
                "ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it."
            )
        own = account.user.lower() == mailbox.address
        if not own and account.user.lower() not in mailbox.full_access:
            raise ItemError(
                "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
        return mailbox

    def _folder(
        self, account: ServiceAccount, impersonated: str | None, element: etree._Element
    ) -> tuple[Mailbox, Folder]:
        """The folder a FolderId or DistinguishedFolderId names."""
        tag = etree.QName(element).localname
        key = element.get("Id") or ""
        if tag == "DistinguishedFolderId":
            named = element.findtext("t:Mailbox/t:EmailAddress", namespaces=NS)
            address = named or impersonated or account.user
            mailbox = self._open(account, impersonated, address)
            folder = mailbox.folder(key)
            if folder is None:
                raise ItemError(
                    "ErrorFolderNotFound", "The specified folder could not be found in the store."
                )
            return mailbox, folder
        with self._lock:
            owner = next((m for m in self.mailboxes.values() if key in m.folders), None)
        if owner is None:
            raise ItemError(
                "ErrorFolderNotFound", "The specified folder could not be found in the store."
            )
        if impersonated is not None and owner.address != impersonated:
            raise ItemError(
                "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
        mailbox = self._open(account, impersonated, owner.address)
        return mailbox, mailbox.folders[key]

    # -- operations ---------------------------------------------------------------------------------

    def op_ConvertId(
        self, account: ServiceAccount, impersonated: str | None, request: etree._Element
    ) -> list[etree._Element]:
        """convertid-operation: exchangelib's version probe converts a dummy id."""
        ids = request.findall("m:SourceIds/*", NS) or [None]
        return [
            _message(
                "ConvertIdResponseMessage",
                ItemError("ErrorInvalidIdMalformed", "Id is malformed."),
            )
            for _ in ids
        ]

    def op_GetFolder(
        self, account: ServiceAccount, impersonated: str | None, request: etree._Element
    ) -> list[etree._Element]:
        """getfolder-operation: one response message per folder asked for."""
        answers = []
        for element in request.findall("m:FolderIds/*", NS):
            try:
                mailbox, folder = self._folder(account, impersonated, element)
            except ItemError as error:
                answers.append(_message("GetFolderResponseMessage", error))
                continue
            message = _message("GetFolderResponseMessage")
            holder = _add(message, "m:Folders")
            holder.append(self._folder_el(mailbox, folder))
            answers.append(message)
        return answers

    def op_FindFolder(
        self, account: ServiceAccount, impersonated: str | None, request: etree._Element
    ) -> list[etree._Element]:
        """findfolder-operation: Shallow traversal, IndexedPageFolderView."""
        if request.get("Traversal", "Shallow") != "Shallow":
            raise EwsFault(500, "ErrorInvalidRequest", "Only Shallow traversal is served here.")
        view = request.find("m:IndexedPageFolderView", NS)
        size = int(view.get("MaxEntriesReturned", "100")) if view is not None else 100
        offset = int(view.get("Offset", "0")) if view is not None else 0
        answers = []
        for element in request.findall("m:ParentFolderIds/*", NS):
            try:
                mailbox, parent = self._folder(account, impersonated, element)
            except ItemError as error:
                answers.append(_message("FindFolderResponseMessage", error))
                continue
            children = sorted(
                (f for f in mailbox.folders.values() if f.parent_id == parent.id),
                key=lambda f: f.name.lower(),
            )
            page = children[offset : offset + size]
            message = _message("FindFolderResponseMessage")
            root = _add(
                message,
                "m:RootFolder",
                IndexedPagingOffset=offset + len(page),
                TotalItemsInView=len(children),
                IncludesLastItemInRange="true" if offset + len(page) >= len(children) else "false",
            )
            folders = _add(root, "t:Folders")
            for child in page:
                folders.append(self._folder_el(mailbox, child))
            answers.append(message)
        return answers

    def _folder_el(self, mailbox: Mailbox, folder: Folder) -> etree._Element:
        tag = "t:CalendarFolder" if folder.folder_class == "IPF.Appointment" else "t:Folder"
        element = _el(tag)
        _add(element, "t:FolderId", Id=folder.id, ChangeKey="AQAAABYAAA")
        if folder.parent_id is not None:
            _add(element, "t:ParentFolderId", Id=folder.parent_id, ChangeKey="AQAAAA==")
        if folder.folder_class:
            _add(element, "t:FolderClass", folder.folder_class)
        _add(element, "t:DisplayName", folder.name)
        if folder.folder_class != "IPF.Appointment":
            count = sum(1 for m in mailbox.messages.values() if m.folder_id == folder.id)
            _add(element, "t:TotalCount", count)
        children = sum(1 for f in mailbox.folders.values() if f.parent_id == folder.id)
        _add(element, "t:ChildFolderCount", children)
        if folder.folder_class != "IPF.Appointment":
            unread = sum(
                1 for m in mailbox.messages.values() if m.folder_id == folder.id and not m.is_read
            )
            _add(element, "t:UnreadCount", unread)
        return element

    def op_SyncFolderItems(
        self, account: ServiceAccount, impersonated: str | None, request: etree._Element
    ) -> list[etree._Element]:
        """syncfolderitems-operation: the changes since the SyncState, MaxChangesReturned at a
        time; IncludesLastItemInRange on the round's last page."""
        target = request.find("m:SyncFolderId/*", NS)
        assert target is not None
        try:
            mailbox, folder = self._folder(account, impersonated, target)
        except ItemError as error:
            return [_message("SyncFolderItemsResponseMessage", error)]
        token = request.findtext("m:SyncState", namespaces=NS)
        limit = int(request.findtext("m:MaxChangesReturned", namespaces=NS) or MAX_CHANGES)
        if not 1 <= limit <= MAX_CHANGES:
            raise EwsFault(500, "ErrorInvalidRequest", "MaxChangesReturned must be 1 to 512.")
        limit = min(limit, self.page_limit)
        fields = _requested(request.find("m:ItemShape", NS))
        with self._lock:
            if token:
                invalid = next(
                    (
                        q
                        for q in self._invalid
                        if q[0] == mailbox.address and q[1] in (None, folder.id)
                    ),
                    None,
                )
                snapshot = self._snapshots.get(token)
                if invalid is not None or snapshot is None or snapshot.folder_id != folder.id:
                    if invalid is not None:
                        self._invalid.remove(invalid)
                    return [
                        _message(
                            "SyncFolderItemsResponseMessage",
                            ItemError(
                                "ErrorInvalidSyncStateData",
                                "Synchronization state data is corrupt or otherwise invalid.",
                            ),
                        )
                    ]
                held = dict(snapshot.items)
            else:
                held = {}
            now = self._current(mailbox, folder)
            changes: list[tuple[str, str]] = []
            for item_id in sorted(now, key=lambda i: self._order(mailbox, i)):
                if item_id not in held:
                    changes.append(("Create", item_id))
                elif held[item_id][0] != now[item_id][0]:
                    changes.append(("Update", item_id))
                elif held[item_id][1] != now[item_id][1]:
                    changes.append(("ReadFlagChange", item_id))
            changes += [("Delete", item_id) for item_id in sorted(held) if item_id not in now]
            page, last = changes[:limit], len(changes) <= limit
            after = dict(held)
            for kind, item_id in page:
                if kind == "Delete":
                    after.pop(item_id, None)
                else:
                    after[item_id] = now[item_id]
            new_token = base64.b64encode(
                b"H4sIAAAAAAAEAO29B2AcSZYl" + secrets.token_bytes(48)
            ).decode()
            self._snapshots[new_token] = SyncSnapshot(folder.id, after)
        message = _message("SyncFolderItemsResponseMessage")
        _add(message, "m:SyncState", new_token)
        _add(message, "m:IncludesLastItemInRange", "true" if last else "false")
        holder = _add(message, "m:Changes")
        for kind, item_id in page:
            change = _add(holder, f"t:{kind}")
            if kind == "Delete":
                _add(change, "t:ItemId", Id=item_id, ChangeKey=held[item_id][0])
            elif kind == "ReadFlagChange":
                _add(change, "t:ItemId", Id=item_id, ChangeKey=now[item_id][0])
                _add(change, "t:IsRead", "true" if now[item_id][1] else "false")
            else:
                change.append(self._item_el(mailbox, item_id, fields))
        return [message]

    def _current(self, mailbox: Mailbox, folder: Folder) -> dict[str, tuple[str, bool]]:
        found: dict[str, tuple[str, bool]] = {
            m.id: (m.change_key, m.is_read)
            for m in mailbox.messages.values()
            if m.folder_id == folder.id
        }
        for series in mailbox.events.values():
            if series.folder_id == folder.id:
                found[series.id] = (series.change_key, True)
        return found

    @staticmethod
    def _order(mailbox: Mailbox, item_id: str) -> tuple[float, str]:
        message = mailbox.messages.get(item_id)
        when = message.received if message is not None else mailbox.events[item_id].start
        return when.timestamp(), item_id

    def op_GetItem(
        self, account: ServiceAccount, impersonated: str | None, request: etree._Element
    ) -> list[etree._Element]:
        """getitem-operation: one response message per ItemId, in order."""
        fields = _requested(request.find("m:ItemShape", NS))
        answers = []
        for element in request.findall("m:ItemIds/*", NS):
            item_id = element.get("Id") or ""
            with self._lock:
                owner = next((m for m in self.mailboxes.values() if self._holds(m, item_id)), None)
            try:
                if owner is None:
                    raise ItemError(
                        "ErrorItemNotFound", "The specified object was not found in the store."
                    )
                if impersonated is not None and owner.address != impersonated:
                    raise ItemError(
                        "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                    )
                mailbox = self._open(account, impersonated, owner.address)
                message = _message("GetItemResponseMessage")
                holder = _add(message, "m:Items")
                holder.append(self._item_el(mailbox, item_id, fields))
            except ItemError as error:
                message = _message("GetItemResponseMessage", error)
            answers.append(message)
        return answers

    @staticmethod
    def _holds(mailbox: Mailbox, item_id: str) -> bool:
        if item_id in mailbox.messages or item_id in mailbox.events:
            return True
        return any(item_id in s.exception_ids.values() for s in mailbox.events.values())

    # -- items as XML ---------------------------------------------------------------------------------

    def _item_el(self, mailbox: Mailbox, item_id: str, fields: set[str]) -> etree._Element:
        if item_id in mailbox.messages:
            return _message_el(mailbox.messages[item_id], fields)
        if item_id in mailbox.events:
            return _calendar_el(mailbox, mailbox.events[item_id], fields, None)
        for series in mailbox.events.values():
            for original, exception_id in series.exception_ids.items():
                if exception_id == item_id and series.exceptions.get(original) is not None:
                    return _calendar_el(mailbox, series, fields, original)
        raise ItemError("ErrorItemNotFound", "The specified object was not found in the store.")


def _claims(token: str) -> dict[str, Any]:
    try:
        return dict(jwt.decode(token, options={"verify_signature": False}))
    except jwt.PyJWTError:
        return {}


def _requested(shape: etree._Element | None) -> set[str]:
    """The FieldURIs an ItemShape's AdditionalProperties name ("item:MimeContent"...)."""
    if shape is None:
        return set()
    return {
        str(f.get("FieldURI"))
        for f in shape.findall("t:AdditionalProperties/t:FieldURI", NS)
        if f.get("FieldURI")
    }


def _message_el(message: Message, fields: set[str]) -> etree._Element:
    """A t:Message with the properties asked for, in the schema's order (MessageType)."""
    parsed = email.message_from_bytes(message.mime, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    element = _el("t:Message")
    if "item:MimeContent" in fields:
        _add(
            element, "t:MimeContent", base64.b64encode(message.mime).decode(), CharacterSet="UTF-8"
        )
    _add(element, "t:ItemId", Id=message.id, ChangeKey=message.change_key)
    if "item:Subject" in fields:
        _add(element, "t:Subject", str(parsed.get("Subject") or ""))
    if "item:DateTimeReceived" in fields:
        _add(element, "t:DateTimeReceived", _stamp(message.received))
    if "item:Size" in fields:
        _add(element, "t:Size", len(message.mime))
    if "item:InReplyTo" in fields and parsed.get("In-Reply-To"):
        _add(element, "t:InReplyTo", str(parsed.get("In-Reply-To")))
    if "item:InternetMessageHeaders" in fields:
        headers = _add(element, "t:InternetMessageHeaders")
        for name, value in parsed.items():
            _add(headers, "t:InternetMessageHeader", str(value), HeaderName=name)
    if "item:DateTimeSent" in fields:
        _add(element, "t:DateTimeSent", _stamp(message.received))
    if "item:ConversationId" in fields:
        references = str(parsed.get("References") or "").split()
        root = references[0] if references else str(parsed.get("Message-ID") or message.id)
        conversation = "AAQkAD" + hashlib.sha256(root.encode()).hexdigest()[:40] + "="
        _add(element, "t:ConversationId", Id=conversation)
    senders = _addresses(parsed, "From")
    if "message:Sender" in fields and (sender := _addresses(parsed, "Sender") or senders):
        _mailbox_el(element, "t:Sender", *sender[0])
    for uri, tag, header in (
        ("message:ToRecipients", "t:ToRecipients", "To"),
        ("message:CcRecipients", "t:CcRecipients", "Cc"),
        ("message:BccRecipients", "t:BccRecipients", "Bcc"),
    ):
        people = _addresses(parsed, header)
        if uri in fields and people:
            holder = _add(element, tag)
            for name, address in people:
                _mailbox_el(holder, "t:Mailbox", name, address)
    if "message:From" in fields and senders:
        _mailbox_el(element, "t:From", *senders[0])
    if "message:InternetMessageId" in fields and parsed.get("Message-ID"):
        _add(element, "t:InternetMessageId", str(parsed.get("Message-ID")).strip())
    if "message:IsRead" in fields:
        _add(element, "t:IsRead", "true" if message.is_read else "false")
    if "message:References" in fields and parsed.get("References"):
        _add(element, "t:References", str(parsed.get("References")))
    if "message:ReplyTo" in fields and (reply := _addresses(parsed, "Reply-To")):
        holder = _add(element, "t:ReplyTo")
        for name, address in reply:
            _mailbox_el(holder, "t:Mailbox", name, address)
    return element


def _calendar_el(
    mailbox: Mailbox, series: Series, fields: set[str], original: datetime | None
) -> etree._Element:
    """A t:CalendarItem (CalendarItemType): the master or single appointment, or (`original`)
    one exception of a series, with the properties asked for in the schema's order."""
    changes = series.exceptions.get(original) or {} if original is not None else {}
    length = series.end - series.start
    start = changes.get("start", original or series.start)
    end = changes.get("end", start + length)
    item_id = series.exception_ids[original] if original is not None else series.id
    kind = (
        "Exception"
        if original is not None
        else "RecurringMaster"
        if series.recurrence
        else "Single"
    )
    element = _el("t:CalendarItem")
    _add(element, "t:ItemId", Id=item_id, ChangeKey=series.change_key)
    if "item:Subject" in fields:
        _add(element, "t:Subject", changes.get("subject", series.subject))
    if "item:Sensitivity" in fields:
        _add(element, "t:Sensitivity", series.sensitivity)
    if "item:LastModifiedTime" in fields:
        _add(element, "t:LastModifiedTime", _stamp(series.modified))
    if "calendar:UID" in fields:
        _add(element, "t:UID", series.uid)
    if "calendar:Start" in fields:
        _add(element, "t:Start", _stamp(start))
    if "calendar:End" in fields:
        _add(element, "t:End", _stamp(end))
    if "calendar:OriginalStart" in fields and original is not None:
        _add(element, "t:OriginalStart", _stamp(original))
    if "calendar:IsAllDayEvent" in fields:
        _add(element, "t:IsAllDayEvent", "true" if series.all_day else "false")
    if "calendar:Location" in fields:
        _add(element, "t:Location", series.location)
    if "calendar:IsCancelled" in fields:
        cancelled = changes.get("cancelled", series.cancelled)
        _add(element, "t:IsCancelled", "true" if cancelled else "false")
    if "calendar:CalendarItemType" in fields:
        _add(element, "t:CalendarItemType", kind)
    if "calendar:MyResponseType" in fields:
        _add(element, "t:MyResponseType", series.own_response)
    if "calendar:Organizer" in fields:
        name, address = series.organizer
        _mailbox_el(element, "t:Organizer", name, address)
    if "calendar:RequiredAttendees" in fields and series.attendees:
        holder = _add(element, "t:RequiredAttendees")
        for address, name, response in series.attendees:
            attendee = _add(holder, "t:Attendee")
            _mailbox_el(attendee, "t:Mailbox", name, address)
            answer = _RESPONSE_TYPES.get(response.lower(), "Unknown")
            _add(attendee, "t:ResponseType", answer)
    if "calendar:AppointmentSequenceNumber" in fields:
        _add(element, "t:AppointmentSequenceNumber", series.version)
    if "calendar:Recurrence" in fields and series.recurrence and original is None:
        element.append(_recurrence_el(series))
    if "calendar:ModifiedOccurrences" in fields and original is None:
        modified = [(o, c) for o, c in sorted(series.exceptions.items()) if c is not None]
        if modified:
            holder = _add(element, "t:ModifiedOccurrences")
            for when, change in modified:
                occurrence = _add(holder, "t:Occurrence")
                _add(
                    occurrence,
                    "t:ItemId",
                    Id=series.exception_ids[when],
                    ChangeKey=series.change_key,
                )
                moved = change.get("start", when)
                _add(occurrence, "t:Start", _stamp(moved))
                _add(occurrence, "t:End", _stamp(change.get("end", moved + length)))
                _add(occurrence, "t:OriginalStart", _stamp(when))
    if "calendar:DeletedOccurrences" in fields and original is None:
        deleted = [o for o, c in sorted(series.exceptions.items()) if c is None]
        if deleted:
            holder = _add(element, "t:DeletedOccurrences")
            for when in deleted:
                occurrence = _add(holder, "t:DeletedOccurrence")
                _add(occurrence, "t:Start", _stamp(when))
    if "calendar:StartTimeZone" in fields:
        _add(element, "t:StartTimeZone", Id=series.time_zone, Name=series.time_zone)
    return element


def _recurrence_el(series: Series) -> etree._Element:
    """recurrence-recurrencetype: a DailyRecurrence or WeeklyRecurrence pattern and a
    NumberedRecurrence or NoEndRecurrence range."""
    rule = series.recurrence or {}
    element = _el("t:Recurrence")
    interval = int(rule.get("interval", 1))
    if rule.get("type") == "daily":
        pattern = _add(element, "t:DailyRecurrence")
        _add(pattern, "t:Interval", interval)
    else:
        pattern = _add(element, "t:WeeklyRecurrence")
        _add(pattern, "t:Interval", interval)
        days = rule.get("days") or [_WEEKDAYS[series.start.weekday()].lower()]
        _add(pattern, "t:DaysOfWeek", " ".join(d.title() for d in days))
        _add(pattern, "t:FirstDayOfWeek", "Sunday")
    first: date = series.start.date()
    if rule.get("count"):
        limit = _add(element, "t:NumberedRecurrence")
        _add(limit, "t:StartDate", first.isoformat())
        _add(limit, "t:NumberOfOccurrences", int(rule["count"]))
    else:
        limit = _add(element, "t:NoEndRecurrence")
        _add(limit, "t:StartDate", first.isoformat())
    return element


def _global_object_id() -> str:
    """An Exchange meeting's GlobalObjectId in hex ([MS-OXOCAL] 2.2.1.27): a fixed prefix, no
    occurrence date (a series'), a creation time and its own 16 random bytes."""
    data = secrets.token_bytes(16)
    raw = bytes.fromhex(EXCHANGE_UID_PREFIX) + bytes(4 + 8 + 8) + len(data).to_bytes(4, "little")
    return (raw + data).hex().upper()


# -- SOAP plumbing ----------------------------------------------------------------------------------


def _message(tag: str, error: ItemError | None = None) -> etree._Element:
    """A response message (responsecode): Success/NoError, or Error with MessageText."""
    element = _el(f"m:{tag}", ResponseClass="Error" if error is not None else "Success")
    if error is not None:
        _add(element, "m:MessageText", error.message)
        _add(element, "m:ResponseCode", error.code)
        _add(element, "m:DescriptiveLinkKey", 0)
    else:
        _add(element, "m:ResponseCode", "NoError")
    return element


def _response(operation: str, messages: list[etree._Element]) -> etree._Element:
    response = _el(f"m:{operation}Response")
    holder = _add(response, "m:ResponseMessages")
    for message in messages:
        holder.append(message)
    return response


def _fault(fault: EwsFault) -> etree._Element:
    """A SOAP fault as Exchange sends one: faultcode, faultstring, and a detail with the
    ResponseCode, the Message and (ErrorServerBusy) MessageXml's BackOffMilliseconds."""
    body = etree.Element(f"{{{SOAP}}}Fault", nsmap={"s": SOAP})
    code = etree.SubElement(body, "faultcode", nsmap={"a": T})
    code.text = f"a:{fault.code}"
    text = etree.SubElement(body, "faultstring")
    text.text = fault.message
    detail = etree.SubElement(body, "detail")
    errors = "http://schemas.microsoft.com/exchange/services/2006/errors"
    response_code = etree.SubElement(detail, f"{{{errors}}}ResponseCode", nsmap={"e": errors})
    response_code.text = fault.code
    message = etree.SubElement(detail, f"{{{errors}}}Message", nsmap={"e": errors})
    message.text = fault.message
    if fault.back_off_ms is not None:
        xml = _add(detail, "t:MessageXml")
        _add(xml, "t:Value", fault.back_off_ms, Name="BackOffMilliseconds")
    return body


def _envelope(content: etree._Element) -> bytes:
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP})
    header = etree.SubElement(envelope, f"{{{SOAP}}}Header")
    header.append(
        _el(
            "t:ServerVersionInfo",
            MajorVersion=15,
            MinorVersion=2,
            MajorBuildNumber=1544,
            MinorBuildNumber=4,
            Version="V2017_07_11",
        )
    )
    body = etree.SubElement(envelope, f"{{{SOAP}}}Body")
    body.append(content)
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def _handler(emulator: EwsEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # NTLM authenticates a connection, not a request (as IIS does): its state lives here,
        # one handler per connection.
        signed_in: str | None = None
        challenge: bytes | None = None

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?")[0].lower()
            # /HOST/autodiscover/autodiscover.xml: HOST is the host the client addressed
            # (see `autodiscover_template`).
            host, _, rest = path.strip("/").partition("/")
            if rest == "autodiscover/autodiscover.xml":
                with emulator._lock:
                    served = host in emulator.autodiscover_hosts
                if not served:
                    self._send(404, b"Not Found", "text/plain")
                    return
                if self._authenticate() is None:
                    return
                status, answer = emulator.autodiscover(host, body)
                self._send(status, answer, "text/xml; charset=utf-8")
                return
            if path != "/ews/exchange.asmx":
                self._send(404, b"Not Found", "text/plain")
                return
            user = self._authenticate()
            if user is None:
                return
            anchor = self.headers.get("X-AnchorMailbox")
            status, answer = emulator.handle(user, body, anchor)
            self._send(status, answer, "text/xml; charset=utf-8", cut=emulator.cut_short())

        def do_GET(self) -> None:
            self._send(405, b"Method Not Allowed", "text/plain")

        def _authenticate(self) -> str | None:
            header = self.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            scheme = scheme.lower()
            if scheme == "bearer":
                user, diagnostics = emulator.check_bearer(token.strip())
                if user is not None:
                    return user
                with emulator._lock:
                    emulator.refused_tokens += 1
                refused = [
                    ("WWW-Authenticate", 'Bearer client_id="00000002-0000-0ff1-ce00-000000000000"'),
                    ("x-ms-diagnostics", diagnostics),
                ]
                self._send(401, b"", "text/plain", [*emulator.challenge_headers(), *refused])
                return None
            if emulator.auth == "basic" and scheme == "basic":
                user = emulator.check_basic(token.strip())
                if user is not None:
                    return user
            elif emulator.auth == "ntlm" and scheme in ("ntlm", "negotiate") and token:
                raw = base64.b64decode(token)
                if raw[8:12] == (1).to_bytes(4, "little"):  # NEGOTIATE_MESSAGE
                    challenge, self.challenge = emulator.ntlm_challenge()
                    value = f"{header.split(' ')[0]} {base64.b64encode(challenge).decode()}"
                    self._send(401, b"", "text/plain", [("WWW-Authenticate", value)])
                    return None
                if raw[8:12] == (3).to_bytes(4, "little") and self.challenge is not None:
                    user = emulator.check_ntlm(raw, self.challenge)
                    self.challenge = None
                    if user is not None:
                        self.signed_in = user
                        return user
                    self.signed_in = None
            elif not header and self.signed_in is not None:
                with emulator._lock:
                    account = emulator.accounts.get(self.signed_in)
                if account is not None:
                    return self.signed_in
            self._send(401, b"", "text/plain", emulator.challenge_headers())
            return None

        def _send(
            self,
            status: int,
            data: bytes,
            content_type: str,
            headers: Iterable[tuple[str, str]] = (),
            *,
            cut: bool = False,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-FEServer", "EXCH01")
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if cut:  # the connection drops mid-answer: half a body, then EOF
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


# --------------------------------------------------------------------------------------------
# pytest fixtures (import them where needed: `from tests.emulators.ews import ews, ews_server`)


@pytest.fixture(scope="session")
def ews_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EwsEmulator]:
    with EwsEmulator(tmp_path_factory.mktemp("ews")) as emulator:
        yield emulator


@pytest.fixture
def ews(ews_server: EwsEmulator) -> Iterator[EwsEmulator]:
    """The EWS emulator with its switches reset."""
    ews_server.reset()
    yield ews_server
    ews_server.reset()
