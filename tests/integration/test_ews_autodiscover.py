"""Linking an on-premises mailbox by its address alone: Autodiscover (POX) finds the EWS URL.

The EWS emulator answers Autodiscover.xml as Exchange does; RAPPORT_EWS_AUTODISCOVER_URL (from
`EwsEmulator.env`) points Rapport's two production candidates -- https://{domain}/... then
https://autodiscover.{domain}/... -- at it, the host asked becoming the first path segment.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select

from server.db import Database
from server.models import MailboxLink
from tests.conftest import Cli
from tests.emulators.ews import EwsEmulator, ews, ews_server  # noqa: F401
from tests.integration.test_ews_source import PASSWORD, SERVICE, customer_mail, poll

DOMAIN = "northwind-supplies.com"


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite only: this module is about finding the server."""
    return str(request.param)


@pytest.fixture
def env(env: dict[str, str], ews: EwsEmulator) -> dict[str, str]:  # noqa: F811
    ews.add_account(SERVICE, PASSWORD, impersonation=True)
    return {**env, **ews.env(), "EWS_PASSWORD": PASSWORD}


def add(cli: Cli, owner: str, *extra: str) -> tuple[int, str]:
    result = cli(
        "mailbox", "add", "ews", "--owner", owner, "--user", SERVICE,
        "--password-env", "EWS_PASSWORD", "--no-calendar", *extra,
    )  # fmt: skip
    return result.exit_code, str(result.output)


def asked(ews: EwsEmulator) -> list[tuple[str | None, str | None]]:  # noqa: F811
    """(host, address) of each Autodiscover request answered."""
    return [(e.user, e.mailbox) for e in ews.log if e.operation == "Autodiscover"]


def test_the_address_alone_finds_the_ews_url_which_is_printed_saved_and_synced(
    cli: Cli,
    db: Database,
    env: dict[str, str],
    ews: EwsEmulator,  # noqa: F811
) -> None:
    owner = f"anna{os.getpid()}a@{DOMAIN}"
    ews.add_mailbox(owner)
    ews.deliver(owner, customer_mail(1, owner))
    ews.serve_autodiscover(f"autodiscover.{DOMAIN}")  # https://{domain}/... answers 404
    code, output = add(cli, owner)
    assert code == 0, output
    assert f"Autodiscover found the EWS URL {ews.url}" in output
    assert asked(ews) == [(f"autodiscover.{DOMAIN}", owner)]
    with db.session() as session:
        link = session.scalars(select(MailboxLink)).one()
    assert link.settings["server"] == ews.url and link.settings["autodiscovered"] is True
    poll(cli, db)
    with db.session() as session:
        assert session.scalars(select(MailboxLink.status)).one() == "active"


def test_a_redirected_address_is_followed_to_its_domain(
    cli: Cli,
    db: Database,
    env: dict[str, str],
    ews: EwsEmulator,  # noqa: F811
) -> None:
    owner = f"anna{os.getpid()}b@{DOMAIN}"
    moved = f"anna{os.getpid()}b@northwind.de"
    ews.add_mailbox(owner)
    ews.add_mailbox(moved)
    ews.serve_autodiscover(DOMAIN)
    ews.serve_autodiscover("northwind.de")
    ews.redirect_address(owner, moved)
    code, output = add(cli, owner)
    assert code == 0, output
    assert asked(ews) == [(DOMAIN, owner), ("northwind.de", moved)]
    assert f"via EWS {ews.url}" in output


def test_nothing_found_says_what_was_tried_and_saves_nothing(
    cli: Cli,
    db: Database,
    env: dict[str, str],
    ews: EwsEmulator,  # noqa: F811
) -> None:
    owner = f"anna{os.getpid()}c@{DOMAIN}"
    ews.add_mailbox(owner)
    code, output = add(cli, owner)
    assert code != 0
    assert "Autodiscover found no EWS URL" in output and "--server" in output
    assert output.count("HTTP 404") == 2, "both candidates were asked"
    ews.serve_autodiscover(DOMAIN)
    code, output = add(cli, f"nobody{os.getpid()}@{DOMAIN}")
    assert code != 0 and "can't be found" in output
    refused = cli(
        "mailbox", "add", "ews", "--owner", owner, "--user", SERVICE, "--password-env", "BAD",
        env={"BAD": "not-the-password"},
    )  # fmt: skip
    assert refused.exit_code != 0 and "HTTP 401, the sign-in was refused" in refused.output
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(MailboxLink)) == 0
