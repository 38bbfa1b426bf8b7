"""Asked of another process (a parse worker): which modules it has imported. A module of its
own, importing nothing, so that asking imports nothing more into that process."""

from __future__ import annotations

import sys


def imported(prefix: str) -> list[str]:
    return sorted(name for name in sys.modules if name == prefix or name.startswith(prefix + "."))
