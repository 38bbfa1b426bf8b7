"""Secrets are encrypted at rest and `rapport secrets rotate` re-encrypts them with the new key."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select

from server.crm.secrets import ENCRYPTED_COLUMNS
from server.crypto import SecretBox, SecretError
from server.db import Database
from server.models import Base, MailboxLink, Webhook
from tests.conftest import SECRET_KEY, Cli

NEW_KEY = "new-secret-key-abcdefghijklmnopqrstuvwxyz0123456789"


def test_rotation_reencrypts_every_secret_and_old_key_then_fails(cli: Cli, db: Database) -> None:
    old_box = SecretBox([SECRET_KEY])
    with db.session() as session:
        session.add(
            MailboxLink(
                kind="imap", owner_address="a@northwind-supplies.com", secret=old_box.encrypt(b"pw")
            )
        )
        session.add(Webhook(url="https://hooks.example/x", secret=old_box.encrypt(b"hook")))

    result = cli("secrets", "rotate", env={"RAPPORT_SECRET_KEY": f"{NEW_KEY},{SECRET_KEY}"})
    assert result.exit_code == 0, result.output
    assert "2 secrets re-encrypted" in result.output

    new_only = SecretBox([NEW_KEY])
    with db.session() as session:
        link = session.scalars(select(MailboxLink)).one()
        hook = session.scalars(select(Webhook)).one()
        assert new_only.decrypt(link.secret or b"") == b"pw"
        assert new_only.decrypt(hook.secret) == b"hook"
        with pytest.raises(SecretError):
            old_box.decrypt(link.secret or b"")


def test_every_binary_secret_column_is_rotated() -> None:
    """A new encrypted column must be registered for rotation."""
    binary_columns = {
        f"{table.name}.{column.name}"
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if column.type.python_type is bytes and table.name != "blobs"
    }
    registered = {f"{c.class_.__tablename__}.{c.key}" for c in ENCRYPTED_COLUMNS}
    assert binary_columns == registered
    assert all(inspect(c.class_) is not None for c in ENCRYPTED_COLUMNS)


def test_wrong_key_gives_a_clear_error() -> None:
    token = SecretBox([SECRET_KEY]).encrypt(b"x")
    with pytest.raises(SecretError, match="RAPPORT_SECRET_KEY"):
        SecretBox([NEW_KEY]).decrypt(token)
