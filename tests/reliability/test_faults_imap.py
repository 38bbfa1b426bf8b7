"""Dovecot restarted (its open IMAP sessions cut, as a crash or reboot does) while `rapport
worker --once` (a subprocess) syncs a big folder, on SQLite and PostgreSQL.

The cut sync ends as a visible failure (the link in "error", the IMAP error and when Rapport
tries again); once that back-off has passed the next run converges: every message exactly once,
and each folder's checkpoint equal to what the server says (UIDVALIDITY, UIDNEXT, count,
HIGHESTMODSEQ).
"""

from __future__ import annotations

import random
import subprocess
from collections import Counter
from pathlib import Path

from server.db import Database
from server.mail_ingest.links import queue_sync
from tests.conftest import Cli
from tests.reliability import scale
from tests.reliability.corpus_mail import OWNER, message_key, messages
from tests.reliability.crash import (
    RUN_TIMEOUT,
    assert_each_message_once,
    captured_count,
    expire_killed_leases,
    link_id_of,
    rapport,
)
from tests.reliability.faults import converge, episodes, link_view, listed_row, wait_until
from tests.reliability.test_crash_imap import FOLDERS, checkpoints, server_state
from tests.support.dovecot_fixtures import ImapAccount

MESSAGES_PER_EPISODE = 800


def test_dovecot_restarted_mid_sync_converges_exactly_once_with_matching_checkpoints(
    db: Database, imap_account: ImapAccount, env: dict[str, str], tmp_path: Path
) -> None:
    server, user = imap_account.server, imap_account.user
    linked = Cli(
        {**env, "RAPPORT_CA_BUNDLE": str(server.ca_path), "IMAP_PASSWORD": imap_account.password}
    )
    result = linked(
        "mailbox", "add", "imap", "--owner", OWNER, "--host", server.host,
        "--port", str(server.imaps_port), "--user", user, "--password-env", "IMAP_PASSWORD",
        "--folders", ",".join(FOLDERS),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    link_id = link_id_of(db, OWNER, "imap")
    rng = random.Random(scale.seed(23))
    expected: Counter[tuple[str, str]] = Counter()
    totals: Counter[str] = Counter()
    for episode in range(1, episodes(1) + 1):
        batch = messages(tmp_path, count=MESSAGES_PER_EPISODE, seed=300 + episode)
        for folder in FOLDERS:
            server.append_many(user, folder, [raw for f, raw in batch if f == folder])
        expected.update((folder, message_key(raw)) for folder, raw in batch)
        with db.session() as session:  # "sync now": the new mail, not the next poll
            queue_sync(session, link_id)
        total = sum(expected.values())
        before = captured_count(db, link_id)
        target = before + rng.randint(1, (total - before) // 2)
        log = tmp_path / f"worker-{episode}.log"
        with log.open("wb") as out:
            worker = subprocess.Popen(
                rapport("worker", "--once"), env={**linked.env}, stdout=out, stderr=out
            )
        try:
            wait_until(lambda n=target: captured_count(db, link_id) >= n, "the sync under way")
            totals["restarts_mid_sync"] += captured_count(db, link_id) < total
            server.restart()
            totals["restarts"] += 1
            assert worker.wait(timeout=RUN_TIMEOUT) == 0, log.read_text(errors="replace")
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        view = link_view(db, link_id)
        if view.status == "error":  # the cut sync failed: shown, with what happens next
            assert view.last_error, view
            assert "tries again by itself" in (view.status_reason or "")
            assert listed_row(linked, link_id)["status"] == "error"
            totals["failures_shown"] += 1
        expire_killed_leases(db)
        seen = converge(linked, db, link_id, lambda n=total: captured_count(db, link_id) >= n)
        totals["worker_rounds"] += seen.rounds
        totals["messages_checked"] += assert_each_message_once(db, link_id, expected)
        assert checkpoints(db, link_id) == server_state(server, user)
    assert totals["restarts_mid_sync"] > 0, "no restart landed mid-sync"
    scale.record(
        "faults",
        f"Dovecot restarted mid-sync ({'sqlite' if db.is_sqlite else 'postgresql'})",
        **totals,
        lost=0,
        duplicated=0,
    )
