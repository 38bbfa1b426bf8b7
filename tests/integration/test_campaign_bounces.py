"""Bounces of campaign emails, end to end: a campaign sent through a real SMTP receiver, then the
delivery reports that come back imported into the sender's mailbox (the `rapport import` path)
mark the recipient bounced, count in the stats, block the address for the next campaign — and
delays, reports about other mail and broken reports change nothing and stop nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select

from server.config import Settings
from server.crm import campaigns, privacy, trace
from server.crm.viewer import Viewer
from server.db import Database
from server.mail_out.campaigns import CampaignSender
from server.models import CampaignRecipient, CaptureDecision, MailingBlock
from tests.integration.test_api_lookup import capture
from tests.integration.test_campaigns import (  # noqa: F401
    ANNA,
    Receiver,
    draft,
    people,
    receiver,
    run_jobs,
    sender,
    settings,
    states,
)
from tests.support.bounces import exchange_ndr, postfix_dsn, qmail_failure_notice
from tests.support.mail import make_email

Build = Callable[[EmailMessage, str], bytes]
BOUNCES: dict[str, Build] = {
    "rfc3464": lambda sent, to: postfix_dsn(sent.as_bytes(), to, to=ANNA),
    "exchange": lambda sent, to: exchange_ndr(
        sent.as_bytes(), to, to=ANNA, original_message_id=str(sent["Message-ID"])
    ),
    "plain_text": lambda sent, to: qmail_failure_notice(sent.as_bytes(), to, to=ANNA),
}


@dataclass(frozen=True)
class Sent:
    """A campaign sent to three people, and the emails the SMTP receiver got, by recipient."""

    db: Database
    settings: Settings
    viewer: Viewer
    campaign_id: int
    emails: dict[str, EmailMessage]

    def bounce_back(self, tmp_path: Path, *reports: bytes) -> None:
        """The reports arrive in the sender's mailbox and are imported (`rapport import`)."""
        capture(self.db, self.settings, tmp_path, ANNA, list(reports))


@pytest.fixture
def sent(
    db: Database,
    settings: Settings,  # noqa: F811 - test_campaigns' fixture: SMTP through the receiver
    receiver: tuple[Receiver, int],  # noqa: F811
) -> Sent:
    viewer = sender(db)
    people(db, 3)
    campaign_id = draft(db, viewer)
    with db.session() as session:
        campaigns.schedule(session, viewer, campaign_id)
    run_jobs(db, CampaignSender(settings))
    emails = {envelope.rcpt_tos[0]: message for envelope, message in receiver[0].messages}
    assert len(emails) == 3
    return Sent(db, settings, viewer, campaign_id, emails)


def trace_of(db: Database, raw: bytes) -> CaptureDecision:
    message_id = next(
        line.split(b":", 1)[1].strip().strip(b"<>").decode().lower()
        for line in raw.splitlines()
        if line.lower().startswith(b"message-id:")
    )
    with db.read_session() as session:
        decision = session.scalar(
            select(CaptureDecision).where(CaptureDecision.message_key == f"mid:{message_id}")
        )
    assert decision is not None
    return decision


def blocks(db: Database) -> list[MailingBlock]:
    with db.read_session() as session:
        return list(session.scalars(select(MailingBlock)))


@pytest.mark.parametrize("form", sorted(BOUNCES))
def test_a_hard_bounce_marks_the_recipient_and_blocks_the_address(
    form: str, sent: Sent, tmp_path: Path
) -> None:
    db, viewer, campaign_id = sent.db, sent.viewer, sent.campaign_id
    bounced = sorted(sent.emails)[1]
    report = BOUNCES[form](sent.emails[bounced], bounced)

    sent.bounce_back(tmp_path, report)

    assert states(db, campaign_id) == {"sent": 2, "bounced": 1}
    with db.read_session() as session:
        row = session.scalar(select(CampaignRecipient).where(CampaignRecipient.state == "bounced"))
        assert row is not None and row.address == bounced
        assert str(row.provider_response).startswith("bounced: 5.1.1")  # 5.1.10 from Exchange
        numbers = campaigns.stats(session, viewer, campaign_id)
        assert (numbers.bounced, numbers.sent) == (1, 3)
        key = privacy.suppression_key(session)
        assert key is not None
    (block,) = blocks(db)
    assert (block.reason, block.campaign_id, block.contact_id) == (
        "bounced",
        campaign_id,
        row.contact_id,
    )
    assert block.address_hash == privacy.address_hash(key, bounced)
    assert "@" not in block.detail  # the block outlives an erasure: no address in it
    # The bounce is automated mail, skipped by the capture rules — and recorded all the same.
    decision = trace_of(db, report)
    assert decision.decision == "skipped" and decision.rule == "automated_sender"
    assert "marked bounced, address blocked" in decision.detail
    with db.read_session() as session:  # what `rapport capture explain` prints says so too
        printed = "\n".join(trace.explain(session, decision.message_key))
    assert "skipped by rule automated_sender" in printed and "marked bounced" in printed

    later = draft(db, viewer)
    with db.read_session() as session:
        reasons = {v.address: v.reason for v in campaigns.check(session, viewer, later)}
    assert reasons == dict.fromkeys(sent.emails) | {bounced: "bounced"}


def test_the_same_bounce_again_and_in_another_form_changes_nothing_more(
    sent: Sent, tmp_path: Path
) -> None:
    address = sorted(sent.emails)[0]
    report = BOUNCES["rfc3464"](sent.emails[address], address)
    sent.bounce_back(tmp_path / "first", report)
    again = BOUNCES["exchange"](sent.emails[address], address)
    sent.bounce_back(tmp_path / "again", report, again)
    assert states(sent.db, sent.campaign_id) == {"sent": 2, "bounced": 1}
    assert len(blocks(sent.db)) == 1
    assert "already recorded" in trace_of(sent.db, again).detail


def test_a_delay_an_unknown_message_and_a_bounce_of_other_mail_change_nothing(
    sent: Sent, tmp_path: Path
) -> None:
    address = sorted(sent.emails)[0]
    original = sent.emails[address].as_bytes()
    delay = postfix_dsn(original, address, to=ANNA, action="delayed", status="4.4.1")
    unknown = postfix_dsn(original.replace(b"rapport-c", b"rapport-cx"), address, to=ANNA)
    personal = make_email(sender=ANNA, to="someone@client0.example", message_id="<own1@x.example>")
    other = postfix_dsn(personal, "someone@client0.example", to=ANNA)

    sent.bounce_back(tmp_path, delay, unknown, other)

    assert states(sent.db, sent.campaign_id) == {"sent": 3}
    assert blocks(sent.db) == []
    assert "4.4.1" in trace_of(sent.db, delay).detail
    assert "not a hard bounce, nothing changed" in trace_of(sent.db, delay).detail
    assert "no campaign's: nothing changed" in trace_of(sent.db, unknown).detail
    assert "no campaign's: nothing changed" in trace_of(sent.db, other).detail


def test_broken_reports_never_stop_capture(sent: Sent, tmp_path: Path) -> None:
    first, second = sorted(sent.emails)[:2]
    good = BOUNCES["rfc3464"](sent.emails[second], second)
    report = BOUNCES["rfc3464"](sent.emails[first], first)
    start = report.index(b"Reporting-MTA")
    end = report.index(b"\n--", start) + 1  # the status part's fields become garbage
    says_nothing = report[:start].replace(b"said: 550 5.1.1", b"said: no") + (
        b"\x00\xff garbage ::: \n\n;;;\n\n" + report[end:]
    )
    other = BOUNCES["rfc3464"](sent.emails[first], first)
    cut = other[: other.index(b"Final-Recipient")]  # the report ends mid-way
    not_an_email = b"\x00\x01\x02 not mail at all"

    sent.bounce_back(tmp_path, says_nothing, cut, not_an_email, good)

    assert states(sent.db, sent.campaign_id) == {"sent": 2, "bounced": 1}  # the good one counts
    trace = trace_of(sent.db, says_nothing).detail
    assert "without a status (the delivery-status part has no recipient fields)" in trace
    assert trace.endswith("nothing changed")
    assert "no campaign's: nothing changed" in trace_of(sent.db, cut).detail
    with sent.db.read_session() as session:
        quarantined = session.scalar(
            select(func.count())
            .select_from(CaptureDecision)
            .where(CaptureDecision.decision == "quarantined")
        )
    assert quarantined == 1  # the bytes that are no email at all, as for any import
