"""Parse workers hand their results back through a spool directory, which goes with its pool,
and a spool left by a killed process goes with the next pool."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from server.mail_ingest import spool
from server.mail_ingest.parse_pool import ParsePool
from server.mail_ingest.spool import Spooled, run_spooled, taken


def _spools() -> set[Path]:
    return set(spool.spools_of(os.getpid()))


def test_results_come_back_through_the_spool_which_goes_with_the_pool() -> None:
    before = _spools()
    with ParsePool(2) as pool:
        (directory,) = _spools() - before
        pending = [pool.submit(bytes, size) for size in (10, 2_000_000)]
        results = [p.result() for p in pending]
        assert list(directory.iterdir()) == []  # taken results leave nothing behind
    assert results == [bytes(10), bytes(2_000_000)]
    assert not directory.exists()


def test_a_result_the_spool_cannot_take_comes_back_as_it_is(tmp_path: Path) -> None:
    gone = str(tmp_path / "removed")
    assert run_spooled(gone, str.upper, "abc") == "ABC"

    left = run_spooled(str(tmp_path), str.upper, "abc")
    assert isinstance(left, Spooled)
    assert taken(left) == "ABC"
    assert list(tmp_path.iterdir()) == []


def test_spools_of_processes_that_are_gone_are_removed_by_the_next_pool() -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    root = spool.spool_root()
    orphan = root / f"rapport-parse-{dead.stdout.strip()}-x1"
    mine = root / f"rapport-parse-{os.getpid()}-x2"  # a live process's: kept
    for directory in (orphan, mine):
        directory.mkdir()
        (directory / "result").write_bytes(b"left behind")
    try:
        ParsePool(1).shutdown()
        assert not orphan.exists()
        assert (mine / "result").read_bytes() == b"left behind"
    finally:
        spool.remove_spool(str(orphan))
        spool.remove_spool(str(mine))
