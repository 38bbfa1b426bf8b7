"""The daily digest: its content for a hand-built day, its two parts, and its way out through a
real SMTP session (aiosmtpd on loopback: STARTTLS with a throwaway CA, AUTH PLAIN/LOGIN, and
XOAUTH2 with an app-only token from the identity emulator), from the CLI and from the worker."""

from __future__ import annotations

import base64
import collections
import dataclasses
import email
import email.policy
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import jwt
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from server.config import Settings
from server.crm.digest import build_digest, render_digest
from server.crm.signals.store import refresh_dirty
from server.db import Database
from server.mail_ingest.worker import Worker
from server.mail_out.digests import JOB, DigestScheduler
from server.mail_out.smtp import SendFailed, SmtpTarget, send
from server.models import Contact, FollowUp, Job, User
from tests.conftest import Cli
from tests.emulators.fixtures import identity, identity_server  # noqa: F401 - fixtures
from tests.emulators.identity import EXCHANGE, IdentityEmulator
from tests.integration.test_api_lookup import auth, capture, token_for
from tests.support.mail import make_email
from tests.support.postgres import free_port

ANNA = "anna@northwind-supplies.com"
BEN = "ben@northwind-supplies.com"
CLARA = "Clara Jensen <clara@brightline-dental.co.uk>"
DAN = "Dan Okafor <dan@brightline-dental.co.uk>"
BOT = "digest@northwind-supplies.com"
PASSWORD = "s3cret digest password"
PUBLIC = "https://crm.northwind.example"
# Wednesday 2026-03-11, 09:30 in Berlin (UTC+1): Anna's morning.
MORNING = datetime(2026, 3, 11, 8, 30, tzinfo=UTC)


# -- a real SMTP receiver -------------------------------------------------------------------------


class Receiver:
    """What the SMTP server was given: messages, and who signed in how."""

    def __init__(self, emulator: IdentityEmulator | None = None) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []
        self.logins: list[tuple[str, str]] = []
        self.emulator = emulator
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        with self.lock:
            self.messages.append((envelope, parsed))  # type: ignore[arg-type]
        return "250 2.0.0 Ok: queued"

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """SASL XOAUTH2 as Exchange Online judges it: an app-only token for outlook.office365.com
        with SMTP.SendAsApp, whose app may send as the user named."""
        fields = dict(
            part.split("=", 1)
            for part in base64.b64decode(args[1]).decode().split("\x01")
            if "=" in part
        )
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        ok = self.emulator is not None and _judge(self.emulator, token, user)
        if ok:
            self.logins.append(("XOAUTH2", user))
        return AuthResult(success=ok, handled=False)


def _judge(emulator: IdentityEmulator, token: str, user: str) -> bool:
    try:
        claims = jwt.decode(
            token,
            emulator.signing_key.private.public_key(),
            algorithms=["RS256"],
            audience=EXCHANGE,
        )
    except jwt.PyJWTError:
        return False
    app = emulator.apps.get(str(claims.get("azp")))
    roles = claims.get("roles", ())
    return app is not None and "SMTP.SendAsApp" in roles and user.lower() in app.mailboxes


class LongAuthSMTP(SMTP):
    """RFC 4954 (section 4): an AUTH line with its initial response may be up to 12,288 octets,
    as an XOAUTH2 token needs; aiosmtpd reads every command line with a 512-octet limit."""

    line_length_limit = 12288  # the stream reader's limit

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.command_size_limits = collections.defaultdict(lambda: 512, {"AUTH": 12288})


class LongAuthController(Controller):
    def factory(self) -> SMTP:
        return LongAuthSMTP(self.handler, **self.SMTP_kwargs)


class Authenticator:
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and (data.login, data.password) == (
            BOT.encode(),
            PASSWORD.encode(),
        ):
            self.receiver.logins.append((mechanism, data.login.decode()))
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def smtp_server(ca: trustme.CA, tmp_path: Path) -> Iterator[tuple[Receiver, int, Path]]:
    """A submission server on loopback: STARTTLS required before AUTH, AUTH required."""
    bundle = tmp_path / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    receiver = Receiver()
    context = __import__("ssl").create_default_context(__import__("ssl").Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    port = free_port()
    controller = Controller(
        receiver,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=Authenticator(receiver),
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    yield receiver, port, bundle
    controller.stop()


def smtp_url(port: int, user: str = BOT, password: str = PASSWORD, query: str = "") -> str:
    quoted = user.replace("@", "%40")
    return f"smtp+starttls://{quoted}:{password.replace(' ', '%20')}@127.0.0.1:{port}{query}"


# -- a hand-built day -------------------------------------------------------------------------------


def anna_s_day(db: Database, settings: Settings, tmp_path: Path) -> int:
    """Anna (Berlin) has a follow-up overdue, one today, one tomorrow, one done; Ben has one
    today; and her mail gives her an email awaiting a reply and a customer waiting on her."""
    token_for(db, ANNA)
    token_for(db, BEN)
    emails = [
        make_email(
            sender=ANNA,
            to=CLARA,
            subject="Your quote",
            message_id="<quote@northwind-supplies.com>",
            date=MORNING - timedelta(days=10),
        ),
        make_email(
            sender=DAN,
            to=ANNA,
            subject="Delivery dates?",
            message_id="<dates@brightline-dental.co.uk>",
            date=MORNING - timedelta(days=9),
        ),
    ]
    capture(db, settings, tmp_path, ANNA, emails)
    with db.session() as session:
        refresh_dirty(session, limit=100, now=MORNING)
        session.execute(update(User).where(User.email == ANNA).values(time_zone="Europe/Berlin"))
        anna = session.scalars(select(User).where(User.email == ANNA)).one()
        ben = session.scalars(select(User).where(User.email == BEN)).one()
        clara = session.scalar(select(Contact.id).where(Contact.name == "Clara Jensen"))
        berlin_midnight = datetime(2026, 3, 10, 23, 0, tzinfo=UTC)  # 11 March 00:00 in Berlin
        for owner, title, due, done in [
            (anna, "Call <Clara> about the quote", berlin_midnight - timedelta(hours=3), False),
            (anna, "Send the samples", berlin_midnight + timedelta(hours=15), False),
            (anna, "Plan the visit", berlin_midnight + timedelta(days=1, hours=9), False),
            (anna, "Already done", berlin_midnight + timedelta(hours=10), True),
            (ben, "Ben's call", berlin_midnight + timedelta(hours=12), False),
        ]:
            session.add(
                FollowUp(
                    title=title,
                    owner_id=owner.id,
                    contact_id=clara,
                    due_at=due,
                    done_at=due if done else None,
                )
            )
        return anna.id


def test_the_digest_holds_today_overdue_and_signals_with_links(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    anna = anna_s_day(db, settings, tmp_path)
    with db.read_session() as session:
        digest = build_digest(session, anna, now=MORNING, app_url=PUBLIC)
    assert digest.day.isoformat() == "2026-03-11"
    assert [line.text for line in digest.overdue] == ["Call <Clara> about the quote"]
    assert [line.text for line in digest.today] == ["Send the samples"]
    assert digest.today[0].detail == "Clara Jensen · at 15:00"  # her time, not UTC's
    assert digest.overdue[0].link and digest.overdue[0].link.startswith(f"{PUBLIC}/app/#/contacts/")
    assert sorted(digest.signals) == ["awaiting_reply", "unanswered"]
    (waiting,) = digest.signals["awaiting_reply"]
    assert waiting.text == "Clara Jensen <clara@brightline-dental.co.uk>"
    assert waiting.detail.startswith("No reply to the email sent on")
    assert digest.count == 4

    message = render_digest(digest, sender=f"Rapport <{BOT}>", app_url=PUBLIC)
    assert message["Subject"] == "Your day in Rapport: 4 things to do (Wed 11 Mar)"
    assert message["Auto-Submitted"] == "auto-generated"
    plain = message.get_body(("plain",))
    rich = message.get_body(("html",))
    assert plain is not None and rich is not None
    text, markup = plain.get_content(), rich.get_content()
    for part in (text, markup):
        for heading in ("Overdue follow-ups", "Follow-ups today", "Waiting for a reply"):
            assert heading in part
    assert "- Call <Clara> about the quote" in text
    assert "Call &lt;Clara&gt; about the quote" in markup and "<Clara>" not in markup
    assert f'href="{PUBLIC}/app/#/my-day"' in markup


def test_a_day_with_nothing_to_do_sends_nothing(
    db: Database, settings: Settings, smtp_server: tuple[Receiver, int, Path], cli: Cli
) -> None:
    receiver, port, bundle = smtp_server
    token_for(db, BEN)
    env = {"RAPPORT_SMTP_URL": smtp_url(port), "RAPPORT_CA_BUNDLE": str(bundle)}
    result = cli("digest", "send", "--user", BEN, env=env)
    assert result.exit_code == 0, result.output
    assert "nothing to do today, nothing sent" in result.output
    assert receiver.messages == []


def test_digest_send_goes_through_starttls_and_auth_once_a_day(
    db: Database,
    settings: Settings,
    tmp_path: Path,
    smtp_server: tuple[Receiver, int, Path],
    cli: Cli,
) -> None:
    receiver, port, bundle = smtp_server
    anna_s_day(db, settings, tmp_path)
    env = {
        "RAPPORT_SMTP_URL": smtp_url(port),
        "RAPPORT_CA_BUNDLE": str(bundle),
        "RAPPORT_PUBLIC_URL": PUBLIC,
    }
    result = cli("digest", "send", "--user", ANNA, env=env)
    assert result.exit_code == 0, result.output
    assert f"{ANNA}: sent (" in result.output
    ((envelope, message),) = receiver.messages
    assert envelope.mail_from == BOT and envelope.rcpt_tos == [ANNA]
    assert receiver.logins and receiver.logins[0][1] == BOT
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["From"] == f"Rapport <{BOT}>"
    again = cli("digest", "send", "--user", ANNA, env=env)
    assert "already sent today" in again.output
    assert len(receiver.messages) == 1
    forced = cli("digest", "send", "--user", ANNA, "--force", env=env)
    assert forced.exit_code == 0 and len(receiver.messages) == 2


def test_a_wrong_password_or_an_untrusted_certificate_is_said_plainly(
    db: Database,
    settings: Settings,
    tmp_path: Path,
    smtp_server: tuple[Receiver, int, Path],
    cli: Cli,
) -> None:
    receiver, port, bundle = smtp_server
    anna_s_day(db, settings, tmp_path)
    wrong = cli(
        "digest",
        "send",
        env={"RAPPORT_SMTP_URL": smtp_url(port, password="nope"), "RAPPORT_CA_BUNDLE": str(bundle)},
    )
    assert wrong.exit_code == 1
    assert "refused the sign-in (535" in wrong.output and "nope" not in wrong.output
    untrusted = cli("digest", "send", "--user", ANNA, env={"RAPPORT_SMTP_URL": smtp_url(port)})
    assert untrusted.exit_code == 1
    assert "is not trusted" in untrusted.output and "RAPPORT_CA_BUNDLE" in untrusted.output
    nobody = cli("digest", "send", env={"RAPPORT_SMTP_URL": f"smtp://127.0.0.1:{port}"})
    assert nobody.exit_code != 0 and "names no sender" in nobody.output
    assert receiver.messages == []


def test_an_smtp_url_that_would_send_a_password_in_clear_is_refused() -> None:
    with pytest.raises(SendFailed, match="sends in clear"):
        SmtpTarget.parse("smtp://user:pw@mail.example:25")
    with pytest.raises(SendFailed, match="tenant= and client_id="):
        SmtpTarget.parse(
            "smtp+starttls://bot%40x.example:secret@smtp.office365.com:587?auth=xoauth2"
        )
    target = SmtpTarget.parse("smtps://bot%40x.example:p%40ss@mail.example?from=crm%40x.example")
    assert (target.port, target.user, target.password, target.sender) == (
        465,
        "bot@x.example",
        "p@ss",
        "crm@x.example",
    )


def test_xoauth2_with_an_app_only_token_from_entra(
    db: Database,
    settings: Settings,
    tmp_path: Path,
    ca: trustme.CA,
    identity: IdentityEmulator,  # noqa: F811
) -> None:
    """Exchange Online without basic SMTP AUTH: the app's token, SASL XOAUTH2."""
    tenant = identity.add_tenant(domain="northwind.onmicrosoft.com")
    app = identity.add_app(tenant, secret="app-secret", roles={EXCHANGE: {"SMTP.SendAsApp"}})
    identity.grant_mailbox(app, BOT)
    receiver = Receiver(identity)
    context = __import__("ssl").create_default_context(__import__("ssl").Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "both-cas.pem"
    bundle.write_bytes(ca.cert_pem.bytes() + identity.ca_path.read_bytes())
    port = free_port()
    controller = LongAuthController(
        receiver,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        auth_exclude_mechanism=["LOGIN", "PLAIN"],
    )
    controller.start()
    try:
        query = f"?auth=xoauth2&tenant={tenant.id}&client_id={app.client_id}"
        configured = dataclasses.replace(
            settings,
            smtp_url=smtp_url(port, password="app-secret", query=query),
            ca_bundle=bundle,
            graph_authority_host=identity.authority_host,
        )
        message = EmailMessage()
        message["To"] = ANNA
        message["Subject"] = "token test"
        message.set_content("hello")
        send(configured, message)
        assert receiver.logins == [("XOAUTH2", BOT)]
        assert len(receiver.messages) == 1
        # Without the SMTP permission Exchange refuses the token: a clear sign-in refusal.
        app.roles = {EXCHANGE: {"IMAP.AccessAsApp"}}
        from server.mail_ingest.oauth import forget_cached_tokens

        forget_cached_tokens()
        with pytest.raises(SendFailed, match="refused the sign-in"):
            send(configured, message)
    finally:
        controller.stop()


def test_the_worker_sends_each_digest_at_the_user_s_morning_once(
    db: Database, settings: Settings, tmp_path: Path, smtp_server: tuple[Receiver, int, Path]
) -> None:
    receiver, port, bundle = smtp_server
    anna_s_day(db, settings, tmp_path)
    configured = dataclasses.replace(settings, smtp_url=smtp_url(port), ca_bundle=bundle)
    scheduler = DigestScheduler(db, configured)
    early = datetime(2026, 3, 11, 5, 0, tzinfo=UTC)  # 06:00 in Berlin, 05:00 for Ben (UTC)
    assert scheduler.schedule(now=early) == 0
    scheduler._next = 0.0  # the next look, without waiting five minutes
    assert scheduler.schedule(now=MORNING) == 2  # Anna (09:30) and Ben (08:30): both past 7
    scheduler._next = 0.0
    assert scheduler.schedule(now=MORNING) == 0, "queued once"
    worker = Worker(db, configured, idle_sleep=0)
    worker.digests._next = float("inf")  # this test drives the schedule itself
    worker.run(once=True)
    with db.read_session() as session:
        states = dict(
            session.execute(
                select(Job.status, func.count()).where(Job.kind == JOB).group_by(Job.status)
            ).all()
        )
    assert states == {"done": 2}
    # Each went out once (built at the time the job ran: their follow-ups are overdue by now).
    assert sorted(str(m["To"]) for _, m in receiver.messages) == [ANNA, BEN]
    scheduler._next = 0.0
    assert scheduler.schedule(now=MORNING + timedelta(hours=2)) == 0, "once per day"


def test_people_turn_their_digest_off_or_move_it(
    db: Database, client: FlaskClient, settings: Settings
) -> None:
    anna = auth(token_for(db, ANNA))
    got = client.get("/api/v1/me/digest", headers=anna).get_json()
    assert got == {"enabled": True, "hour": 7, "time_zone": "UTC", "sending": False}
    moved = client.put("/api/v1/me/digest", json={"hour": 9}, headers=anna)
    assert moved.status_code == 200 and moved.get_json()["hour"] == 9
    off = client.put("/api/v1/me/digest", json={"enabled": False}, headers=anna).get_json()
    assert off["enabled"] is False and off["hour"] == 9
    bad = client.put("/api/v1/me/digest", json={"hour": 24}, headers=anna)
    assert bad.status_code == 422
    from server.crm.digest import due_users

    with db.read_session() as session:
        assert due_users(session, datetime(2026, 3, 11, 10, 0, tzinfo=UTC)) == []
