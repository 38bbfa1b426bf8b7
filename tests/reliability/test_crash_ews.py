"""`rapport worker` syncing on-premises Exchange mailboxes through the EWS emulator (run here,
in the test process), killed with SIGKILL at random points, on SQLite and PostgreSQL: after the
final `rapport worker --once` every message of Inbox and Sent Items is in the database exactly
once, nothing is quarantined, and the sync states are complete: the next poll costs one
SyncFolderItems per folder and captures nothing.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from server.db import Database
from tests.conftest import Cli
from tests.emulators.ews import EwsEmulator, ews, ews_server  # noqa: F401
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
SERVICE = "NORTHWIND\\svc-rapport"
PASSWORD = "Tr0ub4dor&3-rapport"
FOLDERS = {"INBOX": ("inbox", "Inbox"), "Sent": ("sentitems", "Sent Items")}


def test_a_worker_killed_at_random_points_syncs_every_ews_message_exactly_once(
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    ews.add_account(SERVICE, PASSWORD, impersonation=True)
    ews.add_mailbox(OWNER)
    linked_env = {**env, **ews.env(), "EWS_PASSWORD": PASSWORD}
    result = Cli(linked_env)(
        "mailbox", "add", "ews", "--owner", OWNER, "--server", ews.url, "--user", SERVICE,
        "--password-env", "EWS_PASSWORD", "--folders", "inbox,sentitems", "--no-calendar",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    link_id = link_id_of(db, OWNER, "ews")
    rng = random.Random(scale.seed(13))
    killer = Killer(rng, linked_env, lambda: captured_count(db, link_id), tmp_path)
    target_kills = scale.kills(KILLS_PER_EPISODE)
    expected: Counter[tuple[str, str]] = Counter()
    episodes = checked = 0
    while killer.kills < target_kills:
        episodes += 1
        for folder, raw in messages(tmp_path, count=MESSAGES_PER_EPISODE, seed=episodes):
            key, label = FOLDERS[folder]
            ews.deliver(OWNER, raw, key)
            expected[(label, message_key(raw))] += 1
        crash_worker(
            db,
            killer,
            link_id=link_id,
            total=sum(expected.values()),
            kills=min(KILLS_PER_EPISODE, target_kills - killer.kills),
        )
        checked += assert_each_message_once(db, link_id, expected)
        ews.reset()
        expire_killed_leases(db)
        killer.run_to_end(rapport("worker", "--once"))
        assert ews.operations() == {"SyncFolderItems": len(FOLDERS)}, (
            "a sync state short of the end"
        )
        assert captured_count(db, link_id) == sum(expected.values())
    scale.record(
        "crash",
        f"EWS worker ({'sqlite' if db.is_sqlite else 'postgresql'})",
        **counts(killer, episodes, checked),
    )
