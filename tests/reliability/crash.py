"""kill -9 at a random point, run again, and prove nothing was lost or captured twice.

Every crash test shares this loop: start a real `rapport ...` subprocess (in its own process
group, so its parse workers die with it, as on a power cut), SIGKILL the group at a point a
seeded RNG picks, and run again; finally run to the end and compare the database with what the
source holds. Half the kill points are a random delay after the start (anywhere: during start-up,
mid-transaction, mid-request); the other half wait until the database shows a random number of
messages captured (just after a commit, where a resume bug would show). A killed worker's job
lease would keep the link for its five minutes: `expire_killed_leases` lets that time pass.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, update

from server.db import Database
from server.models import (
    Activity,
    CaptureDecision,
    Job,
    MailboxLink,
    MailboxObservation,
    QuarantinedItem,
)

PAST = datetime(2000, 1, 1, tzinfo=UTC)
POLL_SECONDS = 0.02
RUN_TIMEOUT = 600.0


def rapport(*args: str) -> list[str]:
    return [sys.executable, "-m", "server", *args]


@dataclass
class Killer:
    """Runs commands and kills them at random points; counts what it did."""

    rng: random.Random
    env: Mapping[str, str]
    progress: Callable[[], int]  # messages the database shows captured so far
    log_dir: Path
    max_delay: float = 3.0
    kills: int = 0
    mid_run: int = 0  # kills that left messages still to capture
    by_trigger: Counter[str] = field(default_factory=Counter)
    _runs: int = 0

    def _start(self, command: Sequence[str]) -> tuple[subprocess.Popen[bytes], Path]:
        self._runs += 1
        log = self.log_dir / f"run-{self._runs}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                list(command),
                env={**os.environ, **self.env},
                stdout=subprocess.DEVNULL,
                stderr=out,
                start_new_session=True,
            )
        return proc, log

    def run_and_kill(self, command: Sequence[str], total: int) -> bool:
        """Start `command` and SIGKILL it at a random point; False if it finished first."""
        proc, log = self._start(command)
        started = time.monotonic()
        if self.rng.random() < 0.5:
            trigger = "delay"
            deadline = started + self.rng.uniform(0.1, self.max_delay)
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(POLL_SECONDS)
        else:
            trigger = "captured"
            done = self.progress()
            target = self.rng.randint(min(done + 1, total), total)
            while proc.poll() is None and self.progress() < target:
                assert time.monotonic() - started < RUN_TIMEOUT, f"stuck below {target}: {log}"
                time.sleep(POLL_SECONDS)
        if proc.poll() is not None:
            assert proc.returncode == 0, log.read_text(errors="replace")[-3000:]
            return False
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        self.kills += 1
        self.by_trigger[trigger] += 1
        self.mid_run += self.progress() < total
        return True

    def run_to_end(self, command: Sequence[str]) -> None:
        """Run `command` to its end; it must succeed."""
        proc, log = self._start(command)
        try:
            returncode = proc.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            raise AssertionError(f"`{' '.join(command)}` hung: {log}") from None
        assert returncode == 0, log.read_text(errors="replace")[-3000:]


def counts(killer: Killer, episodes: int, checked: int) -> dict[str, int]:
    """What a crash test did, for the bench's report (written only after every check passed)."""
    return {
        "kills": killer.kills,
        "kills_mid_run": killer.mid_run,
        "kills_after_a_delay": killer.by_trigger["delay"],
        "kills_after_a_commit": killer.by_trigger["captured"],
        "episodes": episodes,
        "messages_checked": checked,
        "lost": 0,
        "duplicated": 0,
    }


def expire_killed_leases(db: Database) -> None:
    """Let the lease of a killed worker's job run out (it would after five minutes), and make
    every link due, so the next worker resumes at once."""
    with db.session() as session:
        session.execute(update(Job).where(Job.status == "running").values(lease_expires_at=PAST))
        session.execute(update(MailboxLink).values(next_run_at=None))


def captured_count(db: Database, link_id: int | None = None) -> int:
    """Capture decisions recorded (one per message seen), for one link or all."""
    query = select(func.count()).select_from(CaptureDecision)
    if link_id is not None:
        query = query.where(CaptureDecision.link_id == link_id)
    with db.read_session() as session:
        return int(session.scalar(query) or 0)


def outcome(decision: str, rule: str | None) -> str:
    """A decision as the user sees it: "captured" and "known" both mean in the database (which
    of two copies of one email came first depends on the order, not on the crash)."""
    if decision in ("captured", "known"):
        return "in"
    return f"{decision}:{rule}"


def assert_each_message_once(
    db: Database,
    link_id: int,
    expected: Counter[tuple[str, str]],
    *,
    reference: Mapping[tuple[str, str], str] | None = None,
) -> int:
    """The link saw every (folder, message key) of `expected` exactly once, every captured one
    is one activity observed in its folder, no email is two activities, and nothing was
    quarantined. With `reference` (outcomes of an uninterrupted run), every message also had
    the same fate. Returns the messages checked."""
    with db.read_session() as session:
        rows = session.execute(
            select(
                CaptureDecision.folder,
                CaptureDecision.message_key,
                CaptureDecision.decision,
                CaptureDecision.rule,
                CaptureDecision.activity_id,
            ).where(CaptureDecision.link_id == link_id)
        ).all()
        observed = Counter(
            (str(folder), str(key))
            for folder, key in session.execute(
                select(MailboxObservation.folder, Activity.message_key)
                .join(Activity, Activity.id == MailboxObservation.activity_id)
                .where(
                    MailboxObservation.link_id == link_id,
                    MailboxObservation.deleted_at.is_(None),
                    Activity.kind == "email",
                )
            )
        )
        twice = session.execute(
            select(Activity.message_key)
            .where(Activity.kind == "email")
            .group_by(Activity.message_key)
            .having(func.count() > 1)
        ).all()
        quarantined = session.execute(
            select(QuarantinedItem.folder, QuarantinedItem.reason, QuarantinedItem.detail).where(
                QuarantinedItem.link_id == link_id
            )
        ).all()
    seen = Counter((str(folder), str(key)) for folder, key, *_ in rows)
    lost = expected - seen
    extra = seen - expected
    assert not lost and not extra, f"lost {sorted(lost)[:5]}, unexpected {sorted(extra)[:5]}"
    captured = {(str(f), str(k)) for f, k, decision, _r, a in rows if a is not None}
    assert all(
        decision not in ("captured", "known") or activity is not None
        for *_, decision, _rule, activity in rows
    ), "a captured decision without its activity"
    assert set(observed) == captured, "observations differ from what was captured"
    assert max(observed.values(), default=1) == 1, "one message observed twice in a folder"
    assert twice == [], f"emails captured twice: {twice[:5]}"
    assert quarantined == [], f"quarantined: {quarantined[:5]}"
    if reference is not None:
        fates = {(str(f), str(k)): outcome(str(d), r) for f, k, d, r, _a in rows}
        differ = {key: (fates[key], fate) for key, fate in reference.items() if fates[key] != fate}
        assert differ == {}, f"(after kills, uninterrupted): {list(differ.items())[:5]}"
    return sum(expected.values())


def outcomes(db: Database, link_id: int) -> dict[tuple[str, str], str]:
    """Each message's fate for one link (see `outcome`)."""
    with db.read_session() as session:
        rows = session.execute(
            select(
                CaptureDecision.folder,
                CaptureDecision.message_key,
                CaptureDecision.decision,
                CaptureDecision.rule,
            ).where(CaptureDecision.link_id == link_id)
        ).all()
    return {(str(f), str(k)): outcome(str(d), r) for f, k, d, r in rows}


def link_id_of(db: Database, owner: str, kind: str) -> int:
    with db.read_session() as session:
        return int(
            session.scalars(
                select(MailboxLink.id).where(
                    MailboxLink.owner_address == owner, MailboxLink.kind == kind
                )
            ).one()
        )


def crash_worker(db: Database, killer: Killer, *, link_id: int, total: int, kills: int) -> None:
    """`rapport worker` killed up to `kills` times while the link is short of `total` messages
    seen, then `rapport worker --once` to the end."""
    for _ in range(kills):
        if captured_count(db, link_id) >= total:
            break
        expire_killed_leases(db)
        assert killer.run_and_kill(rapport("worker"), total), "a worker never exits by itself"
    expire_killed_leases(db)
    killer.run_to_end(rapport("worker", "--once"))
