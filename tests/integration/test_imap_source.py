"""The IMAP source against a real Dovecot: what a mailbox owner would notice is that every
message shows up exactly once, deletions and moves follow, and nothing is lost across restarts,
UIDVALIDITY resets or interrupted syncs."""

from __future__ import annotations

import glob
import imaplib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.mail_ingest.errors import AuthExpired, PermissionDenied, Temporary
from server.mail_ingest.sources import imap
from server.mail_ingest.sources.imap import FolderPage, ImapSource
from tests.support import dovecot as dovecot_support
from tests.support.dovecot import DovecotServer
from tests.support.dovecot_fixtures import ImapAccount
from tests.support.mail import make_email


def _mail(n: int, subject: str = "Order") -> bytes:
    return make_email(
        sender=f"customer{n}@example.com",
        to="sales@northwind-supplies.com",
        subject=f"{subject} {n}",
        message_id=f"<{subject.lower()}-{n}-{os.getpid()}@example.com>",
        body=f"Message number {n}\n" + "x" * (n % 7) * 100,
    ).replace(b"\n", b"\r\n")


class FolderMirror:
    """What a caller keeps of one folder: the checkpoint and the messages it holds.

    Applies pages the way the capture worker must (validity change first, then the page's
    messages and removals, then the checkpoint) and fails on a message delivered twice.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.state: dict[str, int | None] | None = None
        self.held: dict[str, bytes] = {}
        self.failures: dict[str, str] = {}
        self.pages = 0
        self.validity_changes = 0

    def known_ids(self) -> Iterator[str]:
        return iter(list(self.held))

    def apply(self, page: FolderPage) -> None:
        assert page.folder == self.folder
        if page.validity_changed:
            self.validity_changes += 1
            self.held.clear()
        for message in page.messages:
            assert message.provider_id not in self.held, f"{message.provider_id} delivered twice"
            assert message.folder == self.folder
            self.held[message.provider_id] = message.raw
        for gone in page.removed:
            self.held.pop(gone, None)
        self.failures.update(page.failures)
        self.state = page.state
        self.pages += 1

    def sync(self, source: ImapSource, *, use_known_ids: bool = True) -> int:
        pages = 0
        known = self.known_ids if use_known_ids else None
        for page in source.sync_folder(self.folder, self.state, known):
            self.apply(page)
            pages += 1
        return pages

    def bodies(self) -> set[bytes]:
        return set(self.held.values())


def _server_bodies(server: DovecotServer, user: str, folder: str) -> set[bytes]:
    with server.client(user) as client:
        client.select_folder(folder, readonly=True)
        uids = client.search("ALL")
        if not uids:
            return set()
        return {fields[b"BODY[]"] for fields in client.fetch(uids, ["BODY.PEEK[]"]).values()}


@pytest.fixture
def sent_commands(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every tagged IMAP command sent while the test runs ("TAG1 STATUS ...")."""
    sent: list[str] = []
    original = imaplib.IMAP4.send

    def send(self: imaplib.IMAP4, data: bytes) -> None:
        for line in data.split(b"\r\n"):
            if line[:1].isalpha() and line.split(b" ", 1)[0][-1:].isdigit():
                sent.append(line.decode("ascii", "replace"))
        original(self, data)

    monkeypatch.setattr(imaplib.IMAP4, "send", send)
    return sent


def _verbs(lines: list[str]) -> list[str]:
    return [" ".join(line.split(" ")[1:3]) for line in lines]


def test_initial_sync_delivers_every_message_once_in_pages(imap_account: ImapAccount) -> None:
    server, user = imap_account.server, imap_account.user
    messages = [_mail(n) for n in range(11)]
    uids = server.append_many(user, "INBOX", messages)
    validity = server.uidvalidity(user, "INBOX")
    inbox = FolderMirror("INBOX")
    with ImapSource(imap_account.settings(), batch_size=4) as source:
        pages = inbox.sync(source)
    assert pages == 4  # 4 + 4 + 3 messages, then the page that completes the checkpoint
    assert sorted(inbox.held) == sorted(f"{validity}:{uid}" for uid in uids)
    assert inbox.bodies() == set(messages)
    assert inbox.state is not None
    assert inbox.state["uidnext"] == max(uids) + 1
    assert inbox.state["messages"] == len(messages)
    with server.client(user) as client:  # BODY.PEEK on a read-only folder: still unread
        client.select_folder("INBOX", readonly=True)
        assert client.search("SEEN") == []


def test_message_content_stays_out_of_the_logs_even_at_debug(
    imap_account: ImapAccount, caplog: pytest.LogCaptureFixture
) -> None:
    """imapclient switches imaplib's wire trace on; it would log (and, at any level, format)
    every message fetched. The source switches it off."""
    server, user = imap_account.server, imap_account.user
    secret = f"confidential-offer-{os.getpid()}"
    server.append_many(user, "INBOX", [_mail(1).replace(b"Message number 1", secret.encode())])
    inbox = FolderMirror("INBOX")
    with caplog.at_level(logging.DEBUG), ImapSource(imap_account.settings()) as source:
        inbox.sync(source)
    assert any(secret.encode() in body for body in inbox.bodies())
    assert any(r.name.startswith("imapclient") for r in caplog.records), "the trace was on"
    assert not [r for r in caplog.records if secret in r.getMessage()]


def test_unchanged_mailbox_costs_one_command_per_folder(
    imap_account: ImapAccount, sent_commands: list[str]
) -> None:
    server, user = imap_account.server, imap_account.user
    server.append_many(user, "INBOX", [_mail(n) for n in range(3)])
    server.append(user, "Sent", _mail(99, "Reply"))
    with ImapSource(imap_account.settings()) as source:
        mirrors = [FolderMirror(name) for name in source.folders()]
        for mirror in mirrors:
            mirror.sync(source)
        sent_commands.clear()
        for mirror in mirrors:
            assert mirror.sync(source) == 0
        assert _verbs(sent_commands) == ['STATUS "INBOX"', 'STATUS "Sent"']


def test_flag_changes_only_move_the_checkpoint(
    imap_account: ImapAccount, sent_commands: list[str]
) -> None:
    server, user = imap_account.server, imap_account.user
    uids = server.append_many(user, "INBOX", [_mail(n) for n in range(3)])
    inbox = FolderMirror("INBOX")
    with ImapSource(imap_account.settings()) as source:
        inbox.sync(source)
        with server.client(user) as client:
            client.select_folder("INBOX")
            client.add_flags(uids[:2], [b"\\Seen"])
        sent_commands.clear()
        before = dict(inbox.held)
        assert inbox.sync(source) == 1
        assert _verbs(sent_commands) == ['STATUS "INBOX"']
    assert inbox.held == before


def test_new_mail_moves_and_deletions_between_polls(imap_account: ImapAccount) -> None:
    server, user = imap_account.server, imap_account.user
    uids = server.append_many(user, "INBOX", [_mail(n) for n in range(6)])
    inbox, sent = FolderMirror("INBOX"), FolderMirror("Sent")
    with ImapSource(imap_account.settings(), batch_size=2) as source:
        inbox.sync(source)
        sent.sync(source)
        assert len(inbox.held) == 6
        assert sent.held == {}

        server.append(user, "INBOX", _mail(6))
        server.move(user, "INBOX", "Sent", [uids[1]])
        server.delete(user, "INBOX", [uids[2], uids[4]])
        inbox.sync(source)
        sent.sync(source)

    assert inbox.bodies() == _server_bodies(server, user, "INBOX")
    assert len(inbox.held) == 4
    assert sent.bodies() == {_mail(1)}


@pytest.mark.parametrize("use_known_ids", [True, False], ids=["known-ids", "vanished-only"])
def test_deletions_are_reported_with_qresync(
    imap_account: ImapAccount, use_known_ids: bool
) -> None:
    server, user = imap_account.server, imap_account.user
    uids = server.append_many(user, "INBOX", [_mail(n) for n in range(5)])
    validity = server.uidvalidity(user, "INBOX")
    removed: list[str] = []
    inbox = FolderMirror("INBOX")
    with ImapSource(imap_account.settings()) as source:
        inbox.sync(source, use_known_ids=use_known_ids)
        server.delete(user, "INBOX", [uids[0], uids[3]])
        for page in source.sync_folder(
            "INBOX", inbox.state, inbox.known_ids if use_known_ids else None
        ):
            removed += page.removed
            inbox.apply(page)
    assert sorted(removed) == sorted([f"{validity}:{uids[0]}", f"{validity}:{uids[3]}"])


@pytest.fixture
def without_qresync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the source believe the server offers no QRESYNC (as many servers do)."""
    original = imap._Connection._enable

    def enable(self: imap._Connection) -> None:
        original(self)
        self.qresync = False

    monkeypatch.setattr(imap._Connection, "_enable", enable)


@pytest.mark.usefixtures("without_qresync")
def test_deletions_without_qresync_are_checked_against_known_ids(
    imap_account: ImapAccount, sent_commands: list[str]
) -> None:
    server, user = imap_account.server, imap_account.user
    uids = server.append_many(user, "INBOX", [_mail(n) for n in range(8)])
    inbox = FolderMirror("INBOX")
    with ImapSource(imap_account.settings()) as source:
        inbox.sync(source)
        server.append(user, "INBOX", _mail(8))  # new mail alone: no presence check needed
        sent_commands.clear()
        inbox.sync(source)
        assert not any("SEARCH" in line for line in sent_commands)
        server.delete(user, "INBOX", [uids[2], uids[5]])
        server.append(user, "INBOX", _mail(9))
        inbox.sync(source)
    assert inbox.bodies() == _server_bodies(server, user, "INBOX")
    assert len(inbox.held) == 8


def test_uidvalidity_reset_resyncs_the_folder(imap_account: ImapAccount) -> None:
    server, user = imap_account.server, imap_account.user
    messages = [_mail(n) for n in range(5)]
    server.append_many(user, "INBOX", messages)
    inbox = FolderMirror("INBOX")
    with ImapSource(imap_account.settings(), batch_size=2) as source:
        inbox.sync(source)
        old_ids = set(inbox.held)
        new_validity = server.set_uidvalidity(user, "INBOX")
        first = next(source.sync_folder("INBOX", inbox.state, inbox.known_ids))
        assert first.validity_changed
        inbox.apply(first)
        for page in source.sync_folder("INBOX", inbox.state, inbox.known_ids):
            assert not page.validity_changed
            inbox.apply(page)
    assert inbox.validity_changes == 1
    assert inbox.bodies() == set(messages)
    assert not old_ids & set(inbox.held)
    assert all(pid.startswith(f"{new_validity}:") for pid in inbox.held)


def test_uidvalidity_reset_of_an_empty_folder_is_still_reported(imap_account: ImapAccount) -> None:
    server, user = imap_account.server, imap_account.user
    uid = server.append(user, "INBOX", _mail(1))
    inbox = FolderMirror("INBOX")
    with ImapSource(imap_account.settings()) as source:
        inbox.sync(source)
        server.delete(user, "INBOX", [uid])
        server.set_uidvalidity(user, "INBOX")
        pages = list(source.sync_folder("INBOX", inbox.state, inbox.known_ids))
    assert [p.validity_changed for p in pages] == [True]
    assert pages[0].messages == []


def _drain(pages: Iterator[FolderPage], mirror: FolderMirror) -> None:
    for page in pages:
        mirror.apply(page)


def test_server_restart_mid_sync_is_temporary_then_resumes(imap_account: ImapAccount) -> None:
    server, user = imap_account.server, imap_account.user
    messages = [_mail(n) for n in range(10)]
    server.append_many(user, "INBOX", messages)
    inbox = FolderMirror("INBOX")
    with ImapSource(imap_account.settings(), batch_size=3) as source:
        pages = source.sync_folder("INBOX", inbox.state, inbox.known_ids)
        inbox.apply(next(pages))
        server.restart()
        with pytest.raises(Temporary):
            _drain(pages, inbox)
        inbox.sync(source)  # a new session, from the stored checkpoint
    assert inbox.bodies() == set(messages)


def test_server_down_is_temporary_cannot_reach(imap_account: ImapAccount) -> None:
    server = imap_account.server
    server.stop()
    with pytest.raises(Temporary, match=r"cannot reach 127\.0\.0\.1:\d+"):
        imap.test_connection(imap_account.settings())


@pytest.mark.parametrize("interrupt_after", [0, 1, 2, 3, 4, 5])
def test_interrupted_sync_resumes_without_gaps_or_repeats(
    imap_account: ImapAccount, interrupt_after: int
) -> None:
    server, user = imap_account.server, imap_account.user
    messages = [_mail(n) for n in range(9)]
    uids = server.append_many(user, "INBOX", messages[:7])
    inbox = FolderMirror("INBOX")
    with ImapSource(imap_account.settings(), batch_size=2) as source:
        pages = source.sync_folder("INBOX", inbox.state, inbox.known_ids)
        for _ in range(interrupt_after):
            page = next(pages, None)
            if page is not None:
                inbox.apply(page)  # the checkpoint is stored with the page's messages
        pages.close()  # killed mid-way: the rest is never consumed
        # The mailbox changes while we are down: new mail and a deletion.
        server.append_many(user, "INBOX", messages[7:])
        server.delete(user, "INBOX", [uids[1]])
        inbox.sync(source)
        assert inbox.sync(source) == 0
    assert inbox.bodies() == set(messages) - {messages[1]}


def test_wrong_password_is_auth_expired(imap_account: ImapAccount) -> None:
    settings = imap_account.settings(password="not-the-password")
    with pytest.raises(AuthExpired, match="the server refused the user name or password"):
        imap.test_connection(settings)
    with ImapSource(settings) as source, pytest.raises(AuthExpired):
        next(source.sync_folder("INBOX", None))


def test_oauth_access_token_signs_in_and_a_revoked_one_is_auth_expired(
    imap_account: ImapAccount,
) -> None:
    server = imap_account.server
    token = server.add_oauth_token(imap_account.user)
    settings = imap_account.settings(password=None, oauth_token=token)
    assert imap.test_connection(settings) == ["INBOX", "Sent"]
    server.revoke_oauth_token(token)
    with pytest.raises(AuthExpired, match=r"refused the access token .*\"status\":\"401\""):
        imap.test_connection(settings)


def test_non_ascii_password_signs_in(dovecot: DovecotServer) -> None:
    user = f"umlaut{os.getpid()}"
    password = dovecot.add_user(user, "Grüße-aus-Köln-ß")
    settings = ImapAccount(dovecot, user, password).settings()
    assert imap.test_connection(settings) == ["INBOX", "Sent"]


def test_special_use_sent_folder_is_found(imap_account: ImapAccount) -> None:
    assert imap.test_connection(imap_account.settings()) == ["INBOX", "Sent"]


def test_configured_folders_are_checked(imap_account: ImapAccount) -> None:
    imap_account.server.create_folder(imap_account.user, "Customers/Acme")
    settings = imap_account.settings(folders=["inbox", "Customers/Acme"])
    assert imap.test_connection(settings) == ["INBOX", "Customers/Acme"]
    with pytest.raises(PermissionDenied, match=r"folder 'Kunden' does not exist .*Archive, "):
        imap.test_connection(imap_account.settings(folders=["INBOX", "Kunden"]))


def test_folders_with_non_ascii_names_sync(imap_account: ImapAccount) -> None:
    server, user = imap_account.server, imap_account.user
    server.create_folder(user, "Kunden/Müller & Söhne")
    server.append(user, "Kunden/Müller & Söhne", _mail(1))
    settings = imap_account.settings(folders=["Kunden/Müller & Söhne"])
    folder = FolderMirror("Kunden/Müller & Söhne")
    with ImapSource(settings) as source:
        assert source.folders() == ["Kunden/Müller & Söhne"]
        folder.sync(source)
        assert folder.sync(source) == 0
    assert folder.bodies() == {_mail(1)}


def test_unreadable_checkpoint_means_a_fresh_sync(imap_account: ImapAccount) -> None:
    server, user = imap_account.server, imap_account.user
    server.append_many(user, "INBOX", [_mail(n) for n in range(3)])
    with ImapSource(imap_account.settings()) as source:
        for garbage in ({"v": 99}, {"v": 1, "uidvalidity": "x"}, {"last_uid": -1}):
            pages = list(source.sync_folder("INBOX", garbage))
            assert sum(len(p.messages) for p in pages) == 3


def test_missing_dovecot_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dovecot_support, "DOVECOT", Path("/nonexistent/dovecot"))
    with pytest.raises(RuntimeError, match="apt-get install dovecot-imapd"):
        dovecot_support.DovecotServer()


def test_untrusted_certificate_is_temporary_with_a_hint(imap_account: ImapAccount) -> None:
    with pytest.raises(Temporary, match="RAPPORT_CA_BUNDLE"):
        imap.test_connection(imap_account.settings(ca_bundle=None))


def test_starttls_and_plain_connections(imap_account: ImapAccount) -> None:
    assert imap.test_connection(imap_account.settings("starttls")) == ["INBOX", "Sent"]
    assert imap.test_connection(imap_account.settings("none")) == ["INBOX", "Sent"]
    with pytest.raises(Temporary, match="RAPPORT_CA_BUNDLE"):
        imap.test_connection(imap_account.settings("starttls", ca_bundle=None))


def test_ssl_to_a_plain_port_says_check_the_port(imap_account: ImapAccount) -> None:
    settings = imap_account.settings(port=imap_account.server.imap_port)
    with pytest.raises(Temporary, match="check the port"):
        imap.test_connection(settings)


def _maildir_files(folder: Path) -> list[str]:
    return sorted(glob.glob(str(folder / "cur" / "*")) + glob.glob(str(folder / "new" / "*")))


def test_an_unreadable_message_is_reported_and_skipped(imap_account: ImapAccount) -> None:
    server, user = imap_account.server, imap_account.user
    messages = [_mail(n) for n in range(5)]
    uids = server.append_many(user, "INBOX", messages)
    validity = server.uidvalidity(user, "INBOX")
    marker = _message_id(messages[2])
    broken = next(f for f in _maildir_files(server.maildir(user)) if marker in _read(f))
    os.chmod(broken, 0)  # Dovecot answers "* BYE FETCH failed" and hangs up
    inbox = FolderMirror("INBOX")
    try:
        with ImapSource(imap_account.settings(), batch_size=10) as source:
            inbox.sync(source)
            assert inbox.sync(source) == 0
    finally:
        os.chmod(broken, 0o600)
    assert inbox.bodies() == set(messages) - {messages[2]}
    assert list(inbox.failures) == [f"{validity}:{uids[2]}"]
    assert "would not send" in inbox.failures[f"{validity}:{uids[2]}"]


def _message_id(raw: bytes) -> bytes:
    return next(line for line in raw.splitlines() if line.lower().startswith(b"message-id:"))


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def test_messages_over_the_size_cap_keep_their_beginning(
    imap_account: ImapAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, user = imap_account.server, imap_account.user
    small, big = _mail(1), _mail(2) + b"y" * 5000 + b"\r\n"
    server.append_many(user, "INBOX", [small, big])
    monkeypatch.setattr(imap, "MAX_MESSAGE_BYTES", 4000)
    monkeypatch.setattr(imap, "TOO_LARGE_KEEP", 1000)
    inbox = FolderMirror("INBOX")
    captured = []
    with ImapSource(imap_account.settings()) as source:
        for page in source.sync_folder("INBOX", None):
            captured += page.messages
            inbox.apply(page)
    by_size = sorted(captured, key=lambda m: len(m.raw))
    assert [m.too_large for m in by_size] == [False, True]
    assert by_size[0].raw == small
    assert by_size[1].raw == big[:1000]


def test_lowered_highestmodseq_is_not_a_loss(imap_account: ImapAccount) -> None:
    server, user = imap_account.server, imap_account.user
    uids = server.append_many(user, "INBOX", [_mail(n) for n in range(4)])
    with server.client(user) as client:  # push HIGHESTMODSEQ up
        client.select_folder("INBOX")
        for _ in range(5):
            client.add_flags(uids, [b"\\Flagged"])
            client.remove_flags(uids, [b"\\Flagged"])
    inbox = FolderMirror("INBOX")
    with ImapSource(imap_account.settings()) as source:
        inbox.sync(source)
        source.close()  # Dovecot keeps the index open while a session uses the folder
        stored = inbox.state["highestmodseq"] if inbox.state else None
        for index in glob.glob(str(server.maildir(user) / "dovecot.index*")):
            os.remove(index)
        assert stored is not None
        assert _modseq(server, user) < stored
        before = dict(inbox.held)
        assert inbox.sync(source) == 1  # a new baseline, nothing else
        assert inbox.held == before
        server.delete(user, "INBOX", [uids[0]])
        server.append(user, "INBOX", _mail(9))
        inbox.sync(source)
    assert inbox.bodies() == _server_bodies(server, user, "INBOX")


def test_lowered_highestmodseq_with_a_deletion_is_checked_against_known_ids(
    imap_account: ImapAccount, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=imap.__name__)
    server, user = imap_account.server, imap_account.user
    uids = server.append_many(user, "INBOX", [_mail(n) for n in range(4)])
    with server.client(user) as client:
        client.select_folder("INBOX")
        for _ in range(5):
            client.add_flags(uids, [b"\\Flagged"])
            client.remove_flags(uids, [b"\\Flagged"])
    inbox = FolderMirror("INBOX")
    with ImapSource(imap_account.settings()) as source:
        inbox.sync(source)
        source.close()
        for index in glob.glob(str(server.maildir(user) / "dovecot.index*")):
            os.remove(index)
        server.delete(user, "INBOX", [uids[1]])
        assert inbox.state is not None
        assert _modseq(server, user) < (inbox.state["highestmodseq"] or 0)
        inbox.sync(source)
    assert "lowered HIGHESTMODSEQ" in caplog.text
    assert inbox.bodies() == _server_bodies(server, user, "INBOX")
    assert len(inbox.held) == 3


def _modseq(server: DovecotServer, user: str) -> int:
    with server.client(user) as client:
        return int(client.folder_status("INBOX", ["HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"])


def test_idle_wakes_up_on_new_mail(imap_account: ImapAccount) -> None:
    server, user = imap_account.server, imap_account.user
    server.append(user, "INBOX", _mail(0))
    inbox = FolderMirror("INBOX")
    with ImapSource(imap_account.settings()) as source:
        inbox.sync(source)
        assert source.idle_wait("INBOX", timeout=0.2, state=inbox.state) is False
        woke: list[bool] = []
        waiter = threading.Thread(target=lambda: woke.append(source.idle_wait("INBOX", timeout=30)))
        waiter.start()
        n = 1
        while waiter.is_alive() and n < 100:  # mail keeps coming until the waiter notices
            server.append(user, "INBOX", _mail(n))
            waiter.join(0.2)
            n += 1
        waiter.join()
        assert woke == [True]
        # Mail that came in after the poll wakes at once, without waiting for IDLE.
        assert source.idle_wait("INBOX", timeout=30, state=inbox.state) is True
        inbox.sync(source)
    assert len(inbox.held) == n


def _bulk(n: int) -> bytes:
    return (
        f"From: customer{n}@example.com\r\nTo: sales@northwind-supplies.com\r\n"
        f"Subject: Bulk {n}\r\nMessage-ID: <bulk-{n}-{os.getpid()}@example.com>\r\n"
        f"Date: Tue, 01 Sep 2026 09:00:00 +0000\r\n\r\n{'Order line. ' * (n % 200)}\r\n"
    ).encode()


def test_sync_of_two_thousand_messages(imap_account: ImapAccount) -> None:
    server, user = imap_account.server, imap_account.user
    messages = [_bulk(n) for n in range(2000)]
    server.append_many(user, "INBOX", messages)
    inbox = FolderMirror("INBOX")
    with ImapSource(imap_account.settings()) as source:
        inbox.sync(source)
    assert len(inbox.held) == 2000
    assert inbox.bodies() == set(messages)
