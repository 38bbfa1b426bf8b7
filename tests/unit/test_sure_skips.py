"""A parse worker leaves out the content of an email only when capture's rules will skip it."""

from __future__ import annotations

import gc
from email.message import EmailMessage
from itertools import product
from pathlib import Path

import pytest

from server.crm.rules import CapturePolicy, content_skips, skip_reason
from server.crm.sure_skips import (
    LOG_HEADER,
    SKIPPABLE,
    HeaderVerdict,
    header_verdict,
    sure_skip,
)
from server.mail_ingest.items import MailItem
from server.mail_ingest.mime import parse_message
from server.mail_ingest.prepare import PrepareOptions, prepare_raw
from server.mail_ingest.sources.files import RawMessage
from tests.support.mail import make_email

LABELLED = Path(__file__).resolve().parents[1] / "data" / "labelled"
OWNER = "anna@northwind-supplies.com"
INTERNAL = frozenset({"northwind-supplies.com"})
CUSTOMER = "Clara Jensen <clara@brightline-dental.co.uk>"


def _policies() -> list[CapturePolicy]:
    return [
        CapturePolicy(
            internal_domains=INTERNAL,
            skip_mailing_lists=lists,
            skip_automated=automated,
            skip_internal_only=internal,
        )
        for lists, automated, internal in product((True, False), repeat=3)
    ]


def _verdicts(raw: bytes, policy: CapturePolicy) -> tuple[str | None, str | None]:
    item = parse_message(raw, folder="INBOX")
    verdict = header_verdict(
        item, internal_domains=policy.internal_domains, owner_addresses=frozenset({OWNER})
    )
    worker = sure_skip(item, verdict, skips=content_skips(policy))
    capture = skip_reason(
        item, policy, owner_user_id=None, verdict=verdict, owner_addresses={OWNER}
    )
    return worker, capture


def _verdict(item: MailItem) -> HeaderVerdict:
    return header_verdict(item, internal_domains=INTERNAL, owner_addresses=frozenset({OWNER}))


def test_on_the_labelled_set_the_worker_skips_exactly_what_capture_skips() -> None:
    """Every labelled message under every combination of the three switches: with no blocked
    or never-log entries, both agree on the rule (the worker's is never a skip capture would
    not make, which is what matters)."""
    files = sorted(LABELLED.glob("*.eml"))
    assert len(files) >= 200
    skipped = 0
    for path, policy in product(files, _policies()):
        worker, capture = _verdicts(path.read_bytes(), policy)
        assert worker == capture, (path.name, policy)
        skipped += worker is not None
    assert skipped > 100  # the set has bulk mail for the rules to find


def test_blocked_or_never_logged_senders_are_left_to_capture() -> None:
    policy = CapturePolicy(internal_domains=INTERNAL, blocked_domains=frozenset({"spam.example"}))
    raw = make_email(sender="x@spam.example", to=OWNER, headers={"List-Id": "<news.spam.example>"})
    worker, capture = _verdicts(raw, policy)
    assert (worker, capture) == ("mailing_list", "blocked_domain")  # skipped either way
    worker, capture = _verdicts(make_email(sender="x@spam.example", to=OWNER), policy)
    assert (worker, capture) == (None, "blocked_domain")


def test_the_panes_log_marker_keeps_the_email_whole() -> None:
    raw = make_email(sender=OWNER, to="ben@northwind-supplies.com", headers={LOG_HEADER: "v1 x"})
    item = parse_message(raw, folder="Sent")
    assert sure_skip(item, _verdict(item), skips=SKIPPABLE) is None
    item = parse_message(make_email(sender=OWNER, to="ben@northwind-supplies.com"))
    assert sure_skip(item, _verdict(item), skips=SKIPPABLE) == "internal_only"


def test_a_verdict_holds_only_for_the_settings_it_was_made_with() -> None:
    item = parse_message(make_email(sender=OWNER, to="ben@northwind-supplies.com"))
    verdict = _verdict(item)
    assert (verdict.bulk, verdict.direction) == (None, "internal")
    assert verdict.holds_for({"northwind-supplies.com"}, {OWNER})
    assert not verdict.holds_for(frozenset(), {OWNER})
    assert not verdict.holds_for(INTERNAL, {OWNER, "sales@northwind-supplies.com"})


def test_nobody_is_skipped_by_a_worker_once_anybody_was_erased() -> None:
    assert content_skips(CapturePolicy()) == SKIPPABLE
    assert content_skips(CapturePolicy(anyone_erased=True)) == frozenset()
    assert content_skips(CapturePolicy(skip_automated=False)) == {"mailing_list", "internal_only"}


INVITE = """BEGIN:VCALENDAR\r
VERSION:2.0\r
METHOD:REQUEST\r
BEGIN:VEVENT\r
UID:team-sync-1@northwind-supplies.com\r
DTSTART:20260310T090000Z\r
DTEND:20260310T093000Z\r
SUMMARY:Team sync\r
ORGANIZER:mailto:anna@northwind-supplies.com\r
ATTENDEE:mailto:ben@northwind-supplies.com\r
END:VEVENT\r
END:VCALENDAR\r
"""


def _internal_invite_with_attachment() -> bytes:
    msg = EmailMessage()
    msg["From"] = OWNER
    msg["To"] = "ben@northwind-supplies.com"
    msg["Subject"] = "Team sync"
    msg["Message-ID"] = "<sync-1@northwind-supplies.com>"
    msg.set_content("See you there.\n")
    msg.add_attachment(INVITE.encode(), maintype="text", subtype="calendar", filename="invite.ics")
    msg.add_attachment(
        bytes(range(256)) * 40, maintype="application", subtype="pdf", filename="a.pdf"
    )
    return msg.as_bytes()


@pytest.mark.parametrize("skips", [frozenset(), SKIPPABLE])
def test_a_worker_packs_nothing_of_a_skipped_email_but_still_reads_its_invitation(
    skips: frozenset[str],
) -> None:
    options = PrepareOptions("full", INTERNAL, frozenset({OWNER}), skips)
    prepared = prepare_raw(RawMessage(_internal_invite_with_attachment(), "INBOX", "m1"), options)
    assert prepared.item is not None
    assert [e.uid for e in prepared.calendar] == ["team-sync-1@northwind-supplies.com"]
    assert prepared.message_key == "mid:sync-1@northwind-supplies.com"
    if skips:
        assert prepared.content_skipped_by == "internal_only"
        assert (prepared.raw_blob, prepared.body_blob, prepared.attachment_blobs) == (
            None,
            None,
            [],
        )
        assert prepared.item.attachments == [] and prepared.item.snippet == ""
        assert prepared.weight == 0
    else:
        assert prepared.content_skipped_by is None
        assert prepared.raw_blob is not None and prepared.body_blob is not None
        assert [a.filename for a in prepared.item.attachments] == ["invite.ics", "a.pdf"]


def test_preparing_an_email_leaves_no_reference_cycles() -> None:
    """During an import the garbage collector runs rarely (`importer`): a reference cycle made
    per message would keep that message's bytes in memory until it did."""
    raw = _internal_invite_with_attachment()
    options = PrepareOptions("full", INTERNAL, frozenset({OWNER}), frozenset())
    gc.collect()
    gc.disable()
    try:
        prepared = prepare_raw(RawMessage(raw, "INBOX", "m1"), options)
        assert gc.collect() == 0
    finally:
        gc.enable()
    assert prepared.item is not None and prepared.body_blob is not None
    assert len(prepared.item.attachments) == 2
