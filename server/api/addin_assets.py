"""GET /addin/assets/<icon> — the add-in's icons, which Outlook fetches without a token.

The manifest (`rapport addin manifest`) points every icon URL here; Outlook and the Microsoft
365 admin center load them anonymously, often before anyone signs in.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app

from server.addin.manifest import ASSETS
from server.api.auth import public

bp = Blueprint("addin_assets", __name__)

ICONS = frozenset(path.name for path in ASSETS.glob("*.png"))


@bp.get("/addin/assets/<name>")
@public
def icon(name: str) -> Response:
    if name not in ICONS:  # a fixed list: no path from the request reaches the file system
        abort(404)
    response = current_app.response_class((ASSETS / name).read_bytes(), mimetype="image/png")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response
