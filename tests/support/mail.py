"""Building test emails and mailboxes on disk."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

BASE_DATE = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
_unique = itertools.count()


def make_email(
    *,
    sender: str,
    to: Sequence[str] | str,
    subject: str = "Quote for 40 chairs",
    body: str = "Hello,\n\nCould you send me a quote?\n\nThanks",
    message_id: str | None = "auto",
    date: datetime | None = None,
    cc: Sequence[str] = (),
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join([to] if isinstance(to, str) else to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or BASE_DATE)
    if message_id == "auto":
        message_id = f"<msg{next(_unique)}@test.example>"
    if message_id:
        msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def write_maildir(root: Path, messages: Iterable[bytes], *, folder: str = "") -> Path:
    """Write messages into a Maildir (a Maildir++ subfolder when `folder` is given)."""
    target = root / f".{folder}" if folder else root
    for sub in ("cur", "new", "tmp"):
        (target / sub).mkdir(parents=True, exist_ok=True)
    for n, raw in enumerate(messages):
        (target / "cur" / f"{1700000000 + n}.M{next(_unique)}P1.test:2,S").write_bytes(raw)
    return root


def write_mbox(path: Path, messages: Iterable[bytes]) -> Path:
    with path.open("wb") as fh:
        for raw in messages:
            fh.write(b"From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n")
            body = raw.replace(b"\r\n", b"\n")
            body = b"\n".join(
                b">" + line if line.startswith(b"From ") else line for line in body.split(b"\n")
            )
            fh.write(body.rstrip(b"\n") + b"\n\n")
    return path


def days(n: float) -> timedelta:
    return timedelta(days=n)
