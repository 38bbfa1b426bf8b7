"""`create_app(settings)`: the Flask app factory. Nothing happens at import time."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from server.api.errors import register_error_handlers
from server.app_context import Rapport, rapport
from server.config import Settings, load_settings
from server.crypto import SecretBox
from server.db import Database

log = logging.getLogger("server.requests")


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> Flask:
    settings = settings or load_settings()
    app = Flask(__name__, static_folder=None)
    app.config.update(JSON_SORT_KEYS=False, MAX_CONTENT_LENGTH=50 * 1024 * 1024)
    app.extensions["rapport"] = Rapport(
        settings=settings,
        db=db or Database(settings.database_url),
        secrets=SecretBox(settings.secret_keys),
    )
    if settings.trusted_proxies:
        # The client's address, scheme and host as the proxies saw them: rate limits per
        # address, the audit log's "from where" and links built from the request depend on it.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]

    from server.api import audit, auth, blueprints, security
    from server.api.spec import api

    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    api.register(app)

    @app.before_request
    def _start_timer() -> None:
        """First of the hooks: the logged time includes sign-in and the rate limit; sign-in,
        the rate limit and the view's quick reads share one connection (`Database.pin`)."""
        g.started = time.perf_counter()
        g.pinned_reads = rapport(app).db.pin()

    security.init_app(app)  # before auth: CORS preflights are answered without a token
    auth.init_app(app)
    audit.init_app(app)
    app.before_request(security.json_bodies_only)  # after sign-in: strangers learn nothing
    app.before_request(security.no_nul_in_json)
    register_error_handlers(app)

    @app.after_request
    def _log_request(response: Response) -> Response:
        elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "ms": round(elapsed_ms, 1),
            },
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.teardown_request
    def _unpin(_error: BaseException | None) -> None:
        pinned = g.pop("pinned_reads", None)
        if pinned is not None:
            rapport(app).db.unpin(pinned)

    return app
