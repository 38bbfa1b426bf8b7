"""IMAP source: incremental, restartable sync of a mailbox's chosen folders.

Why this shape (see the guide's "Close's sync engine"): a sync can stop at any point -- a server
restart, a dropped connection, a crash of ours -- and the next run must neither skip nor repeat
a message. So each folder's checkpoint is a handful of integers that the caller stores together
with the page that produced it, and every step below is safe to repeat. Nothing here holds a
mailbox's UID list: new mail is found in bounded UID windows, and deletions come from QRESYNC's
VANISHED or from checking the caller's ids against the server in chunks.

Per-folder state machine; one STATUS decides, and the checkpoint is the state:

    STATUS folder (UIDVALIDITY UIDNEXT MESSAGES [HIGHESTMODSEQ])         1 round trip
      |
      +-- no checkpoint ----------------------------------------> INITIAL
      +-- UIDVALIDITY differs, or UIDNEXT went backwards -------> INITIAL  (validity_changed)
      +-- UIDNEXT, MESSAGES and HIGHESTMODSEQ as stored --------> UNCHANGED: no page at all
      +-- only HIGHESTMODSEQ moved (up, or down: Dovecot) ------> FLAGS: one page, new modseq
      +-- anything else ----------------------------------------> POLL

    INITIAL, POLL:  EXAMINE -> UIDs in (last_uid, UIDNEXT) by windows -> pages of messages
                                                                  (each with a partial checkpoint)
    POLL only:      removals: VANISHED since the stored HIGHESTMODSEQ, else the caller's ids
    last page:      the complete checkpoint (what the next STATUS is compared with)

The checkpoint (JSON): `uidvalidity`; `last_uid` (every UID up to it was delivered, reported
failed, or is gone); and, as seen when the poll began, `uidnext`, `messages` and `highestmodseq`.
A partial checkpoint (stored mid-poll) has `uidnext` and `messages` None, so the next poll takes
neither shortcut and re-checks removals. Provider ids are "<uidvalidity>:<uid>".

Removals: with QRESYNC they come from VANISHED. Otherwise the caller passes `known_ids`, a
callable streaming the provider ids it holds for the folder; they are checked against the server
in chunks, only when the message count says something old disappeared. Without either, removals
are not reported (a warning says so). On `validity_changed` the caller forgets every provider id
it holds for the folder before capturing that page: the full resync that follows is deduplicated
by Message-ID downstream.
"""

from __future__ import annotations

import imaplib
import logging
import math
import re
import socket
import ssl
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing import util as mp_util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from imapclient import IMAPClient  # type: ignore[import-untyped]
from imapclient.exceptions import LoginError  # type: ignore[import-untyped]
from imapclient.response_parser import parse_fetch_response  # type: ignore[import-untyped]

from server.mail_ingest.errors import (
    AuthExpired,
    PermissionDenied,
    SessionRefused,
    SourceError,
    Temporary,
    Throttled,
)
from server.mail_ingest.sources.files import MAX_MESSAGE_BYTES, RawMessage
from server.tls import tls_context

if TYPE_CHECKING:
    from server.mail_ingest.oauth import TokenSource

log = logging.getLogger(__name__)

Security = Literal["ssl", "starttls", "none"]
KnownIds = Callable[[], Iterable[str]]

CHECKPOINT_VERSION = 1
BATCH_BYTES = 8 * 1024 * 1024  # a page's bodies stay under this (one big message may exceed it)
# Pages that other processes fetch (`Pending`) are bigger: only what their messages become comes
# here, and each is one transaction of the caller's (fewer, larger commits: a 10,000-message sync
# took 7% less time with 400 than with 200), and pages cut at 8 MB left the pages of big messages
# too few to be worth the other sessions.
PENDING_MESSAGES = 400
PENDING_BYTES = 64 * 1024 * 1024
TOO_LARGE_KEEP = 1024 * 1024  # what is kept of a message over MAX_MESSAGE_BYTES, as files.py does
MAX_WINDOW = 50_000  # UIDs asked for in one scan: bounds memory whatever the mailbox size
PRESENCE_CHUNK = 500  # known ids checked per UID SEARCH
REMOVED_PER_PAGE = 5_000
IDLE_LIMIT = 29 * 60  # RFC 2177: servers may end IDLE after 30 minutes
_IMAP_FAILURES = (imaplib.IMAP4.error, OSError)
# Names a Sent folder has where the server marks no folder \Sent (SPECIAL-USE, RFC 6154).
_SENT_NAMES = (
    "Sent",
    "Sent Items",
    "Sent Messages",
    "Sent Mail",
    "[Gmail]/Sent Mail",
    "INBOX.Sent",
    "INBOX/Sent",
    "INBOX.Sent Items",
)


@dataclass(frozen=True)
class ImapSettings:
    """How to reach one mailbox. `folders` None means INBOX plus the folder marked \\Sent.

    Sign-in: the password, else XOAUTH2 with `oauth_token` (one fixed access token), else
    XOAUTH2 with a token from `token_source`, asked at each connection (see server/mail_ingest/
    oauth.py); a token the server refuses is renewed once before the link needs attention.
    """

    host: str
    port: int
    security: Security
    user: str
    password: str | None = field(repr=False)
    oauth_token: str | None = field(default=None, repr=False)  # XOAUTH2 access token
    token_source: TokenSource | None = field(default=None, repr=False, compare=False)
    folders: list[str] | None = None
    ca_bundle: Path | None = None  # extra trusted CAs (PEM), on top of the system's
    timeout: float = 30

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class FolderPage:
    """One step of a folder's sync. Store `state` in the same transaction as what the page
    carries: `messages` to capture, `removed` provider ids to forget, `failures` as
    (provider_id, reason) to record. `validity_changed` (first page only): forget every provider
    id held for this folder before capturing this page."""

    folder: str
    messages: list[RawMessage]
    removed: list[str]
    failures: list[tuple[str, str]]
    state: dict[str, int | None]
    validity_changed: bool = False
    # Messages left for the parse workers to fetch on sessions of their own (see `Pending`).
    pending: Pending | None = None


@dataclass(frozen=True)
class Pending:
    """A page's messages, named but not fetched: `fetch_pending` fetches them in another process.

    Why: fetching a big page over TLS in the syncing process made its fetching thread and its
    database writer share one interpreter lock, and sent every message through a pipe to the
    parse workers; a worker fetching what it parses keeps the bytes where they are used, as the
    import's workers read their files themselves. `settings` sign in without a token source
    (it stays in the syncing process): a password, or the access token valid when the page was
    planned.
    """

    settings: ImapSettings
    folder: str
    uidvalidity: int
    batch: list[tuple[int, int]]  # (uid, size)

    def __len__(self) -> int:
        return len(self.batch)

    def split(self, size: int) -> list[Pending]:
        return [
            replace(self, batch=self.batch[start : start + size])
            for start in range(0, len(self.batch), size)
        ]

    def fetch(self) -> tuple[list[RawMessage], list[tuple[str, str]]]:
        """These messages, fetched on this process's own session to the mailbox (see
        `ImapSource.fetch_pending`)."""
        return _own_session(self.settings).fetch_pending(self)


_OWN_SESSIONS: dict[tuple[str, int, str], ImapSource] = {}


def _own_session(settings: ImapSettings) -> ImapSource:
    """The session this process keeps to a mailbox for pending pages, logged out at its exit."""
    key = (settings.host, settings.port, settings.user)
    source = _OWN_SESSIONS.get(key)
    if source is None:
        if not _OWN_SESSIONS:
            mp_util.Finalize(None, _close_own_sessions, exitpriority=10)
        source = _OWN_SESSIONS[key] = ImapSource(settings)
    else:
        source.settings = settings  # a new sign-in uses the newest access token
    return source


def _close_own_sessions() -> None:
    while _OWN_SESSIONS:
        _OWN_SESSIONS.popitem()[1].close()


def provider_id(uidvalidity: int, uid: int) -> str:
    return f"{uidvalidity}:{uid}"


def parse_provider_id(value: str) -> tuple[int, int] | None:
    """(uidvalidity, uid) of an IMAP provider id, or None when it is not one."""
    validity, sep, uid = value.partition(":")
    if not sep or not validity.isdigit() or not uid.isdigit():
        return None
    return int(validity), int(uid)


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    uidvalidity: int
    last_uid: int
    uidnext: int | None = None
    messages: int | None = None
    highestmodseq: int | None = None

    @property
    def complete(self) -> bool:
        return self.uidnext is not None and self.messages is not None

    @classmethod
    def load(cls, state: Mapping[str, object] | None) -> _Checkpoint | None:
        """The stored checkpoint, or None (start over) when there is none or it is unreadable."""
        if not state:
            return None
        try:
            if state.get("v") != CHECKPOINT_VERSION:
                raise ValueError(f"version {state.get('v')!r}")
            uidvalidity = _count(state.get("uidvalidity"))
            last_uid = _count(state.get("last_uid"))
            uidnext, messages, modseq = (
                None if state.get(name) is None else _count(state.get(name))
                for name in ("uidnext", "messages", "highestmodseq")
            )
        except (TypeError, ValueError) as exc:
            log.warning("unreadable IMAP checkpoint (%s); the folder is synchronised afresh", exc)
            return None
        return cls(uidvalidity, last_uid, uidnext, messages, modseq)

    def dump(self) -> dict[str, int | None]:
        return {
            "v": CHECKPOINT_VERSION,
            "uidvalidity": self.uidvalidity,
            "last_uid": self.last_uid,
            "uidnext": self.uidnext,
            "messages": self.messages,
            "highestmodseq": self.highestmodseq,
        }


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"not a count: {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class _Mailbox:
    """A folder's numbers, from STATUS or EXAMINE."""

    uidvalidity: int
    uidnext: int | None
    messages: int
    modseq: int | None


# --------------------------------------------------------------------------------------------
# Errors


# RFC 5530 response codes (and vendors' own) -> what to do next.
_CODE_KINDS: dict[str, type[SourceError]] = {
    "AUTHENTICATIONFAILED": AuthExpired,
    "AUTHORIZATIONFAILED": AuthExpired,
    "EXPIRED": AuthExpired,
    "UNAVAILABLE": Temporary,
    "SERVERBUG": Temporary,
    "INUSE": Temporary,
    "CORRUPTION": Temporary,
    "LIMIT": Throttled,
    "THROTTLED": Throttled,  # Gmail, Yahoo
    "OVERQUOTA": Throttled,  # Gmail: "Account exceeded command or bandwidth limits"
    "NOPERM": PermissionDenied,
    "CONTACTADMIN": PermissionDenied,
    "PRIVACYREQUIRED": PermissionDenied,
    "NONEXISTENT": PermissionDenied,
    "CANNOT": PermissionDenied,
}
# Texts of servers that send no response code, checked in order (lower case).
_TEXT_KINDS: tuple[tuple[str, type[SourceError]], ...] = (
    ("temporary authentication failure", Temporary),  # Dovecot, when its auth backend is down
    ("too many simultaneous connections", Throttled),  # Gmail
    ("maximum number of connections", Throttled),  # Dovecot mail_max_userip_connections
    ("too many connections", Throttled),
    ("throttl", Throttled),  # Exchange: "Request is throttled. Suggested Backoff Time: ..."
    ("bandwidth limit", Throttled),
    ("not enabled for imap", PermissionDenied),  # Gmail with IMAP switched off
    ("imap access is disabled", PermissionDenied),
    ("imap is disabled", PermissionDenied),
    ("authenticated but not connected", PermissionDenied),  # Exchange Online: no IMAP licence
    ("no such mailbox", PermissionDenied),
    ("mailbox doesn't exist", PermissionDenied),
    ("mailbox does not exist", PermissionDenied),
    ("unknown mailbox", PermissionDenied),
    ("folder not found", PermissionDenied),
    ("invalid credentials", AuthExpired),  # Gmail, Yahoo, AOL, Zoho
    ("authentication failed", AuthExpired),  # Dovecot, iCloud, Fastmail, GMX
    ("authentication failure", AuthExpired),  # Cyrus
    ("authenticate failed", AuthExpired),  # Exchange / Outlook.com (XOAUTH2)
    ("login failed", AuthExpired),  # Exchange / Outlook.com, Courier
    ("login error", AuthExpired),
    ("login incorrect", AuthExpired),
    ("invalid login", AuthExpired),
    ("logon failure", AuthExpired),
    ("incorrect password", AuthExpired),
    ("invalid password", AuthExpired),
    ("application-specific password required", AuthExpired),  # Gmail with 2-step verification
    ("log in via your web browser", AuthExpired),  # Gmail blocking a "less secure" sign-in
    ("web login required", AuthExpired),
    ("invalid_token", AuthExpired),
)
_RESPONSE_CODE = re.compile(r"\[([A-Z][A-Z0-9-]*)[^\]]*\]")
_BACKOFF = re.compile(r"backoff time:\s*(\d+)\s*(milli)?seconds?", re.IGNORECASE)
# How imaplib and imapclient wrap the server's text: "command: FETCH => <text>" (imaplib, on
# BYE), "SEARCH command error: BAD [b'<text>']" (imaplib), "select failed: <text>" (imapclient,
# lower-case command), and b'<text>' (imaplib's bytes put through str()).
_IMAPLIB_BYE = re.compile(r"^command: [A-Z]+ => ")
_IMAPLIB_ERROR = re.compile(r"^[A-Z]+ command error: (?:BAD|NO) \[(.*)\]$", re.DOTALL)
_IMAPCLIENT_FAILED = re.compile(r"^[a-z_]+ failed: ")


def server_text(exc: BaseException) -> str:
    """The server's own words in an imaplib/imapclient error, without the libraries' wrapping."""
    text = _IMAPLIB_BYE.sub("", str(exc).strip())
    found = _IMAPLIB_ERROR.match(text)
    if found:
        text = found.group(1)
    text = _IMAPCLIENT_FAILED.sub("", text)
    if len(text) >= 3 and text[0] == "b" and text[1] in "'\"" and text[-1] == text[1]:
        text = text[2:-1]
    return text.strip()


def classify_imap_error(exc: BaseException, *, where: str = "the IMAP server") -> SourceError:
    """Map an imapclient/imaplib/socket/ssl failure to one of our error kinds (pure).

    `where` ("host:port") goes into the messages, which say what the admin should do next.
    """
    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Temporary(
            f"the TLS certificate of {where} is not trusted ({exc.verify_message}); if the "
            "server uses a private CA, set RAPPORT_CA_BUNDLE to its certificate (PEM)"
        )
    if isinstance(exc, ssl.SSLError):
        return Temporary(
            f"TLS with {where} failed ({getattr(exc, 'reason', None) or exc}); check the port "
            "and the security "
            "setting (ssl usually on 993, starttls on 143), or RAPPORT_CA_BUNDLE"
        )
    if isinstance(exc, socket.gaierror):
        return Temporary(f"cannot reach {where}: the host name does not resolve ({exc.strerror})")
    if isinstance(exc, ConnectionRefusedError):
        return Temporary(f"cannot reach {where}: connection refused (is the port right?)")
    if isinstance(exc, TimeoutError):
        return Temporary(f"cannot reach {where}: no answer in time")
    if isinstance(exc, imaplib.IMAP4.error):
        return _classify_response(exc, where)
    if isinstance(exc, OSError):
        return Temporary(f"cannot reach {where}: {exc.strerror or exc}")
    return Temporary(f"unexpected failure talking to {where}: {exc!r}")


def _classify_response(exc: imaplib.IMAP4.error, where: str) -> SourceError:
    text = server_text(exc)
    kind: type[SourceError] | None = None
    for code in _RESPONSE_CODE.findall(text):
        kind = _CODE_KINDS.get(code.upper())
        if kind is not None:
            break
    if kind is None:
        lowered = text.lower()
        kind = next((k for pattern, k in _TEXT_KINDS if pattern in lowered), None)
    if kind is None:
        if isinstance(exc, LoginError):
            kind = AuthExpired  # RFC 3501: a NO to LOGIN means the name or password was refused
        elif isinstance(exc, imaplib.IMAP4.abort):
            return Temporary(f"the connection to {where} was dropped ({text or 'no reason'})")
        else:
            return Temporary(f"{where} answered: {text}")
    if kind is AuthExpired:
        return AuthExpired(
            f"the server refused the user name or password ({where} said: {text}); check them "
            "(some providers want an app password) and re-connect the mailbox"
        )
    if kind is Throttled:
        found = _BACKOFF.search(text)
        retry_after = None
        if found:
            retry_after = int(found.group(1)) / (1000 if found.group(2) else 1)
        return Throttled(f"{where} asks us to slow down: {text}", retry_after=retry_after)
    if kind is PermissionDenied:
        return PermissionDenied(f"{where} refused: {text}")
    return Temporary(f"{where} is not available right now: {text}")


# --------------------------------------------------------------------------------------------
# The protocol wrapper


class _XOAuth2:
    """The XOAUTH2 SASL exchange.

    Quirk: on a refused token the server sends a base64 JSON error as a continuation and waits
    for an empty reply (RFC 7628) before its tagged NO; imapclient's `oauth2_login` answers with
    the token again, and Gmail then says "Invalid SASL argument" instead of the real reason.
    The JSON (e.g. {"status":"401",...}) goes into our message.
    """

    def __init__(self, user: str, token: str) -> None:
        self.initial = f"user={user}\x01auth=Bearer {token}\x01\x01"
        self.sent = False
        self.error = ""

    def __call__(self, challenge: bytes) -> str:
        if not self.sent:
            self.sent = True
            return self.initial
        self.error = challenge.decode("utf-8", "replace")
        return ""


def _int_or_none(value: object) -> int | None:
    """A number from imapclient's answer (int, or bytes/str digits), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, (bytes, str)) and value.strip().isdigit():
        return int(value.strip())
    return None


def _sequence_set(uids: Sequence[int]) -> str:
    """The compact IMAP form ("1:3,7,9:10") of sorted UIDs."""
    parts: list[str] = []
    start = prev = uids[0]
    for uid in uids[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


def parse_sequence_set(text: str) -> list[tuple[int, int]]:
    """Sorted, merged (low, high) ranges of an IMAP sequence set such as "2:4,9,12:10"."""
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        first, _, second = part.strip().partition(":")
        if not first.isdigit() or (second and not second.isdigit()):
            continue  # "*" has no meaning in a VANISHED answer
        a, b = int(first), int(second or first)
        ranges.append((min(a, b), max(a, b)))
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for low, high in ranges:
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged


# Codes on a failed FETCH that are about the session or the account, not about the messages
# (SERVERBUG, CORRUPTION or no code at all: that message's fault, skip it).
_SESSION_CODES = frozenset(
    {
        "AUTHENTICATIONFAILED",
        "AUTHORIZATIONFAILED",
        "EXPIRED",
        "UNAVAILABLE",
        "INUSE",
        "LIMIT",
        "THROTTLED",
        "OVERQUOTA",
        "NOPERM",
        "CONTACTADMIN",
        "PRIVACYREQUIRED",
        "NONEXISTENT",
    }
)


def _about_the_messages(exc: imaplib.IMAP4.error) -> bool:
    """Whether a failed FETCH is the messages' fault (skip them) rather than the session's."""
    if isinstance(exc, imaplib.IMAP4.abort):
        return _is_fetch_bye(exc)
    codes = {code.upper() for code in _RESPONSE_CODE.findall(server_text(exc))}
    return not codes & _SESSION_CODES


def _is_fetch_bye(exc: BaseException) -> bool:
    """Quirk: Dovecot answers a message it cannot read with "* BYE FETCH failed: Internal error
    occurred" and hangs up, so one unreadable file would end every session at the same spot."""
    return isinstance(exc, imaplib.IMAP4.abort) and "fetch failed" in str(exc).lower()


class _TokenRefused(Exception):
    """The server refused an XOAUTH2 token; `error` says so in our words (AuthExpired)."""

    def __init__(self, error: AuthExpired) -> None:
        super().__init__(error.message)
        self.error = error


class _Connection:
    """One logged-in IMAP session, answering in plain Python values."""

    def __init__(self, settings: ImapSettings, *, token: str | None = None) -> None:
        """`token`: the XOAUTH2 access token to use instead of asking the token source."""
        self.settings = settings
        self.selected: str | None = None
        self.client: Any = self._open()
        try:
            self._login(token)
            self.capabilities = frozenset(bytes(c).upper() for c in self.client.capabilities())
            self.condstore = self.qresync = False
            self._enable()
        except BaseException:
            self.shutdown()
            raise

    def _open(self) -> Any:
        s = self.settings
        context = tls_context(s.ca_bundle) if s.security != "none" else None
        client = IMAPClient(
            s.host,
            port=s.port,
            ssl=s.security == "ssl",
            ssl_context=context,
            timeout=s.timeout,
        )
        # imapclient turns imaplib's wire trace fully on (debug 5) and drops it at the logger:
        # imaplib still formats every answer first, a repr of each message body, twice. That
        # was most of a sync's fetching CPU; the trace would also put mail into the logs.
        client._imap.debug = 0
        if s.security == "starttls":
            try:
                if not client.has_capability("STARTTLS"):
                    raise PermissionDenied(
                        f"{s.where} does not offer STARTTLS; use security ssl (usually port "
                        "993) or ask the mail server's admin to enable TLS"
                    )
                client.starttls(context)
            except BaseException:
                _quiet_shutdown(client)
                raise
        return client

    def _login(self, token: str | None) -> None:
        s = self.settings
        capabilities = {bytes(c).upper() for c in self.client.capabilities()}
        if token or s.oauth_token or s.token_source is not None:
            if b"AUTH=XOAUTH2" not in capabilities:
                raise PermissionDenied(
                    f"{s.where} does not offer OAuth sign-in (XOAUTH2); connect with a password"
                )
            if not token:
                token = s.token_source.token() if s.token_source is not None else s.oauth_token
            assert token is not None
            self._xoauth2(token)
            return
        if not s.password:
            raise AuthExpired(f"no password is stored for {s.user}; re-connect the mailbox")
        if b"LOGINDISABLED" in capabilities:
            raise PermissionDenied(
                f"{s.where} refuses passwords on an unencrypted connection; use security "
                "starttls or ssl"
            )
        if s.password.isascii() and s.user.isascii():
            self.client.login(s.user, s.password)
        elif b"AUTH=PLAIN" in capabilities:
            # Quirk: imaplib sends LOGIN's arguments as ASCII and fails on "pässword";
            # AUTHENTICATE PLAIN carries UTF-8.
            self.client.plain_login(s.user, s.password)
        else:
            raise AuthExpired(
                f"the password for {s.user} has non-ASCII characters, which {s.where} offers no "
                "way to send (no AUTHENTICATE PLAIN); use an app password without them"
            )

    def _xoauth2(self, token: str) -> None:
        s = self.settings
        mech = _XOAuth2(s.user, token)
        try:
            self.client.sasl_login("XOAUTH2", mech)
        except LoginError as exc:
            detail = f"{server_text(exc)} {mech.error}".strip()
            kind = _classify_response(exc, s.where)
            if not isinstance(kind, AuthExpired):
                # Not about the token: Dovecot says "[UNAVAILABLE] Temporary authentication
                # failure" when it cannot ask the token's issuer.
                raise kind from exc
            refused = AuthExpired(
                f"the server refused the access token for {s.user} ({s.where} said: "
                f"{detail}); re-connect the mailbox to renew it"
            )
            refused.__cause__ = exc
            raise _TokenRefused(refused) from exc

    def _enable(self) -> None:
        caps = self.capabilities
        if b"ENABLE" in caps and b"QRESYNC" in caps:
            enabled = {bytes(c).upper() for c in self.client.enable("QRESYNC")}
            self.qresync = b"QRESYNC" in enabled
            self.condstore = True
        elif b"CONDSTORE" in caps:
            # RFC 7162: EXAMINE reports HIGHESTMODSEQ only once CONDSTORE is enabled.
            if b"ENABLE" in caps:
                self.client.enable("CONDSTORE")
            self.condstore = True

    @property
    def imap(self) -> imaplib.IMAP4:
        return self.client._imap  # type: ignore[no-any-return]

    # -- folders --------------------------------------------------------------------------------

    def list_folders(self) -> list[tuple[frozenset[bytes], str]]:
        """(attributes in lower case, name) of every folder."""
        listing = [_folder(entry) for entry in self.client.list_folders()]
        if b"SPECIAL-USE" in self.capabilities and not any(
            b"\\sent" in flags for flags, _ in listing
        ):
            # Quirk: RFC 6154 lets servers send special-use attributes only when asked.
            typ, data = self.imap._simple_command("LIST", '""', '"*"', "RETURN", "(SPECIAL-USE)")
            if typ == "OK":
                typ, data = self.imap._untagged_response(typ, data, "LIST")
                listing = [_folder(entry) for entry in self.client._proc_folder_list(data)]
        return listing

    def status(self, folder: str) -> _Mailbox:
        what = ["UIDVALIDITY", "UIDNEXT", "MESSAGES"]
        if self.condstore:
            what.append("HIGHESTMODSEQ")
        answer = self.client.folder_status(folder, what)
        return _Mailbox(
            uidvalidity=_required(answer, b"UIDVALIDITY", folder, self.settings.where),
            uidnext=_int_or_none(answer.get(b"UIDNEXT")),
            messages=_required(answer, b"MESSAGES", folder, self.settings.where),
            # RFC 7162: HIGHESTMODSEQ 0 (or none) means the folder keeps no mod-sequences.
            modseq=_int_or_none(answer.get(b"HIGHESTMODSEQ")) or None,
        )

    def examine(self, folder: str) -> _Mailbox:
        """Select `folder` read-only: nothing we do can change it (no \\Seen, no expunge)."""
        answer = self.client.select_folder(folder, readonly=True)
        self.selected = folder
        self.expunge_hints()  # forget notifications about a previously selected folder
        uidnext = _int_or_none(answer.get(b"UIDNEXT"))
        messages = _int_or_none(answer.get(b"EXISTS")) or 0
        if uidnext is None:
            # Quirk: some servers leave UIDNEXT out of SELECT; the last message's UID + 1 is as good.
            uidnext = self._last_uid(messages) + 1
        modseq = None if b"NOMODSEQ" in answer else _int_or_none(answer.get(b"HIGHESTMODSEQ"))
        return _Mailbox(
            uidvalidity=_required(answer, b"UIDVALIDITY", folder, self.settings.where),
            uidnext=uidnext,
            messages=messages,
            modseq=modseq or None,
        )

    def _last_uid(self, messages: int) -> int:
        if messages == 0:
            return 0
        _typ, data = self.imap.fetch(str(messages), "(UID)")
        parsed = parse_fetch_response([d for d in data if d is not None], True, True)
        return max((int(uid) for uid in parsed), default=0)

    def unselect(self) -> None:
        if self.selected is None:
            return
        if b"UNSELECT" in self.capabilities:
            self.client.unselect_folder()
        else:
            self.client.close_folder()  # CLOSE of a read-only folder expunges nothing (RFC 3501)
        self.selected = None

    # -- messages -------------------------------------------------------------------------------

    def scan(self, low: int, high: int) -> list[tuple[int, int]]:
        """(uid, size) of the messages with a UID in [low, high], in UID order.

        Always a closed range: "n:*" means "n or the last message" (RFC 3501), so a server
        answers it with the newest message even when every UID is below n.
        """
        typ, data = self.imap.uid("FETCH", f"{low}:{high}", "(UID RFC822.SIZE)")
        if typ != "OK":
            raise imaplib.IMAP4.error(f"FETCH failed: {data!r}")
        # imaplib reports "no FETCH response" as [None].
        lines = [d for d in data if d is not None]
        parsed = parse_fetch_response(lines, True, True) if lines else {}
        found = []
        for uid, fields in parsed.items():
            size = _int_or_none(fields.get(b"RFC822.SIZE"))
            # Unsolicited FETCH responses (another client changing flags) carry no size.
            if size is not None and low <= int(uid) <= high:
                found.append((int(uid), size))
        found.sort()
        return found

    def fetch(self, uids: Sequence[int], *, partial: bool = False) -> dict[int, bytes | None]:
        """Raw bodies by UID (BODY.PEEK: never sets \\Seen); None where the server sent NIL."""
        item = f"BODY.PEEK[]<0.{TOO_LARGE_KEEP}>" if partial else "BODY.PEEK[]"
        answer = self.client.fetch(list(uids), [item])
        bodies: dict[int, bytes | None] = {}
        for uid, fields in answer.items():
            body = next((v for k, v in fields.items() if bytes(k).startswith(b"BODY[")), None)
            # Quirk: Exchange and Gmail answer BODY[] NIL for messages they cannot render.
            bodies[int(uid)] = bytes(body) if isinstance(body, (bytes, bytearray)) else None
        return bodies

    def present(self, uids: Sequence[int]) -> set[int]:
        found = self.client.search(["UID", _sequence_set(sorted(uids))])
        return {int(uid) for uid in found}

    def vanished(self, low: int, high: int, since: int) -> list[tuple[int, int]]:
        """UID ranges in [low, high] expunged since mod-sequence `since` (RFC 7162 3.2.6).

        imapclient parses no VANISHED responses, so the command goes through imaplib, which
        files them under "VANISHED". A FETCH line per message whose flags changed comes with
        them (that is the command's other half) and is dropped: callers keep the range small.
        """
        self.imap.untagged_responses.pop("VANISHED", None)
        typ, data = self.imap.uid(
            "FETCH", f"{low}:{high}", "(UID)", f"(CHANGEDSINCE {since} VANISHED)"
        )
        if typ != "OK":
            raise imaplib.IMAP4.error(f"FETCH failed: {data!r}")
        ranges: list[tuple[int, int]] = []
        for entry in self.imap.untagged_responses.pop("VANISHED", []):
            if not isinstance(entry, bytes):
                continue  # a literal: no VANISHED answer has one
            text = entry.decode("ascii", "replace").replace("(EARLIER)", "")
            for a, b in parse_sequence_set(text):
                if max(a, low) <= min(b, high):
                    ranges.append((max(a, low), min(b, high)))
        return ranges

    def expunge_hints(self) -> bool:
        """Whether the server said, since the last call, that messages left the folder."""
        found = False
        for name in ("EXPUNGE", "VANISHED"):
            found = self.imap.untagged_responses.pop(name, None) is not None or found
        return found

    def idle(self, timeout: float) -> bool:
        """IDLE until the selected folder gains or loses a message, or `timeout` passes."""
        self.client.idle()
        try:
            deadline = time.monotonic() + timeout
            while (remaining := deadline - time.monotonic()) > 0:
                for response in self.client.idle_check(timeout=remaining):
                    if _is_change(response):
                        return True
            return False
        finally:
            self.client.idle_done()

    # -- closing --------------------------------------------------------------------------------

    def logout(self) -> None:
        try:
            self.client.logout()
        except Exception:  # already gone: nothing to say goodbye to
            self.shutdown()

    def shutdown(self) -> None:
        _quiet_shutdown(self.client)


def _quiet_shutdown(client: Any) -> None:
    try:
        client.shutdown()
    except Exception:  # the socket is closed either way
        log.debug("IMAP shutdown failed", exc_info=True)


def _folder(entry: Sequence[Any]) -> tuple[frozenset[bytes], str]:
    flags, _delimiter, name = entry
    return frozenset(bytes(f).lower() for f in flags), str(name)


def _required(answer: Mapping[bytes, Any], key: bytes, folder: str, where: str) -> int:
    value = _int_or_none(answer.get(key))
    if value is None:
        raise Temporary(f"{where} did not report {key.decode()} for folder {folder!r}")
    return value


def _is_change(response: Sequence[Any]) -> bool:
    if len(response) >= 2 and response[1] in (b"EXISTS", b"EXPUNGE"):
        return True
    return len(response) >= 1 and response[0] == b"VANISHED"


# --------------------------------------------------------------------------------------------
# The source


class ImapSource:
    """Folders of one mailbox over one IMAP session, kept open between polls (close() it)."""

    def __init__(self, settings: ImapSettings, *, batch_size: int = 200) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.settings = settings
        self.batch_size = batch_size
        self._conn: _Connection | None = None
        self._folders: list[str] | None = None
        self._pending_from: int | None = None

    def fetch_elsewhere(self, min_batch: int | None) -> None:
        """From now on, leave batches of at least `min_batch` messages, or of more than
        BATCH_BYTES, unfetched (`Pending`) for the caller to fetch in other processes; None
        fetches everything here again."""
        self._pending_from = min_batch

    def __enter__(self) -> ImapSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.logout()

    # -- session --------------------------------------------------------------------------------

    def _connection(self) -> _Connection:
        if self._conn is None:
            try:
                self._conn = self._sign_in()
            except SourceError:
                raise  # already ours; its cause (an IdentityError, say) must stay as it is
            except _IMAP_FAILURES as exc:
                raise self._failure(exc) from exc
        return self._conn

    def _sign_in(self) -> _Connection:
        """A new session. With a token source, a token the server refuses (it expired early,
        was revoked, or was cached past its life) is replaced by a freshly issued one, once;
        a second refusal, or a provider that will not issue one, needs the admin."""
        try:
            return _Connection(self.settings)
        except _TokenRefused as refused:
            source = self.settings.token_source
            if source is None:
                raise refused.error from refused.error.__cause__
            log.info(
                "%s refused the access token for %s; asking for a new one",
                self.settings.where,
                self.settings.user,
            )
        fresh = source.token(force_refresh=True)  # the provider's refusal is the message
        try:
            return _Connection(self.settings, token=fresh)
        except _TokenRefused as again:
            raise AuthExpired(
                f"{again.error.message.removesuffix('; re-connect the mailbox to renew it')}; "
                f"{source.refusal_hint(self.settings.user)}"
            ) from again.error.__cause__

    def _drop(self) -> None:
        """Forget the session: after a failure its state is unknown."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.shutdown()

    def _failure(self, exc: BaseException) -> SourceError:
        self._drop()
        return classify_imap_error(exc, where=self.settings.where)

    def _fresh_status(self, folder: str) -> _Mailbox:
        """STATUS on the kept session; one reconnect when that session turns out to be dead.

        Quirk: servers end idle sessions (Dovecot after 30 minutes, Gmail sooner) without our
        noticing until the next command; that is not worth an error, a second failure is.
        """
        reused = self._conn is not None
        conn = self._connection()
        try:
            conn.unselect()  # only does something after a sync that was abandoned midway
            return conn.status(folder)
        except (imaplib.IMAP4.abort, OSError):
            if not reused:
                raise
            log.info("IMAP session to %s was closed; reconnecting", self.settings.where)
            self._drop()
            return self._connection().status(folder)

    # -- folders --------------------------------------------------------------------------------

    def folders(self) -> list[str]:
        """The folders to sync: the configured ones (checked), else INBOX and the Sent folder."""
        if self._folders is None:
            try:
                self._folders = self._resolve_folders(self._connection().list_folders())
            except SourceError:
                raise
            except _IMAP_FAILURES as exc:
                raise self._failure(exc) from exc
        return list(self._folders)

    def _resolve_folders(self, listing: list[tuple[frozenset[bytes], str]]) -> list[str]:
        selectable = [
            name for flags, name in listing if not flags & {b"\\noselect", b"\\nonexistent"}
        ]
        by_name = {name.casefold(): name for name in selectable}
        inbox = by_name.get("inbox", "INBOX")  # INBOX is case-insensitive (RFC 3501)
        if self.settings.folders is None:
            sent = next((name for flags, name in listing if b"\\sent" in flags), None)
            if sent is None:
                sent = next(
                    (by_name[n.casefold()] for n in _SENT_NAMES if n.casefold() in by_name), None
                )
            if sent is None:
                log.warning("no Sent folder found on %s; syncing INBOX only", self.settings.where)
            return [inbox] if sent is None or sent == inbox else [inbox, sent]
        chosen: list[str] = []
        for wanted in self.settings.folders:
            if wanted.casefold() == "inbox":
                name: str | None = inbox
            else:
                name = wanted if wanted in selectable else by_name.get(wanted.casefold())
            if name is None:
                shown = ", ".join(sorted(selectable)[:50]) or "no folders"
                raise PermissionDenied(
                    f"folder {wanted!r} does not exist on {self.settings.where}; the server "
                    f"has: {shown}"
                )
            if name not in chosen:
                chosen.append(name)
        return chosen

    # -- sync -----------------------------------------------------------------------------------

    def sync_folder(
        self,
        folder: str,
        state: Mapping[str, object] | None,
        known_ids: KnownIds | None = None,
    ) -> Generator[FolderPage, None, None]:
        """The pages that bring `folder` up to date from checkpoint `state` (see the module doc).

        No page at all when nothing changed (one STATUS). Stopping early (close() the generator)
        is safe: resume from the last stored checkpoint. Errors are our kinds; after one, the
        session is dropped and the next call reconnects and resumes from the stored checkpoint.
        """
        checkpoint = _Checkpoint.load(state)
        try:
            yield from self._sync(folder, checkpoint, known_ids)
        except SourceError:
            self._drop()
            raise
        except _IMAP_FAILURES as exc:
            raise self._failure(exc) from exc

    def _sync(
        self, folder: str, checkpoint: _Checkpoint | None, known_ids: KnownIds | None
    ) -> Iterator[FolderPage]:
        status = self._fresh_status(folder)
        cp = checkpoint
        if (
            cp is not None
            and cp.complete
            and cp.uidvalidity == status.uidvalidity
            and cp.uidnext == status.uidnext
            and cp.messages == status.messages
        ):
            if cp.highestmodseq == status.modseq:
                return  # UNCHANGED
            # FLAGS: no message arrived (same UIDNEXT) so none can have left (same count);
            # only flags changed. Quirk: Dovecot lowers HIGHESTMODSEQ when it rebuilds an index;
            # that is a new baseline too, never lost messages.
            if status.modseq is not None and (cp.highestmodseq or 0) > status.modseq:
                log.info(
                    "%s lowered HIGHESTMODSEQ of %r; new baseline", self.settings.where, folder
                )
            yield FolderPage(folder, [], [], [], replace(cp, highestmodseq=status.modseq).dump())
            return

        conn = self._connection()
        box = conn.examine(folder)
        assert box.uidnext is not None  # examine() always fills it
        validity_changed = cp is not None and cp.uidvalidity != box.uidvalidity
        if cp is not None and not validity_changed and box.uidnext <= cp.last_uid:
            # Quirk: UIDNEXT went backwards under the same UIDVALIDITY (a server restored from
            # a backup or rebuilt its UID map; RFC 3501 forbids it). New mail would get UIDs we
            # believe we have: resynchronise the folder.
            log.warning("%s: UIDNEXT of %r went backwards", self.settings.where, folder)
            validity_changed = True
        if validity_changed:
            log.warning("%s: folder %r must be resynchronised", self.settings.where, folder)
        fresh = cp is None or validity_changed
        after = 0 if fresh or cp is None else cp.last_uid
        # VANISHED since this mod-sequence covers everything delivered in this poll.
        baseline = box.modseq if fresh or cp is None else cp.highestmodseq
        flag = validity_changed

        found = 0
        elsewhere = self._pending_from
        limits = (
            (max(self.batch_size, PENDING_MESSAGES), PENDING_BYTES)
            if elsewhere
            else (self.batch_size, BATCH_BYTES)
        )
        for batch, through in self._new_mail(box, after, *limits):
            found += len(batch)
            partial = _Checkpoint(box.uidvalidity, last_uid=through, highestmodseq=baseline)
            if elsewhere and (
                len(batch) >= elsewhere or sum(size for _, size in batch) > BATCH_BYTES
            ):
                named = Pending(self._portable_settings(), folder, box.uidvalidity, batch)
                yield FolderPage(folder, [], [], [], partial.dump(), flag, named)
            else:
                messages, failures = self._fetch_batch(folder, box.uidvalidity, batch)
                yield FolderPage(folder, messages, [], failures, partial.dump(), flag)
            flag = False

        conn = self._connection()
        done = _Checkpoint(
            box.uidvalidity,
            last_uid=max(box.uidnext - 1, after),
            uidnext=box.uidnext,
            messages=box.messages,
            highestmodseq=box.modseq,
        )
        removals: Iterable[list[str]] = ()
        if not fresh and cp is not None and cp.last_uid > 0:
            removals = self._removals(conn, cp, box, found, known_ids)
        pending: list[str] = []
        between = _Checkpoint(box.uidvalidity, last_uid=done.last_uid, highestmodseq=baseline)
        for chunk in removals:
            if pending:
                yield FolderPage(folder, [], pending, [], between.dump(), flag)
                flag = False
            pending = chunk
        conn.unselect()
        yield FolderPage(folder, [], pending, [], done.dump(), flag)

    def _new_mail(
        self, box: _Mailbox, after: int, batch_size: int, batch_bytes: int
    ) -> Iterator[tuple[list[tuple[int, int]], int]]:
        """Batches of (uid, size) with UID in (after, UIDNEXT), and the UID each batch covers;
        a batch holds up to `batch_size` messages and `batch_bytes` (or one bigger message).

        UIDs are asked for in windows of at most MAX_WINDOW, never "all of them": a mailbox's
        UID list can be millions long, and imaplib refuses response lines over 1 MB anyway. The
        window adapts to how dense the UIDs are (Gmail's are sparse: one counter per account).
        """
        upto = (box.uidnext or 1) - 1
        if upto <= after:
            return
        density = max(box.messages, 1) / max(upto, 1)
        span = min(MAX_WINDOW, max(batch_size, math.ceil(2 * batch_size / density)))
        queue: deque[tuple[int, int]] = deque()
        scanned = after  # every UID up to here is queued or already handed out
        while True:
            while len(queue) < batch_size and scanned < upto:
                high = min(upto, scanned + span)
                window = self._connection().scan(scanned + 1, high)
                queue.extend(window)
                scanned = high
                if len(window) < batch_size // 2:
                    span = min(MAX_WINDOW, span * 4)
                elif len(window) > 4 * batch_size:
                    span = max(batch_size, span // 4)
            if not queue:
                return
            batch: list[tuple[int, int]] = []
            size = 0
            while queue and len(batch) < batch_size:
                if batch and size + queue[0][1] > batch_bytes:
                    break
                batch.append(queue.popleft())
                size += batch[-1][1]
            yield batch, (batch[-1][0] if queue else scanned)

    def _fetch_batch(
        self, folder: str, uidvalidity: int, batch: list[tuple[int, int]]
    ) -> tuple[list[RawMessage], list[tuple[str, str]]]:
        """Bodies of a batch; a message the server will not send is reported, not retried
        forever, and does not stop the rest (Gmail: "NO Some messages could not be FETCHed")."""
        normal = [uid for uid, size in batch if size <= MAX_MESSAGE_BYTES]
        bodies: dict[int, bytes | None] = {}
        if normal:
            try:
                bodies = self._connection().fetch(normal)
            except imaplib.IMAP4.error as exc:
                if not _about_the_messages(exc):
                    raise
                log.warning("%s: batch FETCH failed (%s); one by one", self.settings.where, exc)
                self._reopen(folder, uidvalidity)
        messages: list[RawMessage] = []
        failures: list[tuple[str, str]] = []
        for uid, size in batch:
            pid = provider_id(uidvalidity, uid)
            too_large = size > MAX_MESSAGE_BYTES
            body = bodies.get(uid)
            reason = None
            if body is None:
                body, reason = self._fetch_one(folder, uidvalidity, uid, partial=too_large)
            if body is not None:
                messages.append(RawMessage(body, folder, pid, "mail", too_large))
            elif reason is not None:
                failures.append((pid, reason))
        return messages, failures

    def _portable_settings(self) -> ImapSettings:
        """These settings for another process: the token source stays here, a token goes."""
        source = self.settings.token_source
        if source is None:
            return self.settings
        return replace(self.settings, token_source=None, oauth_token=source.token())

    def fetch_pending(self, pending: Pending) -> tuple[list[RawMessage], list[tuple[str, str]]]:
        """The messages of `pending` and the (provider id, reason) of those the server would not
        send, on this source's session (signed in and on the folder first, if need be).

        Raises SessionRefused when no session on the folder can be had at all, SourceError
        kinds for failures after that, as a sync does.
        """
        try:
            conn = self._connection()
            if conn.selected != pending.folder:
                box = conn.examine(pending.folder)
                if box.uidvalidity != pending.uidvalidity:
                    raise Temporary(
                        f"the UIDVALIDITY of {pending.folder!r} changed during the sync; the "
                        "folder is synchronised afresh"
                    )
        except SourceError as exc:
            self._drop()
            raise SessionRefused(exc.message) from exc
        except _IMAP_FAILURES as exc:
            raise SessionRefused(self._failure(exc).message) from exc
        try:
            return self._fetch_batch(pending.folder, pending.uidvalidity, pending.batch)
        except SourceError:
            self._drop()
            raise
        except _IMAP_FAILURES as exc:
            raise self._failure(exc) from exc

    def _fetch_one(
        self, folder: str, uidvalidity: int, uid: int, *, partial: bool
    ) -> tuple[bytes | None, str | None]:
        """(body, None), or (None, why it could not be read), or (None, None) when it is gone."""
        try:
            conn = self._connection()
            body = conn.fetch([uid], partial=partial).get(uid)
        except imaplib.IMAP4.error as exc:
            if not _about_the_messages(exc):
                raise
            if isinstance(exc, imaplib.IMAP4.abort):
                self._reopen(folder, uidvalidity)
            return None, f"the IMAP server would not send this message: {server_text(exc)}"
        if body is not None:
            return body, None
        if uid not in conn.present([uid]):
            return None, None  # expunged meanwhile: the next poll's removal check sees it
        return None, "the IMAP server sent no content for this message"

    def _reopen(self, folder: str, uidvalidity: int) -> None:
        """A new session on `folder` when the server hung up on a message it could not read."""
        if self._conn is not None and self._conn.selected == folder:
            try:
                self._conn.client.noop()
                return  # still alive (a NO, not a BYE)
            except _IMAP_FAILURES:
                pass
        self._drop()
        box = self._connection().examine(folder)
        if box.uidvalidity != uidvalidity:
            raise Temporary(
                f"folder {folder!r} on {self.settings.where} changed UIDVALIDITY during the sync; "
                "the next poll synchronises it afresh"
            )

    def _removals(
        self,
        conn: _Connection,
        cp: _Checkpoint,
        box: _Mailbox,
        found: int,
        known_ids: KnownIds | None,
    ) -> Iterator[list[str]]:
        """Provider ids (up to the checkpoint's last_uid) gone from the folder, in chunks.

        `known_ids` is read to its end before the first chunk is handed out, so the caller may
        apply removals while this runs; what is held meanwhile is the removed ids only.
        """
        hinted = conn.expunge_hints()
        lowered = (
            cp.highestmodseq is not None
            and box.modseq is not None
            and box.modseq < cp.highestmodseq
        )
        if conn.qresync and cp.highestmodseq is not None and box.modseq is not None and not lowered:
            # In UID windows: the answer also lists every message whose flags changed.
            gone = parse_sequence_set(
                ",".join(
                    f"{a}:{b}"
                    for low in range(1, cp.last_uid + 1, MAX_WINDOW)
                    for a, b in conn.vanished(
                        low, min(low + MAX_WINDOW - 1, cp.last_uid), cp.highestmodseq
                    )
                )
            )
            if known_ids is None:
                # VANISHED may name UIDs we never saw (RFC 7162 allows it): harmless to forget.
                expanded = (uid for low, high in gone for uid in range(low, high + 1))
                yield from _chunks(
                    (provider_id(box.uidvalidity, uid) for uid in expanded), REMOVED_PER_PAGE
                )
                return
            held = _held_uids(known_ids, box.uidvalidity, cp.last_uid)
            removed = [provider_id(box.uidvalidity, uid) for uid in held if _in_ranges(uid, gone)]
            yield from _chunks(removed, REMOVED_PER_PAGE)
            return
        if lowered:
            # Quirk: Dovecot lowers HIGHESTMODSEQ when it rebuilds an index; VANISHED since our
            # (now too high) mod-sequence would miss expunges, so the count check decides.
            log.info("%s lowered HIGHESTMODSEQ of %r", self.settings.where, conn.selected)
        # How many messages up to last_uid are still there, at most: the scan only finds
        # messages that were there when EXAMINE counted, so this never undercounts.
        still_there = box.messages - found
        if not (cp.messages is None or still_there < cp.messages or hinted):
            return
        if known_ids is None:
            log.warning(
                "%s offers no QRESYNC and no known ids were given: removals from %r are not "
                "reported",
                self.settings.where,
                conn.selected,
            )
            return
        removed = []
        chunk: list[int] = []
        for uid in _held_uids(known_ids, box.uidvalidity, cp.last_uid):
            chunk.append(uid)
            if len(chunk) >= PRESENCE_CHUNK:
                removed += self._absent(chunk, box.uidvalidity)
                chunk = []
        if chunk:
            removed += self._absent(chunk, box.uidvalidity)
        yield from _chunks(removed, REMOVED_PER_PAGE)

    def _absent(self, chunk: list[int], uidvalidity: int) -> list[str]:
        present = self._connection().present(chunk)
        return [provider_id(uidvalidity, uid) for uid in chunk if uid not in present]

    # -- waiting ------------------------------------------------------------------------------

    def idle_wait(
        self,
        folder: str = "INBOX",
        timeout: float = 300.0,
        state: Mapping[str, object] | None = None,
    ) -> bool:
        """Block until the server says `folder` gained or lost mail, or `timeout` passes.

        A wake-up signal only (True: poll now); the poll finds what changed. Given the folder's
        checkpoint, returns True at once when the folder already differs from it (or the last
        poll was left unfinished), so mail that arrived between the poll and the IDLE is not
        slept through. Servers without IDLE: waits out the timeout and returns False.
        """
        try:
            conn = self._connection()
            conn.unselect()
            if b"IDLE" not in conn.capabilities:
                time.sleep(timeout)
                return False
            box = conn.examine(folder)
            cp = _Checkpoint.load(state)
            if cp is not None and (
                not cp.complete  # a poll was left unfinished: there is work now
                or cp.uidvalidity != box.uidvalidity
                or (cp.uidnext, cp.messages) != (box.uidnext, box.messages)
            ):
                conn.unselect()
                return True
            changed = conn.idle(min(timeout, IDLE_LIMIT))
            conn.unselect()
            return changed
        except SourceError:
            self._drop()
            raise
        except _IMAP_FAILURES as exc:
            raise self._failure(exc) from exc


def _held_uids(known_ids: KnownIds, uidvalidity: int, upto: int) -> Iterator[int]:
    """UIDs of the caller's ids for this UIDVALIDITY, up to `upto` (others are not ours to judge)."""
    for value in known_ids():
        parsed = parse_provider_id(value)
        if parsed is not None and parsed[0] == uidvalidity and parsed[1] <= upto:
            yield parsed[1]


def _in_ranges(uid: int, ranges: list[tuple[int, int]]) -> bool:
    index = bisect_right(ranges, (uid, math.inf)) - 1
    return index >= 0 and ranges[index][0] <= uid <= ranges[index][1]


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def test_connection(settings: ImapSettings) -> list[str]:
    """Sign in and resolve the folders to sync; their names, or one of our errors saying why not."""
    with ImapSource(settings) as source:
        return source.folders()
