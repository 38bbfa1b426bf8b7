"""Web security in one place: CORS for configured origins, the headers every answer carries, and
per-token rate limits.

Why here and not in each view: a header forgotten on one page is a hole, so they are added in one
`after_request` hook. Why our own CORS code: flask-cors is not a dependency, and what we need is
small — an allow-list of origins, bearer tokens only (never credentials), and correct preflights.

Request bodies are JSON unless a view says otherwise with `@accepts` (the CSV imports): SpecTree
validates only JSON bodies against a view's model, so a form body reached the view as nothing at
all (a 500) and a text/plain one as an empty object. One rule for the whole app, like the others.

Rate limits count requests per token (per user for Entra ID tokens) in fixed one-minute windows.
They must hold across several server processes, so the counts live in the database table
`rate_limit_windows` when it exists; a process-local store is used only until it does (then each
process counts on its own, which multiplies the limit by the number of processes).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from flask import Flask, Response, current_app, g, request
from sqlalchemy import inspect, text
from sqlalchemy.exc import SQLAlchemyError

from server.api.errors import error_response
from server.app_context import rapport
from server.config import Settings
from server.db import Database

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Hosts that frame the task pane: Outlook on the web, the new Outlook and the Microsoft 365 app,
# as Microsoft documents them for apps hosted in Microsoft 365 (*.cloud.microsoft is where they
# are all moving). Classic Outlook on Windows and Mac runs the pane in a webview with no parent
# frame, so it needs nothing here; on-premises Outlook on the web frames from the customer's own
# host, which an admin adds with RAPPORT_FRAME_ANCESTORS.
OUTLOOK_FRAME_ANCESTORS = (
    "https://*.cloud.microsoft",
    "https://outlook.office.com",
    "https://outlook.office365.com",
    "https://outlook.live.com",
    "https://outlook-sdf.office.com",
    "https://outlook-sdf.office365.com",
    "https://*.office.com",
    "https://*.office365.com",
    "https://*.microsoft365.com",
)
OFFICE_JS = "https://appsforoffice.microsoft.com"

# JSON never needs to run, load or be framed anything.
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
SCRIPT_TYPES = frozenset({"text/javascript", "application/javascript"})
CORS_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
CORS_REQUEST_HEADERS = "Authorization, Content-Type, If-Match"
CORS_EXPOSED_HEADERS = (
    "Location, Retry-After, WWW-Authenticate, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
)
PREFLIGHT_MAX_AGE = "600"
HSTS = "max-age=31536000"

JSON_BODIES = ("application/json",)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

RATE_LIMIT_TABLE = "rate_limit_windows"
WINDOW_SECONDS = 60


def page_policy(settings: Settings) -> str:
    """The CSP of our HTML pages (task pane, sign-in page): our own scripts and Office.js; talk to
    us and to Microsoft sign-in; be framed only by Outlook's hosts (and those an admin adds)."""
    authority = f"https://{settings.graph_authority_host}"
    connect = " ".join(dict.fromkeys(["'self'", authority, "https://login.microsoftonline.com"]))
    ancestors = " ".join(["'self'", *OUTLOOK_FRAME_ANCESTORS, *settings.frame_ancestors])
    return (
        f"default-src 'self'; script-src 'self' {OFFICE_JS}; "
        # Styles may be inline: web components and Office.js set style attributes at run time.
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
        f"connect-src {connect} {OFFICE_JS}; frame-src 'self' {authority}; "
        f"object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors {ancestors}"
    )


# -- rate limits ---------------------------------------------------------------------------------


class WindowStore(Protocol):
    """Counts hits per (bucket, window); `hit` adds one and returns the window's count so far."""

    def hit(self, bucket: str, window_start: int, window_seconds: int) -> int: ...


class MemoryWindowStore:
    """Counts in this process only: the fallback until the database table exists."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}
        self._current = 0

    def hit(self, bucket: str, window_start: int, window_seconds: int) -> int:
        with self._lock:
            if window_start != self._current:
                # A new window: older counts can never matter again.
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= window_start}
                self._current = window_start
            count = self._counts.get((bucket, window_start), 0) + 1
            self._counts[(bucket, window_start)] = count
            return count


class DatabaseWindowStore:
    """Counts in the shared database, so every server process sees the same numbers.

    One upsert per request, committed on its own (never in the request's unit of work, so a
    counted hit stays counted even when the request fails); rows of past windows are deleted now
    and then by whichever process notices first. On PostgreSQL the upsert is a single
    autocommitted statement that does not wait for its WAL to reach the disk: a crash may forget
    the last few hits of a one-minute window, and every request would otherwise wait for a flush
    (and for BEGIN, SET LOCAL and COMMIT round trips).
    """

    # PostgreSQL and SQLite (3.35+) both speak ON CONFLICT ... RETURNING.
    UPSERT = text(
        "INSERT INTO rate_limit_windows (bucket, window_start, hits) "
        "VALUES (:bucket, :window_start, 1) "
        "ON CONFLICT (bucket, window_start) "
        "DO UPDATE SET hits = rate_limit_windows.hits + 1 "
        "RETURNING hits"
    )
    # set_config(..., true) is SET LOCAL: it lasts until the statement's implicit transaction
    # commits, and that commit is the one it spares the flush. The subquery is read by the
    # INSERT, so PostgreSQL cannot skip it (an unreferenced CTE would not run).
    PG_UPSERT = text(
        "INSERT INTO rate_limit_windows (bucket, window_start, hits) "
        "SELECT :bucket, :window_start, 1 "
        "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS no_flush_wait "
        "ON CONFLICT (bucket, window_start) "
        "DO UPDATE SET hits = rate_limit_windows.hits + 1 "
        "RETURNING hits"
    )
    PRUNE = text("DELETE FROM rate_limit_windows WHERE window_start < :before")

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pruned_window = 0

    def hit(self, bucket: str, window_start: int, window_seconds: int) -> int:
        if self._db.is_sqlite:
            writing = self._db.engine.begin()
            upsert = self.UPSERT
        else:
            writing = self._db.connection()  # the request's pinned connection
            upsert = self.PG_UPSERT
        with writing as connection:
            hits = connection.execute(
                upsert, {"bucket": bucket, "window_start": window_start}
            ).scalar_one()
            if window_start != self._pruned_window:
                self._pruned_window = window_start
                connection.execute(self.PRUNE, {"before": window_start - window_seconds})
        return int(hits)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int


class RateLimiter:
    """Fixed one-minute windows per bucket ("token:42", "user:7", "signin:203.0.113.9")."""

    def __init__(
        self,
        choose_store: Callable[[], WindowStore],
        *,
        window_seconds: int = WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._choose_store = choose_store
        self._store: WindowStore | None = None
        self._lock = threading.Lock()
        self.window_seconds = window_seconds
        self._clock = clock

    @property
    def store(self) -> WindowStore:
        # Chosen at the first request, not at start-up: the app factory must not need the database.
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = self._choose_store()
        return self._store

    def hit(self, bucket: str, limit: int) -> Decision:
        now = self._clock()
        window_start = int(now // self.window_seconds) * self.window_seconds
        reset = max(1, math.ceil(window_start + self.window_seconds - now))
        try:
            count = self.store.hit(bucket, window_start, self.window_seconds)
        except SQLAlchemyError:
            # A busy or unreachable database must not turn into refused requests: fail open.
            log.warning("rate limit store failed; request allowed", exc_info=True)
            return Decision(True, limit, limit, reset)
        return Decision(count <= limit, limit, max(0, limit - count), reset)


def choose_store(db: Database) -> WindowStore:
    try:
        if inspect(db.engine).has_table(RATE_LIMIT_TABLE):
            return DatabaseWindowStore(db)
    except SQLAlchemyError:
        log.warning("rate limits: cannot inspect the database", exc_info=True)
    log.info(
        "rate limits are counted per process: the %s table does not exist yet", RATE_LIMIT_TABLE
    )
    return MemoryWindowStore()


def limiter(app: Flask) -> RateLimiter:
    found: RateLimiter = app.extensions["rapport.rate_limiter"]
    return found


def check_rate(bucket: str, limit: int) -> Response | None:
    """Count this request against `bucket`; a 429 answer when over `limit` per window (0 = off)."""
    if limit <= 0:
        return None
    decision = limiter(current_app).hit(bucket, limit)
    g.rate_limit = decision
    if decision.allowed:
        return None
    response = error_response(
        429,
        "rate_limited",
        f"too many requests: at most {limit} a minute; try again in {decision.reset_seconds} s",
    )
    response.headers["Retry-After"] = str(decision.reset_seconds)
    return response


# -- request bodies ------------------------------------------------------------------------------


def accepts(*mimetypes: str) -> Callable[[F], F]:
    """Mark a view that reads a body other than JSON (an upload), naming the types it reads."""

    def mark(view: F) -> F:
        view._rapport_body_types = mimetypes  # type: ignore[attr-defined]
        return view

    return mark


def json_bodies_only() -> Response | None:
    """415 for a body of a type the view does not read (JSON, unless it says otherwise)."""
    if request.method not in BODY_METHODS or request.endpoint is None:
        return None
    mimetype = request.mimetype
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if not (mimetype or request.content_length or chunked):
        return None  # no body at all: the view's model decides whether one was needed
    view = current_app.view_functions.get(request.endpoint)
    allowed: tuple[str, ...] = getattr(view, "_rapport_body_types", JSON_BODIES)
    if mimetype in allowed or (allowed == JSON_BODIES and mimetype.endswith("+json")):
        return None
    return error_response(
        415,
        "unsupported_media_type",
        f"send the body as {' or '.join(allowed)} (Content-Type), not {mimetype or 'untyped'}",
    )


def drops_nul(view: F) -> F:
    """Mark a view that takes text copied from mail (the pane logging an email): a NUL there
    comes from a broken client and the view drops it, rather than refuse the email."""
    view._rapport_drops_nul = True  # type: ignore[attr-defined]
    return view


def no_nul_in_json() -> Response | None:
    """400 for a JSON body with a NUL character in any string (PostgreSQL text cannot hold one,
    and no one types one), named by its field, before any view stores part of it; as the views
    answered a NUL in the fields they checked themselves."""
    if request.method not in BODY_METHODS or not request.is_json or request.endpoint is None:
        return None
    view = current_app.view_functions.get(request.endpoint)
    raw = request.get_data(cache=True)
    if getattr(view, "_rapport_drops_nul", False) or (b"\\u0000" not in raw and b"\x00" not in raw):
        return None
    path = _nul_path(request.get_json(silent=True, cache=True), "")
    if path is None:
        return None  # an escaped backslash before "u0000", or no JSON at all: the view says
    return error_response(
        400, "invalid", f"{path or 'the body'}: contains a NUL character", field=path or None
    )


def _nul_path(value: object, path: str) -> str | None:
    """Where the first NUL is ("emails.1"); None when there is none."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items: list[tuple[str, object]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return here
            items.append((here, item))
    elif isinstance(value, list):
        items = [(f"{path}.{n}" if path else str(n), item) for n, item in enumerate(value)]
    for here, item in items:
        found = _nul_path(item, here)
        if found is not None:
            return found
    return None


# -- CORS and headers ----------------------------------------------------------------------------


def _allowed_origin(settings: Settings) -> str | None:
    origin = request.headers.get("Origin")
    if origin and origin.lower().rstrip("/") in settings.cors_origins:
        return origin
    return None


def _preflight() -> Response | None:
    """Answer CORS preflights before sign-in is checked (browsers never send a token with them)."""
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return None
    if "Origin" not in request.headers:
        return None
    settings = rapport(current_app).settings
    if _allowed_origin(settings) is None:
        return error_response(
            403, "forbidden", "this origin may not call the API (see RAPPORT_CORS_ORIGINS)"
        )
    response = current_app.response_class(status=204)
    response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
    response.headers["Access-Control-Allow-Headers"] = CORS_REQUEST_HEADERS
    response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    return response


def _add_headers(response: Response) -> Response:
    settings = rapport(current_app).settings
    headers = response.headers
    if settings.cors_origins:
        headers.add("Vary", "Origin")
        origin = _allowed_origin(settings)
        if origin is not None:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Expose-Headers"] = CORS_EXPOSED_HEADERS
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    if "Content-Security-Policy" not in headers:
        if response.mimetype == "text/html":
            headers["Content-Security-Policy"] = page_policy(settings)
        elif response.mimetype not in SCRIPT_TYPES:
            # Not on scripts: a policy sent with a script becomes the policy of a Web Worker
            # started from it, and 'none' would forbid the worker's requests.
            headers["Content-Security-Policy"] = API_POLICY
    if settings.public_url and settings.public_url.startswith("https://"):
        headers["Strict-Transport-Security"] = HSTS
    decision: Decision | None = g.get("rate_limit")
    if decision is not None:
        headers["RateLimit-Limit"] = str(decision.limit)
        headers["RateLimit-Remaining"] = str(decision.remaining)
        headers["RateLimit-Reset"] = str(decision.reset_seconds)
    return response


def init_app(app: Flask) -> None:
    """Register before the sign-in check, so that preflights are answered without a token."""
    db = rapport(app).db
    app.extensions["rapport.rate_limiter"] = RateLimiter(lambda: choose_store(db))
    app.before_request(_preflight)
    app.after_request(_add_headers)
