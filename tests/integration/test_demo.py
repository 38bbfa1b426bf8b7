"""The README's demo: generated mailboxes captured through the real import path, once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from server.app import create_app
from server.config import load_settings
from server.crm import campaigns, segments
from server.crm.signals import list_signals
from server.crm.viewer import Viewer
from server.db import Database
from server.demo.setup import MEMBER_PASSWORD, prepare_demo
from server.models import (
    Activity,
    ActivityParticipant,
    CampaignRecipient,
    CaptureDecision,
    Contact,
    ContactConsent,
    Deal,
    DealStageChange,
    Meeting,
    QuarantinedItem,
    Stage,
    User,
    utcnow,
)

ADMIN = "anna@northwind-supplies.com"


def test_demo_is_captured_once_with_users_rules_and_quarantine(tmp_path: Path) -> None:
    settings = load_settings({"RAPPORT_DATA_DIR": str(tmp_path / "demo")}, demo=True)
    db = Database(settings.database_url)
    lines = prepare_demo(db, settings, echo=lambda _line: None, base_url="http://127.0.0.1:8000")
    assert any(line.startswith("demo users: anna@northwind-supplies.com (admin)") for line in lines)
    for url in ("/app/", "/app/#/admin/mailboxes", "/preview/"):
        assert any(f"http://127.0.0.1:8000{url} " in line for line in lines), url
    # The member the summary names signs in with the password it prints.
    (web,) = [line for line in lines if line.startswith("web app:")]
    member = web.split("sign in as ")[1].split(" ")[0]
    client = create_app(settings, db=db).test_client()
    signed_in = client.post(
        "/api/v1/auth/password", json={"email": member, "password": MEMBER_PASSWORD}
    )
    assert signed_in.status_code == 200, signed_in.get_json()
    assert f"password: {MEMBER_PASSWORD}" in web
    # No SMTP in the demo: this morning's digests are in its outbox, the admin's among them.
    (outbox,) = [line for line in lines if line.startswith("this morning's digest emails")]
    digests = sorted((tmp_path / "demo" / "outbox").glob("*.eml"))
    assert str(tmp_path / "demo" / "outbox") in outbox
    anna = [p for p in digests if "anna-at-northwind-supplies.com" in p.name]
    assert len(anna) == 1
    text = anna[0].read_text()
    assert "Your day in Rapport" in text and "Waiting for a reply" in text
    assert "http://127.0.0.1:8000/app/#/contacts/" in text

    def snapshot() -> dict[str, object]:
        with db.session() as session:
            return {
                "activities": session.scalar(select(func.count()).select_from(Activity)),
                "contacts": session.scalar(select(func.count()).select_from(Contact)),
                "users": session.scalar(select(func.count()).select_from(User)),
                "quarantined": session.scalar(select(func.count()).select_from(QuarantinedItem)),
                "skipped": set(
                    session.scalars(
                        select(CaptureDecision.rule).where(CaptureDecision.decision == "skipped")
                    )
                ),
            }

    first = snapshot()
    assert first["users"] == 4
    assert int(first["activities"]) > 150  # type: ignore[call-overload]
    assert int(first["contacts"]) > 20  # type: ignore[call-overload]
    assert first["quarantined"] == 1, "the deliberately broken message is kept in quarantine"
    assert {"mailing_list", "bulk", "automated_sender", "internal_only"} <= first["skipped"]  # type: ignore[operator]

    with db.session() as session:
        uids = set(session.scalars(select(Meeting.uid)))
        by_title = {
            subject: (status, sequence, rrule)
            for subject, status, sequence, rrule in session.execute(
                select(Activity.subject, Meeting.status, Meeting.sequence, Meeting.rrule).join(
                    Meeting, Meeting.activity_id == Activity.id
                )
            )
        }
        accepted = session.scalars(
            select(ActivityParticipant.address).where(
                ActivityParticipant.role == "attendee",
                ActivityParticipant.response == "accepted",
                ActivityParticipant.contact_id.is_not(None),
            )
        ).all()
    # Invites, replies, the update and the cancellation of the demo's mail: one meeting per
    # event (whatever mailboxes saw it), in its final state, with customers' answers.
    assert len(uids) == len(by_title) >= 6
    assert by_title["Eco range walkthrough"][0] == "cancelled"
    assert by_title["Quarterly supply review"][:2] == ("confirmed", 1)
    assert by_title["Monthly account check-in"][2]
    assert "Visite - Maison Clairval Lyon" in by_title  # from the .ics export
    assert len(accepted) >= 5

    prepare_demo(db, settings, echo=lambda _line: None)
    assert snapshot() == first, "running the demo again adds nothing"
    db.dispose()


def test_the_demo_admin_has_a_day_of_signals_and_a_pipeline(tmp_path: Path) -> None:
    """What a person clicking through the demo should see: deals in every stage, customers with
    owners, and for the admin a to-do list of each kind of signal the mail and deals give."""
    settings = load_settings({"RAPPORT_DATA_DIR": str(tmp_path / "demo")}, demo=True)
    db = Database(settings.database_url)
    prepare_demo(db, settings, echo=lambda _line: None)
    now = utcnow()
    with db.read_session() as session:
        anna = session.scalars(select(User).where(User.email == ADMIN)).one()
        stages = dict(
            session.execute(
                select(Stage.name, func.count(Deal.id))
                .join(Deal, Deal.stage_id == Stage.id)
                .group_by(Stage.name)
            ).all()
        )
        assert set(stages) == {"Lead", "Qualified", "Proposal", "Negotiation", "Won", "Lost"}
        owned = session.scalar(
            select(func.count()).select_from(Contact).where(Contact.owner_id.is_not(None))
        )
        assert owned and owned > 20
        # Deals carry their history: each moved through the funnel on its own dates.
        moves = session.scalar(select(func.count()).select_from(DealStageChange))
        assert moves and moves > 2 * sum(stages.values())
        viewer = Viewer.of(anna)
        mine = list_signals(session, viewer, mine=True, limit=100, now=now).items
    kinds = {s.kind for s in mine}
    assert {"awaiting_reply", "unanswered", "going_cold", "deal_rotting", "top_customer"} <= kinds
    prospect = [s for s in mine if s.contact and s.contact.name == "Rhiannon Pryce"]
    assert [s.kind for s in prospect] == ["awaiting_reply"]
    (top,) = [s for s in mine if s.kind == "top_customer"]
    assert top.company and top.company.name == "Brightline Dental Care"
    (rotting,) = [s for s in mine if s.kind == "deal_rotting"]
    assert rotting.deal and rotting.deal.name == "Group-wide glove contract"
    db.dispose()


def test_the_demo_has_a_sent_campaign_with_replies_and_a_draft_ready_to_send(
    tmp_path: Path,
) -> None:
    """Campaigns in the demo: consent for the customers, a segment, the sent campaign with
    its replies threaded to it, a bounce and an unsubscribe — whom the draft's check skips."""
    settings = load_settings({"RAPPORT_DATA_DIR": str(tmp_path / "demo")}, demo=True)
    db = Database(settings.database_url)
    lines = prepare_demo(db, settings, echo=lambda _line: None, base_url="http://127.0.0.1:8000")
    assert any(
        line.startswith("campaigns: http://127.0.0.1:8000/app/#/campaigns ") for line in lines
    )
    with db.read_session() as session:
        viewer = Viewer.of(session.scalars(select(User).where(User.email == ADMIN)).one())
        sent, draft = sorted(campaigns.list_campaigns(session, viewer), key=lambda c: c.id)
        assert (sent.status, draft.status) == ("done", "draft")
        assert sent.segment_id == draft.segment_id is not None
        numbers = campaigns.stats(session, viewer, sent.id)
        size = segments.segment_size(session, segments.get_segment(session, sent.segment_id))
        assert numbers.sent == numbers.recipients == size > 5
        assert (numbers.replied, numbers.bounced, numbers.unsubscribed) == (3, 1, 1)
        # Each sent email is on its recipient's timeline as the admin's outgoing mail.
        on_timelines = session.scalars(
            select(Activity.direction)
            .join(CampaignRecipient, CampaignRecipient.activity_id == Activity.id)
            .where(CampaignRecipient.campaign_id == sent.id)
        ).all()
        assert on_timelines == ["outgoing"] * size
        states = dict(
            session.execute(
                select(ContactConsent.state, func.count()).group_by(ContactConsent.state)
            ).all()
        )
        assert states["withdrawn"] == 1 and states["granted"] > 20
        verdicts = campaigns.check(session, viewer, draft.id)
    skipped = sorted(v.reason for v in verdicts if v.reason)
    assert skipped == ["bounced", "unsubscribed"]
    assert len(verdicts) == size
    db.dispose()
