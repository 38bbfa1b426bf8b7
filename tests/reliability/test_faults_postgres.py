"""PostgreSQL restarted while `rapport worker` (a subprocess, as systemd runs it) syncs a
Microsoft 365 mailbox through the Graph emulator.

While the database is down, GET /healthz answers 503 and says why; when it is back, 200 again.
The worker rides the outage out (it waits for the database and gives the job in hand back to the
queue once it answers: server/mail_ingest/worker.py `Outage`, server/jobs.py `stranded`); were it
to exit, the test would start it again as systemd's `Restart=on-failure` does and fail at the end.
In the end every message is in the database exactly once and the delta checkpoints are complete.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from server.db import Database
from server.mail_ingest.links import queue_sync
from tests.emulators.fixtures import identity, identity_server  # noqa: F401
from tests.emulators.graph import GraphEmulator, graph, graph_server  # noqa: F401
from tests.emulators.identity import IdentityEmulator
from tests.reliability import scale
from tests.reliability.crash import (
    assert_each_message_once,
    captured_count,
    expire_killed_leases,
    link_id_of,
)
from tests.reliability.faults import WorkerProcess, episodes, wait_until
from tests.reliability.test_faults_graph import FOLDERS, OWNER, deliver, link_graph
from tests.support.postgres import PostgresServer

MESSAGES_PER_EPISODE = 150
DOWN_SECONDS = 2.0


@pytest.fixture
def backend() -> str:
    """PostgreSQL only: it is the server being restarted."""
    return "postgresql"


def test_postgresql_restarted_mid_sync_loses_and_duplicates_nothing(
    db: Database,
    client: FlaskClient,
    postgres_server: PostgresServer,
    graph: GraphEmulator,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    linked = link_graph(graph, identity, env)
    link_id = link_id_of(db, OWNER, "graph")
    graph.delay = 0.01  # sync bound by waiting, as in production: the restart lands mid-sync
    worker = WorkerProcess(linked.env, tmp_path / "worker.log")
    expected: Counter[tuple[str, str]] = Counter()
    totals: Counter[str] = Counter()
    try:
        for episode in range(1, episodes(1) + 1):
            deliver(graph, tmp_path, expected, count=MESSAGES_PER_EPISODE, seed=200 + episode)
            with db.session() as session:  # "sync now": new mail, not the next poll two minutes on
                queue_sync(session, link_id)
            total = sum(expected.values())
            already = captured_count(db, link_id)
            if not worker.alive():
                worker.start()
            wait_until(lambda n=already: captured_count(db, link_id) > n, "capture under way")
            assert client.get("/healthz").status_code == 200
            postgres_server.stop()
            totals["restarts"] += 1
            down = client.get("/healthz")
            assert down.status_code == 503
            assert down.get_json()["database"] == "unreachable"
            time.sleep(DOWN_SECONDS)
            totals["mid_run"] += captured_count_after_restart_is_pending(
                postgres_server, db, link_id, total
            )
            assert client.get("/healthz").status_code == 200
            if not worker.alive():  # systemd's Restart=on-failure
                totals["worker_restarts"] += 1
                expire_killed_leases(db)
                worker.start()
            wait_until(
                lambda n=total: captured_count(db, link_id) >= n or not worker.alive(),
                "the worker to catch up",
                timeout=120,
            )
            if not worker.alive():
                totals["worker_restarts"] += 1
                expire_killed_leases(db)
                worker.start()
                wait_until(
                    lambda n=total: captured_count(db, link_id) >= n, "catch-up", timeout=120
                )
            totals["messages_checked"] += assert_each_message_once(db, link_id, expected)
        assert totals["worker_restarts"] == 0, "the worker exited during the outage"
        assert worker.stop() == 0, worker.tail()
    finally:
        if worker.alive():
            worker.kill()
        if not postgres_server.started:
            postgres_server.start()
    served = len(graph.log)
    graph.reset()
    expire_killed_leases(db)
    assert linked("worker", "--once").exit_code == 0
    assert graph.kinds() == {"delta": len(FOLDERS)}, "a checkpoint short of the end"
    scale.record(
        "faults",
        "PostgreSQL restarted mid-sync (Graph worker)",
        **totals,
        worker_restarts=totals["worker_restarts"],
        requests_served=served,
        lost=0,
        duplicated=0,
    )


def captured_count_after_restart_is_pending(
    server: PostgresServer, db: Database, link_id: int, total: int
) -> int:
    """Start the server again; 1 if the restart left messages still to capture."""
    server.start()
    return int(captured_count(db, link_id) < total)
