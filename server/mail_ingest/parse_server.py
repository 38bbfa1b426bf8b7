"""The fork server that parse worker processes start from.

It imports the parser once; each pool's processes fork from it ready to work (without it every
sync of a worker paid ~0.6 s of imports per parse process). This module imports nothing heavy,
so `rapport import` can start the server first and let it import the parser while the main
process imports the rest.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
from multiprocessing.context import ForkServerContext

PRELOAD = ["server.mail_ingest.pipeline"]


def context() -> ForkServerContext:
    forkserver = multiprocessing.get_context("forkserver")
    forkserver.set_forkserver_preload(PRELOAD)
    return forkserver


def start() -> None:
    """Start the fork server now rather than at the first pool."""
    context()
    multiprocessing.forkserver.ensure_running()
