"""The long form of the security and privacy suites, with the counts for docs/reliability.md.

    python -m bench.security_long --examples 200 --jobs 2

Runs tests/integration/test_schemathesis.py with `--examples` generated requests per operation
and mode (SCHEMATHESIS_EXAMPLES; CI uses 10), then the security and privacy suites of
tests/reliability once, on SQLite and PostgreSQL. Any 5xx or undocumented answer fails the run.
Kept apart from bench/reliability.py so the two long forms can run (and change) on their own.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

SCHEMATHESIS = "tests/integration/test_schemathesis.py"
SUITES = ["tests/reliability/test_security.py", "tests/reliability/test_privacy_scan.py"]
LOG = Path(os.environ.get("RAPPORT_BENCH_DIR", "/tmp/rapport-bench")) / "security-long-failures.log"


def pytest(paths: Sequence[str], env: dict[str, str], jobs: int = 1) -> tuple[float, str]:
    started = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths]
    if jobs > 1:
        command += ["-n", str(jobs)]  # pytest-xdist: the SQLite and PostgreSQL runs side by side
    answer = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    summary = (answer.stdout.strip().splitlines() or ["(no output)"])[-1]
    if answer.returncode != 0:
        # The failures are listed in full (a long run's list is too long for a terminal).
        LOG.parent.mkdir(parents=True, exist_ok=True)
        LOG.write_text(answer.stdout + "\n" + answer.stderr)
        print(answer.stdout[-5000:], answer.stderr[-5000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"failed: {' '.join(paths)}: {summary} (all of it in {LOG})")
    return time.perf_counter() - started, summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="per operation and mode")
    parser.add_argument("--jobs", type=int, default=1, help="pytest processes (pytest-xdist)")
    args = parser.parse_args(argv)
    rows = [
        (f"schemathesis, {args.examples} examples per operation and mode", *pytest(
            [SCHEMATHESIS], {"SCHEMATHESIS_EXAMPLES": str(args.examples)}, args.jobs
        )),
        ("security and privacy suites", *pytest(SUITES, {}, args.jobs)),
    ]  # fmt: skip
    print(f"Measured {date.today().isoformat()} on {platform.node()} ({platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()})\n")  # fmt: skip
    print("| Run | Seconds | pytest says |\n|---|---|---|")
    for name, seconds, summary in rows:
        print(f"| {name} | {seconds:.0f} | {summary} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
