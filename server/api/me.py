"""/api/v1/me/... — what is yours alone: "log this email when sent", and your daily digest.

GET /api/v1/me/log-when-sent — how the task pane makes "log this email when sent" work for you.

Two ways, because the pane may be closed by the time the email goes out, so nothing can wait for
the send: a BCC to your personal drop address (any Outlook), or an `X-Rapport-Log` header with
your own marker (Outlook with Mailbox 1.8), which capture honours in your Sent folder only (see
`server.crm.rules`). This answer gives the pane what it needs for both, and whether a linked
mailbox captures your sent mail (without one, only the drop address helps).
"""

from __future__ import annotations

from flask import Blueprint, current_app
from pydantic import BaseModel, ConfigDict, Field
from spectree import Response

from server.api.auth import current_viewer
from server.api.common import reading, writing
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.app_context import rapport
from server.crm import digest, mailboxes
from server.crm.rules import log_header_key, log_header_value

bp = Blueprint("me", __name__, url_prefix="/api/v1/me")

# Links that read the mailbox itself (and with it the Sent folder); drop and import links do not.
MAILBOX_KINDS = frozenset({"imap", "graph", "ews"})


class LogHeaderOut(BaseModel):
    name: str = Field(description="The internet header to set on the email being written")
    value: str = Field(description="Your marker: it has effect only in your own Sent mail")


class LogWhenSentOut(BaseModel):
    drop_address: str | None = Field(description="Your drop address to BCC, if you have one")
    header: LogHeaderOut
    sent_mail_captured: bool = Field(
        description="A linked mailbox of yours is captured (so its Sent folder is read)"
    )


@bp.get("/log-when-sent")
@api.validate(resp=Response(HTTP_200=LogWhenSentOut, HTTP_401=ErrorOut), tags=["task pane"])
def log_when_sent() -> LogWhenSentOut:
    """Your drop address and your log-header marker, for "log this email when sent"."""
    viewer = current_viewer()
    domain = rapport(current_app).settings.drop_domain
    # A write only the first time anyone asks: the marker key is made then.
    with writing() as session:
        links = mailboxes.links_owned_by(session, viewer.id, viewer.email)
        drop = next(
            (
                mailboxes.drop_address(link, domain)
                for link in links
                if link.kind == "drop" and link.status == "active" and link.drop_token and domain
            ),
            None,
        )
        value = log_header_value(log_header_key(session), viewer.id)
        captured = any(
            link.kind in MAILBOX_KINDS and link.status not in ("paused", "removed")
            for link in links
        )
    return LogWhenSentOut(
        drop_address=drop,
        header=LogHeaderOut(name="X-Rapport-Log", value=value),
        sent_mail_captured=captured,
    )


class DigestOut(BaseModel):
    enabled: bool = Field(description="Whether you get the daily digest email")
    hour: int = Field(description="The hour it comes, in your time zone (0-23)")
    time_zone: str = Field(description="Your time zone, as Rapport knows it")
    sending: bool = Field(
        description="Whether this Rapport can send mail at all (RAPPORT_SMTP_URL)"
    )


class DigestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = Field(None, description="Turn the digest on or off")
    hour: int | None = Field(None, ge=0, le=23, description="The hour, in your time zone")


def _digest_out(prefs: digest.DigestPrefs, time_zone: str) -> DigestOut:
    sending = rapport(current_app).settings.smtp_url is not None
    return DigestOut(enabled=prefs.enabled, hour=prefs.hour, time_zone=time_zone, sending=sending)


@bp.get("/digest")
@api.validate(resp=Response(HTTP_200=DigestOut, HTTP_401=ErrorOut), tags=["me"])
def get_digest() -> DigestOut:
    """Your daily digest: on or off, and at which hour of your morning."""
    viewer = current_viewer()
    with reading() as session:
        return _digest_out(
            digest.get_prefs(session, viewer.id), digest.zone_name(session, viewer.id)
        )


@bp.put("/digest")
@api.validate(
    json=DigestIn,
    resp=Response(HTTP_200=DigestOut, HTTP_400=ErrorOut, HTTP_401=ErrorOut, HTTP_422=ErrorOut),
    tags=["me"],
)
def put_digest(json: DigestIn) -> DigestOut:
    """Turn your digest on or off, or move it to another hour (send only what changes)."""
    viewer = current_viewer()
    with writing() as session:
        prefs = digest.set_prefs(session, viewer.id, enabled=json.enabled, hour=json.hour)
        return _digest_out(prefs, digest.zone_name(session, viewer.id))
