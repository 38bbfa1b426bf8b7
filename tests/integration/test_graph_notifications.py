"""Change notifications from Microsoft Graph, end to end: Rapport's API served over HTTPS on
loopback (werkzeug in a thread, a certificate from the emulators' CA, RAPPORT_PUBLIC_URL
pointing at it -- production code refuses anything but https), `rapport worker` subscribing a
Graph link's folders at the Graph emulator, which validates the notification URLs as Graph does
and then POSTs notifications and lifecycle events to them."""

from __future__ import annotations

import itertools
import os
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from werkzeug.serving import BaseWSGIServer, make_server

from server.config import Settings
from server.db import Database
from server.mail_ingest import graph_notify
from server.models import Job, MailboxLink, MailboxObservation, utcnow
from tests.conftest import SECRET_KEY, Cli
from tests.emulators.fixtures import identity, identity_server  # noqa: F401
from tests.emulators.graph import GraphEmulator, Subscription, graph, graph_server  # noqa: F401
from tests.emulators.identity import HOST, App, IdentityEmulator, Tenant
from tests.support.mail import BASE_DATE, days, make_email

DOMAIN = "northwind-supplies.com"
SECRET = "gR8Q~exampleGraphSecret.0123456789abcdef"
NOTIFICATIONS = "/api/v1/graph/notifications"
LIFECYCLE = "/api/v1/graph/lifecycle"
_mailboxes = itertools.count()


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Served:
    server: BaseWSGIServer

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.server.server_port}"


def _not_yet(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


@pytest.fixture
def served(identity: IdentityEmulator) -> Iterator[Served]:  # noqa: F811
    """Rapport's HTTPS address (its app is plugged in by `live`, once the settings know the
    address)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    identity._ca.issue_cert(HOST).configure_cert(context)
    server = make_server(HOST, 0, _not_yet, threaded=True, ssl_context=context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Served(server)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def env(env: dict[str, str], graph: GraphEmulator, served: Served) -> dict[str, str]:  # noqa: F811
    return {**env, **graph.env(), "RAPPORT_PUBLIC_URL": served.url, "GRAPH_SECRET": SECRET}


@pytest.fixture
def live(app: Flask, served: Served) -> Flask:
    served.server.app = app
    return app


@pytest.fixture
def tenant(identity: IdentityEmulator) -> Tenant:  # noqa: F811
    return identity.add_tenant()


@pytest.fixture
def entra_app(graph: GraphEmulator, tenant: Tenant) -> App:  # noqa: F811
    return graph.graph_app(tenant, secret=SECRET)


def new_mailbox(graph: GraphEmulator, tenant: Tenant) -> str:  # noqa: F811
    address = f"anna{os.getpid()}n{next(_mailboxes)}@{DOMAIN}"
    graph.add_mailbox(tenant, address)
    return address


def customer_mail(n: int, owner: str) -> bytes:
    return make_email(
        sender=f"Customer {n} <c{n}@client.example>",
        to=owner,
        subject=f"Question {n}",
        date=BASE_DATE + days(n),
    )


def link(cli: Cli, owner: str, tenant: Tenant, app: App) -> int:
    result = cli(
        "mailbox", "add", "graph", "--owner", owner, "--tenant", tenant.id,
        "--client-id", app.client_id, "--client-secret-env", "GRAPH_SECRET", "--since", "3650d",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return int(result.output.split("mailbox link ")[1].split(":")[0])


def worker(cli: Cli, db: Database, *, due: bool = False) -> None:
    """`rapport worker --once`; with `due`, every link is made due first (the poll)."""
    if due:
        with db.session() as session:
            session.execute(update(MailboxLink).values(next_run_at=None))
    result = cli("worker", "--once")
    assert result.exit_code == 0, result.output


def the_link(db: Database, link_id: int) -> MailboxLink:
    with db.session() as session:
        found = session.get(MailboxLink, link_id)
        assert found is not None
        session.expunge(found)
    return found


def captured(db: Database, link_id: int) -> int:
    with db.session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(MailboxObservation)
                .where(MailboxObservation.link_id == link_id)
            )
            or 0
        )


def by_folder(graph: GraphEmulator, owner: str) -> dict[str, Subscription]:  # noqa: F811
    names = {graph.folder_id(owner, "inbox"): "Inbox", graph.folder_id(owner, "sentitems"): "Sent"}
    return {names.get(s.scope, s.scope): s for s in graph.subscriptions_of(owner)}


def patches(graph: GraphEmulator) -> int:  # noqa: F811
    return sum(1 for e in graph.log if e.kind == "subscription" and e.method == "PATCH")


def near_expiry(db: Database, link_id: int, hours: float = 1) -> None:
    """As if the link's subscriptions were made almost a week ago."""
    with db.session() as session:
        found = session.get(MailboxLink, link_id)
        assert found is not None
        config = dict(found.settings)
        state = dict(config["notifications"])
        soon = (utcnow() + timedelta(hours=hours)).isoformat()
        state["subscriptions"] = {
            name: {**record, "expires_at": soon} for name, record in state["subscriptions"].items()
        }
        config["notifications"] = state
        found.settings = config


def test_the_worker_subscribes_each_folder_and_renews_before_expiry(
    live: Flask,
    served: Served,
    cli: Cli,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    entra_app: App,
) -> None:
    owner = new_mailbox(graph, tenant)
    link_id = link(cli, owner, tenant, entra_app)
    worker(cli, db)

    subscriptions = by_folder(graph, owner)
    assert set(subscriptions) == {"Inbox", "Sent", "calendar"}
    for subscription in subscriptions.values():
        assert subscription.notification_url == served.url + NOTIFICATIONS
        assert subscription.lifecycle_url == served.url + LIFECYCLE
        assert subscription.change_types == {"created", "updated", "deleted"}
        assert subscription.client_state == graph_notify.client_state(SECRET_KEY, link_id)
        ahead = subscription.expires - datetime.now(subscription.expires.tzinfo)
        assert timedelta(minutes=10_000) < ahead <= timedelta(minutes=10_080)
    validations = [d for d in graph.deliveries if d.kind == "validation"]
    assert len(validations) == 6 and {d.status for d in validations} == {200}
    held = the_link(db, link_id).settings["notifications"]
    assert {r["id"] for r in held["subscriptions"].values()} == {
        s.id for s in subscriptions.values()
    }
    assert held["error"] is None

    # Nothing to do while they are fresh; a day before they expire they are renewed (PATCH).
    worker(cli, db, due=True)
    assert patches(graph) == 0
    near_expiry(db, link_id)
    worker(cli, db, due=True)
    assert patches(graph) == 3
    assert by_folder(graph, owner) == subscriptions, "renewed, not replaced"
    renewed = the_link(db, link_id).settings["notifications"]["subscriptions"]
    assert all(
        datetime.fromisoformat(r["expires_at"]) > utcnow() + timedelta(days=6)
        for r in renewed.values()
    )

    # One that Graph dropped (it expired while the worker was down) is made again.
    gone = subscriptions["Inbox"].id
    del graph.subscriptions[gone]
    near_expiry(db, link_id)
    worker(cli, db, due=True)
    again = by_folder(graph, owner)
    assert set(again) == {"Inbox", "Sent", "calendar"} and again["Inbox"].id != gone
    assert again["Sent"].id == subscriptions["Sent"].id


def test_a_notification_brings_new_mail_in_without_waiting_for_the_poll(
    live: Flask,
    cli: Cli,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    entra_app: App,
) -> None:
    owner = new_mailbox(graph, tenant)
    graph.deliver(owner, customer_mail(1, owner))
    link_id = link(cli, owner, tenant, entra_app)
    worker(cli, db)
    assert captured(db, link_id) == 1
    assert the_link(db, link_id).next_run_at > utcnow() + timedelta(minutes=1)

    # Without a notification, a worker pass leaves the link until its next poll.
    graph.notify_on_change = False
    graph.deliver(owner, customer_mail(2, owner))
    worker(cli, db)
    assert captured(db, link_id) == 1

    # Graph notifies; the answer is 202 and the sync is queued, not run, by the request.
    graph.notify_on_change = True
    graph.deliver(owner, customer_mail(3, owner))
    change = [d for d in graph.deliveries if d.kind == "change"]
    assert [d.status for d in change] == [202]
    assert captured(db, link_id) == 1
    with db.session() as session:
        queued = session.scalar(
            select(Job).where(Job.unique_key == f"sync:{link_id}", Job.status == "queued")
        )
        assert queued is not None and queued.run_after <= utcnow()
    worker(cli, db)
    assert captured(db, link_id) == 3


def test_the_validation_handshake_and_a_wrong_client_state(
    live: Flask,
    client: FlaskClient,
    cli: Cli,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    entra_app: App,
) -> None:
    owner = new_mailbox(graph, tenant)
    link_id = link(cli, owner, tenant, entra_app)
    worker(cli, db)  # the first sync; the link is not due again for two minutes

    for path in (NOTIFICATIONS, LIFECYCLE):
        token = "Validation: Testing client application reachability <&> for subscription"
        echoed = client.post(
            path, query_string={"validationToken": token}, content_type="text/plain"
        )
        assert echoed.status_code == 200
        assert echoed.mimetype == "text/plain" and echoed.get_data(as_text=True) == token

    def sent(state: str) -> int:
        body = {"value": [{"subscriptionId": "x", "changeType": "created", "clientState": state}]}
        return client.post(NOTIFICATIONS, json=body).status_code

    assert sent(f"{link_id}.forged") == 403
    assert sent(graph_notify.client_state("another key of at least 32 characters", link_id)) == 403
    assert sent("") == 403
    with db.session() as session:
        assert session.scalar(select(Job).where(Job.unique_key == f"sync:{link_id}")) is None
    assert sent(graph_notify.client_state(SECRET_KEY, link_id)) == 202
    with db.session() as session:
        assert session.scalar(select(Job).where(Job.unique_key == f"sync:{link_id}")) is not None

    assert (
        client.post(NOTIFICATIONS, data='{"value": []}', content_type="text/plain").status_code
        == 415
    )
    assert client.post(NOTIFICATIONS, json={"values": 1}).status_code == 400
    assert client.post(NOTIFICATIONS, json={"value": []}).status_code == 202


def test_lifecycle_events_renew_recreate_and_resync(
    live: Flask,
    cli: Cli,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    entra_app: App,
) -> None:
    owner = new_mailbox(graph, tenant)
    link_id = link(cli, owner, tenant, entra_app)
    worker(cli, db)
    subscriptions = by_folder(graph, owner)

    # reauthorizationRequired: the link's subscriptions are renewed at once.
    assert graph.lifecycle(subscriptions["Inbox"].id, "reauthorizationRequired") == 202
    worker(cli, db)
    assert patches(graph) == 3

    # subscriptionRemoved: Graph dropped it; it is made again.
    assert graph.lifecycle(subscriptions["Sent"].id, "subscriptionRemoved") == 202
    worker(cli, db)
    again = by_folder(graph, owner)
    assert set(again) == {"Inbox", "Sent", "calendar"}
    assert again["Sent"].id != subscriptions["Sent"].id

    # missed: notifications were lost; a sync (delta) finds what they were about.
    graph.notify_on_change = False
    graph.deliver(owner, customer_mail(7, owner))
    assert graph.lifecycle(again["Inbox"].id, "missed") == 202
    worker(cli, db)
    assert captured(db, link_id) == 1


def test_without_a_public_https_address_nothing_subscribes(
    settings: Settings, db: Database
) -> None:
    for public_url in (None, "http://localhost:8000"):
        plain = replace(settings, public_url=public_url)
        assert not graph_notify.notifications_enabled(plain)
        assert graph_notify.SubscriptionKeeper(db, plain).schedule() == 0
        assert graph_notify.keep_subscriptions(db, plain, 1).created == 0


def test_client_states_name_their_link_and_need_a_configured_key() -> None:
    keys = ["k" * 40, "old" * 12]
    assert graph_notify.link_of(keys, graph_notify.client_state(keys[0], 42)) == 42
    assert graph_notify.link_of(keys, graph_notify.client_state(keys[1], 7)) == 7
    assert graph_notify.link_of(keys[:1], graph_notify.client_state(keys[1], 7)) is None
    forged = graph_notify.client_state(keys[0], 42).replace("42.", "43.", 1)
    for value in (forged, None, 42, "", "42", "x" * 200, "42.abc"):
        assert graph_notify.link_of(keys, value) is None
    assert len(graph_notify.client_state(keys[0], 2**31 - 1)) <= 128
