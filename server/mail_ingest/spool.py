"""Where parse workers leave what they prepared: a file each in a directory in memory (tmpfs).

Through the pool's result pipe, a worker that finished a chunk (~1 MB pickled) waited for the
importing process to read it, 64 KB at a time, and that process reads only between the
moments its own thread lets go of the GIL: in a 5,000-message import each worker spent ~0.45 s
of its 6 s blocked on that pipe, and the writer waited for chunks they had finished. A worker
now writes its result to a file and sends only the file's name; the writer reads it in one go
when it takes the chunk.

Nothing here is durable: the directory belongs to one pool and is removed with it; what a
killed process leaves behind (a window of chunks at most) is removed by the next pool.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PREFIX = "rapport-parse-"
_OWNED = re.compile(rf"{_PREFIX}(\d+)-")


@dataclass(frozen=True, slots=True)
class Spooled:
    """A result left in the spool, by its file's path."""

    path: str

    def take(self) -> Any:
        """The result, its file removed."""
        with open(self.path, "rb") as file:
            value = pickle.load(file)  # noqa: S301 - written by our own worker, in a 0700 directory
        os.unlink(self.path)
        return value


def run_spooled(spool: str, fn: Callable[..., Any], *args: Any) -> Any:
    """In a worker: `fn(*args)`, left in the spool; handed back as it is when the spool cannot
    take it (full, gone), so that nothing is lost."""
    value = fn(*args)
    try:
        fd, path = tempfile.mkstemp(dir=spool)
    except OSError:
        return value
    try:
        with os.fdopen(fd, "wb") as file:
            pickle.dump(value, file, protocol=pickle.HIGHEST_PROTOCOL)
    except OSError:
        Path(path).unlink(missing_ok=True)
        return value
    return Spooled(path)


def taken(value: Any) -> Any:
    """What a worker handed back: its result, from the spool when it left it there."""
    return value.take() if isinstance(value, Spooled) else value


def make_spool() -> str:
    """A new spool directory, in memory where the machine has /dev/shm. Spools left by processes
    that are gone are removed first."""
    root = spool_root()
    _remove_orphans(root)
    return tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=root)


def spools_of(pid: int) -> list[Path]:
    """The spool directories process `pid`'s pools hold now."""
    return list(spool_root().glob(f"{_PREFIX}{pid}-*"))


def remove_spool(spool: str) -> None:
    shutil.rmtree(spool, ignore_errors=True)


def spool_root() -> Path:
    """Shared memory where the machine has it to write in, else the temporary directory."""
    shm = Path("/dev/shm")  # noqa: S108 - the spool is a directory of its own in it (mkdtemp: 0700)
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


def _remove_orphans(root: Path) -> None:
    try:
        entries = list(root.iterdir())
    except OSError:
        return
    for entry in entries:
        owner = _OWNED.match(entry.name)
        if owner is not None and not _alive(int(owner.group(1))):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
