"""Sending through the SMTP server of RAPPORT_SMTP_URL.

The URL says how (server/config.py checks its form at start-up):

    smtp+starttls://USER:PASSWORD@HOST:587   submission with STARTTLS, then AUTH (PLAIN/LOGIN)
    smtps://USER:PASSWORD@HOST:465           TLS from the first byte
    smtp://HOST:25                           a local relay, no TLS and no AUTH

and, in its query string:

    from=ADDRESS          the sender (default: USER when it is an address)
    auth=xoauth2          SASL XOAUTH2 with an app-only token from Microsoft Entra ID instead of
                          the password (Exchange Online is switching basic SMTP AUTH off);
    tenant=T&client_id=ID with auth=xoauth2: the app registration; PASSWORD is its client secret,
                          USER the mailbox it sends as (the app needs SMTP.SendAsApp and the
                          mailbox permission, as for IMAP: docs/mailboxes.md).

In demo mode without RAPPORT_SMTP_URL, mail goes to the demo's outbox instead: one .eml file per
message under `<RAPPORT_DATA_DIR>/outbox/`, for a person to open in their mail program.

TLS trusts the system's CAs plus RAPPORT_CA_BUNDLE, with host names checked; a server that offers
no STARTTLS on an `smtp+starttls` URL is refused rather than sent to in clear. Failures are
`SendFailed` with a sentence an admin can act on, never the password.
"""

from __future__ import annotations

import base64
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from server.config import Settings
from server.models import utcnow
from server.tls import tls_context

TIMEOUT = 30.0
DEMO_SENDER = "Rapport <digest@demo.invalid>"


class SendFailed(Exception):
    """Sending did not happen; the message says why and what to check."""


@dataclass(frozen=True)
class SmtpTarget:
    scheme: str
    host: str
    port: int
    user: str | None
    password: str | None = field(repr=False)
    sender: str | None
    xoauth2: bool = False
    tenant: str | None = None
    client_id: str | None = None

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        scheme = parts.scheme
        default_port = {"smtps": 465, "smtp+starttls": 587}.get(scheme, 25)
        user = unquote(parts.username) if parts.username else None
        sender = query.get("from") or (user if user and "@" in user else None)
        auth = query.get("auth", "").lower()
        if auth not in ("", "password", "xoauth2"):
            raise SendFailed(f"RAPPORT_SMTP_URL: auth={auth} is not known (password or xoauth2)")
        target = cls(
            scheme=scheme,
            host=parts.hostname or "",
            port=parts.port or default_port,
            user=user,
            password=unquote(parts.password) if parts.password else None,
            sender=sender,
            xoauth2=auth == "xoauth2",
            tenant=query.get("tenant"),
            client_id=query.get("client_id"),
        )
        if target.xoauth2 and not (target.tenant and target.client_id and target.user):
            raise SendFailed(
                "RAPPORT_SMTP_URL: auth=xoauth2 needs the mailbox as USER, the client secret as "
                "PASSWORD, and tenant= and client_id= in the query"
            )
        if target.scheme == "smtp" and target.user:
            raise SendFailed(
                "RAPPORT_SMTP_URL: smtp:// sends in clear, so it takes no password; use "
                "smtp+starttls:// (port 587) or smtps:// (port 465)"
            )
        return target


def send(settings: Settings, message: EmailMessage) -> Path | None:
    """Send one message through RAPPORT_SMTP_URL (its From is set here when missing); in demo
    mode without it, write it to the outbox and return the file."""
    if not settings.smtp_url:
        if settings.demo:
            return to_outbox(settings, message)
        raise SendFailed("RAPPORT_SMTP_URL is not set: Rapport has no way to send mail")
    target = SmtpTarget.parse(settings.smtp_url)
    sender = sender_of(settings)
    if "From" not in message:
        message["From"] = sender
    recipients = [parseaddr(v)[1] for v in message.get_all("To", [])]
    try:
        with _connect(target, settings.ca_bundle) as smtp:
            _authenticate(smtp, target, settings)
            refused = smtp.send_message(
                message, from_addr=parseaddr(sender)[1], to_addrs=recipients
            )
    except SendFailed:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise SendFailed(
            f"{target.host} refused the sign-in ({exc.smtp_code} {_said(exc.smtp_error)}): check "
            "the user and password (or the app's SMTP.SendAsApp permission) in RAPPORT_SMTP_URL"
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        said = "; ".join(f"{a}: {c} {_said(m)}" for a, (c, m) in exc.recipients.items())
        raise SendFailed(f"{target.host} refused every recipient ({said})") from None
    except smtplib.SMTPSenderRefused as exc:
        raise SendFailed(
            f"{target.host} refused the sender {exc.sender} ({exc.smtp_code} "
            f"{_said(exc.smtp_error)}): set from= in RAPPORT_SMTP_URL to an address it may send as"
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise SendFailed(
            f"{target.host} answered {exc.smtp_code} {_said(exc.smtp_error)}"
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise SendFailed(
            f"the TLS certificate of {target.host} is not trusted ({exc.verify_message}); if it "
            "comes from your own CA, give it in RAPPORT_CA_BUNDLE"
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise SendFailed(
            f"could not reach {target.host}:{target.port} ({type(exc).__name__}: {exc}); check "
            "the host and port in RAPPORT_SMTP_URL"
        ) from None
    if refused:
        raise SendFailed(f"{target.host} refused some recipients: {', '.join(sorted(refused))}")
    return None


def open_session(settings: Settings) -> smtplib.SMTP:
    """A connection to RAPPORT_SMTP_URL, signed in, for a sender of many messages that drives
    MAIL, RCPT and DATA itself (campaigns: to know which step a failure happened at)."""
    if not settings.smtp_url:
        raise SendFailed("RAPPORT_SMTP_URL is not set: Rapport has no way to send mail")
    target = SmtpTarget.parse(settings.smtp_url)
    try:
        smtp = _connect(target, settings.ca_bundle)
        try:
            _authenticate(smtp, target, settings)
        except BaseException:
            smtp.close()
            raise
    except SendFailed:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise SendFailed(
            f"{target.host} refused the sign-in ({exc.smtp_code} {_said(exc.smtp_error)}): check "
            "the user and password (or the app's SMTP.SendAsApp permission) in RAPPORT_SMTP_URL"
        ) from None
    except ssl.SSLCertVerificationError as exc:
        raise SendFailed(
            f"the TLS certificate of {target.host} is not trusted ({exc.verify_message}); if it "
            "comes from your own CA, give it in RAPPORT_CA_BUNDLE"
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise SendFailed(
            f"could not reach {target.host}:{target.port} ({type(exc).__name__}: {exc}); check "
            "the host and port in RAPPORT_SMTP_URL"
        ) from None
    return smtp


def to_outbox(settings: Settings, message: EmailMessage) -> Path:
    """The demo's way out: the message as an .eml file in <data dir>/outbox/."""
    if "From" not in message:
        message["From"] = DEMO_SENDER
    outbox = settings.data_dir / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    recipient = parseaddr(str(message.get("To", "")))[1] or "nobody"
    stamp = utcnow().strftime("%Y%m%d-%H%M%S")
    path = outbox / f"{stamp}-{recipient.replace('@', '-at-')}.eml"
    path.write_bytes(message.as_bytes())
    return path


def sender_of(settings: Settings) -> str:
    """The From address digests go out with."""
    if not settings.smtp_url and settings.demo:
        return DEMO_SENDER
    if not settings.smtp_url:
        raise SendFailed("RAPPORT_SMTP_URL is not set: Rapport has no way to send mail")
    target = SmtpTarget.parse(settings.smtp_url)
    if not target.sender:
        raise SendFailed(
            "RAPPORT_SMTP_URL names no sender: add ?from=rapport@your-domain (or sign in as an "
            "address)"
        )
    return f"Rapport <{target.sender}>"


def _connect(target: SmtpTarget, ca_bundle: Path | None) -> smtplib.SMTP:
    local = socket.getfqdn()
    if target.scheme == "smtps":
        return smtplib.SMTP_SSL(
            target.host,
            target.port,
            local_hostname=local,
            timeout=TIMEOUT,
            context=tls_context(ca_bundle),
        )
    smtp = smtplib.SMTP(target.host, target.port, local_hostname=local, timeout=TIMEOUT)
    if target.scheme == "smtp+starttls":
        smtp.ehlo()
        if not smtp.has_extn("starttls"):
            smtp.close()
            raise SendFailed(
                f"{target.host}:{target.port} offers no STARTTLS: Rapport will not send in clear "
                "(use smtps:// if it speaks TLS from the start)"
            )
        smtp.starttls(context=tls_context(ca_bundle))
        smtp.ehlo()
    return smtp


def _authenticate(smtp: smtplib.SMTP, target: SmtpTarget, settings: Settings) -> None:
    if target.xoauth2:
        token = _app_token(target, settings)
        blob = f"user={target.user}\x01auth=Bearer {token}\x01\x01"
        code, answer = smtp.docmd("AUTH", "XOAUTH2 " + base64.b64encode(blob.encode()).decode())
        if code == 334:  # the server sent an error challenge: end the exchange to read it
            code, answer = smtp.docmd("")
        if code != 235:
            raise smtplib.SMTPAuthenticationError(code, answer)
        return
    if target.user and target.password is not None:
        smtp.login(target.user, target.password)


def _app_token(target: SmtpTarget, settings: Settings) -> str:
    from server.mail_ingest.oauth import (
        ClientCredentialsSource,
        IdentityEndpoints,
        MicrosoftApp,
        identity_problem_of,
    )

    app = MicrosoftApp(str(target.tenant), str(target.client_id), client_secret=target.password)
    try:
        return ClientCredentialsSource(app, IdentityEndpoints.from_settings(settings)).token()
    except Exception as exc:
        problem = identity_problem_of(exc)
        if problem is None:
            raise
        raise SendFailed(f"no token for sending mail: {problem.error()}") from None


def _said(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return " ".join(text.split())[:300]
