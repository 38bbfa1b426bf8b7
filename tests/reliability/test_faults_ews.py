"""`rapport worker` syncing an on-premises Exchange mailbox through an EWS emulator that
misbehaves, on SQLite and PostgreSQL.

Under fire (each episode brings new mail): 30% of requests answered ErrorServerBusy with a
BackOffMilliseconds (Exchange's Retry-After), some answers slow, some connections dropped
half-way through an answer, and (from the second episode) the sync state refused with
ErrorInvalidSyncStateData. The worker runs until the state converges: every message exactly
once, no request before its back-off ran out, and the next clean poll costs one SyncFolderItems
per folder.
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
    assert_each_message_once,
    captured_count,
    expire_killed_leases,
    link_id_of,
)
from tests.reliability.faults import converge, episodes, link_view

MESSAGES_PER_EPISODE = 60
SERVICE = "NORTHWIND\\svc-rapport"
PASSWORD = "Tr0ub4dor&3-rapport"
FOLDERS = {"INBOX": ("inbox", "Inbox"), "Sent": ("sentitems", "Sent Items")}


def test_ews_sync_converges_exactly_once_through_busy_drops_and_invalid_sync_states(
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    ews.add_account(SERVICE, PASSWORD, impersonation=True)
    ews.add_mailbox(OWNER)
    linked = Cli({**env, **ews.env(), "EWS_PASSWORD": PASSWORD})
    result = linked(
        "mailbox", "add", "ews", "--owner", OWNER, "--server", ews.url, "--user", SERVICE,
        "--password-env", "EWS_PASSWORD", "--folders", "inbox,sentitems", "--no-calendar",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    link_id = link_id_of(db, OWNER, "ews")
    rng = random.Random(scale.seed(19))
    expected: Counter[tuple[str, str]] = Counter()
    totals: Counter[str] = Counter()
    for episode in range(1, episodes(2) + 1):
        for folder, raw in messages(tmp_path, count=MESSAGES_PER_EPISODE, seed=400 + episode):
            key, label = FOLDERS[folder]
            ews.deliver(OWNER, raw, key)
            expected[(label, message_key(raw))] += 1
        ews.server_busy(0.3, back_off_ms=50)
        ews.slow_rate, ews.slow_seconds = 0.1, 0.2
        ews.drop_rate = 0.1
        if episode > 1:
            ews.invalidate_sync_state(OWNER, rng.choice(["inbox", "sentitems"]))
        total = sum(expected.values())
        seen = converge(linked, db, link_id, lambda n=total: captured_count(db, link_id) >= n)
        assert ews.violations() == [], "a request went out before its back-off ran out"
        codes = Counter(entry.code for entry in ews.log)
        assert codes["ErrorInvalidSyncStateData"] == (1 if episode > 1 else 0)
        totals["faults_injected"] += codes["ErrorServerBusy"] + ews.dropped
        totals["faults_injected"] += codes["ErrorInvalidSyncStateData"]
        totals["server_busy"] += codes["ErrorServerBusy"]
        totals["connections_dropped"] += ews.dropped
        totals["sync_state_resets"] += codes["ErrorInvalidSyncStateData"]
        totals["requests_served"] += len(ews.log)
        totals["failed_syncs_seen"] += len(seen.failures)
        totals["worker_rounds"] += seen.rounds
        totals["messages_checked"] += assert_each_message_once(db, link_id, expected)
        view = link_view(db, link_id)
        assert view.status == "active" and view.status_reason is None, view
        ews.reset()
        expire_killed_leases(db)
        assert linked("worker", "--once").exit_code == 0
        assert ews.operations() == {"SyncFolderItems": len(FOLDERS)}, "a sync state short"
        assert captured_count(db, link_id) == total
        ews.reset()
    assert totals["server_busy"] > 0, "ErrorServerBusy was never exercised"
    scale.record(
        "faults",
        f"EWS worker ({'sqlite' if db.is_sqlite else 'postgresql'})",
        episodes=episodes(2),
        **totals,
        lost=0,
        duplicated=0,
    )
