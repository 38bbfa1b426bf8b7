"""The drop-address listener, with a real SMTP client (smtplib) as the sending mail server."""

from __future__ import annotations

import smtplib
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from server.mail_ingest.mime import parse_message
from server.mail_ingest.sources.drop import DropServer, DropTarget, drop_address, drop_content
from tests.support.mail import make_email

DOMAIN = "drop.rapport.test"
OWNER = "anna@acme.example"
ANNA = DropTarget("k7q2m9x4", user_id=1, owner_addresses=frozenset({OWNER}))
BOB = DropTarget("p3r8s1t6", user_id=2, owner_addresses=frozenset({"bob@acme.example"}))
REVOKED = "z9y8x7w6"
MAIL = Path(__file__).parent.parent / "data" / "mail"


@dataclass
class Mailroom:
    """The listener's two callbacks, recording what they were asked."""

    targets: dict[str, DropTarget] = field(default_factory=dict)
    stored: list[tuple[DropTarget, bytes, str, str]] = field(default_factory=list)
    lookups: list[str] = field(default_factory=list)
    fail_store: bool = False
    fail_lookup: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve(self, token: str) -> DropTarget | None:
        with self.lock:
            self.lookups.append(token)
        if self.fail_lookup:
            raise RuntimeError("database is down")
        return self.targets.get(token)

    def store(self, target: DropTarget, raw: bytes, sender: str, rcpt: str) -> None:
        if self.fail_store:
            raise OSError("disk full")
        with self.lock:
            self.stored.append((target, raw, sender, rcpt))


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def mailroom() -> Mailroom:
    return Mailroom(targets={ANNA.token: ANNA, BOB.token: BOB})


def _server(mailroom: Mailroom, **options: object) -> DropServer:
    return DropServer(
        "127.0.0.1",
        0,
        domain=DOMAIN,
        resolve_token=mailroom.resolve,
        store=mailroom.store,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def drop(mailroom: Mailroom) -> Iterator[DropServer]:
    with _server(mailroom, max_size=64 * 1024) as server:
        yield server


def _client(server: DropServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, local_hostname="mx.sender.example", timeout=10)


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_bcc_copy_of_outgoing_mail_is_stored_as_sent(drop: DropServer, mailroom: Mailroom) -> None:
    raw = _crlf(make_email(sender=OWNER, to="bob@customer.example", subject="Your quote"))
    with _client(drop) as client:
        refused = client.sendmail(OWNER, [drop_address(ANNA.token, DOMAIN)], raw)
    assert refused == {}
    [(target, stored, sender, rcpt)] = mailroom.stored
    assert (target, sender, rcpt) == (ANNA, OWNER, drop_address(ANNA.token, DOMAIN))
    assert stored == raw
    assert drop_content(stored, ANNA.owner_addresses) == raw


@pytest.mark.parametrize("name", ["nested_forward_rfc822.eml", "outlook_inline_forward.eml"])
def test_forwarded_message_is_unwrapped(drop: DropServer, mailroom: Mailroom, name: str) -> None:
    address = drop_address(ANNA.token, DOMAIN)
    raw = _crlf((MAIL / name).read_bytes().replace(b"crm-drop@acme.example", address.encode()))
    with _client(drop) as client:
        client.sendmail(OWNER, [address], raw)
    [(target, stored, _, _)] = mailroom.stored
    original = parse_message(drop_content(stored, target.owner_addresses))
    assert original.sender is not None
    assert original.sender.address in {"bob@customer.example", "marc.dupont@prospect.example"}
    assert original.subject in {"Quarterly numbers", "Offer request"}


def test_unknown_or_revoked_token_is_refused_at_rcpt(drop: DropServer, mailroom: Mailroom) -> None:
    raw = _crlf(make_email(sender=OWNER, to="bob@customer.example"))
    for address in (
        drop_address("nosuchtoken", DOMAIN),
        drop_address(REVOKED, DOMAIN),
        "crm-k7q2m9x4@drop.rapport.test",
        drop_address(ANNA.token, "other.example"),
    ):
        with _client(drop) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail(OWNER, [address], raw)
        code, text = refused.value.recipients[address]
        assert code == 550
        assert text.decode() == f"5.1.1 <{address}>: unknown or revoked Rapport drop address"
    assert mailroom.stored == []


def test_one_refused_recipient_does_not_stop_the_others(
    drop: DropServer, mailroom: Mailroom
) -> None:
    good, bad = drop_address(BOB.token, DOMAIN), drop_address(REVOKED, DOMAIN)
    with _client(drop) as client:
        refused = client.sendmail(
            OWNER, [bad, good], _crlf(make_email(sender=OWNER, to="x@y.example"))
        )
    assert list(refused) == [bad]
    assert [(t, rcpt) for t, _, _, rcpt in mailroom.stored] == [(BOB, good)]


def test_forged_from_still_goes_to_the_tokens_owner(drop: DropServer, mailroom: Mailroom) -> None:
    forged = _crlf(make_email(sender="ceo@bank.example", to="bob@acme.example", subject="Urgent"))
    with _client(drop) as client:
        client.sendmail("ceo@bank.example", [drop_address(BOB.token, DOMAIN)], forged)
    [(target, _, sender, _)] = mailroom.stored
    assert target == BOB
    assert sender == "ceo@bank.example"
    assert drop_content(forged, BOB.owner_addresses) == forged  # stored, not taken as Bob's own


def test_address_case_does_not_matter(drop: DropServer, mailroom: Mailroom) -> None:
    address = f"CRM+{ANNA.token.upper()}@Drop.Rapport.Test"
    with _client(drop) as client:
        client.sendmail(OWNER, [address], _crlf(make_email(sender=OWNER, to="x@y.example")))
    assert mailroom.lookups == [ANNA.token]
    assert [t for t, *_ in mailroom.stored] == [ANNA]


def test_oversize_mail_is_refused_with_552(drop: DropServer, mailroom: Mailroom) -> None:
    big = _crlf(make_email(sender=OWNER, to="x@y.example", body="x" * 100_000))
    address = drop_address(ANNA.token, DOMAIN)
    with _client(drop) as client:
        client.ehlo()
        assert client.has_extn("size")
        assert client.esmtp_features["size"] == str(64 * 1024)
        with pytest.raises(smtplib.SMTPSenderRefused) as declared:  # SIZE= told in MAIL FROM
            client.sendmail(OWNER, [address], big)
        assert declared.value.smtp_code == 552
    with _client(drop) as client:  # a sender that does not declare the size
        client.ehlo()
        assert client.mail(OWNER)[0] == 250
        assert client.rcpt(address)[0] == 250
        code, _ = client.data(big)  # smtplib returns, not raises, the answer to the data
        assert code == 552
    assert mailroom.stored == []


def test_mail_is_acknowledged_only_once_stored(drop: DropServer, mailroom: Mailroom) -> None:
    mailroom.fail_store = True
    with _client(drop) as client, pytest.raises(smtplib.SMTPDataError) as failed:
        client.sendmail(
            OWNER,
            [drop_address(ANNA.token, DOMAIN)],
            _crlf(make_email(sender=OWNER, to="x@y.example")),
        )
    assert failed.value.smtp_code == 451  # the sending server keeps it and tries again


def test_lookup_failure_is_temporary(drop: DropServer, mailroom: Mailroom) -> None:
    mailroom.fail_lookup = True
    address = drop_address(ANNA.token, DOMAIN)
    with _client(drop) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.sendmail(OWNER, [address], _crlf(make_email(sender=OWNER, to="x@y.example")))
    assert refused.value.recipients[address][0] == 451


def _tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(DOMAIN, "127.0.0.1").configure_cert(context)
    return context


def _trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_starttls_works(ca: trustme.CA, mailroom: Mailroom) -> None:
    raw = _crlf(make_email(sender=OWNER, to="bob@customer.example"))
    with _server(mailroom, tls_context=_tls(ca)) as server, _client(server) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        client.starttls(context=_trusting(ca))
        client.ehlo()
        client.sendmail(OWNER, [drop_address(ANNA.token, DOMAIN)], raw)
        assert isinstance(client.sock, ssl.SSLSocket)
    assert [stored for _, stored, *_ in mailroom.stored] == [raw]


def test_required_starttls_refuses_plain_mail(ca: trustme.CA, mailroom: Mailroom) -> None:
    with (
        _server(mailroom, tls_context=_tls(ca), require_starttls=True) as server,
        _client(server) as client,
    ):
        client.ehlo()
        code, _ = client.mail(OWNER)
        assert code == 530
        client.starttls(context=_trusting(ca))
        client.ehlo()
        client.sendmail(OWNER, [drop_address(ANNA.token, DOMAIN)], b"Subject: hi\r\n\r\nhello\r\n")
    assert len(mailroom.stored) == 1


def test_no_auth_is_offered(drop: DropServer) -> None:
    with _client(drop) as client:
        client.ehlo()
        assert not client.has_extn("auth")


def test_stop_frees_the_port(mailroom: Mailroom) -> None:
    server = _server(mailroom)
    server.start()
    port = server.port
    with _client(server) as client:
        client.noop()
        server.stop()  # with a session still open
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP("127.0.0.1", port, timeout=2)
