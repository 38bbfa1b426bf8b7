"""Hostile mail and calendar files through capture into a real database (SQLite and
PostgreSQL): every input gets exactly one capture decision, every reject is quarantined with
its reason and its bytes, and none is an internal error (a bug of ours).
"""

from __future__ import annotations

import hashlib
import itertools

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from server.config import Settings
from server.crm.capture import Capturer
from server.crm.mailboxes import import_link, link_info
from server.crm.rules import load_policy, seed_internal_domains
from server.db import Database
from server.mail_ingest.pipeline import commit_batch
from server.mail_ingest.prepare import PrepareOptions, prepare_raw
from server.mail_ingest.sources.files import RawMessage
from server.models import CaptureDecision, QuarantinedItem
from tests.reliability import scale
from tests.reliability.strategies import calendars, emails, invitation
from tests.reliability.watchdog import within_watchdog

OWNER = "anna@northwind-supplies.com"
EXAMPLES = scale.fuzz_inputs(150)
inputs = st.one_of(
    emails.map(lambda raw: ("mail", raw)),
    invitation().map(lambda raw: ("mail", raw)),
    calendars.map(lambda raw: ("calendar", raw)),
)


_folders = itertools.count()
_tried = {"inputs": 0, "quarantined": 0}


def capture_one(
    db: Database, settings: Settings, kind: str, raw: bytes, folder: str
) -> tuple[str, str | None]:
    """Capture one input as if found in `folder` of the owner's archive: its message key and
    quarantine reason."""
    with db.session() as session:
        seed_internal_domains(session, settings.internal_domains)
        info = link_info(import_link(session, OWNER))
        policy = load_policy(session)
    options = PrepareOptions("full", policy.internal_domains, info.owner_addresses)
    prepared = prepare_raw(RawMessage(raw, folder, folder, kind), options)
    commit_batch(db, Capturer(info, policy), [prepared])
    return prepared.message_key, prepared.quarantine_reason


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,  # one database for all inputs, each in its folder
        HealthCheck.data_too_large,
    ],
)
@given(inputs)
# Found by the long form (10,000 inputs) on PostgreSQL, which refuses NUL in text and overlong
# keys: a quarantined message's key taken from its raw Message-ID, and a calendar UID.
@example(("mail", b"Message-ID: <\x00@h>\r\nList-Id: x\r\n\r\n"))
@example(("mail", b"Message-ID: <" + b"n" * 700 + b"@h>\r\nList-Id: x\r\n\r\n"))
# And a NUL in an address, by the suite itself on PostgreSQL (2026-11-26).
@example(("mail", b"From: 0@\x00 <anna@northwind-supplies.com>\r\nContent-Type: text/plain\r\n"))
@example(
    (
        "calendar",
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:\x00\x1fx\r\nSUMMARY:a\x00b\r\n"
        b"DTSTART:20260101T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )
)
def _every_hostile_input(db: Database, settings: Settings, kind_and_raw: tuple[str, bytes]) -> None:
    kind, raw = kind_and_raw
    folder = f"fuzz-{next(_folders)}"
    key, reason = within_watchdog(lambda: capture_one(db, settings, kind, raw, folder), raw)
    with db.read_session() as session:
        decisions = session.execute(
            select(CaptureDecision.decision, CaptureDecision.rule, CaptureDecision.detail).where(
                CaptureDecision.folder == folder, CaptureDecision.message_key == key
            )
        ).all()
        kept = session.execute(
            select(QuarantinedItem.reason, QuarantinedItem.detail).where(
                QuarantinedItem.raw_sha256 == hashlib.sha256(raw).hexdigest()
            )
        ).all()
    # Not at parsing, nor when the batch was written (a failed write is isolated and the item
    # quarantined as an internal error: a bug of ours all the same).
    assert all(rule != "internal_error" for _d, rule, _detail in decisions), decisions
    if kind == "mail":
        assert len(decisions) == 1, f"{len(decisions)} decisions for one email"
    assert len(decisions) <= 1, decisions
    if reason is not None:
        assert reason != "internal_error", f"a bug of ours on this input: {kept}"
        assert [(d, r) for d, r, _detail in decisions] == [("quarantined", reason)], decisions
        assert all(detail for *_, detail in decisions), "quarantined without saying why"
        # The same bytes seen again are one quarantined item, with the reason of the first time.
        assert len(kept) == 1 and kept[0][0] and kept[0][1], kept
        _tried["quarantined"] += 1
    _tried["inputs"] += 1


def test_every_hostile_input_is_captured_skipped_or_quarantined_with_its_reason(
    db: Database, settings: Settings
) -> None:
    # The test counts its own inputs for the bench: test processes share no counters.
    before = dict(_tried)
    _every_hostile_input(db, settings)
    tried = {key: _tried[key] - before[key] for key in _tried}
    assert tried["inputs"] > 0 or EXAMPLES == 0
    scale.record("fuzz", "capture into the database", **tried)
