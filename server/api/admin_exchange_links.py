"""/api/v1/admin/mailboxes/graph and /ews — linking Exchange mailboxes from the admin page.

The same links `rapport mailbox add graph` (app-only: a client secret or a certificate) and
`rapport mailbox add ews` make, through the same services (`links.link_graph`,
`links.link_ews`): the link is tested before it is saved, and a failed test answers 400 with the
`field` to fix and a `code` saying which kind of problem it is; `/graph/test` and `/ews/test` run
the same test and save nothing (the form's "Test connection"). The delegated Graph link, where a
user signs in, is `server.api.graph_signin`. Kept apart from `admin_mailboxes` so that module
stays about the links themselves.
"""

from __future__ import annotations

from typing import Annotated, Literal

from flask import Blueprint, current_app
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from spectree import Response

from server.api.admin_mailboxes import TAGS, ConnectionTestOut, ImapLinkOut, link_out
from server.api.auth import admin_only
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.app_context import rapport
from server.mail_ingest import links

bp = Blueprint("admin_exchange_links", __name__, url_prefix="/api/v1")

Address = Annotated[str, Field(min_length=3, max_length=320, description="An email address")]
Folder = Annotated[str, Field(min_length=1, max_length=500)]
ERRORS = {
    "HTTP_400": ErrorOut,
    "HTTP_401": ErrorOut,
    "HTTP_403": ErrorOut,
    "HTTP_409": ErrorOut,
    "HTTP_422": ErrorOut,
}


class ExchangeLinkIn(BaseModel):
    """What every Exchange link takes besides how it is reached."""

    model_config = ConfigDict(extra="forbid")

    owner: Address = Field(
        description="The mailbox to read (a person's or a shared one): its owner"
    )
    folders: list[Folder] | None = Field(
        None,
        min_length=1,
        max_length=50,
        description="Well-known names (inbox, sentitems) or paths (Inbox/Projects); "
        "default Inbox and Sent Items",
    )
    calendar: bool = Field(True, description="Also capture meetings from the calendar")
    capture_level: Literal["full", "subject", "metadata"] = "full"
    aliases: list[Address] = Field(
        default_factory=list, max_length=20, description="Other addresses of the owner"
    )
    visibility: Literal["team", "private"] = "team"
    since: str | None = Field(
        None, max_length=40, description="Only mail from then on: 2026-01-31 or an age like 90d"
    )

    def options(self) -> links.LinkOptions:
        return links.LinkOptions(
            owner=self.owner,
            capture_level=self.capture_level,
            aliases=tuple(self.aliases),
            visibility=self.visibility,
            since=self.since,
        )

    def folder_names(self) -> tuple[str, ...] | None:
        return tuple(self.folders) if self.folders is not None else None


class GraphLinkIn(ExchangeLinkIn):
    """App-only access: an Entra app with the application permissions Mail.Read and
    Calendars.Read and admin consent (docs/graph.md); a client secret or a certificate."""

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

    def connection(self) -> links.GraphConnection:
        return links.GraphConnection(
            mailbox=self.owner,
            tenant=self.tenant,
            client_id=self.client_id,
            client_secret=self.client_secret.get_secret_value() if self.client_secret else None,
            certificate_pem=self.certificate.get_secret_value() if self.certificate else None,
            folders=self.folder_names(),
            calendar=self.calendar,
        )


class EwsLinkIn(ExchangeLinkIn):
    """An on-premises Exchange server: a service account that opens the mailbox by
    impersonation (ApplicationImpersonation) or as a delegate (FullAccess), or an Entra app
    through hybrid modern auth (`auth` oauth: tenant, client_id, client_secret); docs/ews.md."""

    server: str | None = Field(
        None,
        max_length=2000,
        description="https://HOST/EWS/Exchange.asmx, or just the server's host name; none: "
        "found by Autodiscover from the owner's address",
    )
    user: str | None = Field(
        None, max_length=320, description="The service account: DOMAIN\\name or name@domain"
    )
    password: SecretStr | None = Field(
        None, min_length=1, max_length=1024, description="Never shown again"
    )
    auth: Literal["ntlm", "basic", "oauth"] = "ntlm"
    access: Literal["impersonation", "delegate"] | None = Field(
        None, description="Default: delegate when user is the mailbox itself, else impersonation"
    )
    tenant: str | None = Field(None, max_length=253, description="oauth: Directory (tenant) ID")
    client_id: str | None = Field(None, max_length=100, description="oauth: Application ID")
    client_secret: SecretStr | None = Field(
        None, min_length=1, max_length=1024, description="oauth: never shown again"
    )

    @model_validator(mode="after")
    def _one_way_to_sign_in(self) -> EwsLinkIn:
        """A password with a user, or an app (tenant, client id, secret): never half of both."""
        app = {
            "tenant": self.tenant,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        account = {"user": self.user, "password": self.password}
        needed, stray = (app, account) if self.auth == "oauth" else (account, app)
        missing = [name for name, value in needed.items() if not value]
        if missing:
            raise ValueError(f"auth {self.auth} needs {' and '.join(missing)}")
        given = [name for name, value in stray.items() if value]
        if given:
            raise ValueError(f"{', '.join(given)} cannot be used with auth {self.auth}")
        return self

    def connection(self) -> links.EwsConnection:
        # As `rapport mailbox add ews`: an account opening its own mailbox needs no role, and an
        # app has no mailbox of its own.
        user = (self.user or "").strip()
        own = user.lower() == self.owner.strip().lower()
        return links.EwsConnection(
            server=self.server,
            mailbox=self.owner,
            user=user,
            password=self.password.get_secret_value() if self.password else "",
            auth=self.auth,
            access=self.access or ("delegate" if own and user else "impersonation"),
            folders=self.folder_names(),
            calendar=self.calendar,
            tenant=self.tenant,
            client_id=self.client_id,
            client_secret=self.client_secret.get_secret_value() if self.client_secret else None,
        )


class ExchangeLinkOut(ImapLinkOut):
    calendar: bool = Field(description="The test could read the calendar; meetings are captured")


class ExchangeTestOut(ConnectionTestOut):
    calendar: bool = Field(description="The calendar could be read; meetings would be captured")


class EwsTestOut(ExchangeTestOut):
    server: str = Field(description="The EWS URL (found by Autodiscover when none was given)")


TEST_ERRORS = {key: value for key, value in ERRORS.items() if key != "HTTP_409"}


def meetings(calendar: bool) -> str:
    """The test reads the calendar only when it is wanted, and fails when it cannot."""
    return "and meetings from the calendar" if calendar else "(no meetings: calendar off)"


@bp.post("/admin/mailboxes/graph")
@admin_only
@api.validate(json=GraphLinkIn, resp=Response(HTTP_201=ExchangeLinkOut, **ERRORS), tags=TAGS)
def add_graph(json: GraphLinkIn) -> tuple[ExchangeLinkOut, int]:
    """Link a Microsoft 365 mailbox through Microsoft Graph with app-only access. The link is
    tested first (a token, the mailbox, its folders, the calendar); when the test fails nothing
    is saved and `field` names what to fix (tenant, client_id, client_secret, owner, folders,
    host)."""
    state = rapport(current_app)
    linked = links.link_graph(
        state.db,
        state.secrets,
        json.connection(),
        json.options(),
        api_url=state.settings.graph_api_url,
        ca_bundle=state.settings.ca_bundle,
        authority_host=state.settings.graph_authority_host,
    )
    out = ExchangeLinkOut(
        **link_out(linked.link).model_dump(), folders=linked.folders, calendar=linked.calendar
    )
    return out, 201


@bp.post("/admin/mailboxes/ews")
@admin_only
@api.validate(json=EwsLinkIn, resp=Response(HTTP_201=ExchangeLinkOut, **ERRORS), tags=TAGS)
def add_ews(json: EwsLinkIn) -> tuple[ExchangeLinkOut, int]:
    """Link a mailbox on an on-premises Exchange server through Exchange Web Services. The link
    is tested first (the EWS URL found by Autodiscover when no server is given); when the test
    fails nothing is saved and `field` names what to fix (server, user, password, tenant,
    client_id, client_secret, owner, folders)."""
    state = rapport(current_app)
    linked = links.link_ews(
        state.db,
        state.secrets,
        json.connection(),
        json.options(),
        ca_bundle=state.settings.ca_bundle,
        authority_host=state.settings.graph_authority_host,
        autodiscover_urls=state.settings.ews_autodiscover_urls,
    )
    out = ExchangeLinkOut(
        **link_out(linked.link).model_dump(), folders=linked.folders, calendar=linked.calendar
    )
    return out, 201


@bp.post("/admin/mailboxes/graph/test")
@admin_only
@api.validate(json=GraphLinkIn, resp=Response(HTTP_200=ExchangeTestOut, **TEST_ERRORS), tags=TAGS)
def test_graph(json: GraphLinkIn) -> ExchangeTestOut:
    """Test a Graph app-only link as `POST /admin/mailboxes/graph` would, without saving
    anything (the form's "Test connection")."""
    settings = rapport(current_app).settings
    found = links.check_graph(
        json.connection(),
        api_url=settings.graph_api_url,
        ca_bundle=settings.ca_bundle,
        authority_host=settings.graph_authority_host,
    )
    folders = [f.name for f in found.folders]
    return ExchangeTestOut(
        ok=True,
        folders=folders,
        calendar=found.calendar,
        message=f"signed in as the app {json.client_id} and opened {json.owner}; the link "
        f"would sync {', '.join(folders)} {meetings(found.calendar)}",
    )


@bp.post("/admin/mailboxes/ews/test")
@admin_only
@api.validate(json=EwsLinkIn, resp=Response(HTTP_200=EwsTestOut, **TEST_ERRORS), tags=TAGS)
def test_ews(json: EwsLinkIn) -> EwsTestOut:
    """Test an EWS link as `POST /admin/mailboxes/ews` would (finding the EWS URL by
    Autodiscover when no server is given), without saving anything."""
    settings = rapport(current_app).settings
    connection = json.connection()
    found = links.check_ews(
        connection,
        ca_bundle=settings.ca_bundle,
        authority_host=settings.graph_authority_host,
        autodiscover_urls=settings.ews_autodiscover_urls,
    )
    folders = [f.name for f in found.folders]
    calendar = found.calendar_id is not None
    who = f"the app {json.client_id}" if json.auth == "oauth" else connection.user
    how = "found by Autodiscover" if not connection.url else "given"
    return EwsTestOut(
        ok=True,
        folders=folders,
        calendar=calendar,
        server=found.server,
        message=f"signed in as {who} at {found.server} ({how}) and opened {json.owner}; the "
        f"link would sync {', '.join(folders)} {meetings(calendar)}",
    )
