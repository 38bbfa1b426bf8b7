"""Emails the parse workers did not read whole, through capture, on both databases."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from server.config import Settings
from server.crm.mailboxes import import_link, link_info
from server.crm.prepared import Prepared
from server.crm.privacy import erase_person
from server.crm.rule_admin import set_capture_setting
from server.crm.rules import load_policy, seed_internal_domains
from server.crm.sure_skips import SKIPPABLE
from server.db import Database
from server.mail_ingest.import_start import guess_options
from server.mail_ingest.pipeline import capture, prepare_options
from server.mail_ingest.prepare import PrepareOptions, prepare_raw
from server.mail_ingest.sources.files import RawMessage
from server.models import Activity, CaptureDecision
from tests.support.mail import make_email

ANNA = "anna@northwind-supplies.com"
CLARA = "Clara Jensen <clara@brightline-dental.co.uk>"


def _options(db: Database, settings: Settings) -> PrepareOptions:
    with db.session() as session:
        seed_internal_domains(session, settings.internal_domains)
        info = link_info(import_link(session, ANNA))
        return prepare_options(info, load_policy(session))


def test_the_command_lines_guess_is_a_fresh_databases_options(
    db: Database, settings: Settings
) -> None:
    """Else every import would prepare its first messages twice (see `import_start`)."""
    guess = guess_options(
        ANNA, capture_level=None, aliases=(), internal_domains=settings.internal_domains
    )
    assert guess == _options(db, settings)
    assert guess is not None and guess.skips == SKIPPABLE


def test_after_an_erasure_and_with_a_rule_off_workers_skip_less(
    db: Database, settings: Settings
) -> None:
    with db.session() as session:
        set_capture_setting(session, "capture.skip_automated", False)
    assert _options(db, settings).skips == {"mailing_list", "internal_only"}
    with db.session() as session:
        erase_person(session, None, "someone@elsewhere.example")
    assert _options(db, settings).skips == frozenset()


def test_an_email_a_worker_left_out_but_capture_keeps_is_captured_and_says_why(
    db: Database, settings: Settings
) -> None:
    """Not reachable while capture and its workers apply the same rules: here the worker was
    told automated mail is skipped, capture was not (the switch is off)."""
    with db.session() as session:
        set_capture_setting(session, "capture.skip_automated", False)
    raw = make_email(sender="Shop <no-reply@shop.example>", to=ANNA, subject="Your order")
    options = PrepareOptions("full", frozenset(settings.internal_domains), frozenset({ANNA}))
    lightened = prepare_raw(
        RawMessage(raw, "INBOX", "1"), PrepareOptions(**{**vars(options), "skips": SKIPPABLE})
    )
    assert lightened.content_skipped_by == "automated_sender"
    with db.session() as session:
        info = link_info(import_link(session, ANNA))
        policy = load_policy(session)
    run = capture(db, info, policy, [lightened])
    assert run.counts.captured == 1
    with db.session() as session:
        activity = session.scalars(select(Activity)).one()
        decision = session.scalars(select(CaptureDecision)).one()
    assert (activity.subject, activity.content_level, activity.raw_blob) == (
        "Your order",
        "subject",
        None,
    )
    assert "parse worker expected rule automated_sender" in decision.detail


def test_a_mailbox_of_every_kind_captures_the_same_with_and_without_worker_skips(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    mails = [
        make_email(sender=CLARA, to=ANNA, subject="Quote"),
        make_email(sender="News <news@letters.example>", to=ANNA, headers={"List-Id": "<l.ex>"}),
        make_email(sender="noreply@shop.example", to=ANNA, subject="Order shipped"),
        make_email(sender=ANNA, to="ben@northwind-supplies.com", subject="Lunch?"),
        make_email(sender="deals@shop.example", to=ANNA, headers={"Precedence": "bulk"}),
    ]
    options = _options(db, settings)
    with db.session() as session:
        info = link_info(import_link(session, ANNA))
        policy = load_policy(session)
    results = []
    for skips in (frozenset(), options.skips):
        prepared = [
            prepare_raw(
                RawMessage(raw, "INBOX", str(i)),
                PrepareOptions(**{**vars(options), "skips": skips}),
            )
            for i, raw in enumerate(mails)
        ]
        run = capture(db, info, policy, prepared)
        results.append((run.counts.captured, dict(run.counts.skipped)))
        with db.session() as session:
            results.append(sorted(str(r) for r in session.scalars(select(CaptureDecision.rule))))
            session.execute(CaptureDecision.__table__.delete())
            session.execute(Activity.__table__.delete().where(Activity.kind == "email"))
    assert results[0] == results[2]
    assert results[1] == results[3]
    assert results[0][0] == 1


def _captured(db: Database, prepared: list[Prepared]) -> tuple[int, dict[str, int]]:
    with db.session() as session:
        info = link_info(import_link(session, ANNA))
        policy = load_policy(session)
    run = capture(db, info, policy, prepared)
    return run.counts.captured, dict(run.counts.skipped)


def test_capture_works_out_again_what_a_worker_decided_for_other_settings(
    db: Database, settings: Settings
) -> None:
    """A worker that did not know northwind-supplies.com is internal saw a colleague's email
    as outgoing; capture, which does, skips it as internal-only mail."""
    options = _options(db, settings)
    assert "northwind-supplies.com" in options.internal_domains
    raw = make_email(sender=ANNA, to="ben@northwind-supplies.com", subject="Lunch?")
    unaware = PrepareOptions(**{**vars(options), "internal_domains": frozenset()})
    prepared = prepare_raw(RawMessage(raw, "INBOX", "1"), unaware)
    assert prepared.verdict is not None and prepared.verdict.direction == "outgoing"
    assert _captured(db, [prepared]) == (0, {"internal_only": 1})


def test_a_verdict_made_on_an_erased_senders_address_is_not_used(
    db: Database, settings: Settings
) -> None:
    """Erased after the worker looked: capture replaces the sender before its rules look, and
    a placeholder is no automated sender."""
    options = _options(db, settings)
    raw = make_email(sender="no-reply@shop.example", to=ANNA, cc=[CLARA], subject="Your order")
    prepared = prepare_raw(RawMessage(raw, "INBOX", "1"), options)
    assert prepared.verdict is not None and prepared.verdict.bulk == "automated_sender"
    with db.session() as session:
        erase_person(session, None, "no-reply@shop.example")
    assert _captured(db, [prepared]) == (1, {})
    with db.session() as session:
        sender = session.scalars(select(Activity.sender_address)).one()
    assert sender.endswith("@erased.invalid")
