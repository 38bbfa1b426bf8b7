"""Retention on both databases: old email content goes, the relationship history stays."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy import func, select

from server.config import Settings
from server.db import Database
from server.mail_ingest.worker import Worker
from server.models import Activity, ActivityParticipant, Attachment, Blob, Job, utcnow
from tests.integration.test_api_lookup import auth, capture, token_for
from tests.support.mail import make_email

ANNA = "anna@northwind-supplies.com"
CLARA = "Clara Jensen <clara@brightline-dental.co.uk>"


def test_old_email_content_is_dropped_and_the_history_kept(
    client: FlaskClient, db: Database, settings: Settings, tmp_path: Path
) -> None:
    boss = auth(token_for(db, "boss@northwind-supplies.com", role="admin"))
    old = email.message_from_bytes(
        make_email(
            sender=CLARA,
            to=ANNA,
            subject="Old order",
            body="Old body text",
            date=utcnow() - timedelta(days=400),
        ),
        policy=email.policy.default,
    )
    assert isinstance(old, EmailMessage)
    old.add_attachment(
        b"%PDF-1.4 the old quote " * 50, maintype="application", subtype="pdf", filename="quote.pdf"
    )
    capture(
        db,
        settings,
        tmp_path,
        ANNA,
        [
            old.as_bytes(),
            make_email(
                sender=CLARA,
                to=ANNA,
                subject="New order",
                body="New body",
                date=utcnow() - timedelta(days=5),
            ),
        ],
    )
    assert (
        client.put(
            "/api/v1/admin/retention", json={"email_content_days": 7}, headers=boss
        ).status_code
        == 400
    )
    set_ = client.put("/api/v1/admin/retention", json={"email_content_days": 365}, headers=boss)
    assert set_.status_code == 200 and set_.get_json()["last_run_at"] is None

    Worker(db, settings, idle_sleep=0).run(once=True)  # schedules the sweep and runs it

    with db.read_session() as session:
        old = session.scalars(select(Activity).where(Activity.subject == "Old order")).one()
        new = session.scalars(select(Activity).where(Activity.subject == "New order")).one()
        assert (old.body_text, old.raw_blob, old.body_blob, old.snippet) == (None, None, None, "")
        assert old.content_level == "subject"
        (attachment,) = session.scalars(select(Attachment).where(Attachment.activity_id == old.id))
        assert (attachment.filename, attachment.blob_sha256) == ("quote.pdf", None)
        senders = session.scalars(
            select(ActivityParticipant.address).where(ActivityParticipant.activity_id == old.id)
        )
        assert "clara@brightline-dental.co.uk" in list(senders)
        assert new.body_text == "New body" or "New body" in (new.snippet or "")
        assert new.raw_blob is not None
        blobs = set(session.scalars(select(Blob.sha256)))
        assert blobs == {b for b in (new.raw_blob, new.body_blob) if b}, "no orphan left"
        assert (
            session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.kind == "retention_sweep", Job.status == "done")
            )
            == 1
        )
    shown = client.get("/api/v1/admin/retention", headers=boss).get_json()
    assert shown["last_dropped"] == 1 and shown["last_run_at"]
    # the timeline still shows the old email, by subject
    contact_id = client.get(
        "/api/v1/lookup?email=clara@brightline-dental.co.uk", headers=boss
    ).get_json()
    subjects = [a["subject"] for a in contact_id["timeline"]]
    assert "Old order" in subjects and "New order" in subjects
    # a second pass the same day is not due
    Worker(db, settings, idle_sleep=0).run(once=True)
    with db.read_session() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(Job).where(Job.kind == "retention_sweep")
            )
            == 1
        )
