"""The drop address: an SMTP listener that takes mail for `crm+<token>@<drop domain>`.

Why: not every user can link a mailbox. Anyone can BCC their drop address on outgoing mail or
forward a conversation to it, from any mail program. The token decides whose mail it is -- never
the From header, which anyone can forge -- so an unknown or revoked token is refused at RCPT
time, before any data is sent, and the sending server tells its user. A message is acknowledged
(250) only after `store` returned, so an accepted message is never lost: when storing fails the
sender gets a temporary 451 and tries again (downstream deduplicates by Message-ID, so a message
stored for one of two recipients before a failure is harmless).

What a drop message means is decided by two pure functions the capture side calls on the stored
bytes: `is_bcc_copy` (the user's own outgoing mail, captured as is) and `unwrap_forward` (the
original carried by a forward: an attached message, or an inline forward rebuilt from its
quoted header block). `drop_content` combines them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import ssl
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr, getaddresses

from aiosmtpd.smtp import SMTP, Envelope, Session

from server.mail_ingest.errors import BadItem
from server.mail_ingest.mime import attached_messages, inline_forward_headers, parse_message
from server.mail_ingest.mime_fields import normalise_address, parse_date

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = 25 * 1024 * 1024  # what most mail services let a user send
MAX_RECIPIENTS = 50
DROP_LOCAL_PREFIX = "crm+"
_TOKEN = re.compile(r"[a-z0-9][a-z0-9_-]{0,127}")
_ADDRESS = re.compile(r"[^\s<>\[\]:;,\"']+@[^\s<>\[\]:;,\"']+")
_FIELD_LINE = re.compile(r"^[\s>*]*[^\W\d][\w .-]{0,25}\*{0,2}\s*:", re.UNICODE)
_MAILTO = re.compile(r"\[mailto:([^\]\s]+)\]", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class DropTarget:
    """Whose drop address a token is (what `resolve_token` returns for a live token)."""

    token: str
    user_id: int
    owner_addresses: frozenset[str] = frozenset()


ResolveToken = Callable[[str], DropTarget | None]
# store(target, raw message, envelope sender, the recipient address it came in for)
StoreMessage = Callable[[DropTarget, bytes, str, str], None]


def drop_address(token: str, domain: str) -> str:
    return f"{DROP_LOCAL_PREFIX}{token}@{domain}"


def drop_token(address: str, domain: str) -> str | None:
    """The token of `crm+<token>@<domain>` (lower case), or None for any other address.

    Case-insensitive throughout: mail servers on the way may change the case of an address.
    """
    local, at, host = address.strip().strip("<>").rpartition("@")
    if not at or host.lower().rstrip(".") != domain.lower().rstrip("."):
        return None
    local = local.lower()
    if not local.startswith(DROP_LOCAL_PREFIX):
        return None
    token = local[len(DROP_LOCAL_PREFIX) :]
    return token if _TOKEN.fullmatch(token) else None


def _refused(address: str) -> str:
    return f"550 5.1.1 <{address}>: unknown or revoked Rapport drop address"


class _Handler:
    """aiosmtpd hooks; blocking calls (`resolve_token`, `store`) run off the event loop."""

    def __init__(self, server: DropServer) -> None:
        self.drop = server
        self.targets: weakref.WeakKeyDictionary[Envelope, list[tuple[DropTarget, str]]] = (
            weakref.WeakKeyDictionary()
        )

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        token = drop_token(address, self.drop.domain)
        if token is None:
            return _refused(address)
        targets = self.targets.setdefault(envelope, [])
        if len(targets) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        loop = asyncio.get_running_loop()
        try:
            target = await loop.run_in_executor(None, self.drop.resolve_token, token)
        except Exception:
            log.exception("drop address lookup failed", extra={"rcpt": address})
            return "451 4.3.0 Temporary failure looking up the address; try again later"
        if target is None:
            log.info("drop mail refused: unknown or revoked token", extra={"rcpt": address})
            return _refused(address)
        if all(known.token != target.token for known, _ in targets):
            targets.append((target, address))
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content
        if raw is None:
            raw = envelope.content if isinstance(envelope.content, bytes) else b""
        sender = envelope.mail_from or ""
        loop = asyncio.get_running_loop()
        for target, rcpt in self.targets.pop(envelope, []):
            try:
                await loop.run_in_executor(None, self.drop.store, target, raw, sender, rcpt)
            except Exception:
                log.exception("storing drop mail failed", extra={"rcpt": rcpt})
                return "451 4.3.0 Could not store the message; try again later"
        return "250 2.0.0 Message stored"


class DropServer:
    """The SMTP listener, on its own event-loop thread: start(), stop() (or use it in `with`).

    `port` 0 picks a free port; `port` says which after start(). With `tls_context` the server
    offers STARTTLS (and insists on it when `require_starttls`). SIZE is advertised, and bigger
    mail is refused with 552. No AUTH: the drop address receives mail, it relays none.
    `resolve_token` and `store` run on worker threads, possibly several at once.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        domain: str,
        resolve_token: ResolveToken,
        store: StoreMessage,
        max_size: int = DEFAULT_MAX_SIZE,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        timeout: float = 300.0,
    ) -> None:
        self.host = host
        self.port = port
        self.domain = domain
        self.resolve_token = resolve_token
        self.store = store
        self.max_size = max_size
        self.tls_context = tls_context
        self.require_starttls = require_starttls
        self.timeout = timeout
        self._handler = _Handler(self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def __enter__(self) -> DropServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._loop is not None:
            return
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="rapport-drop-smtp", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._server = asyncio.run_coroutine_threadsafe(self._listen(), loop).result(30)
        except BaseException:
            self._close_loop()
            raise
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("drop address listener on %s:%s for %s", self.host, self.port, self.domain)

    async def _listen(self) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        return await loop.create_server(self._session, host=self.host, port=self.port)

    def _session(self) -> SMTP:
        assert self._loop is not None
        smtp = SMTP(
            self._handler,
            data_size_limit=self.max_size,
            enable_SMTPUTF8=True,
            hostname=self.domain,
            ident="Rapport drop address",
            tls_context=self.tls_context,
            require_starttls=self.require_starttls,
            timeout=self.timeout,
            auth_exclude_mechanism=["LOGIN", "PLAIN"],
            loop=self._loop,
        )
        self._sessions.add(smtp)
        return smtp

    def stop(self) -> None:
        """Stop listening and end open sessions (their senders retry later)."""
        loop = self._loop
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(30)
        finally:
            self._close_loop()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        # Let the transports' close callbacks run before the loop stops.
        await asyncio.sleep(0)

    def _close_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(30)
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


# --------------------------------------------------------------------------------------------
# What a drop message means


def _is_drop_address(address: str) -> bool:
    return address.split("@", 1)[0].lower().startswith(DROP_LOCAL_PREFIX)


def is_bcc_copy(raw: bytes, owner_addresses: Iterable[str]) -> bool:
    """Whether `raw` is the owner's own outgoing mail with the drop address in BCC.

    From is one of the owner's addresses, and no drop address is visible in To or Cc (a message
    written *to* the drop address -- a forward -- names it there; a BCC copy cannot).
    """
    owners = {a for a in (normalise_address(o) for o in owner_addresses) if a is not None}
    try:
        item = parse_message(raw, want_subject=False, want_body=False)
    except BadItem:
        return False
    sender = item.sender
    if sender is None or sender.address not in owners:
        return False
    return not any(
        p.role in ("to", "cc") and _is_drop_address(p.address) for p in item.participants
    )


def unwrap_forward(raw: bytes) -> bytes | None:
    """The original message a forward carries, or None when `raw` forwards nothing.

    An attached message (Outlook's "forward as attachment", message/rfc822 or .eml) is returned
    as its bytes; with several, the first. An inline forward (Outlook, Gmail, Apple Mail and
    their translations) loses the original's headers but keeps a block of them as text: a
    minimal RFC 822 message is rebuilt from that block and the text after it, with a
    Message-ID derived from its content, so the same forward sent twice is one message.
    """
    attached = attached_messages(raw)
    if attached:
        return attached[0]
    try:
        item = parse_message(raw, want_subject=True, want_body=True, attachment_content_cap=0)
    except BadItem:
        return None
    text = item.text or ""
    fields = inline_forward_headers(text)
    if not fields or "from" not in fields:
        return None
    return _rebuild(fields, _forwarded_body(text, fields))


def drop_content(raw: bytes, owner_addresses: Iterable[str]) -> bytes:
    """What to capture of a message sent to a drop address: the owner's BCC copy as is, else
    the forwarded original, else the message itself."""
    if is_bcc_copy(raw, owner_addresses):
        return raw
    return unwrap_forward(raw) or raw


def _forwarded_body(text: str, fields: dict[str, str]) -> str:
    """The text after the forwarded header block (which ends at its first blank line)."""
    lines = text.replace("\r\n", "\n").split("\n")
    found = _ADDRESS.search(fields["from"])
    anchors = [a for a in (found.group(0) if found else None, fields.get("subject")) if a]
    start = next(
        (
            i
            for i, line in enumerate(lines)
            if _FIELD_LINE.match(line) and any(a[:80] in line for a in anchors)
        ),
        None,
    )
    if start is None:
        return ""
    end = next((i for i in range(start, len(lines)) if not lines[i].strip(" \t>")), len(lines))
    return "\n".join(lines[end + 1 :]).strip("\n") + "\n"


def _addresses(value: str) -> str:
    """An address header value from a forwarded block's free text ("A <a@x>; B [mailto:b@y]")."""
    value = _MAILTO.sub(r"<\1>", value).replace(";", ",")
    pairs = [(name.strip().strip("*"), addr) for name, addr in getaddresses([value])]
    return ", ".join(formataddr((name, addr)) for name, addr in pairs if "@" in addr)


def _one_line(value: str) -> str:
    return " ".join(value.split())[:998]


def _rebuild(fields: dict[str, str], body: str) -> bytes:
    message = EmailMessage(policy=SMTP_POLICY)
    for header, key in (("From", "from"), ("To", "to"), ("Cc", "cc")):
        value = _addresses(fields.get(key, ""))
        if value:
            message[header] = value
    subject = _one_line(fields.get("subject", ""))
    if subject:
        message["Subject"] = subject
    date = parse_date(fields.get("date", ""), []) if fields.get("date") else None
    if date is not None:
        message["Date"] = format_datetime(date)
    found = _ADDRESS.search(fields["from"])
    sender = (normalise_address(found.group(0)) if found else None) or _one_line(fields["from"])
    when = date.isoformat() if date is not None else _one_line(fields.get("date", ""))
    identity = "\x00".join([sender, when, subject, " ".join(body.split())])
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    message["Message-ID"] = f"<fwd.{digest}@rapport.invalid>"
    message["X-Rapport-Rebuilt"] = "inline forward"
    message.set_content(body or "\n")
    return message.as_bytes()
