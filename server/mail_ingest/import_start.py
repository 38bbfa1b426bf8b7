"""The part of `rapport import` that needs neither the database nor the capture core: walking the
files, and setting the parse workers going on a guess of the options the import will use.

The main process spends its first second importing SQLAlchemy, the models and the capture core,
then reads the import link and the capture rules that decide the options. Started on a guess
(the command line's level, owner and aliases, the configured internal domains), the workers use
that second. When the guess turns out wrong (aliases or rules stored earlier), the chunks already
started are prepared again with the real options, so a wrong guess costs time, never a result.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from server.crm.addresses import normalise_address
from server.crm.sure_skips import SKIPPABLE
from server.mail_ingest.parse_pool import ChunkStream
from server.mail_ingest.prepare import PrepareOptions
from server.mail_ingest.sources.files import FileWalk, RawMessage, Unreadable

# Messages the workers prepare before capture starts: enough for the main process's start-up
# (a second), few enough that their results waiting in its memory stay small (~20 MB).
HEAD_START_MESSAGES = 1024


@dataclass
class ImportStart:
    """The messages of an import, perhaps already being prepared."""

    messages: Iterator[RawMessage]
    jobs: int
    unreadable: list[Unreadable] = field(default_factory=list)
    stream: ChunkStream | None = None  # the workers' head start

    def close(self) -> None:
        """Stop the workers, when the import ends without taking their stream."""
        if self.stream is not None:
            self.stream.close(wait=False)


def start_import(
    paths: Sequence[Path], *, jobs: int, guess: PrepareOptions | None = None
) -> ImportStart:
    """Walk `paths` lazily; with a guess of the options and several jobs, start preparing."""
    start = ImportStart(messages=iter(()), jobs=jobs)

    def messages() -> Iterator[RawMessage]:
        for entry in FileWalk(paths).messages(by_path=jobs > 1):
            if isinstance(entry, Unreadable):
                start.unreadable.append(entry)
            else:
                yield entry  # emails and .ics files alike: the pipeline tells them apart

    start.messages = messages()
    if guess is not None and jobs > 1:
        start.stream = ChunkStream(start.messages, guess, jobs, ahead=HEAD_START_MESSAGES)
    return start


def guess_options(
    owner: str,
    *,
    capture_level: str | None,
    aliases: Sequence[str],
    internal_domains: Sequence[str],
) -> PrepareOptions | None:
    """The options of an import link made by this command, with nothing stored before it (the
    rules as shipped, nobody erased); None when the owner is not an address (the import
    refuses it)."""
    addresses = [normalise_address(a) for a in (owner, *aliases)]
    if any(a is None for a in addresses):
        return None
    return PrepareOptions(
        level=capture_level or "full",
        internal_domains=frozenset(internal_domains),
        owner_addresses=frozenset(a for a in addresses if a is not None),
        skips=SKIPPABLE,
    )
