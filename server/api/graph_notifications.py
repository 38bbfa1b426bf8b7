"""Where Microsoft Graph delivers change notifications (`server.mail_ingest.graph_notify`).

`POST /api/v1/graph/notifications` and `POST /api/v1/graph/lifecycle` are called by Graph, not
by people: anonymous, each notification authenticated by its `clientState` (a per-link secret).
Both answer Graph's validation handshake (`?validationToken=...`: 200, text/plain, the token)
and otherwise take Graph's JSON, queue what it calls for, and answer 202 at once -- the sync
itself runs in a worker. A batch in which no clientState checks out is refused (403).

Not in the OpenAPI document: this is Microsoft's protocol (docs/graph.md), not Rapport's API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy.orm import Session

from server.api.auth import public
from server.api.common import writing
from server.api.errors import error_response
from server.api.security import accepts
from server.app_context import rapport
from server.mail_ingest import graph_notify

bp = Blueprint("graph_notifications", __name__, url_prefix="/api/v1/graph")

# The validation request is text/plain (and may have an empty body); notifications are JSON.
BODY_TYPES = ("application/json", "text/plain")

Receiver = Callable[[Session, Sequence[str], Sequence[Mapping[str, Any]]], graph_notify.Received]


@bp.post("/notifications")
@public
@accepts(*BODY_TYPES)
def notifications() -> Response:
    """Changes in a subscribed folder or calendar: the link's sync is queued."""
    return _receive(graph_notify.receive_changes)


@bp.post("/lifecycle")
@public
@accepts(*BODY_TYPES)
def lifecycle() -> Response:
    """reauthorizationRequired / subscriptionRemoved renew the link's subscriptions; missed
    queues a sync."""
    return _receive(graph_notify.receive_lifecycle)


def _receive(receiver: Receiver) -> Response:
    token = request.args.get("validationToken")
    if token is not None:
        return _validation(token)
    if request.mimetype != "application/json":
        return error_response(
            415,
            "unsupported_media_type",
            f"send the body as application/json (Content-Type), not {request.mimetype or 'untyped'}",
        )
    items = graph_notify.items_of(request.get_json(silent=True))
    if items is None:
        return error_response(
            400, "invalid", 'expected Microsoft Graph\'s notifications: {"value": [...]}'
        )
    with writing() as session:
        received = receiver(session, rapport(current_app).settings.secret_keys, items)
    if received.all_refused:
        return error_response(
            403, "forbidden", "clientState does not match a subscription Rapport made"
        )
    return current_app.response_class(status=202)


def _validation(token: str) -> Response:
    """ "Receive change notifications through webhooks", "Notification endpoint validation":
    the decoded token, as text/plain, status 200, within 10 seconds."""
    if not token or len(token) > graph_notify.MAX_VALIDATION_TOKEN:
        return error_response(400, "invalid", "validationToken is empty or too long")
    response = current_app.response_class(token, status=200, mimetype="text/plain")
    response.headers["Cache-Control"] = "no-store"
    return response
