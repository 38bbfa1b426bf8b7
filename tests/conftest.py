"""The fixtures everything uses: a migrated database on both backends, settings, app, client, CLI.

The schema is migrated once per backend per test process and cloned for each test (a copied
SQLite file; a PostgreSQL database created from a TEMPLATE), so every test starts from a fresh,
fully migrated database in milliseconds.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient

from server.app import create_app
from server.cli import main
from server.config import Settings, load_settings
from server.db import Database
from tests.support.dovecot_fixtures import dovecot, dovecot_server, imap_account  # noqa: F401
from tests.support.postgres import PostgresServer

SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
BACKENDS = ["sqlite", "postgresql"]
_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "rapport.sqlite3"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    db.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> str:
    postgres_server.execute("CREATE DATABASE rapport_template")
    db = Database(postgres_server.url("rapport_template"))
    db.upgrade()
    db.dispose()
    return "rapport_template"


def _fresh_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool
) -> Iterator[str]:
    if backend == "sqlite":
        path = tmp_path / "rapport.sqlite3"
        if migrated:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"test_{os.getpid()}_{next(_counter)}"
    template = request.getfixturevalue("postgres_template") if migrated else "template0"
    server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield server.url(name)
    server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database on each backend."""
    yield from _fresh_database_url(backend, request, tmp_path, migrated=True)


@pytest.fixture
def empty_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A fresh, empty database (no schema) on each backend."""
    yield from _fresh_database_url(backend, request, tmp_path, migrated=False)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """The environment a Rapport process of this test runs with."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    return {
        "RAPPORT_DATA_DIR": str(data_dir),
        "RAPPORT_DATABASE_URL": database_url,
        "RAPPORT_SECRET_KEY": SECRET_KEY,
        "RAPPORT_INTERNAL_DOMAINS": "northwind-supplies.com",
        "RAPPORT_LOG_FORMAT": "text",
        "RAPPORT_LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load_settings(env)


@pytest.fixture
def app(settings: Settings, db: Database) -> Flask:
    return create_app(settings, db=db)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Cli:
    """Runs `rapport ...` in-process with the test's environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        runner = CliRunner()
        full_env = {**self.env, **(env or {})}
        return runner.invoke(main, list(args), env=full_env, input=input, catch_exceptions=False)


@pytest.fixture
def cli(env: dict[str, str]) -> Cli:
    return Cli(env)
