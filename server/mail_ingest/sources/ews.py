"""Exchange Web Services source: an on-premises Exchange mailbox's chosen folders and its
calendar, through SyncFolderItems (exchangelib), restartable at any page.

Why this shape: on-premises Exchange (2013, 2016, 2019, Subscription Edition) has no Microsoft
Graph; EWS is its API for reading a mailbox as a service, and SyncFolderItems gives per-folder
incremental sync whose state is an opaque string -- so a folder's checkpoint is the sync state
to send next, and every step below is safe to repeat (the pipeline recognises an email it has
seen by its identity).

Per-folder state machine; the checkpoint is the state:

    no checkpoint, or another folder id ---------------> INITIAL (validity_changed if one was held)
    INITIAL, POLL: SyncFolderItems from `state` ---------> each page is committed with the sync
                   state that follows it; IncludesLastItemInRange ends the round -> POLL
    ErrorInvalidSyncStateData --------------------------> RESYNC: a fresh round without a sync
                   state; ids seen are remembered (a compact digest set) and, when the round
                   ends, every held id not seen is reported removed; an interrupted RESYNC starts
                   over (its pages carry no sync state, and its memory of what was seen is gone)

An unchanged folder costs one request: SyncFolderItems answers with no changes.

Mail, per SyncFolderItems page (at most `page_size` changes, 512 being EWS's own limit; the
shape is IdOnly plus DateTimeReceived and Size): Delete changes are removed provider ids;
Create and Update changes are new, moved in, or changed; ReadFlagChange costs nothing. What the
pipeline already holds for this folder (`known_ids.among`) is skipped. What it does not hold:

* capture level "full": the MIME content (GetItem with item:MimeContent), in batches of at most
  BATCH_ITEMS items and BATCH_BYTES bytes (by the Size each change carries); parsed by the same
  MIME parser as IMAP, Graph and imports, so one email seen through any of them is one activity.
  A message over MAX_MIME_BYTES (EWS sends MIME base64-encoded inside XML, all in memory) is
  captured from its properties instead, like the lower levels.
* capture levels "subject" and "metadata": a `MailItem` from GetItem's properties (Internet
  message id, conversation id, addresses, dates, subject, the Internet headers capture rules
  read) -- no MIME.
* messages older than `since` get no MIME request: their properties let capture record them as
  skipped ("older_than_since").

Calendar: SyncFolderItems over the calendar folder returns single appointments and recurring
masters (never plain occurrences: EWS stores them in the master); each created or changed one is
read with GetItem (UID, times, attendees, Recurrence, ModifiedOccurrences, DeletedOccurrences),
and each modified occurrence with GetItem on its own id. A series is keyed by its UID, an
exception by the series' UID and its OriginalStart, as `server.crm.meetings.meeting_key` wants;
an exception is held under `exception_id` (its master's ItemId and OriginalStart), because
SyncFolderItems reports a deleted series by the master's id alone: what is held under that
master goes with it (and an exception its master no longer lists, when the master changes);
EWS's UID for an Exchange meeting is its GlobalObjectId in hex, unwrapped like Graph's iCalUId
(`graph.series_uid`), so the same meeting seen as an invite in another mailbox is one meeting.

Faults (EWS throttling in Exchange): ErrorServerBusy comes as a SOAP fault whose MessageXml
carries BackOffMilliseconds; the same request is sent again after that long (a back-off longer
than a minute ends the sync with `Throttled`, and the worker comes back then). Connection
failures, timeouts and transient server errors are retried with exponential backoff and jitter,
a few times, then end the sync with `Temporary`. A 401 (wrong or changed password, locked
account) and ErrorAccessDenied / missing impersonation rights stop the link: it needs the admin.

Sign-in: NTLM or Basic with a service account, or (hybrid modern authentication) an Entra ID
app's app-only token for the EWS host (`oauth_scope`), from the link's `TokenSource` (msal),
sent as a bearer token; a 401 gets one new token before it means "needs attention".

`classify_ews_error` is the one pure function turning EWS's answers into our error kinds.

exchangelib is used for what it does well (SOAP envelopes, NTLM, XML to objects), under a few
rules of ours, each named where it is applied:
- TLS: the sessions ignore the environment (REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE would
  otherwise replace the trusted CAs) and trust the system's CAs plus RAPPORT_CA_BUNDLE, through
  exchangelib's documented hook, `HTTP_ADAPTER_CLS`, on a Protocol class of our own;
- retries: exchangelib's FailFast policy, so every failure reaches `classify_ews_error` and the
  retry loop here (exchangelib's FaultTolerance would sleep up to an hour inside a sync);
- paging: `SyncFolderItems` is called page by page, not through `Folder.sync_items`, which
  yields the new sync state only once the whole folder is read (a crash mid-way would start the
  folder over);
- the server's version is probed once, when the link is tested, and kept with the link, so a
  sync sends no probe request.

Server quirks handled here (the emulator, tests/emulators/ews.py, reproduces each):
- ErrorServerBusy as an HTTP 500 SOAP fault with BackOffMilliseconds;
- a page that says it is not the last but hands back the same sync state (exchangelib's own
  loop stops there too): the round ends;
- an item id changes when the item moves to another folder: Delete in the old folder, Create
  in the new one;
- an error answer to SyncFolderItems carries no SyncState, which exchangelib reads first;
- a GetItem answer that names an item gone meanwhile (ErrorItemNotFound): the next page says so.
"""

from __future__ import annotations

import functools
import logging
import random
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import requests
from exchangelib import (  # type: ignore[import-untyped]
    DELEGATE,
    IMPERSONATION,
    Account,
    Configuration,
    Credentials,
    Identity,
)
from exchangelib import UTC as EWS_UTC
from exchangelib import errors as ews_errors
from exchangelib.credentials import BaseOAuth2Credentials  # type: ignore[import-untyped]
from exchangelib.fields import FieldPath  # type: ignore[import-untyped]
from exchangelib.folders import (  # type: ignore[import-untyped]
    Calendar,
    DeletedItems,
    Drafts,
    FolderCollection,
    Inbox,
    JunkEmail,
    Outbox,
    SentItems,
)
from exchangelib.folders import Folder as EwsFolderType
from exchangelib.items import ID_ONLY  # type: ignore[import-untyped]
from exchangelib.items import CalendarItem as EwsCalendarItem
from exchangelib.items import Message as EwsMessage
from exchangelib.properties import FolderId  # type: ignore[import-untyped]
from exchangelib.protocol import CachingProtocol, FailFast, Protocol  # type: ignore[import-untyped]
from exchangelib.services import GetItem, SyncFolderItems  # type: ignore[import-untyped]
from exchangelib.services.common import EWSService  # type: ignore[import-untyped]
from exchangelib.transport import BASIC, NTLM, OAUTH2  # type: ignore[import-untyped]
from exchangelib.util import MNS  # type: ignore[import-untyped]
from exchangelib.version import Build, Version  # type: ignore[import-untyped]

from server.batching import weighed_batches
from server.mail_ingest.calendar_tz import zone_by_name
from server.mail_ingest.errors import (
    AuthExpired,
    CursorInvalid,
    PermissionDenied,
    SourceError,
    Temporary,
    Throttled,
)
from server.mail_ingest.items import (
    KEPT_HEADERS,
    CalendarItem,
    MailItem,
    Participant,
    Response,
    Role,
)
from server.mail_ingest.mime_fields import normalise_address, parse_id_list, parse_message_id
from server.mail_ingest.oauth import ClientCredentialsSource, IdentityEndpoints, MicrosoftApp
from server.mail_ingest.sources.files import RawMessage
from server.mail_ingest.sources.graph import KnownIds, SeenIds, series_uid
from server.tls import ExtraCAAdapter

if TYPE_CHECKING:
    from server.mail_ingest.oauth import TokenSource

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 2  # 2: exceptions held under their series' id (see `exception_id`)
PAGE_SIZE = 512  # changes per SyncFolderItems page (MaxChangesReturned; EWS's maximum)
BATCH_ITEMS = 50  # items per GetItem request
BATCH_BYTES = 8 * 1024 * 1024  # MIME bytes per GetItem request (and per committed page)
MAX_MIME_BYTES = 64 * 1024 * 1024  # past this, a message is captured from its properties
MAX_ATTEMPTS = 8  # per request before giving the problem to the worker
MAX_INLINE_WAIT = 60.0  # seconds: a longer BackOffMilliseconds ends the sync
BACKOFF_BASE = 0.5  # seconds; doubled per attempt, with jitter
BACKOFF_CAP = 30.0
MAX_HEADER_VALUE = 2000
CALENDAR_FOLDER = "Calendar"
AUTH_TYPES = {"ntlm": NTLM, "basic": BASIC, "oauth": OAUTH2}
# Distinguished folder names an admin may give (EWS's DistinguishedFolderId values).
WELL_KNOWN: dict[str, Any] = {
    "inbox": Inbox,
    "sentitems": SentItems,
    "drafts": Drafts,
    "deleteditems": DeletedItems,
    "junkemail": JunkEmail,
    "outbox": Outbox,
}
_RESPONSES: dict[str, Response] = {
    "accept": "accepted",
    "tentative": "tentative",
    "decline": "declined",
    "noresponsereceived": "needs_action",
    "unknown": "needs_action",
}
_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_POSITIONS = {1: "1", 2: "2", 3: "3", 4: "4", 5: "-1"}
# What a mail page needs of each change besides its id: the since filter and the batch sizes.
_SYNC_MAIL_FIELDS = ("datetime_received", "size")
# What a MailItem is built from, when there is no MIME.
_MAIL_FIELDS = (
    "message_id",
    "conversation_id",
    "subject",
    "author",
    "sender",
    "reply_to",
    "to_recipients",
    "cc_recipients",
    "bcc_recipients",
    "datetime_sent",
    "datetime_received",
    "headers",
    "in_reply_to",
    "references",
)
_CALENDAR_FIELDS = (
    "uid",
    "subject",
    "start",
    "end",
    "original_start",
    "is_all_day",
    "location",
    "type",
    "is_cancelled",
    "sensitivity",
    "my_response_type",
    "organizer",
    "required_attendees",
    "optional_attendees",
    "recurrence",
    "modified_occurrences",
    "deleted_occurrences",
    "last_modified_time",
    "appointment_sequence_number",
    "_start_timezone",
)

T = TypeVar("T")


@dataclass(frozen=True)
class EwsFolder:
    """A mail folder to sync: the name it is known by (checkpoints, observations) and its id."""

    name: str
    id: str


@dataclass(frozen=True)
class EwsSettings:
    """How to reach one mailbox through EWS: the service URL (https://.../EWS/Exchange.asmx),
    the service account (`user`, `password`, `auth`), and whose mailbox (`mailbox`) it opens by
    impersonation (ApplicationImpersonation) or as a delegate (FullAccess). With `auth`
    "oauth" an Entra ID app signs in instead (hybrid modern authentication): its tokens come
    from `token_source`, and it opens the mailbox by impersonation (full_access_as_app)."""

    server: str
    mailbox: str
    user: str
    password: str = field(repr=False)
    auth: str = "ntlm"  # "ntlm", "basic" or "oauth"
    access: str = "impersonation"  # "impersonation" or "delegate"
    folders: tuple[EwsFolder, ...] = ()
    calendar: bool = True
    calendar_id: str | None = None
    capture_level: str = "full"
    since: datetime | None = None
    ca_bundle: Path | None = None  # extra trusted CAs (PEM), on top of the system's
    timeout: float = 60.0
    page_size: int = PAGE_SIZE
    version: tuple[int, int, int, int] | None = None  # the server's build, once probed
    api_version: str | None = None
    attempts: int = MAX_ATTEMPTS
    token_source: TokenSource | None = field(default=None, repr=False, compare=False)


def oauth_scope(server: str) -> str:
    """The scope an app-only token for this EWS URL asks for: the on-premises host as a
    resource (hybrid modern authentication registers it as a service principal name of
    Office 365 Exchange Online), /.default (the application permissions consented to)."""
    parts = urlsplit(server)
    return f"{parts.scheme}://{parts.netloc.lower()}/.default"


def ews_app(tenant: str, client_id: str, client_secret: str | None, server: str) -> MicrosoftApp:
    """The Entra ID app of an OAuth link, asking for tokens for this EWS server."""
    return MicrosoftApp(
        tenant=tenant, client_id=client_id, client_secret=client_secret, scope=oauth_scope(server)
    )


def ews_token_source(
    config: Mapping[str, Any], secret: Mapping[str, Any], endpoints: IdentityEndpoints
) -> TokenSource | None:
    """The token source of a stored EWS link (its settings and decrypted secret); None for a
    link that signs in with a password. msal caches the token per process and renews it
    before it expires."""
    if config.get("auth") != "oauth":
        return None
    app = ews_app(
        str(config.get("tenant", "")),
        str(config.get("client_id", "")),
        secret.get("client_secret"),
        str(config["server"]),
    )
    return ClientCredentialsSource(app, endpoints)


@dataclass(frozen=True, slots=True)
class EwsPage:
    """One step of a folder's sync, committed with `state`: `messages` (MIME) and `items`
    (built from properties) to capture, `removed` provider ids to forget, `failures` as
    (provider_id, reason) to record. `validity_changed` (first page only): forget every provider
    id held for this folder before capturing this page."""

    folder: str
    messages: list[RawMessage]
    removed: list[str]
    failures: list[tuple[str, str]]
    state: dict[str, Any]
    validity_changed: bool = False
    items: list[MailItem | CalendarItem] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class EwsFailure:
    """What EWS answered (or why nothing came back), as raw facts for the classifier: `code`
    is EWS's ResponseCode (ErrorServerBusy, ErrorAccessDenied...) or "Unauthorized" for a 401,
    `back_off` the BackOffMilliseconds it carried (in seconds)."""

    code: str = ""
    message: str = ""
    back_off: float | None = None
    exception: BaseException | None = None
    mailbox: str = ""
    server: str = ""
    what: str = ""  # "folder Inbox", "the calendar": what was asked for
    oauth: bool = False  # the request carried an OAuth token (a 401 refused the token)


_TEMPORARY_CODES = frozenset(
    {
        "ErrorTimeoutExpired",
        "ErrorInternalServerError",
        "ErrorInternalServerTransientError",
        "ErrorTooManyObjectsOpened",
        "ErrorExceededConnectionCount",
        "ErrorMailboxStoreUnavailable",
        "ErrorMailboxMoveInProgress",
        "ErrorConnectionFailed",
        "ErrorNoRespondingCASInDestinationSite",
        "ErrorNotEnoughMemory",
        "ErrorBatchProcessingStopped",
        "CASError",
    }
)
_IMPERSONATION_CODES = frozenset(
    {"ErrorImpersonateUserDenied", "ErrorImpersonationDenied", "ErrorImpersonationFailed"}
)
_NO_MAILBOX_CODES = frozenset(
    {"ErrorNonExistentMailbox", "ErrorInvalidSmtpAddress", "ErrorNonPrimarySmtpAddress"}
)


def classify_ews_error(failure: EwsFailure) -> SourceError:
    """Map EWS's answer (response code and message) or a network failure to one of our error
    kinds, with what to do next (pure; table-tested)."""
    where = failure.mailbox or "the mailbox"
    server = failure.server or "the Exchange server"
    said = f' (Exchange said: "{failure.code}: {failure.message[:300]}")' if failure.code else ""
    if failure.exception is not None:
        return _network_failure(failure.exception, server)
    code = failure.code
    if code == "Unauthorized" and failure.oauth:
        return AuthExpired(
            f"{server} refused the app's OAuth token for {where} even when freshly issued "
            f"(HTTP 401){said}: in Entra ID, the EWS URL's host must be a service principal "
            "name of Office 365 Exchange Online (hybrid modern authentication) so the token's "
            "audience is that host, and the app needs the application permission "
            "full_access_as_app with admin consent; Exchange must trust Entra ID as its "
            "authorization server (the Hybrid Configuration Wizard's OAuth step); then resume "
            "the link"
        )
    if code == "Unauthorized":
        return AuthExpired(
            f"{server} refused the service account's sign-in (HTTP 401: a wrong or changed "
            "password, a locked account, or an authentication method the EWS virtual directory "
            f"does not allow){said}; fix the credentials, then resume the link"
        )
    if code in _IMPERSONATION_CODES:
        return PermissionDenied(
            f"the service account may not impersonate {where}: give it the ApplicationImpersonation "
            "role (New-ManagementRoleAssignment -Role ApplicationImpersonation -User ACCOUNT), "
            f"or link with --access delegate and FullAccess on the mailbox{said}"
        )
    if code == "ErrorAccessDenied":
        return PermissionDenied(
            f"the service account may not read {failure.what or where}: it needs "
            "ApplicationImpersonation, or FullAccess on the mailbox for --access delegate "
            f"(Add-MailboxPermission {where} -User ACCOUNT -AccessRights FullAccess){said}"
        )
    if code in _NO_MAILBOX_CODES:
        return PermissionDenied(
            f"there is no mailbox {where} on {server}: check the address (the mailbox's "
            f"primary SMTP address){said}"
        )
    if code in ("ErrorFolderNotFound", "ErrorSyncFolderNotFound"):
        return PermissionDenied(f"{failure.what or 'a folder'} no longer exists in {where}{said}")
    if code in ("ErrorInvalidSyncStateData", "ErrorInvalidSyncState"):
        return CursorInvalid(f"the sync state of {failure.what or where} is no longer valid{said}")
    if code == "ErrorServerBusy":
        return Throttled(
            f"{server} asks Rapport to back off for {where} (ErrorServerBusy){said}",
            failure.back_off,
        )
    if code == "RedirectError":
        return PermissionDenied(
            f"{server} redirected the request ({failure.message[:200]}): give the EWS URL the "
            "redirect points at, https://HOST/EWS/Exchange.asmx"
        )
    if code in ("MalformedResponseError", "TransportError"):
        # No SOAP answer at all: a proxy's error page, or a URL that is not EWS.
        return Temporary(
            f"{server} gave no EWS answer for {where} ({failure.message[:200]}); if it lasts, "
            "check the EWS URL: https://HOST/EWS/Exchange.asmx"
        )
    if code in _TEMPORARY_CODES:
        return Temporary(f"{server} could not answer for {where} right now{said}")
    return Temporary(f"{server} refused a request for {where}{said}")


def _network_failure(exc: BaseException, server: str) -> SourceError:
    chain = _chain(exc)
    text = str(exc)[:200]
    if any("CERTIFICATE_VERIFY_FAILED" in str(e) for e in chain) or any(
        isinstance(e, ssl.SSLCertVerificationError) for e in chain
    ):
        return Temporary(
            f"the TLS certificate of {server} is not trusted ({text}); for a private CA set "
            "RAPPORT_CA_BUNDLE to its certificate (PEM)"
        )
    if any(isinstance(e, ssl.SSLError | requests.exceptions.SSLError) for e in chain):
        return Temporary(f"no TLS connection to {server} could be made ({text})")
    if any(isinstance(e, requests.Timeout | TimeoutError) for e in chain):
        return Temporary(f"{server} did not answer in time")
    return Temporary(f"cannot reach {server} ({text}); check the EWS URL (--server)")


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


_NETWORK = (requests.RequestException, OSError, ssl.SSLError)


def failure_of(
    exc: BaseException,
    *,
    mailbox: str = "",
    server: str = "",
    what: str = "",
    oauth: bool = False,
    refusal: str = "",
) -> EwsFailure:
    """The raw facts of an exception exchangelib (or requests under it) raised; `refusal` is
    what the server said with a 401 to a token (x-ms-diagnostics or WWW-Authenticate)."""
    base = EwsFailure(mailbox=mailbox, server=server, what=what, oauth=oauth)
    if isinstance(exc, ews_errors.UnauthorizedError):
        return replace(base, code="Unauthorized", message=(refusal or str(exc))[:300])
    if isinstance(exc, ews_errors.ErrorServerBusy):
        return replace(base, code="ErrorServerBusy", message=str(exc), back_off=exc.back_off)
    # exchangelib re-raises connection failures as ErrorTimeoutExpired, TLS failures as
    # TransportError: the requests exception underneath says what happened.
    if any(isinstance(e, _NETWORK) for e in _chain(exc)):
        return replace(base, exception=exc)
    if isinstance(exc, ews_errors.EWSError):
        return replace(base, code=type(exc).__name__, message=str(exc))
    return replace(base, exception=exc)


# --------------------------------------------------------------------------------------------
# TLS and the protocol


class _Uncached(CachingProtocol):  # type: ignore[misc]
    """exchangelib keeps one Protocol per (URL, credentials) for the whole process; ours live
    as long as the client that made them (closed with it, never shared)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return type.__call__(cls, *args, **kwargs)


class _BearerCredentials(BaseOAuth2Credentials):  # type: ignore[misc]
    """An OAuth access token as exchangelib credentials. exchangelib's own OAuth credentials
    fetch tokens themselves, from login.microsoftonline.com for Exchange Online's scope, and
    drop them whenever a session closes; ours come from the link's `TokenSource` (msal, the
    configured authority host), set by `EwsClient.call` before each request, and our Protocol
    makes the sessions. Being OAuth credentials with an `identity`, every request, the version
    probe included, impersonates the mailbox (ExchangeImpersonation) and is anchored to it
    (X-AnchorMailbox), as app-only tokens need. `refusal` keeps what the server said with its
    last 401 (Exchange names the reason in x-ms-diagnostics)."""

    def __init__(self, mailbox: str) -> None:
        super().__init__(
            client_id="", client_secret=None, identity=Identity(primary_smtp_address=mailbox)
        )
        self.token = ""
        self.refusal = ""

    @property
    def client(self) -> None:
        return None  # no token fetching of exchangelib's

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)


class _BearerAuth(requests.auth.AuthBase):
    """`Authorization: Bearer` with the credentials' current token."""

    def __init__(self, credentials: _BearerCredentials) -> None:
        self.credentials = credentials

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.credentials.token}"
        request.register_hook("response", self._note)
        return request

    def _note(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        if response.status_code == 401:
            headers = response.headers
            said = headers.get("x-ms-diagnostics") or headers.get("WWW-Authenticate") or ""
            self.credentials.refusal = said[:300]
        return response


class _RapportProtocol(Protocol, metaclass=_Uncached):  # type: ignore[misc]
    """exchangelib's Protocol with sessions that ignore the environment: with `trust_env`,
    requests would let REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE replace the trusted CAs (and proxy
    variables reroute the traffic); with OAuth, sessions send our bearer token."""

    @classmethod
    def raw_session(cls, prefix: str, *args: Any, **kwargs: Any) -> requests.Session:
        session: requests.Session = super().raw_session(prefix, *args, **kwargs)
        session.trust_env = False
        return session

    def create_session(self) -> requests.Session:
        if not isinstance(self.credentials, _BearerCredentials):
            session: requests.Session = super().create_session()
            return session
        session = self.raw_session(self.service_endpoint)
        session.auth = _BearerAuth(self.credentials)
        session.session_id = random.randint(10000, 99999)  # type: ignore[attr-defined]
        session.usage_count = 0  # type: ignore[attr-defined]
        return session


@functools.lru_cache(maxsize=8)
def protocol_class(ca_bundle: Path | None) -> type[Any]:
    """The Protocol class trusting the system's CAs plus `ca_bundle`, through exchangelib's
    documented hook (`HTTP_ADAPTER_CLS`), on a class of our own: nothing global changes."""

    class TrustedAdapter(ExtraCAAdapter):  # exchangelib makes it with its own pool arguments
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(ca_bundle, **kwargs)

    return type("RapportProtocol", (_RapportProtocol,), {"HTTP_ADAPTER_CLS": TrustedAdapter})


class _SyncFolderItems(SyncFolderItems):  # type: ignore[misc]
    """exchangelib's SyncFolderItems reads SyncState before it looks at ResponseClass: an error
    answer, which carries none (ErrorInvalidSyncStateData, ErrorAccessDenied...), must come out
    as that error, not as an AttributeError."""

    def _get_element_container(self, message: Any, name: Any = None) -> Any:
        if message.find(f"{{{MNS}}}SyncState") is None:
            return EWSService._get_element_container(self, message, name)
        return super()._get_element_container(message, name)


# --------------------------------------------------------------------------------------------
# The client


@dataclass(frozen=True)
class SyncAnswer:
    """One SyncFolderItems page: (change type, item or item id) pairs, the sync state that
    follows, and whether it was the round's last page."""

    changes: list[tuple[str, Any]]
    state: str
    last: bool


class EwsClient:
    """One mailbox over one EWS session pool (FailFast: every failure comes back here), with
    the retries described in the module docstring. `requests` counts the requests sent by kind
    (retries included)."""

    def __init__(
        self,
        settings: EwsSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.requests: dict[str, int] = {}
        version = None
        if settings.version is not None:
            version = Version(Build(*settings.version), settings.api_version)
        self.bearer: _BearerCredentials | None = None
        credentials: Any
        if settings.auth == "oauth":
            if settings.token_source is None:
                raise ValueError("an OAuth EWS link needs a token source")
            credentials = self.bearer = _BearerCredentials(settings.mailbox)
        else:
            credentials = Credentials(settings.user, settings.password)
        self.config = Configuration(
            credentials=credentials,
            service_endpoint=settings.server,
            auth_type=AUTH_TYPES[settings.auth],
            version=version,
            retry_policy=FailFast(),
            max_connections=1,
        )
        self.protocol = protocol_class(settings.ca_bundle)(config=self.config)
        self.protocol.TIMEOUT = settings.timeout
        access = IMPERSONATION if settings.access == "impersonation" else DELEGATE
        self.account = Account(
            primary_smtp_address=settings.mailbox,
            access_type=access,
            config=self.config,
            default_timezone=EWS_UTC,
            locale="en_US",
        )
        # Account builds (and caches for the process) a stock Protocol of its own: ours, with
        # TLS as configured, replaces it, and the stock one is not kept.
        self.account.protocol = self.protocol
        with suppress(KeyError):
            del Protocol[self.config]

    def close(self) -> None:
        self.protocol.close()

    @property
    def server(self) -> str:
        return self.settings.server

    def version(self) -> tuple[tuple[int, int, int, int], str]:
        """The server's build and API version (probed once if the settings had none)."""
        probed = self.call("version", lambda: self.protocol.version, what="the server version")
        build = probed.build
        numbers = (build.major_version, build.minor_version, build.major_build, build.minor_build)
        return numbers, str(probed.api_version)

    def backoff(self, attempt: int) -> float:
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2.0**attempt)
        return ceiling * self.rng.uniform(0.5, 1.0)

    def call(self, kind: str, request: Callable[[], T], *, what: str = "") -> T:
        """One request (`request` must consume exchangelib's generators), retried as the module
        docstring says; its answer, or a SourceError."""
        attempt = 0
        refreshed = refresh = False
        while True:
            self.requests[kind] = self.requests.get(kind, 0) + 1
            self._authorize(refresh=refresh)
            refresh = False
            try:
                return request()
            except (ews_errors.EWSError, *_NETWORK) as exc:
                if (
                    self.bearer is not None
                    and isinstance(exc, ews_errors.UnauthorizedError)
                    and not refreshed
                ):
                    # An expired or revoked token: one new one before the link needs the admin.
                    refreshed = refresh = True
                    continue
                error = classify_ews_error(
                    failure_of(
                        exc,
                        mailbox=self.settings.mailbox,
                        server=self.server,
                        what=what,
                        oauth=self.bearer is not None,
                        refusal=self.bearer.refusal if self.bearer is not None else "",
                    )
                )
                attempt += 1
                if attempt >= self.settings.attempts or not isinstance(
                    error, Throttled | Temporary
                ):
                    raise error from exc
                if isinstance(error, Throttled):
                    wait = (
                        error.retry_after
                        if error.retry_after is not None
                        else self.backoff(attempt)
                    )
                    if wait > MAX_INLINE_WAIT:
                        raise error from exc
                else:
                    wait = self.backoff(attempt)
                log.info(
                    "exchange asked to wait",
                    extra={"kind": kind, "wait": round(wait, 3), "error": error.message[:200]},
                )
                self.sleep(wait)

    def _authorize(self, *, refresh: bool) -> None:
        """The token for the next request (OAuth links): msal's cached one, renewed before it
        expires, or (`refresh`, after a 401) a new one. A token that cannot be had raises the
        identity provider's error kind."""
        if self.bearer is None or self.settings.token_source is None:
            return
        self.bearer.token = self.settings.token_source.token(force_refresh=refresh)
        self.bearer.refusal = ""

    def sync_page(
        self, folder_id: str, state: str | None, fields: Sequence[str], item_cls: Any, what: str
    ) -> SyncAnswer:
        """One SyncFolderItems page (IdOnly plus `fields` of `item_cls`)."""
        additional = {FieldPath(field=item_cls.get_field_by_fieldname(name)) for name in fields}

        def send() -> SyncAnswer:
            service = _SyncFolderItems(account=self.account)
            changes = list(
                service.call(
                    folder=FolderId(id=folder_id),
                    shape=ID_ONLY,
                    additional_fields=additional,
                    sync_state=state,
                    ignore=None,
                    max_changes_returned=self.settings.page_size,
                    sync_scope="NormalItems",
                )
            )
            for change in changes:  # an error inside the page (exchangelib returns it as such)
                if isinstance(change, Exception):
                    raise change
            new_state = str(service.sync_state or "")
            # A server that says "not the last page" but hands back the same state would loop
            # for ever (exchangelib's own loop stops there too): the round ends.
            last = bool(service.includes_last_item_in_range) or new_state == (state or "")
            return SyncAnswer(changes, new_state, last)

        return self.call("sync", send, what=what)

    def get_items(
        self, ids: Sequence[tuple[str, str | None]], fields: Sequence[str], item_cls: Any, kind: str
    ) -> list[Any]:
        """GetItem for `ids` with `fields` of `item_cls`, in order: an item, or the exception
        EWS answered for that one item (ErrorItemNotFound...)."""
        if not ids:
            return []
        additional = {FieldPath(field=item_cls.get_field_by_fieldname(name)) for name in fields}

        def send() -> list[Any]:
            service = GetItem(account=self.account, chunk_size=max(len(ids), 1))
            return list(service.call(items=list(ids), additional_fields=additional, shape=ID_ONLY))

        return self.call(kind, send, what=f"{len(ids)} items")


# --------------------------------------------------------------------------------------------
# Items from EWS properties


def _aware(value: object) -> datetime | None:
    """A plain aware datetime (UTC) from exchangelib's EWSDateTime or EWSDate: theirs refuse
    tzinfo other than their own EWSTimeZone, so none of them may leave this module."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            naive = datetime(*value.timetuple()[:6], value.microsecond)
            return naive.replace(tzinfo=UTC)
        return datetime.fromtimestamp(value.timestamp(), tz=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def _people(value: object, role: Role) -> list[Participant]:
    entries = value if isinstance(value, list | tuple) else [value] if value is not None else []
    people = []
    for entry in entries:
        address = normalise_address(str(getattr(entry, "email_address", "") or ""))
        if address is None:
            continue
        name = str(getattr(entry, "name", "") or "").strip()
        if name.lower() == address:
            name = ""
        people.append(Participant(address=address, role=role, name=name))
    return people


_ADDRESS_FIELDS: tuple[tuple[str, Role], ...] = (
    ("author", "from"),
    ("sender", "sender"),
    ("reply_to", "reply_to"),
    ("to_recipients", "to"),
    ("cc_recipients", "cc"),
    ("bcc_recipients", "bcc"),
)


def mail_item_from_ews(item: Any, folder: str, *, want_subject: bool) -> MailItem:
    """A `MailItem` from a message's EWS properties (capture levels subject and metadata, and
    messages too large for their MIME), keyed and threaded as the MIME parser would key and
    thread the same email."""
    headers: dict[str, str] = {}
    for header in getattr(item, "headers", None) or ():
        name = str(getattr(header, "name", "") or "").strip().lower()
        if name and name not in headers:
            headers[name] = str(getattr(header, "value", "") or "").strip()[:MAX_HEADER_VALUE]
    participants: list[Participant] = []
    seen: set[tuple[str, str]] = set()
    for attribute, role in _ADDRESS_FIELDS:
        for person in _people(getattr(item, attribute, None), role):
            if (person.role, person.address) not in seen:
                seen.add((person.role, person.address))
                participants.append(person)
    sender = next((p for p in participants if p.role == "from"), None)
    if sender is not None:  # EWS names the sender even when it is the From: keep it once
        participants = [
            p for p in participants if not (p.role == "sender" and p.address == sender.address)
        ]
    raw_id = getattr(item, "message_id", None)
    conversation = getattr(item, "conversation_id", None)
    mail = MailItem(
        message_id=parse_message_id(str(raw_id)) if raw_id else None,
        subject=str(getattr(item, "subject", "") or "").strip() if want_subject else "",
        date=_aware(getattr(item, "datetime_sent", None))
        or _aware(getattr(item, "datetime_received", None)),
        participants=participants,
        provider_id=str(getattr(item, "id", "") or ""),
        folder=folder,
        conversation_id=str(getattr(conversation, "id", "") or "") or None,
        headers={k: v for k, v in headers.items() if k in KEPT_HEADERS},
    )
    in_reply_to = getattr(item, "in_reply_to", None) or headers.get("in-reply-to")
    if in_reply_to:
        mail.in_reply_to = parse_id_list(str(in_reply_to))
    references = getattr(item, "references", None) or headers.get("references")
    if references:
        mail.references = parse_id_list(str(references))
    return mail


def recurrence_rule(recurrence: Any) -> str | None:
    """An RFC 5545 RRULE from an EWS Recurrence (its pattern and range); None when there is
    none or its pattern is one we cannot say (regenerating task patterns)."""
    if recurrence is None or getattr(recurrence, "pattern", None) is None:
        return None
    pattern, boundary = recurrence.pattern, recurrence.boundary
    kind = type(pattern).__name__
    interval = int(getattr(pattern, "interval", 1) or 1)
    parts: list[str]
    if kind == "DailyPattern":
        parts = ["FREQ=DAILY"]
    elif kind == "WeeklyPattern":
        days = [_DAYS[d - 1] for d in getattr(pattern, "weekdays", None) or () if 1 <= d <= 7]
        parts = ["FREQ=WEEKLY"]
        if days:
            parts.append("BYDAY=" + ",".join(days))
        first = getattr(pattern, "first_day_of_week", None)
        if isinstance(first, int) and 1 <= first <= 7:
            parts.append(f"WKST={_DAYS[first - 1]}")
    elif kind == "AbsoluteMonthlyPattern":
        parts = ["FREQ=MONTHLY", f"BYMONTHDAY={int(pattern.day_of_month)}"]
    elif kind == "AbsoluteYearlyPattern":
        parts = [
            "FREQ=YEARLY",
            f"BYMONTH={int(pattern.month)}",
            f"BYMONTHDAY={pattern.day_of_month}",
        ]
        interval = 1
    elif kind in ("RelativeMonthlyPattern", "RelativeYearlyPattern"):
        parts = ["FREQ=MONTHLY" if kind == "RelativeMonthlyPattern" else "FREQ=YEARLY"]
        if kind == "RelativeYearlyPattern":
            parts.append(f"BYMONTH={int(pattern.month)}")
            interval = 1
        index = _POSITIONS.get(int(pattern.week_number), "1")
        weekday = int(pattern.weekday)
        if 1 <= weekday <= 7:
            parts.append(f"BYDAY={index}{_DAYS[weekday - 1]}")
        else:  # Day, Weekday, WeekendDay
            group = {8: _DAYS, 9: _DAYS[:5], 10: _DAYS[5:]}[weekday]
            parts += ["BYDAY=" + ",".join(group), f"BYSETPOS={index}"]
    else:
        return None
    if interval > 1:
        parts.insert(1, f"INTERVAL={interval}")
    boundary_kind = type(boundary).__name__
    if boundary_kind == "NumberedPattern":
        parts.append(f"COUNT={int(boundary.number)}")
    elif boundary_kind == "EndDatePattern" and boundary.end is not None:
        end = boundary.end
        parts.append(f"UNTIL={end.year:04d}{end.month:02d}{end.day:02d}T235959Z")
    return ";".join(parts)


def calendar_item_from_ews(
    item: Any,
    *,
    uid: str,
    owner: str,
    folder: str = CALENDAR_FOLDER,
    occurrence: bool = False,
) -> CalendarItem:
    """A `CalendarItem` from an EWS calendar item: a single appointment or recurring master
    (`uid` from its UID), or one exception of a series (`occurrence`: `uid` the series', keyed
    by its OriginalStart)."""
    all_day = bool(getattr(item, "is_all_day", False))
    start = _aware(getattr(item, "start", None))
    end = _aware(getattr(item, "end", None))
    time_zone: str | None = "UTC"
    zone = getattr(item, "_start_timezone", None)
    zone_name = str(getattr(zone, "ms_id", "") or "")
    if zone_name and start is not None and end is not None and not all_day:
        found = zone_by_name(zone_name)
        if found is not None and found.name:
            start, end, time_zone = start.astimezone(found.tz), end.astimezone(found.tz), found.name
    if all_day:
        start = start.replace(hour=0, minute=0, second=0, tzinfo=UTC) if start else None
        end = end.replace(hour=0, minute=0, second=0, tzinfo=UTC) if end else None
        time_zone = None
    own = str(getattr(item, "my_response_type", "") or "").lower()
    participants = _people(getattr(item, "organizer", None), "organizer")
    organizer = participants[0].address if participants else ""
    attendees = list(getattr(item, "required_attendees", None) or ()) + list(
        getattr(item, "optional_attendees", None) or ()
    )
    for attendee in attendees:  # Resources (rooms, equipment) are not read: not people
        for person in _people(getattr(attendee, "mailbox", None), "attendee"):
            said = str(getattr(attendee, "response_type", "") or "").lower()
            if person.address == owner and own in _RESPONSES:
                said = own  # the owner's own answer is MyResponseType
            if person.address == organizer:
                continue
            participants.append(
                Participant(person.address, "attendee", person.name, _RESPONSES.get(said))
            )
    recurrence_id = None
    recurrence_all_day = False
    if occurrence:
        recurrence_id = _aware(getattr(item, "original_start", None))
        if all_day and recurrence_id is not None:
            recurrence_id = recurrence_id.replace(hour=0, minute=0, second=0)
            recurrence_all_day = True
    exdates: list[datetime] = []
    if not occurrence:  # a series' deleted occurrences, by their original start
        for deleted in getattr(item, "deleted_occurrences", None) or ():
            when = _aware(getattr(deleted, "start", None))
            if when is not None:
                exdates.append(when)
    sensitivity = str(getattr(item, "sensitivity", "") or "").lower()
    return CalendarItem(
        uid=uid,
        method="",
        # The organizer's updates raise AppointmentSequenceNumber (the invites' SEQUENCE);
        # LastModifiedTime, in whole seconds, orders the rest.
        sequence=int(getattr(item, "appointment_sequence_number", 0) or 0),
        dtstamp=_aware(getattr(item, "last_modified_time", None)),
        recurrence_id=recurrence_id,
        summary=str(getattr(item, "subject", "") or ""),
        start=start,
        end=end,
        time_zone=time_zone,
        all_day=all_day,
        location=str(getattr(item, "location", "") or ""),
        status="cancelled" if getattr(item, "is_cancelled", False) else "confirmed",
        rrule=None if occurrence else recurrence_rule(getattr(item, "recurrence", None)),
        exdates=exdates,
        participants=participants,
        provider_id=str(getattr(item, "id", "") or ""),
        folder=folder,
        recurrence_all_day=recurrence_all_day,
        private=sensitivity in ("private", "confidential"),
    )


# --------------------------------------------------------------------------------------------
# The source


@dataclass(frozen=True)
class _Checkpoint:
    """A folder's state: which folder (its id), the phase, the sync state to send next (None:
    start the phase over)."""

    scope: str
    phase: str  # "initial", "poll", "resync"
    state: str | None
    version: int = CHECKPOINT_VERSION

    @classmethod
    def load(cls, state: Mapping[str, object] | None) -> _Checkpoint | None:
        if not state:
            return None
        version = state.get("v")
        if version not in (1, CHECKPOINT_VERSION) or not isinstance(state.get("scope"), str):
            log.warning("unreadable EWS checkpoint; the folder is synchronised afresh")
            return None
        sync_state = state.get("state")
        phase = str(state.get("phase") or "initial")
        return cls(
            str(state["scope"]),
            phase,
            sync_state if isinstance(sync_state, str) and sync_state else None,
            int(version),
        )

    def dump(self) -> dict[str, Any]:
        return {
            "v": CHECKPOINT_VERSION,
            "scope": self.scope,
            "phase": self.phase,
            "state": self.state,
        }


@dataclass
class _Round:
    """What one SyncFolderItems page brought: changed items (with their ids) and removed ids."""

    changed: list[Any]
    removed: list[str]


def _split(changes: Iterable[tuple[str, Any]]) -> _Round:
    changed: list[Any] = []
    removed: list[str] = []
    for kind, item in changes:
        if kind == "delete":
            removed.append(str(item.id))
        elif kind in ("create", "update") and getattr(item, "id", None):
            changed.append(item)
    return _Round(changed, removed)


class EwsSource:
    """Syncs a mailbox's folders (and its calendar) through EWS; see the module docstring."""

    def __init__(self, settings: EwsSettings, *, client: EwsClient | None = None) -> None:
        self.settings = settings
        self.client = client or EwsClient(settings)

    def __enter__(self) -> EwsSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def folders(self) -> list[str]:
        names = [f.name for f in self.settings.folders]
        if self.settings.calendar and self.settings.calendar_id:
            names.append(CALENDAR_FOLDER)
        return names

    def sync_folder(
        self,
        folder: str,
        state: Mapping[str, object] | None,
        known_ids: KnownIds | None = None,
    ) -> Iterator[EwsPage]:
        if folder == CALENDAR_FOLDER and self.settings.calendar and self.settings.calendar_id:
            chosen = EwsFolder(CALENDAR_FOLDER, self.settings.calendar_id)
            yield from self._sync(chosen, state, known_ids, calendar=True)
            return
        found = next((f for f in self.settings.folders if f.name == folder), None)
        if found is None:
            raise PermissionDenied(f"folder {folder!r} is not one this link syncs")
        yield from self._sync(found, state, known_ids, calendar=False)

    def _sync(
        self,
        folder: EwsFolder,
        state: Mapping[str, object] | None,
        known: KnownIds | None,
        *,
        calendar: bool,
    ) -> Iterator[EwsPage]:
        cp = _Checkpoint.load(state)
        validity_changed = cp is not None and cp.scope != folder.id
        if cp is None or validity_changed:
            phase, sync_state = "initial", None
        elif calendar and cp.version < 2:
            # Exceptions were held under their own item ids: a resync holds them under the new
            # ones and lets the old go.
            phase, sync_state = "resync", None
        else:
            phase, sync_state = cp.phase, cp.state  # a resync without a state starts over
        seen = SeenIds() if phase == "resync" else None
        resets = 0
        flag = validity_changed
        what = "the calendar" if calendar else f"folder {folder.name}"
        fields = () if calendar else _SYNC_MAIL_FIELDS
        item_cls = EwsCalendarItem if calendar else EwsMessage
        while True:
            try:
                answer = self.client.sync_page(folder.id, sync_state, fields, item_cls, what)
            except CursorInvalid:
                resets += 1
                if resets > 2:
                    raise
                log.warning(
                    "ews sync state refused; resynchronising", extra={"folder": folder.name}
                )
                phase, sync_state, seen = "resync", None, SeenIds()
                continue
            page = _split(answer.changes)
            if seen is not None:
                seen.add(str(item.id) for item in page.changed)
            resyncing = phase == "resync"
            if answer.last:
                after = _Checkpoint(folder.id, "poll", answer.state)
            else:
                after = _Checkpoint(folder.id, phase, None if resyncing else answer.state)
            resume = _Checkpoint(folder.id, phase, None if resyncing else sync_state)
            if calendar:
                pages = [self._calendar_page(folder, page, after.dump(), known)]
                if seen is not None:  # exceptions are held under their own occurrence ids
                    seen.add(i.provider_id for p in pages for i in p.items if i.provider_id)
            else:
                pages = list(self._mail_pages(folder, page, known, resume.dump(), after.dump()))
            if answer.last and seen is not None and known is not None:
                # The end of a resync: what we hold and the mailbox no longer has is removed.
                gone = [pid for pid in known() if pid not in seen]
                if gone:
                    pages[-1] = replace(pages[-1], state=resume.dump())
                for start in range(0, len(gone), 5000):
                    final = start + 5000 >= len(gone)
                    pages.append(
                        EwsPage(
                            folder.name,
                            [],
                            gone[start : start + 5000],
                            [],
                            after.dump() if final else resume.dump(),
                        )
                    )
            for out in pages:
                if flag:
                    out = replace(out, validity_changed=True)
                    flag = False
                yield out
            if answer.last:
                return
            # (A resync follows the states of its own round; its pages do not commit them.)
            sync_state = answer.state

    # -- mail -------------------------------------------------------------------------------------

    def _mail_pages(
        self,
        folder: EwsFolder,
        page: _Round,
        known: KnownIds | None,
        resume: dict[str, Any],
        after: dict[str, Any],
    ) -> Iterator[EwsPage]:
        """A sync page's work as pages of bounded size: all but the last carry `resume` (the
        same sync page is asked again after a crash), the last carries `after`."""
        held = _held(known, [str(i.id) for i in page.changed]) if page.changed else set()
        fresh = [i for i in page.changed if str(i.id) not in held]
        level = self.settings.capture_level
        since = self.settings.since
        if level == "full":
            # Older than `since`, or too large for MIME inside XML: captured from properties.
            plain = [
                i
                for i in fresh
                if (since is not None and _received(i) < since)
                or int(getattr(i, "size", 0) or 0) > MAX_MIME_BYTES
            ]
            plain_ids = {str(i.id) for i in plain}
            wanted = [i for i in fresh if str(i.id) not in plain_ids]
        else:
            plain, wanted = fresh, []
        items = self._mail_items(folder, plain, want_subject=level == "subject")
        messages: list[RawMessage] = []
        failures: list[tuple[str, str]] = []
        size = 0
        for chunk in _batches(wanted):
            fetched = self.client.get_items(
                [(str(i.id), i.changekey) for i in chunk], ("mime_content",), EwsMessage, "mime"
            )
            for wanted_item, got in zip(chunk, fetched, strict=False):
                provider_id = str(wanted_item.id)
                if isinstance(got, ews_errors.ErrorItemNotFound):
                    continue  # deleted or moved meanwhile: the next page says so
                if isinstance(got, Exception):
                    failures.append((provider_id, f"Exchange could not read it: {got}"[:500]))
                    continue
                raw = got.mime_content
                if not raw:
                    failures.append((provider_id, "Exchange sent no MIME content for it"))
                    continue
                data = raw if isinstance(raw, bytes) else str(raw).encode()
                messages.append(RawMessage(data, folder.name, provider_id))
                size += len(data)
            if size >= BATCH_BYTES:
                yield EwsPage(folder.name, messages, [], failures, resume, items=items)
                messages, failures, items, size = [], [], [], 0
        yield EwsPage(folder.name, messages, page.removed, failures, after, items=items)

    def _mail_items(
        self, folder: EwsFolder, wanted: list[Any], *, want_subject: bool
    ) -> list[MailItem | CalendarItem]:
        found: list[MailItem | CalendarItem] = []
        for start in range(0, len(wanted), BATCH_ITEMS):
            chunk = wanted[start : start + BATCH_ITEMS]
            fetched = self.client.get_items(
                [(str(i.id), i.changekey) for i in chunk], _MAIL_FIELDS, EwsMessage, "message"
            )
            for got in fetched:
                if not isinstance(got, Exception) and got is not None:
                    found.append(mail_item_from_ews(got, folder.name, want_subject=want_subject))
        return found

    # -- calendar ---------------------------------------------------------------------------------

    def _calendar_page(
        self, folder: EwsFolder, page: _Round, after: dict[str, Any], known: KnownIds | None
    ) -> EwsPage:
        """The page's appointments and masters, and each master's exceptions, held under
        `exception_id(master, original start)`. SyncFolderItems reports a deleted series by
        its master's id alone, and a master whose exception went back to normal (or was
        deleted) as an Update: what we hold of a master's exceptions that it no longer has
        is removed with it."""
        owner = self.settings.mailbox.lower()
        items: list[MailItem | CalendarItem] = []
        changed = [(str(i.id), i.changekey) for i in page.changed]
        exceptions: list[tuple[str, str | None]] = []
        series: dict[str, tuple[str, str]] = {}  # occurrence id -> (series UID, held id)
        current: dict[str, set[str]] = {}  # master id -> the held ids of its exceptions
        for start in range(0, len(changed), BATCH_ITEMS):
            fetched = self.client.get_items(
                changed[start : start + BATCH_ITEMS], _CALENDAR_FIELDS, EwsCalendarItem, "event"
            )
            for got in fetched:
                if isinstance(got, Exception) or got is None or not getattr(got, "uid", None):
                    continue  # deleted meanwhile (the next page says so), or not a meeting
                uid = series_uid(str(got.uid))
                items.append(calendar_item_from_ews(got, uid=uid, owner=owner))
                listed = current.setdefault(str(got.id), set())
                for modified in getattr(got, "modified_occurrences", None) or ():
                    held = exception_id(str(got.id), getattr(modified, "original_start", None))
                    if getattr(modified, "id", None) and held is not None:
                        exceptions.append((str(modified.id), modified.changekey))
                        series[str(modified.id)] = (uid, held)
                        listed.add(held)
        for start in range(0, len(exceptions), BATCH_ITEMS):
            fetched = self.client.get_items(
                exceptions[start : start + BATCH_ITEMS], _CALENDAR_FIELDS, EwsCalendarItem, "event"
            )
            for (occurrence_id, _), got in zip(exceptions[start:], fetched, strict=False):
                if isinstance(got, Exception) or got is None:
                    continue
                uid, held = series[occurrence_id]
                event = calendar_item_from_ews(got, uid=uid, owner=owner, occurrence=True)
                items.append(replace(event, provider_id=held))
        removed = list(page.removed)
        if known is not None and (page.removed or current):
            gone = set(page.removed)
            for pid in known():
                master_id, mark, _ = pid.partition(EXCEPTION_MARK)
                if mark and (master_id in gone or pid not in current.get(master_id, {pid})):
                    removed.append(pid)
        return EwsPage(folder.name, [], removed, [], after, items=items)


EXCEPTION_MARK = "#"  # never in an EWS ItemId (base64)


def exception_id(master_id: str, original_start: object) -> str | None:
    """The provider id an exception of a series is held under: its master's id and its
    original start, so the exceptions of a deleted master can be found by its id alone."""
    when = _aware(original_start)
    if when is None:
        return None
    return f"{master_id}{EXCEPTION_MARK}{when:%Y%m%dT%H%M%SZ}"


def _held(known: KnownIds | None, ids: list[str]) -> set[str]:
    """Which of `ids` the pipeline already holds (live) for this folder."""
    if known is None:
        return set()
    among = getattr(known, "among", None)
    if callable(among):
        return set(among(ids))
    wanted = set(ids)
    return {pid for pid in known() if pid in wanted}


def _received(item: Any) -> datetime:
    return _aware(getattr(item, "datetime_received", None)) or datetime.now(UTC)


def _batches(items: list[Any]) -> Iterator[list[Any]]:
    """GetItem batches: at most BATCH_ITEMS items and about BATCH_BYTES of MIME each (a larger
    message alone)."""
    return weighed_batches(
        items,
        lambda item: int(getattr(item, "size", 0) or 0),
        most_weight=BATCH_BYTES,
        most_items=BATCH_ITEMS,
    )


# --------------------------------------------------------------------------------------------
# The link test


@dataclass(frozen=True)
class MailboxCheck:
    """What a link test found: the folders to sync (resolved to their ids), the calendar's id
    (None when not wanted), the server's version (kept, so syncs send no probe), and the EWS
    URL it used."""

    folders: list[EwsFolder]
    calendar_id: str | None
    version: tuple[int, int, int, int]
    api_version: str
    server: str = ""


def resolve_folders(client: EwsClient, names: Sequence[str] | None) -> list[EwsFolder]:
    """The folders to sync: Inbox and Sent Items by default; otherwise each name is a
    distinguished name (inbox, sentitems, drafts...) or a display-name path ("Inbox/Projects")."""
    wanted = list(names) if names else ["inbox", "sentitems"]
    root = client.call("folders", lambda: client.account.root, what="the mailbox's folders")
    found: list[EwsFolder] = []
    for name in wanted:
        parts = [p for p in name.split("/") if p]
        if not parts:
            continue
        cls = WELL_KNOWN.get(parts[0].lower().replace(" ", ""))
        if cls is not None:
            folder = _distinguished(client, root, cls, parts[0])
        else:
            folder = _child(client, root, parts[0], name)
        for part in parts[1:]:
            folder = _child(client, folder, part, name)
        label = name if len(parts) > 1 else str(folder.name)
        found.append(EwsFolder(label, str(folder.id)))
    return list({f.id: f for f in found}.values())


def _distinguished(client: EwsClient, root: Any, cls: Any, name: str) -> Any:
    def get() -> Any:
        return root.get_default_folder(cls)

    return client.call("folders", get, what=f"the {name} folder")


def _child(client: EwsClient, parent: Any, name: str, full: str) -> Any:
    wanted = {FieldPath(field=EwsFolderType.get_field_by_fieldname("name"))}

    def find() -> list[Any]:
        collection = FolderCollection(account=client.account, folders=[parent])
        return list(collection.find_folders(depth="Shallow", additional_fields=wanted))

    for folder in client.call("folders", find, what="the folder list"):
        if isinstance(folder, Exception):
            continue
        if str(folder.name or "").casefold() == name.casefold():
            return folder
    raise PermissionDenied(f"folder {full!r} does not exist in the mailbox")


def check_mailbox(settings: EwsSettings, names: Sequence[str] | None) -> MailboxCheck:
    """Prove the link works before it is saved: the server answers (TLS trusted), the service
    account signs in, it may open the mailbox (impersonation or delegate rights), the folders
    are found, the calendar can be read (unless not wanted). Raises our error kinds with what to
    fix."""
    client = EwsClient(settings)
    try:
        version, api_version = client.version()
        folders = resolve_folders(client, names)
        calendar_id = None
        if settings.calendar:
            root = client.account.root
            calendar_id = str(_distinguished(client, root, Calendar, "calendar").id)
        return MailboxCheck(folders, calendar_id, version, api_version, settings.server)
    finally:
        client.close()
