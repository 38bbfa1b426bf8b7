"""How hard the reliability suites push, and what they report.

The same tests are the bounded form (CI) and the long form (`python -m bench.reliability`): the
bench sets RAPPORT_RELIABILITY_KILLS (kills per crash test) and RAPPORT_RELIABILITY_FUZZ (inputs
per fuzz test), and names a RAPPORT_RELIABILITY_REPORT file to which each test appends one JSON
line of what it actually did, so the published figures are counted, never assumed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

KILLS_VARIABLE = "RAPPORT_RELIABILITY_KILLS"
FUZZ_VARIABLE = "RAPPORT_RELIABILITY_FUZZ"
REPORT_VARIABLE = "RAPPORT_RELIABILITY_REPORT"
SEED_VARIABLE = "RAPPORT_RELIABILITY_SEED"


def _count(variable: str, default: int) -> int:
    value = os.environ.get(variable, "").strip()
    return int(value) if value else default


def kills(default: int) -> int:
    """SIGKILLs a crash test delivers (the bounded default unless the bench asks for more)."""
    return _count(KILLS_VARIABLE, default)


def fuzz_inputs(default: int) -> int:
    """Inputs a fuzz test tries."""
    return _count(FUZZ_VARIABLE, default)


def seed(default: int) -> int:
    """The RNG seed of the kill points (fixed in CI so a failure replays)."""
    return _count(SEED_VARIABLE, default)


def record(suite: str, case: str, **counts: int) -> None:
    """Append what one test did to the bench's report (nothing when no report is asked for)."""
    target = os.environ.get(REPORT_VARIABLE)
    if not target:
        return
    with Path(target).open("a", encoding="utf-8") as out:
        out.write(json.dumps({"suite": suite, "case": case, **counts}) + "\n")
