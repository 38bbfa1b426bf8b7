"""What `rapport import` shows: a progress bar with a live rate, then a summary."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from server.crm.capture import CaptureCounts
from server.crm.trace import RULE_TEXT
from server.mail_ingest.importer import ImportResult

console = Console(stderr=True)


@contextmanager
def import_progress(total: int) -> Iterator[Callable[[CaptureCounts], None]]:
    progress = Progress(
        TextColumn("[bold]capturing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>6.0f} msg/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task("capture", total=total or None, rate=0.0)

        def advance(counts: CaptureCounts) -> None:
            progress.advance(task, counts.total)
            elapsed = progress.tasks[task].elapsed or 0
            done = progress.tasks[task].completed
            progress.update(task, rate=done / elapsed if elapsed else 0.0)

        yield advance


@contextmanager
def sync_progress() -> Iterator[Callable[[CaptureCounts], None]]:
    """A running count for `rapport mailbox sync` (a mailbox's size is unknown up front)."""
    progress = Progress(
        TextColumn("[bold]syncing"),
        TextColumn("{task.completed} messages"),
        TextColumn("{task.fields[rate]:>6.0f} msg/s"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task("sync", total=None, rate=0.0)

        def advance(counts: CaptureCounts) -> None:
            progress.advance(task, counts.total)
            elapsed = progress.tasks[task].elapsed or 0
            done = progress.tasks[task].completed
            progress.update(task, rate=done / elapsed if elapsed else 0.0)

        yield advance


def print_import_summary(result: ImportResult) -> None:
    counts, run = result.run.counts, result.run
    out = Console()
    table = Table(title="Import summary", show_header=False, box=None)
    table.add_row("captured", str(counts.captured))
    table.add_row("already known", str(counts.known))
    for rule, n in sorted(counts.skipped.items()):
        table.add_row(f"skipped: {rule}", f"{n}  ({RULE_TEXT.get(rule, rule)})")
    for reason, n in sorted(counts.quarantined.items()):
        table.add_row(f"quarantined: {reason}", str(n))
    if counts.meetings:
        seen = ", ".join(
            f"{counts.meetings[k]} {k}"
            for k in ("new", "updated", "unchanged", "skipped")
            if counts.meetings[k]
        )
        table.add_row("meetings", seen)
    table.add_row("elapsed", f"{run.elapsed:.1f} s")
    table.add_row("rate", f"{run.rate:.0f} messages/s")
    out.print(table)
    for entry in result.unreadable:
        out.print(f"not read: {entry.path}: {entry.reason}")
    if counts.quarantined:
        out.print(
            "Quarantined messages are kept with their reason; "
            "`rapport capture explain MESSAGE_ID` shows why."
        )
