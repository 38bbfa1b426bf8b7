"""On-premises Exchange mailboxes through EWS, end to end against the emulator: `rapport mailbox
add ews` (tested before saving), then `rapport worker` syncing mail and meetings.

The EWS emulator (tests/emulators/ews.py) serves real HTTPS with a test CA and signs the service
account in with NTLM; Rapport runs its production code with only the EWS URL (`--server`) and
RAPPORT_CA_BUNDLE pointing at it (and decoy REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE that must not
win). To keep the module fast the emulator's BackOffMilliseconds are tens of milliseconds --
Exchange's are seconds to minutes -- and it pages a few changes at a time where Exchange would
send up to 512.

"Exactly once" is the Capture core's definition: the set of (folder, message) observations not
marked deleted equals what the mailbox holds, and every distinct email is one activity.
"""

from __future__ import annotations

import itertools
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trustme
from exchangelib.recurrence import (  # type: ignore[import-untyped]
    EndDatePattern,
    NumberedPattern,
    Recurrence,
    RelativeMonthlyPattern,
    WeeklyPattern,
)
from sqlalchemy import func, select, update

from server.crm.threads import normalise_message_id
from server.db import Database
from server.mail_ingest.errors import (
    AuthExpired,
    CursorInvalid,
    PermissionDenied,
    Temporary,
    Throttled,
)
from server.mail_ingest.links import ews_failure_kind
from server.mail_ingest.sources.ews import (
    EwsFailure,
    calendar_item_from_ews,
    classify_ews_error,
    mail_item_from_ews,
    recurrence_rule,
)
from server.models import Activity, MailboxLink, MailboxObservation, Meeting
from tests.conftest import Cli
from tests.emulators.ews import EwsEmulator, ews, ews_server  # noqa: F401
from tests.support.calendar import calendar_email, ics
from tests.support.mail import BASE_DATE, days, make_email

DOMAIN = "northwind-supplies.com"  # internal (RAPPORT_INTERNAL_DOMAINS in the test env)
SERVICE = "NORTHWIND\\svc-rapport"
PASSWORD = "Tr0ub4dor&3-rapport"
_mailboxes = itertools.count()


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite only: the worker's PostgreSQL paths are the IMAP tests' business; this module
    is about EWS (and stays under a minute)."""
    return str(request.param)


@pytest.fixture
def env(env: dict[str, str], ews: EwsEmulator, tmp_path: Path) -> dict[str, str]:  # noqa: F811
    decoy = tmp_path / "decoy-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(decoy))
    return {
        **env,
        **ews.env(),
        "REQUESTS_CA_BUNDLE": str(decoy),
        "CURL_CA_BUNDLE": str(decoy),
        "EWS_PASSWORD": PASSWORD,
    }


@pytest.fixture
def service(ews: EwsEmulator) -> str:  # noqa: F811
    """The service account, with ApplicationImpersonation (and its password reset)."""
    ews.add_account(SERVICE, PASSWORD, impersonation=True)
    return SERVICE


def new_mailbox(ews: EwsEmulator) -> str:  # noqa: F811
    address = f"anna{os.getpid()}x{next(_mailboxes)}@{DOMAIN}"
    ews.add_mailbox(address)
    return address


def customer_mail(n: int, owner: str, *, outgoing: bool = False, **extra: Any) -> bytes:
    customer = f"Customer {n % 7} <c{n % 7}@client{n % 3}.example>"
    when = BASE_DATE + days(n / 10)
    if outgoing:
        return make_email(sender=owner, to=customer, subject=f"Offer {n}", date=when, **extra)
    return make_email(sender=customer, to=owner, subject=f"Question {n}", date=when, **extra)


def link(cli: Cli, ews: EwsEmulator, owner: str, *extra: str) -> int:  # noqa: F811
    result = cli(
        "mailbox", "add", "ews", "--owner", owner, "--server", ews.url,
        "--user", SERVICE, "--password-env", "EWS_PASSWORD", *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return int(result.output.split("mailbox link ")[1].split(":")[0])


def poll(cli: Cli, db: Database, env: dict[str, str] | None = None) -> None:
    with db.session() as session:
        session.execute(update(MailboxLink).values(next_run_at=None))
    result = cli("worker", "--once", env=env)
    assert result.exit_code == 0, result.output


def truth(ews: EwsEmulator, owner: str, folders: dict[str, str]) -> set[tuple[str, str]]:  # noqa: F811
    """(folder label, message key) of every message in the synced folders."""
    import email
    import email.policy

    found = set()
    for label, key in folders.items():
        for message in ews.messages_in(owner, key):
            parsed = email.message_from_bytes(message.mime, policy=email.policy.default)
            found.add((label, f"mid:{normalise_message_id(str(parsed['Message-ID']))}"))
    return found


def observed(db: Database) -> set[tuple[str, str]]:
    with db.session() as session:
        rows = session.execute(
            select(MailboxObservation.folder, Activity.message_key)
            .join(Activity, Activity.id == MailboxObservation.activity_id)
            .where(MailboxObservation.deleted_at.is_(None), Activity.kind == "email")
        ).all()
    return {(folder, str(key)) for folder, key in rows}


def emails(db: Database) -> int:
    with db.session() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Activity).where(Activity.kind == "email")
            )
            or 0
        )


def links(db: Database) -> list[MailboxLink]:
    with db.session() as session:
        return list(session.scalars(select(MailboxLink).order_by(MailboxLink.id)))


# -- convergence ------------------------------------------------------------------------------


def test_mail_converges_under_server_busy_and_a_lost_sync_state(
    cli: Cli,
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    service: str,
) -> None:
    owner = new_mailbox(ews)
    ews.add_folder(owner, "Projects", "inbox")
    for n in range(30):
        ews.deliver(owner, customer_mail(n, owner))
    for n in range(30, 38):
        ews.deliver(owner, customer_mail(n, owner, outgoing=True), "sentitems")
    for n in range(38, 41):
        ews.deliver(owner, customer_mail(n, owner), "Projects")
    link(cli, ews, owner, "--folders", "inbox,sentitems,Inbox/Projects", "--no-calendar")
    folders = {"Inbox": "inbox", "Sent Items": "sentitems", "Inbox/Projects": "Projects"}

    # Poll 1, the initial sync, 7 changes a page: 30% of requests answered ErrorServerBusy,
    # 10% slowly.
    ews.page_limit = 7
    ews.server_busy(0.3, back_off_ms=30)
    ews.slow_rate, ews.slow_seconds = 0.1, 0.2
    poll(cli, db)
    assert links(db)[0].status == "active", links(db)[0].last_error
    assert observed(db) == truth(ews, owner, folders)
    assert emails(db) == 41
    assert ews.count(code="ErrorServerBusy") > 0

    # Between polls: new mail, moves (new ItemIds), deletions, mail read; during the poll the
    # Inbox's sync state is refused (ErrorInvalidSyncStateData) and the server stays busy.
    inbox = [m.id for m in ews.messages_in(owner, "inbox")]
    for n in range(41, 47):
        ews.deliver(owner, customer_mail(n, owner))
    ews.move(owner, inbox[0], "Projects")
    ews.move(owner, inbox[1], "Projects")
    ews.move(owner, inbox[2], "deleteditems")  # out of the synced folders
    ews.delete(owner, inbox[3])
    ews.delete(owner, inbox[4])
    ews.mark_read(owner, inbox[5])
    ews.mark_read(owner, inbox[6])
    ews.invalidate_sync_state(owner, "inbox")
    poll(cli, db)
    assert links(db)[0].status == "active", links(db)[0].last_error
    assert observed(db) == truth(ews, owner, folders)
    assert emails(db) == 47, "moved and deleted mail stays in history; nothing twice"
    assert ews.count("SyncFolderItems", code="ErrorInvalidSyncStateData") == 1
    assert ews.violations() == [], "a request sent before its BackOffMilliseconds ran out"
    with db.session() as session:
        gone = session.scalar(
            select(func.count())
            .select_from(MailboxObservation)
            .where(MailboxObservation.deleted_at.is_not(None))
        )
    assert gone == 5, "moved-out and deleted messages are marked, not forgotten"

    # A message marked read costs no GetItem: the pipeline holds it already.
    ews.reset()
    ews.mark_read(owner, inbox[7])
    poll(cli, db)
    assert ews.count("GetItem") == 0
    assert observed(db) == truth(ews, owner, folders)


def test_an_unchanged_mailbox_costs_one_request_per_folder(
    cli: Cli,
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    service: str,
) -> None:
    owner = new_mailbox(ews)
    for n in range(5):
        ews.deliver(owner, customer_mail(n, owner))
    link(cli, ews, owner)  # Inbox, Sent Items and the calendar
    poll(cli, db)
    ews.reset()
    poll(cli, db)
    assert ews.operations() == {"SyncFolderItems": 3}, "no version probe, no folder lookups"


def test_a_long_back_off_ends_the_sync_and_the_worker_comes_back_then(
    cli: Cli,
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    service: str,
) -> None:
    owner = new_mailbox(ews)
    ews.deliver(owner, customer_mail(1, owner))
    link(cli, ews, owner, "--no-calendar")
    ews.busy_next(1, back_off_ms=300_000)  # five minutes
    poll(cli, db)
    state = links(db)[0]
    assert state.status == "error" and "back off" in (state.last_error or "")
    assert state.next_run_at is not None
    wait = (state.next_run_at - (state.last_error_at or state.next_run_at)).total_seconds()
    assert 290 <= wait <= 310, "the next run waits for BackOffMilliseconds"
    poll(cli, db)
    assert links(db)[0].status == "active"
    assert emails(db) == 1


# -- capture levels, access and sign-in -----------------------------------------------------


def test_metadata_links_read_no_mime_and_rules_see_the_headers(
    cli: Cli,
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    service: str,
) -> None:
    owner = new_mailbox(ews)
    for n in range(4):
        ews.deliver(owner, customer_mail(n, owner))
    newsletter = customer_mail(
        9, owner, headers={"List-Id": "<offers.client0.example>", "Precedence": "bulk"}
    )
    ews.deliver(owner, newsletter)
    link(cli, ews, owner, "--capture-level", "metadata", "--no-calendar")
    poll(cli, db)
    assert emails(db) == 4, "the mailing-list message was skipped by its List-Id"
    with db.session() as session:
        subjects = set(session.scalars(select(Activity.subject)))
    assert subjects == {""}, "metadata keeps no subject"
    assert ews.count("GetItem") > 0
    assert not any("item:MimeContent" in e.fields for e in ews.log), "metadata needs no MIME"


def test_a_delegate_with_full_access_links_a_shared_mailbox_over_basic_auth(
    cli: Cli,
    db: Database,
    tmp_path: Path,
) -> None:
    with EwsEmulator(tmp_path / "basic", auth="basic") as basic:
        basic.add_account("svc@northwind-supplies.com", PASSWORD)
        sales = f"sales{os.getpid()}@{DOMAIN}"
        basic.add_mailbox(sales)
        basic.deliver(sales, customer_mail(1, sales))
        basic.deliver(sales, customer_mail(2, sales, outgoing=True), "sentitems")
        env = basic.env()
        args = ("mailbox", "add", "ews", "--owner", sales, "--server", basic.url,
                "--user", "svc@northwind-supplies.com", "--password-env", "EWS_PASSWORD",
                "--auth", "basic", "--access", "delegate", "--no-calendar")  # fmt: skip
        refused = cli(*args, env=env)
        assert refused.exit_code != 0 and "FullAccess" in refused.output
        basic.grant_full_access(sales, "svc@northwind-supplies.com")
        result = cli(*args, env=env)
        assert result.exit_code == 0, result.output
        poll(cli, db, env)
        folders = {"Inbox": "inbox", "Sent Items": "sentitems"}
        assert observed(db) == truth(basic, sales, folders)
        with db.session() as session:
            ways = set(session.scalars(select(MailboxObservation.direction)))
        assert ways == {"incoming", "outgoing"}, "the shared mailbox's address is the owner"


def test_a_changed_password_or_a_lost_role_makes_the_link_need_attention(
    cli: Cli,
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    service: str,
) -> None:
    owner = new_mailbox(ews)
    ews.deliver(owner, customer_mail(1, owner))
    link(cli, ews, owner)
    ews.change_password(SERVICE, "rotated-by-the-domain")
    poll(cli, db)
    state = links(db)[0]
    assert state.status == "needs_attention" and "401" in (state.status_reason or "")
    assert state.next_run_at is None, "a refused password is not tried again by itself"
    ews.change_password(SERVICE, PASSWORD)
    ews.grant_impersonation(SERVICE, False)
    assert cli("mailbox", "resume", str(state.id)).exit_code == 0
    poll(cli, db)
    assert links(db)[0].status == "needs_attention"
    assert "ApplicationImpersonation" in (links(db)[0].status_reason or "")


def test_the_new_password_of_the_service_account_is_tested_stored_and_resumes(
    cli: Cli,
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    service: str,
) -> None:
    owner = new_mailbox(ews)
    ews.deliver(owner, customer_mail(1, owner))
    link_id = link(cli, ews, owner)
    ews.change_password(SERVICE, "rotated-by-the-domain")
    poll(cli, db)
    assert links(db)[0].status == "needs_attention"
    stale = cli("mailbox", "password", str(link_id), "--password-env", "EWS_PASSWORD")
    assert stale.exit_code == 1 and "password" in stale.output
    assert links(db)[0].status == "needs_attention", "a failed test changes nothing"
    fresh = cli(
        "mailbox", "password", str(link_id), "--password-env", "NEW",
        env={"NEW": "rotated-by-the-domain"},
    )  # fmt: skip
    assert fresh.exit_code == 0, fresh.output
    poll(cli, db)
    assert links(db)[0].status == "active"
    assert emails(db) == 1


def test_the_link_test_says_what_to_fix(
    cli: Cli,
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    service: str,
    tmp_path: Path,
) -> None:
    owner = new_mailbox(ews)

    def refused(*args: str, env: dict[str, str] | None = None, server: str = "") -> str:
        result = cli(
            "mailbox", "add", "ews", "--owner", owner, "--server", server or ews.url,
            "--user", SERVICE, *args, env=env,
        )  # fmt: skip
        assert result.exit_code != 0
        return result.output

    password = ("--password-env", "EWS_PASSWORD")
    assert "refused the service account's sign-in" in refused(
        "--password-env", "BAD", env={"BAD": "not-the-password"}
    )
    decoy = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(decoy))
    assert "RAPPORT_CA_BUNDLE" in refused(*password, env={"RAPPORT_CA_BUNDLE": str(decoy)})
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert "cannot reach" in refused(
        *password, server=f"https://127.0.0.1:{port}/EWS/Exchange.asmx"
    )
    assert "TLS only" in refused(*password, server="http://exchange.example/EWS/Exchange.asmx")
    ews.grant_impersonation(SERVICE, False)
    assert "ApplicationImpersonation" in refused(*password)
    ews.grant_impersonation(SERVICE, True)
    assert "Nowhere" in refused(*password, "--folders", "inbox,Nowhere")
    result = cli(
        "mailbox", "add", "ews", "--owner", f"nobody@{DOMAIN}", "--server", ews.url,
        "--user", SERVICE, *password,
    )  # fmt: skip
    assert result.exit_code != 0 and "no mailbox" in result.output
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(MailboxLink)) == 0


# -- meetings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uid",
    [
        "040000008200E00074C5B7101A82E00800000000A1B2C3D4E5F6A701000000000000000010000000"
        "0F1E2D3C4B5A69788796A5B4C3D2E1F0",
        "7kq2h0c9s1t0example@google.com",  # made elsewhere: EWS gives the invite's UID
    ],
    ids=["exchange-uid", "external-uid"],
)
def test_a_series_with_an_exception_seen_in_ews_and_as_an_invite_is_one_meeting(
    cli: Cli,
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    service: str,
    uid: str,
) -> None:
    organizer = new_mailbox(ews)
    attendee = new_mailbox(ews)
    start = (datetime.now(UTC) + timedelta(days=14)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    people = {"bob@client0.example": ("Bob Stone", "accepted"), attendee: ("Anna", "accepted")}
    series = ews.add_event(
        organizer,
        subject="Weekly supply review",
        start=start,
        organizer=("Olga", organizer),
        attendees=people,
        recurrence={"type": "weekly", "interval": 1, "count": 6},
        uid=uid,
        time_zone="W. Europe Standard Time",
    )
    moved = start + timedelta(days=7)
    ews.change_occurrence(organizer, series, moved, start=moved + timedelta(hours=2))
    # The same series as Outlook sent it to the attendee: the invite and the exception.
    attendees = {a: (n, "NEEDS-ACTION") for a, (n, _) in people.items()}
    invite = ics(
        "REQUEST", uid=uid, organizer=("Olga", organizer), attendees=attendees,
        stamp=start - timedelta(days=20), start=start, summary="Weekly supply review",
        rrule="FREQ=WEEKLY;COUNT=6",
    )  # fmt: skip
    change = ics(
        "REQUEST", uid=uid, organizer=("Olga", organizer), attendees=attendees,
        stamp=start - timedelta(days=19), start=moved + timedelta(hours=2),
        recurrence_id=moved, summary="Weekly supply review",
    )  # fmt: skip
    for n, calendar in enumerate((invite, change)):
        ews.deliver(
            attendee,
            calendar_email(
                calendar,
                sender=organizer,
                to=[attendee, "bob@client0.example"],
                subject="Weekly supply review",
                date=datetime.now(UTC) - timedelta(days=20 - n),
            ),
        )
    link(cli, ews, organizer, "--folders", "inbox")
    link(cli, ews, attendee, "--folders", "inbox", "--no-calendar")
    poll(cli, db)
    with db.session() as session:
        keys = sorted(session.scalars(select(Activity.identity).where(Activity.kind == "meeting")))
        rule = session.scalar(select(Meeting.rrule).where(Meeting.recurrence_key == ""))
        zone = session.scalar(select(Meeting.time_zone).where(Meeting.recurrence_key == ""))
    assert keys == [
        f"ical:{uid}|",
        f"ical:{uid}|{moved.astimezone(UTC):%Y%m%dT%H%M%SZ}",
    ], "one series and its one moved occurrence, whichever mailbox saw them"
    assert rule is not None and "FREQ=WEEKLY" in rule and "COUNT=6" in rule
    assert zone == "Europe/Berlin"
    with db.session() as session:
        sightings = {
            (str(folder), str(identity))
            for folder, identity in session.execute(
                select(MailboxObservation.folder, Activity.identity)
                .join(Activity, Activity.id == MailboxObservation.activity_id)
                .where(Activity.kind == "meeting")
            )
        }
        statuses = set(session.scalars(select(MailboxLink.status)))
    assert statuses == {"active"}
    assert {("Calendar", k) for k in keys} | {("Inbox", k) for k in keys} <= sightings, (
        "each meeting seen in the organizer's calendar (EWS) and the attendee's invites"
    )


def test_a_lost_calendar_sync_state_resyncs_without_duplicate_meetings(
    cli: Cli,
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    service: str,
) -> None:
    owner = new_mailbox(ews)
    start = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    people = {"bob@client0.example": ("Bob Stone", "accepted")}
    single = ews.add_event(
        owner, subject="Pricing call", start=start, organizer=("Anna", owner), attendees=people
    )
    quarterly = ews.add_event(
        owner, subject="Quarterly review", start=start + timedelta(days=1),
        organizer=("Anna", owner), attendees=people,
        recurrence={"type": "daily", "interval": 7, "count": 3},
    )  # fmt: skip
    second = start + timedelta(days=8)
    ews.change_occurrence(owner, quarterly, second, start=second + timedelta(hours=3))
    link(cli, ews, owner, "--folders", "inbox")
    poll(cli, db)

    def meetings() -> list[tuple[str, str]]:
        with db.session() as session:
            return sorted(
                (str(i), str(s))
                for i, s in session.execute(
                    select(Activity.identity, Activity.subject).where(Activity.kind == "meeting")
                )
            )

    first = meetings()
    assert len(first) == 3, "a single meeting, a series and its moved occurrence"
    ews.update_event(
        owner, single, subject="Pricing call (moved)", start=start + timedelta(hours=1)
    )
    ews.invalidate_sync_state(owner, "calendar")
    poll(cli, db)
    assert links(db)[0].status == "active", links(db)[0].last_error
    assert ews.count("SyncFolderItems", code="ErrorInvalidSyncStateData") == 1
    after = meetings()
    assert [i for i, _ in after] == [i for i, _ in first], "the same meetings, no more"
    assert "Pricing call (moved)" in {s for _, s in after}
    with db.session() as session:
        live = session.scalar(
            select(func.count())
            .select_from(MailboxObservation)
            .where(MailboxObservation.folder == "Calendar", MailboxObservation.deleted_at.is_(None))
        )
    assert live == 3, "every appointment (and the exception) seen again after the resync"


def test_a_deleted_series_takes_its_exceptions_with_it(
    cli: Cli,
    db: Database,
    ews: EwsEmulator,  # noqa: F811
    service: str,
) -> None:
    owner = new_mailbox(ews)
    start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    people = {"bob@client0.example": ("Bob Stone", "accepted")}
    weekly = ews.add_event(
        owner, subject="Weekly stock check", start=start, organizer=("Anna", owner),
        attendees=people, recurrence={"type": "daily", "interval": 7, "count": 4},
    )  # fmt: skip
    for week in (1, 2):
        moved = start + timedelta(days=7 * week)
        ews.change_occurrence(owner, weekly, moved, start=moved + timedelta(hours=1))
    ews.add_event(
        owner, subject="Pricing call", start=start, organizer=("Anna", owner), attendees=people
    )
    link(cli, ews, owner, "--folders", "inbox")

    def live() -> list[str]:
        with db.session() as session:
            return sorted(
                str(identity)
                for identity in session.scalars(
                    select(Activity.identity)
                    .join(MailboxObservation, MailboxObservation.activity_id == Activity.id)
                    .where(
                        MailboxObservation.folder == "Calendar",
                        MailboxObservation.deleted_at.is_(None),
                    )
                )
            )

    poll(cli, db)
    assert len(live()) == 4, "the single meeting, the series and its two exceptions"
    # The organizer undoes one exception: the series changes, that exception is gone.
    ews.update_event(owner, weekly, exceptions={})
    ews.change_occurrence(owner, weekly, start + timedelta(days=14), start=start)
    poll(cli, db)
    assert len(live()) == 3
    ews.delete_event(owner, weekly)
    poll(cli, db)
    assert links(db)[0].status == "active", links(db)[0].last_error
    with db.session() as session:
        kept = session.scalar(select(Activity.identity).where(Activity.subject == "Pricing call"))
    assert live() == [kept], "the series and every exception of it are gone from the calendar"


# -- the pure parts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "kind", "words"),
    [
        (EwsFailure("Unauthorized", "Invalid credentials"), AuthExpired, "HTTP 401"),
        (EwsFailure("ErrorAccessDenied", "Access is denied."), PermissionDenied, "FullAccess"),
        (
            EwsFailure("ErrorImpersonateUserDenied", "no permission"),
            PermissionDenied,
            "ApplicationImpersonation",
        ),
        (
            EwsFailure("ErrorNonExistentMailbox", "no mailbox", mailbox="x@y.z"),
            PermissionDenied,
            "no mailbox x@y.z",
        ),
        (
            EwsFailure("ErrorFolderNotFound", "gone", what="folder Inbox"),
            PermissionDenied,
            "no longer exists",
        ),
        (EwsFailure("ErrorInvalidSyncStateData", "corrupt"), CursorInvalid, "no longer valid"),
        (EwsFailure("ErrorServerBusy", "busy", back_off=3.0), Throttled, "back off"),
        (EwsFailure("ErrorMailboxStoreUnavailable", ""), Temporary, "right now"),
        (EwsFailure("RedirectError", "https://mail2/EWS"), PermissionDenied, "redirect"),
        (EwsFailure("MalformedResponseError", "Code: 404"), Temporary, "check the EWS URL"),
        (EwsFailure(exception=ConnectionRefusedError("refused")), Temporary, "cannot reach"),
        (
            EwsFailure(exception=OSError("[SSL: CERTIFICATE_VERIFY_FAILED] unable to get")),
            Temporary,
            "RAPPORT_CA_BUNDLE",
        ),
        (EwsFailure(exception=TimeoutError("read")), Temporary, "in time"),
    ],
)
def test_ews_errors_map_to_our_kinds(failure: EwsFailure, kind: type, words: str) -> None:
    error = classify_ews_error(failure)
    assert type(error) is kind
    assert words in error.message
    if failure.back_off is not None:
        assert isinstance(error, Throttled) and error.retry_after == failure.back_off


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (EwsFailure("Unauthorized", ""), ("ews_credentials", "password")),
        (EwsFailure("ErrorImpersonateUserDenied", ""), ("ews_impersonation", "user")),
        (EwsFailure("ErrorAccessDenied", ""), ("ews_access", "user")),
        (EwsFailure("ErrorNonExistentMailbox", ""), ("ews_mailbox", "owner")),
        (EwsFailure("ErrorServerBusy", "", back_off=5.0), ("ews_throttled", "server")),
        (EwsFailure(exception=ConnectionRefusedError("no")), ("ews_unreachable", "server")),
        (
            EwsFailure(exception=OSError("CERTIFICATE_VERIFY_FAILED")),
            ("ews_tls_untrusted", "server"),
        ),
        (EwsFailure("ErrorMailboxStoreUnavailable", ""), ("ews_unavailable", "server")),
        (EwsFailure("MalformedResponseError", "Code: 404"), ("ews_url", "server")),
    ],
)
def test_link_test_failures_name_the_setting_to_fix(
    failure: EwsFailure, expected: tuple[str, str]
) -> None:
    assert ews_failure_kind(classify_ews_error(failure)) == expected
    missing = PermissionDenied("folder 'Nowhere' does not exist in the mailbox")
    assert ews_failure_kind(missing) == ("ews_folder", "folders")


def test_recurrences_become_rrules() -> None:
    weekly = Recurrence(
        pattern=WeeklyPattern(interval=2, weekdays=[1, 4], first_day_of_week=1),
        boundary=EndDatePattern(
            start=datetime(2026, 9, 1).date(), end=datetime(2026, 12, 31).date()
        ),
    )
    assert (
        recurrence_rule(weekly)
        == "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;WKST=MO;UNTIL=20261231T235959Z"
    )
    monthly = Recurrence(
        pattern=RelativeMonthlyPattern(interval=1, weekday=5, week_number=5),
        boundary=NumberedPattern(start=datetime(2026, 9, 1).date(), number=3),
    )
    assert recurrence_rule(monthly) == "FREQ=MONTHLY;BYDAY=-1FR;COUNT=3"
    assert recurrence_rule(None) is None


def test_message_properties_key_and_route_like_parsed_mail() -> None:
    def box(address: str, name: str = "") -> SimpleNamespace:
        return SimpleNamespace(email_address=address, name=name)

    item = SimpleNamespace(
        id="AAMk1",
        message_id="<Abc@Client.Example>",
        conversation_id=SimpleNamespace(id="AAQk9"),
        subject="Re: Offer",
        author=box("Bob@Client.example", "Bob"),
        sender=box("bob@client.example", "Bob"),
        to_recipients=[box("anna@x.example", "anna@x.example")],
        datetime_sent=datetime(2026, 9, 1, 9, 0, tzinfo=UTC),
        headers=[
            SimpleNamespace(name="List-Id", value="<news.client.example>"),
            SimpleNamespace(name="Received", value="from a by b"),
        ],
        in_reply_to="<first@x.example>",
    )
    mail = mail_item_from_ews(item, "Inbox", want_subject=False)
    assert mail.message_id == "Abc@Client.Example" and mail.subject == ""
    assert [(p.role, p.address, p.name) for p in mail.participants] == [
        ("from", "bob@client.example", "Bob"),
        ("to", "anna@x.example", ""),
    ]
    assert mail.headers == {"list-id": "<news.client.example>"}
    assert mail.in_reply_to == ["first@x.example"] and mail.conversation_id == "AAQk9"


def test_an_exception_is_keyed_by_the_series_uid_and_its_original_start() -> None:
    def attendee(address: str, response: str) -> SimpleNamespace:
        return SimpleNamespace(
            mailbox=SimpleNamespace(email_address=address, name=""), response_type=response
        )

    item = SimpleNamespace(
        id="AAMkE",
        subject="Weekly",
        start=datetime(2026, 9, 14, 11, 0, tzinfo=UTC),
        end=datetime(2026, 9, 14, 11, 30, tzinfo=UTC),
        original_start=datetime(2026, 9, 14, 9, 0, tzinfo=UTC),
        is_all_day=False,
        _start_timezone=SimpleNamespace(ms_id="W. Europe Standard Time"),
        organizer=SimpleNamespace(email_address="olga@x.example", name="Olga"),
        required_attendees=[attendee("anna@x.example", "NoResponseReceived")],
        optional_attendees=[attendee("olga@x.example", "Organizer")],
        my_response_type="Tentative",
        is_cancelled=True,
        sensitivity="Private",
    )
    event = calendar_item_from_ews(item, uid="SERIES", owner="anna@x.example", occurrence=True)
    assert (event.uid, event.recurrence_id) == ("SERIES", datetime(2026, 9, 14, 9, 0, tzinfo=UTC))
    assert event.time_zone == "Europe/Berlin" and event.start is not None
    assert event.start.astimezone(UTC) == datetime(2026, 9, 14, 11, 0, tzinfo=UTC)
    assert event.status == "cancelled" and event.private
    assert [(p.role, p.address, p.response) for p in event.participants] == [
        ("organizer", "olga@x.example", None),
        ("attendee", "anna@x.example", "tentative"),
    ], "the organizer once; the owner's own answer comes from MyResponseType"
