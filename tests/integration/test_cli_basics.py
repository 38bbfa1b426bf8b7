"""The foundation's commands work end to end on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from server.crm.errors import NotFound
from server.crm.users import authenticate_api_token
from server.db import Database
from server.models import ApiToken, MailboxLink, User
from tests.conftest import Cli


def test_help_lists_the_foundation_commands(cli: Cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    for command in ("serve", "db", "user", "token", "secrets", "backup", "restore", "jobs"):
        assert f"  {command}" in result.output
    for sub in (("db", "upgrade"), ("user", "add"), ("token", "create"), ("token", "revoke")):
        sub_help = cli(*sub, "--help")
        assert sub_help.exit_code == 0 and "Usage: " in sub_help.output


def test_db_upgrade_reports_the_revision(cli: Cli, db: Database) -> None:
    result = cli("db", "upgrade")
    assert result.exit_code == 0
    assert f"database at {db.head_revision()}" in result.output
    assert "up to date" in cli("db", "status").output


def test_user_add_and_duplicate_is_refused(cli: Cli, db: Database) -> None:
    assert cli("user", "add", "Anna@Northwind-Supplies.com", "--role", "admin").exit_code == 0
    with db.session() as session:
        user = session.scalars(select(User)).one()
        assert (user.email, user.role) == ("anna@northwind-supplies.com", "admin")
    again = cli("user", "add", "anna@northwind-supplies.com", "--role", "member")
    assert again.exit_code == 1
    assert "already exists" in again.output


def test_user_add_claims_links_already_captured_for_that_address(cli: Cli, db: Database) -> None:
    with db.session() as session:
        session.add(MailboxLink(kind="import", owner_address="ben@northwind-supplies.com"))
    assert cli("user", "add", "ben@northwind-supplies.com", "--role", "member").exit_code == 0
    with db.session() as session:
        link = session.scalars(select(MailboxLink)).one()
        assert link.owner_user_id is not None


def test_token_is_shown_once_hashed_at_rest_and_revocable(cli: Cli, db: Database) -> None:
    cli("user", "add", "anna@northwind-supplies.com", "--role", "member")
    result = cli("token", "create", "anna@northwind-supplies.com", "--name", "laptop")
    assert result.exit_code == 0
    plaintext = result.stdout.strip().splitlines()[-1]
    assert plaintext.startswith("rpt_")
    with db.session() as session:
        stored = session.scalars(select(ApiToken)).one()
        assert plaintext not in {stored.token_hash, stored.prefix}
        assert stored.expires_at is not None
        assert (
            authenticate_api_token(session.connection(), plaintext).viewer.email
            == "anna@northwind-supplies.com"
        )
        token_id = stored.id
    assert cli("token", "revoke", str(token_id)).exit_code == 0
    with db.session() as session, pytest.raises(NotFound, match="revoked"):
        authenticate_api_token(session.connection(), plaintext)


def test_token_for_unknown_user_says_what_to_do(cli: Cli) -> None:
    result = cli("token", "create", "nobody@example.com")
    assert result.exit_code == 1
    assert "rapport user add" in result.output


def test_token_expiry_must_be_a_duration(cli: Cli) -> None:
    cli("user", "add", "anna@northwind-supplies.com", "--role", "member")
    result = cli("token", "create", "anna@northwind-supplies.com", "--expires", "soon")
    assert result.exit_code == 2
    assert "not a duration" in result.output


def test_revoking_an_unknown_token_fails_clearly(cli: Cli) -> None:
    result = cli("token", "revoke", "999")
    assert result.exit_code == 1
    assert "no API token with id 999" in result.output
