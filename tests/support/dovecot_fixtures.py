"""Fixtures for tests against a real Dovecot: one server per test process, one user per test.

The server is session-scoped (each xdist worker starts its own on its own ports); every test gets
a fresh user, so tests never see each other's mail. A test may stop or restart the server; the
`dovecot` fixture starts it again for the next test.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from server.mail_ingest.sources.imap import ImapSettings, Security
from tests.emulators.identity import IdentityEmulator
from tests.support.dovecot import DovecotServer, IntrospectionEndpoint

_users = itertools.count()


@dataclass
class ImapAccount:
    """A user on the test server, with settings to reach it."""

    server: DovecotServer
    user: str
    password: str

    def settings(self, security: Security = "ssl", **changes: Any) -> ImapSettings:
        port = self.server.imaps_port if security == "ssl" else self.server.imap_port
        values: dict[str, Any] = {
            "host": self.server.host,
            "port": port,
            "security": security,
            "user": self.user,
            "password": self.password,
            "ca_bundle": self.server.ca_path,
            "timeout": 10,
        }
        values.update(changes)
        return ImapSettings(**values)


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[DovecotServer]:
    server = DovecotServer()
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def dovecot(dovecot_server: DovecotServer) -> DovecotServer:
    """The running server (started again if an earlier test stopped it)."""
    dovecot_server.start()
    return dovecot_server


@pytest.fixture
def imap_account(dovecot: DovecotServer) -> ImapAccount:
    user = f"user{os.getpid()}x{next(_users)}"
    return ImapAccount(dovecot, user, dovecot.add_user(user))


# -- a second server that signs in with OAuth tokens judged by the identity emulator -----------


@pytest.fixture(scope="session")
def oauth_dovecot_server(identity_server: IdentityEmulator) -> Iterator[DovecotServer]:
    """A Dovecot whose XOAUTH2/OAUTHBEARER tokens are checked by the identity emulator (RFC 7662
    introspection over HTTPS); the password-based tests keep their own server."""
    server = DovecotServer(
        introspection=IntrospectionEndpoint(
            identity_server.introspection_url, identity_server.ca_path
        )
    )
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def oauth_dovecot(oauth_dovecot_server: DovecotServer) -> DovecotServer:
    """The running OAuth server (started again if an earlier test stopped it)."""
    oauth_dovecot_server.start()
    return oauth_dovecot_server
