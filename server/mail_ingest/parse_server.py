"""The fork server that parse worker processes start from.

It imports the parser once; each pool's processes fork from it ready to work (without it every
sync of a worker paid ~0.6 s of imports per parse process). It imports only the parser
(`server.mail_ingest.prepare` is free of SQLAlchemy and the models) and the HTML-to-text library
the parser loads on first use: the server is ready sooner, and each worker is ~32 MB instead of
~57. This module imports nothing heavy, so `rapport import` can start the server first and let
it import the parser while the main process imports the rest.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
from multiprocessing.context import ForkServerContext

PRELOAD = [
    "server.mail_ingest.prepare",
    # what `mime_text` imports lazily (only parse workers need it): loaded once, here
    "inscriptis",
    "inscriptis.css_profiles",
    "inscriptis.model.config",
]


def context() -> ForkServerContext:
    forkserver = multiprocessing.get_context("forkserver")
    forkserver.set_forkserver_preload(PRELOAD)
    return forkserver


def start() -> None:
    """Start the fork server now rather than at the first pool."""
    context()
    multiprocessing.forkserver.ensure_running()
