"""The Graph emulator's change notifications behave as Graph's do: a subscription exists only
after its URLs passed validation, HTTPS only, at most 10,080 minutes; changes and lifecycle
events are POSTed to the subscriber (tests/integration/test_graph_notifications.py relies on
each)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from server.mail_ingest.oauth import IdentityEndpoints, https_session
from tests.emulators.fixtures import identity, identity_server  # noqa: F401
from tests.emulators.graph import GraphEmulator, graph, graph_server  # noqa: F401
from tests.emulators.identity import GRAPH, HOST, IdentityEmulator
from tests.support.mail import make_email


@dataclass
class Subscriber:
    """A webhook endpoint over HTTPS: echoes validation tokens (unless `echo` is off) and keeps
    what was POSTed to it."""

    url: str = ""
    echo: bool = True
    received: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        token = request.args.get("validationToken")
        if token is not None:
            answer = Response(token if self.echo else "nope", mimetype="text/plain")
        else:
            self.received.append(request.get_json())
            answer = Response(status=202)
        return answer(environ, start_response)


@pytest.fixture
def subscriber(identity: IdentityEmulator) -> Iterator[Subscriber]:  # noqa: F811
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    identity._ca.issue_cert(HOST).configure_cert(context)
    app = Subscriber()
    server = make_server(HOST, 0, app, threaded=True, ssl_context=context)
    app.url = f"https://{HOST}:{server.server_port}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def http(identity: IdentityEmulator) -> Iterator[requests.Session]:  # noqa: F811
    with https_session(IdentityEndpoints(ca_bundle=identity.ca_path, timeout=10)) as session:
        yield session


def test_subscriptions_are_validated_renewed_and_notified(
    graph: GraphEmulator,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    subscriber: Subscriber,
    http: requests.Session,
) -> None:
    tenant = identity.add_tenant()
    address = f"anna@{tenant.id[:8]}.example"
    graph.add_mailbox(tenant, address)
    app = graph.graph_app(tenant, secret="s3cret")
    headers = {"Authorization": f"Bearer {identity.app_token(app, f'{GRAPH}/.default')}"}
    soon = datetime.now(UTC) + timedelta(days=2)

    def create(**changes: Any) -> requests.Response:
        body = {
            "changeType": "created,updated,deleted",
            "notificationUrl": subscriber.url,
            "lifecycleNotificationUrl": subscriber.url,
            "resource": f"/users/{address}/mailFolders('inbox')/messages",
            "expirationDateTime": soon.isoformat(),
            "clientState": "secret-1",
            **changes,
        }
        return http.post(graph.api_url + "/subscriptions", json=body, headers=headers)

    assert create(notificationUrl=subscriber.url.replace("https", "http")).status_code == 400
    too_long = (datetime.now(UTC) + timedelta(minutes=10_081)).isoformat()
    assert create(expirationDateTime=too_long).json()["error"]["code"] == "ExtensionError"
    subscriber.echo = False
    refused = create()
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "ValidationError"
    assert graph.subscriptions == {}
    subscriber.echo = True
    made = create()
    assert made.status_code == 201, made.text
    subscription = made.json()
    assert [d.kind for d in graph.deliveries][-2:] == ["validation", "validation"]

    url = f"{graph.api_url}/subscriptions/{subscription['id']}"
    later = (datetime.now(UTC) + timedelta(days=6)).isoformat()
    renewed = http.patch(url, json={"expirationDateTime": later}, headers=headers)
    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"].startswith(later[:19])

    graph.deliver(address, make_email(sender="c@client.example", to=address, subject="Hi"))
    graph.deliver(address, make_email(sender="c@client.example", to=address), "sentitems")
    (change,) = subscriber.received
    item = change["value"][0]
    assert item["subscriptionId"] == subscription["id"] and item["clientState"] == "secret-1"
    assert item["changeType"] == "created" and item["resource"].startswith("Users/")

    assert graph.lifecycle(subscription["id"], "subscriptionRemoved") == 202
    assert subscriber.received[-1]["value"][0]["lifecycleEvent"] == "subscriptionRemoved"
    assert http.patch(url, json={"expirationDateTime": later}, headers=headers).status_code == 404
