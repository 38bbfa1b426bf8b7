"""The SMTP drop address of a real `rapport worker` under 20 concurrent senders, with the worker
killed (SIGKILL) in the middle of it and started again, on SQLite and PostgreSQL.

Each of the 20 clients sends 10 messages: most to one of two live drop addresses, some again
(a message another client already sent), some to a revoked address, and one far over the size
limit. Like a real sending server, a client whose connection breaks before it read the 250 sends
the message again later. In the end every message acknowledged with 250 is captured exactly
once, for the right owner; every refusal has its code (550 revoked, 552 too large) and nothing
refused is captured. The drop job is stored before the 250, so the kill loses nothing.
"""

from __future__ import annotations

import smtplib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from server.db import Database
from server.models import Activity, Job, MailboxLink, MailboxObservation
from tests.conftest import Cli
from tests.reliability import scale
from tests.reliability.corpus_mail import message_key
from tests.reliability.crash import expire_killed_leases
from tests.reliability.faults import WorkerProcess, episodes, wait_until
from tests.support.mail import make_email
from tests.support.postgres import free_port

DOMAIN = "in.northwind-supplies.com"
OWNERS = ("anna@northwind-supplies.com", "ben@northwind-supplies.com")
CLIENTS = 20
PER_CLIENT = 10
OVERSIZE = 26 * 1024 * 1024  # over the worker's 25 MB limit
RETRY_FOR = 90.0


@dataclass
class Outcomes:
    """What the sending side was told, message by message."""

    accepted: dict[str, str] = field(default_factory=dict)  # message key -> drop address
    refused: Counter[int] = field(default_factory=Counter)  # SMTP code -> messages
    refused_keys: set[str] = field(default_factory=set)
    resent: int = 0
    errors: list[str] = field(default_factory=list)  # a sender's unexpected answer
    lock: threading.Lock = field(default_factory=threading.Lock)


def add_drop(cli: Cli, owner: str) -> tuple[int, str]:
    result = cli("mailbox", "add", "drop", "--owner", owner)
    assert result.exit_code == 0, result.output
    link_id = int(result.output.split("mailbox link ")[1].split(":")[0])
    return link_id, result.output.strip().splitlines()[-1]


def send_until_answered(
    port: int, rcpt: str, raw: bytes, outcomes: Outcomes, key: str, *, expect: int | None = None
) -> None:
    """Send as a mail server does: a broken connection or a 4xx means try again later."""
    deadline = time.monotonic() + RETRY_FOR
    while True:
        try:
            with smtplib.SMTP(
                "127.0.0.1", port, local_hostname="mx.sender.example", timeout=30
            ) as smtp:
                smtp.sendmail("sender@customer.example", [rcpt], raw)
        except smtplib.SMTPRecipientsRefused as refused:
            code = refused.recipients[rcpt][0]
        except smtplib.SMTPSenderRefused as refused:
            code = refused.smtp_code
        except smtplib.SMTPDataError as refused:
            code = refused.smtp_code
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError):
            code = 421
        else:
            code = 250
        if code < 400 or code >= 500:
            break
        assert time.monotonic() < deadline, f"{key}: no final answer within {RETRY_FOR} s"
        with outcomes.lock:
            outcomes.resent += 1
        time.sleep(0.2)
    assert expect is None or code == expect, f"{key}: {code}, expected {expect}"
    with outcomes.lock:
        if code == 250:
            outcomes.accepted[key] = rcpt
        else:
            outcomes.refused[code] += 1
            outcomes.refused_keys.add(key)


def test_concurrent_senders_and_a_killed_worker_lose_and_duplicate_nothing(
    db: Database, env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    drop_env = {**env, "RAPPORT_DROP_DOMAIN": DOMAIN, "RAPPORT_DROP_LISTEN": f"127.0.0.1:{port}"}
    cli = Cli(drop_env)
    links = dict(add_drop(cli, owner) for owner in OWNERS)
    revoked_link, revoked = add_drop(cli, "carl@northwind-supplies.com")
    assert cli("mailbox", "rotate", str(revoked_link)).exit_code == 0
    live = list(links.values())
    worker = WorkerProcess(drop_env, tmp_path / "worker.log")
    outcomes = Outcomes()
    totals: Counter[str] = Counter()
    rounds = episodes(1)
    try:
        worker.start()
        wait_until(lambda: _listening(port), "the drop listener")
        for episode in range(1, rounds + 1):
            plan = _plan(episode, live, revoked)
            threads = [
                threading.Thread(target=_client, args=(port, messages, outcomes), daemon=True)
                for messages in plan
            ]
            kill_at = len(outcomes.accepted) + 60
            for thread in threads:
                thread.start()
            wait_until(lambda n=kill_at: len(outcomes.accepted) >= n, "60 messages acknowledged")
            worker.kill()  # right after acknowledging: the stored jobs must survive
            totals["kills"] += 1
            expire_killed_leases(db)
            worker.start()
            for thread in threads:
                thread.join(timeout=RETRY_FOR + 30)
                assert not thread.is_alive(), "a sender never got its answer"
            wait_until(lambda: _pending(db) == 0, "the drop jobs captured", timeout=120)
            totals["messages_sent"] += sum(len(m) for m in plan)
        assert worker.stop() == 0, worker.tail()
    finally:
        if worker.alive():
            worker.kill()
    assert outcomes.errors == []
    owner_link = {address: link_id for link_id, address in links.items()}
    with db.read_session() as session:
        per_key = Counter(session.scalars(select(Activity.message_key)))
        observed = session.execute(
            select(Activity.message_key, MailboxObservation.link_id, func.count())
            .join(MailboxObservation, MailboxObservation.activity_id == Activity.id)
            .group_by(Activity.message_key, MailboxObservation.link_id)
        ).all()
        carl_status = session.get(MailboxLink, revoked_link)
    assert carl_status is not None and carl_status.drop_token not in revoked
    assert set(per_key) == set(outcomes.accepted), "captured differs from what was accepted"
    assert max(per_key.values()) == 1, "a message captured twice"
    assert {(k, link, n) for k, link, n in observed} == {
        (key, owner_link[rcpt], 1) for key, rcpt in outcomes.accepted.items()
    }
    assert outcomes.refused == {550: 10 * rounds, 552: rounds}, outcomes.refused
    assert not outcomes.refused_keys & set(per_key)
    scale.record(
        "faults",
        f"SMTP drop, {CLIENTS} concurrent senders ({'sqlite' if db.is_sqlite else 'postgresql'})",
        **totals,
        accepted=len(outcomes.accepted),
        refused_550=outcomes.refused[550],
        refused_552=outcomes.refused[552],
        resent_after_a_broken_connection=outcomes.resent,
        messages_checked=len(outcomes.accepted) + sum(outcomes.refused.values()),
        lost=0,
        duplicated=0,
    )


Message = tuple[str, bytes, str, int | None]  # (drop address, bytes, message key, code expected)


def _plan(episode: int, live: list[str], revoked: str) -> list[list[Message]]:
    """Each client's 10 messages: unique ones, a repeat of another client's first message, one
    to the revoked address (every other client), and one oversize message (client 0)."""

    def unique(client: int, index: int) -> tuple[str, bytes, str, int | None]:
        raw = make_email(
            sender=f"Client {client} <client{client}@customer{client}.example>",
            to=OWNERS[client % 2],
            subject=f"Order {episode}-{client}-{index}",
            message_id=f"<e{episode}c{client}i{index}@customer.example>",
        ).replace(b"\n", b"\r\n")
        return live[client % 2], raw, message_key(raw), 250

    plan: list[list[Message]] = []
    for client in range(CLIENTS):
        messages = [unique(client, index) for index in range(PER_CLIENT - 2)]
        messages.append(unique((client + 1) % CLIENTS, 0))  # another sender's message again
        if client % 2 == 0:
            rcpt, raw, key, _ = unique(client, PER_CLIENT)
            messages.append((revoked, raw, key, 550))
        elif client == 1:
            rcpt, raw, key, _ = unique(client, PER_CLIENT)
            messages.append((rcpt, raw + b"x" * OVERSIZE, key, 552))
        else:
            messages.append(unique(client, PER_CLIENT + 1))
        plan.append(messages)
    return plan


def _client(port: int, messages: list[Message], outcomes: Outcomes) -> None:
    for rcpt, raw, key, expect in messages:
        try:
            send_until_answered(port, rcpt, raw, outcomes, key, expect=expect)
        except AssertionError as error:
            with outcomes.lock:
                outcomes.errors.append(str(error))


def _pending(db: Database) -> int:
    with db.read_session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.kind == "capture_drop", Job.status.in_(("queued", "running")))
            )
            or 0
        )


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
