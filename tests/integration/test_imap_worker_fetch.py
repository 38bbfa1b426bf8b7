"""Big IMAP pages are fetched by the parse workers that parse them, each on a session of its own
to a real Dovecot; the syncing process only names the messages. What a user would notice is
nothing at all: every message once, failures recorded, and a server that will not give a worker
a session still synced in full."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from server.config import load_settings
from server.db import Database
from server.mail_ingest.errors import SessionRefused
from server.mail_ingest.sources.imap import ImapSource, Pending, provider_id
from server.mail_ingest.sync import sync_link
from server.models import CaptureDecision, MailboxLink
from tests.conftest import Cli
from tests.integration.test_worker_imap import (
    activity_count,
    customer_mail,
    link_imap,
    mailbox_truth,
    observed,
)
from tests.support.dovecot import DovecotServer
from tests.support.dovecot_fixtures import ImapAccount


def the_link(db: Database) -> MailboxLink:
    with db.session() as session:
        link = session.scalars(select(MailboxLink)).one()
        session.expunge(link)
        return link


@pytest.fixture
def fetched_here(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(folder, messages) of every batch the syncing process fetched itself. The parse workers
    start from a fresh interpreter, so what they fetch is not seen here."""
    seen: list[tuple[str, int]] = []
    original: Callable[..., Any] = ImapSource._fetch_batch

    def fetch_batch(self: ImapSource, folder: str, uidvalidity: int, batch: list[Any]) -> Any:
        seen.append((folder, len(batch)))
        return original(self, folder, uidvalidity, batch)

    monkeypatch.setattr(ImapSource, "_fetch_batch", fetch_batch)
    return seen


def wait_for_sessions(server: DovecotServer, user: str, *, bodies: int) -> list[tuple[str, int]]:
    """(how it ended, bodies fetched) of each ended IMAP session of `user`, from Dovecot's log,
    once the sessions account for `bodies` (the log is written a moment after they end)."""
    pattern = re.compile(
        rf"imap\({re.escape(user)}\)<[^:]*: Info: Disconnected: (.+?) in=.*"
        r" body_count=(\d+)"
    )
    deadline = time.monotonic() + 10
    while True:
        sessions = [(m[1], int(m[2])) for m in pattern.finditer(server.log)]
        if sum(n for _, n in sessions) >= bodies or time.monotonic() > deadline:
            return sessions
        time.sleep(0.05)


def test_big_pages_are_fetched_by_the_parse_workers_and_small_ones_here(
    cli: Cli, db: Database, imap_account: ImapAccount, fetched_here: list[tuple[str, int]]
) -> None:
    server, user = imap_account.server, imap_account.user
    server.append_many(user, "INBOX", [customer_mail(n) for n in range(150)])
    server.append_many(user, "Sent", [customer_mail(n, outgoing=True) for n in range(150, 170)])
    linked = link_imap(cli, imap_account)
    result = sync_link(db, load_settings(linked.env), the_link(db).id, jobs=2)
    assert result.error is None
    # INBOX's 150 came to this process already parsed; Sent's 20 make too small a page to be
    # worth a second session, and were fetched here.
    assert fetched_here == [("Sent", 20)]
    # Dovecot's own account: each parse worker fetched on a session of its own, and every
    # session ended with a LOGOUT (a worker logs out when its process ends).
    sessions = wait_for_sessions(server, user, bodies=170)
    assert all(how == "Logged out" for how, _ in sessions), sessions
    fetching = sorted(n for _, n in sessions if n)
    assert len(fetching) == 3 and fetching[0] == 20, fetching  # Sent here, INBOX split in two
    assert observed(db) == mailbox_truth(server, user)
    assert activity_count(db) == 170
    assert the_link(db).status == "active"


def test_a_worker_refused_a_session_leaves_the_fetching_to_the_sync(
    cli: Cli,
    db: Database,
    imap_account: ImapAccount,
    fetched_here: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, user = imap_account.server, imap_account.user
    server.append_many(user, "INBOX", [customer_mail(n) for n in range(120)])
    linked = link_imap(cli, imap_account, "--folders", "INBOX")
    # The server refuses the workers' sign-in (as one that allows a single session per user
    # does): the sync starts the folder again from its checkpoint and fetches it itself.
    monkeypatch.setattr(
        ImapSource, "_portable_settings", lambda self: replace(self.settings, password="wrong")
    )
    with caplog.at_level(logging.WARNING, logger="server.mail_ingest.sync"):
        result = sync_link(db, load_settings(linked.env), the_link(db).id, jobs=2)
    assert result.error is None
    assert "could not open its own session" in caplog.text
    assert sum(n for folder, n in fetched_here if folder == "INBOX") == 120
    assert observed(db) == mailbox_truth(server, user)
    assert activity_count(db) == 120
    assert the_link(db).status == "active"


def test_a_message_the_server_will_not_send_a_worker_is_recorded_and_the_rest_captured(
    cli: Cli, db: Database, imap_account: ImapAccount, fetched_here: list[tuple[str, int]]
) -> None:
    server, user = imap_account.server, imap_account.user
    messages = [customer_mail(n) for n in range(60)]
    uids = server.append_many(user, "INBOX", messages)
    linked = link_imap(cli, imap_account, "--folders", "INBOX")
    marker = next(line for line in messages[7].splitlines() if line.startswith(b"Message-ID:"))
    broken = next(
        path
        for sub in ("cur", "new")
        for path in (server.maildir(user) / sub).iterdir()
        if marker in path.read_bytes()
    )
    os.chmod(broken, 0)  # Dovecot answers "* BYE FETCH failed" and hangs up on that session
    try:
        result = sync_link(db, load_settings(linked.env), the_link(db).id, jobs=2)
    finally:
        os.chmod(broken, 0o600)
    assert result.error is None
    assert fetched_here == [], "the workers fetched the page, and the message one by one"
    assert activity_count(db) == 59
    with db.session() as session:
        failed = session.execute(
            select(CaptureDecision.provider_id, CaptureDecision.detail).where(
                CaptureDecision.rule == "fetch_failed"
            )
        ).all()
    validity = server.uidvalidity(user, "INBOX")
    assert [pid for pid, _ in failed] == [provider_id(validity, uids[7])]
    assert "would not send" in failed[0][1]


def test_a_pending_page_is_fetched_only_under_the_uidvalidity_it_was_named_in(
    imap_account: ImapAccount,
) -> None:
    server, user = imap_account.server, imap_account.user
    messages = [customer_mail(n) for n in range(3)]
    uids = server.append_many(user, "INBOX", messages)
    validity = server.uidvalidity(user, "INBOX")
    settings = imap_account.settings()
    batch = [(uid, 1000) for uid in uids]
    with ImapSource(settings) as source:
        # UIDs of another UIDVALIDITY name other messages: never fetched under this one.
        with pytest.raises(SessionRefused, match="UIDVALIDITY"):
            source.fetch_pending(Pending(settings, "INBOX", validity + 1, batch))
        fetched, failures = source.fetch_pending(Pending(settings, "INBOX", validity, batch))
    assert [m.raw for m in fetched] == [raw.replace(b"\n", b"\r\n") for raw in messages]
    assert [m.provider_id for m in fetched] == [provider_id(validity, uid) for uid in uids]
    assert failures == []
