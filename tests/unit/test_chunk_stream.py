"""Parse workers set going early, on a guess of the options, and what the `rapport` entry point
starts before the command line is imported."""

from __future__ import annotations

import pytest

from server.entry import _imports_in_parallel
from server.mail_ingest.parse_pool import CHUNK_SIZE, ChunkStream, WindowSize
from server.mail_ingest.prepare import PrepareOptions
from server.mail_ingest.sources.files import RawMessage
from tests.support.mail import make_email
from tests.support.modules import fresh_interpreter

OWNER = "anna@northwind-supplies.com"


def _messages(count: int) -> list[RawMessage]:
    return [
        RawMessage(
            make_email(sender="Clara <clara@brightline-dental.co.uk>", to=OWNER, subject=f"No {i}"),
            folder="INBOX",
            provider_id=f"m{i}",
        )
        for i in range(count)
    ]


def _options(level: str) -> PrepareOptions:
    return PrepareOptions(level, frozenset({"northwind-supplies.com"}), frozenset({OWNER}))


def test_a_stream_retargeted_after_its_start_prepares_everything_with_the_new_options() -> None:
    messages = _messages(3 * CHUNK_SIZE + 5)
    stream = ChunkStream(iter(messages), _options("full"), jobs=2)
    stream.retarget(_options("metadata"))  # chunks already on their way are prepared again
    prepared = list(stream)
    assert [p.provider_id for p in prepared] == [m.provider_id for m in messages]
    assert all(p.raw_blob is None and p.body_blob is None for p in prepared)
    assert {p.item.subject for p in prepared if p.item} == {""}


def test_a_stream_keeps_its_work_when_the_guess_was_right() -> None:
    messages = _messages(CHUNK_SIZE + 1)
    stream = ChunkStream(iter(messages), _options("full"), jobs=2)
    stream.retarget(_options("full"))
    prepared = list(stream)
    assert [p.provider_id for p in prepared] == [m.provider_id for m in messages]
    assert all(p.raw_blob is not None for p in prepared)


def test_after_a_head_start_the_workers_get_a_chunk_for_each_finished_one_taken() -> None:
    size = WindowSize(16, head_start=32)
    # Capture starts with the whole head start finished: each chunk it takes is replaced.
    assert [size.after_take(finished=31 - i) for i in range(3)] == [32, 32, 32]
    # The limit comes down a chunk for every four taken ...
    assert size.after_take(finished=28) == 31
    # ... and unfinished chunks count against it: workers behind capture get only the window.
    assert size.after_take(finished=2) == 18
    assert size.after_take(finished=0) == 16


def test_the_head_start_limit_comes_down_to_the_window_and_stays() -> None:
    size = WindowSize(16, head_start=32)
    sizes = [size.after_take(finished=40) for _ in range(100)]
    assert max(sizes) == 32 and sizes[-1] == 16
    assert sizes == sorted(sizes, reverse=True)
    assert sizes.index(16) == 4 * 16 - 1  # a chunk less for every four taken
    assert size.limit == 16


def test_without_a_head_start_the_window_never_grows() -> None:
    size = WindowSize(16)
    assert {size.after_take(finished=f) for f in (0, 5, 15, 16, 40)} == {16}


@pytest.mark.parametrize(
    ("args", "parallel"),
    [
        (["import", "box", "--mailbox", OWNER], True),  # this machine has two cores or more
        (["import", "box", "--mailbox", OWNER, "--jobs", "2"], True),
        (["import", "box", "--mailbox", OWNER, "--jobs=3"], True),
        (["import", "box", "--mailbox", OWNER, "--jobs", "1"], False),
        (["import", "box", "--jobs=1"], False),
        (["import", "--help"], False),
        (["import", "box", "-h"], False),
        (["serve"], False),
        ([], False),
    ],
)
def test_the_entry_point_starts_the_fork_server_only_for_an_import_with_workers(
    args: list[str], parallel: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert _imports_in_parallel(args) is parallel


def test_the_command_line_and_the_import_start_load_no_database_layer() -> None:
    """`rapport import` sets its workers going before SQLAlchemy and the models are imported
    (a fresh interpreter: this one has imported everything already)."""
    code = (
        "import sys, server.cli, server.mail_ingest.import_start\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'"
        " or m.startswith('server.models') or m == 'server.crm.capture'))"
    )
    assert fresh_interpreter(code) == ["[]"]
