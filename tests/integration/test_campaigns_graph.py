"""Campaigns sent through the sender's own Microsoft 365 mailbox (Graph sendMail, MIME) against
the Graph emulator: 200 people with throttling (429 with Retry-After) mid-way and a crash between
sending and recording — every recipient exactly once, found again in Sent Items."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.config import Settings, load_settings
from server.crm import campaigns
from server.db import Database
from server.mail_out.campaign_paths import GraphPath, SendingPath
from server.mail_out.campaigns import CampaignSender
from server.models import Campaign, CampaignRecipient
from tests.conftest import Cli
from tests.emulators.fixtures import identity, identity_server  # noqa: F401
from tests.emulators.graph import GraphEmulator, graph, graph_server  # noqa: F401
from tests.emulators.identity import GRAPH, IdentityEmulator
from tests.integration.test_campaigns import ANNA, PUBLIC, draft, people, run_jobs, sender, states
from tests.integration.test_graph_source import SECRET

ROLES = {GRAPH: {"Mail.Read", "Calendars.Read", "Mail.Send"}}


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite: the queue's PostgreSQL paths are covered by test_campaigns.py."""
    return str(request.param)


@pytest.fixture
def env(env: dict[str, str], graph: GraphEmulator) -> dict[str, str]:  # noqa: F811
    return {**env, **graph.env(), "GRAPH_SECRET": SECRET, "RAPPORT_PUBLIC_URL": PUBLIC}


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load_settings(env)


def graph_campaign(db: Database, cli: Cli, graph: GraphEmulator, identity: IdentityEmulator) -> int:  # noqa: F811
    tenant = identity.add_tenant()
    app = graph.graph_app(tenant, secret=SECRET, roles=ROLES)
    graph.add_mailbox(tenant, ANNA)
    viewer = sender(db)
    result = cli(
        "mailbox", "add", "graph", "--owner", ANNA, "--tenant", tenant.id,
        "--client-id", app.client_id, "--client-secret-env", "GRAPH_SECRET",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    people(db, 200)
    with db.session() as session:
        campaigns.set_path_limits(session, "graph", {"per_minute": 100_000})
    campaign_id = draft(db, viewer, sending_path="graph")
    with db.session() as session:
        campaigns.schedule(session, viewer, campaign_id)
    return campaign_id


class Crash(Exception):
    """The worker dies after Graph took a message, before Rapport recorded it."""


def test_200_recipients_through_graph_once_each_despite_429s_and_a_crash(
    db: Database,
    settings: Settings,
    cli: Cli,
    graph: GraphEmulator,  # noqa: F811
    identity: IdentityEmulator,  # noqa: F811
    tmp_path: Path,
) -> None:
    campaign_id = graph_campaign(db, cli, graph, identity)
    graph.retry_after = 0.05
    graph.fail_next("send", 429, code="ApplicationThrottled", retry_after=0.05, times=3)
    posts = 0

    def crashing(settings: Settings, session: Any, campaign: Campaign) -> SendingPath:
        link = campaigns.graph_link_of(session, campaign.sender_id)
        assert link is not None

        class Crashing(GraphPath):
            def send(self, raw: bytes, sender: str, recipient: str) -> str:
                nonlocal posts
                answer = super().send(raw, sender, recipient)
                posts += 1
                if posts == 57:
                    raise Crash("killed after the 57th message")
                return answer

        return Crashing(settings, link)

    run_jobs(db, CampaignSender(settings, open_path=crashing))

    sent_to = [
        str(email.message_from_bytes(mime, policy=email.policy.default)["To"])
        for _mailbox, mime in graph.sent
    ]
    assert len(sent_to) == 200 and len(set(sent_to)) == 200
    assert graph.count(kind="send") >= 203  # the three 429s were retried
    assert graph.violations() == []  # never before a Retry-After
    assert len(graph.messages_in(ANNA, "sentitems")) == 200
    assert states(db, campaign_id) == {"sent": 200}
    with db.read_session() as session:
        recovered = session.scalar(
            select(CampaignRecipient).where(
                CampaignRecipient.provider_response.like("found in Sent Items%")
            )
        )
        assert recovered is not None and recovered.activity_id is not None
