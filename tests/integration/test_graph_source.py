"""Microsoft 365 mailboxes through Microsoft Graph, end to end against the emulators: `rapport
mailbox add graph` (tested before saving), then `rapport worker` syncing mail and meetings.

The Graph emulator (tests/emulators/graph.py) and the identity emulator serve real HTTPS with a
test CA; Rapport runs its production code with only RAPPORT_GRAPH_API_URL,
RAPPORT_GRAPH_AUTHORITY_HOST and RAPPORT_CA_BUNDLE pointing at them (and decoy
REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE that must not win). To keep the module fast the emulator's
Retry-After values are fractions of a second (`graph.faults(..., retry_after=0.05)`) -- Graph
sends whole seconds -- and the client's backoff without Retry-After starts at half a second.

"Exactly once" is the Capture core's definition: the set of (folder, message) observations not
marked deleted equals what the mailbox holds, and every distinct email is one activity.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from sqlalchemy import func, select, update

from server.crm.threads import normalise_message_id
from server.crypto import SecretBox
from server.db import Database
from server.mail_ingest.errors import (
    AuthExpired,
    CursorInvalid,
    PermissionDenied,
    Temporary,
    Throttled,
)
from server.mail_ingest.links import graph_failure_kind
from server.mail_ingest.sources.graph import (
    GraphFailure,
    calendar_item_from_json,
    classify_graph_error,
    mail_item_from_json,
    parse_retry_after,
    recurrence_rule,
    series_uid,
)
from server.models import Activity, MailboxLink, MailboxObservation, Meeting
from tests.conftest import SECRET_KEY, Cli
from tests.emulators.fixtures import identity, identity_server  # noqa: F401
from tests.emulators.graph import GraphEmulator, graph, graph_server  # noqa: F401
from tests.emulators.identity import GRAPH, App, IdentityEmulator, Tenant
from tests.support.calendar import calendar_email, ics
from tests.support.mail import BASE_DATE, days, make_email

DOMAIN = "northwind-supplies.com"  # internal (RAPPORT_INTERNAL_DOMAINS in the test env)
SECRET = "gR8Q~exampleGraphSecret.0123456789abcdef"
_mailboxes = itertools.count()


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite only: the worker's PostgreSQL paths are the IMAP tests' business; this module
    is about Graph (and stays under a minute)."""
    return str(request.param)


@pytest.fixture
def env(env: dict[str, str], graph: GraphEmulator, tmp_path: Path) -> dict[str, str]:  # noqa: F811
    decoy = tmp_path / "decoy-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(decoy))
    return {
        **env,
        **graph.env(),
        "REQUESTS_CA_BUNDLE": str(decoy),
        "CURL_CA_BUNDLE": str(decoy),
        "GRAPH_SECRET": SECRET,
    }


@pytest.fixture
def tenant(identity: IdentityEmulator) -> Tenant:  # noqa: F811
    return identity.add_tenant()


@pytest.fixture
def app(graph: GraphEmulator, tenant: Tenant) -> App:  # noqa: F811
    return graph.graph_app(tenant, secret=SECRET)


def new_mailbox(graph: GraphEmulator, tenant: Tenant, *, shared: bool = False) -> str:  # noqa: F811
    address = f"anna{os.getpid()}x{next(_mailboxes)}@{DOMAIN}"
    graph.add_mailbox(tenant, address, shared=shared)
    return address


def customer_mail(n: int, owner: str, *, outgoing: bool = False, **extra: Any) -> bytes:
    customer = f"Customer {n % 7} <c{n % 7}@client{n % 3}.example>"
    when = BASE_DATE + days(n / 10)
    if outgoing:
        return make_email(sender=owner, to=customer, subject=f"Offer {n}", date=when, **extra)
    return make_email(sender=customer, to=owner, subject=f"Question {n}", date=when, **extra)


def link(cli: Cli, owner: str, tenant: Tenant, app: App, *extra: str) -> int:
    result = cli(
        "mailbox", "add", "graph", "--owner", owner, "--tenant", tenant.id,
        "--client-id", app.client_id, "--client-secret-env", "GRAPH_SECRET", *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return int(result.output.split("mailbox link ")[1].split(":")[0])


def poll(cli: Cli, db: Database) -> None:
    with db.session() as session:
        session.execute(update(MailboxLink).values(next_run_at=None))
    result = cli("worker", "--once")
    assert result.exit_code == 0, result.output


def truth(graph: GraphEmulator, owner: str, folders: dict[str, str]) -> set[tuple[str, str]]:  # noqa: F811
    """(folder label, message key) of every message in the synced folders."""
    found = set()
    for label, key in folders.items():
        for message in graph.messages_in(owner, key):
            normalised = normalise_message_id(message.fields["internetMessageId"])
            found.add((label, f"mid:{normalised}"))
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


def the_link(db: Database) -> MailboxLink:
    with db.session() as session:
        return session.scalars(select(MailboxLink)).one()


# -- convergence ------------------------------------------------------------------------------


def test_mail_converges_under_throttling_token_expiry_and_resync(
    cli: Cli,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    app: App,
) -> None:
    owner = new_mailbox(graph, tenant)
    graph.add_folder(owner, "Projects")
    for n in range(30):
        graph.deliver(owner, customer_mail(n, owner))
    for n in range(30, 38):
        graph.deliver(owner, customer_mail(n, owner, outgoing=True), "sentitems")
    for n in range(38, 41):
        graph.deliver(owner, customer_mail(n, owner), "Projects")
    link(cli, owner, tenant, app, "--folders", "inbox,sentitems,Projects")
    folders = {"Inbox": "inbox", "Sent Items": "sentitems", "Projects": "Projects"}

    # Poll 1, the initial sync: 30% of requests and batch items throttled or failing.
    graph.faults(0.3, kinds=("429", "503"), retry_after=0.05)
    poll(cli, db)
    assert the_link(db).status == "active", the_link(db).last_error
    assert observed(db) == truth(graph, owner, folders)
    assert emails(db) == 41

    # Between polls: new mail, moves, deletions, mail read; during the poll the token expires
    # and the Inbox's delta state is lost (410).
    inbox = [m.immutable_id for m in graph.messages_in(owner, "inbox")]
    for n in range(41, 47):
        graph.deliver(owner, customer_mail(n, owner))
    graph.move(owner, inbox[0], "Projects")
    graph.move(owner, inbox[1], "Projects")
    graph.move(owner, inbox[2], "archive")  # out of the synced folders
    graph.delete(owner, inbox[3])
    graph.delete(owner, inbox[4])
    graph.mark_read(owner, inbox[5])
    graph.mark_read(owner, inbox[6])
    graph.expire_tokens_after(4)
    graph.fail_next_delta(owner, folder=graph.folder_id(owner, "inbox"))
    poll(cli, db)
    assert the_link(db).status == "active", the_link(db).last_error
    assert observed(db) == truth(graph, owner, folders)
    assert emails(db) == 47, "moved and deleted mail stays in history; nothing twice"
    assert graph.count("delta", status=410) == 1
    assert graph.count(None, status=401) >= 1, "the token expired mid-sync"
    assert graph.count(None, status=429) + graph.count(None, status=429, in_batch=True) > 0
    assert graph.violations() == [], "a request sent before its Retry-After"
    with db.session() as session:
        gone = session.scalar(
            select(func.count())
            .select_from(MailboxObservation)
            .where(MailboxObservation.deleted_at.is_not(None))
        )
    assert gone == 5, "moved-out and deleted messages are marked, not forgotten"

    # A message marked read costs no MIME request: the pipeline holds it already.
    graph.reset()
    graph.mark_read(owner, inbox[7])
    poll(cli, db)
    assert graph.count("batch") == 0 and graph.count("mime") == 0
    assert observed(db) == truth(graph, owner, folders)


def test_an_unchanged_mailbox_costs_one_request_per_folder(
    cli: Cli,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    app: App,
) -> None:
    owner = new_mailbox(graph, tenant)
    for n in range(5):
        graph.deliver(owner, customer_mail(n, owner))
    link(cli, owner, tenant, app)  # Inbox, Sent Items and the calendar
    poll(cli, db)
    graph.reset()
    poll(cli, db)
    assert graph.kinds() == {"delta": 2, "calendar_delta": 1}
    poll(cli, db)
    assert graph.kinds() == {"delta": 4, "calendar_delta": 2}


def with_attachment(n: int, owner: str) -> bytes:
    """A customer's email carrying a file: Graph's hasAttachments, so fetched on its own."""
    message = message_from_bytes(customer_mail(n, owner), policy=policy.default)
    assert isinstance(message, EmailMessage)
    message.add_attachment(
        f"price list {n}\n".encode() * 200, maintype="text", subtype="csv", filename=f"p{n}.csv"
    )
    return message.as_bytes()


def test_messages_with_attachments_come_four_at_a_time_and_in_order(
    cli: Cli,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    app: App,
) -> None:
    """Each needs a request of its own; Outlook lets an app have 4 at once per mailbox (a
    fifth is refused with 429 MailboxConcurrency), so the sync keeps 4 in flight, no more."""
    owner = new_mailbox(graph, tenant)
    for n in range(24):
        graph.deliver(owner, with_attachment(n, owner) if n % 4 else customer_mail(n, owner))
    link(cli, owner, tenant, app, "--no-calendar")
    graph.delay = 0.05  # long enough that requests overlap when they are sent at once
    graph.expire_tokens_after(7)  # and the token runs out while several are in flight
    poll(cli, db)
    assert the_link(db).status == "active", the_link(db).last_error
    assert observed(db) == truth(graph, owner, {"Inbox": "inbox", "Sent Items": "sentitems"})
    assert emails(db) == 24
    assert graph.count("mime") == 18 + graph.count("mime", status=401)
    assert graph.peak_in_flight[owner] == 4
    assert graph.count(None, status=429) == 0, "a fifth request at once"
    with db.session() as session:
        attached = session.scalar(
            select(func.count())
            .select_from(Activity)
            .where(Activity.kind == "email", Activity.has_attachments.is_(True))
        )
    assert attached == 18


# -- capture levels and rules -----------------------------------------------------------------


def test_metadata_links_read_no_mime_and_rules_see_the_headers(
    cli: Cli,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    app: App,
) -> None:
    owner = new_mailbox(graph, tenant)
    for n in range(4):
        graph.deliver(owner, customer_mail(n, owner))
    newsletter = customer_mail(
        9, owner, headers={"List-Id": "<offers.client0.example>", "Precedence": "bulk"}
    )
    graph.deliver(owner, newsletter)
    link(cli, owner, tenant, app, "--capture-level", "metadata", "--no-calendar")
    poll(cli, db)
    assert graph.count("batch") == 0 and graph.count("mime") == 0, "metadata needs no MIME"
    assert emails(db) == 4, "the mailing-list message was skipped by its List-Id"
    with db.session() as session:
        subjects = set(session.scalars(select(Activity.subject)))
    assert subjects == {""}, "metadata keeps no subject"


# -- shared mailboxes and delegated links -----------------------------------------------------


def test_a_shared_mailbox_links_app_only_and_syncs(
    cli: Cli,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    app: App,
) -> None:
    sales = new_mailbox(graph, tenant, shared=True)
    graph.deliver(sales, customer_mail(1, sales))
    graph.deliver(sales, customer_mail(2, sales, outgoing=True), "sentitems")
    link(cli, sales, tenant, app, "--no-calendar")
    poll(cli, db)
    assert observed(db) == truth(graph, sales, {"Inbox": "inbox", "Sent Items": "sentitems"})
    with db.session() as session:
        ways = set(session.scalars(select(MailboxObservation.direction)))
    assert ways == {"incoming", "outgoing"}, "the shared mailbox's address is the owner"


def test_a_delegated_link_signs_in_with_a_device_code_and_syncs_a_shared_mailbox(
    cli: Cli,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    tenant: Tenant,
) -> None:
    user = new_mailbox(graph, tenant)
    sales = new_mailbox(graph, tenant, shared=True)
    graph.grant_delegate(sales, user)
    graph.deliver(sales, customer_mail(3, sales))
    public = identity.add_app(
        tenant,
        public_client=True,
        delegated={
            GRAPH: {"Mail.Read", "Calendars.Read", "Mail.Read.Shared", "Calendars.Read.Shared"}
        },
    )
    identity.device_code_interval = 1

    def approve() -> None:  # the user, at the verification page
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pending = list(identity._devices.values())
            if pending:
                identity.approve_device_code(pending[0].user_code, user)
                return
            time.sleep(0.05)

    helper = threading.Thread(target=approve, daemon=True)
    helper.start()
    result = cli(
        "mailbox", "add", "graph", "--owner", sales, "--tenant", tenant.id,
        "--client-id", public.client_id, "--delegated", "--no-calendar",
    )  # fmt: skip
    helper.join(timeout=5)
    assert result.exit_code == 0, result.output
    secret = SecretBox([SECRET_KEY]).decrypt_json(the_link(db).secret or "")
    assert set(secret) == {"refresh_token"}, "a public client: a refresh token, no secret"
    poll(cli, db)
    assert observed(db) == truth(graph, sales, {"Inbox": "inbox", "Sent Items": "sentitems"})
    assert the_link(db).settings["signed_in_as"] == user

    identity.revoke_user_grants(user)
    graph.expire_tokens()
    poll(cli, db)
    assert the_link(db).status == "needs_attention"
    assert "sign in again" in (the_link(db).status_reason or "")


# -- the link test ----------------------------------------------------------------------------


def test_the_link_test_says_what_to_fix(
    cli: Cli,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    tenant: Tenant,
    app: App,
) -> None:
    owner = new_mailbox(graph, tenant)

    def refused(*args: str, env: dict[str, str] | None = None) -> str:
        result = cli("mailbox", "add", "graph", "--owner", owner, *args, env=env)
        assert result.exit_code != 0
        return result.output

    base = ["--tenant", tenant.id, "--client-id", app.client_id]
    wrong = refused(*base, "--client-secret-env", "BAD", env={"BAD": "not-the-secret"})
    assert "client secret is wrong" in wrong
    unknown = identity.add_tenant()
    assert "does not exist" in refused(
        "--tenant", unknown.id, "--client-id", app.client_id, "--client-secret-env", "GRAPH_SECRET"
    ) or "not found" in refused(
        "--tenant", unknown.id, "--client-id", app.client_id, "--client-secret-env", "GRAPH_SECRET"
    )
    no_consent = identity.add_app(tenant, secret=SECRET)
    assert "admin consent" in refused(
        "--tenant", tenant.id, "--client-id", no_consent.client_id,
        "--client-secret-env", "GRAPH_SECRET",
    )  # fmt: skip
    graph.restrict_app(app, [f"someone@{DOMAIN}"])
    assert "application access policy" in refused(*base, "--client-secret-env", "GRAPH_SECRET")
    graph.restrict_app(app, [owner])
    assert "Nowhere" in refused(
        *base, "--client-secret-env", "GRAPH_SECRET", "--folders", "inbox,Nowhere"
    )
    result = cli(
        "mailbox", "add", "graph", "--owner", f"nobody@{DOMAIN}", *base,
        "--client-secret-env", "GRAPH_SECRET",
    )  # fmt: skip
    assert result.exit_code != 0 and "no mailbox" in result.output
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(MailboxLink)) == 0


# -- meetings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uid",
    [
        "040000008200E00074C5B7101A82E00800000000A1B2C3D4E5F6A701000000000000000010000000",
        "7kq2h0c9s1t0example@google.com",  # made elsewhere: Exchange wraps it in its iCalUId
    ],
    ids=["exchange-uid", "external-uid"],
)
def test_a_series_with_an_exception_seen_in_graph_and_as_an_invite_is_one_meeting(
    cli: Cli,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    app: App,
    uid: str,
) -> None:
    organizer = new_mailbox(graph, tenant)
    attendee = new_mailbox(graph, tenant)
    start = (datetime.now(UTC) + timedelta(days=14)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    people = {"bob@client0.example": ("Bob Stone", "accepted"), attendee: ("Anna", "accepted")}
    series = graph.add_event(
        organizer,
        subject="Weekly supply review",
        start=start,
        organizer=("Olga", organizer),
        attendees=people,
        recurrence={
            "pattern": {
                "type": "weekly",
                "interval": 1,
                "daysOfWeek": [start.strftime("%A").lower()],
            },
            "range": {"type": "numbered", "numberOfOccurrences": 6},
        },
        ical_uid=uid,
        online_url="https://teams.example/l/meetup-join/1",
    )
    moved = start + timedelta(days=7)
    graph.change_occurrence(organizer, series, moved, start=moved + timedelta(hours=2))
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
        graph.deliver(
            attendee,
            calendar_email(
                calendar,
                sender=organizer,
                to=[attendee, "bob@client0.example"],
                subject="Weekly supply review",
                date=datetime.now(UTC) - timedelta(days=20 - n),
            ),
        )
    link(cli, organizer, tenant, app, "--folders", "inbox")
    link(cli, attendee, tenant, app, "--folders", "inbox", "--no-calendar")
    poll(cli, db)
    with db.session() as session:
        keys = sorted(session.scalars(select(Activity.identity).where(Activity.kind == "meeting")))
        rule = session.scalar(select(Meeting.rrule).where(Meeting.recurrence_key == ""))
    assert keys == [
        f"ical:{uid}|",
        f"ical:{uid}|{moved.astimezone(UTC):%Y%m%dT%H%M%SZ}",
    ], "one series and its one moved occurrence, whichever mailbox saw them"
    assert rule is not None and "FREQ=WEEKLY" in rule and "COUNT=6" in rule
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
        "each meeting seen in the organizer's calendar (Graph) and the attendee's invites"
    )


def test_a_lost_calendar_state_resyncs_without_duplicate_meetings(
    cli: Cli,
    db: Database,
    graph: GraphEmulator,  # noqa: F811
    tenant: Tenant,
    app: App,
) -> None:
    owner = new_mailbox(graph, tenant)
    start = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    people = {"bob@client0.example": ("Bob Stone", "accepted")}
    single = graph.add_event(
        owner, subject="Pricing call", start=start, organizer=("Anna", owner), attendees=people
    )
    graph.add_event(
        owner, subject="Quarterly review", start=start + timedelta(days=1), organizer=("Anna", owner),
        attendees=people, recurrence={
            "pattern": {"type": "daily", "interval": 7},
            "range": {"type": "numbered", "numberOfOccurrences": 3},
        },
    )  # fmt: skip
    link(cli, owner, tenant, app, "--folders", "inbox")
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
    assert len(first) == 2
    graph.update_event(
        owner, single, subject="Pricing call (moved)", start=start + timedelta(hours=1)
    )
    graph.fail_next_delta(owner, folder="calendar")
    poll(cli, db)
    assert the_link(db).status == "active", the_link(db).last_error
    assert graph.count("calendar_delta", status=410) == 1
    after = meetings()
    assert [i for i, _ in after] == [i for i, _ in first], "the same two meetings, no more"
    assert "Pricing call (moved)" in {s for _, s in after}
    with db.session() as session:
        live = session.scalar(
            select(func.count())
            .select_from(MailboxObservation)
            .where(MailboxObservation.folder == "Calendar", MailboxObservation.deleted_at.is_(None))
        )
    assert live == 2, "every event seen again after the resync"


# -- the pure parts -----------------------------------------------------------------------------


def test_the_request_budget_counts_batch_items(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.mail_ingest.sources import graph as source

    monkeypatch.setattr(source, "RATE_LIMIT", 30)
    budget = source._Budget()
    assert budget.wait_time("m", 0.0, 20) == 0.0
    assert budget.wait_time("m", 1.0, 10) == 0.0
    assert budget.wait_time("m", 2.0, 1) == pytest.approx(598.0), "the first 20 must expire"
    assert budget.wait_time("other", 2.0, 30) == 0.0, "per mailbox"
    assert budget.wait_time("m", 600.5, 15) == 0.0


@pytest.mark.parametrize(
    ("failure", "kind", "words"),
    [
        (GraphFailure(401, "InvalidAuthenticationToken", "expired"), AuthExpired, "access token"),
        (GraphFailure(403, "ErrorAccessDenied", "Access is denied."), PermissionDenied, "consent"),
        (
            GraphFailure(
                403,
                "ErrorAccessDenied",
                "Blocked by tenant configured AppOnly AccessPolicy settings.",
            ),
            PermissionDenied,
            "application access policy",
        ),
        (
            GraphFailure(404, "ErrorInvalidUser", "invalid", mailbox="x@y.z"),
            PermissionDenied,
            "no mailbox x@y.z",
        ),
        (GraphFailure(404, "MailboxNotEnabledForRESTAPI", "x"), PermissionDenied, "unlicensed"),
        (GraphFailure(410, "syncStateNotFound", "gone"), CursorInvalid, "expired"),
        (GraphFailure(429, "ApplicationThrottled", "slow", 3.0), Throttled, "slow down"),
        (GraphFailure(503, "ServiceUnavailable", ""), Temporary, "not available"),
        (GraphFailure(503, "ServiceUnavailable", "", 7.0), Throttled, "slow down"),
        (GraphFailure(504, "UnknownError", ""), Temporary, "not available"),
        (GraphFailure(400, "BadRequest", "odd"), PermissionDenied, "refused a request"),
        (GraphFailure(exception=ConnectionRefusedError("refused")), Temporary, "cannot reach"),
    ],
)
def test_graph_errors_map_to_our_kinds(failure: GraphFailure, kind: type, words: str) -> None:
    error = classify_graph_error(failure)
    assert type(error) is kind
    assert words in error.message
    if failure.retry_after is not None:
        assert isinstance(error, Throttled) and error.retry_after == failure.retry_after


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            GraphFailure(403, "ErrorAccessDenied", "Access is denied."),
            ("graph_consent", "client_id"),
        ),
        (
            GraphFailure(
                403,
                "ErrorAccessDenied",
                "[RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.",
            ),
            ("graph_policy", "mailbox"),
        ),
        (GraphFailure(404, "ErrorInvalidUser", "invalid"), ("graph_mailbox", "mailbox")),
        (GraphFailure(404, "MailboxNotEnabledForRESTAPI", ""), ("graph_mailbox", "mailbox")),
        (GraphFailure(401, "InvalidAuthenticationToken", ""), ("graph_token_refused", "client_id")),
        (GraphFailure(429, "ApplicationThrottled", "", 5.0), ("graph_throttled", "host")),
        (GraphFailure(exception=ConnectionRefusedError("no")), ("graph_unreachable", "host")),
        (GraphFailure(503, "ServiceUnavailable", ""), ("graph_unavailable", "host")),
    ],
)
def test_link_test_failures_name_the_setting_to_fix(
    error: GraphFailure, expected: tuple[str, str]
) -> None:
    assert graph_failure_kind(classify_graph_error(error)) == expected
    missing = PermissionDenied("folder 'Nowhere' does not exist in the mailbox")
    assert graph_failure_kind(missing) == ("graph_folder", "folders")


def test_retry_after_reads_seconds_fractions_and_dates() -> None:
    now = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after("Tue, 01 Sep 2026 09:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_json_items_key_and_route_like_parsed_mail() -> None:
    data = {
        "id": "AAMk1",
        "internetMessageId": "<Abc@Client.Example>",
        "conversationId": "AAQk9",
        "subject": "Re: Offer",
        "from": {"emailAddress": {"name": "Bob", "address": "Bob@Client.example"}},
        "sender": {"emailAddress": {"name": "Bob", "address": "bob@client.example"}},
        "toRecipients": [{"emailAddress": {"name": "anna@x.example", "address": "anna@x.example"}}],
        "sentDateTime": "2026-09-01T09:00:00Z",
        "internetMessageHeaders": [
            {"name": "List-Id", "value": "<news.client.example>"},
            {"name": "Received", "value": "from a by b"},
            {"name": "In-Reply-To", "value": "<first@x.example>"},
        ],
    }
    item = mail_item_from_json(data, "Inbox", want_subject=False)
    assert item.message_id == "Abc@Client.Example" and item.subject == ""
    assert [(p.role, p.address, p.name) for p in item.participants] == [
        ("from", "bob@client.example", "Bob"),
        ("to", "anna@x.example", ""),
    ]
    assert item.headers == {"list-id": "<news.client.example>"}
    assert item.in_reply_to == ["first@x.example"]
    assert item.date == datetime(2026, 9, 1, 9, 0, tzinfo=UTC)


def test_series_uids_come_out_of_exchange_global_object_ids() -> None:
    prefix = "040000008200E00074C5B7101A82E008"
    own = prefix + "00000000" + "C0FFEE00" * 2 + "00" * 8 + "10000000" + "AB" * 16
    occurrence = prefix + "07EA090E" + own[40:]
    assert series_uid(own) == own and series_uid(occurrence) == own
    data = b"vCal-Uid" + b"\x01\x00\x00\x00" + b"abc@google.com\x00"
    wrapped = prefix + "00" * 20 + len(data).to_bytes(4, "little").hex() + data.hex()
    assert series_uid(wrapped.upper()) == "abc@google.com"
    assert series_uid("not-hex@example.com") == "not-hex@example.com"


def test_recurrence_patterns_become_rrules() -> None:
    weekly = {
        "pattern": {"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "thursday"]},
        "range": {"type": "endDate", "endDate": "2026-12-31"},
    }
    assert recurrence_rule(weekly) == "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;UNTIL=20261231T235959Z"
    monthly = {
        "pattern": {"type": "relativeMonthly", "daysOfWeek": ["friday"], "index": "last"},
        "range": {"type": "numbered", "numberOfOccurrences": 3},
    }
    assert recurrence_rule(monthly) == "FREQ=MONTHLY;BYDAY=-1FR;COUNT=3"
    assert recurrence_rule(None) is None


def test_an_exception_is_keyed_by_the_series_uid_and_its_original_start() -> None:
    event = {
        "id": "AAMkE",
        "type": "exception",
        "iCalUId": "per-occurrence",
        "seriesMasterId": "AAMkM",
        "originalStart": "2026-09-14T09:00:00Z",
        "start": {"dateTime": "2026-09-14T11:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-09-14T11:30:00.0000000", "timeZone": "UTC"},
        "originalStartTimeZone": "W. Europe Standard Time",
        "organizer": {"emailAddress": {"name": "Olga", "address": "olga@x.example"}},
        "attendees": [
            {"type": "required", "status": {"response": "none"},
             "emailAddress": {"name": "Anna", "address": "anna@x.example"}},
            {"type": "resource", "status": {"response": "accepted"},
             "emailAddress": {"name": "Room 1", "address": "room1@x.example"}},
        ],
        "responseStatus": {"response": "tentativelyAccepted"},
        "isCancelled": True,
        "onlineMeeting": {"joinUrl": "https://teams.example/j/1"},
    }  # fmt: skip
    item = calendar_item_from_json(event, uid="SERIES", owner="anna@x.example", occurrence=True)
    assert (item.uid, item.recurrence_id) == ("SERIES", datetime(2026, 9, 14, 9, 0, tzinfo=UTC))
    assert item.time_zone == "Europe/Berlin" and item.start is not None
    assert item.start.astimezone(UTC) == datetime(2026, 9, 14, 11, 0, tzinfo=UTC)
    assert item.status == "cancelled" and item.online_meeting_url.startswith("https://teams")
    assert [(p.role, p.address, p.response) for p in item.participants] == [
        ("organizer", "olga@x.example", None),
        ("attendee", "anna@x.example", "tentative"),
    ], "rooms are not people; the owner's own answer comes from responseStatus"
