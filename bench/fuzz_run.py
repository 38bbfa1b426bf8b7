"""Runs a coverage-guided atheris (libFuzzer) campaign over one parser, or, where atheris is
not installed (`pip install -e .[fuzz]`), the hypothesis fuzz test of the same parser with as
many inputs. Used by bench/fuzz_mime.py and bench/fuzz_calendar.py.

libFuzzer's own `-timeout=10` is the watchdog: only an input running over 10 s (a real hang)
fails the run; a crash is any exception but the parser's documented `BadItem`.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Sequence

HANG_SECONDS = 10


def run(
    name: str, check: Callable[[bytes], None], hypothesis_test: str, argv: Sequence[str]
) -> int:
    """Fuzz `check` for the inputs argv asks for (`--runs N`); prints the count tried."""
    runs = int(argv[argv.index("--runs") + 1]) if "--runs" in argv else 100_000
    if importlib.util.find_spec("atheris") is None:
        print(f"{name}: atheris is not installed; running {runs} hypothesis inputs instead")
        env = {**os.environ, "RAPPORT_RELIABILITY_FUZZ": str(runs)}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", hypothesis_test]
        return subprocess.run(command, env=env, check=False).returncode
    import atheris  # type: ignore[import-not-found]

    print(f"{name}: {runs} atheris inputs (libFuzzer prints the count it ran)", flush=True)
    atheris.Setup(
        [sys.argv[0], f"-runs={runs}", f"-timeout={HANG_SECONDS}", "-print_final_stats=1"],
        check,
    )
    atheris.Fuzz()
    return 0
