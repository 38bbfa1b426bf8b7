"""Linking a Microsoft 365 mailbox by signing in in the browser (delegated Graph access).

`POST /api/v1/admin/mailboxes/graph/authorize` (admins) answers with the Entra ID authorize URL
to send the browser to (authorization code with PKCE) and the sign-in's state. After the user
signed in and consented, Entra sends the browser to `GET /api/v1/graph/callback?code&state`,
which links the mailbox (tested first, like every link) or re-connects the link that needed
attention, and answers with a small page saying what happened or what to fix.

The callback is anonymous: a browser redirect carries no bearer token. The state authenticates
it (256 random bits, single use, ten minutes; `server.mail_ingest.links`). It lives under
/api/v1/graph, not /api/v1/admin, because every /admin endpoint is for signed-in admins only.
Its address is the redirect URI to register on the app (Web platform):
`RAPPORT_PUBLIC_URL/api/v1/graph/callback`, or this server's own address when RAPPORT_PUBLIC_URL
is not set.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Annotated, Literal

from flask import Blueprint, Response, current_app, request
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from spectree import Response as Responses

from server.api.auth import admin_only, current_viewer, public
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.app_context import rapport
from server.crm.errors import DomainError
from server.mail_ingest import links

bp = Blueprint("graph_signin", __name__, url_prefix="/api/v1")
TAGS = ["admin: mailboxes"]
CALLBACK = "/graph/callback"

Address = Annotated[str, Field(min_length=3, max_length=320, description="An email address")]
Folder = Annotated[str, Field(min_length=1, max_length=500)]


class GraphSignInIn(BaseModel):
    """A new delegated link (owner, tenant, client_id and options), or a re-connect (link_id:
    tenant and client_id default to the link's; its folders and options stay)."""

    model_config = ConfigDict(extra="forbid")

    owner: Address | None = Field(None, description="The mailbox to read (also its owner)")
    tenant: str | None = Field(
        None, min_length=1, max_length=253, description="Directory (tenant) ID or domain"
    )
    client_id: str | None = Field(
        None, min_length=1, max_length=100, description="Application (client) ID"
    )
    client_secret: SecretStr | None = Field(
        None,
        min_length=1,
        max_length=1024,
        description="Only for an app that is not a public client; never shown again",
    )
    folders: list[Folder] | None = Field(
        None, min_length=1, max_length=50, description="Default: Inbox and Sent Items"
    )
    calendar: bool = Field(True, description="Also capture meetings from the calendar")
    capture_level: Literal["full", "subject", "metadata"] = "full"
    aliases: list[Address] = Field(default_factory=list, max_length=20)
    visibility: Literal["team", "private"] = "team"
    since: str | None = Field(
        None, max_length=40, description="Only mail from then on: 2026-01-31 or an age like 90d"
    )
    link_id: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Re-connect this Graph link instead"
    )

    def request(self) -> links.GraphSignInRequest:
        return links.GraphSignInRequest(
            owner=self.owner,
            tenant=self.tenant,
            client_id=self.client_id,
            client_secret=self.client_secret.get_secret_value() if self.client_secret else None,
            folders=tuple(self.folders) if self.folders is not None else None,
            calendar=self.calendar,
            capture_level=self.capture_level,
            aliases=tuple(self.aliases),
            visibility=self.visibility,
            since=self.since,
            link_id=self.link_id,
        )


class GraphSignInOut(BaseModel):
    authorize_url: str = Field(description="Send the browser here (Microsoft's sign-in)")
    state: str = Field(description="The sign-in's state; the callback finds it with it")
    redirect_uri: str = Field(
        description="Where Microsoft sends the browser back: register it on the app "
        "(Authentication > Add a platform > Web)"
    )
    expires_at: datetime = Field(description="The sign-in must be finished before this")


def redirect_uri() -> str:
    """The callback's absolute address: under RAPPORT_PUBLIC_URL, else as this request came."""
    base = rapport(current_app).settings.public_url or request.host_url.rstrip("/")
    return f"{base}/api/v1{CALLBACK}"


@bp.post("/admin/mailboxes/graph/authorize")
@admin_only
@api.validate(
    json=GraphSignInIn,
    resp=Responses(
        HTTP_200=GraphSignInOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_404=ErrorOut,
        HTTP_409=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=TAGS,
)
def authorize(json: GraphSignInIn) -> GraphSignInOut:
    """Start a browser sign-in that links a Microsoft 365 mailbox with delegated access (or
    re-connects a Graph link that needs attention): send the browser to `authorize_url`. The
    options and the tenant are checked first; `field` names what to fix."""
    state = rapport(current_app)
    pending = links.begin_graph_sign_in(
        state.db,
        state.secrets,
        json.request(),
        redirect_uri=redirect_uri(),
        authority_host=state.settings.graph_authority_host,
        ca_bundle=state.settings.ca_bundle,
        actor_id=current_viewer().id,
    )
    return GraphSignInOut(
        authorize_url=pending.authorize_url,
        state=pending.state,
        redirect_uri=pending.redirect_uri,
        expires_at=pending.expires_at,
    )


@bp.get(CALLBACK)
@public
def callback() -> Response:
    """Where Entra ID sends the browser back (authorization code flow, response_mode query):
    the mailbox is linked, or the page says what to fix."""
    state = rapport(current_app)
    answer = {k: v for k, v in request.args.items() if isinstance(v, str)}
    try:
        done = links.finish_graph_sign_in(
            state.db,
            state.secrets,
            answer.get("state", ""),
            answer,
            api_url=state.settings.graph_api_url,
            ca_bundle=state.settings.ca_bundle,
            authority_host=state.settings.graph_authority_host,
        )
    except DomainError as exc:
        code = getattr(exc, "code", "invalid")
        return _page(
            exc.status,
            "not_linked",
            "The mailbox was not linked",
            [exc.message, "Fix it, then start the sign-in again from the admin page."],
            code=code,
        )
    link = done.link
    what = "re-connected" if done.reconnected else "linked"
    calendar = " and the calendar" if done.calendar else ""
    return _page(
        200,
        what,
        f"{link.owner_address} is {what}",
        [
            f"Mailbox link {link.id}, signed in as {done.signed_in_as or 'the user'}: Rapport "
            f"captures {', '.join(done.folders)}{calendar}.",
            "The next `rapport worker` pass syncs it; you can close this tab.",
        ],
        link_id=link.id,
    )


def _page(
    status: int,
    outcome: str,
    title: str,
    lines: list[str],
    *,
    link_id: int | None = None,
    code: str | None = None,
) -> Response:
    """A small self-contained page (no script) for the browser that came back from Microsoft;
    `data-*` attributes let the admin page (or a test) read the outcome."""
    attributes = f' data-outcome="{html.escape(outcome)}"'
    if link_id is not None:
        attributes += f' data-link-id="{link_id}"'
    if code is not None:
        attributes += f' data-code="{html.escape(code)}"'
    paragraphs = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Rapport: {html.escape(title)}</title>"
        "<style>body{font:16px/1.5 system-ui,sans-serif;margin:3rem auto;max-width:36rem;"
        "padding:0 1rem}h1{font-size:1.4rem}</style></head>"
        f"<body><main{attributes}><h1>{html.escape(title)}</h1>{paragraphs}"
        '<p><a href="/app/">Back to Rapport</a></p></main></body></html>'
    )
    response = current_app.response_class(body, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response
