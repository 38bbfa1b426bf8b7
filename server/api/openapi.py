"""GET /api/v1/openapi.json: the OpenAPI 3.1 document (public, like the API's description)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from server.api.auth import public
from server.api.spec import api

bp = Blueprint("openapi", __name__, url_prefix="/api/v1")


@bp.get("/openapi.json")
@public
def openapi_document() -> Response:
    return jsonify(api.spec)
