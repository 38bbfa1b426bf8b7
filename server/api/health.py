"""GET /healthz: is the database reachable and is its schema at the code's migration head?"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError

from server.app_context import rapport

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    db = rapport(current_app).db
    head = db.head_revision()
    try:
        current = db.current_revision()
    except SQLAlchemyError as exc:
        failure = {"status": "error", "database": "unreachable", "detail": type(exc).__name__}
        return jsonify(failure), 503
    up_to_date = current == head
    body: dict[str, object] = {
        "status": "ok" if up_to_date else "degraded",
        "database": "ok",
        "backend": db.engine.dialect.name,
        "migrations": {"current": current, "head": head, "up_to_date": up_to_date},
    }
    if not up_to_date:
        body["action"] = "run `rapport db upgrade`"
    return jsonify(body), 200 if up_to_date else 503
