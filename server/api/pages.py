"""The browser pages and what they load: the pane (`/pane/`), the pane preview (`/preview/`), the
web app (`/app/`), front-end packages from node_modules (`/vendor/...`) and the pane's two
anonymous answers.

Why a blueprint and not a static folder: each file served is named here. Our own pages are the
files of `static/pane/`, `static/preview/` and `static/app/` with a known suffix; of node_modules
only the files of the allow-list below are served (a package directory holds far more than a
browser needs: sources, maps, tooling), each with its content type and a cache lifetime.

The preview renders the real pane in a frame beside a picker of your recently captured emails.
Its frame loads `/preview/pane`: the pane's own `index.html` with Office.js swapped for a small
stand-in (`static/preview/office-standin.js`) that plays Outlook. In demo mode only (`rapport
demo`, answering a browser on this machine) the preview signs in as the demo admin by itself.

The web app is the same stack in a whole browser tab: its own modules under `static/app/` plus
the pane's `http.js`, `dom.js` and `theme.js` (imported from `/pane/`, not copied), its routes
after the `#` (so this one page serves them all).
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, request
from pydantic import BaseModel, Field
from spectree import Response as Responses
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.api.audit import emails_read
from server.api.auth import current_viewer, public
from server.api.common import reading
from server.api.errors import error_response
from server.api.schemas import ErrorOut
from server.api.spec import api
from server.api.tokens import no_store
from server.app_context import rapport
from server.crm.activities import visible_activity
from server.crm.addresses import normalise_address
from server.crm.errors import NotFound
from server.crm.threads import normalise_message_id
from server.crm.timeline import present
from server.crm.viewer import Viewer, visible_to
from server.mail_ingest.pane_log import find_logged
from server.models import Activity, MailboxLink, MailboxObservation

bp = Blueprint("pages", __name__)

ROOT = Path(__file__).resolve().parents[2]
STATIC_DIR = ROOT / "static"
NODE_MODULES = ROOT / "node_modules"
OFFICE_JS = "https://appsforoffice.microsoft.com/lib/1/hosted/office.js"
PREVIEW_STANDIN = "/preview/office-standin.js"

PAGE_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".html": "text/html",
}
PAGE_FILE = re.compile(r"[a-z0-9][a-z0-9-]*\.(js|css|svg|png|html)")

# @fluentui/tokens is ES modules (no bundle): the theme objects and the modules they import.
# tests/e2e checks this list against the imports of themes/web/index.js, so an upgrade of the
# package that adds a module fails a test instead of a pane.
FLUENT_TOKEN_MODULES = (
    "alias/darkColor.js",
    "alias/darkColorPalette.js",
    "alias/lightColor.js",
    "alias/lightColorPalette.js",
    "global/borderRadius.js",
    "global/brandColors.js",
    "global/colorPalette.js",
    "global/colors.js",
    "global/curves.js",
    "global/durations.js",
    "global/fonts.js",
    "global/index.js",
    "global/spacings.js",
    "global/strokeWidths.js",
    "global/typographyStyles.js",
    "sharedColorNames.js",
    "statusColorMapping.js",
    "themes/web/darkTheme.js",
    "themes/web/index.js",
    "themes/web/lightTheme.js",
    "tokens.js",
    "utils/createDarkTheme.js",
    "utils/createLightTheme.js",
    "utils/shadows.js",
)
# URL under /vendor/ -> file under node_modules/
VENDOR_FILES: dict[str, str] = {
    "fluent/web-components.min.js": "@fluentui/web-components/dist/web-components.min.js",
    "msal-browser.min.js": "@azure/msal-browser/lib/msal-browser.min.js",
    **{f"fluent-tokens/{m}": f"@fluentui/tokens/lib/{m}" for m in FLUENT_TOKEN_MODULES},
}
VENDOR_MAX_AGE = 24 * 3600  # revalidated after a day (ETag), so an upgrade arrives by tomorrow
PREVIEW_EMAILS = 40


# -- pages and files -----------------------------------------------------------------------------


def _page_file(folder: str, name: str) -> Response:
    if not PAGE_FILE.fullmatch(name):
        abort(404)
    path = STATIC_DIR / folder / name
    if not path.is_file():
        abort(404)
    return _file(path, "no-cache")  # always revalidated: a deploy shows at once


def _file(path: Path, cache_control: str) -> Response:
    """A small file, read whole (no handle outlives the request), with an ETag for 304s."""
    stat = path.stat()
    etag = f"{stat.st_mtime_ns:x}-{stat.st_size:x}"
    unchanged = request.if_none_match.contains(etag)  # a revalidation: no need to read the file
    response = current_app.response_class(
        b"" if unchanged else path.read_bytes(),
        status=304 if unchanged else 200,
        mimetype=PAGE_TYPES[path.suffix],
    )
    response.set_etag(etag)
    response.last_modified = datetime.fromtimestamp(stat.st_mtime, UTC)
    response.headers["Cache-Control"] = cache_control
    return response


PRELOADS_MARKER = "<!-- preloads:"


def _pane_page(office_js: str) -> Response:
    """The pane's index.html with every module it imports preloaded (fetched in parallel rather
    than one level of imports after another) and Office.js from `office_js`."""
    html = (STATIC_DIR / "pane" / "index.html").read_text(encoding="utf-8")
    if OFFICE_JS not in html or PRELOADS_MARKER not in html:
        abort(500, "static/pane/index.html lacks Office.js or the preloads marker")
    modules = [
        f"/pane/{path.name}"
        for path in sorted((STATIC_DIR / "pane").glob("*.js"))
        if path.name not in ("legacy.js", "main.js")
    ] + [f"/vendor/fluent-tokens/{name}" for name in FLUENT_TOKEN_MODULES]
    links = "".join(f'<link rel="modulepreload" href="{m}">\n  ' for m in modules)
    html = html.replace(PRELOADS_MARKER, links + PRELOADS_MARKER, 1).replace(OFFICE_JS, office_js)
    response = current_app.response_class(html, mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/pane/")
@public
def pane() -> Response:
    """The task pane Outlook opens (the manifest points here)."""
    return _pane_page(OFFICE_JS)


@bp.get("/pane/<name>")
@public
def pane_file(name: str) -> Response:
    return _page_file("pane", name)


@bp.get("/preview/")
@public
def preview() -> Response:
    """The pane preview: the real pane beside a picker of demo emails, no Outlook needed."""
    return _page_file("preview", "index.html")


@bp.get("/preview/pane")
@public
def preview_pane() -> Response:
    """The pane's own page with Office.js replaced by the preview's stand-in."""
    html = (STATIC_DIR / "pane" / "index.html").read_text(encoding="utf-8")
    if OFFICE_JS not in html:
        abort(500, "static/pane/index.html does not load Office.js")
    html = html.replace(OFFICE_JS, PREVIEW_STANDIN).replace(
        'href="pane.css"', 'href="/pane/pane.css"'
    )
    response = current_app.response_class(html, mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/preview/<name>")
@public
def preview_file(name: str) -> Response:
    return _page_file("preview", name)


# The pane's modules the web app imports (they are preloaded with the app's own).
APP_SHARED_MODULES = ("/pane/http.js", "/pane/dom.js", "/pane/theme.js")


@bp.get("/app/")
@public
def web_app() -> Response:
    """The web app: contacts, companies, deals, follow-ups and your day, in a browser tab."""
    html = (STATIC_DIR / "app" / "index.html").read_text(encoding="utf-8")
    if PRELOADS_MARKER not in html:
        abort(500, "static/app/index.html lacks the preloads marker")
    modules = [
        f"/app/{path.name}"
        for path in sorted((STATIC_DIR / "app").glob("*.js"))
        if path.name != "main.js"
    ]
    modules += [*APP_SHARED_MODULES, *(f"/vendor/fluent-tokens/{m}" for m in FLUENT_TOKEN_MODULES)]
    links = "".join(f'<link rel="modulepreload" href="{m}">\n  ' for m in modules)
    html = html.replace(PRELOADS_MARKER, links + PRELOADS_MARKER, 1)
    response = current_app.response_class(html, mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/app/<name>")
@public
def web_app_file(name: str) -> Response:
    return _page_file("app", name)


@bp.get("/vendor/<path:name>")
@public
def vendor(name: str) -> Response:
    """An allow-listed file of an installed npm package."""
    relative = VENDOR_FILES.get(name)
    if relative is None:
        abort(404)
    path = NODE_MODULES / relative
    if not path.is_file():
        return error_response(
            404,
            "not_found",
            f"node_modules/{relative} is not installed; run `npm ci` in {ROOT} "
            "(scripts/setup.sh does it)",
        )
    return _file(path, f"public, max-age={VENDOR_MAX_AGE}")


# -- what the pane asks before it has signed in ----------------------------------------------------


class EntraOut(BaseModel):
    client_id: str
    tenant_id: str
    authority: str = Field(description="MSAL's authority: https://<host>/<tenant>")
    scopes: list[str] = Field(description="What the pane asks a token for")


class PaneConfigOut(BaseModel):
    entra: EntraOut | None = Field(
        description="Entra ID single sign-on (nested app authentication); null: not configured"
    )
    signin_url: str = Field(description="The password sign-in page, for Office's dialog")
    demo: bool = Field(description="A demo server: the preview may sign in by itself")


@bp.get("/api/v1/pane-config")
@public
@api.validate(resp=Responses(HTTP_200=PaneConfigOut), tags=["task pane"], security={})
def pane_config() -> PaneConfigOut:
    """How the task pane signs in on this server (anonymous: nothing here is a secret)."""
    settings = rapport(current_app).settings
    entra = None
    if settings.entra_tenant_id and settings.entra_client_id:
        entra = EntraOut(
            client_id=settings.entra_client_id,
            tenant_id=settings.entra_tenant_id,
            authority=f"https://{settings.graph_authority_host}/{settings.entra_tenant_id}",
            scopes=[f"api://{settings.entra_client_id}/{settings.entra_scope}"],
        )
    return PaneConfigOut(entra=entra, signin_url="/signin", demo=settings.demo)


class DemoTokenOut(BaseModel):
    token: str


def _from_this_machine() -> bool:
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


@bp.post("/api/v1/preview/demo-sign-in")
@public
@api.validate(
    resp=Responses(HTTP_200=DemoTokenOut, HTTP_404=ErrorOut), tags=["task pane"], security={}
)
def demo_sign_in() -> Response:
    """Demo mode only, for a browser on this machine: the demo admin's token (which `rapport
    demo` also prints), so the preview opens signed in."""
    from server.demo.setup import TOKEN_FILE  # the demo's own module, loaded only for it

    settings = rapport(current_app).settings
    token_file = settings.data_dir / TOKEN_FILE
    if not settings.demo or not _from_this_machine() or not token_file.is_file():
        return error_response(
            404, "not_found", "only `rapport demo` signs in by itself, and only on its own machine"
        )
    body = DemoTokenOut(token=token_file.read_text().strip())
    return no_store(
        current_app.response_class(body.model_dump_json(), 200, mimetype="application/json")
    )


# -- what the pane and the preview read --------------------------------------------------------


class EmailStateQuery(BaseModel):
    message_id: str = Field(min_length=1, max_length=998, description="internetMessageId")
    sender: str = Field(max_length=320, description="The email's From address")
    date: datetime = Field(description="When it was sent (dateTimeCreated), with offset")


class EmailStateOut(BaseModel):
    logged: bool = Field(description="On the timeline (captured or logged, and not unlogged)")
    activity_id: int | None = Field(description="Its activity, when logged")


@bp.get("/api/v1/pane/email-state")
@api.validate(
    query=EmailStateQuery,
    resp=Responses(HTTP_200=EmailStateOut, HTTP_401=ErrorOut, HTTP_422=ErrorOut),
    tags=["task pane"],
)
def email_state(query: EmailStateQuery) -> EmailStateOut:
    """Whether the open email is on the timeline, so the pane shows "Log" or "Unlog"."""
    found = _logged_activity(query.message_id, query.sender, query.date)
    return EmailStateOut(logged=found is not None, activity_id=found)


def _logged_activity(message_id: str, sender: str, date: datetime) -> int | None:
    key, address = normalise_message_id(message_id), normalise_address(sender)
    if key is None or address is None or date.tzinfo is None:
        return None
    with reading() as session:
        activity = find_logged(session, f"mid:{key}", address, date)
        if activity is None:
            return None
        try:  # unlogged, or a colleague's private email: not on this viewer's timeline
            visible_activity(session, current_viewer(), activity.id)
        except NotFound:
            return None
        return activity.id


class AddressOut(BaseModel):
    name: str
    address: str


class PreviewItemOut(BaseModel):
    activity_id: int
    kind: str = Field(description="email or meeting")
    message_id: str | None = Field(description="internetMessageId, <...>")
    conversation_id: str | None
    subject: str
    sender: AddressOut | None = Field(description="From (emails) or organizer (meetings)")
    to: list[AddressOut]
    cc: list[AddressOut]
    date: datetime
    start: datetime | None = None
    end: datetime | None = None
    location: str = ""
    direction: str
    body: str = Field(description="What the viewer may read of it")


class PreviewItemsOut(BaseModel):
    items: list[PreviewItemOut]


@bp.get("/api/v1/preview/emails")
@api.validate(resp=Responses(HTTP_200=PreviewItemsOut, HTTP_401=ErrorOut), tags=["task pane"])
def preview_emails() -> PreviewItemsOut:
    """Your recently captured emails and meetings, for the pane preview's picker."""
    viewer = current_viewer()
    with reading() as session:
        return PreviewItemsOut(items=_preview_items(session, viewer))


def _preview_items(session: Session, viewer: Viewer) -> list[PreviewItemOut]:
    mine = (
        select(MailboxObservation.activity_id)
        .join(MailboxLink, MailboxLink.id == MailboxObservation.link_id)
        .where(MailboxLink.owner_user_id == viewer.id)
    )
    rows = list(
        session.scalars(
            select(Activity)
            .where(
                Activity.id.in_(mine),
                Activity.kind.in_(("email", "meeting")),
                visible_to(viewer),
            )
            .order_by(Activity.occurred_at.desc(), Activity.id.desc())
            .limit(PREVIEW_EMAILS)
        )
    )
    keys = {a.id: a.message_key for a in rows}
    items = []
    views = present(session, viewer, rows, bodies=True)
    emails_read(v.id for v in views if v.body)
    for view in views:
        key = keys.get(view.id) or ""
        people: dict[str, list[AddressOut]] = {
            role: [] for role in ("to", "cc", "from", "organizer", "attendee")
        }
        for p in view.participants:
            if p.address and p.role in people:
                people[p.role].append(AddressOut(name=p.name, address=p.address))
        meeting = view.meeting or {}
        sender = next(iter(people["from"] or people["organizer"]), None)
        items.append(
            PreviewItemOut(
                activity_id=view.id,
                kind=view.kind,
                message_id=f"<{key[4:]}>" if key.startswith("mid:") else None,
                conversation_id=f"thread-{view.thread_id}" if view.thread_id else None,
                subject=view.subject,
                sender=sender,
                to=people["to"] or [a for a in people["attendee"] if a != sender],
                cc=people["cc"],
                date=view.occurred_at,
                start=_when(meeting.get("starts_at")),
                end=_when(meeting.get("ends_at")),
                location=str(meeting.get("location") or ""),
                direction=view.direction,
                body=view.body or view.snippet,
            )
        )
    return items


def _when(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None
