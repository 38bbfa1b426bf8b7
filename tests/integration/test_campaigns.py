"""Email campaigns end to end: segments, the skip rules, sending to 200 people through a real
SMTP receiver (aiosmtpd on loopback) under the job queue — a crash mid-way included — the
unsubscribe page and one-click POST, and a reply captured back onto the timeline."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from server.config import Settings, load_settings
from server.crm import campaigns, privacy, segments
from server.crm.consent import block_address, unsubscribe_token
from server.crm.users import add_user, create_token
from server.crm.viewer import Viewer
from server.db import Database
from server.jobs import Runner
from server.mail_out.campaign_paths import SmtpPath
from server.mail_out.campaigns import CampaignSender
from server.models import (
    Activity,
    Campaign,
    CampaignRecipient,
    Company,
    Contact,
    ContactConsent,
    ContactEmail,
    ContactTag,
    Deal,
    DealContact,
    Job,
    MailingBlock,
    Pipeline,
    Stage,
    Suppression,
    User,
    utcnow,
)
from tests.integration.test_api_lookup import capture
from tests.support.mail import make_email
from tests.support.postgres import free_port

ANNA = "anna@northwind-supplies.com"
PUBLIC = "https://crm.northwind-supplies.com"
BODY = "Dear {{ contact.first_name }},\n\nYour renewal is due.\n\n{{ sender.name }}"


class Receiver:
    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        with self.lock:
            self.messages.append((envelope, parsed))
        return "250 2.0.0 Ok: queued"

    def recipients(self) -> list[str]:
        return [rcpt for envelope, _ in self.messages for rcpt in envelope.rcpt_tos]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    """A local relay: plain SMTP on loopback, no AUTH (smtp:// in RAPPORT_SMTP_URL)."""
    receiver = Receiver()
    port = free_port()
    controller = Controller(receiver, hostname="127.0.0.1", port=port)
    controller.start()
    yield receiver, port
    controller.stop()


@pytest.fixture
def settings(env: dict[str, str], receiver: tuple[Receiver, int]) -> Settings:
    return load_settings(
        {
            **env,
            "RAPPORT_PUBLIC_URL": PUBLIC,
            "RAPPORT_SMTP_URL": f"smtp://127.0.0.1:{receiver[1]}",
        }
    )


def sender(db: Database) -> Viewer:
    with db.session() as session:
        user = add_user(session, ANNA, role="member", name="Anna Berg")
        return Viewer.of(user)


def people(
    db: Database, count: int, *, consent: str | None = "granted", **fields: Any
) -> list[int]:
    ids = []
    with db.session() as session:
        start = session.scalar(select(func.count()).select_from(Contact)) or 0
        for n in range(start, start + count):
            contact = Contact(name=f"Person{n} Example", lifecycle_stage="customer", **fields)
            contact.emails.append(ContactEmail(address=f"p{n}@client{n % 5}.example"))
            contact.emails[0].is_primary = True
            session.add(contact)
            session.flush()
            if consent is not None:
                session.add(ContactConsent(contact_id=contact.id, state=consent))
            ids.append(contact.id)
    return ids


def draft(db: Database, viewer: Viewer, *, tag: str | None = None, **fields: Any) -> int:
    with db.session() as session:
        campaigns.set_path_limits(session, "smtp", {"per_minute": 100_000})
        segment = segments.create_segment(
            session,
            viewer,
            name="Customers",
            filters={"lifecycle_stage": "customer", **({"tag": tag} if tag else {})},
        )
        made = campaigns.create_campaign(
            session,
            viewer,
            {
                "name": "Renewal",
                "segment_id": segment.id,
                "subject": "Your renewal, {{ contact.first_name }}",
                "body_text": BODY,
                "per_minute": 100_000,
                **fields,  # type: ignore[typeddict-item]
            },
        )
        return made.id


def run_jobs(db: Database, sender: CampaignSender) -> None:
    """Run the queue until nothing is due (a job put back for later is made due at once)."""
    runner = Runner(db, {}, long_handlers={campaigns.JOB: sender.job})
    for _ in range(50):
        with db.session() as session:
            session.execute(update(Job).where(Job.status == "queued").values(run_after=func.now()))
        if runner.run(once=True) == 0:
            return
    raise AssertionError("the campaign's jobs did not settle")


def states(db: Database, campaign_id: int) -> dict[str, int]:
    with db.read_session() as session:
        rows = session.execute(
            select(CampaignRecipient.state, func.count())
            .where(CampaignRecipient.campaign_id == campaign_id)
            .group_by(CampaignRecipient.state)
        )
        return {state: int(n) for state, n in rows}


# -- segments ----------------------------------------------------------------------------------


def test_segment_is_the_contact_filters_plus_open_deals(db: Database) -> None:
    viewer = sender(db)
    tagged, plain, former = people(db, 3)
    with db.session() as session:
        session.add(ContactTag(contact_id=tagged, tag="vip"))
        session.execute(
            update(Contact).where(Contact.id == former).values(lifecycle_stage="former")
        )
        pipeline = Pipeline(name="Campaign test pipeline")
        session.add(pipeline)
        session.flush()
        stage = Stage(pipeline_id=pipeline.id, name="New", position=0)
        session.add(stage)
        session.flush()
        deal = Deal(title="Chairs", pipeline_id=pipeline.id, stage_id=stage.id, status="open")
        session.add(deal)
        session.flush()
        session.add(DealContact(deal_id=deal.id, contact_id=plain))
    with db.session() as session:
        customers = segments.create_segment(
            session, viewer, name="Customers", filters={"lifecycle_stage": "customer"}
        )
        vip = segments.create_segment(session, viewer, name="VIP", filters={"tag": "vip"})
        dealing = segments.create_segment(
            session, viewer, name="Open deal", filters={"has_open_deal": True}
        )
        assert segments.segment_size(session, customers) == 2
        assert [c.id for c in segments.segment_preview(session, vip)] == [tagged]
        assert [c.id for c in segments.segment_preview(session, dealing)] == [plain]
        with pytest.raises(Exception, match="unknown segment filter colour"):
            segments.create_segment(session, viewer, name="Bad", filters={"colour": "red"})


def test_a_segment_keeps_periods_as_periods(db: Database) -> None:
    """ "Not contacted for 90 days" counts back from when the segment is used, not saved."""
    viewer = sender(db)
    recent, stale, never = people(db, 3)
    now = utcnow()
    with db.session() as session:
        for contact_id, when in (
            (recent, now - timedelta(days=10)),
            (stale, now - timedelta(days=200)),
        ):
            session.execute(
                update(Contact).where(Contact.id == contact_id).values(last_contacted_at=when)
            )
        session.execute(update(Contact).where(Contact.id == never).values(last_contacted_at=None))
    with db.session() as session:
        mine = [recent, stale, never]

        def members(filters: dict[str, Any]) -> list[int]:
            segment = segments.create_segment(session, viewer, name=str(filters), filters=filters)
            return sorted(c.id for c in segments.segment_preview(session, segment) if c.id in mine)

        assert members({"contacted_within_days": 30}) == [recent]
        assert members({"not_contacted_for_days": 90}) == [stale]
        assert members({"never_contacted": True}) == [never]
        assert members({"never_contacted": False}) == sorted([recent, stale])
        for bad in ({"contacted_within_days": 0}, {"not_contacted_for_days": "90"}):
            with pytest.raises(Exception, match="number of days"):
                segments.create_segment(session, viewer, name="Bad", filters=bad)


# -- the check -------------------------------------------------------------------------------


def test_check_lists_who_is_skipped_and_why(db: Database) -> None:
    viewer = sender(db)
    ok, unknown, withdrawn, unsubscribed, bounced, erased, nameless = people(db, 7)
    with db.session() as session:
        session.execute(
            update(ContactConsent)
            .where(ContactConsent.contact_id.in_([unknown, withdrawn]))
            .values(state="unknown")
        )
        session.execute(
            update(ContactConsent)
            .where(ContactConsent.contact_id == withdrawn)
            .values(state="withdrawn")
        )
        address = {c.contact_id: c.address for c in session.scalars(select(ContactEmail))}
        block_address(session, address[unsubscribed], "unsubscribed")
        block_address(session, address[bounced], "bounced")
        key = privacy.suppression_key(session, create=True)
        assert key is not None
        session.add(Suppression(address_hash=privacy.address_hash(key, address[erased])))
        session.execute(update(Contact).where(Contact.id == nameless).values(name=""))
    campaign_id = draft(db, viewer)
    with db.read_session() as session:
        verdicts = {v.contact_id: v for v in campaigns.check(session, viewer, campaign_id)}
    assert {cid: v.reason for cid, v in verdicts.items()} == {
        ok: None,
        unknown: "no_consent",
        withdrawn: "consent_withdrawn",
        unsubscribed: "unsubscribed",
        bounced: "bounced",
        erased: "erased",
        nameless: "missing_value",
    }
    assert verdicts[nameless].detail == "contact.first_name"


def test_a_campaign_past_the_daily_limit_is_refused_with_the_numbers(db: Database) -> None:
    viewer = sender(db)
    people(db, 3)
    campaign_id = draft(db, viewer, per_day=2)
    with db.session() as session, pytest.raises(Exception, match="daily limit of 2"):
        campaigns.schedule(session, viewer, campaign_id)


# -- sending through SMTP --------------------------------------------------------------------


def test_200_recipients_over_smtp_each_once_with_unsubscribe_headers_and_timeline(
    db: Database, settings: Settings, receiver: tuple[Receiver, int]
) -> None:
    viewer = sender(db)
    ids = people(db, 200)
    people(db, 3, consent=None)  # consent unknown: skipped
    campaign_id = draft(db, viewer)
    with db.session() as session:
        campaigns.schedule(session, viewer, campaign_id)
    run_jobs(db, CampaignSender(settings))

    got = receiver[0].recipients()
    assert len(got) == 200 and len(set(got)) == 200
    envelope, message = receiver[0].messages[0]
    assert envelope.mail_from == ANNA
    assert str(message["List-Unsubscribe"]).strip().startswith(f"<{PUBLIC}/u/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Subject"].startswith("Your renewal, Person")
    assert "Anna Berg" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert states(db, campaign_id) == {"sent": 200, "skipped": 3}
    with db.read_session() as session:
        assert session.get(Campaign, campaign_id).status == "done"  # type: ignore[union-attr]
        on_timeline = session.scalar(
            select(func.count(func.distinct(Activity.id)))
            .join(CampaignRecipient, CampaignRecipient.activity_id == Activity.id)
            .where(Activity.direction == "outgoing", CampaignRecipient.contact_id.in_(ids))
        )
        assert on_timeline == 200
        numbers = campaigns.stats(session, viewer, campaign_id)
    assert (numbers.sent, numbers.skipped, numbers.skip_reasons) == (200, 3, {"no_consent": 3})


class Crash(Exception):
    """The worker dies right after the SMTP server took a message, before it is recorded."""


def test_a_crash_between_sending_and_recording_never_mails_anyone_twice(
    db: Database, settings: Settings, receiver: tuple[Receiver, int]
) -> None:
    viewer = sender(db)
    people(db, 30)
    campaign_id = draft(db, viewer)
    with db.session() as session:
        campaigns.schedule(session, viewer, campaign_id)
    sends = 0

    def crashing(settings: Settings, session: Any, campaign: Campaign) -> SmtpPath:
        class Crashing(SmtpPath):
            def send(self, raw: bytes, sender: str, recipient: str) -> str:
                nonlocal sends
                answer = super().send(raw, sender, recipient)
                sends += 1
                if sends == 12:
                    raise Crash("killed after the 12th message")
                return answer

        return Crashing(settings)

    run_jobs(db, CampaignSender(settings, open_path=crashing))

    got = receiver[0].recipients()
    assert len(got) == 30 and len(set(got)) == 30  # everyone once, the 12th included
    assert states(db, campaign_id) == {"sent": 29, "unknown": 1}
    with db.read_session() as session:
        unknown = session.scalar(
            select(CampaignRecipient).where(CampaignRecipient.state == "unknown")
        )
        assert unknown is not None and "not sent again" in str(unknown.provider_response)


def test_pause_stops_and_resume_goes_on_and_cancel_skips_the_rest(
    db: Database, settings: Settings, receiver: tuple[Receiver, int]
) -> None:
    viewer = sender(db)
    people(db, 6)
    campaign_id = draft(db, viewer)
    with db.session() as session:
        campaigns.schedule(session, viewer, campaign_id)
        campaigns.pause(session, viewer, campaign_id)
    run_jobs(db, CampaignSender(settings))
    assert receiver[0].recipients() == []
    with db.session() as session:
        campaigns.resume(session, viewer, campaign_id)
    run_jobs(db, CampaignSender(settings))
    assert len(receiver[0].recipients()) == 6
    with db.session() as session, pytest.raises(Exception, match="nothing to cancel"):
        campaigns.cancel(session, viewer, campaign_id)


# -- unsubscribing ---------------------------------------------------------------------------


def test_unsubscribe_page_and_one_click_post_are_honoured_at_once(
    db: Database, settings: Settings, client: FlaskClient, receiver: tuple[Receiver, int]
) -> None:
    viewer = sender(db)
    first, second = people(db, 2)
    campaign_id = draft(db, viewer)
    with db.session() as session:
        campaigns.schedule(session, viewer, campaign_id)
    run_jobs(db, CampaignSender(settings))
    link = str(receiver[0].messages[0][1]["List-Unsubscribe"]).strip().strip("<>")
    path = link.removeprefix(PUBLIC)

    page = client.get(path)
    assert page.status_code == 200 and b'method="post"' in page.data
    assert client.get(path[:-3] + "abc").status_code == 404  # a forged token
    done = client.post(
        path,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert done.status_code == 200 and b"unsubscribed" in done.data
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200

    with db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(MailingBlock)) == 1
        withdrawn = session.scalar(
            select(ContactConsent.contact_id).where(ContactConsent.state == "withdrawn")
        )
        assert withdrawn in (first, second)
        assert campaigns.stats(session, viewer, campaign_id).unsubscribed == 1
    later = draft(db, viewer)
    with db.read_session() as session:
        reasons = {v.contact_id: v.reason for v in campaigns.check(session, viewer, later)}
    assert reasons[withdrawn] == "unsubscribed"


def test_an_unsubscribe_token_names_one_recipient_and_cannot_be_walked(db: Database) -> None:
    with db.session() as session:
        token = unsubscribe_token(session, 1)
        assert token != unsubscribe_token(session, 2)
        assert len(token) > 30


# -- replies ---------------------------------------------------------------------------------


def test_a_reply_is_captured_onto_the_thread_of_the_campaign_email(
    db: Database, settings: Settings, receiver: tuple[Receiver, int], tmp_path: Path
) -> None:
    viewer = sender(db)
    (clara,) = people(db, 1)
    campaign_id = draft(db, viewer)
    with db.session() as session:
        campaigns.schedule(session, viewer, campaign_id)
    run_jobs(db, CampaignSender(settings))
    _envelope, sent = receiver[0].messages[0]
    reply = make_email(
        sender="p0@client0.example",
        to=ANNA,
        subject="Re: " + str(sent["Subject"]),
        in_reply_to=str(sent["Message-ID"]),
        date=datetime.now(UTC) + timedelta(minutes=5),
    )
    # The copy in Anna's Sent Items, captured later, is the same activity, not a second one.
    capture(db, settings, tmp_path, ANNA, [reply, sent.as_bytes()])
    with db.read_session() as session:
        row = session.scalar(select(CampaignRecipient))
        assert row is not None and row.contact_id == clara
        activity = session.get(Activity, row.activity_id)
        assert activity is not None
        in_thread = session.scalars(
            select(Activity.direction).where(Activity.thread_id == activity.thread_id)
        ).all()
        assert sorted(in_thread) == ["incoming", "outgoing"]
        assert campaigns.stats(session, viewer, campaign_id).replied == 1


# -- the API ---------------------------------------------------------------------------------


def test_the_api_builds_checks_and_schedules_a_campaign(db: Database, client: FlaskClient) -> None:
    with db.session() as session:
        user = add_user(session, ANNA, role="member", name="Anna Berg")
        token = create_token(session, user, expires_in=timedelta(hours=1)).plaintext
        session.add(Company(name="Brightline"))
    auth = {"Authorization": f"Bearer {token}"}
    (contact,) = people(db, 1, consent=None)
    consent = client.put(
        f"/api/v1/contacts/{contact}/consent",
        json={"state": "granted", "source": "signed up at the fair"},
        headers=auth,
    )
    assert consent.status_code == 200 and consent.get_json()["state"] == "granted"
    segment = client.post(
        "/api/v1/segments",
        json={"name": "Customers", "filters": {"lifecycle_stage": "customer"}},
        headers=auth,
    ).get_json()
    preview = client.get(f"/api/v1/segments/{segment['id']}/preview", headers=auth).get_json()
    assert preview["size"] == 1 and preview["items"][0]["email"] == "p0@client0.example"
    made = client.post(
        "/api/v1/campaigns",
        json={"name": "Renewal", "segment_id": segment["id"], "subject": "Hi", "body_text": BODY},
        headers=auth,
    )
    assert made.status_code == 201, made.get_json()
    campaign = made.get_json()["id"]
    shown = client.get(
        f"/api/v1/campaigns/{campaign}/preview?contact_id={contact}", headers=auth
    ).get_json()
    assert shown["body_text"].startswith("Dear Person0,") and shown["missing"] == []
    checked = client.get(f"/api/v1/campaigns/{campaign}/check", headers=auth).get_json()
    assert (checked["mailed"], checked["skipped"]) == (1, 0)
    scheduled = client.post(f"/api/v1/campaigns/{campaign}/schedule", json={}, headers=auth)
    assert scheduled.get_json()["status"] == "scheduled"
    csv = client.get(f"/api/v1/campaigns/{campaign}/stats.csv", headers=auth)
    assert csv.status_code == 200 and "queued,1" in csv.get_data(as_text=True)
    refused = client.patch(f"/api/v1/campaigns/{campaign}", json={"name": "X"}, headers=auth)
    assert refused.status_code == 409
    with db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1
