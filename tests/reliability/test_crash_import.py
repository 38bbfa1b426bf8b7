"""`rapport import` killed with SIGKILL at random points, on SQLite and PostgreSQL: after the
final run every message of the Maildir and the mbox is in the database exactly once, with the
same fate (captured, or skipped by the same rule) as in an uninterrupted import, and nothing is
quarantined.

Each episode imports a fresh synthetic corpus (bench/corpus.py, a new seed: new Message-IDs)
into the same owner's import link, killed a few times, then run to the end; the long form
(`python -m bench.reliability --kills N`) runs as many episodes as its kills need.
"""

from __future__ import annotations

import mailbox
import random
import shutil
from collections import Counter
from pathlib import Path

from server.config import load_settings
from server.db import Database
from server.mail_ingest.importer import import_files
from tests.reliability import scale
from tests.reliability.corpus_mail import (
    OWNER,
    corpus_maildir,
    maildir_messages,
    message_key,
    messages,
)
from tests.reliability.crash import (
    Killer,
    assert_each_message_once,
    captured_count,
    counts,
    link_id_of,
    outcomes,
    rapport,
)

MAILDIR_MESSAGES = 800
MBOX_MESSAGES = 400
KILLS_PER_EPISODE = 3
ARCHIVE = "Archive 2025.mbox"


def write_corpus(work: Path, seed: int) -> tuple[list[Path], Counter[tuple[str, str]]]:
    """A Maildir and an mbox for one episode, and the (folder, key) of every message in them."""
    maildir = corpus_maildir(work / f"maildir-{seed}", messages=MAILDIR_MESSAGES, seed=seed)
    expected = Counter((folder, message_key(raw)) for folder, raw in maildir_messages(maildir))
    archive = work / f"mbox-{seed}"
    archive.mkdir()
    box = mailbox.mbox(archive / ARCHIVE, create=True)
    for _folder, raw in messages(work, count=MBOX_MESSAGES, seed=seed + 100_000):
        box.add(raw)
        expected[(ARCHIVE, message_key(raw))] += 1
    box.close()
    return [maildir, archive / ARCHIVE], expected


def test_imports_killed_at_random_points_keep_every_message_exactly_once(
    db: Database, env: dict[str, str], tmp_path: Path, sqlite_template: Path
) -> None:
    target_kills = scale.kills(KILLS_PER_EPISODE)
    rng = random.Random(scale.seed(20261125))
    killer = Killer(rng, env, lambda: captured_count(db), tmp_path, max_delay=4.0)
    shutil.copyfile(sqlite_template, tmp_path / "reference.sqlite3")
    reference_db = Database(f"sqlite:///{tmp_path / 'reference.sqlite3'}")
    settings = load_settings(env)
    expected: Counter[tuple[str, str]] = Counter()
    episodes = checked = 0
    try:
        while killer.kills < target_kills:
            episodes += 1
            paths, corpus = write_corpus(tmp_path, seed=episodes)
            expected += corpus
            command = rapport("import", *map(str, paths), "--mailbox", OWNER, "--jobs", "2")
            total = captured_count(db) + sum(corpus.values())
            episode_kills = 0
            while episode_kills < KILLS_PER_EPISODE and killer.kills < target_kills:
                if not killer.run_and_kill(command, total):
                    break  # it finished before the kill point: the episode is whole
                episode_kills += 1
            killer.run_to_end(command)
            import_files(reference_db, settings, paths, owner=OWNER, jobs=1)
            checked += assert_each_message_once(
                db,
                link_id_of(db, OWNER, "import"),
                expected,
                reference=outcomes(reference_db, link_id_of(reference_db, OWNER, "import")),
            )
            for path in paths:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    finally:
        reference_db.dispose()
    scale.record(
        "crash",
        f"import ({'sqlite' if db.is_sqlite else 'postgresql'})",
        **counts(killer, episodes, checked),
    )
