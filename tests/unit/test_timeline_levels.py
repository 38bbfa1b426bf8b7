"""What a viewer sees of an activity on the people's timeline: `timeline.shown_level`, the pure
half of the one-statement timeline (the SQL returns the best visible mailbox level and whether
any mailbox captured the activity)."""

from __future__ import annotations

import pytest

from server.crm.timeline import shown_level

METADATA, SUBJECT, FULL = 0, 1, 2


@pytest.mark.parametrize(
    ("content_level", "captured", "visible_rank", "shown"),
    [
        # A note or a call no mailbox captured: the team's, in full.
        ("full", False, None, "full"),
        # Seen through a full-level mailbox: as much as its content holds.
        ("full", True, FULL, "full"),
        ("subject", True, FULL, "subject"),
        ("metadata", True, FULL, "metadata"),
        # The best mailbox the viewer sees it through decides.
        ("full", True, SUBJECT, "subject"),
        ("full", True, METADATA, "metadata"),
        # Captured, but through no mailbox this viewer may see: never more than metadata.
        ("full", True, None, "metadata"),
    ],
)
def test_an_activity_is_shown_at_its_best_visible_mailbox_level_capped_by_its_content(
    content_level: str, captured: bool, visible_rank: int | None, shown: str
) -> None:
    assert shown_level(content_level, captured, visible_rank) == shown
