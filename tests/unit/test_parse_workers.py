"""Parse workers start from a fork server that imported only the parser, keep what they
inherit out of the garbage collector's walks (`gc.freeze()`), and run below the writer's
priority."""

from __future__ import annotations

import gc
import os

from server.mail_ingest import parse_pool, parse_server
from server.mail_ingest.prepare import PARSE_WORKER_NICENESS
from tests.support.modules import fresh_interpreter, imported


def test_parse_workers_start_with_what_they_inherited_frozen() -> None:
    with parse_pool.ParsePool(2) as pool:
        frozen = [pool.submit(gc.get_freeze_count).result() for _ in range(4)]
    assert all(count > 10_000 for count in frozen), frozen  # the parser's modules at least


def test_parse_workers_import_the_parser_and_not_the_database_layer() -> None:
    with parse_pool.ParsePool(1) as pool:
        parser = pool.submit(imported, "server.mail_ingest.mime").result()
        database = [
            pool.submit(imported, name).result() for name in ("sqlalchemy", "server.models")
        ]
    assert parser == ["server.mail_ingest.mime"]  # preloaded by the fork server
    assert database == [[], []]


def test_what_the_fork_server_preloads_imports_no_database_layer() -> None:
    """Checked in a fresh interpreter: this one has imported everything already."""
    code = (
        "import sys\n"
        f"for name in {parse_server.PRELOAD!r}: __import__(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'"
        " or m.startswith('server.models')))"
    )
    assert fresh_interpreter(code) == ["[]"]


def test_parse_workers_are_nicer_than_the_process_that_started_them() -> None:
    with parse_pool.ParsePool(2) as pool:
        niceness = {pool.submit(os.nice, 0).result() for _ in range(4)}
    assert niceness == {min(19, os.nice(0) + PARSE_WORKER_NICENESS)}
