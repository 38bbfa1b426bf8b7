"""What the fault tests share: run the worker until the state converges, and read what an admin
sees of a link while it does (`rapport mailbox list`, GET /api/v1/admin/mailboxes).

A failed sync puts the link in "error" with a next run a back-off away; the tests let that time
pass (`expire_killed_leases` makes the link due) instead of waiting, as the crash suite does.
How many fault episodes a test runs comes from RAPPORT_RELIABILITY_FAULTS (the bench's
`--faults N`), like the crash suite's kills.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from server.crm.users import add_user, create_token
from server.db import Database
from server.models import MailboxLink
from tests.conftest import Cli
from tests.reliability.crash import expire_killed_leases, rapport

FAULTS_VARIABLE = "RAPPORT_RELIABILITY_FAULTS"
ADMIN = "it@northwind-supplies.com"


def episodes(default: int) -> int:
    """Fault episodes a test runs (the bounded default unless the bench asks for more)."""
    value = os.environ.get(FAULTS_VARIABLE, "").strip()
    return int(value) if value else default


@dataclass(frozen=True)
class LinkView:
    status: str
    last_error: str | None
    status_reason: str | None


def link_view(db: Database, link_id: int) -> LinkView:
    from server.crm.mailboxes import what_to_do

    with db.read_session() as session:
        link = session.get(MailboxLink, link_id)
        assert link is not None
        return LinkView(link.status, link.last_error, what_to_do(link))


@dataclass
class Convergence:
    """The rounds of `rapport worker --once` it took, and every failure seen between them."""

    rounds: int = 0
    failures: list[str] = field(default_factory=list)


def converge(
    cli: Cli, db: Database, link_id: int, done: Callable[[], bool], *, max_rounds: int = 40
) -> Convergence:
    """`rapport worker --once` (in this process) until `done()` and the link is active; between
    rounds the back-off of a failed sync is let pass. Fails if it never converges."""
    seen = Convergence()
    while True:
        seen.rounds += 1
        result = cli("worker", "--once")
        assert result.exit_code == 0, result.output
        view = link_view(db, link_id)
        if view.status == "error":
            assert view.last_error and view.status_reason, view
            seen.failures.append(view.last_error)
        assert view.status in ("active", "error"), f"the link stopped: {view}"
        if view.status == "active" and done():
            return seen
        assert seen.rounds < max_rounds, f"no convergence after {max_rounds} rounds: {view}"
        expire_killed_leases(db)


def admin_token(db: Database) -> str:
    with db.session() as session:
        user = add_user(session, ADMIN, role="admin")
        return create_token(session, user, expires_in=timedelta(hours=1)).plaintext


def api_link(client: FlaskClient, token: str, link_id: int) -> dict[str, Any]:
    """The link as GET /api/v1/admin/mailboxes shows it."""
    answer = client.get("/api/v1/admin/mailboxes", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    [found] = [item for item in answer.get_json()["items"] if item["id"] == link_id]
    return dict(found)


def listed_row(cli: Cli, link_id: int) -> dict[str, str]:
    """The link's row in `rapport mailbox list`, by column (folded lines joined)."""
    result = cli("mailbox", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if "┃" in line)
    names = [cell.strip() for cell in header.split("┃")[1:-1]]
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if "│" in line]
    start = next((i for i, row in enumerate(rows) if row[0] == str(link_id)), None)
    assert start is not None, result.output
    cells = [rows[start]]
    for row in rows[start + 1 :]:
        if row[0]:
            break
        cells.append(row)
    return {
        name: " ".join(filter(None, column))
        for name, column in zip(names, zip(*cells, strict=True), strict=True)
    }


def wait_until(condition: Callable[[], bool], what: str, *, timeout: float = 60.0) -> float:
    """Poll `condition` until true; the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - started


class WorkerProcess:
    """`rapport worker` as a subprocess in its own process group, as systemd runs it."""

    def __init__(self, env: Mapping[str, str], log: Path) -> None:
        self.env = {**os.environ, **env}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                rapport("worker"),
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=out,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM, as `systemctl stop` sends; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
                raise AssertionError(f"the worker ignored SIGTERM: {self.tail()}") from None
        return int(self.proc.returncode)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
