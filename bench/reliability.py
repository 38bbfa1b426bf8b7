"""The long forms of the reliability suites, with the counts to paste into docs/reliability.md.

Runs the same tests as CI (tests/reliability/) with more kills and more fuzz inputs, then the
atheris harnesses, and prints what was actually done, read back from the tests' own report:

    python -m bench.reliability --kills 200 --fuzz 1000000 --faults 50

`--kills N` is per crash test (import, IMAP, Graph, EWS; each on SQLite and PostgreSQL);
`--fuzz N` is per atheris harness (mime, calendar), and a hundredth of it per hypothesis test;
`--faults N` is fault episodes per fault test (Graph, EWS, PostgreSQL and Dovecot restarts, the
SMTP drop address under concurrent senders).
Any failure (a lost or duplicated message, a crash, a hang) fails the run and prints no table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path

CRASH = [
    "tests/reliability/test_crash_import.py",
    "tests/reliability/test_crash_imap.py",
    "tests/reliability/test_crash_graph.py",
    "tests/reliability/test_crash_ews.py",
]
FUZZ = ["tests/reliability/test_fuzz_parsers.py", "tests/reliability/test_fuzz_capture.py"]
FAULTS = [
    "tests/reliability/test_faults_graph.py",
    "tests/reliability/test_faults_ews.py",
    "tests/reliability/test_faults_postgres.py",
    "tests/reliability/test_faults_imap.py",
    "tests/reliability/test_faults_drop.py",
]


def pytest(paths: Sequence[str], env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *paths]
    subprocess.run(command, env={**os.environ, **env}, check=True)


def atheris_runs(harness: str, runs: int) -> str:
    answer = subprocess.run(
        [sys.executable, "-m", f"bench.{harness}", "--runs", str(runs)],
        capture_output=True,
        text=True,
        check=True,
    )
    done = [line for line in (answer.stdout + answer.stderr).splitlines() if "Done " in line]
    return done[-1] if done else answer.stdout.strip().splitlines()[-1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=0, help="kills per crash test (0: skip)")
    parser.add_argument("--fuzz", type=int, default=0, help="inputs per harness (0: skip)")
    parser.add_argument("--faults", type=int, default=0, help="episodes per fault test (0: skip)")
    parser.add_argument("--seed", type=int, help="seed of the kill points (default: fixed)")
    parser.add_argument(
        "--report",
        type=Path,
        help="keep the tests' report here (appended to; default: a temporary file), so the "
        "counts of a long run that fails later are not lost",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        report = args.report or Path(work) / "report.jsonl"
        env = {"RAPPORT_RELIABILITY_REPORT": str(report)}
        if args.seed is not None:
            env["RAPPORT_RELIABILITY_SEED"] = str(args.seed)
        if args.kills:
            pytest(CRASH, {**env, "RAPPORT_RELIABILITY_KILLS": str(args.kills)})
        if args.faults:
            pytest(FAULTS, {**env, "RAPPORT_RELIABILITY_FAULTS": str(args.faults)})
        harnesses = {}
        if args.fuzz:
            pytest(FUZZ, {**env, "RAPPORT_RELIABILITY_FUZZ": str(max(1, args.fuzz // 100))})
            harnesses = {h: atheris_runs(h, args.fuzz) for h in ("fuzz_mime", "fuzz_calendar")}
        rows = (
            [json.loads(line) for line in report.read_text().splitlines()]
            if report.exists()
            else []
        )
    print(f"Measured {date.today().isoformat()} on {platform.node()} ({platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()})\n")  # fmt: skip
    print("| Suite | Case | Counts |\n|---|---|---|")
    for row in rows:
        counts = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in row.items()
                           if k not in ("suite", "case"))  # fmt: skip
        print(f"| {row['suite']} | {row['case']} | {counts} |")
    for harness, line in harnesses.items():
        print(f"| fuzz | {harness} (atheris) | {line} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
