"""`rapport worker` syncing a real Dovecot, killed with SIGKILL at random points, on SQLite and
PostgreSQL: after the final `rapport worker --once` every message of INBOX and Sent is in the
database exactly once, nothing is quarantined, and each folder's checkpoint is exactly where
the server is (UIDVALIDITY, UIDNEXT, message count, HIGHESTMODSEQ).

Each episode delivers new mail (a fresh corpus seed) and kills the worker a few times while it
syncs; so the suite also proves resuming an incremental sync, not only the first one.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from server.db import Database
from server.models import SyncCheckpoint
from tests.conftest import Cli
from tests.reliability import scale
from tests.reliability.corpus_mail import OWNER, message_key, messages
from tests.reliability.crash import (
    Killer,
    assert_each_message_once,
    captured_count,
    counts,
    crash_worker,
    link_id_of,
)
from tests.support.dovecot import DovecotServer
from tests.support.dovecot_fixtures import ImapAccount

MESSAGES_PER_EPISODE = 500
KILLS_PER_EPISODE = 3
FOLDERS = ("INBOX", "Sent")


def server_state(server: DovecotServer, user: str) -> dict[str, dict[str, int]]:
    """What the server says of each folder, in the checkpoint's terms."""
    found = {}
    with server.client(user) as client:
        for folder in FOLDERS:
            status = client.folder_status(
                folder, ["UIDVALIDITY", "UIDNEXT", "MESSAGES", "HIGHESTMODSEQ"]
            )
            client.select_folder(folder, readonly=True)
            found[folder] = {
                "uidvalidity": int(status[b"UIDVALIDITY"]),
                "last_uid": max(client.search("ALL"), default=0),
                "uidnext": int(status[b"UIDNEXT"]),
                "messages": int(status[b"MESSAGES"]),
                "highestmodseq": int(status[b"HIGHESTMODSEQ"]),
            }
    return found


def checkpoints(db: Database, link_id: int) -> dict[str, dict[str, int]]:
    with db.read_session() as session:
        rows = session.execute(
            select(SyncCheckpoint.folder, SyncCheckpoint.state).where(
                SyncCheckpoint.link_id == link_id
            )
        ).all()
    return {str(folder): {k: v for k, v in state.items() if k != "v"} for folder, state in rows}


def test_a_worker_killed_at_random_points_syncs_every_imap_message_exactly_once(
    cli: Cli, db: Database, imap_account: ImapAccount, env: dict[str, str], tmp_path: Path
) -> None:
    server, user = imap_account.server, imap_account.user
    linked_env = {
        **env,
        "RAPPORT_CA_BUNDLE": str(server.ca_path),
        "IMAP_PASSWORD": imap_account.password,
    }
    result = Cli(linked_env)(
        "mailbox", "add", "imap", "--owner", OWNER, "--host", server.host,
        "--port", str(server.imaps_port), "--user", user, "--password-env", "IMAP_PASSWORD",
        "--folders", ",".join(FOLDERS),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    link_id = link_id_of(db, OWNER, "imap")
    rng = random.Random(scale.seed(7))
    killer = Killer(rng, linked_env, lambda: captured_count(db, link_id), tmp_path)
    target_kills = scale.kills(KILLS_PER_EPISODE)
    expected: Counter[tuple[str, str]] = Counter()
    episodes = checked = 0
    while killer.kills < target_kills:
        episodes += 1
        batch = messages(tmp_path, count=MESSAGES_PER_EPISODE, seed=episodes)
        for folder in FOLDERS:
            server.append_many(user, folder, [raw for f, raw in batch if f == folder])
        expected.update((folder, message_key(raw)) for folder, raw in batch)
        crash_worker(
            db,
            killer,
            link_id=link_id,
            total=sum(expected.values()),
            kills=min(KILLS_PER_EPISODE, target_kills - killer.kills),
        )
        checked += assert_each_message_once(db, link_id, expected)
        assert checkpoints(db, link_id) == server_state(server, user)
    scale.record(
        "crash",
        f"IMAP worker ({'sqlite' if db.is_sqlite else 'postgresql'})",
        **counts(killer, episodes, checked),
    )
