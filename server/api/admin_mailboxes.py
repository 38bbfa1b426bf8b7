"""/api/v1/admin/mailboxes — linked mailboxes for admins, and /api/v1/mailboxes/mine for everyone.

Admins link IMAP mailboxes (tested before they are saved) and drop addresses, see each link's
status with what to do about it, pause, resume, queue a sync, rotate a drop address and remove a
link. Every view is a thin call into the services `rapport mailbox` uses too
(`server.mail_ingest.links`, `server.crm.mailboxes`).

Members see the links that capture their own mail, read-only (`GET /mailboxes/mine`): whether
capture works for them and, for a drop link, the address to BCC. Changing a link stays with
admins, because what is captured and who sees it is a team decision.

No answer ever carries a password, an OAuth token or the encrypted secret: settings are shown
without them, and `has_credentials` only says whether one is stored.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from flask import Blueprint, current_app
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from spectree import Response

from server.api.auth import admin_only, current_viewer
from server.api.common import ListQuery, PageOut, reading, writing
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.app_context import rapport
from server.crm import mailboxes
from server.mail_ingest import links, oauth
from server.models import CaptureDecision, MailboxLink, utcnow

bp = Blueprint("admin_mailboxes", __name__, url_prefix="/api/v1")
TAGS = ["admin: mailboxes"]
LINK = "/admin/mailboxes/<int:link_id>"
RECENT_DAYS = 7

Address = Annotated[str, Field(min_length=3, max_length=320, description="An email address")]
Level = Literal["full", "subject", "metadata"]
Visibility = Literal["team", "private"]
Folder = Annotated[str, Field(min_length=1, max_length=500)]


class LinkOut(BaseModel):
    id: int
    kind: str = Field(description="imap, drop or import (graph and ews come with their sources)")
    owner: str = Field(description="Whose mailbox it is (their address)")
    owner_user_id: int | None
    aliases: list[str]
    status: str = Field(description="active, paused, needs_attention or error")
    status_reason: str | None = Field(description="What is wrong and what to do; null when fine")
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    next_run_at: datetime | None = Field(description="When the worker syncs it next")
    messages_captured: int
    backlog: int
    capture_level: str
    visibility: str = Field(description="team: the team sees its mail; private: its owner only")
    settings: dict[str, Any] = Field(description="How it is reached; never a secret")
    has_credentials: bool = Field(description="A password or token is stored (never shown)")
    drop_address: str | None = Field(description="For drop links: the address to BCC")
    created_at: datetime


class LinksOut(BaseModel):
    items: list[LinkOut]


class FolderOut(BaseModel):
    folder: str
    checkpoint_updated_at: datetime | None = Field(description="Last time its sync moved on")
    messages: int = Field(description="Messages captured from it and still there")
    gone: int = Field(description="Captured, then moved out or deleted (history keeps them)")


class DecisionCountOut(BaseModel):
    decision: str = Field(description="captured, known, skipped or quarantined")
    rule: str | None = Field(description="The rule that skipped it, or the quarantine reason")
    count: int
    last_at: datetime


class RecentDecisionOut(BaseModel):
    message_key: str = Field(description="Give it to /admin/capture/explain for the whole story")
    folder: str
    decision: str
    rule: str | None
    activity_id: int | None
    decided_at: datetime


class LinkDetailOut(LinkOut):
    folders: list[FolderOut]
    decisions_since: datetime
    decisions: list[DecisionCountOut] = Field(description="Decisions since decisions_since")
    recent_decisions: list[RecentDecisionOut]


class LinkListQuery(ListQuery):
    kind: Literal["imap", "graph", "ews", "drop", "import"] | None = None
    status: Literal["active", "paused", "needs_attention", "error"] | None = None


class MicrosoftOAuthIn(BaseModel):
    """Exchange Online, app-only: an Entra app with IMAP.AccessAsApp (docs/mailboxes.md)."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["microsoft"]
    tenant: str = Field(min_length=1, max_length=253, description="Directory (tenant) ID")
    client_id: str = Field(min_length=1, max_length=100, description="Application (client) ID")
    client_secret: SecretStr | None = Field(
        None, min_length=1, max_length=1024, description="Never shown again"
    )
    certificate: SecretStr | None = Field(
        None,
        min_length=1,
        max_length=65536,
        description="PEM: private key and certificate, instead of a secret; never shown again",
    )

    def credentials(self) -> oauth.MicrosoftApp:
        return oauth.MicrosoftApp(
            tenant=self.tenant,
            client_id=self.client_id,
            client_secret=self.client_secret.get_secret_value() if self.client_secret else None,
            certificate_pem=self.certificate.get_secret_value() if self.certificate else None,
        )


class GoogleOAuthIn(BaseModel):
    """Gmail: an OAuth client and the account's refresh token (scope https://mail.google.com/)."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["google"]
    client_id: str = Field(min_length=1, max_length=300)
    client_secret: SecretStr = Field(min_length=1, max_length=1024, description="Never shown")
    refresh_token: SecretStr = Field(min_length=1, max_length=4096, description="Never shown")

    def credentials(self) -> oauth.RefreshGrant:
        return oauth.RefreshGrant(
            provider="google",
            client_id=self.client_id,
            client_secret=self.client_secret.get_secret_value(),
            refresh_token=self.refresh_token.get_secret_value(),
        )


class ImapConnectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1, max_length=253)
    port: int | None = Field(None, ge=1, le=65535, description="Default 993 (ssl), 143 (starttls)")
    security: Literal["ssl", "starttls"] = "ssl"
    user: str = Field(
        min_length=1, max_length=320, description="The IMAP login (with oauth: the mailbox)"
    )
    password: SecretStr | None = Field(
        None, min_length=1, max_length=1024, description="Never shown again; or give oauth"
    )
    oauth: Annotated[MicrosoftOAuthIn | GoogleOAuthIn, Field(discriminator="provider")] | None = (
        Field(None, description="Sign in with OAuth (XOAUTH2) instead of a password")
    )
    folders: list[Folder] | None = Field(
        None, min_length=1, max_length=50, description="Default: INBOX and the Sent folder"
    )

    def connection(self) -> links.ImapConnection:
        return links.ImapConnection(
            host=self.host,
            port=self.port,
            security=self.security,
            user=self.user,
            password=self.password.get_secret_value() if self.password is not None else None,
            folders=tuple(self.folders) if self.folders is not None else None,
            oauth=self.oauth.credentials() if self.oauth is not None else None,
        )


class ImapLinkIn(ImapConnectionIn):
    owner: Address
    capture_level: Level = "full"
    aliases: list[Address] = Field(
        default_factory=list, max_length=20, description="Other addresses of the owner"
    )
    visibility: Visibility = "team"
    since: str | None = Field(
        None, max_length=40, description="Only mail from then on: 2026-01-31 or an age like 90d"
    )


class ImapLinkOut(LinkOut):
    folders: list[str] = Field(description="The folders the test found; the worker syncs these")


class ConnectionTestOut(BaseModel):
    ok: bool
    folders: list[str]
    message: str


class DropLinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: Address
    capture_level: Level = "full"
    visibility: Visibility = "team"


class SyncQueuedOut(BaseModel):
    link_id: int
    job_id: int | None
    running: bool = Field(description="A worker was already syncing it; nothing more was queued")
    message: str


class RemoveQuery(BaseModel):
    purge: bool = Field(False, description="Also delete the mail only this link captured")


class RemovedOut(BaseModel):
    id: int
    purged: int = Field(description="Activities deleted (only with purge)")
    message: str


def link_out(link: MailboxLink) -> LinkOut:
    domain = rapport(current_app).settings.drop_domain
    return LinkOut(
        id=link.id,
        kind=link.kind,
        owner=link.owner_address,
        owner_user_id=link.owner_user_id,
        aliases=[str(a) for a in link.aliases],
        status=link.status,
        status_reason=mailboxes.what_to_do(link),
        last_success_at=link.last_success_at,
        last_error=link.last_error,
        last_error_at=link.last_error_at,
        next_run_at=link.next_run_at,
        messages_captured=link.messages_captured,
        backlog=link.backlog,
        capture_level=link.capture_level,
        visibility=link.visibility,
        settings=mailboxes.public_settings(link),
        has_credentials=link.secret is not None,
        drop_address=mailboxes.drop_address(link, domain)
        if link.kind == "drop" and link.drop_token and domain
        else None,
        created_at=link.created_at,
    )


def _recent(decision: CaptureDecision) -> RecentDecisionOut:
    return RecentDecisionOut(
        message_key=decision.message_key,
        folder=decision.folder,
        decision=decision.decision,
        rule=decision.rule,
        activity_id=decision.activity_id,
        decided_at=decision.decided_at,
    )


@bp.get("/admin/mailboxes")
@admin_only
@api.validate(
    query=LinkListQuery,
    resp=Response(HTTP_200=PageOut[LinkOut], HTTP_401=ErrorOut, HTTP_403=ErrorOut),
    tags=TAGS,
)
def list_links(query: LinkListQuery) -> PageOut[LinkOut]:
    """Every link with its status, last success, last error and what to do about it."""
    with reading() as session:
        page = mailboxes.links_page(
            session, kind=query.kind, status=query.status, limit=query.limit, cursor=query.cursor
        )
        return PageOut[LinkOut](
            items=[link_out(link) for link in page.items], next_cursor=page.next_cursor
        )


@bp.get(LINK)
@admin_only
@api.validate(
    resp=Response(HTTP_200=LinkDetailOut, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut),
    tags=TAGS,
)
def get_link(link_id: int) -> LinkDetailOut:
    """One link, with each folder's checkpoint and counts and how its recent mail was decided."""
    since = utcnow() - timedelta(days=RECENT_DAYS)
    with reading() as session:
        link = mailboxes.get_link(session, link_id)
        return LinkDetailOut(
            **link_out(link).model_dump(),
            folders=[
                FolderOut(
                    folder=f.folder,
                    checkpoint_updated_at=f.checkpoint_updated_at,
                    messages=f.messages,
                    gone=f.gone,
                )
                for f in mailboxes.folder_states(session, link.id)
            ],
            decisions_since=since,
            decisions=[
                DecisionCountOut(decision=c.decision, rule=c.rule, count=c.count, last_at=c.last_at)
                for c in mailboxes.decision_counts(session, link.id, since)
            ],
            recent_decisions=[_recent(d) for d in mailboxes.recent_decisions(session, link.id)],
        )


@bp.post("/admin/mailboxes/imap")
@admin_only
@api.validate(
    json=ImapLinkIn,
    resp=Response(
        HTTP_201=ImapLinkOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_409=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def add_imap(json: ImapLinkIn) -> tuple[ImapLinkOut, int]:
    """Link an IMAP mailbox. The connection is tested first; when the test fails nothing is
    saved and the error's `field` names what to fix (host, port, security, password, folders;
    with oauth: tenant, client_id, client_secret, certificate, refresh_token)."""
    state = rapport(current_app)
    linked = links.link_imap(
        state.db,
        state.secrets,
        json.connection(),
        links.LinkOptions(
            owner=json.owner,
            capture_level=json.capture_level,
            aliases=tuple(json.aliases),
            visibility=json.visibility,
            since=json.since,
        ),
        ca_bundle=state.settings.ca_bundle,
        authority_host=state.settings.graph_authority_host,
    )
    return ImapLinkOut(**link_out(linked.link).model_dump(), folders=linked.folders), 201


@bp.post("/admin/mailboxes/test")
@admin_only
@api.validate(
    json=ImapConnectionIn,
    resp=Response(
        HTTP_200=ConnectionTestOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def test_connection(json: ImapConnectionIn) -> ConnectionTestOut:
    """Test an IMAP configuration without saving anything (the form's "test connection")."""
    connection = json.connection()
    settings = rapport(current_app).settings
    folders = links.check_imap(
        connection, settings.ca_bundle, authority_host=settings.graph_authority_host
    )
    return ConnectionTestOut(
        ok=True,
        folders=folders,
        message=f"signed in as {connection.user} on {connection.host}:"
        f"{connection.resolved_port}; the link would sync {', '.join(folders)}",
    )


@bp.post("/admin/mailboxes/drop")
@admin_only
@api.validate(
    json=DropLinkIn,
    resp=Response(
        HTTP_201=LinkOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_409=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def add_drop(json: DropLinkIn) -> tuple[LinkOut, int]:
    """Give someone a personal drop address: mail BCC'd or forwarded to it is captured as
    theirs (needs RAPPORT_DROP_DOMAIN)."""
    with writing() as session:
        link, _address = mailboxes.add_drop_link(
            session,
            owner=json.owner,
            domain=rapport(current_app).settings.drop_domain,
            capture_level=json.capture_level,
            visibility=json.visibility,
        )
        return link_out(link), 201


@bp.post(f"{LINK}/pause")
@admin_only
@api.validate(
    resp=Response(HTTP_200=LinkOut, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut),
    tags=TAGS,
)
def pause(link_id: int) -> LinkOut:
    """Stop capturing from the link until it is resumed."""
    with writing() as session:
        return link_out(mailboxes.pause_link(session, link_id))


@bp.post(f"{LINK}/resume")
@admin_only
@api.validate(
    resp=Response(HTTP_200=LinkOut, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut),
    tags=TAGS,
)
def resume(link_id: int) -> LinkOut:
    """Capture again, due at once (also how to retry after fixing what needed attention)."""
    with writing() as session:
        return link_out(mailboxes.resume_link(session, link_id))


@bp.post(f"{LINK}/sync")
@admin_only
@api.validate(
    resp=Response(
        HTTP_202=SyncQueuedOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_404=ErrorOut,
        HTTP_409=ErrorOut,
    ),
    tags=TAGS,
)
def sync(link_id: int) -> tuple[SyncQueuedOut, int]:
    """Queue the link's sync now. A worker runs it (a sync can take minutes); the answer comes
    at once and says so."""
    with writing() as session:
        queued = links.queue_sync(session, link_id)
    out = SyncQueuedOut(
        link_id=queued.link_id, job_id=queued.job_id, running=queued.running, message=queued.message
    )
    return out, 202


@bp.post(f"{LINK}/rotate")
@admin_only
@api.validate(
    resp=Response(
        HTTP_200=LinkOut, HTTP_400=ErrorOut, HTTP_401=ErrorOut, HTTP_403=ErrorOut, HTTP_404=ErrorOut
    ),
    tags=TAGS,
)
def rotate(link_id: int) -> LinkOut:
    """Give a drop link a new address; mail to the old one is refused from now on."""
    with writing() as session:
        mailboxes.rotate_drop_token(session, link_id, rapport(current_app).settings.drop_domain)
        return link_out(mailboxes.get_link(session, link_id))


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: SecretStr = Field(min_length=1, max_length=1000, description="The new password")


@bp.post(f"{LINK}/password")
@admin_only
@api.validate(
    json=PasswordIn,
    resp=Response(
        HTTP_200=LinkOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_404=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def replace_password(link_id: int, json: PasswordIn) -> LinkOut:
    """The mailbox's password changed: the link is tested with the new one, then it is stored
    and a link that needed attention resumes. When the test fails nothing changes and `field`
    says what to fix (IMAP and EWS links that sign in with a password)."""
    state = rapport(current_app)
    link = links.replace_password(
        state.db,
        state.secrets,
        link_id,
        json.password.get_secret_value(),
        ca_bundle=state.settings.ca_bundle,
        actor_id=current_viewer().id,
    )
    return link_out(link)


@bp.delete(LINK)
@admin_only
@api.validate(
    query=RemoveQuery,
    resp=Response(
        HTTP_200=RemovedOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_404=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def remove(link_id: int, query: RemoveQuery) -> RemovedOut:
    """Stop capturing and forget the credentials; captured history stays unless purge=1."""
    with writing() as session:
        purged = mailboxes.remove_link(session, link_id, purge=query.purge)
    kept = (
        f"; {purged} activities only it captured were deleted"
        if query.purge
        else ("; the mail it captured stays")
    )
    return RemovedOut(id=link_id, purged=purged, message=f"link {link_id} removed{kept}")


@bp.get("/mailboxes/mine")
@api.validate(resp=Response(HTTP_200=LinksOut, HTTP_401=ErrorOut), tags=["mailboxes"])
def my_links() -> LinksOut:
    """The links capturing your own mail and how they are doing (read-only; admins change
    them). A drop link shows the address to BCC."""
    viewer = current_viewer()
    with reading() as session:
        return LinksOut(
            items=[
                link_out(link)
                for link in mailboxes.links_owned_by(session, viewer.id, viewer.email)
            ]
        )
