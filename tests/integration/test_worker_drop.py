"""The drop address end to end: `rapport mailbox add drop`, a real SMTP session to the listener
inside `rapport worker`, and the mail on the owner's timeline."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from server.db import Database
from server.models import Activity, MailboxLink, MailboxObservation
from tests.conftest import Cli
from tests.support.mail import make_email
from tests.support.postgres import free_port

ANNA = "anna@northwind-supplies.com"
CLARA = "Clara Jensen <clara@brightline-dental.co.uk>"


def wait_for(condition: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_bcc_and_forwards_to_a_drop_address_land_on_the_owner_s_timeline(
    cli: Cli, db: Database, env: dict[str, str]
) -> None:
    port = free_port()
    drop_env = {
        "RAPPORT_DROP_DOMAIN": "in.northwind-supplies.com",
        "RAPPORT_DROP_LISTEN": f"127.0.0.1:{port}",
    }
    drop_cli = Cli({**cli.env, **drop_env})
    result = drop_cli("mailbox", "add", "drop", "--owner", ANNA)
    assert result.exit_code == 0, result.output
    address = result.output.strip().splitlines()[-1]
    assert address.startswith("crm+") and address.endswith("@in.northwind-supplies.com")

    worker = subprocess.Popen(
        [sys.executable, "-m", "server", "worker"], env={**os.environ, **env, **drop_env}
    )
    try:
        wait_for(lambda: _listening(port))
        bcc = make_email(sender=ANNA, to=CLARA, subject="Your quote", message_id="<bcc@nw>")
        original = make_email(
            sender=CLARA, to=ANNA, subject="Invoice question", message_id="<orig@bl>"
        )
        forward = EmailMessage()
        forward["From"], forward["To"], forward["Subject"] = ANNA, address, "Fwd: Invoice question"
        forward.set_content("FYI")
        forward.add_attachment(original, maintype="message", subtype="rfc822")
        forged = make_email(
            sender="Mallory <mallory@evil.example>",
            to=address,
            subject="Hi",
            message_id="<forged@evil>",
        )
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.sendmail(ANNA, [address], bcc)
            smtp.sendmail(ANNA, [address], forward.as_bytes())
            smtp.sendmail("mallory@evil.example", [address], forged)
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                smtp.sendmail(ANNA, ["crm+unknowntoken@in.northwind-supplies.com"], bcc)
        code, text = refused.value.recipients["crm+unknowntoken@in.northwind-supplies.com"]
        assert code == 550 and b"unknown or revoked" in text

        def captured() -> dict[str, str]:
            with db.session() as session:
                return dict(session.execute(select(Activity.message_key, Activity.direction)).all())

        wait_for(lambda: len(captured()) == 3)
        assert captured() == {
            "mid:bcc@nw": "outgoing",
            "mid:orig@bl": "incoming",
            "mid:forged@evil": "incoming",
        }
        with db.session() as session:
            link_id = session.scalars(
                select(MailboxLink.id).where(MailboxLink.kind == "drop")
            ).one()
            owners = set(session.scalars(select(MailboxObservation.link_id)))
        assert owners == {link_id}, "the token, not the From header, decides whose mail it is"
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
