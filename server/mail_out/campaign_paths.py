"""The two ways a campaign email leaves: the configured SMTP server, or the sender's own linked
Microsoft 365 mailbox through Graph `sendMail` (and, in the demo only, an outbox folder). Both take the finished MIME and say one of three
things, which is all the sender needs to stay at-most-once:

* it went out (a response to record);
* `NotSent`: the provider refused it, so nothing went out — permanently (this address fails) or
  for now (try again after `retry_after`);
* `InDoubt`: the exchange broke off after the message was handed over; it may have gone out.

SMTP drives MAIL, RCPT and DATA itself on one connection: a refusal at any step, or a reply to
DATA other than 250, is `NotSent`; a broken connection during DATA is `InDoubt`, and SMTP has no
way to look afterwards (`recover` answers None). Graph posts the MIME (base64, text/plain), which
keeps our Message-ID; a 202 is sent, a 429/503/504 is `NotSent` (Graph refused it; its
Retry-After is waited inline when short), a broken connection `InDoubt` — and `recover` looks
for the Message-ID in the mailbox's Sent Items.
"""

from __future__ import annotations

import base64
import email
import email.policy
import smtplib
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Protocol

import requests

from server.config import Settings
from server.crypto import SecretBox
from server.mail_ingest.oauth import IdentityEndpoints, https_session, link_graph_token_source
from server.mail_ingest.sources.graph import (
    GraphFailure,
    classify_graph_error,
    parse_retry_after,
)
from server.mail_out.smtp import SendFailed, open_session, to_outbox
from server.models import MailboxLink

GRAPH_INLINE_WAIT = 10.0  # seconds: a longer Retry-After puts the campaign back in the queue
GRAPH_ATTEMPTS = 5
TIMEOUT = 60.0


class NotSent(Exception):
    def __init__(self, reason: str, *, permanent: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after


class InDoubt(Exception):
    """The message may or may not have gone out."""


class SendingPath(Protocol):
    def send(self, raw: bytes, sender: str, recipient: str) -> str: ...

    def recover(self, message_id: str) -> bool | None:
        """True: it is in the sent mail; False: it is not (yet); None: there is no way to know."""
        ...

    def close(self) -> None: ...


class SmtpPath:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.smtp: smtplib.SMTP | None = None

    def _session(self) -> smtplib.SMTP:
        if self.smtp is None:
            try:
                self.smtp = open_session(self.settings)
            except SendFailed as exc:
                raise NotSent(str(exc), permanent=False, retry_after=60.0) from None
        return self.smtp

    def _envelope(self, sender: str, recipient: str) -> None:
        """MAIL and RCPT, once more on a fresh connection if the kept one had dropped (nothing
        was handed over yet, so a retry is safe)."""
        for attempt in range(2):
            smtp = self._session()
            try:
                smtp.ehlo_or_helo_if_needed()
                code, said = smtp.mail(sender)
                if code == 250:
                    code, said = smtp.rcpt(recipient)
                    if code in (250, 251):
                        return
                smtp.rset()
            except (smtplib.SMTPServerDisconnected, OSError):
                self.close()
                if attempt:
                    raise NotSent(
                        "the SMTP server closed the connection", permanent=False
                    ) from None
                continue
            text = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
            raise NotSent(f"{code} {text}"[:500], permanent=code >= 500, retry_after=60.0)

    def send(self, raw: bytes, sender: str, recipient: str) -> str:
        self._envelope(sender, recipient)
        smtp = self._session()
        try:
            code, said = smtp.data(raw)
        except smtplib.SMTPDataError as exc:  # the server answered, and not with 250
            error = exc.smtp_error
            text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
            raise NotSent(
                f"{exc.smtp_code} {text}"[:500], permanent=exc.smtp_code >= 500, retry_after=60.0
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise InDoubt(f"the SMTP connection broke off during DATA ({exc})") from None
        return f"{code} {said.decode('utf-8', 'replace')}"[:500]

    def recover(self, message_id: str) -> bool | None:
        return None

    def close(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.quit()
            except (smtplib.SMTPException, OSError):
                self.smtp.close()
            self.smtp = None


class OutboxPath:
    """The demo's way out (no SMTP server configured): each email an .eml file in the outbox
    folder, as the demo's digests are; nothing can refuse it or break off."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def send(self, raw: bytes, sender: str, recipient: str) -> str:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return f"250 written to {to_outbox(self.settings, message)}"

    def recover(self, message_id: str) -> bool | None:
        return None

    def close(self) -> None:
        return None


class GraphPath:
    def __init__(
        self,
        settings: Settings,
        link: MailboxLink,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        secret = SecretBox(settings.secret_keys).decrypt_json(link.secret) if link.secret else {}
        self.tokens = link_graph_token_source(link, secret, settings)
        self.mailbox = str(link.settings["mailbox"])
        self.base = f"{settings.graph_api_url.rstrip('/')}/users/{self.mailbox}"
        self.http = https_session(IdentityEndpoints.from_settings(settings, timeout=TIMEOUT))
        self.sleep = sleep

    def _request(
        self, method: str, url: str, *, data: bytes | None = None, refresh: bool = False
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.tokens.token(force_refresh=refresh)}"}
        if data is not None:
            headers["Content-Type"] = "text/plain"
        response: requests.Response = self.http.request(
            method, url, data=data, headers=headers, timeout=TIMEOUT, allow_redirects=False
        )
        return response

    def _failure(self, response: requests.Response) -> GraphFailure:
        try:
            error = response.json().get("error", {})
        except ValueError:
            error = {}
        return GraphFailure(
            status=response.status_code,
            code=str(error.get("code", "")),
            message=str(error.get("message", "")),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            mailbox=self.mailbox,
            what="sendMail",
        )

    def send(self, raw: bytes, sender: str, recipient: str) -> str:
        body = base64.b64encode(raw)
        refreshed = False
        for _attempt in range(GRAPH_ATTEMPTS):
            try:
                response = self._request("POST", f"{self.base}/sendMail", data=body)
            except requests.ConnectionError as exc:
                if _before_sending(exc):
                    raise NotSent(f"could not reach Graph ({exc})", permanent=False) from None
                raise InDoubt(f"the connection to Graph broke off ({exc})") from None
            except requests.RequestException as exc:
                raise InDoubt(f"no answer from Graph ({exc})") from None
            if response.status_code == 202:
                return "202 Accepted"
            failure = self._failure(response)
            if response.status_code == 401 and not refreshed:
                refreshed = True
                self.tokens.token(force_refresh=True)
                continue
            if response.status_code in (429, 503, 504):
                wait = failure.retry_after if failure.retry_after is not None else 5.0
                if wait <= GRAPH_INLINE_WAIT:
                    self.sleep(wait)
                    continue
                raise NotSent("Graph asks to wait", permanent=False, retry_after=wait)
            error = classify_graph_error(failure)
            permanent = response.status_code in (400, 413)  # this message, not the mailbox
            raise NotSent(error.message, permanent=permanent, retry_after=300.0)
        raise NotSent("Graph kept asking to wait", permanent=False, retry_after=60.0)

    def recover(self, message_id: str) -> bool | None:
        quoted = message_id.replace("'", "''")
        url = f"{self.base}/mailFolders/sentitems/messages"
        try:
            response = self.http.request(
                "GET",
                url,
                params={"$filter": f"internetMessageId eq '{quoted}'", "$select": "id"},
                headers={"Authorization": f"Bearer {self.tokens.token()}"},
                timeout=TIMEOUT,
            )
        except requests.RequestException:
            return False
        if response.status_code != 200:
            raise NotSent(classify_graph_error(self._failure(response)).message, permanent=False)
        return bool(response.json().get("value"))

    def close(self) -> None:
        self.http.close()


def _before_sending(exc: requests.ConnectionError) -> bool:
    """A refused or unresolvable connection never carried the message."""
    text = str(exc)
    return any(s in text for s in ("Connection refused", "Name or service not known", "NewConn"))


__all__ = ["GraphPath", "InDoubt", "NotSent", "SendingPath", "SmtpPath"]
