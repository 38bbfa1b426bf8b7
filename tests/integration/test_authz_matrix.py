"""The authorisation matrix: every endpoint of the app × (anonymous, member, other member, admin)
× (the caller's own item, another member's private item) — what each caller gets, in one table.

The rules the table spells out (server/crm/viewer.py, server/api/auth.py):
- Anonymous callers reach only the public endpoints (health, sign-in, the pane's pages and
  configuration, the API document and its reference page); everything else is 401.
- What a member may not see does not exist for them: another member's private email, never-log
  entries and API tokens answer 404, exactly like an id that was never used.
- What a member may see but not change answers 403: team records someone else owns (deleting or
  merging a contact, company or deal), another's note, another user, and every admin endpoint.
- Admins may do everything but read someone else's private email: private means private.

"Own item" is the caller's own (for the anonymous caller: the member's); "other's item" belongs
to another member (for the admin: the member's), and where it can be private, it is. The member
and the admin sign in with Rapport API tokens, the other member with an Entra ID access token
(signed by a local key set), so both kinds of sign-in pass through every endpoint.

The world is built once per backend; an endpoint that uses its item up (delete, merge, unlog...)
gets a fresh one for every request. A new endpoint without a row here fails
`test_every_endpoint_of_the_app_has_a_row`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.test import TestResponse

from server.app import create_app
from server.config import Settings, load_settings
from server.crm.users import add_user, create_token, set_password
from server.db import Database
from server.mail_ingest.importer import import_files
from server.mail_ingest.sources import imap
from server.models import (
    Activity,
    MailboxLink,
    MailboxObservation,
    Signal,
    SignalEvidence,
    utcnow,
)
from tests.conftest import BACKENDS, SECRET_KEY, _fresh_database_url
from tests.support.jwks import TENANT_ID, JwksServer, TokenSigner
from tests.support.mail import BASE_DATE, make_email, write_maildir

ANNA = "anna@northwind-supplies.com"  # the member
BEN = "ben@northwind-supplies.com"  # the other member (Entra ID)
BOSS = "boss@northwind-supplies.com"  # the admin
CLARA = "Clara Jensen <clara@brightline-dental.co.uk>"
PASSWORD = "correct horse battery staple 42"
DROP_DOMAIN = "drop.northwind-supplies.com"


class Caller(Enum):
    ANONYMOUS = "anonymous"
    MEMBER = "member"
    OTHER_MEMBER = "other member"
    ADMIN = "admin"


class Target(Enum):
    OWN = "own item"
    OTHERS = "other's item"
    NONE = "-"


USER_OF = {Caller.MEMBER: ANNA, Caller.OTHER_MEMBER: BEN, Caller.ADMIN: BOSS}


def owner_of(caller: Caller, target: Target) -> str:
    """Whose item a request addresses."""
    me = USER_OF.get(caller, ANNA)
    if target is Target.OTHERS:
        return BEN if me == ANNA else ANNA
    return me


# -- who gets what ---------------------------------------------------------------------------------

Outcome = int | None  # None: the endpoint's own success status


class Access(Enum):
    """Who may call an endpoint, and what the others get."""

    PUBLIC = "anyone, without a token"
    SIGNED_IN = "anyone signed in (team data)"
    ADMIN = "admins; members get 403"
    OWNER_OR_ADMIN = "the item's owner or an admin; other members get 403 (they can see it)"
    OWNER_OR_ADMIN_HIDDEN = "the item's owner or an admin; to other members it does not exist"
    OWNER_ONLY_HIDDEN = "the item's owner only; to everyone else, admins too, it does not exist"
    MOVER_ONLY = "who made the last stage move; anyone else gets 409 (move it yourself)"

    def outcome(self, caller: Caller, target: Target) -> Outcome:
        if self is Access.PUBLIC:
            return None
        if caller is Caller.ANONYMOUS:
            return 401
        admin, own = caller is Caller.ADMIN, target is not Target.OTHERS
        match self:
            case Access.SIGNED_IN:
                return None
            case Access.ADMIN:
                return None if admin else 403
            case Access.OWNER_OR_ADMIN:
                return None if own or admin else 403
            case Access.OWNER_OR_ADMIN_HIDDEN:
                return None if own or admin else 404
            case Access.OWNER_ONLY_HIDDEN:
                return None if own else 404
            case Access.MOVER_ONLY:
                return None if own else 409
        raise AssertionError(self)


# -- the world: users, their tokens and their items -----------------------------------------------


@dataclass
class World:
    app: Flask
    client: FlaskClient
    db: Database
    settings: Settings
    headers: dict[str, dict[str, str]]  # user address -> Authorization header
    user_ids: dict[str, int]
    private_emails: dict[str, list[dict[str, Any]]]  # address -> unused captured emails
    cache: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=itertools.count)

    def call(self, who: str, method: str, url: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        """A setup call as `who` that must succeed; its JSON answer."""
        response = self.client.open(url, method=method, json=body, headers=self.headers[who], **kw)
        assert response.status_code < 300, (method, url, response.get_json())
        answer = response.get_json()
        return answer if isinstance(answer, dict) else {}

    def unique(self) -> int:
        return next(self.counter)

    def item(self, kind: str, owner: str, *, fresh: bool) -> dict[str, Any]:
        """The URL parameters (and what else a body needs) of `owner`'s item of this kind."""
        if fresh:
            return MAKERS[kind](self, owner)
        key = (kind, owner)
        if key not in self.cache:
            self.cache[key] = MAKERS[kind](self, owner)
        return self.cache[key]

    def version(self, url: str, who: str = BOSS) -> int:
        return int(self.call(who, "GET", url)["version"])


def _contact(w: World, owner: str) -> dict[str, Any]:
    n = w.unique()
    body = {"name": f"Person {n}", "emails": [f"person{n}@example.org"]}
    made = w.call(owner, "POST", "/api/v1/contacts", {**body, "owner_id": w.user_ids[owner]})
    return {"contact_id": made["id"]}


def _contact_pair(w: World, owner: str) -> dict[str, Any]:
    return {**_contact(w, owner), "other_id": _contact(w, owner)["contact_id"]}


def _company(w: World, owner: str) -> dict[str, Any]:
    n = w.unique()
    body = {"name": f"Company {n}", "domains": [f"company{n}.co.uk"]}
    made = w.call(owner, "POST", "/api/v1/companies", {**body, "owner_id": w.user_ids[owner]})
    return {"company_id": made["id"]}


def _company_pair(w: World, owner: str) -> dict[str, Any]:
    return {**_company(w, owner), "other_id": _company(w, owner)["company_id"]}


def _deal(w: World, owner: str) -> dict[str, Any]:
    made = w.call(owner, "POST", "/api/v1/deals", {"title": f"Chairs {w.unique()}"})
    return {"deal_id": made["id"], "stage_id": made["stage"]["id"]}


def _deal_moved(w: World, owner: str) -> dict[str, Any]:
    """A deal its owner has just moved to another stage (so the move can be undone)."""
    deal = _deal(w, owner)
    w.call(owner, "POST", f"/api/v1/deals/{deal['deal_id']}/stage", {"stage_id": next_stage(w)})
    return deal


def next_stage(w: World) -> int:
    pipelines = w.call(BOSS, "GET", "/api/v1/pipelines")["items"]
    default = next(p for p in pipelines if p["is_default"])
    return int(default["stages"][1]["id"])


def _follow_up(w: World, owner: str) -> dict[str, Any]:
    contact = w.item("contact", owner, fresh=False)["contact_id"]
    due = (utcnow() + timedelta(days=3)).isoformat()
    body = {"title": "Call back", "due_at": due, "contact_id": contact}
    return {"follow_up_id": w.call(owner, "POST", "/api/v1/followups", body)["id"]}


def _note(w: World, owner: str) -> dict[str, Any]:
    contact = w.item("contact", owner, fresh=False)["contact_id"]
    made = w.call(owner, "POST", "/api/v1/notes", {"body": "Prefers calls", "contact_id": contact})
    return {"note_id": made["id"]}


def _private_email(w: World, owner: str) -> dict[str, Any]:
    return w.private_emails[owner].pop()


def _unlogged_email(w: World, owner: str) -> dict[str, Any]:
    email = _private_email(w, owner)
    with w.db.session() as session:
        session.execute(
            update(Activity)
            .where(Activity.id == email["activity_id"])
            .values(unlogged_at=utcnow(), unlogged_by_id=w.user_ids[owner])
        )
    return email


def _signal(w: World, owner: str) -> dict[str, Any]:
    """A signal due now whose evidence is one of the owner's private emails."""
    email = _private_email(w, owner)
    key = f"awaiting_reply:{owner.split('@')[0]}_{w.unique()}"
    with w.db.session() as session:
        signal = Signal(
            key=key,
            kind="awaiting_reply",
            owner_id=w.user_ids[owner],
            due_at=utcnow() - timedelta(hours=1),
            reason={"summary": "Clara is waiting for an answer", "activity_ids": []},
            evidence_count=1,
        )
        session.add(signal)
        session.flush()
        session.add(SignalEvidence(signal_id=signal.id, activity_id=email["activity_id"]))
    return {"key": key}


def _never_log(w: World, owner: str) -> dict[str, Any]:
    made = w.call(owner, "POST", "/api/v1/me/never-log", {"value": f"x{w.unique()}.example"})
    return {"rule_id": made["entry"]["id"]}


def _token(w: World, owner: str) -> dict[str, Any]:
    return {"token_id": w.call(owner, "POST", "/api/v1/tokens", {"name": "script"})["id"]}


def _imap_link(w: World, owner: str) -> dict[str, Any]:
    n = w.unique()
    body = {"owner": owner, "host": f"imap{n}.example", "user": owner, "password": "secret"}
    return {"link_id": w.call(BOSS, "POST", "/api/v1/admin/mailboxes/imap", body)["id"]}


def _paused_link(w: World, owner: str) -> dict[str, Any]:
    link = _imap_link(w, owner)
    w.call(BOSS, "POST", f"/api/v1/admin/mailboxes/{link['link_id']}/pause")
    return link


def _drop_link(w: World, owner: str) -> dict[str, Any]:
    made = w.call(BOSS, "POST", "/api/v1/admin/mailboxes/drop", {"owner": owner})
    return {"link_id": made["id"]}


def _user(w: World, owner: str) -> dict[str, Any]:
    return {"user_id": w.user_ids[owner]}


def _rule(w: World, owner: str) -> dict[str, Any]:
    body = {"kind": "block_address", "value": f"spam{w.unique()}@example.net"}
    return {"rule_id": w.call(BOSS, "POST", "/api/v1/admin/rules", body)["rule"]["id"]}


def _field(w: World, owner: str) -> dict[str, Any]:
    body = {"entity": "contact", "key": f"f{w.unique()}", "label": "Size", "field_type": "text"}
    return {"field_id": w.call(BOSS, "POST", "/api/v1/custom-fields", body)["id"]}


def _pipeline(w: World, owner: str) -> dict[str, Any]:
    body = {"name": f"Pipeline {w.unique()}", "stages": [{"name": "New"}, {"name": "Won"}]}
    made = w.call(BOSS, "POST", "/api/v1/pipelines", body)
    return {"pipeline_id": made["id"], "stage_id": made["stages"][0]["id"]}


def _webhook(w: World, owner: str) -> dict[str, Any]:
    body = {"url": f"http://127.0.0.1:9/hook{w.unique()}", "events": ["contact.created"]}
    return {"webhook_id": w.call(BOSS, "POST", "/api/v1/admin/webhooks", body)["webhook"]["id"]}


def _template(w: World, owner: str) -> dict[str, Any]:
    body = {"name": f"Mine {w.unique()}", "body": "Hello {{ contact.first_name }}", "shared": False}
    return {"template_id": w.call(owner, "POST", "/api/v1/templates", body)["id"]}


def _segment(w: World, owner: str) -> dict[str, Any]:
    body = {"name": f"Customers {w.unique()}", "filters": {"lifecycle_stage": "customer"}}
    return {"segment_id": w.call(owner, "POST", "/api/v1/segments", body)["id"]}


def _campaign(w: World, owner: str) -> dict[str, Any]:
    segment = w.item("segment", owner, fresh=False)["segment_id"]
    body = {"name": f"Renewal {w.unique()}", "segment_id": segment, "subject": "Hello"}
    body["body_text"] = "Dear {{ contact.first_name | customer }}"
    made = w.call(owner, "POST", "/api/v1/campaigns", body)
    return {"campaign_id": made["id"], **w.item("contact", owner, fresh=False)}


def _campaign_scheduled(w: World, owner: str) -> dict[str, Any]:
    made = _campaign(w, owner)
    w.call(owner, "POST", f"/api/v1/campaigns/{made['campaign_id']}/schedule", {})
    return made


def _campaign_paused(w: World, owner: str) -> dict[str, Any]:
    made = _campaign_scheduled(w, owner)
    w.call(owner, "POST", f"/api/v1/campaigns/{made['campaign_id']}/pause")
    return made


MAKERS: dict[str, Callable[[World, str], dict[str, Any]]] = {
    "segment": _segment,
    "campaign": _campaign,
    "campaign_scheduled": _campaign_scheduled,
    "campaign_paused": _campaign_paused,
    "template": _template,
    "webhook": _webhook,
    "contact": _contact,
    "contact_pair": _contact_pair,
    "company": _company,
    "company_pair": _company_pair,
    "deal": _deal,
    "deal_moved": _deal_moved,
    "follow_up": _follow_up,
    "note": _note,
    "private_email": _private_email,
    "unlogged_email": _unlogged_email,
    "signal": _signal,
    "never_log": _never_log,
    "token": _token,
    "imap_link": _imap_link,
    "paused_link": _paused_link,
    "drop_link": _drop_link,
    "user": _user,
    "rule": _rule,
    "field": _field,
    "pipeline": _pipeline,
}


def _capture_private_emails(
    db: Database, settings: Settings, root: Path, owner: str
) -> list[dict[str, Any]]:
    """Emails from Clara in `owner`'s own mailbox, which is private to them."""
    name = owner.split("@")[0]
    message_ids = {f"Private {name} {n}": f"<private-{name}-{n}@test.example>" for n in range(14)}
    emails = [
        make_email(sender=CLARA, to=owner, subject=subject, message_id=mid, date=BASE_DATE)
        for subject, mid in message_ids.items()
    ]
    import_files(db, settings, [write_maildir(root / name, emails)], owner=owner, jobs=1)
    with db.session() as session:
        session.execute(
            update(MailboxLink)
            .where(MailboxLink.owner_address == owner)
            .values(visibility="private")
        )
        found = session.execute(
            select(Activity.id, Activity.subject)
            .join(MailboxObservation, MailboxObservation.activity_id == Activity.id)
            .join(MailboxLink, MailboxLink.id == MailboxObservation.link_id)
            .where(MailboxLink.owner_address == owner)
        ).all()
    assert len(found) == len(message_ids)
    return [{"activity_id": a, "message_id": message_ids[subject]} for a, subject in found]


# -- the table --------------------------------------------------------------------------------------

SAME = 0  # a public page: whatever it answers, the same to everyone (never 401 or 403)


@dataclass(frozen=True)
class Raw:
    """A body that is not JSON."""

    data: bytes
    content_type: str


Body = Callable[[World, Caller, dict[str, Any]], Any]
Check = Callable[[Target, dict[str, Any]], bool]


@dataclass(frozen=True)
class Case:
    method: str
    url: str  # {names} are filled from the item
    access: Access
    ok: int  # the status when the caller may do it
    item: str | None = None  # the kind of item the URL addresses
    fresh: bool = False  # the request uses its item up: a new one for every request
    body: Body | None = None
    check: Check | None = None  # what the answer must say besides its status
    owned: bool = True  # the item belongs to someone (else one shared item, no targets)

    def __str__(self) -> str:
        return f"{self.method} {self.url}"

    @property
    def targets(self) -> tuple[Target, ...]:
        return (Target.OWN, Target.OTHERS) if self.item and self.owned else (Target.NONE,)


def json(value: dict[str, Any]) -> Body:
    return lambda w, caller, ids: value


def fresh_json(make: Callable[[int], dict[str, Any]]) -> Body:
    """A body with a new unique number each time (a new address, key, name...)."""
    return lambda w, caller, ids: make(w.unique())


def versioned(url: str, **changes: Any) -> Body:
    """A change carrying the item's current version (the API's optimistic concurrency)."""
    return lambda w, caller, ids: {"version": w.version(url.format(**ids)), **changes}


def _pane_email(w: World, caller: Caller, ids: dict[str, Any]) -> dict[str, Any]:
    me = USER_OF.get(caller, ANNA)
    return {
        "message_id": f"<pane-{w.unique()}@brightline-dental.co.uk>",
        "from": {"address": "clara@brightline-dental.co.uk", "name": "Clara Jensen"},
        "to": [{"address": me}],
        "date": BASE_DATE.isoformat(),
        "body": "Could you send me a quote?",
    }


def _other_stage(w: World, caller: Caller, ids: dict[str, Any]) -> dict[str, Any]:
    stage = w.call(BOSS, "GET", f"/api/v1/deals/{ids['deal_id']}")["stage"]["id"]
    pipelines = w.call(BOSS, "GET", "/api/v1/pipelines")["items"]
    stages = next(p for p in pipelines if p["is_default"])["stages"]
    return {"stage_id": next(s["id"] for s in stages[:2] if s["id"] != stage)}


def _stage_order(w: World, caller: Caller, ids: dict[str, Any]) -> dict[str, Any]:
    pipelines = w.call(BOSS, "GET", "/api/v1/pipelines")["items"]
    pipeline = next(p for p in pipelines if p["id"] == ids["pipeline_id"])
    return {"stage_ids": [s["id"] for s in reversed(pipeline["stages"])]}


def _pipeline_order(w: World, caller: Caller, ids: dict[str, Any]) -> dict[str, Any]:
    pipelines = w.call(BOSS, "GET", "/api/v1/pipelines")["items"]
    return {"pipeline_ids": [p["id"] for p in pipelines]}


def _logged_only_for_its_owner(target: Target, answer: dict[str, Any]) -> bool:
    return bool(answer["logged"]) is (target is Target.OWN)


def _imap(n: int) -> dict[str, Any]:
    return {"host": f"imap{n}.example", "user": f"u{n}", "password": "secret"}


P, S, A = Access.PUBLIC, Access.SIGNED_IN, Access.ADMIN
FUTURE = (utcnow() + timedelta(days=30)).isoformat()
CSV = "text/csv"

CASES = [
    # -- public: health, sign-in, the API's description, the pane's pages and configuration
    Case("GET", "/healthz", P, 200),
    Case("GET", "/signin", P, 200),
    Case("GET", "/signin/signin.js", P, 200),
    Case("POST", "/api/v1/auth/password", P, 200, body=json({"email": ANNA, "password": PASSWORD})),
    Case("GET", "/api/v1/openapi.json", P, 200),
    Case("GET", "/api/v1/docs/openapi.json", P, 200),
    Case("GET", "/api/v1/reference", P, 200),
    Case("GET", "/api/v1/docs/", P, 301),
    Case("GET", "/api/v1/docs/swagger/", P, 301),
    Case("GET", "/api/v1/pane-config", P, 200),
    Case("POST", "/api/v1/preview/demo-sign-in", P, 404),  # only `rapport demo` signs in by itself
    Case("GET", "/pane/", P, SAME),
    Case("GET", "/pane/index.html", P, SAME),
    Case("GET", "/preview/", P, SAME),
    Case("GET", "/preview/pane", P, SAME),
    Case("GET", "/preview/index.html", P, SAME),
    Case("GET", "/app/", P, SAME),  # the web app: its page and files, like the pane's
    Case("GET", "/app/app.css", P, SAME),
    Case("GET", "/vendor/msal-browser.min.js", P, SAME),
    Case("GET", "/addin/assets/icon-16.png", P, SAME),
    # Microsoft calls these (a browser back from sign-in, Graph's webhooks): the state or the
    # clientState authenticates them, never a token. An unknown state is a 400 page for all.
    Case("GET", "/api/v1/graph/callback?state=unknown&code=x", P, 400),
    Case("POST", "/api/v1/graph/notifications?validationToken=ping", P, 200),
    Case("POST", "/api/v1/graph/lifecycle?validationToken=ping", P, 200),
    # -- you, your tokens, your never-log list, your password
    Case("GET", "/api/v1/me", S, 200),
    Case("GET", "/api/v1/me/log-when-sent", S, 200),
    Case("GET", "/api/v1/reports/response-time", S, 200),
    Case("GET", "/api/v1/reports/response-time.csv", S, 200),
    Case("GET", "/api/v1/reports/activity", S, 200),
    Case("GET", "/api/v1/reports/activity.csv", S, 200),
    Case("GET", "/api/v1/reports/new-contacts", S, 200),
    Case("GET", "/api/v1/reports/new-contacts.csv", S, 200),
    Case("GET", "/api/v1/reports/pipeline", S, 200),
    Case("GET", "/api/v1/reports/pipeline.csv", S, 200),
    Case("GET", "/api/v1/reports/win-rate", S, 200),
    Case("GET", "/api/v1/reports/win-rate.csv", S, 200),
    Case("GET", "/api/v1/reports/top-customers", S, 200),
    Case("GET", "/api/v1/reports/top-customers.csv", S, 200),
    Case("GET", "/api/v1/templates", S, 200),
    Case(
        "POST",
        "/api/v1/templates",
        S,
        201,
        body=json({"name": "Thanks", "subject": "Thank you, {{ contact.first_name }}"}),
    ),
    Case("GET", "/api/v1/templates/{template_id}", Access.OWNER_ONLY_HIDDEN, 200, "template"),
    Case(
        "PATCH",
        "/api/v1/templates/{template_id}",
        Access.OWNER_ONLY_HIDDEN,
        200,
        "template",
        body=json({"name": "Renamed"}),
    ),
    Case(
        "DELETE",
        "/api/v1/templates/{template_id}",
        Access.OWNER_ONLY_HIDDEN,
        204,
        "template",
        True,
    ),
    Case(
        "POST",
        "/api/v1/templates/{template_id}/render",
        Access.OWNER_ONLY_HIDDEN,
        200,
        "template",
        body=json({}),
    ),
    Case("GET", "/api/v1/templates/suggestions?contact_id={contact_id}", S, 200, "contact"),
    # campaigns (docs/campaigns.md): segments are team data, a campaign is its owner's
    Case("GET", "/api/v1/segments", S, 200),
    Case("POST", "/api/v1/segments", S, 201, body=json({"name": "Leads", "filters": {}})),
    Case("GET", "/api/v1/segments/{segment_id}", S, 200, "segment"),
    Case("GET", "/api/v1/segments/{segment_id}/size", S, 200, "segment"),
    Case("GET", "/api/v1/segments/{segment_id}/preview", S, 200, "segment"),
    Case(
        "PATCH",
        "/api/v1/segments/{segment_id}",
        Access.OWNER_OR_ADMIN,
        200,
        "segment",
        body=json({"name": "Renamed"}),
    ),
    Case("DELETE", "/api/v1/segments/{segment_id}", Access.OWNER_OR_ADMIN, 204, "segment", True),
    Case("GET", "/api/v1/campaigns", S, 200),
    Case("POST", "/api/v1/campaigns", S, 201, body=json({"name": "Renewal"})),
    Case("GET", "/api/v1/campaigns/{campaign_id}", Access.OWNER_OR_ADMIN_HIDDEN, 200, "campaign"),
    Case(
        "PATCH",
        "/api/v1/campaigns/{campaign_id}",
        Access.OWNER_OR_ADMIN_HIDDEN,
        200,
        "campaign",
        body=json({"name": "Renamed"}),
    ),
    Case(
        "DELETE",
        "/api/v1/campaigns/{campaign_id}",
        Access.OWNER_OR_ADMIN_HIDDEN,
        204,
        "campaign",
        True,
    ),
    Case(
        "GET",
        "/api/v1/campaigns/{campaign_id}/preview?contact_id={contact_id}",
        Access.OWNER_OR_ADMIN_HIDDEN,
        200,
        "campaign",
    ),
    Case(
        "GET",
        "/api/v1/campaigns/{campaign_id}/check",
        Access.OWNER_OR_ADMIN_HIDDEN,
        200,
        "campaign",
    ),
    Case(
        "GET",
        "/api/v1/campaigns/{campaign_id}/stats",
        Access.OWNER_OR_ADMIN_HIDDEN,
        200,
        "campaign",
    ),
    Case(
        "GET",
        "/api/v1/campaigns/{campaign_id}/stats.csv",
        Access.OWNER_OR_ADMIN_HIDDEN,
        200,
        "campaign",
    ),
    Case(
        "POST",
        "/api/v1/campaigns/{campaign_id}/schedule",
        Access.OWNER_OR_ADMIN_HIDDEN,
        200,
        "campaign",
        True,
        body=json({}),
    ),
    # no SMTP server in this world: the test send is refused saying so (400)
    Case(
        "POST",
        "/api/v1/campaigns/{campaign_id}/test-send",
        Access.OWNER_OR_ADMIN_HIDDEN,
        400,
        "campaign",
        body=json({}),
    ),
    Case(
        "POST",
        "/api/v1/campaigns/{campaign_id}/pause",
        Access.OWNER_OR_ADMIN_HIDDEN,
        200,
        "campaign_scheduled",
        True,
    ),
    Case(
        "POST",
        "/api/v1/campaigns/{campaign_id}/resume",
        Access.OWNER_OR_ADMIN_HIDDEN,
        200,
        "campaign_paused",
        True,
    ),
    Case(
        "POST",
        "/api/v1/campaigns/{campaign_id}/cancel",
        Access.OWNER_OR_ADMIN_HIDDEN,
        200,
        "campaign",
        True,
    ),
    Case("GET", "/api/v1/admin/campaign-limits", A, 200),
    Case("PUT", "/api/v1/admin/campaign-limits/smtp", A, 200, body=json({"per_minute": 20})),
    Case("GET", "/api/v1/contacts/{contact_id}/consent", S, 200, "contact"),
    Case(
        "PUT",
        "/api/v1/contacts/{contact_id}/consent",
        S,
        200,
        "contact",
        body=json({"state": "granted", "source": "asked"}),
    ),
    # the unsubscribe link: public; a token that does not verify is a 404 page
    Case("GET", "/u/x", P, 404),
    Case("POST", "/u/x", P, 404),
    # the lead form: public, closed until an admin enables it (then 303 to the thank-you page)
    Case("POST", "/api/v1/forms/lead", P, 404, body=json({"email": "lead@example.org"})),
    Case("GET", "/forms/thanks", P, 200),
    Case("GET", "/forms/lead/demo", P, 404),  # demo mode only
    Case("GET", "/api/v1/admin/lead-form", A, 200),
    Case("PUT", "/api/v1/admin/lead-form", A, 200, body=json({"reply_within_hours": 6})),
    Case("GET", "/api/v1/admin/webhooks", A, 200),
    Case(
        "POST",
        "/api/v1/admin/webhooks",
        A,
        201,
        body=fresh_json(
            lambda n: {"url": f"https://hooks{n}.example/x", "events": ["contact.created"]}
        ),
    ),
    Case("GET", "/api/v1/admin/webhooks/{webhook_id}", A, 200, "webhook"),
    Case(
        "PATCH",
        "/api/v1/admin/webhooks/{webhook_id}",
        A,
        200,
        "webhook",
        body=json({"active": False}),
    ),
    Case("DELETE", "/api/v1/admin/webhooks/{webhook_id}", A, 204, "webhook", True),
    Case("GET", "/api/v1/admin/webhooks/{webhook_id}/deliveries", A, 200, "webhook"),
    Case("POST", "/api/v1/admin/webhooks/{webhook_id}/test", A, 202, "webhook"),
    Case("GET", "/api/v1/admin/retention", A, 200),
    Case("PUT", "/api/v1/admin/retention", A, 200, body=json({"email_content_days": 3650})),
    Case("GET", "/api/v1/admin/audit", A, 200),
    Case("GET", "/api/v1/me/digest", S, 200),
    Case("PUT", "/api/v1/me/digest", S, 200, body=json({"hour": 8})),
    Case("GET", "/api/v1/me/never-log", S, 200),
    Case("POST", "/api/v1/me/never-log", S, 201, body=fresh_json(lambda n: {"value": f"n{n}.org"})),
    Case(
        "DELETE", "/api/v1/me/never-log/{rule_id}", Access.OWNER_ONLY_HIDDEN, 204, "never_log", True
    ),
    Case("GET", "/api/v1/mailboxes/mine", S, 200),
    Case("GET", "/api/v1/tokens", S, 200),
    Case("GET", "/api/v1/tokens?all=true", A, 200),
    Case("POST", "/api/v1/tokens", S, 201, body=json({"name": "reports"})),
    Case("DELETE", "/api/v1/tokens/{token_id}", Access.OWNER_OR_ADMIN_HIDDEN, 204, "token", True),
    Case(
        "POST",
        "/api/v1/users/me/password",
        S,
        204,
        body=json({"old_password": PASSWORD, "new_password": PASSWORD}),
    ),
    # -- the team directory and the users admin
    Case("GET", "/api/v1/users", S, 200),
    Case("GET", "/api/v1/users/{user_id}", S, 200, "user"),
    Case(
        "PATCH",
        "/api/v1/users/{user_id}",
        Access.OWNER_OR_ADMIN,
        200,
        "user",
        body=json({"name": "Renamed"}),
    ),
    Case(
        "POST",
        "/api/v1/users/{user_id}/password",
        A,
        204,
        "user",
        body=json({"password": PASSWORD}),
    ),
    Case(
        "POST",
        "/api/v1/users",
        A,
        201,
        body=fresh_json(lambda n: {"email": f"new{n}@northwind-supplies.com"}),
    ),
    # -- the task pane
    Case("GET", "/api/v1/lookup?email=clara@brightline-dental.co.uk", S, 200),
    Case("GET", "/api/v1/search?q=clara", S, 200),
    Case("POST", "/api/v1/activities/log", S, 201, body=_pane_email),
    Case("GET", "/api/v1/preview/emails", S, 200),
    Case(
        "GET",
        "/api/v1/pane/email-state?message_id={message_id}&sender=clara@brightline-dental.co.uk"
        "&date=2026-09-01T09:00:00Z",
        S,
        200,
        "private_email",
        check=_logged_only_for_its_owner,
    ),
    # -- captured mail: another member's private email does not exist for anyone else
    Case("GET", "/api/v1/activities?contact_id={contact_id}", S, 200, "contact"),
    Case("GET", "/api/v1/activities/{activity_id}", Access.OWNER_ONLY_HIDDEN, 200, "private_email"),
    Case(
        "POST",
        "/api/v1/activities/{activity_id}/unlog",
        Access.OWNER_ONLY_HIDDEN,
        200,
        "private_email",
        True,
    ),
    Case(
        "POST",
        "/api/v1/activities/{activity_id}/relog",
        Access.OWNER_ONLY_HIDDEN,
        200,
        "unlogged_email",
        True,
    ),
    # -- signals: one about another member's private email is not there for anyone else
    Case("GET", "/api/v1/signals", S, 200),
    Case(
        "POST",
        "/api/v1/signals/{key}/snooze",
        Access.OWNER_ONLY_HIDDEN,
        200,
        "signal",
        body=json({"until": FUTURE}),
    ),
    Case(
        "POST",
        "/api/v1/signals/{key}/dismiss",
        Access.OWNER_ONLY_HIDDEN,
        200,
        "signal",
        body=json({}),
    ),
    # Taking back your own snooze or dismissal: nothing to take back is fine (and tells nothing).
    Case("DELETE", "/api/v1/signals/{key}/snooze", S, 204, "signal"),
    Case("DELETE", "/api/v1/signals/{key}/dismiss", S, 204, "signal"),
    Case("GET", "/api/v1/admin/signal-settings", A, 200),
    Case("PUT", "/api/v1/admin/signal-settings", A, 200, body=json({"expire_after_days": 14})),
    # -- contacts and companies: the team's; deleting and merging for their owner or an admin
    Case("GET", "/api/v1/contacts", S, 200),
    Case(
        "POST",
        "/api/v1/contacts",
        S,
        201,
        body=fresh_json(lambda n: {"name": "New", "emails": [f"new{n}@example.org"]}),
    ),
    Case("GET", "/api/v1/contacts/{contact_id}", S, 200, "contact"),
    Case("GET", "/api/v1/contacts/{contact_id}/timeline", S, 200, "contact"),
    Case(
        "PATCH",
        "/api/v1/contacts/{contact_id}",
        S,
        200,
        "contact",
        body=versioned("/api/v1/contacts/{contact_id}", title="CEO"),
    ),
    Case("DELETE", "/api/v1/contacts/{contact_id}", Access.OWNER_OR_ADMIN, 204, "contact", True),
    Case(
        "POST",
        "/api/v1/contacts/{contact_id}/merge",
        Access.OWNER_OR_ADMIN,
        200,
        "contact_pair",
        True,
        body=lambda w, caller, ids: {"other_id": ids["other_id"]},
    ),
    Case("GET", "/api/v1/contacts/export.csv", S, 200),
    Case(
        "POST",
        "/api/v1/contacts/import",
        S,
        200,
        body=lambda w, caller, ids: Raw(f"name,email\nI,i{w.unique()}@example.org\n".encode(), CSV),
    ),
    Case("GET", "/api/v1/companies", S, 200),
    Case(
        "POST",
        "/api/v1/companies",
        S,
        201,
        body=fresh_json(lambda n: {"name": f"New {n}", "domains": [f"new{n}.co.uk"]}),
    ),
    Case("GET", "/api/v1/companies/{company_id}", S, 200, "company"),
    Case("GET", "/api/v1/companies/{company_id}/timeline", S, 200, "company"),
    Case(
        "PATCH",
        "/api/v1/companies/{company_id}",
        S,
        200,
        "company",
        body=versioned("/api/v1/companies/{company_id}", tags=["vip"]),
    ),
    Case("DELETE", "/api/v1/companies/{company_id}", Access.OWNER_OR_ADMIN, 204, "company", True),
    Case(
        "POST",
        "/api/v1/companies/{company_id}/merge",
        Access.OWNER_OR_ADMIN,
        200,
        "company_pair",
        True,
        body=lambda w, caller, ids: {"other_id": ids["other_id"]},
    ),
    Case("GET", "/api/v1/companies/export.csv", S, 200),
    Case(
        "POST",
        "/api/v1/companies/import",
        S,
        200,
        body=lambda w, caller, ids: Raw(f"name,domain\nI,i{w.unique()}.co.uk\n".encode(), CSV),
    ),
    # -- deals, follow-ups, notes
    Case("GET", "/api/v1/deals", S, 200),
    Case("POST", "/api/v1/deals", S, 201, body=json({"title": "Desks"})),
    Case("GET", "/api/v1/deals/{deal_id}", S, 200, "deal"),
    Case(
        "PATCH",
        "/api/v1/deals/{deal_id}",
        S,
        200,
        "deal",
        body=versioned("/api/v1/deals/{deal_id}", title="Chairs (40)"),
    ),
    Case("POST", "/api/v1/deals/{deal_id}/stage", S, 200, "deal", body=_other_stage),
    Case(
        "POST",
        "/api/v1/deals/{deal_id}/stage/undo",
        Access.MOVER_ONLY,
        200,
        "deal_moved",
        True,
        body=json({}),
    ),
    Case("DELETE", "/api/v1/deals/{deal_id}", Access.OWNER_OR_ADMIN, 204, "deal", True),
    Case("GET", "/api/v1/followups", S, 200),
    Case(
        "POST",
        "/api/v1/followups",
        S,
        201,
        body=lambda w, caller, ids: {
            "title": "Call",
            "due_at": FUTURE,
            "contact_id": w.item("contact", ANNA, fresh=False)["contact_id"],
        },
    ),
    Case("GET", "/api/v1/followups/{follow_up_id}", S, 200, "follow_up"),
    Case(
        "PATCH",
        "/api/v1/followups/{follow_up_id}",
        S,
        200,
        "follow_up",
        body=versioned("/api/v1/followups/{follow_up_id}", title="Call again"),
    ),
    Case("POST", "/api/v1/followups/{follow_up_id}/done", S, 200, "follow_up", True, json({})),
    Case(
        "POST",
        "/api/v1/followups/{follow_up_id}/snooze",
        S,
        200,
        "follow_up",
        True,
        json({"until": FUTURE}),
    ),
    Case("DELETE", "/api/v1/followups/{follow_up_id}", S, 204, "follow_up", True),
    Case(
        "POST",
        "/api/v1/notes",
        S,
        201,
        body=lambda w, caller, ids: {
            "body": "Met at the fair",
            "contact_id": w.item("contact", ANNA, fresh=False)["contact_id"],
        },
    ),
    Case("GET", "/api/v1/notes/{note_id}", S, 200, "note"),
    Case(
        "PATCH",
        "/api/v1/notes/{note_id}",
        Access.OWNER_OR_ADMIN,
        200,
        "note",
        body=versioned("/api/v1/notes/{note_id}", body="Prefers email"),
    ),
    Case("DELETE", "/api/v1/notes/{note_id}", Access.OWNER_OR_ADMIN, 204, "note", True),
    # -- configuration: everyone reads it, admins change it
    Case("GET", "/api/v1/custom-fields", S, 200),
    Case(
        "POST",
        "/api/v1/custom-fields",
        A,
        201,
        body=fresh_json(
            lambda n: {"entity": "deal", "key": f"k{n}", "label": "K", "field_type": "number"}
        ),
    ),
    Case("GET", "/api/v1/custom-fields/{field_id}", S, 200, "field", owned=False),
    Case(
        "PATCH",
        "/api/v1/custom-fields/{field_id}",
        A,
        200,
        "field",
        owned=False,
        body=json({"label": "Headcount"}),
    ),
    Case("DELETE", "/api/v1/custom-fields/{field_id}", A, 204, "field", True, owned=False),
    Case("GET", "/api/v1/pipelines", S, 200),
    Case(
        "POST",
        "/api/v1/pipelines",
        A,
        201,
        body=fresh_json(lambda n: {"name": f"Renewals {n}", "stages": [{"name": "Due"}]}),
    ),
    Case("PUT", "/api/v1/pipelines/order", A, 200, body=_pipeline_order),
    Case(
        "PATCH",
        "/api/v1/pipelines/{pipeline_id}",
        A,
        200,
        "pipeline",
        owned=False,
        body=json({"name": "Partners"}),
    ),
    Case("DELETE", "/api/v1/pipelines/{pipeline_id}", A, 204, "pipeline", True, owned=False),
    Case(
        "POST",
        "/api/v1/pipelines/{pipeline_id}/stages",
        A,
        201,
        "pipeline",
        owned=False,
        body=json({"name": "Extra"}),
    ),
    Case(
        "PATCH",
        "/api/v1/pipelines/{pipeline_id}/stages/{stage_id}",
        A,
        200,
        "pipeline",
        owned=False,
        body=json({"probability": 50}),
    ),
    Case(
        "DELETE",
        "/api/v1/pipelines/{pipeline_id}/stages/{stage_id}",
        A,
        204,
        "pipeline",
        True,
        owned=False,
    ),
    Case(
        "PUT",
        "/api/v1/pipelines/{pipeline_id}/stages/order",
        A,
        200,
        "pipeline",
        owned=False,
        body=_stage_order,
    ),
    # -- admin: mailbox links (whoever owns them), capture rules, the capture trace, jobs
    Case("GET", "/api/v1/admin/mailboxes", A, 200),
    Case("GET", "/api/v1/admin/mailboxes/{link_id}", A, 200, "imap_link"),
    Case(
        "POST",
        "/api/v1/admin/mailboxes/imap",
        A,
        201,
        body=lambda w, caller, ids: {"owner": ANNA, **_imap(w.unique())},
    ),
    Case("POST", "/api/v1/admin/mailboxes/test", A, 200, body=fresh_json(_imap)),
    Case(
        "POST",
        "/api/v1/admin/mailboxes/drop",
        A,
        201,
        body=fresh_json(lambda n: {"owner": f"drop{n}@northwind-supplies.com"}),
    ),
    Case("POST", "/api/v1/admin/mailboxes/{link_id}/pause", A, 200, "imap_link", True),
    Case("POST", "/api/v1/admin/mailboxes/{link_id}/resume", A, 200, "paused_link", True),
    Case("POST", "/api/v1/admin/mailboxes/{link_id}/sync", A, 202, "imap_link"),
    Case("POST", "/api/v1/admin/mailboxes/{link_id}/rotate", A, 200, "drop_link"),
    Case(
        "POST",
        "/api/v1/admin/mailboxes/{link_id}/password",
        A,
        200,
        "imap_link",
        body=json({"password": "the new secret"}),
    ),
    Case("DELETE", "/api/v1/admin/mailboxes/{link_id}", A, 200, "imap_link", True),
    # The browser sign-in: an admin reaches the view, whose check of the owner refuses it
    # before Entra ID is asked (no network here).
    Case(
        "POST",
        "/api/v1/admin/mailboxes/graph/authorize",
        A,
        400,
        body=json({"owner": "not an address", "tenant": "contoso.example", "client_id": "x"}),
    ),
    # Graph app-only and EWS links: an admin reaches the view, whose check of the owner refuses
    # it before the link test talks to anything (no network here).
    Case(
        "POST",
        "/api/v1/admin/mailboxes/graph",
        A,
        400,
        body=json(
            {"owner": "not an address", "tenant": "t", "client_id": "x", "client_secret": "s"}
        ),
    ),
    Case(
        "POST",
        "/api/v1/admin/mailboxes/graph/test",
        A,
        400,
        body=json(
            {"owner": "not an address", "tenant": "t", "client_id": "x", "client_secret": "s"}
        ),
    ),
    Case(
        "POST",
        "/api/v1/admin/mailboxes/ews",
        A,
        400,
        body=json(
            {
                "owner": "not an address",
                "server": "exchange.example",
                "user": "svc",
                "password": "secret",
            }
        ),
    ),
    Case(
        "POST",
        "/api/v1/admin/mailboxes/ews/test",
        A,
        400,
        body=json(
            {
                "owner": "not an address",
                "server": "exchange.example",
                "user": "svc",
                "password": "secret",
            }
        ),
    ),
    Case("GET", "/api/v1/admin/rules", A, 200),
    Case(
        "POST",
        "/api/v1/admin/rules",
        A,
        201,
        body=fresh_json(lambda n: {"kind": "block_domain", "value": f"spam{n}.example"}),
    ),
    Case("PUT", "/api/v1/admin/rules/settings", A, 200, body=json({"skip_mailing_lists": True})),
    Case("DELETE", "/api/v1/admin/rules/{rule_id}", A, 204, "rule", True, owned=False),
    Case("GET", "/api/v1/admin/capture/explain?message_id=<private-anna-0@test.example>", A, 200),
    Case("GET", "/api/v1/admin/quarantine", A, 200),
    Case("POST", "/api/v1/admin/quarantine/retry", A, 200, body=json({})),
    Case("GET", "/api/v1/admin/jobs", A, 200),
    # -- admin: a person's data exported or erased (GDPR)
    Case("GET", "/api/v1/admin/privacy/export?email=clara@brightline-dental.co.uk", A, 200),
    Case(
        "POST",
        "/api/v1/admin/privacy/erase",
        A,
        200,
        body=fresh_json(lambda n: {"email": f"erase{n}@example.org", "confirm": True}),
    ),
]


# -- running it ----------------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JwksServer]:
    server = JwksServer(tmp_path_factory.mktemp("jwks")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tenant: JwksServer
) -> Iterator[World]:
    root = tmp_path_factory.mktemp(f"authz-{request.param}")
    database = _fresh_database_url(request.param, request, root, migrated=True)
    url = next(database)
    db = Database(url)
    settings = load_settings(
        {
            "RAPPORT_DATA_DIR": str(root),
            "RAPPORT_DATABASE_URL": url,
            "RAPPORT_SECRET_KEY": SECRET_KEY,
            "RAPPORT_INTERNAL_DOMAINS": "northwind-supplies.com",
            "RAPPORT_LOG_LEVEL": "ERROR",
            "RAPPORT_RATE_LIMIT_PER_MINUTE": "0",
            "RAPPORT_DROP_DOMAIN": DROP_DOMAIN,
            **tenant.env(),
        }
    )
    with db.session() as session:
        users = {a: add_user(session, a, role="member") for a in (ANNA, BEN)}
        users[BOSS] = add_user(session, BOSS, role="admin")
        for user in users.values():
            set_password(session, user, PASSWORD)
        users[BEN].entra_tenant_id, users[BEN].entra_object_id = TENANT_ID, "oid-ben"
        session.flush()
        user_ids = {a: u.id for a, u in users.items()}
        tokens = {
            a: create_token(session, users[a], expires_in=timedelta(days=1)).plaintext
            for a in (ANNA, BOSS)
        }
    entra = TokenSigner(tenant.authority_host).token(tenant.keys[0], oid="oid-ben")
    private = {a: _capture_private_emails(db, settings, root, a) for a in (ANNA, BEN, BOSS)}
    app = create_app(settings, db=db)
    with pytest.MonkeyPatch.context() as patch:
        # Linking an IMAP mailbox tests the connection first: no network here.
        patch.setattr(imap, "test_connection", lambda settings: ["INBOX", "Sent"])
        yield World(
            app=app,
            client=app.test_client(),
            db=db,
            settings=settings,
            headers={ANNA: bearer(tokens[ANNA]), BEN: bearer(entra), BOSS: bearer(tokens[BOSS])},
            user_ids=user_ids,
            private_emails=private,
        )
    db.dispose()
    next(database, None)  # drops the PostgreSQL database


def call(world: World, case: Case, caller: Caller, target: Target) -> TestResponse:
    ids = world.item(case.item, owner_of(caller, target), fresh=case.fresh) if case.item else {}
    body = case.body(world, caller, ids) if case.body else None
    headers = {} if caller is Caller.ANONYMOUS else world.headers[USER_OF[caller]]
    sent: dict[str, Any] = {"json": body} if body is not None else {}
    if isinstance(body, Raw):
        sent = {"data": body.data, "content_type": body.content_type}
    response = world.client.open(
        case.url.format(**ids), method=case.method, headers=headers, **sent
    )
    response.close()  # a file sent by a page view is closed with its answer
    return response


@pytest.mark.parametrize("case", CASES, ids=str)
def test_who_gets_what(world: World, case: Case) -> None:
    got: dict[tuple[str, str], int] = {}
    expected: dict[tuple[str, str], int] = {}
    for caller in Caller:
        for target in case.targets:
            response = call(world, case, caller, target)
            key = (caller.value, target.value)
            got[key] = response.status_code
            outcome = case.access.outcome(caller, target)
            expected[key] = case.ok if outcome is None else outcome
            if case.check is not None and response.status_code == case.ok:
                assert case.check(target, response.get_json()), (key, response.get_json())
    if case.ok == SAME:
        anonymous = got[(Caller.ANONYMOUS.value, Target.NONE.value)]
        assert anonymous not in (401, 403)
        expected = dict.fromkeys(got, anonymous)
    assert got == expected


def test_every_endpoint_of_the_app_has_a_row(world: World) -> None:
    routes = world.app.url_map.bind("localhost")
    covered = set()
    for case in CASES:
        path = case.url.split("?", 1)[0]
        endpoint, _args = routes.match(path.format_map(_Ones()), method=case.method)
        covered.add((endpoint, case.method))
    every = {
        (rule.endpoint, method)
        for rule in world.app.url_map.iter_rules()
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert every - covered == set(), "endpoints with no row in the matrix: add one"


class _Ones(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "1"
