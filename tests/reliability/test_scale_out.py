"""Scale-out on PostgreSQL: two `rapport serve` (gunicorn, 2 processes each) and two
`rapport worker` against one database, one of each killed with SIGKILL mid-way.

Four Microsoft 365 mailboxes (the Graph emulator, 20 ms added per request so sync waits on the
network as in production) and one IMAP mailbox (Dovecot) hold the same mail, so the workers
race to capture the same messages; meanwhile four task panes look people up, create contacts
and notes, and log emails — some of which the workers are capturing at that moment — through a
balancer over both servers. The worker holding a sync is killed a third of the way through and
its lease left to expire (as after five minutes); the other worker finishes. One server is
killed at the same moment; the other must answer every request throughout.

Afterwards: every message is seen once per mailbox and is one activity, no sync job is lost,
every acknowledged write is in the database exactly once, and the survivor had no errors.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from server.crm.threads import normalise_message_id
from server.db import Database
from server.models import Activity, Contact, ContactEmail, Job, MailboxLink
from tests.conftest import Cli
from tests.emulators.fixtures import identity, identity_server  # noqa: F401
from tests.emulators.graph import GraphEmulator, graph, graph_server  # noqa: F401
from tests.emulators.identity import IdentityEmulator
from tests.integration.test_api_lookup import token_for
from tests.reliability import scale
from tests.reliability.corpus_mail import message_key, messages
from tests.reliability.crash import PAST, assert_each_message_once, captured_count, link_id_of
from tests.reliability.fleet import Process, Server, Traffic, pane_email
from tests.support.dovecot_fixtures import ImapAccount

MESSAGES = 100
GRAPH_MAILBOXES = 4
GRAPH_DELAY = 0.02
CLIENTS = 4
# A guard against a hang, not a speed check: the whole test took 82 s in CI while the other
# test process ran schemathesis beside it (22 s alone).
SYNC_TIMEOUT = 180.0
SECRET = "gR8Q~scaleOutGraphSecret.0123456789abcdef"
DOMAIN = "northwind-supplies.com"
GRAPH_FOLDERS = {"INBOX": ("inbox", "Inbox"), "Sent": ("sentitems", "Sent Items")}
_runs = itertools.count()


def sync_jobs(db: Database) -> Counter[str]:
    with db.read_session() as session:
        rows = session.execute(
            select(Job.status, func.count()).where(Job.kind == "sync_link").group_by(Job.status)
        ).all()
    return Counter({str(status): int(n) for status, n in rows})


def jobs_held_by(db: Database, pid: int) -> list[int]:
    with db.read_session() as session:
        return list(
            session.scalars(
                select(Job.id).where(
                    Job.kind == "sync_link",
                    Job.status == "running",
                    Job.lease_owner.like(f"%:{pid}"),
                )
            )
        )


def expire_leases_of(db: Database, pid: int) -> None:
    """The killed worker's leases run out (they would after five minutes)."""
    with db.session() as session:
        session.execute(
            update(Job)
            .where(Job.status == "running", Job.lease_owner.like(f"%:{pid}"))
            .values(lease_expires_at=PAST)
        )


@pytest.mark.parametrize("backend", ["postgresql"])
def test_two_servers_and_two_workers_lose_and_repeat_nothing_when_one_of_each_dies(
    cli: Cli,
    db: Database,
    env: dict[str, str],
    graph: GraphEmulator,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    imap_account: ImapAccount,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    # -- the mail: one corpus in every mailbox -------------------------------------------------
    corpus = messages(tmp_path, count=MESSAGES, seed=31)
    tenant = identity.add_tenant()
    app = graph.graph_app(tenant, secret=SECRET)
    run = f"{os.getpid()}x{next(_runs)}"
    owners = [f"staff{i}-{run}@{DOMAIN}" for i in range(GRAPH_MAILBOXES)]
    imap_owner = f"imap-{run}@{DOMAIN}"
    server = imap_account.server
    cas = tmp_path / "ca-bundle.pem"  # the emulators' CA and Dovecot's
    cas.write_text(Path(graph.env()["RAPPORT_CA_BUNDLE"]).read_text() + server.ca_path.read_text())
    linked = {
        **env,
        **graph.env(),
        "GRAPH_SECRET": SECRET,
        "IMAP_PASSWORD": imap_account.password,
        "RAPPORT_CA_BUNDLE": str(cas),
        "RAPPORT_RATE_LIMIT_PER_MINUTE": "100000",
    }
    for owner in owners:
        graph.add_mailbox(tenant, owner)
        for folder, raw in corpus:
            graph.deliver(owner, raw, GRAPH_FOLDERS[folder][0])
        result = Cli(linked)(
            "mailbox", "add", "graph", "--owner", owner, "--tenant", tenant.id,
            "--client-id", app.client_id, "--client-secret-env", "GRAPH_SECRET",
            "--folders", "inbox,sentitems", "--no-calendar", "--since", "2000-01-01",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    for folder in ("INBOX", "Sent"):
        server.append_many(imap_account.user, folder, [raw for f, raw in corpus if f == folder])
    result = Cli(linked)(
        "mailbox", "add", "imap", "--owner", imap_owner, "--host", server.host,
        "--port", str(server.imaps_port), "--user", imap_account.user,
        "--password-env", "IMAP_PASSWORD", "--folders", "INBOX,Sent", "--since", "2000-01-01",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected_graph = Counter((GRAPH_FOLDERS[f][1], message_key(raw)) for f, raw in corpus)
    expected_imap = Counter((f, message_key(raw)) for f, raw in corpus)
    links = {link_id_of(db, owner, "graph"): expected_graph for owner in owners}
    links[link_id_of(db, imap_owner, "imap")] = expected_imap
    total = sum(sum(expected.values()) for expected in links.values())

    def progress() -> int:
        """Messages the mailbox links have seen (the pane's own link aside)."""
        return sum(captured_count(db, link) for link in links)

    with db.session() as session:  # every link due now
        session.execute(update(MailboxLink).values(next_run_at=None))

    # -- the fleet -----------------------------------------------------------------------------
    tokens = [token_for(db, f"user{i}-{run}@{DOMAIN}") for i in range(CLIENTS)]
    shared = [e for e in map(pane_email, (raw for _, raw in corpus)) if e is not None][::5]
    senders = sorted({str(e.payload["from"]["address"]) for e in shared})
    logs = tmp_path / "logs"
    logs.mkdir()
    servers: list[Server] = []
    workers: list[Process] = []
    traffic: Traffic | None = None
    try:
        servers = [Server(name, linked, logs) for name in ("serve-a", "serve-b")]
        for each in servers:
            each.wait_healthy()
        traffic = Traffic({s.name: s.url for s in servers}, tokens, senders, shared)
        traffic.start()
        graph.delay = GRAPH_DELAY
        workers = [Process(f"worker-{i}", ["worker"], linked, logs) for i in range(2)]
        deadline = time.monotonic() + SYNC_TIMEOUT

        # -- a third of the way: kill the worker holding a sync, and one server ----------------
        victim: Process | None = None
        held: list[int] = []
        while not held:
            assert time.monotonic() < deadline, "no worker ever held a sync"
            assert all(w.alive() for w in workers), [w.tail() for w in workers]
            if progress() >= total // 3 and traffic.served_since(servers[1].name, 0) >= 5:
                victim = next((w for w in workers if jobs_held_by(db, w.pid)), None)
            if victim is not None:
                victim.pause()  # frozen, so what it holds cannot change before the kill
                held = jobs_held_by(db, victim.pid)
                if not held:
                    victim.resume()
            time.sleep(0.05)
        assert victim is not None
        victim.kill()
        killed_at = time.monotonic()  # serve-b's clients may see it die before kill() returns
        servers[1].kill()
        captured_at_kill = progress()
        expire_leases_of(db, victim.pid)
        survivor = next(w for w in workers if w is not victim)

        # -- the survivors finish --------------------------------------------------------------
        deadline = time.monotonic() + SYNC_TIMEOUT
        while progress() < total or sync_jobs(db)["running"]:
            assert survivor.alive(), survivor.tail()
            assert time.monotonic() < deadline, f"stuck at {progress()} of {total}"
            time.sleep(0.1)
        while traffic.served_since(servers[0].name, killed_at) < 20:  # served after the kill
            assert time.monotonic() < deadline, "the surviving server stopped answering"
            time.sleep(0.05)
    finally:
        graph.delay = 0.0
        if traffic is not None:
            traffic.stop()
        stopped = {p.name: p.stop() for p in [*workers, *servers] if p.alive()}
    assert stopped == {survivor.name: 0, servers[0].name: 0}, [p.tail() for p in workers]
    sync_seconds = time.monotonic() - started

    # -- every message exactly once; no sync job lost -------------------------------------------
    checked = sum(assert_each_message_once(db, link, expected) for link, expected in links.items())
    jobs = sync_jobs(db)
    assert jobs["running"] == jobs["dead"] == jobs["failed"] == 0, jobs
    with db.read_session() as session:
        taken_over = session.execute(select(Job.status, Job.attempts).where(Job.id.in_(held))).all()
        assert taken_over and all(status == "done" for status, _ in taken_over), taken_over
        synced = session.scalars(
            select(func.count()).where(MailboxLink.last_success_at.is_not(None))
        ).one()
        assert synced >= len(links)

    # -- every acknowledged write is in the database exactly once --------------------------------
    answers = traffic.answers
    acknowledged = [a for a in answers if a.ok and a.kind != "lookup"]
    unanswered = [a for a in answers if a.status is None and a.kind != "lookup"]
    with db.read_session() as session:
        for answer in [*acknowledged, *unanswered]:
            assert answer.sent is not None
            if answer.kind == "contact":
                found = session.scalars(
                    select(ContactEmail.contact_id).where(
                        ContactEmail.address == answer.sent["emails"][0]
                    )
                ).all()
            elif answer.kind == "note":
                found = session.scalars(
                    select(Activity.id).where(
                        Activity.kind == "note", Activity.body_text == answer.sent["body"]
                    )
                ).all()
            else:
                key = f"mid:{normalise_message_id(answer.sent['message_id'])}"
                found = session.scalars(
                    select(Activity.id).where(Activity.message_key == key, Activity.kind == "email")
                ).all()
            if answer.ok:
                assert answer.body is not None
                own_id = (
                    answer.body["activity"]["id"] if answer.kind == "log" else answer.body["id"]
                )
                assert found == [own_id], (answer, found)
            else:  # no answer: the write may or may not have happened, but never twice
                assert len(found) <= 1, (answer, found)
        contacts = session.scalar(
            select(func.count()).select_from(Contact).where(Contact.name.like("Client %"))
        )
    made = sum(1 for a in acknowledged if a.kind == "contact")
    maybe = sum(1 for a in unanswered if a.kind == "contact")
    assert made <= (contacts or 0) <= made + maybe, (contacts, made, maybe)

    # -- the surviving server answered throughout; only the killed one's in-flight requests failed
    survivor_errors = [a for a in answers if a.server == servers[0].name and not a.ok]
    assert survivor_errors == [], survivor_errors[:5]
    killed_errors = [a for a in answers if a.server == servers[1].name and not a.ok]
    assert all(a.status is None and a.at >= killed_at for a in killed_errors), killed_errors[:5]
    assert len(killed_errors) <= CLIENTS, killed_errors
    kinds = Counter(a.kind for a in acknowledged)
    assert min(kinds[k] for k in ("contact", "note", "log")) > 0, kinds
    assert sum(a.server == servers[1].name and a.ok for a in answers) > 0, "serve-b never served"

    scale.record(
        "scale-out",
        "2 serve + 2 workers on PostgreSQL, one of each killed",
        mailboxes=len(links),
        messages_checked=checked,
        captured_at_kill=captured_at_kill,
        sync_jobs_taken_over=len(held),
        worker_kills=1,
        server_kills=1,
        requests=len(answers),
        requests_survivor=sum(a.server == servers[0].name for a in answers),
        survivor_errors=len(survivor_errors),
        failed_in_flight_to_killed=len(killed_errors),
        writes_acknowledged=len(acknowledged),
        writes_unanswered=len(unanswered),
        seconds=round(sync_seconds),
        lost=0,
        duplicated=0,
    )
