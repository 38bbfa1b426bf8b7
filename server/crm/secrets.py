"""Re-encrypting every stored secret with the current key (`rapport secrets rotate`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.crypto import SecretBox
from server.models import MailboxLink, Setting, Webhook

# Every column that holds a SecretBox token. A new encrypted column must be listed here, or
# rotation would leave it under the old key (tests/integration/test_secrets.py checks the list).
ENCRYPTED_COLUMNS = (MailboxLink.secret, Webhook.secret)
# Settings whose value holds a SecretBox token under "sealed" (a pending Microsoft sign-in,
# server/mail_ingest/links.py), by key prefix.
SEALED_SETTINGS = ("graph.signin.",)


def rotate_secrets(session: Session, box: SecretBox) -> int:
    count = 0
    for column in ENCRYPTED_COLUMNS:
        model = column.class_
        for row in session.scalars(select(model).where(column.is_not(None))):
            value = getattr(row, column.key)
            setattr(row, column.key, box.rotate(value))
            count += 1
    for prefix in SEALED_SETTINGS:
        for setting in session.scalars(select(Setting).where(Setting.key.startswith(prefix))):
            value = dict(setting.value)
            sealed = str(value["sealed"]).encode("ascii")
            setting.value = {**value, "sealed": box.rotate(sealed).decode("ascii")}
            count += 1
    return count
