"""`rapport worker` syncing a Microsoft 365 mailbox through a Graph emulator that misbehaves, on
SQLite and PostgreSQL.

Under fire (each episode brings new mail): 30% of requests and of $batch items answered 429 or
503 with a Retry-After, some answers slow, some connections dropped half-way through an answer,
the access token expiring in the middle of the sync, and (from the second episode) the delta
token refused with 410 Gone. The worker runs until the state converges: every message is seen
exactly once, observations equal the mailbox, no request went out before its Retry-After, and the
next clean poll costs one delta request per folder. A second test keeps Graph failing (100% 503)
while a real worker runs: `rapport mailbox list` and the admin API show the error and what
happens next; once Graph heals, the link is active again with every message captured once.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from flask.testing import FlaskClient

from server.db import Database
from tests.conftest import Cli
from tests.emulators.fixtures import identity, identity_server  # noqa: F401
from tests.emulators.graph import GraphEmulator, graph, graph_server  # noqa: F401
from tests.emulators.identity import IdentityEmulator
from tests.reliability import scale
from tests.reliability.corpus_mail import OWNER, message_key, messages
from tests.reliability.crash import (
    assert_each_message_once,
    captured_count,
    expire_killed_leases,
    link_id_of,
)
from tests.reliability.faults import (
    WorkerProcess,
    admin_token,
    api_link,
    converge,
    episodes,
    link_view,
    listed_row,
    wait_until,
)

MESSAGES_PER_EPISODE = 40
SECRET = "gR8Q~exampleGraphSecret.0123456789abcdef"
FOLDERS = {"INBOX": ("inbox", "Inbox"), "Sent": ("sentitems", "Sent Items")}


def link_graph(graph: GraphEmulator, identity: IdentityEmulator, env: dict[str, str]) -> Cli:  # noqa: F811
    tenant = identity.add_tenant()
    app = graph.graph_app(tenant, secret=SECRET)
    graph.add_mailbox(tenant, OWNER)
    linked = Cli({**env, **graph.env(), "GRAPH_SECRET": SECRET})
    result = linked(
        "mailbox", "add", "graph", "--owner", OWNER, "--tenant", tenant.id,
        "--client-id", app.client_id, "--client-secret-env", "GRAPH_SECRET",
        "--folders", "inbox,sentitems", "--no-calendar",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return linked


def deliver(
    graph: GraphEmulator,  # noqa: F811
    work: Path,
    expected: Counter[tuple[str, str]],
    *,
    count: int,
    seed: int,
) -> None:
    for folder, raw in messages(work, count=count, seed=seed):
        key, label = FOLDERS[folder]
        graph.deliver(OWNER, raw, key)
        expected[(label, message_key(raw))] += 1


def backend_of(db: Database) -> str:
    return "sqlite" if db.is_sqlite else "postgresql"


def test_graph_sync_converges_exactly_once_through_throttling_drops_expiry_and_410(
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    linked = link_graph(graph, identity, env)
    link_id = link_id_of(db, OWNER, "graph")
    rng = random.Random(scale.seed(17))
    expected: Counter[tuple[str, str]] = Counter()
    totals: Counter[str] = Counter()
    for episode in range(1, episodes(2) + 1):
        deliver(graph, tmp_path, expected, count=MESSAGES_PER_EPISODE, seed=100 + episode)
        graph.faults(0.3, kinds=("429", "503"), retry_after=0.05)
        graph.retry_after_kinds = ("429", "503")
        graph.slow_rate, graph.slow_seconds = 0.1, 0.2
        graph.drop_rate = 0.05
        graph.expire_tokens_after(rng.randint(3, 12))
        if episode > 1:
            graph.fail_next_delta(OWNER, code=rng.choice(["syncStateNotFound", "resyncRequired"]))
        total = sum(expected.values())
        seen = converge(linked, db, link_id, lambda n=total: captured_count(db, link_id) >= n)
        assert graph.violations() == [], "a request went out before its Retry-After"
        statuses = Counter(entry.status for entry in graph.log)
        assert statuses[429] + statuses[503] > 0 and statuses[401] > 0
        assert statuses[410] == (1 if episode > 1 else 0), "the 410 reset was not exercised"
        totals["faults_injected"] += sum(n for s, n in statuses.items() if s >= 400)
        totals["faults_injected"] += graph.dropped
        totals["connections_dropped"] += graph.dropped
        totals["throttled"] += statuses[429] + statuses[503]
        totals["tokens_expired"] += statuses[401]
        totals["delta_resets"] += statuses[410]
        totals["requests_served"] += len(graph.log)
        totals["failed_syncs_seen"] += len(seen.failures)
        totals["worker_rounds"] += seen.rounds
        totals["messages_checked"] += assert_each_message_once(db, link_id, expected)
        view = link_view(db, link_id)
        assert view.status == "active" and view.status_reason is None, view
        graph.reset()
        expire_killed_leases(db)
        assert linked("worker", "--once").exit_code == 0
        assert graph.kinds() == {"delta": len(FOLDERS)}, "a checkpoint short of the end"
        assert captured_count(db, link_id) == total
        graph.reset()
    scale.record(
        "faults",
        f"Graph worker ({backend_of(db)})",
        episodes=episodes(2),
        **totals,
        lost=0,
        duplicated=0,
    )


def test_graph_outage_is_visible_while_it_lasts_and_heals_to_active(
    db: Database,
    client: FlaskClient,
    graph: GraphEmulator,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    linked = link_graph(graph, identity, env)
    link_id = link_id_of(db, OWNER, "graph")
    token = admin_token(db)
    expected: Counter[tuple[str, str]] = Counter()
    deliver(graph, tmp_path, expected, count=40, seed=7)
    graph.faults(1.0, kinds=("503",), retry_after=0.05)
    graph.retry_after_kinds = ("503",)
    worker = WorkerProcess(linked.env, tmp_path / "worker.log")
    worker.start()
    try:
        wait_until(lambda: link_view(db, link_id).status == "error", "the link in error")
        row = listed_row(linked, link_id)
        assert row["status"] == "error", row
        assert "HTTP 503" in row["last error"] and "tries again by itself" in row["last error"]
        shown = api_link(client, token, link_id)
        assert shown["status"] == "error"
        assert "HTTP 503" in shown["last_error"]
        assert "tries again by itself" in shown["status_reason"]
        assert captured_count(db, link_id) == 0
        outage_requests = len(graph.log)
        graph.faults(0.0)
        total = sum(expected.values())
        wait_until(
            lambda: (
                captured_count(db, link_id) == total and link_view(db, link_id).status == "active"
            ),
            "the link healed",
        )
        assert worker.stop() == 0, worker.tail()
    finally:
        if worker.alive():
            worker.kill()
    shown = api_link(client, token, link_id)
    assert (shown["status"], shown["status_reason"]) == ("active", None)
    assert listed_row(linked, link_id)["status"] == "active"
    checked = assert_each_message_once(db, link_id, expected)
    assert graph.violations() == []
    scale.record(
        "faults",
        f"Graph outage, visible then healed ({backend_of(db)})",
        faults_injected=outage_requests,
        requests_served=len(graph.log),
        messages_checked=checked,
        lost=0,
        duplicated=0,
    )
