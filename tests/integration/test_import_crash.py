"""An import killed (SIGKILL) at random points, then re-run, ends with every email exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from server.db import Database
from server.mail_ingest.pipeline import BATCH_SIZE
from server.models import Activity, ActivityParticipant, CaptureDecision, MailboxObservation
from tests.support.mail import BASE_DATE, days, make_email, write_maildir

OWNER = "anna@northwind-supplies.com"
# Five batches or more. Kills after the first wait for a commit of new messages, so they land
# whatever the machine's speed (kills timed from the start stopped landing once 900 small
# messages took a second to import), and the third still finds a batch to interrupt.
MESSAGES = 3000
assert MESSAGES >= 5 * BATCH_SIZE


def build_mailbox(root: Path) -> Path:
    emails = []
    for n in range(MESSAGES):
        customer = f"Customer {n % 40} <c{n % 40}@client{n % 12}.example>"
        if n % 3 == 0:
            emails.append(
                make_email(
                    sender=OWNER, to=customer, subject=f"Offer {n}", date=BASE_DATE + days(n / 50)
                )
            )
        else:
            emails.append(
                make_email(
                    sender=customer,
                    to=OWNER,
                    subject=f"Question {n}",
                    date=BASE_DATE + days(n / 50),
                )
            )
    return write_maildir(root, emails)


def decisions(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(CaptureDecision)) or 0)


def kill_at_random_point(
    proc: subprocess.Popen[bytes], db: Database, rng: random.Random, *, in_start_up: bool
) -> bool:
    """SIGKILL the import at a random moment: of its start-up, or of the batch it writes after
    its next commit of new messages. False when it finished first."""
    if in_start_up:
        time.sleep(rng.uniform(0.2, 0.6))
    else:
        committed = decisions(db)
        while proc.poll() is None and decisions(db) == committed:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.1))
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    return True


def counts(db: Database) -> tuple[int, ...]:
    with db.session() as session:
        return tuple(
            int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Activity, ActivityParticipant, MailboxObservation, CaptureDecision)
        )


def test_killed_imports_finish_with_every_email_exactly_once(
    db: Database, env: dict[str, str], tmp_path: Path
) -> None:
    mailbox = build_mailbox(tmp_path / "mailbox")
    command = [
        sys.executable,
        "-m",
        "server",
        "import",
        str(mailbox),
        "--mailbox",
        OWNER,
        "--jobs",
        "2",
    ]
    full_env = {**os.environ, **env}
    rng = random.Random(20261125)
    kills = 0
    for round_ in range(4):
        proc = subprocess.Popen(
            command, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        kills += kill_at_random_point(proc, db, rng, in_start_up=round_ == 0)
        proc.wait(timeout=60)
    assert kills >= 3, "the import finished before it could be killed: make it bigger"
    partial = counts(db)
    final = subprocess.run(
        command, env=full_env, capture_output=True, text=True, timeout=600, check=False
    )
    assert final.returncode == 0, final.stderr
    assert counts(db) == (MESSAGES, 2 * MESSAGES, MESSAGES, MESSAGES), f"after kills: {partial}"
    with db.session() as session:
        duplicated = session.execute(
            select(Activity.message_key).group_by(Activity.message_key).having(func.count() > 1)
        ).all()
    assert duplicated == []
