"""The task pane's "log this email when sent" header (X-Rapport-Log), as capture honours it.

It counts only in the owner's own sent mail (sender is the mailbox owner, copy in a Sent folder)
with the owner's own marker; there it overrides the defaults of automatic capture, never the
admin's blocks. Anywhere else it means nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from server.config import Settings
from server.crm.rule_admin import add_rule
from server.crm.rules import is_sent_folder, log_header_key, log_header_value
from server.crm.sure_skips import LOG_HEADER
from server.crm.users import add_user
from server.db import Database
from server.mail_ingest.importer import import_files
from server.models import Activity, User
from tests.support.mail import make_email, write_maildir

ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
CLARA = "clara@brightline-dental.co.uk"


@pytest.fixture
def markers(db: Database) -> dict[str, str]:
    """Anna's and Ben's markers, as the pane gets them from GET /api/v1/me/log-when-sent."""
    with db.session() as session:
        anna = add_user(session, ANNA, role="member")
        ben = add_user(session, BEN, role="member")
        key = log_header_key(session)
        return {ANNA: log_header_value(key, anna.id), BEN: log_header_value(key, ben.id)}


def capture(
    db: Database, settings: Settings, root: Path, email: bytes, *, folder: str, owner: str = ANNA
) -> dict[str, int]:
    mailbox = write_maildir(root, [email], folder=folder)
    counts = import_files(db, settings, [mailbox], owner=owner, jobs=1).run.counts
    found = {"captured": counts.captured, **counts.skipped}
    return {outcome: n for outcome, n in found.items() if n}


def subjects(db: Database) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(Activity.subject).order_by(Activity.id)))


def test_the_owners_marker_in_their_sent_mail_logs_what_rules_would_skip(
    db: Database, settings: Settings, tmp_path: Path, markers: dict[str, str]
) -> None:
    internal = make_email(sender=ANNA, to=BEN, subject="Pricing for Brightline (internal)")
    assert capture(db, settings, tmp_path / "a", internal, folder="Sent") == {"internal_only": 1}

    logged = make_email(
        sender=ANNA,
        to=BEN,
        subject="Brightline renewal: our numbers",
        headers={LOG_HEADER: markers[ANNA]},
    )
    newsletter = make_email(
        sender=ANNA,
        to=CLARA,
        subject="Our autumn catalogue",
        headers={LOG_HEADER: markers[ANNA], "List-Unsubscribe": "<mailto:off@northwind.example>"},
    )
    assert capture(db, settings, tmp_path / "b", logged, folder="Sent") == {"captured": 1}
    assert capture(db, settings, tmp_path / "c", newsletter, folder="Sent Items") == {"captured": 1}
    assert subjects(db) == ["Brightline renewal: our numbers", "Our autumn catalogue"]


def test_the_marker_overrides_the_owners_never_log_list_but_not_the_admins_blocks(
    db: Database, settings: Settings, tmp_path: Path, markers: dict[str, str]
) -> None:
    with db.session() as session:
        anna = session.scalars(select(User).where(User.email == ANNA)).one()
        add_rule(session, "never_log", CLARA, user_id=anna.id)
        add_rule(session, "block_domain", "harbour-freight.example")
    to_clara = make_email(
        sender=ANNA, to=CLARA, subject="As promised", headers={LOG_HEADER: markers[ANNA]}
    )
    blocked = make_email(
        sender=ANNA,
        to=["bo@harbour-freight.example"],
        subject="Blocked stays blocked",
        headers={LOG_HEADER: markers[ANNA]},
    )
    assert capture(db, settings, tmp_path / "a", to_clara, folder="Sent") == {"captured": 1}
    assert capture(db, settings, tmp_path / "b", blocked, folder="Sent") == {"blocked_domain": 1}
    assert subjects(db) == ["As promised"]


@pytest.mark.parametrize(
    ("sender", "folder", "marker_of", "owner"),
    [
        (ANNA, "", ANNA, ANNA),  # forged "from Anna" into her Inbox
        (ANNA, "Archive/2026", ANNA, ANNA),  # not a Sent folder
        (BEN, "Sent", ANNA, ANNA),  # in Anna's Sent folder, but Ben sent it
        (ANNA, "Sent", BEN, ANNA),  # Ben's marker on Anna's mail
        (ANNA, "Sent", ANNA, BEN),  # Anna's mail in Ben's mailbox: not his to ask for
        (ANNA, "Sent", "garbage", ANNA),
    ],
    ids=["inbox", "other-folder", "other-sender", "other-marker", "other-mailbox", "garbage"],
)
def test_the_marker_means_nothing_anywhere_else(
    db: Database,
    settings: Settings,
    tmp_path: Path,
    markers: dict[str, str],
    sender: str,
    folder: str,
    marker_of: str,
    owner: str,
) -> None:
    value = markers.get(marker_of, "v1 0123456789abcdef0123456789abcdef")
    email = make_email(sender=sender, to=[ANNA, BEN], headers={LOG_HEADER: value})
    counts = capture(db, settings, tmp_path / "m", email, folder=folder, owner=owner)
    assert counts == {"internal_only": 1}
    assert subjects(db) == []


def test_the_header_is_inert_until_a_marker_was_handed_out(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    with db.session() as session:
        add_user(session, ANNA, role="member")
    email = make_email(sender=ANNA, to=BEN, headers={LOG_HEADER: "v1 anything"})
    assert capture(db, settings, tmp_path / "a", email, folder="Sent") == {"internal_only": 1}


def test_the_key_is_made_once_and_markers_differ_per_user(db: Database) -> None:
    with db.session() as session:
        first = log_header_key(session)
    with db.session() as session:
        assert log_header_key(session) == first
    assert log_header_value(first, 1) != log_header_value(first, 2)
    assert log_header_value(first, 1).startswith("v1 ")


@pytest.mark.parametrize(
    ("folder", "sent"),
    [
        ("Sent", True),
        ("Sent Items", True),
        ("[Gmail]/Sent Mail", True),
        ("INBOX.Sent", True),
        ("Gesendete Elemente", True),
        ("sentitems", True),
        ("INBOX", False),
        ("Sent/Old", False),
        ("Logged from Outlook", False),
    ],
)
def test_sent_folders_are_recognised_by_name(folder: str, sent: bool) -> None:
    assert is_sent_folder(folder) is sent
