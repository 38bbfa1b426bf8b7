"""Schemathesis against the running app: every operation of /api/v1/openapi.json, with generated
valid and invalid requests, must never answer 5xx and must answer as the document says (a
documented status, the documented content type, a body matching the documented schema).

A fixed number of examples per operation and mode, derandomized, so a run is the same every time:
positive (valid input), negative (invalid input) and, for operations on an item, valid input
aimed at items that exist (random ids mostly miss). The admin calls, with a Rapport API token,
so every operation is reachable. Linking an IMAP mailbox tests the connection first: that step
is stubbed (no network in tests), so the rest of the operation is exercised; so is argon2's cost (a cheap hasher), which would
otherwise take most of the run.

Schemathesis' pytest plugin (`schema.parametrize`) does not run under pytest 9 (it sets a node
attribute pytest 9 removed), so the operations are driven with `as_strategy` and Hypothesis.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from argon2 import PasswordHasher
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup

from server.app import create_app
from server.config import load_settings
from server.crm import passwords
from server.crm.users import add_user, create_token
from server.db import Database
from server.mail_ingest.sources import imap
from tests.conftest import SECRET_KEY, _fresh_database_url
from tests.integration.test_authz_matrix import ANNA, BOSS, World, _capture_private_emails

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Per operation and mode; raise it locally (SCHEMATHESIS_EXAMPLES=100) for a deeper search.
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "10"))
SEED_KINDS = (
    "contact",
    "company",
    "deal",
    "follow_up",
    "note",
    "never_log",
    "token",
    "imap_link",
    "drop_link",
    "rule",
    "field",
    "pipeline",
    "signal",
)


@dataclass
class Served:
    world: World
    schema: Any  # schemathesis' OpenApiSchema
    known: dict[str, int | str]  # path parameter name -> the id (or key) of an item that exists


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    root = tmp_path_factory.mktemp(f"schemathesis-{request.param}")
    database = _fresh_database_url(request.param, request, root, migrated=True)
    url = next(database)
    db = Database(url)
    app_settings = load_settings(
        {
            "RAPPORT_DATA_DIR": str(root),
            "RAPPORT_DATABASE_URL": url,
            "RAPPORT_SECRET_KEY": SECRET_KEY,
            "RAPPORT_INTERNAL_DOMAINS": "northwind-supplies.com",
            "RAPPORT_LOG_LEVEL": "ERROR",
            "RAPPORT_RATE_LIMIT_PER_MINUTE": "0",
            "RAPPORT_DROP_DOMAIN": "drop.northwind-supplies.com",
        }
    )
    headers, user_ids = {}, {}
    with db.session() as session:
        for address, role in [(ANNA, "member"), (BOSS, "admin")]:
            user = add_user(session, address, role=role)
            token = create_token(session, user, expires_in=timedelta(days=1)).plaintext
            headers[address] = {"Authorization": f"Bearer {token}"}
            user_ids[address] = user.id
    private = {a: _capture_private_emails(db, app_settings, root, a) for a in (ANNA, BOSS)}
    app = create_app(app_settings, db=db)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(imap, "test_connection", lambda settings: ["INBOX", "Sent"])
        # argon2 at its real cost spends most of a run hashing generated passwords.
        patch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=256))
        passwords._dummy_hash.cache_clear()
        world = World(app, app.test_client(), db, app_settings, headers, user_ids, private)
        known: dict[str, int | str] = {"user_id": user_ids[ANNA]}
        for kind in SEED_KINDS:
            for owner in (ANNA, BOSS):
                made = world.item(kind, owner, fresh=True)
                known.update({k: v for k, v in made.items() if isinstance(v, int | str)})
        known["activity_id"] = private[ANNA][0]["activity_id"]
        config = SchemathesisConfig.from_dict({"seed": 20260901})
        schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)
        yield Served(world, schema, known)
    passwords._dummy_hash.cache_clear()
    db.dispose()
    next(database, None)


def run_operation(
    operation: Any, strategy: Any, headers: dict[str, str], examples: int
) -> str | None:
    """Up to `examples` generated calls; the failure schemathesis reports, if any."""

    @given(case=strategy)
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    def calls(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    try:
        calls()
    except Unsatisfiable:
        return None  # nothing to make invalid: an operation without any input
    except (Exception, FailureGroup) as failure:
        return f"{operation.label}:\n{failure}"
    return None


def test_every_operation_answers_as_documented_and_never_with_5xx(served: Served) -> None:
    headers = served.world.headers[BOSS]
    failures, started, operations = [], time.perf_counter(), 0
    for result in served.schema.get_all_operations():
        operation = result.ok()
        operations += 1
        strategies = [
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        ]
        names = [p.name for p in operation.path_parameters]
        if names and operation.method.upper() != "DELETE" and set(names) <= set(served.known):
            fixed = {name: served.known[name] for name in names}
            strategies.append(operation.as_strategy(path_parameters=fixed))
        for strategy in strategies:
            failure = run_operation(operation, strategy, headers, EXAMPLES)
            if failure is not None:
                failures.append(failure)
    elapsed = time.perf_counter() - started
    assert operations > 80
    assert not failures, f"{len(failures)} failures in {elapsed:.0f} s:\n\n" + "\n\n".join(failures)
