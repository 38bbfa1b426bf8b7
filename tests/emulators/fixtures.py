"""pytest fixtures for the emulators: one identity emulator per test process, switches reset
for each test. Import them into a test module (`from tests.emulators.fixtures import ...`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.mail_ingest.oauth import forget_cached_tokens
from tests.emulators.identity import IdentityEmulator


@pytest.fixture(scope="session")
def identity_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityEmulator]:
    with IdentityEmulator(tmp_path_factory.mktemp("identity")) as emulator:
        yield emulator


@pytest.fixture
def identity(identity_server: IdentityEmulator) -> Iterator[IdentityEmulator]:
    """The emulator with its fault switches reset, and no token cached in this process."""
    identity_server.reset()
    forget_cached_tokens()
    yield identity_server
    identity_server.reset()
    forget_cached_tokens()
