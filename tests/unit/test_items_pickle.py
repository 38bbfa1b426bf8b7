"""What parse workers send back pickles to equal objects, by field values (not the dataclass
state methods, which look their fields up on every call)."""

from __future__ import annotations

import pickle

import pytest

from server.crm.threads import ThreadKeys
from server.mail_ingest.items import AttachmentInfo, Participant


@pytest.mark.parametrize(
    "value",
    [
        Participant("clara@brightline-dental.co.uk", "to", "Clara Jensen", "accepted"),
        Participant("ben@northwind-supplies.com", "cc"),
        AttachmentInfo("a.pdf", "application/pdf", 3, "ab" * 32, True, b"%PD", (10, 20, "base64")),
        AttachmentInfo("b.txt", "text/plain", 0, "cd" * 32),
        ThreadKeys(own="mid:a@x", refs=["mid:b@x"], conversation=None, subject="subj:x|y"),
    ],
)
def test_a_round_trip_gives_an_equal_object_of_the_same_class(value: object) -> None:
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        again = pickle.loads(pickle.dumps(value, protocol))  # noqa: S301 (our own bytes)
        assert again == value and type(again) is type(value)
    cls, fields = value.__reduce__()  # type: ignore[misc]
    assert cls is type(value) and isinstance(fields, tuple)
