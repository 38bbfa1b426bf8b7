"""The web lead form: its public endpoint, its thank-you page, and its admin settings and snippet.

`POST /api/v1/forms/lead` is anonymous: it is posted by a plain HTML form on the company's own
site (no script, no CORS: a form post is a "simple" request), so it answers a browser with a
redirect to the thank-you page (303) or, for bad input, a small HTML page saying what to fix; a
client that posts JSON gets JSON. Defences: the form must be enabled; a honeypot field
(`website`, hidden from people) makes a bot's post a silent no-op that looks like success; at most
`RATE_PER_MINUTE` posts a minute from one address (429 with Retry-After, counted across server
processes like every rate limit here); a body over `MAX_BODY` is refused (413); every field has
a length limit. What happens to a good submission: `server.crm.leads`.
"""

from __future__ import annotations

import html
from typing import Any

from flask import Blueprint, Response, current_app, redirect, request
from pydantic import BaseModel, ConfigDict, Field
from spectree import Response as Responses

from server.api.auth import admin_only, public
from server.api.common import documented_by, reading, writing
from server.api.schemas import ErrorOut
from server.api.security import accepts, check_rate
from server.api.spec import api
from server.app_context import rapport
from server.crm import leads
from server.crm.errors import DomainError

bp = Blueprint("lead_form", __name__)
RATE_PER_MINUTE = 5
MAX_BODY = 20_000
HONEYPOT = "website"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "application/json")


class LeadIn(BaseModel):
    email: str = Field(max_length=320, description="Required: where to answer")
    name: str = Field("", max_length=200)
    company: str = Field("", max_length=200)
    phone: str = Field("", max_length=60)
    message: str = Field("", max_length=5000)
    website: str = Field("", description="The honeypot: leave empty (hidden from people)")


class LeadFormOut(BaseModel):
    enabled: bool
    owners: list[int] = Field(description="Users who take new leads in turn")
    reply_within_hours: int = Field(description="When the owner's follow-up is due")
    thank_you_url: str | None = Field(description="Where the browser goes after submitting")
    action_url: str = Field(description="Where the form posts")
    snippet: str = Field(description="The HTML to paste into a page of your site")
    accepted: int
    dropped: int = Field(description="Spam (the honeypot) and erased people")


class LeadFormIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    owners: list[int] | None = Field(None, max_length=100)
    reply_within_hours: int | None = Field(None, ge=1, le=336)
    thank_you_url: str | None = Field(None, max_length=2000)


# -- the public side -----------------------------------------------------------------------------


@api.validate(
    form=LeadIn,
    resp=Responses(
        "HTTP_201", "HTTP_303", "HTTP_400", "HTTP_404", "HTTP_413", "HTTP_415", "HTTP_429"
    ),
    tags=["lead form"],
)
def _lead_doc(form: LeadIn) -> None:  # pragma: no cover - documentation
    """A lead from the web form (anonymous). A browser's form post is answered with a redirect
    to the thank-you page, or a page saying what to fix; a JSON post with JSON."""


@bp.post("/api/v1/forms/lead")
@public
@accepts(*FORM_TYPES)
@documented_by(_lead_doc)
def submit() -> Any:
    wants_json = request.mimetype == "application/json"
    limited = check_rate(f"lead-form:{request.remote_addr or '?'}", RATE_PER_MINUTE)
    if limited is not None:
        return limited
    if (request.content_length or 0) > MAX_BODY:
        return _refuse(413, "too_large", "the form is too large", None, wants_json)
    raw = request.get_json(silent=True) if wants_json else request.form.to_dict()
    if not isinstance(raw, dict):
        return _refuse(400, "bad_request", "send the form's fields", None, wants_json)
    db = rapport(current_app).db
    with reading() as session:
        settings = leads.read_settings(session)
    if not settings.enabled:
        return _refuse(404, "not_found", "this form is not enabled", None, wants_json)
    if str(raw.get(HONEYPOT, "")).strip():
        with db.session() as session:
            leads.bump(session, "dropped")
        return _done(settings.thank_you_url, wants_json)
    try:
        submission = leads.clean({k: str(v) for k, v in raw.items()})
    except DomainError as exc:
        return _refuse(400, "invalid", exc.message, exc.field, wants_json)
    page = request.headers.get("Referer", "")[:500]
    with writing() as session:
        leads.accept(session, leads.Submission(**{**vars(submission), "page": page}))
    return _done(settings.thank_you_url, wants_json)


def _done(thank_you_url: str | None, wants_json: bool) -> Any:
    if wants_json:
        return {"ok": True, "message": "Thank you: we will get back to you soon."}, 201
    return redirect(thank_you_url or "/forms/thanks", code=303)


def _refuse(status: int, code: str, message: str, field: str | None, wants_json: bool) -> Any:
    if wants_json:
        error: dict[str, Any] = {"code": code, "message": message}
        if field:
            error["field"] = field
        return {"error": error}, status
    page = _page(
        "Please check the form",
        f"<p>{html.escape(message[:1].upper() + message[1:])}.</p>"
        '<p><a href="javascript:history.back()">Go back to the form</a></p>',
    )
    return Response(page, status=status, mimetype="text/html")


@bp.get("/forms/thanks")
@public
def thanks() -> Response:
    """Where the browser lands after submitting, when the admin set no page of their own."""
    return Response(
        _page("Thank you", "<p>Your message has reached us; we will get back to you soon.</p>"),
        mimetype="text/html",
    )


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;'
        f'padding:0 1rem"><h1>{html.escape(title)}</h1>{body}</body></html>'
    )


# -- the admin side ------------------------------------------------------------------------------


def snippet(action_url: str) -> str:
    """The form to paste into a page: labelled fields, the hidden honeypot, no script."""
    return f"""<form action="{html.escape(action_url, quote=True)}" method="post" class="rapport-lead-form">
  <p><label>Your name <input name="name" autocomplete="name" maxlength="200"></label></p>
  <p><label>Email <input name="email" type="email" autocomplete="email" maxlength="320" required></label></p>
  <p><label>Company <input name="company" autocomplete="organization" maxlength="200"></label></p>
  <p><label>Phone <input name="phone" type="tel" autocomplete="tel" maxlength="60"></label></p>
  <p><label>How can we help? <textarea name="message" rows="5" maxlength="5000"></textarea></label></p>
  <p style="position:absolute;left:-10000px" aria-hidden="true"><label>Leave this empty <input name="website" tabindex="-1" autocomplete="off"></label></p>
  <p><button type="submit">Send</button></p>
</form>"""


def _action_url() -> str:
    base = rapport(current_app).settings.public_url or request.host_url.rstrip("/")
    return f"{base.rstrip('/')}/api/v1/forms/lead"


def _out(session: Any, settings: leads.LeadFormSettings) -> LeadFormOut:
    action = _action_url()
    return LeadFormOut(
        **vars(settings),
        action_url=action,
        snippet=snippet(action),
        accepted=leads.count(session, "accepted"),
        dropped=leads.count(session, "dropped"),
    )


@bp.get("/api/v1/admin/lead-form")
@admin_only
@api.validate(
    resp=Responses(HTTP_200=LeadFormOut, HTTP_401=ErrorOut, HTTP_403=ErrorOut), tags=["lead form"]
)
def get_settings() -> LeadFormOut:
    """The form's settings, the snippet to paste into your site, and its counts."""
    with reading() as session:
        return _out(session, leads.read_settings(session))


@bp.put("/api/v1/admin/lead-form")
@admin_only
@api.validate(
    json=LeadFormIn,
    resp=Responses(
        HTTP_200=LeadFormOut,
        HTTP_400=ErrorOut,
        HTTP_401=ErrorOut,
        HTTP_403=ErrorOut,
        HTTP_422=ErrorOut,
    ),
    tags=["lead form"],
)
def put_settings(json: LeadFormIn) -> LeadFormOut:
    """Change the form's settings (send only what changes)."""
    with writing() as session:
        return _out(session, leads.save_settings(session, json.model_dump(exclude_unset=True)))


@bp.get("/forms/lead/demo")
@public
def demo_page() -> Response:
    """In demo mode, a page of "another site" with the snippet, to try the form."""
    if not rapport(current_app).settings.demo:
        return Response(
            _page("Not found", "<p>Only in demo mode.</p>"), status=404, mimetype="text/html"
        )
    return Response(
        _page("Contact Northwind Supplies", snippet("/api/v1/forms/lead")), mimetype="text/html"
    )
