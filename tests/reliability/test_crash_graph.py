"""`rapport worker` syncing Microsoft 365 mailboxes through the Graph emulator (run here, in the
test process), killed with SIGKILL at random points, on SQLite and PostgreSQL: after the final
`rapport worker --once` every message of Inbox and Sent Items is in the database exactly once,
nothing is quarantined, and the delta checkpoints are complete: the next poll costs one delta
request per folder and captures nothing.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from server.db import Database
from tests.conftest import Cli
from tests.emulators.fixtures import identity, identity_server  # noqa: F401
from tests.emulators.graph import GraphEmulator, graph, graph_server  # noqa: F401
from tests.emulators.identity import IdentityEmulator
from tests.reliability import scale
from tests.reliability.corpus_mail import OWNER, message_key, messages
from tests.reliability.crash import (
    Killer,
    assert_each_message_once,
    captured_count,
    counts,
    crash_worker,
    expire_killed_leases,
    link_id_of,
    rapport,
)

MESSAGES_PER_EPISODE = 150
KILLS_PER_EPISODE = 2
SECRET = "gR8Q~exampleGraphSecret.0123456789abcdef"
FOLDERS = {"INBOX": ("inbox", "Inbox"), "Sent": ("sentitems", "Sent Items")}


def test_a_worker_killed_at_random_points_syncs_every_graph_message_exactly_once(
    cli: Cli,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    tenant = identity.add_tenant()
    app = graph.graph_app(tenant, secret=SECRET)
    graph.add_mailbox(tenant, OWNER)
    linked_env = {**env, **graph.env(), "GRAPH_SECRET": SECRET}
    result = Cli(linked_env)(
        "mailbox", "add", "graph", "--owner", OWNER, "--tenant", tenant.id,
        "--client-id", app.client_id, "--client-secret-env", "GRAPH_SECRET",
        "--folders", "inbox,sentitems", "--no-calendar",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    link_id = link_id_of(db, OWNER, "graph")
    rng = random.Random(scale.seed(11))
    killer = Killer(rng, linked_env, lambda: captured_count(db, link_id), tmp_path)
    target_kills = scale.kills(KILLS_PER_EPISODE)
    expected: Counter[tuple[str, str]] = Counter()
    episodes = checked = 0
    while killer.kills < target_kills:
        episodes += 1
        for folder, raw in messages(tmp_path, count=MESSAGES_PER_EPISODE, seed=episodes):
            key, label = FOLDERS[folder]
            graph.deliver(OWNER, raw, key)
            expected[(label, message_key(raw))] += 1
        crash_worker(
            db,
            killer,
            link_id=link_id,
            total=sum(expected.values()),
            kills=min(KILLS_PER_EPISODE, target_kills - killer.kills),
        )
        checked += assert_each_message_once(db, link_id, expected)
        graph.reset()
        expire_killed_leases(db)
        killer.run_to_end(rapport("worker", "--once"))
        assert graph.kinds() == {"delta": len(FOLDERS)}, "a checkpoint short of the end"
        assert captured_count(db, link_id) == sum(expected.values())
    scale.record(
        "crash",
        f"Graph worker ({'sqlite' if db.is_sqlite else 'postgresql'})",
        **counts(killer, episodes, checked),
    )
