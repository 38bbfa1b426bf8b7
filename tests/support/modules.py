"""Which modules another process has imported: a parse worker asked through its pool, or a
fresh interpreter. A module of its own, importing nothing, so that asking a worker imports
nothing more into it."""

from __future__ import annotations

import sys


def imported(prefix: str) -> list[str]:
    return sorted(name for name in sys.modules if name == prefix or name.startswith(prefix + "."))


def fresh_interpreter(code: str) -> list[str]:
    """The lines `code` prints in a new Python process (one that has imported nothing yet)."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.splitlines()
