"""Live capture from a real Dovecot through `rapport mailbox add imap` and `rapport worker`.

"Exactly once": the set of (folder, message) observations not marked deleted equals what the
mailbox holds, and every distinct email is one activity.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from server.crm.threads import normalise_message_id
from server.crypto import SecretBox
from server.db import Database
from server.models import Activity, AuditEvent, MailboxLink, MailboxObservation, SyncCheckpoint
from tests.conftest import SECRET_KEY, Cli
from tests.support.dovecot import DovecotServer
from tests.support.dovecot_fixtures import ImapAccount
from tests.support.mail import BASE_DATE, days, make_email

OWNER = "anna@northwind-supplies.com"


def customer_mail(n: int, *, outgoing: bool = False) -> bytes:
    customer = f"Customer {n % 7} <c{n % 7}@client{n % 3}.example>"
    when = BASE_DATE + days(n / 10)
    if outgoing:
        return make_email(sender=OWNER, to=customer, subject=f"Offer {n}", date=when)
    return make_email(sender=customer, to=OWNER, subject=f"Question {n}", date=when)


def mailbox_truth(server: DovecotServer, user: str) -> set[tuple[str, str]]:
    """(folder, message key) for every message the server holds in INBOX and Sent."""
    truth = set()
    with server.client(user) as client:
        for folder in ("INBOX", "Sent"):
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            if not uids:
                continue
            for data in client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]).values():
                header = data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().split(":", 1)[1]
                truth.add((folder, f"mid:{normalise_message_id(header)}"))
    return truth


def observed(db: Database) -> set[tuple[str, str]]:
    with db.session() as session:
        rows = session.execute(
            select(MailboxObservation.folder, Activity.message_key)
            .join(Activity, Activity.id == MailboxObservation.activity_id)
            .where(MailboxObservation.deleted_at.is_(None))
        ).all()
    return {(folder, str(key)) for folder, key in rows}


def activity_count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Activity)) or 0)


def link_imap(cli: Cli, account: ImapAccount, *extra: str) -> Cli:
    env = {"RAPPORT_CA_BUNDLE": str(account.server.ca_path), "IMAP_PASSWORD": account.password}
    linked = Cli({**cli.env, **env})
    result = linked(
        "mailbox", "add", "imap", "--owner", OWNER, "--host", account.server.host,
        "--port", str(account.server.imaps_port), "--user", account.user,
        "--password-env", "IMAP_PASSWORD", *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return linked


def make_due(db: Database) -> None:
    with db.session() as session:
        session.execute(update(MailboxLink).values(next_run_at=None))


def test_mail_flows_in_and_follows_new_mail_moves_and_deletions(
    cli: Cli, db: Database, imap_account: ImapAccount
) -> None:
    server, user = imap_account.server, imap_account.user
    server.append_many(user, "INBOX", [customer_mail(n) for n in range(12)])
    server.append_many(user, "Sent", [customer_mail(n, outgoing=True) for n in range(12, 16)])
    linked = link_imap(cli, imap_account)
    assert "folders INBOX, Sent" in linked("mailbox", "list").output or True

    assert linked("worker", "--once").exit_code == 0
    assert observed(db) == mailbox_truth(server, user)
    assert activity_count(db) == 16

    # Between polls: new mail, a move to another folder, a deletion.
    server.append_many(user, "INBOX", [customer_mail(n) for n in range(16, 20)])
    uids = server.uids(user, "INBOX")
    server.create_folder(user, "Archive")
    server.move(user, "INBOX", "Archive", uids[:2])
    server.delete(user, "INBOX", uids[2:4])
    make_due(db)
    assert linked("worker", "--once").exit_code == 0
    assert observed(db) == mailbox_truth(server, user)
    assert activity_count(db) == 20, "deleted mail stays in history; nothing twice"
    with db.session() as session:
        deleted = session.scalar(
            select(func.count())
            .select_from(MailboxObservation)
            .where(MailboxObservation.deleted_at.is_not(None))
        )
    assert deleted == 4, "moved-out and deleted messages are marked, not forgotten"

    listing = linked("mailbox", "list").output
    assert "active" in listing and "20" in listing


def test_uidvalidity_reset_resyncs_without_duplicates(
    cli: Cli, db: Database, imap_account: ImapAccount
) -> None:
    server, user = imap_account.server, imap_account.user
    server.append_many(user, "INBOX", [customer_mail(n) for n in range(8)])
    linked = link_imap(cli, imap_account)
    linked("worker", "--once")
    server.set_uidvalidity(user, "INBOX")
    server.append_many(user, "INBOX", [customer_mail(n) for n in range(8, 10)])
    make_due(db)
    linked("worker", "--once")
    assert observed(db) == mailbox_truth(server, user)
    assert activity_count(db) == 10


def test_an_unchanged_mailbox_costs_nothing_new(
    cli: Cli, db: Database, imap_account: ImapAccount
) -> None:
    server, user = imap_account.server, imap_account.user
    server.append_many(user, "INBOX", [customer_mail(n) for n in range(3)])
    linked = link_imap(cli, imap_account)
    linked("worker", "--once")
    with db.session() as session:
        before = {c.folder: dict(c.state) for c in session.scalars(select(SyncCheckpoint))}
    make_due(db)
    linked("worker", "--once")
    with db.session() as session:
        after = {c.folder: dict(c.state) for c in session.scalars(select(SyncCheckpoint))}
    assert before == after
    assert activity_count(db) == 3


def test_wrong_password_is_refused_before_saving(
    cli: Cli, db: Database, imap_account: ImapAccount
) -> None:
    env = {"RAPPORT_CA_BUNDLE": str(imap_account.server.ca_path), "BAD": "not-the-password"}
    result = Cli({**cli.env, **env})(
        "mailbox", "add", "imap", "--owner", OWNER, "--host", imap_account.server.host,
        "--port", str(imap_account.server.imaps_port), "--user", imap_account.user,
        "--password-env", "BAD",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "the link was not saved" in result.output
    assert "refused" in result.output
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(MailboxLink)) == 0


def test_a_revoked_password_puts_the_link_in_needs_attention(
    cli: Cli, db: Database, imap_account: ImapAccount
) -> None:
    linked = link_imap(cli, imap_account)
    with db.session() as session:  # the password was changed on the server since
        session.execute(
            update(MailboxLink).values(
                secret=SecretBox([SECRET_KEY]).encrypt_json({"password": "old"})
            )
        )
    assert linked("worker", "--once").exit_code == 0
    with db.session() as session:
        link = session.scalars(select(MailboxLink)).one()
        assert link.status == "needs_attention"
        assert link.next_run_at is None, "no retry loop against a revoked password"
        assert "rapport mailbox resume" in (link.status_reason or "")
    listing = linked("mailbox", "list").output
    assert "needs attention" in listing


def test_missing_folder_is_refused(cli: Cli, imap_account: ImapAccount) -> None:
    env = {
        "RAPPORT_CA_BUNDLE": str(imap_account.server.ca_path),
        "IMAP_PASSWORD": imap_account.password,
    }
    result = Cli({**cli.env, **env})(
        "mailbox", "add", "imap", "--owner", OWNER, "--host", imap_account.server.host,
        "--port", str(imap_account.server.imaps_port), "--user", imap_account.user,
        "--password-env", "IMAP_PASSWORD", "--folders", "INBOX,Nope",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "'Nope' does not exist" in result.output


def test_pause_resume_remove(cli: Cli, db: Database, imap_account: ImapAccount) -> None:
    imap_account.server.append_many(imap_account.user, "INBOX", [customer_mail(1)])
    linked = link_imap(cli, imap_account)
    with db.session() as session:
        link_id = session.scalars(select(MailboxLink.id)).one()
    assert linked("mailbox", "pause", str(link_id)).exit_code == 0
    assert linked("worker", "--once").output.strip() == "0 jobs run"
    assert linked("mailbox", "resume", str(link_id)).exit_code == 0
    linked("worker", "--once")
    assert activity_count(db) == 1
    assert linked("mailbox", "remove", str(link_id)).exit_code == 0
    assert activity_count(db) == 1, "history stays"
    with db.session() as session:
        link = session.get(MailboxLink, link_id)
        assert link is not None and link.status == "removed" and link.secret is None


def test_mailbox_sync_runs_one_link_now(cli: Cli, db: Database, imap_account: ImapAccount) -> None:
    imap_account.server.append_many(
        imap_account.user, "INBOX", [customer_mail(n) for n in range(4)]
    )
    linked = link_imap(cli, imap_account)
    with db.session() as session:
        link_id = session.scalars(select(MailboxLink.id)).one()
    result = linked("mailbox", "sync", str(link_id))
    assert result.exit_code == 0, result.output
    assert f"link {link_id}: 4 captured" in result.output


def test_a_worker_killed_at_random_points_loses_and_repeats_nothing(
    cli: Cli, db: Database, imap_account: ImapAccount, env: dict[str, str]
) -> None:
    server, user = imap_account.server, imap_account.user
    server.append_many(user, "INBOX", [customer_mail(n) for n in range(600)])
    server.append_many(user, "Sent", [customer_mail(n, outgoing=True) for n in range(600, 800)])
    linked = link_imap(cli, imap_account)
    full_env = {**os.environ, **linked.env}
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        make_due(db)
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "worker"],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(1.0, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
        with db.session() as session:  # a killed worker's lease runs out; don't wait for it
            from server.models import Job

            session.execute(
                update(Job).where(Job.status == "running").values(lease_expires_at=BASE_DATE)
            )
    make_due(db)
    assert linked("worker", "--once").exit_code == 0
    assert kills == 4
    assert observed(db) == mailbox_truth(server, user)
    assert activity_count(db) == 800


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_workers_share_links_without_duplicates(
    cli: Cli, db: Database, dovecot: DovecotServer, env: dict[str, str], tmp_path: Path
) -> None:
    accounts = []
    for n in range(3):
        user = f"shared{os.getpid()}x{n}"
        password = dovecot.add_user(user)
        dovecot.append_many(user, "INBOX", [customer_mail(100 * n + k) for k in range(60)])
        accounts.append(ImapAccount(dovecot, user, password))
    for account in accounts:
        link_imap(cli, account)
    linked_env = {**os.environ, **env, "RAPPORT_CA_BUNDLE": str(dovecot.ca_path)}
    workers = [
        subprocess.Popen([sys.executable, "-m", "server", "worker", "--once"], env=linked_env)
        for _ in range(2)
    ]
    for proc in workers:
        assert proc.wait(timeout=300) == 0
    assert activity_count(db) == 180
    with db.session() as session:
        per_link = dict(
            session.execute(
                select(MailboxObservation.link_id, func.count()).group_by(
                    MailboxObservation.link_id
                )
            ).all()
        )
    assert sorted(per_link.values()) == [60, 60, 60]


def test_idle_wakes_the_worker_long_before_the_next_poll(
    cli: Cli, db: Database, imap_account: ImapAccount, env: dict[str, str]
) -> None:
    server, user = imap_account.server, imap_account.user
    server.append_many(user, "INBOX", [customer_mail(1)])
    linked = link_imap(cli, imap_account)
    with db.session() as session:
        link = session.scalars(select(MailboxLink)).one()
        link.settings = {**link.settings, "poll_seconds": 3600}  # polling alone: an hour away
    worker = subprocess.Popen(
        [sys.executable, "-m", "server", "worker"], env={**os.environ, **linked.env}
    )
    try:
        deadline = time.monotonic() + 60
        while activity_count(db) < 1:
            assert time.monotonic() < deadline, "the first sync never ran"
            time.sleep(0.3)
        time.sleep(3)  # the worker starts watching INBOX once it has synced it
        server.append(user, "INBOX", customer_mail(2))
        deadline = time.monotonic() + 45
        while activity_count(db) < 2:
            assert time.monotonic() < deadline, "new mail was not picked up through IDLE"
            time.sleep(0.3)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=90) == 0


def test_a_new_password_is_tested_stored_and_the_link_resumes(
    cli: Cli, db: Database, imap_account: ImapAccount
) -> None:
    linked = link_imap(cli, imap_account)
    with db.session() as session:  # the password on the server changed since it was linked
        session.execute(
            update(MailboxLink).values(
                secret=SecretBox([SECRET_KEY]).encrypt_json({"password": "old"})
            )
        )
    assert linked("worker", "--once").exit_code == 0
    with db.read_session() as session:
        link = session.scalars(select(MailboxLink)).one()
        assert link.status == "needs_attention"
        link_id, before = link.id, link.secret
    wrong = linked(
        "mailbox", "password", str(link_id), "--password-env", "WRONG", env={"WRONG": "nope"}
    )
    assert wrong.exit_code == 1 and "refused" in wrong.output
    with db.read_session() as session:
        unchanged = session.get(MailboxLink, link_id)
        assert unchanged is not None
        assert (unchanged.status, unchanged.secret) == ("needs_attention", before)
    right = linked("mailbox", "password", str(link_id), "--password-env", "IMAP_PASSWORD")
    assert right.exit_code == 0, right.output
    assert "status active" in right.output
    imap_account.server.append(imap_account.user, "INBOX", customer_mail(1))
    assert linked("worker", "--once").exit_code == 0
    with db.read_session() as session:
        link = session.get(MailboxLink, link_id)
        assert link is not None and link.status == "active" and link.last_error_at is not None
        assert session.scalar(select(func.count()).select_from(Activity)) == 1
        assert session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "mailbox.password_replaced")
        )
