"""The `rapport` console script's entry point: it imports the command line only when called.

multiprocessing runs a script's main module again in every process it starts (to find what the
parent defined there), guarded by `__name__`. With `server.cli` named in the script, each parse
worker imported click, SQLAlchemy and the configuration it never uses (~25 MB and a third of a
second of CPU each, before its first message). `python -m server` is not affected: a package's
`__main__` is never run again.
"""

from __future__ import annotations

from typing import Any


def main() -> Any:
    from server.cli import main as cli

    return cli(prog_name="rapport")
