"""Batches bounded by weight and count (server/batching.py)."""

from __future__ import annotations

import pytest

from server.batching import weighed_batches


@pytest.mark.parametrize(
    ("weights", "most_weight", "most_items", "expected"),
    [
        ([], 10, None, []),
        ([3, 3, 3], 10, None, [[3, 3, 3]]),
        ([3, 3, 3, 3], 10, None, [[3, 3, 3], [3]]),
        ([4, 6, 1], 10, None, [[4, 6], [1]]),  # exactly the weight still fits
        ([20, 1, 1], 10, None, [[20], [1, 1]]),  # too heavy alone: a batch of its own
        ([1, 20, 1], 10, None, [[1], [20], [1]]),
        ([1, 1, 1, 1, 1], 100, 2, [[1, 1], [1, 1], [1]]),  # the count cuts first
        ([0, 0, 0], 0, None, [[0, 0, 0]]),  # weightless items only fill by count
    ],
)
def test_batches_hold_at_most_the_weight_and_the_count(
    weights: list[int], most_weight: int, most_items: int | None, expected: list[list[int]]
) -> None:
    batches = list(weighed_batches(weights, int, most_weight=most_weight, most_items=most_items))
    assert batches == expected
    assert [w for batch in batches for w in batch] == weights  # in order, each once
