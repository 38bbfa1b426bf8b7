"""The unsubscribe link of campaign emails, public: `GET /u/<token>` shows a page with one button
(a link opened by a mail scanner must not unsubscribe anyone), and `POST /u/<token>` unsubscribes
— the button's form post, and the RFC 8058 one-click POST a mail client sends with the body
`List-Unsubscribe=One-Click`. Honoured at once (`server.crm.consent.unsubscribe`). A token that
does not verify gets the same 404 page whatever is wrong with it."""

from __future__ import annotations

import html

from flask import Blueprint, Response

from server.api.auth import public
from server.api.common import reading, writing
from server.api.security import accepts
from server.crm import consent

bp = Blueprint("unsubscribe", __name__)
TOKEN_MAX = 64


def _page(title: str, body: str, status: int = 200) -> Response:
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;'
        f'padding:0 1rem"><h1>{html.escape(title)}</h1>{body}</body></html>'
    )
    return Response(page, status=status, mimetype="text/html")


def _unknown() -> Response:
    return _page("Link not recognised", "<p>This unsubscribe link is not valid.</p>", 404)


@bp.get("/u/<token>")
@public
def confirm(token: str) -> Response:
    with reading() as session:
        recipient = consent.recipient_of_token(session, token[:TOKEN_MAX])
        if recipient is None:
            return _unknown()
        address = recipient.address
    action = html.escape(f"/u/{token}", quote=True)
    return _page(
        "Unsubscribe",
        f"<p>Stop sending these emails to <strong>{html.escape(address)}</strong>?</p>"
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>',
    )


@bp.post("/u/<token>")
@public
@accepts("application/x-www-form-urlencoded", "multipart/form-data")
def unsubscribe(token: str) -> Response:
    with writing() as session:
        recipient = consent.recipient_of_token(session, token[:TOKEN_MAX])
        if recipient is None:
            return _unknown()
        consent.unsubscribe(session, recipient)
    return _page("You are unsubscribed", "<p>You will not get these emails any more.</p>")
