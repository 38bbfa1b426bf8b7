"""Cutting a stream of work into batches bounded by what they weigh (bytes, rows held), not only
by how many items they hold: one heavy item must not make a batch that runs out of memory."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def weighed_batches(
    items: Iterable[T],
    weight: Callable[[T], int],
    *,
    most_weight: int,
    most_items: int | None = None,
) -> Iterator[list[T]]:
    """Consecutive batches of at most `most_items` items weighing at most `most_weight` in all;
    an item heavier than that on its own is a batch alone."""
    batch: list[T] = []
    held = 0
    for item in items:
        size = weight(item)
        full = most_items is not None and len(batch) >= most_items
        if batch and (full or held + size > most_weight):
            yield batch
            batch, held = [], 0
        batch.append(item)
        held += size
    if batch:
        yield batch
