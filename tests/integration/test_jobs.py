"""The durable job queue: exclusive claims, lease expiry, lease-checked completion, retries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server import jobs
from server.db import Database
from server.models import AuditEvent, Job, utcnow
from tests.conftest import Cli


def record(session: Session, payload: Mapping[str, Any]) -> None:
    """A handler with a visible side effect in the same transaction as the completion."""
    session.add(AuditEvent(action="test.job", entity_id=payload["n"]))


def events_per_job(db: Database) -> dict[int, int]:
    with db.session() as session:
        rows = session.execute(
            select(AuditEvent.entity_id, func.count()).group_by(AuditEvent.entity_id)
        ).all()
    return {int(n): int(c) for n, c in rows if n is not None}


def test_two_runners_never_take_the_same_job(db: Database) -> None:
    with db.session() as session:
        for n in range(120):
            jobs.enqueue(session, "record", {"n": n})

    def run(owner: str) -> None:
        jobs.Runner(db, {"record": record}, owner=owner).run(once=True)

    threads = [threading.Thread(target=run, args=(f"runner-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert events_per_job(db) == dict.fromkeys(range(120), 1)
    with db.session() as session:
        statuses = session.execute(select(Job.status, Job.attempts)).all()
    assert {tuple(row) for row in statuses} == {("done", 1)}


def test_a_killed_runner_s_job_runs_again_after_its_lease_expires(
    db: Database, tmp_path: Path
) -> None:
    with db.session() as session:
        job_id = jobs.enqueue(session, "record", {"n": 1})
        assert job_id is not None
    started = tmp_path / "started"
    script = textwrap.dedent(
        f"""
        import time
        from datetime import timedelta
        from pathlib import Path
        from server import jobs
        from server.db import Database

        def stuck(session, payload):
            Path({str(started)!r}).write_text("x")
            time.sleep(600)

        db = Database({db.url!r})
        jobs.Runner(db, {{"record": stuck}}, owner="doomed", lease=timedelta(seconds=1)).run_one()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert proc.poll() is None, "the runner exited before starting the job"
            assert time.monotonic() < deadline, "the runner never started the job"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)

    survivor = jobs.Runner(db, {"record": record}, owner="survivor")
    assert survivor.run_one() is None, "the lease has not expired yet"
    time.sleep(1.2)
    ran = survivor.run_one()
    assert ran is not None and ran.id == job_id
    with db.session() as session:
        finished = session.get(Job, job_id)
        assert finished is not None
        assert (finished.status, finished.attempts) == ("done", 2)
    assert events_per_job(db) == {1: 1}


def test_work_of_a_runner_whose_lease_expired_is_not_committed(db: Database) -> None:
    with db.session() as session:
        jobs.enqueue(session, "record", {"n": 7}, run_after=utcnow() - timedelta(minutes=20))
    # Runner A claims, then stalls past its lease; runner B takes the job over and finishes it.
    stale = jobs.claim(db, owner="A", now=utcnow() - timedelta(minutes=10))
    assert stale is not None
    fresh = jobs.claim(db, owner="B")
    assert fresh is not None and fresh.id == stale.id and fresh.lease_token != stale.lease_token
    with db.session() as session:
        record(session, fresh.payload)
        jobs.complete(session, fresh)
    # A wakes up and tries to commit the same work: refused, and its writes roll back.
    with pytest.raises(jobs.LeaseLost), db.session() as session:  # noqa: PT012 - the rollback is the point
        record(session, stale.payload)
        jobs.complete(session, stale)
    assert events_per_job(db) == {7: 1}


def test_failures_retry_with_backoff_then_the_job_is_dead_and_visible(
    db: Database, cli: Cli
) -> None:
    def broken(session: Session, payload: Mapping[str, Any]) -> None:
        raise ConnectionError("mail.example.com refused the connection")

    with db.session() as session:
        job_id = jobs.enqueue(session, "sync", {}, max_attempts=2)
        assert job_id is not None
    runner = jobs.Runner(db, {"sync": broken}, owner="r")
    assert runner.run_one() is not None
    with db.session() as session:
        retried = session.get(Job, job_id)
        assert retried is not None
        assert retried.status == "queued"
        assert retried.run_after > utcnow() + timedelta(seconds=10), "retry is backed off"
        retried.run_after = utcnow()  # fast-forward
    assert runner.run_one() is not None
    with db.session() as session:
        dead = session.get(Job, job_id)
        assert dead is not None
        assert (dead.status, dead.attempts) == ("dead", 2)
        assert dead.last_error == "ConnectionError: mail.example.com refused the connection"
    listed = cli("jobs", "--status", "dead")
    assert "mail.example.com refused the connection" in listed.output


def test_unique_key_keeps_one_pending_job_and_frees_it_when_done(db: Database) -> None:
    with db.session() as session:
        assert jobs.enqueue(session, "record", {"n": 1}, unique_key="sync:1") is not None
        assert jobs.enqueue(session, "record", {"n": 1}, unique_key="sync:1") is None
    jobs.Runner(db, {"record": record}).run(once=True)
    with db.session() as session:
        assert jobs.enqueue(session, "record", {"n": 1}, unique_key="sync:1") is not None


def test_backoff_grows_and_is_capped() -> None:
    import random

    rng = random.Random(1)
    first = jobs.backoff(1, rng=rng).total_seconds()
    fifth = jobs.backoff(5, rng=rng).total_seconds()
    huge = jobs.backoff(40, rng=rng).total_seconds()
    assert 15 <= first <= 45
    assert 240 <= fifth <= 720
    assert huge <= jobs.BACKOFF_CAP_SECONDS * 1.5


def test_finished_jobs_are_deleted_after_a_day_and_dead_ones_after_a_month(db: Database) -> None:
    def broken(session: Session, payload: Mapping[str, Any]) -> None:
        raise ConnectionError("refused")

    with db.session() as session:
        for n in range(3):
            jobs.enqueue(session, "record", {"n": n})
        jobs.enqueue(session, "broken", {}, max_attempts=1)
        waiting = jobs.enqueue(session, "record", {"n": 9}, run_after=utcnow() + timedelta(days=9))
    jobs.Runner(db, {"record": record, "broken": broken}).run(once=True)

    def left() -> dict[str, int]:
        with db.read_session() as session:
            rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
            return dict(rows.all())  # type: ignore[arg-type]

    assert left() == {"done": 3, "dead": 1, "queued": 1}
    assert jobs.prune(db) == 0  # just finished: kept, to see what ran
    assert jobs.prune(db, now=utcnow() + timedelta(days=2)) == 3
    assert left() == {"dead": 1, "queued": 1}
    assert jobs.prune(db, now=utcnow() + timedelta(days=31)) == 1
    assert left() == {"queued": 1}, "work still to do is never deleted"
    with db.read_session() as session:
        assert session.get(Job, waiting) is not None
