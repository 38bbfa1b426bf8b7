"""Microsoft Graph source: a Microsoft 365 mailbox's chosen folders and its calendar, through
delta queries, restartable at any page, within Graph's throttling limits.

Why this shape: Exchange Online's only supported way in is Microsoft Graph (EWS is being shut
off, IMAP needs per-mailbox Exchange setup). Graph offers per-folder delta rounds whose state
tokens are opaque URLs, so a folder's checkpoint is the URL to follow next; every step below is
safe to repeat (the pipeline recognises an email it has seen by its identity).

Per-folder state machine; the checkpoint is the state:

    no checkpoint, or another folder id ---------------> INITIAL (validity_changed if one was held)
    INITIAL, POLL: follow `link` (nextLink ... deltaLink) --> each page is committed with the
                   link that follows it; the deltaLink ends the round -> POLL
    410 Gone (syncStateNotFound / resyncRequired) ------> RESYNC: a fresh round from the initial
                   query; ids seen are remembered (a compact digest set) and, when the deltaLink
                   comes, every held id not seen is reported removed; an interrupted RESYNC
                   starts over (its memory of what was seen is gone)

An unchanged folder costs one request: its deltaLink answers with no changes and a new one.

Mail, per delta page (`Prefer: odata.maxpagesize=200`, `Prefer: IdType="ImmutableId"` on every
request, so a message keeps its id when it moves between folders): `@removed` entries are
removed provider ids; the others are new, moved in, or changed (read, flagged). What the
pipeline already holds for this folder (`known_ids.among`) is skipped: a message marked read
costs nothing. What it does not hold:

* capture level "full": the MIME content (`/messages/{id}/$value`), through JSON batching, 20
  per request; a message with attachments is streamed on its own (capped like files.py) rather
  than inflated in a batch's JSON. Parsed by the same MIME parser as IMAP and imports, so one
  email seen through Graph, IMAP, the drop address or a file is one activity (Message-ID).
* capture levels "subject" and "metadata": a `MailItem` straight from the delta JSON
  (internetMessageId, conversationId, addresses, dates, subject) -- no request per message.
  Capture rules need List-Id, Auto-Submitted, Precedence, Sensitivity..., which only the MIME or
  `internetMessageHeaders` carry: at these levels the delta's $select includes
  `internetMessageHeaders` (fatter pages, no extra request); at "full" the MIME has them.
* messages older than `since` get no MIME request: a JSON item lets capture record them as
  skipped ("older_than_since").

Calendar: `calendarView/delta` over a window (a year back, a year ahead). The window is fixed
inside the state tokens, so when it has drifted a month it is moved by a new round (a planned
resync: `validity_changed`, and every event seen again is recognised by its meeting key). The
view holds single instances, occurrences and exceptions, never series masters: a series is keyed
by its master's iCalUId (GET /events/{seriesMasterId}, batched), one occurrence by the series'
UID and its original start (Graph's own iCalUId differs per occurrence, see
`server.crm.meetings.meeting_key`). Plain occurrences add nothing past their series.

Faults (Graph's throttling guidance): 429, 503 and 504 are retried after their Retry-After, or
with exponential backoff and jitter when there is none; a batch item that answers 429 is retried
on its own after its own Retry-After, never the whole batch; a wait longer than a minute, or too
many attempts, ends the sync with `Throttled` and the worker comes back later (the pages
committed so far stay). A 401 gets one token refresh, then the link needs attention. Requests
per mailbox are kept under 9,000 per 10 minutes, batch items counted one by one as Graph counts
them (its limit: 10,000 per 10 minutes per app and mailbox), so an initial sync of more than
9,000 messages spans several 10-minute windows, the worker resuming each time; the client sends
one request at a time, and Graph runs a batch's items 4 at a time.

`classify_graph_error` is the one pure function turning Graph's answers into our error kinds.

Server quirks handled here (the emulator, tests/emulators/graph.py, reproduces each):
- a replayed nextLink returns the same page (a crash between a page and its commit is safe);
- the deltaLink comes only with a round's last page;
- 410 with a Location header holding the initial query: we build our own initial query;
- per-item 429 inside $batch, items answered in any order, non-JSON bodies base64-encoded;
- 503 without Retry-After;
- fractional Retry-After values are read as such (Graph sends whole seconds; the emulator's are
  scaled down).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import requests
import urllib3

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
from server.mail_ingest.mime_fields import (
    normalise_address,
    parse_id_list,
    parse_message_id,
)
from server.mail_ingest.oauth import IdentityEndpoints, https_session
from server.mail_ingest.prefetch import in_order
from server.mail_ingest.sources.files import MAX_MESSAGE_BYTES, RawMessage

if TYPE_CHECKING:
    from server.mail_ingest.oauth import TokenSource

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://graph.microsoft.com/v1.0"
CHECKPOINT_VERSION = 1
PAGE_SIZE = 200  # messages per delta page (Prefer: odata.maxpagesize): list pages stay <1%
BATCH_SIZE = 20  # requests per $batch (Graph's limit)
# Messages with attachments are fetched one request each, this many at once: Outlook's limit of
# concurrent requests per app and mailbox ("Microsoft Graph service-specific throttling limits").
MAILBOX_CONCURRENCY = 4
BATCH_BYTES = 8 * 1024 * 1024  # a page's message bytes stay under this, as IMAP's do
TOO_LARGE_KEEP = 1024 * 1024
MAX_ATTEMPTS = 8  # per request (or batch item) before giving the problem to the worker
MAX_INLINE_WAIT = 60.0  # seconds: a longer Retry-After ends the sync; the worker comes back
BACKOFF_BASE = (
    0.25  # seconds; doubled per attempt, with jitter (Graph sends 503s without Retry-After)
)
BACKOFF_CAP = 30.0
# Requests per RATE_WINDOW per mailbox, batch items counted one by one as Graph counts them:
# under Graph's 10,000 per 10 minutes per app and mailbox.
RATE_LIMIT = 9_000
RATE_WINDOW = 600.0
MAX_ERROR_BODY = 64 * 1024
CALENDAR_FOLDER = "Calendar"
CALENDAR_BACK = timedelta(days=365)
CALENDAR_AHEAD = timedelta(days=365)
WINDOW_DRIFT = timedelta(days=30)  # the window moves when it is this far behind
RETRYABLE = frozenset({429, 500, 502, 503, 504})
PREFER = 'IdType="ImmutableId", odata.maxpagesize={size}'
# What a delta page carries of each message: enough to key, thread, route and decide on it.
MAIL_SELECT = (
    "internetMessageId",
    "conversationId",
    "subject",
    "from",
    "sender",
    "replyTo",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "receivedDateTime",
    "sentDateTime",
    "parentFolderId",
    "hasAttachments",
)
HEADERS_FIELD = "internetMessageHeaders"
MAX_HEADER_VALUE = 2000
_RESPONSES: dict[str, Response] = {
    "accepted": "accepted",
    "tentativelyaccepted": "tentative",
    "declined": "declined",
    "notresponded": "needs_action",
    "none": "needs_action",
}
_WEEKDAYS = {
    "monday": "MO",
    "tuesday": "TU",
    "wednesday": "WE",
    "thursday": "TH",
    "friday": "FR",
    "saturday": "SA",
    "sunday": "SU",
}
_ADDRESS_FIELDS: tuple[tuple[str, Role], ...] = (
    ("from", "from"),
    ("sender", "sender"),
    ("replyTo", "reply_to"),
    ("toRecipients", "to"),
    ("ccRecipients", "cc"),
    ("bccRecipients", "bcc"),
)
_INDEX = {"first": "1", "second": "2", "third": "3", "fourth": "4", "last": "-1"}


@dataclass(frozen=True)
class GraphFolder:
    """A mail folder to sync: the name it is known by (checkpoints, observations) and its id
    (folder ids never change in Exchange)."""

    name: str
    id: str


@dataclass(frozen=True)
class GraphSettings:
    """How to reach one mailbox through Graph. `mailbox` is its address (the owner, or a shared
    mailbox's address), used as /users/{mailbox}."""

    mailbox: str
    token_source: TokenSource = field(repr=False, compare=False)
    folders: tuple[GraphFolder, ...]
    api_url: str = DEFAULT_API_URL
    calendar: bool = True
    capture_level: str = "full"
    since: datetime | None = None
    ca_bundle: Path | None = None  # extra trusted CAs (PEM), on top of the system's
    timeout: float = 60.0
    page_size: int = PAGE_SIZE
    attempts: int = MAX_ATTEMPTS  # per request; a link's test, with a person waiting, asks fewer


@dataclass(frozen=True, slots=True)
class GraphPage:
    """One step of a folder's sync, committed with `state`: `messages` (MIME) and `items`
    (built from JSON) to capture, `removed` provider ids to forget, `failures` as
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
class GraphFailure:
    """What Graph answered (or why nothing came back), as raw facts for the classifier."""

    status: int | None = None
    code: str = ""
    message: str = ""
    retry_after: float | None = None
    exception: BaseException | None = None
    mailbox: str = ""
    what: str = ""  # "the Inbox folder", "message AAMk...": what was asked for


def classify_graph_error(failure: GraphFailure) -> SourceError:
    """Map Graph's answer (status, error code and message) or a network failure to one of our
    error kinds, with what to do next (pure; table-tested)."""
    where = failure.mailbox or "the mailbox"
    said = f' (Graph said: "{failure.code}: {failure.message[:300]}")' if failure.code else ""
    if failure.exception is not None:
        return _network_failure(failure.exception)
    status, code = failure.status, failure.code.lower()
    if status == 401:
        return AuthExpired(
            f"Microsoft Graph refused the access token for {where}{said}; check the app "
            "registration (or sign in again for a delegated link), then resume the link"
        )
    if status == 403:
        if "accesspolicy" in failure.message.replace(" ", "").lower() or "raop" in code:
            return PermissionDenied(
                f"an Exchange Online application access policy (or RBAC for Applications scope) "
                f"does not include {where}: add the mailbox to the app's policy group or "
                f"management scope{said}"
            )
        return PermissionDenied(
            f"the app may not read {where}: it needs the application permissions Mail.Read and "
            "Calendars.Read of Microsoft Graph with admin consent (API permissions > Grant admin "
            f"consent), or for a delegated link FullAccess on that mailbox{said}"
        )
    if status == 404:
        if code in ("errorinvaliduser", "resourcenotfound", "request_resourcenotfound"):
            return PermissionDenied(
                f"there is no mailbox {where} in the app's tenant: check the address and the "
                f"tenant id{said}"
            )
        if code == "mailboxnotenabledforrestapi":
            return PermissionDenied(
                f"{where} has no Exchange Online mailbox Graph can read (unlicensed, inactive or "
                f"on premises){said}"
            )
        return PermissionDenied(f"{failure.what or 'what was asked for'} no longer exists{said}")
    if status == 410:
        return CursorInvalid(f"the sync state of {failure.what or where} expired{said}")
    if status is not None and status in RETRYABLE:
        if failure.retry_after is not None or status == 429:
            return Throttled(
                f"Microsoft Graph asks Rapport to slow down for {where} (HTTP {status}){said}",
                failure.retry_after,
            )
        return Temporary(f"Microsoft Graph is not available right now (HTTP {status}){said}")
    if status is not None and 400 <= status < 500:
        # A refused request will be refused again: the admin (or a bug report) must look.
        return PermissionDenied(
            f"Microsoft Graph refused a request for {where} (HTTP {status}){said}"
        )
    return Temporary(f"Microsoft Graph gave no usable answer (HTTP {status}){said}")


def _network_failure(exc: BaseException) -> SourceError:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    text = str(exc)[:200]
    if any("CERTIFICATE_VERIFY_FAILED" in str(e) for e in chain):
        return Temporary(
            f"the TLS certificate of Microsoft Graph is not trusted ({text}); for a private CA "
            "set RAPPORT_CA_BUNDLE to its certificate (PEM)"
        )
    if any(isinstance(e, requests.Timeout | TimeoutError) for e in chain):
        return Temporary("Microsoft Graph did not answer in time")
    return Temporary(f"cannot reach Microsoft Graph ({text}); check RAPPORT_GRAPH_API_URL")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds (fractions read too) or an
    HTTP date (RFC 9110 section 10.2.3); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None  # NaN is no answer


# --------------------------------------------------------------------------------------------
# The HTTP client


class _Budget:
    """Requests sent per mailbox in the last RATE_WINDOW seconds, shared by the process (the
    sync and a test of one mailbox count against one Graph limit)."""

    def __init__(self) -> None:
        self._sent: dict[str, deque[tuple[float, int]]] = {}
        self._totals: Counter[str] = Counter()
        self._lock = threading.Lock()

    def wait_time(self, key: str, now: float, count: int = 1) -> float:
        """0 (and the requests are counted as sent now), or how long to wait first."""
        with self._lock:
            sent = self._sent.setdefault(key, deque())
            while sent and sent[0][0] <= now - RATE_WINDOW:
                self._totals[key] -= sent.popleft()[1]
            if self._totals[key] + count <= RATE_LIMIT:
                sent.append((now, count))
                self._totals[key] += count
                return 0.0
            excess = self._totals[key] + count - RATE_LIMIT
            for at, sent_then in sent:
                excess -= sent_then
                if excess <= 0:
                    return at + RATE_WINDOW - now
            return RATE_WINDOW


_budget = _Budget()


@dataclass
class ItemAnswer:
    """One batch item's outcome: its body (bytes for MIME, a dict for JSON) or its error."""

    body: bytes | dict[str, Any] | None = None
    error: SourceError | None = None
    status: int = 200


class GraphClient:
    """Graph over one HTTPS session (environment ignored, CAs as configured), with the
    retries, token refresh and pacing described in the module docstring. `requests` counts the
    requests sent by kind (retries included)."""

    def __init__(
        self,
        settings: GraphSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.base = settings.api_url.rstrip("/")
        self.session = https_session(
            IdentityEndpoints(ca_bundle=settings.ca_bundle, timeout=settings.timeout)
        )
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.requests: Counter[str] = Counter()
        # Messages with attachments are fetched several at once: counts and the token are shared.
        self._counting = threading.Lock()
        self.prefer = PREFER.format(size=settings.page_size)
        self._token: str | None = None
        self._budget_key = f"{urlsplit(self.base).netloc}|{settings.mailbox.lower()}"

    def close(self) -> None:
        self.session.close()

    # -- urls ---------------------------------------------------------------------------------

    def user_path(self, *parts: str) -> str:
        """/users/{mailbox}/... with each part quoted (ids hold '/', '+' and '=')."""
        quoted = "/".join(quote(p, safe="") for p in parts)
        return f"/users/{quote(self.settings.mailbox, safe='@')}/{quoted}"

    def url(self, path: str) -> str:
        return self.base + path

    # -- requests -------------------------------------------------------------------------------

    def _count(self, kind: str) -> None:
        with self._counting:
            self.requests[kind] += 1

    def _access(self, *, refused: str | None = None) -> str:
        """The access token; a new one when `refused` (the token a 401 answered) is still the
        one in hand. Requests sent at once that all meet the expiry ask for one new token."""
        with self._counting:
            if self._token is None or (refused is not None and refused == self._token):
                self._token = self.settings.token_source.token(force_refresh=refused is not None)
            return self._token

    def _pace(self, count: int = 1) -> None:
        """Wait until `count` more requests fit the mailbox's budget."""
        while True:
            wait = _budget.wait_time(self._budget_key, time.monotonic(), count)
            if wait <= 0:
                return
            if wait > MAX_INLINE_WAIT:
                raise Throttled(
                    f"Rapport sent {RATE_LIMIT} requests for {self.settings.mailbox} in 10 "
                    "minutes (Graph allows 10,000); it goes on when the budget allows",
                    wait,
                )
            self.sleep(wait)

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter, for answers without Retry-After."""
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2.0**attempt)
        return ceiling * self.rng.uniform(0.5, 1.0)

    def send(
        self,
        method: str,
        url: str,
        kind: str,
        *,
        body: Mapping[str, Any] | None = None,
        stream: bool = False,
        what: str = "",
        accept: Collection[int] = (),
    ) -> requests.Response:
        """One request, retried as the module docstring says; a 2xx response (or one whose
        status is in `accept`, e.g. 404 for a subscription that is gone), or a SourceError
        (CursorInvalid for 410)."""
        attempt = 0
        refreshed = False
        items = len(body.get("requests") or ()) if body is not None else 0
        while True:
            self._pace(max(1, items))
            token = self._access()
            headers = {
                "Authorization": f"Bearer {token}",
                "Prefer": self.prefer,
                "Accept": "application/json",
            }
            try:
                response: requests.Response = self.session.request(
                    method, url, headers=headers, json=body, stream=stream, allow_redirects=False
                )
            except requests.RequestException as exc:
                self._count(kind)
                error = classify_graph_error(GraphFailure(exception=exc))
                attempt += 1
                if attempt >= self.settings.attempts:
                    raise error from exc
                self.sleep(self.backoff(attempt))
                continue
            self._count(kind)
            status = response.status_code
            if 200 <= status < 300 or status in accept:
                return response
            failure = self._failure(response, what)
            response.close()
            if status == 401 and not refreshed:
                refreshed = True
                self._access(refused=token)
                continue
            if status in RETRYABLE:
                wait = (
                    failure.retry_after
                    if failure.retry_after is not None
                    else self.backoff(attempt)
                )
                attempt += 1
                if attempt >= self.settings.attempts or wait > MAX_INLINE_WAIT:
                    raise classify_graph_error(failure)
                log.info(
                    "graph asked to wait",
                    extra={"status": status, "wait": round(wait, 3), "kind": kind},
                )
                self.sleep(wait)
                continue
            raise classify_graph_error(failure)

    def get_json(self, url: str, kind: str, *, what: str = "") -> dict[str, Any]:
        with self.send("GET", url, kind, what=what) as response:
            data = _read_json(response, what or kind)
        if not isinstance(data, dict):
            raise Temporary(f"Microsoft Graph answered {what or kind} with something not JSON")
        return data

    def get_value(self, path: str, kind: str = "mime", *, what: str = "") -> tuple[bytes, bool]:
        """A message's MIME content, streamed and capped (MAX_MESSAGE_BYTES; past it the first
        megabyte, flagged too large)."""
        with self.send("GET", self.url(path), kind, stream=True, what=what) as response:
            try:
                data = response.raw.read(MAX_MESSAGE_BYTES + 1, decode_content=True)
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise _network_failure(exc) from exc
        if len(data) > MAX_MESSAGE_BYTES:
            return data[:TOO_LARGE_KEEP], True
        return data, False

    def _failure(self, response: requests.Response, what: str) -> GraphFailure:
        code = message = ""
        try:
            raw = b"".join(itertools.islice(response.iter_content(8192), MAX_ERROR_BODY // 8192))
            error = json.loads(raw or b"{}").get("error") or {}
            code, message = str(error.get("code") or ""), str(error.get("message") or "")
        except (ValueError, AttributeError, requests.RequestException, OSError):
            pass
        return GraphFailure(
            response.status_code,
            code,
            message,
            parse_retry_after(response.headers.get("Retry-After")),
            mailbox=self.settings.mailbox,
            what=what,
        )

    def batch_get(self, paths: Sequence[str], kind: str) -> dict[str, ItemAnswer]:
        """GET every path through JSON batching, BATCH_SIZE per request; each item throttled
        (429) or failing temporarily is retried on its own after its own Retry-After (or
        backoff). The answers by path; an item's lasting failure is in its `error`."""
        pending: dict[str, str] = {str(n): path for n, path in enumerate(dict.fromkeys(paths))}
        answers: dict[str, ItemAnswer] = {}
        attempts: Counter[str] = Counter()
        not_before: dict[str, float] = {}
        refreshed = False
        while pending:
            chunk = list(pending.items())[:BATCH_SIZE]
            due = max((not_before.get(key, 0.0) for key, _ in chunk), default=0.0)
            wait = due - time.monotonic()
            if wait > 0:
                self.sleep(wait)
            body = {
                "requests": [
                    {"id": key, "method": "GET", "url": path, "headers": {"Prefer": self.prefer}}
                    for key, path in chunk
                ]
            }
            used = self._access()  # the token this batch goes with (send asks the same)
            with self.send("POST", self.url("/$batch"), "batch", body=body) as response:
                data = _read_json(response, "a $batch request")
            responses = data.get("responses") if isinstance(data, dict) else None
            if not isinstance(responses, list):
                raise Temporary("Microsoft Graph answered a $batch request without responses")
            seen: set[str] = set()
            unauthorised = False
            for item in responses:
                key = str(item.get("id"))
                if key not in pending or key in seen:
                    continue
                seen.add(key)
                status = int(item.get("status") or 0)
                headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
                if 200 <= status < 300:
                    answers[pending.pop(key)] = ItemAnswer(_item_body(item, headers), None, status)
                    continue
                error = item.get("body") if isinstance(item.get("body"), dict) else {}
                details = (error or {}).get("error") or {}
                failure = GraphFailure(
                    status,
                    str(details.get("code") or ""),
                    str(details.get("message") or ""),
                    parse_retry_after(headers.get("retry-after")),
                    mailbox=self.settings.mailbox,
                    what=pending[key],
                )
                if status == 401:
                    unauthorised = True
                    if refreshed:
                        raise classify_graph_error(failure)
                    continue
                if status in RETRYABLE:
                    wait = (
                        failure.retry_after
                        if failure.retry_after is not None
                        else self.backoff(attempts[key])
                    )
                    attempts[key] += 1
                    if attempts[key] >= self.settings.attempts or wait > MAX_INLINE_WAIT:
                        raise classify_graph_error(failure)
                    not_before[key] = time.monotonic() + wait
                    continue
                answers[pending.pop(key)] = ItemAnswer(None, classify_graph_error(failure), status)
            if unauthorised:
                refreshed = True
                self._access(refused=used)
            for key, _ in chunk:  # an item the answer left out is asked again
                if key in pending and key not in seen:
                    attempts[key] += 1
                    if attempts[key] >= self.settings.attempts:
                        raise Temporary("Microsoft Graph keeps leaving requests out of $batch")
        return answers


def _read_json(response: requests.Response, what: str) -> Any:
    """A response's JSON; a body cut off or not JSON is a temporary failure."""
    try:
        return response.json()
    except ValueError:  # requests' JSONDecodeError included
        raise Temporary(f"Microsoft Graph answered {what} with something not JSON") from None
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise _network_failure(exc) from exc


def _item_body(item: Mapping[str, Any], headers: Mapping[str, str]) -> bytes | dict[str, Any]:
    """A batch item's body: JSON as it is; anything else (a MIME message) comes base64-encoded."""
    body = item.get("body")
    if isinstance(body, dict):
        return body
    if isinstance(body, str):
        if headers.get("content-type", "").startswith("application/json"):
            try:
                parsed = json.loads(body)
                if isinstance(parsed, dict):
                    return parsed
            except ValueError:
                pass
        try:
            return base64.b64decode(body, validate=False)
        except ValueError:
            return body.encode("utf-8")
    return b""


# --------------------------------------------------------------------------------------------
# JSON -> items


def _stamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _people(value: object, role: Role) -> list[Participant]:
    entries = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    people = []
    for entry in entries:
        address = (entry or {}).get("emailAddress") or {}
        normalised = normalise_address(str(address.get("address") or ""))
        if normalised is None:
            continue
        name = str(address.get("name") or "").strip()
        if name.lower() == normalised:
            name = ""
        people.append(Participant(address=normalised, role=role, name=name))
    return people


def mail_item_from_json(data: Mapping[str, Any], folder: str, *, want_subject: bool) -> MailItem:
    """A `MailItem` from a delta page's message JSON (capture levels subject and metadata),
    keyed and threaded as the MIME parser would key and thread the same email."""
    headers: dict[str, str] = {}
    for header in data.get(HEADERS_FIELD) or ():
        name = str((header or {}).get("name") or "").strip().lower()
        if name and name not in headers:
            headers[name] = str(header.get("value") or "").strip()[:MAX_HEADER_VALUE]
    participants: list[Participant] = []
    seen: set[tuple[str, str]] = set()
    for key, role in _ADDRESS_FIELDS:
        for person in _people(data.get(key), role):
            if (person.role, person.address) not in seen:
                seen.add((person.role, person.address))
                participants.append(person)
    sender = next((p for p in participants if p.role == "from"), None)
    if sender is not None:  # Graph names the sender even when it is the From: keep it once
        participants = [
            p for p in participants if not (p.role == "sender" and p.address == sender.address)
        ]
    raw_id = data.get("internetMessageId")
    item = MailItem(
        message_id=parse_message_id(str(raw_id)) if raw_id else None,
        subject=str(data.get("subject") or "").strip() if want_subject else "",
        date=_stamp(data.get("sentDateTime")) or _stamp(data.get("receivedDateTime")),
        participants=participants,
        provider_id=str(data.get("id") or ""),
        folder=folder,
        conversation_id=str(data.get("conversationId") or "") or None,
        headers={k: v for k, v in headers.items() if k in KEPT_HEADERS},
    )
    if headers.get("in-reply-to"):
        item.in_reply_to = parse_id_list(headers["in-reply-to"])
    if headers.get("references"):
        item.references = parse_id_list(headers["references"])
    return item


def _graph_time(value: object) -> tuple[datetime | None, str | None]:
    """A dateTimeTimeZone as an aware datetime (Graph answers in UTC unless asked otherwise)."""
    if not isinstance(value, Mapping):
        return None, None
    text = str(value.get("dateTime") or "")
    if not text:
        return None, None
    head = text.partition(".")[0]  # Graph's 7-digit fractions: not needed
    try:
        when = datetime.fromisoformat(head)
    except ValueError:
        return None, None
    zone = str(value.get("timeZone") or "UTC")
    if when.tzinfo is None:
        found = zone_by_name(zone)
        when = when.replace(tzinfo=found.tz if found is not None else UTC)
    return when, zone


def recurrence_rule(recurrence: Mapping[str, Any] | None) -> str | None:
    """An RFC 5545 RRULE from Graph's patternedRecurrence ("patternedRecurrence resource
    type"); None when there is none or its pattern is unknown."""
    if not recurrence:
        return None
    pattern = recurrence.get("pattern") or {}
    limits = recurrence.get("range") or {}
    kind = str(pattern.get("type") or "")
    interval = int(pattern.get("interval") or 1)
    days = [_WEEKDAYS[d.lower()] for d in pattern.get("daysOfWeek") or () if d.lower() in _WEEKDAYS]
    parts: list[str]
    if kind == "daily":
        parts = ["FREQ=DAILY"]
    elif kind == "weekly":
        parts = ["FREQ=WEEKLY"]
        if days:
            parts.append("BYDAY=" + ",".join(days))
        first = str(pattern.get("firstDayOfWeek") or "").lower()
        if first in _WEEKDAYS:
            parts.append(f"WKST={_WEEKDAYS[first]}")
    elif kind == "absoluteMonthly":
        parts = ["FREQ=MONTHLY", f"BYMONTHDAY={int(pattern.get('dayOfMonth') or 1)}"]
    elif kind in ("relativeMonthly", "relativeYearly"):
        parts = ["FREQ=MONTHLY" if kind == "relativeMonthly" else "FREQ=YEARLY"]
        if kind == "relativeYearly":
            parts.append(f"BYMONTH={int(pattern.get('month') or 1)}")
        index = _INDEX.get(str(pattern.get("index") or "first").lower(), "1")
        if len(days) == 1:
            parts.append(f"BYDAY={index}{days[0]}")
        elif days:
            parts += ["BYDAY=" + ",".join(days), f"BYSETPOS={index}"]
    elif kind == "absoluteYearly":
        parts = [
            "FREQ=YEARLY",
            f"BYMONTH={int(pattern.get('month') or 1)}",
            f"BYMONTHDAY={int(pattern.get('dayOfMonth') or 1)}",
        ]
    else:
        return None
    if interval > 1:
        parts.insert(1, f"INTERVAL={interval}")
    if limits.get("type") == "numbered" and limits.get("numberOfOccurrences"):
        parts.append(f"COUNT={int(limits['numberOfOccurrences'])}")
    elif limits.get("type") == "endDate" and limits.get("endDate"):
        end = str(limits["endDate"]).replace("-", "")[:8]
        parts.append(f"UNTIL={end}T235959Z")
    return ";".join(parts)


_GOID_PREFIX = bytes.fromhex("040000008200E00074C5B7101A82E008")
_VCAL_UID = b"vCal-Uid\x01\x00\x00\x00"


def series_uid(ical_uid: str) -> str:
    """The UID an invite for this event carries, from Graph's iCalUId ([MS-OXOCAL] 2.2.1.27,
    PidLidGlobalObjectId, in hex): a UID made elsewhere (Google, Apple) is wrapped after
    "vCal-Uid" and comes out as it was; an Exchange one is the GlobalObjectId with the
    occurrence's date (bytes 16-19) zeroed; anything else is kept as it is."""
    try:
        raw = bytes.fromhex(ical_uid)
    except ValueError:
        return ical_uid
    if len(raw) < 40 or not raw.startswith(_GOID_PREFIX):
        return ical_uid
    size = int.from_bytes(raw[36:40], "little")
    data = raw[40 : 40 + size]
    if data.startswith(_VCAL_UID):
        embedded = data[len(_VCAL_UID) :].split(b"\x00", 1)[0]
        try:
            return embedded.decode("utf-8") or ical_uid
        except UnicodeDecodeError:
            return ical_uid
    return (raw[:16] + bytes(4) + raw[20:]).hex().upper()


def calendar_item_from_json(
    data: Mapping[str, Any],
    *,
    uid: str,
    owner: str,
    folder: str = CALENDAR_FOLDER,
    occurrence: bool = False,
) -> CalendarItem:
    """A `CalendarItem` from an event's JSON: a single instance or series master (`uid` its
    iCalUId), or one exception of a series (`occurrence`: `uid` the series', keyed by the
    original start)."""
    start, zone = _graph_time(data.get("start"))
    end, _ = _graph_time(data.get("end"))
    all_day = bool(data.get("isAllDay"))
    time_zone: str | None = "UTC"
    original_zone = str(data.get("originalStartTimeZone") or "")
    if original_zone and start is not None and end is not None and not all_day:
        found = zone_by_name(original_zone)
        if found is not None and found.name:
            start, end, time_zone = start.astimezone(found.tz), end.astimezone(found.tz), found.name
    if all_day:
        start = start.replace(hour=0, minute=0, second=0, tzinfo=UTC) if start else None
        end = end.replace(hour=0, minute=0, second=0, tzinfo=UTC) if end else None
        time_zone = None
    own = str((data.get("responseStatus") or {}).get("response") or "").lower()
    participants = _people(data.get("organizer"), "organizer")
    organizer = participants[0].address if participants else ""
    for attendee in data.get("attendees") or ():
        if str(attendee.get("type") or "").lower() == "resource":
            continue  # rooms and equipment are not people
        for person in _people(attendee, "attendee"):
            said = str((attendee.get("status") or {}).get("response") or "").lower()
            if person.address == owner and own in _RESPONSES:
                said = own  # the owner's own answer is in responseStatus, not in the list
            if person.address == organizer:
                continue
            participants.append(
                Participant(person.address, "attendee", person.name, _RESPONSES.get(said))
            )
    online = data.get("onlineMeeting") or {}
    recurrence_id = None
    recurrence_all_day = False
    if occurrence:
        recurrence_id = _stamp(data.get("originalStart"))
        if all_day and recurrence_id is not None:
            recurrence_id = recurrence_id.replace(hour=0, minute=0, second=0)
            recurrence_all_day = True
    sensitivity = str(data.get("sensitivity") or "").lower()
    return CalendarItem(
        uid=uid,
        method="",
        dtstamp=_stamp(data.get("lastModifiedDateTime")),
        recurrence_id=recurrence_id,
        summary=str(data.get("subject") or ""),
        start=start,
        end=end,
        time_zone=time_zone if zone is not None else None,
        all_day=all_day,
        location=str((data.get("location") or {}).get("displayName") or ""),
        online_meeting_url=str(online.get("joinUrl") or data.get("onlineMeetingUrl") or ""),
        status="cancelled" if data.get("isCancelled") else "confirmed",
        rrule=None if occurrence else recurrence_rule(data.get("recurrence")),
        participants=participants,
        description=str(data.get("bodyPreview") or ""),
        provider_id=str(data.get("id") or ""),
        folder=folder,
        recurrence_all_day=recurrence_all_day,
        private=sensitivity in ("private", "confidential"),
    )


# --------------------------------------------------------------------------------------------
# The source


@dataclass(frozen=True)
class _Checkpoint:
    """A folder's state: which folder (id, or the calendar window), the phase, the link to
    follow next (nextLink mid-round, deltaLink between rounds; None: start the phase over)."""

    scope: str
    phase: str  # "initial", "poll", "resync"
    link: str | None

    @classmethod
    def load(cls, state: Mapping[str, object] | None) -> _Checkpoint | None:
        if not state:
            return None
        if state.get("v") != CHECKPOINT_VERSION or not isinstance(state.get("scope"), str):
            log.warning("unreadable Graph checkpoint; the folder is synchronised afresh")
            return None
        link = state.get("link")
        phase = str(state.get("phase") or "initial")
        return cls(str(state["scope"]), phase, link if isinstance(link, str) and link else None)

    def dump(self) -> dict[str, Any]:
        return {
            "v": CHECKPOINT_VERSION,
            "scope": self.scope,
            "phase": self.phase,
            "link": self.link,
        }


class SeenIds:
    """Provider ids seen during a resync, as 8-byte digests (about 60 bytes a message)."""

    def __init__(self) -> None:
        self._digests: set[int] = set()

    @staticmethod
    def _digest(value: str) -> int:
        return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")

    def add(self, values: Iterable[str]) -> None:
        self._digests.update(self._digest(v) for v in values)

    def __contains__(self, value: str) -> bool:
        return self._digest(value) in self._digests


KnownIds = Callable[[], Iterable[str]]


class GraphSource:
    """Syncs a mailbox's folders (and its calendar) through Graph; see the module docstring."""

    def __init__(self, settings: GraphSettings, *, client: GraphClient | None = None) -> None:
        self.settings = settings
        self.client = client or GraphClient(settings)
        self._masters: dict[str, str | None] = {}  # series master id -> its UID (this run)

    def __enter__(self) -> GraphSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def folders(self) -> list[str]:
        names = [f.name for f in self.settings.folders]
        return [*names, CALENDAR_FOLDER] if self.settings.calendar else names

    def sync_folder(
        self,
        folder: str,
        state: Mapping[str, object] | None,
        known_ids: KnownIds | None = None,
    ) -> Iterator[GraphPage]:
        if folder == CALENDAR_FOLDER and self.settings.calendar:
            yield from self._sync_calendar(state)
            return
        chosen = next((f for f in self.settings.folders if f.name == folder), None)
        if chosen is None:
            raise PermissionDenied(f"folder {folder!r} is not one this link syncs")
        yield from self._sync_mail(chosen, state, known_ids)

    # -- mail -------------------------------------------------------------------------------------

    def _initial_mail_url(self, folder: GraphFolder) -> str:
        select = list(MAIL_SELECT)
        if self.settings.capture_level != "full":
            select.append(HEADERS_FIELD)
        path = self.client.user_path("mailFolders", folder.id, "messages", "delta")
        return self.client.url(f"{path}?$select={','.join(select)}")

    def _sync_mail(
        self, folder: GraphFolder, state: Mapping[str, object] | None, known: KnownIds | None
    ) -> Iterator[GraphPage]:
        cp = _Checkpoint.load(state)
        validity_changed = cp is not None and cp.scope != folder.id
        initial = self._initial_mail_url(folder)
        if cp is None or validity_changed:
            phase, url = "initial", initial
        elif cp.link is None:  # an interrupted resync starts over
            phase, url = cp.phase, initial
        else:
            phase, url = cp.phase, cp.link
        seen = SeenIds() if phase == "resync" else None
        resets = 0
        flag = validity_changed
        what = f"folder {folder.name}"
        while True:
            try:
                body = self.client.get_json(url, "delta", what=what)
            except CursorInvalid:
                resets += 1
                if resets > 2:
                    raise
                log.warning(
                    "graph delta state gone; resynchronising", extra={"folder": folder.name}
                )
                phase, url, seen = "resync", initial, SeenIds()
                continue
            next_link = body.get("@odata.nextLink")
            delta_link = body.get("@odata.deltaLink")
            if not isinstance(next_link, str) and not isinstance(delta_link, str):
                raise Temporary(f"Microsoft Graph ended a delta page of {what} without a link")
            removed, changed = _split(body.get("value"))
            if seen is not None:
                seen.add(str(m["id"]) for m in changed)
            if isinstance(next_link, str):
                after = _Checkpoint(folder.id, phase, None if phase == "resync" else next_link)
            else:
                after = _Checkpoint(folder.id, "poll", str(delta_link))
            resume = _Checkpoint(folder.id, phase, None if phase == "resync" else url)
            pages = list(
                self._mail_pages(folder, changed, removed, known, resume.dump(), after.dump())
            )
            if isinstance(delta_link, str) and seen is not None and known is not None:
                # The end of a resync: what we hold and the mailbox no longer has is removed.
                gone = [pid for pid in _stream(known) if pid not in seen]
                pages[-1] = _replace(pages[-1], state=resume.dump()) if gone else pages[-1]
                for start in range(0, len(gone), 5000):
                    last = start + 5000 >= len(gone)
                    pages.append(
                        GraphPage(
                            folder.name,
                            [],
                            gone[start : start + 5000],
                            [],
                            after.dump() if last else resume.dump(),
                        )
                    )
            for page in pages:
                if flag:
                    page = _replace(page, validity_changed=True)
                    flag = False
                yield page
            if isinstance(delta_link, str):
                return
            url = str(next_link)

    def _mail_pages(
        self,
        folder: GraphFolder,
        changed: list[dict[str, Any]],
        removed: list[str],
        known: KnownIds | None,
        resume: dict[str, Any],
        after: dict[str, Any],
    ) -> Iterator[GraphPage]:
        """A delta page's work as pages of bounded size: all but the last carry `resume` (the
        same delta page is asked again after a crash), the last carries `after`."""
        held = self._held(known, [str(m["id"]) for m in changed]) if changed else set()
        fresh = [m for m in changed if str(m["id"]) not in held]
        level = self.settings.capture_level
        if level != "full":
            items: list[MailItem | CalendarItem] = [
                mail_item_from_json(m, folder.name, want_subject=level == "subject") for m in fresh
            ]
            yield GraphPage(folder.name, [], removed, [], after, items=items)
            return
        since = self.settings.since
        old = [m for m in fresh if since is not None and _received(m) < since]
        wanted = [m for m in fresh if not (since is not None and _received(m) < since)]
        items = [mail_item_from_json(m, folder.name, want_subject=False) for m in old]
        messages: list[RawMessage] = []
        failures: list[tuple[str, str]] = []
        size = 0
        for chunk in self._fetch_mime(folder, wanted):
            for provider_id, outcome in chunk:
                if isinstance(outcome, RawMessage):
                    messages.append(outcome)
                    size += len(outcome.raw)
                elif outcome is not None:
                    failures.append((provider_id, outcome))
            if size >= BATCH_BYTES:
                yield GraphPage(folder.name, messages, [], failures, resume, items=items)
                messages, failures, items, size = [], [], [], 0
        yield GraphPage(folder.name, messages, removed, failures, after, items=items)

    def _fetch_mime(
        self, folder: GraphFolder, wanted: list[dict[str, Any]]
    ) -> Iterator[list[tuple[str, RawMessage | str | None]]]:
        """MIME of the wanted messages, a batch (or one large message) at a time: per message a
        RawMessage, a failure reason, or None (deleted meanwhile: the next delta says so)."""
        small = [m for m in wanted if not m.get("hasAttachments")]
        for start in range(0, len(small), BATCH_SIZE):
            chunk = small[start : start + BATCH_SIZE]
            paths = {
                str(m["id"]): self.client.user_path("messages", str(m["id"]), "$value")
                for m in chunk
            }
            answers = self.client.batch_get(list(paths.values()), "mime")
            out: list[tuple[str, RawMessage | str | None]] = []
            for provider_id, path in paths.items():
                answer = answers.get(path)
                out.append((provider_id, self._raw(folder, provider_id, answer)))
            yield out
        large = [m for m in wanted if m.get("hasAttachments")]
        for outcome in in_order(
            lambda message: self._fetch_one(folder, str(message["id"])),
            large,
            width=MAILBOX_CONCURRENCY,
        ):
            yield [outcome]

    def _fetch_one(
        self, folder: GraphFolder, provider_id: str
    ) -> tuple[str, RawMessage | str | None]:
        """One message's MIME on its own (it has attachments: too big for a batch answer)."""
        path = self.client.user_path("messages", provider_id, "$value")
        try:
            raw, too_large = self.client.get_value(path, what=f"message {provider_id[:24]}")
        except PermissionDenied as exc:
            if "no longer exists" in exc.message:
                return provider_id, None
            raise
        return provider_id, RawMessage(raw, folder.name, provider_id, "mail", too_large)

    @staticmethod
    def _raw(
        folder: GraphFolder, provider_id: str, answer: ItemAnswer | None
    ) -> RawMessage | str | None:
        if answer is None:
            return "no answer from Microsoft Graph for this message"
        if answer.error is not None:
            if answer.status == 404:
                return None
            return answer.error.message
        raw = answer.body if isinstance(answer.body, bytes) else b""
        if len(raw) > MAX_MESSAGE_BYTES:
            return RawMessage(raw[:TOO_LARGE_KEEP], folder.name, provider_id, "mail", True)
        return RawMessage(raw, folder.name, provider_id)

    @staticmethod
    def _held(known: KnownIds | None, ids: list[str]) -> set[str]:
        """Which of `ids` the pipeline already holds (live) for this folder."""
        if known is None:
            return set()
        among = getattr(known, "among", None)
        if callable(among):
            return set(among(ids))
        wanted = set(ids)
        return {pid for pid in _stream(known) if pid in wanted}

    # -- calendar -------------------------------------------------------------------------------

    def _window(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        today = (now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
        return today - CALENDAR_BACK, today + CALENDAR_AHEAD

    def _initial_calendar_url(self, low: datetime, high: datetime) -> str:
        path = self.client.user_path("calendarView", "delta")
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        return self.client.url(
            f"{path}?startDateTime={low.strftime(stamp)}&endDateTime={high.strftime(stamp)}"
        )

    def _sync_calendar(self, state: Mapping[str, object] | None) -> Iterator[GraphPage]:
        cp = _Checkpoint.load(state)
        low, high = self._window()
        scope = f"{low.isoformat()}|{high.isoformat()}"
        moved = False
        if cp is not None:
            held_low = datetime.fromisoformat(cp.scope.split("|")[0])
            moved = low - held_low >= WINDOW_DRIFT or held_low > low
        if cp is None or moved or cp.link is None:
            url, flag = self._initial_calendar_url(low, high), cp is not None
        else:
            url, flag, scope = cp.link, False, cp.scope
        resets = 0
        while True:
            try:
                body = self.client.get_json(url, "calendar_delta", what="the calendar")
            except CursorInvalid:
                resets += 1
                if resets > 2:
                    raise
                url, flag, scope = (
                    self._initial_calendar_url(low, high),
                    True,
                    f"{low.isoformat()}|{high.isoformat()}",
                )
                continue
            next_link = body.get("@odata.nextLink")
            delta_link = body.get("@odata.deltaLink")
            if not isinstance(next_link, str) and not isinstance(delta_link, str):
                raise Temporary("Microsoft Graph ended a calendar delta page without a link")
            removed, changed = _split(body.get("value"))
            items = self._calendar_items(changed)
            link = next_link if isinstance(next_link, str) else delta_link
            phase = "initial" if isinstance(next_link, str) else "poll"
            after = _Checkpoint(scope, phase, str(link))
            yield GraphPage(CALENDAR_FOLDER, [], removed, [], after.dump(), flag, items=items)
            flag = False
            if isinstance(delta_link, str):
                return
            url = str(next_link)

    def _calendar_items(self, events: list[dict[str, Any]]) -> list[MailItem | CalendarItem]:
        owner = self.settings.mailbox.lower()
        masters = {
            str(e["seriesMasterId"])
            for e in events
            if e.get("type") in ("occurrence", "exception") and e.get("seriesMasterId")
        }
        items: list[MailItem | CalendarItem] = [
            calendar_item_from_json(
                master, uid=str(master.get("uid") or series_uid(master["iCalUId"])), owner=owner
            )
            for master in self._load_masters(masters - self._masters.keys())
        ]
        for event in events:
            kind = str(event.get("type") or "singleInstance")
            if kind in ("singleInstance", "seriesMaster"):
                uid = str(event.get("uid") or series_uid(str(event.get("iCalUId") or event["id"])))
                items.append(calendar_item_from_json(event, uid=uid, owner=owner))
            elif kind == "exception":
                series = event.get("uid") or self._masters.get(str(event.get("seriesMasterId")))
                if series:
                    items.append(
                        calendar_item_from_json(
                            event, uid=str(series), owner=owner, occurrence=True
                        )
                    )
        return items

    def _load_masters(self, ids: set[str]) -> list[dict[str, Any]]:
        """The series masters of occurrences seen, once per run (batched): each becomes the
        series' item (with its RRULE) on the page that first needs it."""
        if not ids:
            return []
        paths = {mid: self.client.user_path("events", mid) for mid in sorted(ids)}
        answers = self.client.batch_get(list(paths.values()), "event")
        loaded: list[dict[str, Any]] = []
        for master_id, path in paths.items():
            answer = answers.get(path)
            body = answer.body if answer is not None else None
            if isinstance(body, dict) and body.get("iCalUId"):
                self._masters[master_id] = str(body.get("uid") or series_uid(body["iCalUId"]))
                loaded.append(body)
            elif answer is not None and answer.status == 404:
                self._masters[master_id] = None  # deleted meanwhile: its occurrences go too
            elif answer is not None and answer.error is not None:
                raise answer.error
        return loaded


def _split(value: object) -> tuple[list[str], list[dict[str, Any]]]:
    """A delta page's entries: removed ids, and the other (changed) entries."""
    removed: list[str] = []
    changed: list[dict[str, Any]] = []
    for entry in value if isinstance(value, list) else []:
        if not isinstance(entry, dict) or not entry.get("id"):
            continue
        if "@removed" in entry:
            removed.append(str(entry["id"]))
        else:
            changed.append(entry)
    return removed, changed


def _received(message: Mapping[str, Any]) -> datetime:
    return (
        _stamp(message.get("receivedDateTime"))
        or _stamp(message.get("sentDateTime"))
        or datetime.now(UTC)
    )


def _stream(known: KnownIds) -> Iterator[str]:
    yield from known()


def _replace(page: GraphPage, **changes: Any) -> GraphPage:
    return replace(page, **changes)


# --------------------------------------------------------------------------------------------
# The link test


@dataclass(frozen=True)
class MailboxCheck:
    """What a link test found: the folders to sync (resolved to their ids) and whether the
    calendar can be read."""

    folders: list[GraphFolder]
    calendar: bool


def resolve_folders(client: GraphClient, names: Sequence[str] | None) -> list[GraphFolder]:
    """The folders to sync: Inbox and Sent Items by default; otherwise each name is a
    well-known name (inbox, sentitems, archive...) or a display-name path ("Inbox/Projects")."""
    wanted = list(names) if names else ["inbox", "sentitems"]
    found: list[GraphFolder] = []
    for name in wanted:
        parts = [p for p in name.split("/") if p]
        if not parts:
            continue
        folder = _well_known(client, parts[0])
        if folder is None:
            folder = _child(client, None, parts[0], name)
        for part in parts[1:]:
            folder = _child(client, folder, part, name)
        label = name if len(parts) > 1 else str(folder["displayName"])
        found.append(GraphFolder(label, str(folder["id"])))
    return list({f.id: f for f in found}.values())


_WELL_KNOWN = frozenset(
    {"inbox", "sentitems", "drafts", "deleteditems", "archive", "junkemail", "outbox"}
)


def _well_known(client: GraphClient, name: str) -> dict[str, Any] | None:
    if name.lower().replace(" ", "") not in _WELL_KNOWN:
        return None
    path = client.user_path("mailFolders", name.lower().replace(" ", ""))
    return client.get_json(client.url(path), "folders", what=f"the {name} folder")


def _child(
    client: GraphClient, parent: dict[str, Any] | None, name: str, full: str
) -> dict[str, Any]:
    if parent is None:
        path = client.user_path("mailFolders")
    else:
        path = client.user_path("mailFolders", str(parent["id"]), "childFolders")
    url: str | None = client.url(f"{path}?$top=100")
    while url:
        page = client.get_json(url, "folders", what="the folder list")
        for folder in page.get("value") or ():
            if str(folder.get("displayName", "")).casefold() == name.casefold():
                return dict(folder)
        next_link = page.get("@odata.nextLink")
        url = next_link if isinstance(next_link, str) else None
    raise PermissionDenied(f"folder {full!r} does not exist in the mailbox")


def check_mailbox(settings: GraphSettings, names: Sequence[str] | None) -> MailboxCheck:
    """Prove the link works before it is saved: a token is issued, the mailbox exists and the
    app may read its mail (the Inbox), the folders are found, the calendar can be read (unless
    not wanted). Raises our error kinds with what to fix."""
    client = GraphClient(settings)
    try:
        inbox = client.user_path("mailFolders", "inbox")
        client.get_json(client.url(inbox), "folders", what="the Inbox")
        folders = resolve_folders(client, names)
        if settings.calendar:
            client.get_json(
                client.url(client.user_path("calendar")), "calendar", what="the calendar"
            )
        return MailboxCheck(folders, settings.calendar)
    finally:
        client.close()
