"""Capture through `rapport import`, on both databases: identity, threads, contacts, rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from server.config import Settings
from server.crm.activities import unlog
from server.crm.rule_admin import add_rule, set_capture_setting
from server.crm.users import add_user
from server.db import Database
from server.mail_ingest.importer import ImportResult, import_files
from server.models import (
    Activity,
    ActivityParticipant,
    Attachment,
    Blob,
    CaptureDecision,
    CompanyDomain,
    Contact,
    ContactEmail,
    MailboxObservation,
    QuarantinedItem,
    Thread,
    ThreadKey,
)
from tests.conftest import Cli
from tests.support.mail import BASE_DATE, days, make_email, write_maildir, write_mbox

ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
CLARA = "Clara Jensen <clara@brightline-dental.co.uk>"
CLARA_ADDR = "clara@brightline-dental.co.uk"


def run_import(
    db: Database, settings: Settings, path: Path, owner: str = ANNA, **kwargs: object
) -> ImportResult:
    return import_files(db, settings, [path], owner=owner, jobs=1, **kwargs)  # type: ignore[arg-type]


def count(db: Database, model: type, *where: object) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_same_message_in_two_mailboxes_is_one_activity(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    email = make_email(sender=CLARA, to=[ANNA, BEN], message_id="<q1@brightline-dental.co.uk>")
    first = run_import(db, settings, write_maildir(tmp_path / "anna", [email]), ANNA)
    second = run_import(db, settings, write_maildir(tmp_path / "ben", [email]), BEN)
    assert (first.run.counts.captured, second.run.counts.known) == (1, 1)
    assert count(db, Activity) == 1
    assert count(db, MailboxObservation) == 2


def test_reimport_captures_nothing_new(db: Database, settings: Settings, tmp_path: Path) -> None:
    emails = [make_email(sender=CLARA, to=ANNA, subject=f"Order {n}") for n in range(5)]
    box = write_maildir(tmp_path / "anna", emails)
    assert run_import(db, settings, box).run.counts.captured == 5
    again = run_import(db, settings, box)
    assert (again.run.counts.captured, again.run.counts.known) == (0, 5)
    assert count(db, Activity) == 5
    assert count(db, ActivityParticipant) == 10
    assert count(db, MailboxObservation) == 5
    assert count(db, CaptureDecision, CaptureDecision.decision == "captured") == 5


def test_a_message_joining_two_branches_merges_them_within_a_batch_and_across_batches(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    """Branches started in an earlier import and in the same batch become one thread when a
    message references them all; no thread is left behind empty."""

    def mail(mid: str, n: int, refs: tuple[str, ...] = ()) -> bytes:
        return make_email(
            sender=CLARA,
            to=ANNA,
            message_id=f"<{mid}@bl>",
            subject=f"Part {n}",  # no shared subject: only the references tie them
            references=[f"<{r}@bl>" for r in refs],
            date=BASE_DATE + days(n),
        )

    run_import(db, settings, write_maildir(tmp_path / "a", [mail("x1", 1)]))
    batch = [
        mail("y1", 2),
        mail("z1", 3),
        mail("join", 4, ("x1", "y1", "z1")),
        mail("w", 5, ("join",)),
    ]
    assert run_import(db, settings, write_maildir(tmp_path / "b", batch)).run.counts.captured == 4
    with db.session() as session:
        threads = session.scalars(select(Thread)).all()
        assert len(threads) == 1
        thread = threads[0]
        assert set(session.scalars(select(Activity.thread_id))) == {thread.id}
        assert thread.activity_count == 5
        assert (thread.first_at, thread.last_at) == (BASE_DATE + days(1), BASE_DATE + days(5))
        keys = session.execute(select(ThreadKey.key, ThreadKey.thread_id)).all()
        assert {t for _, t in keys} == {thread.id}
        assert len(keys) >= 5  # every message's own id


def test_reply_before_parent_joins_one_thread(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    parent = make_email(sender=ANNA, to=CLARA, message_id="<p@nw>", subject="Chairs")
    reply = make_email(
        sender=CLARA,
        to=ANNA,
        message_id="<r@bl>",
        subject="Re: Chairs",
        in_reply_to="<p@nw>",
        references=["<p@nw>"],
        date=BASE_DATE + days(1),
    )
    second_reply = make_email(
        sender=ANNA,
        to=CLARA,
        message_id="<r2@nw>",
        subject="Re: Chairs",
        in_reply_to="<r@bl>",
        references=["<p@nw>", "<r@bl>"],
        date=BASE_DATE + days(2),
    )
    run_import(db, settings, write_maildir(tmp_path / "a", [reply]))
    run_import(db, settings, write_maildir(tmp_path / "b", [second_reply]))
    run_import(db, settings, write_maildir(tmp_path / "c", [parent]))
    with db.session() as session:
        threads = set(session.scalars(select(Activity.thread_id)))
        assert len(threads) == 1 and None not in threads
        thread = session.get(Thread, threads.pop())
        assert thread is not None and thread.activity_count == 3


def test_a_message_id_reused_by_another_sender_is_another_activity(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    one = make_email(sender=CLARA, to=ANNA, message_id="<1234@localhost>")
    other = make_email(
        sender="Bo <bo@harbour-freight.example>", to=ANNA, message_id="<1234@localhost>"
    )
    run_import(db, settings, write_maildir(tmp_path / "a", [one, other]))
    assert count(db, Activity) == 2


def test_email_without_message_id_is_keyed_by_its_headers(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    email = make_email(sender=CLARA, to=[ANNA, BEN], message_id=None)
    run_import(db, settings, write_maildir(tmp_path / "a", [email]), ANNA)
    run_import(db, settings, write_maildir(tmp_path / "b", [email]), BEN)
    with db.session() as session:
        keys = set(session.scalars(select(Activity.message_key)))
    assert len(keys) == 1 and keys.pop().startswith("hash:")


def test_direction_contacts_and_companies(db: Database, settings: Settings, tmp_path: Path) -> None:
    emails = [
        make_email(sender=ANNA, to=[CLARA, "Dev Patel <dev.patel@gmail.com>"], subject="Proposal"),
        make_email(sender=CLARA, to=ANNA, subject="Re: Proposal", date=BASE_DATE + days(1)),
    ]
    run_import(db, settings, write_maildir(tmp_path / "a", emails))
    with db.session() as session:
        directions = dict(session.execute(select(Activity.subject, Activity.direction)).all())
        assert directions == {"Proposal": "outgoing", "Re: Proposal": "incoming"}
        clara = session.scalar(
            select(Contact).join(ContactEmail).where(ContactEmail.address == CLARA_ADDR)
        )
        assert clara is not None and clara.name == "Clara Jensen"
        assert clara.last_contacted_at == BASE_DATE + days(1)
        assert clara.company is not None and clara.company.name == "Brightline Dental"
        domains = set(session.scalars(select(CompanyDomain.domain)))
        assert domains == {"brightline-dental.co.uk"}, "free-mail and own domains are no company"
        staff = session.scalar(select(ContactEmail).where(ContactEmail.address == ANNA))
        assert staff is None, "our own people are not contacts"


def test_a_person_with_two_addresses_is_one_contact(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    run_import(db, settings, write_maildir(tmp_path / "a", [make_email(sender=CLARA, to=ANNA)]))
    with db.session() as session:
        contact = session.scalars(select(Contact)).one()
        contact.emails.append(ContactEmail(address="clara.jensen@gmail.com"))
    later = make_email(sender="Clara J <clara.jensen@gmail.com>", to=ANNA, date=BASE_DATE + days(3))
    run_import(db, settings, write_maildir(tmp_path / "b", [later]))
    assert count(db, Contact) == 1
    with db.session() as session:
        linked = set(
            session.scalars(
                select(ActivityParticipant.contact_id).where(ActivityParticipant.role == "from")
            )
        )
        assert linked == {contact.id}


def test_names_follow_the_most_recent_but_never_overwrite_a_typed_name(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    older = make_email(sender="clara@brightline-dental.co.uk", to=ANNA, date=BASE_DATE)
    newer = make_email(
        sender="Clara Jensen-Holm <clara@brightline-dental.co.uk>",
        to=ANNA,
        date=BASE_DATE + days(5),
    )
    run_import(db, settings, write_maildir(tmp_path / "a", [older, newer]))
    with db.session() as session:
        contact = session.scalars(select(Contact)).one()
        assert contact.name == "Clara Jensen-Holm"
        contact.name, contact.name_seen_at = "Dr. Clara Jensen", None  # typed by a person
    newest = make_email(
        sender="CJ <clara@brightline-dental.co.uk>", to=ANNA, date=BASE_DATE + days(9)
    )
    run_import(db, settings, write_maildir(tmp_path / "b", [newest]))
    with db.session() as session:
        assert session.scalars(select(Contact.name)).one() == "Dr. Clara Jensen"


def test_the_same_name_seen_later_keeps_an_older_other_name_out(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    def from_clara(name: str, day: int) -> bytes:
        sender = f"{name} <clara@brightline-dental.co.uk>"
        return make_email(sender=sender, to=ANNA, date=BASE_DATE + days(day))

    run_import(db, settings, write_maildir(tmp_path / "a", [from_clara("Clara Jensen", 1)]))
    run_import(db, settings, write_maildir(tmp_path / "b", [from_clara("Clara Jensen", 9)]))
    # An older archive, imported last, knew her by another name: day 5 is older than day 9.
    run_import(db, settings, write_maildir(tmp_path / "c", [from_clara("C. Jensen", 5)]))
    with db.session() as session:
        contact = session.scalars(select(Contact)).one()
    assert contact.name == "Clara Jensen"
    assert contact.name_seen_at == BASE_DATE + days(9)


@pytest.mark.parametrize(
    ("headers", "sender", "rule"),
    [
        (
            {"List-Id": "<news.lists.example>", "List-Unsubscribe": "<mailto:u@x>"},
            CLARA,
            "mailing_list",
        ),
        (
            {"Precedence": "bulk", "List-Unsubscribe": "<https://x/u>", "Feedback-ID": "1:2:3"},
            "news@shop.example",
            "bulk",
        ),
        ({"Auto-Submitted": "auto-replied"}, CLARA, "automated_sender"),
        ({}, "noreply@notifications.example", "automated_sender"),
    ],
    ids=["list", "bulk", "auto-reply", "no-reply"],
)
def test_bulk_and_automated_mail_is_skipped_and_traced(
    db: Database,
    settings: Settings,
    tmp_path: Path,
    headers: dict[str, str],
    sender: str,
    rule: str,
) -> None:
    email = make_email(sender=sender, to=ANNA, headers=headers, message_id="<skip@x>")
    result = run_import(db, settings, write_maildir(tmp_path / "a", [email]))
    assert result.run.counts.skipped == {rule: 1}
    assert count(db, Activity) == 0
    with db.session() as session:
        decision = session.scalars(select(CaptureDecision)).one()
        assert (decision.decision, decision.rule, decision.message_key) == (
            "skipped",
            rule,
            "mid:skip@x",
        )


def test_internal_only_mail_is_skipped(db: Database, settings: Settings, tmp_path: Path) -> None:
    email = make_email(sender=ANNA, to=BEN, subject="Lunch?")
    result = run_import(db, settings, write_maildir(tmp_path / "a", [email]))
    assert result.run.counts.skipped == {"internal_only": 1}


def test_blocked_domain_and_never_log(db: Database, settings: Settings, tmp_path: Path) -> None:
    with db.session() as session:
        anna = add_user(session, ANNA, role="member")
        add_rule(session, "block_domain", "harbour-freight.example")
        add_rule(session, "never_log", "doctor@clinic.example", user_id=anna.id)
    emails = [
        make_email(sender="Bo <bo@eu.harbour-freight.example>", to=ANNA),
        make_email(sender="doctor@clinic.example", to=ANNA),
        make_email(sender=CLARA, to=ANNA),
    ]
    result = run_import(db, settings, write_maildir(tmp_path / "a", emails))
    assert result.run.counts.skipped == {"blocked_domain": 1, "never_log": 1}
    assert result.run.counts.captured == 1
    # Ben's never-log list is Ben's: Anna's copy of the doctor's mail is... still Anna's rule.
    ben_copy = make_email(sender="doctor@clinic.example", to=BEN, message_id="<doc@clinic>")
    assert (
        run_import(db, settings, write_maildir(tmp_path / "b", [ben_copy]), BEN).run.counts.captured
        == 1
    )


def test_a_rule_added_later_empties_what_was_captured(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    emails = [make_email(sender=CLARA, to=ANNA, subject="Private matter", body="Sensitive details")]
    run_import(db, settings, write_maildir(tmp_path / "a", emails))
    assert count(db, Blob) > 0
    with db.session() as session:
        emptied = add_rule(session, "block_domain", "brightline-dental.co.uk")
    assert emptied == 1
    with db.session() as session:
        activity = session.scalars(select(Activity)).one()
        assert (activity.subject, activity.snippet, activity.raw_blob) == ("", "", None)
        assert activity.content_removed_reason == "block_domain: brightline-dental.co.uk"
    assert count(db, Blob) == 0, "removed content leaves no blob behind"


def test_an_unlogged_email_stays_unlogged_through_reimport(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    box = write_maildir(tmp_path / "a", [make_email(sender=CLARA, to=ANNA, subject="Personal")])
    run_import(db, settings, box)
    with db.session() as session:
        user = add_user(session, ANNA, role="member")
        unlog(session, session.scalars(select(Activity.id)).one(), user)
    again = run_import(db, settings, box, capture_level="full")
    assert again.run.counts.known == 1
    with db.session() as session:
        activity = session.scalars(select(Activity)).one()
        assert activity.unlogged_at is not None
        assert activity.subject == "" and activity.raw_blob is None


@pytest.mark.parametrize(
    ("level", "subject", "snippet", "stored"),
    [
        ("metadata", "", "", False),
        ("subject", "Quote for 40 chairs", "", False),
        ("full", "Quote for 40 chairs", "Could you send me a quote?", True),
    ],
)
def test_capture_levels_keep_what_they_promise(
    db: Database,
    settings: Settings,
    tmp_path: Path,
    level: str,
    subject: str,
    snippet: str,
    stored: bool,
) -> None:
    box = write_maildir(tmp_path / "a", [make_email(sender=CLARA, to=ANNA)])
    run_import(db, settings, box, capture_level=level)
    with db.session() as session:
        activity = session.scalars(select(Activity)).one()
        assert activity.subject == subject
        assert snippet in activity.snippet and (snippet or activity.snippet == "")
        assert (activity.raw_blob is not None) == stored
        assert activity.content_level == level


def test_private_messages_are_captured_as_metadata_only(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    email = make_email(
        sender=CLARA, to=ANNA, subject="My health", headers={"Sensitivity": "Private"}
    )
    run_import(db, settings, write_maildir(tmp_path / "a", [email]))
    with db.session() as session:
        activity = session.scalars(select(Activity)).one()
        assert (activity.subject, activity.content_level, activity.is_private) == (
            "",
            "metadata",
            True,
        )


def test_a_fuller_mailbox_fills_in_what_a_sparser_one_left_out(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    email = make_email(sender=CLARA, to=[ANNA, BEN])
    run_import(db, settings, write_maildir(tmp_path / "a", [email]), ANNA, capture_level="metadata")
    run_import(db, settings, write_maildir(tmp_path / "b", [email]), BEN, capture_level="full")
    with db.session() as session:
        activity = session.scalars(select(Activity)).one()
        assert (activity.content_level, activity.subject) == ("full", "Quote for 40 chairs")


def test_auto_create_policy_sent_needs_a_two_way_exchange(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    with db.session() as session:
        set_capture_setting(session, "capture.auto_create_contacts", "sent")
    cold = make_email(sender="Sam <sam@cold-caller.example>", to=ANNA, subject="Buy our stuff")
    ours = make_email(sender=ANNA, to=CLARA, subject="Offer", message_id="<o@nw>")
    back = make_email(
        sender=CLARA, to=ANNA, subject="Re: Offer", in_reply_to="<o@nw>", date=BASE_DATE + days(1)
    )
    run_import(db, settings, write_maildir(tmp_path / "a", [cold, ours]))
    assert count(db, Contact) == 0
    run_import(db, settings, write_maildir(tmp_path / "b", [back]))
    with db.session() as session:
        addresses = set(session.scalars(select(ContactEmail.address)))
        assert addresses == {CLARA_ADDR}
        linked = session.scalars(
            select(ActivityParticipant.contact_id).where(ActivityParticipant.address == CLARA_ADDR)
        ).all()
        assert len(linked) == 2 and None not in linked, "the earlier email joins the new contact"


def test_auto_create_none_links_only_existing_contacts(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    with db.session() as session:
        set_capture_setting(session, "capture.auto_create_contacts", "none")
    run_import(db, settings, write_maildir(tmp_path / "a", [make_email(sender=CLARA, to=ANNA)]))
    assert count(db, Contact) == 0
    assert count(db, ActivityParticipant, ActivityParticipant.address == CLARA_ADDR) == 1


def test_bad_input_is_quarantined_and_explained_and_the_rest_lands(
    db: Database, settings: Settings, tmp_path: Path, cli: Cli
) -> None:
    good = make_email(sender=CLARA, to=ANNA, message_id="<good@x>")
    box = write_maildir(tmp_path / "a", [b"", b"\x00\x01\x02 not mail at all \xff" * 20, good])
    result = run_import(db, settings, box)
    assert result.run.counts.captured == 1
    assert sum(result.run.counts.quarantined.values()) == 2
    assert count(db, QuarantinedItem) == 2
    with db.session() as session:
        items = session.scalars(select(QuarantinedItem)).all()
        assert all(item.reason and item.raw_sha256 for item in items)
        decision = session.scalars(
            select(CaptureDecision).where(CaptureDecision.decision == "quarantined")
        ).first()
        assert decision is not None
        key = decision.message_key
    explained = cli("capture", "explain", key)
    assert "quarantined" in explained.output and "raw message is kept" in explained.output


def test_capture_explain_tells_why(
    db: Database, settings: Settings, tmp_path: Path, cli: Cli
) -> None:
    email = make_email(sender=ANNA, to=BEN, message_id="<Lunch-42@Northwind-Supplies.com>")
    run_import(db, settings, write_maildir(tmp_path / "a", [email]))
    output = cli("capture", "explain", "<lunch-42@northwind-supplies.com>").output
    assert "skipped by rule internal_only" in output
    assert "anna@northwind-supplies.com (import), folder INBOX" in output
    unknown = cli("capture", "explain", "<never@seen>").output
    assert "never seen by any linked mailbox" in unknown


def test_mbox_maildir_and_eml_all_import(
    db: Database, settings: Settings, tmp_path: Path, cli: Cli
) -> None:
    mbox = write_mbox(
        tmp_path / "archive.mbox",
        [make_email(sender=CLARA, to=ANNA, body="From here on\nok") for _ in range(3)],
    )
    maildir = write_maildir(tmp_path / "md", [make_email(sender=CLARA, to=ANNA)])
    write_maildir(maildir, [make_email(sender=ANNA, to=CLARA)], folder="Sent")
    eml = tmp_path / "one.eml"
    eml.write_bytes(make_email(sender=CLARA, to=ANNA))
    result = cli("import", str(mbox), str(maildir), str(eml), "--mailbox", ANNA, "--jobs", "1")
    assert result.exit_code == 0, result.output
    assert "captured" in result.output and "6" in result.output
    with db.session() as session:
        folders = set(session.scalars(select(MailboxObservation.folder)))
    assert folders == {"archive.mbox", "INBOX", "Sent", tmp_path.name}
    assert count(db, Activity) == 6


def test_a_file_over_the_size_cap_is_quarantined_with_its_beginning(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.crm.blobs import get_blob
    from server.mail_ingest.sources import files

    monkeypatch.setattr(files, "MAX_MESSAGE_BYTES", 3000)
    monkeypatch.setattr(files, "TOO_LARGE_KEEP", 1000)
    big = make_email(sender=CLARA, to=ANNA, subject="Huge", body="x" * 5000)
    at_cap = make_email(sender=CLARA, to=ANNA, subject="Just fits", body="y" * 100)
    at_cap += b"z" * (3000 - len(at_cap))  # exactly the cap: still read whole
    result = run_import(db, settings, write_maildir(tmp_path / "a", [big, at_cap]))
    assert result.run.counts.captured == 1
    assert result.run.counts.quarantined == {"too_large": 1}
    with db.session() as session:
        item = session.scalars(select(QuarantinedItem)).one()
        assert get_blob(session, item.raw_sha256) == big[:1000]
        subject = session.scalars(select(Activity.subject)).one()
    assert subject == "Just fits"


def test_an_import_freezes_the_heap_while_it_captures_and_hands_it_back_after(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from server.mail_ingest import importer

    real_capture = importer.capture
    frozen_during: list[int] = []

    def capture(*args: object, **kwargs: object) -> object:
        frozen_during.append(gc.get_freeze_count())
        return real_capture(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importer, "capture", capture)
    gc.unfreeze()
    result = run_import(
        db, settings, write_maildir(tmp_path / "a", [make_email(sender=CLARA, to=ANNA)])
    )
    assert result.run.counts.captured == 1
    assert frozen_during and frozen_during[0] > 10_000  # modules and mappers at least
    assert gc.get_freeze_count() == 0  # collectable again once the import is over

    def failing_capture(*args: object, **kwargs: object) -> object:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(importer, "capture", failing_capture)
    with pytest.raises(RuntimeError, match="went away"):
        run_import(db, settings, write_maildir(tmp_path / "b", [make_email(sender=CLARA, to=ANNA)]))
    assert gc.get_freeze_count() == 0  # handed back on failure too


def test_attachments_metadata_always_content_only_at_full(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = CLARA, ANNA, "Drawings"
    msg["Message-ID"] = "<att@x>"
    msg["Date"] = "Tue, 01 Sep 2026 09:00:00 +0000"
    msg.set_content("See attached.")
    msg.add_attachment(
        b"%PDF-1.4 drawing" * 100, maintype="application", subtype="pdf", filename="plan.pdf"
    )
    raw = msg.as_bytes()
    run_import(db, settings, write_maildir(tmp_path / "a", [raw]), capture_level="subject")
    with db.session() as session:
        attachment = session.scalars(select(Attachment)).one()
        assert (attachment.filename, attachment.size, attachment.blob_sha256) == (
            "plan.pdf",
            1600,
            None,
        )
    run_import(db, settings, write_maildir(tmp_path / "b", [raw]), BEN, capture_level="full")
    with db.session() as session:
        attachment = session.scalars(select(Attachment)).one()
        assert attachment.blob_sha256 == attachment.sha256


def test_quarantined_mail_is_captured_by_a_retry_after_a_fix(
    db: Database, settings: Settings, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.mail_ingest import prepare
    from server.mail_ingest.errors import BadItem

    real_parse = prepare.parse_message_and_calendar

    def old_buggy_parser(raw: bytes, **kwargs: object) -> object:
        if b"Tricky" in raw:
            raise BadItem("not_an_email", "this version could not read it")
        return real_parse(raw, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(prepare, "parse_message_and_calendar", old_buggy_parser)
    emails = [
        make_email(sender=CLARA, to=ANNA, subject="Tricky one"),
        make_email(sender=CLARA, to=ANNA),
    ]
    first = run_import(db, settings, write_maildir(tmp_path / "a", emails))
    assert (first.run.counts.captured, sum(first.run.counts.quarantined.values())) == (1, 1)

    monkeypatch.setattr(prepare, "parse_message_and_calendar", real_parse)  # the "upgrade"
    result = cli("capture", "retry")
    assert result.exit_code == 0, result.output
    assert "1 quarantined messages retried: 1 now read (1 captured" in result.output
    assert count(db, Activity) == 2
    assert count(db, QuarantinedItem, QuarantinedItem.resolved_at.is_(None)) == 0
    assert "0 quarantined messages retried" in cli("capture", "retry").output


def test_aliases_make_mail_outgoing(
    db: Database, settings: Settings, tmp_path: Path, cli: Cli
) -> None:
    email = make_email(sender="Anna <anna.s@northwind.example>", to=CLARA)
    box = write_maildir(tmp_path / "a", [email])
    result = cli(
        "import", str(box), "--mailbox", ANNA, "--alias", "anna.s@northwind.example", "--jobs", "1"
    )
    assert result.exit_code == 0, result.output
    with db.session() as session:
        assert session.scalars(select(Activity.direction)).one() == "outgoing"


def test_an_import_whose_workers_started_on_a_wrong_guess_uses_the_links_options(
    db: Database, settings: Settings, tmp_path: Path, cli: Cli
) -> None:
    """The command line sets the workers going on what it was told (no alias); the import link
    stored earlier has an alias, and the workers' thread keys must count it as the owner: a
    customer's reply without references joins the alias's email by subject only then."""
    alias = "anna.s@northwind.example"
    first = write_maildir(tmp_path / "a", [make_email(sender=CLARA, to=ANNA)])
    done = cli("import", str(first), "--mailbox", ANNA, "--alias", alias)
    assert done.exit_code == 0, done.output
    pairs = [
        (
            make_email(
                sender=f"Anna <{alias}>",
                to=CLARA,
                subject=f"Quote for order {i:03} of office chairs",
                date=BASE_DATE,
                message_id=None,  # no strong key: threaded by subject and participants
            ),
            make_email(
                sender=CLARA,
                to=ANNA,
                subject=f"Re: Quote for order {i:03} of office chairs",
                date=BASE_DATE + days(1),
                message_id=None,
            ),
        )
        for i in range(35)  # three chunks for the workers
    ]
    box = write_maildir(tmp_path / "b", [m for pair in pairs for m in pair])
    done = cli("import", str(box), "--mailbox", ANNA, "--jobs", "2")
    assert done.exit_code == 0, done.output
    with db.session() as session:
        sent = session.execute(
            select(Activity.direction, Activity.thread_id).where(Activity.sender_address == alias)
        ).all()
        replies = session.execute(
            select(Activity.subject, Activity.thread_id).where(Activity.subject.like("Re: %"))
        ).all()
    assert {direction for direction, _ in sent} == {"outgoing"}
    assert len(replies) == 35
    assert {thread for _, thread in replies} == {thread for _, thread in sent}


def test_an_email_another_process_inserted_a_moment_before_is_captured_once(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between reading what is known and inserting, another process (PostgreSQL lets two write
    at once) stored the same email: its row stays, this import counts the email as known."""
    import server.crm.capture as capture_module
    from server.crm.sql import insert_ignore

    real_insert = capture_module.insert_ignore_returning
    clash: dict[str, object] = {}

    def insert_after_another(session, table_name, index, returning, rows):  # type: ignore[no-untyped-def]
        if table_name == "activities" and not clash:
            clash.update(rows[1])
            insert_ignore(session, table_name, index, [clash])
        return real_insert(session, table_name, index, returning, rows)

    monkeypatch.setattr(capture_module, "insert_ignore_returning", insert_after_another)
    emails = [make_email(sender=CLARA, to=ANNA, subject=f"Order {n}") for n in range(3)]
    result = run_import(db, settings, write_maildir(tmp_path / "a", emails))
    assert (result.run.counts.captured, result.run.counts.known) == (2, 1)
    with db.session() as session:
        activities = session.execute(select(Activity.id, Activity.subject)).all()
        decided = session.execute(
            select(CaptureDecision.decision, CaptureDecision.activity_id)
        ).all()
    assert len(activities) == 3
    assert [d for d, _ in decided].count("known") == 1
    assert {a for _, a in decided} == {a for a, _ in activities}
    assert count(db, MailboxObservation) == 3
