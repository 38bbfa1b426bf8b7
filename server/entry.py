"""The `rapport` command's entry point (the console script and `python -m server`).

It imports the command line only when called: multiprocessing runs a script's main module again
in every process it starts (to find what the parent defined there), guarded by `__name__`. With
`server.cli` named in the script, each parse worker imported click, SQLAlchemy and the
configuration it never uses (~25 MB and a third of a second of CPU each, before its first
message).

When the command is done, what is left in memory only has to be torn down: frozen out of the
garbage collector's sight, the interpreter's last collections skip it. After a 5,000-message
import that exit took 0.5-0.6 s, and 0.15 s frozen. The database is closed before (the command
line closes it when the command ends), and standard streams and logging are flushed at exit
as always.
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Any


def main() -> Any:
    if _imports_in_parallel(sys.argv[1:]):
        # The parse workers' fork server imports the parser on the other core while this
        # process imports the command line (half a second), instead of after it.
        from server.mail_ingest import parse_server

        parse_server.start()
    from server.cli import main as cli

    try:
        return cli(prog_name="rapport")
    finally:
        gc.freeze()


def _imports_in_parallel(args: list[str]) -> bool:
    """Whether this is `rapport import` with parse workers (`--jobs` over 1, or by default
    more than one core), read from the raw arguments. A wrong guess starts the fork server for
    nothing, or later."""
    if not args or args[0] != "import" or {"-h", "--help"} & set(args):
        return False
    jobs = None
    for i, arg in enumerate(args):
        if arg.startswith("--jobs="):
            jobs = arg.removeprefix("--jobs=")
        elif arg == "--jobs" and i + 1 < len(args):
            jobs = args[i + 1]
    if jobs is None:
        return (os.cpu_count() or 1) > 1
    return jobs.isdigit() and int(jobs) > 1
