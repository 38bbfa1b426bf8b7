"""Parse workers keep what they inherit from the fork server out of the garbage collector's
walks (`gc.freeze()`)."""

from __future__ import annotations

import gc

from server.mail_ingest import pipeline


def test_parse_workers_start_with_what_they_inherited_frozen() -> None:
    with pipeline._pool(2) as pool:
        frozen = [pool.submit(gc.get_freeze_count).result() for _ in range(4)]
    assert all(count > 10_000 for count in frozen), frozen  # the parser's modules at least
