"""The Graph emulator answers as Microsoft Graph does, quirks included: the source's tests
(tests/integration/test_graph_source.py) rely on each behaviour checked here."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from server.mail_ingest.oauth import IdentityEndpoints, https_session
from tests.emulators.fixtures import identity, identity_server  # noqa: F401
from tests.emulators.graph import GraphEmulator, graph, graph_server  # noqa: F401
from tests.emulators.identity import GRAPH, IdentityEmulator, Tenant
from tests.support.mail import make_email

IMMUTABLE = 'IdType="ImmutableId"'


class Client:
    """Plain requests to the emulator with an app-only token."""

    def __init__(self, emulator: GraphEmulator, http: requests.Session, token: str) -> None:
        self.emulator = emulator
        self.http = http
        self.token = token

    def get(self, path: str, prefer: str = "", **params: str) -> requests.Response:
        url = path if path.startswith("https://") else self.emulator.api_url + path
        headers = {"Authorization": f"Bearer {self.token}"}
        if prefer:
            headers["Prefer"] = prefer
        return self.http.get(url, headers=headers, params=params or None)

    def batch(self, requests_: list[dict[str, Any]]) -> requests.Response:
        return self.http.post(
            self.emulator.api_url + "/$batch",
            json={"requests": requests_},
            headers={"Authorization": f"Bearer {self.token}"},
        )

    def delta_round(self, url: str, prefer: str = IMMUTABLE) -> tuple[list[dict[str, Any]], str]:
        """Every entry of a round, and its deltaLink."""
        entries: list[dict[str, Any]] = []
        while True:
            body = self.get(url, prefer).json()
            entries += body["value"]
            if "@odata.deltaLink" in body:
                return entries, body["@odata.deltaLink"]
            assert "@odata.nextLink" in body
            url = body["@odata.nextLink"]


@pytest.fixture
def tenant(identity: IdentityEmulator) -> Tenant:  # noqa: F811
    return identity.add_tenant(domain=f"t{len(identity.tenants)}.onmicrosoft.com")


@pytest.fixture
def client(graph: GraphEmulator, identity: IdentityEmulator, tenant: Tenant) -> Iterator[Client]:  # noqa: F811
    app = graph.graph_app(tenant, secret="s3cret")
    token = identity.app_token(app, f"{GRAPH}/.default")
    with https_session(IdentityEndpoints(ca_bundle=identity.ca_path, timeout=10)) as http:
        yield Client(graph, http, token)


def mailbox(graph: GraphEmulator, tenant: Tenant, n: int = 5) -> str:  # noqa: F811
    address = f"anna{len(graph.mailboxes)}@{tenant.domains[0]}"
    graph.add_mailbox(tenant, address)
    for i in range(n):
        graph.deliver(address, make_email(sender="c@client.example", to=address, subject=f"Q{i}"))
    return address


def test_delta_pages_replay_and_the_delta_link_only_on_the_last_page(
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    client: Client,
) -> None:
    address = mailbox(graph, tenant, 5)
    url = f"/users/{address}/mailFolders/inbox/messages/delta?$select=subject,internetMessageId"
    first = client.get(url, f"{IMMUTABLE}, odata.maxpagesize=2").json()
    assert len(first["value"]) == 2 and "@odata.deltaLink" not in first
    assert set(first["value"][0]) >= {"id", "subject", "internetMessageId"}
    assert "from" not in first["value"][0], "$select is honoured"
    again = client.get(first["@odata.nextLink"], IMMUTABLE).json()
    replay = client.get(first["@odata.nextLink"], IMMUTABLE).json()
    assert again["value"] == replay["value"], "a replayed nextLink returns the same page"
    entries, delta = client.delta_round(first["@odata.nextLink"])
    assert len(entries) == 3
    assert client.get(delta, IMMUTABLE).json()["value"] == [], "unchanged: nothing"


def test_moves_change_ids_unless_immutable_ids_are_asked_for(
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    client: Client,
) -> None:
    address = mailbox(graph, tenant, 2)
    graph.add_folder(address, "Projects")
    inbox = f"/users/{address}/mailFolders/inbox/messages/delta"
    immutable, immutable_delta = client.delta_round(inbox)
    rest, rest_delta = client.delta_round(inbox, prefer="")
    moved = immutable[0]["id"]
    graph.move(address, moved, "Projects")
    graph.mark_read(address, immutable[1]["id"])
    changes, _ = client.delta_round(immutable_delta)
    assert {"id": moved, "@removed": {"reason": "deleted"}}.items() <= changes[0].items() or any(
        c["id"] == moved and c.get("@removed") for c in changes
    )
    assert any(c["id"] == immutable[1]["id"] and "@removed" not in c for c in changes), (
        "a message marked read comes back whole"
    )
    projects = graph.folder_id(address, "Projects")
    there, _ = client.delta_round(f"/users/{address}/mailFolders/{projects}/messages/delta")
    assert [m["id"] for m in there] == [moved], "immutable id kept across the move"
    there_rest, _ = client.delta_round(
        f"/users/{address}/mailFolders/{projects}/messages/delta", prefer=""
    )
    old_rest = next(
        m["id"] for m in rest if m["internetMessageId"] == there[0]["internetMessageId"]
    )
    assert there_rest[0]["id"] != old_rest, "default ids change on a move"
    gone, _ = client.delta_round(rest_delta, prefer="")
    assert any(c["id"] == old_rest and c.get("@removed") for c in gone)


def test_mime_content_and_batching(
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    client: Client,
) -> None:
    address = mailbox(graph, tenant, 3)
    ids = [m.immutable_id for m in graph.messages_in(address, "inbox")]
    value = client.get(f"/users/{address}/messages/{ids[0]}/$value")
    assert value.status_code == 200 and b"Subject: Q" in value.content
    items = [
        {"id": str(n), "method": "GET", "url": f"/users/{address}/messages/{mid}/$value"}
        for n, mid in enumerate(ids)
    ]
    answer = client.batch(items).json()["responses"]
    assert sorted(r["id"] for r in answer) == ["0", "1", "2"]
    assert all(b"Message-ID" in base64.b64decode(r["body"]) for r in answer), "base64 bodies"
    too_many = client.batch(items * 7)
    assert too_many.status_code == 400
    assert "limit of 20" in too_many.json()["error"]["message"]

    graph.concurrency_limit = 2
    graph.retry_after = 0.3
    throttled = client.batch(items + items[:1]).json()["responses"]
    limited = [r for r in throttled if r["status"] == 429]
    assert len(limited) == 2, "items past the mailbox's concurrency answer 429, one by one"
    assert all(r["headers"]["Retry-After"] == "0.3" for r in limited)
    assert graph.count("mime", in_batch=True) == 3 + 4


def test_faults_and_the_request_log(
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    client: Client,
) -> None:
    address = mailbox(graph, tenant, 1)
    graph.fail_next("folders", 429, retry_after=0.4)
    graph.fail_next("folders", 503)
    path = f"/users/{address}/mailFolders"
    first = client.get(path)
    assert first.status_code == 429 and first.headers["Retry-After"] == "0.4"
    assert client.get(path).status_code == 503, "503 without Retry-After"
    assert "Retry-After" not in client.get(path).headers
    assert len(graph.violations()) == 2, "both sent inside the 0.4 s it was asked to wait"
    assert graph.count("folders") == 3

    graph.fail_next_delta(address)
    delta = f"/users/{address}/mailFolders/inbox/messages/delta"
    _, link = client.delta_round(delta)
    gone = client.get(link, IMMUTABLE)
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "syncStateNotFound"
    assert gone.headers["Location"].endswith("$deltatoken=")

    graph.expire_tokens()
    refused = client.get(path)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_access_rules(
    graph: GraphEmulator,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    tenant: Tenant,
    client: Client,
) -> None:
    address = mailbox(graph, tenant, 0)
    assert client.get(f"/users/nobody@{tenant.domains[0]}/mailFolders").status_code == 404
    no_consent = identity.add_app(tenant, secret="x")  # no application permission consented
    token = identity.app_token(no_consent, f"{GRAPH}/.default")
    denied = client.http.get(
        f"{graph.api_url}/users/{address}/mailFolders",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "ErrorAccessDenied"
    limited = graph.graph_app(tenant, secret="y")
    graph.restrict_app(limited, [f"someone@{tenant.domains[0]}"])
    token = identity.app_token(limited, f"{GRAPH}/.default")
    policy = client.http.get(
        f"{graph.api_url}/users/{address}/mailFolders",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert policy.status_code == 403 and "AccessPolicy" in policy.json()["error"]["message"]


def test_calendar_view_delta_has_occurrences_not_masters(
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    client: Client,
) -> None:
    address = mailbox(graph, tenant, 0)
    start = datetime(2026, 9, 7, 9, 0, tzinfo=UTC)
    uid = "040000008200E00074C5B7101A82E00800000000D0E1F2A3B4C5D601000000000000000010000000"
    series = graph.add_event(
        address,
        subject="Weekly sync",
        start=start,
        organizer=("Anna", address),
        attendees={"bob@client.example": ("Bob", "accepted")},
        recurrence={
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
            "range": {"type": "numbered", "startDate": "2026-09-07", "numberOfOccurrences": 4},
        },
        ical_uid=uid,
    )
    graph.change_occurrence(
        address, series, start + timedelta(days=7), start=start + timedelta(days=8)
    )
    window = {"startDateTime": "2026-09-01T00:00:00Z", "endDateTime": "2026-12-01T00:00:00Z"}
    body = client.get(f"/users/{address}/calendarView/delta", **window).json()
    events = body["value"]
    assert sorted(e["type"] for e in events) == [
        "exception",
        "occurrence",
        "occurrence",
        "occurrence",
    ]
    assert len({e["iCalUId"] for e in events}) == 4, "each occurrence has its own iCalUId"
    assert all(e["seriesMasterId"] == series for e in events)
    master = client.get(f"/users/{address}/events/{series}").json()
    assert master["type"] == "seriesMaster" and master["iCalUId"] == uid
    assert client.get(body["@odata.deltaLink"]).json()["value"] == []
