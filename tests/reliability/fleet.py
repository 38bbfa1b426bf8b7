"""A scaled-out deployment on one machine: `rapport serve` (gunicorn) and `rapport worker`
processes sharing one PostgreSQL, and the API traffic a team's task panes send to them.

Each process runs in its own session (process group), so a SIGKILL of the group takes a
gunicorn master with its workers, as a machine failing would. The traffic goes through a
client-side balancer that takes a server out of rotation at its first connection failure (as
nginx's `max_fails=1` does): requests in flight to a killed server fail, later ones go to the
survivor. Every answer is kept, so the test can check each acknowledged write afterwards.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import default
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import Any

import requests

from tests.reliability.crash import rapport
from tests.support.postgres import free_port

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class Process:
    """One `rapport ...` subprocess in its own process group, its output in a log file."""

    def __init__(self, name: str, args: Sequence[str], env: Mapping[str, str], logs: Path):
        self.name = name
        self.log = logs / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                rapport(*args),
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def pause(self) -> None:
        """SIGSTOP: frozen where it is, holding what it holds."""
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the whole group: no handler runs, no transaction is finished."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> int:
        """SIGTERM (what systemd sends) and wait; the exit code."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} ignored SIGTERM: {self.tail()}") from None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


class Server(Process):
    """`rapport serve --workers 2` on a free loopback port."""

    def __init__(self, name: str, env: Mapping[str, str], logs: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            name, ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "2"],
            env, logs,
        )  # fmt: skip

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.alive(), f"{self.name} exited: {self.tail()}"
            try:
                if requests.get(f"{self.url}/healthz", timeout=10).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert time.monotonic() < deadline, f"{self.name} never became healthy: {self.tail()}"
            time.sleep(0.1)


@dataclass(frozen=True)
class Answer:
    """One request as the client saw it: a status, or the connection error instead."""

    server: str
    kind: str
    status: int | None  # None: no answer (refused, reset, timed out)
    body: dict[str, Any] | None
    sent: dict[str, Any] | None
    at: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class PaneEmail:
    """An email as the task pane would log it (POST /api/v1/activities/log)."""

    message_id: str
    payload: dict[str, Any]


def pane_email(raw: bytes) -> PaneEmail | None:
    """What Office.js would show of a captured message, or None if its headers are too broken
    for the pane to log (the hostile part of the corpus)."""
    try:
        headers = BytesHeaderParser(policy=default).parsebytes(raw)
        message_id = str(headers["Message-ID"] or "").strip()
        ((name, sender),) = getaddresses([str(headers["From"] or "")])
        date = parsedate_to_datetime(str(headers["Date"]))
        to = [{"address": a, "name": n} for n, a in getaddresses([str(headers["To"] or "")]) if a]
        subject = str(headers["Subject"] or "")
    except (ValueError, TypeError, IndexError):
        return None
    if not message_id or "@" not in sender or date.tzinfo is None:
        return None
    payload = {
        "message_id": message_id,
        "subject": subject,
        "from": {"address": sender, "name": name},
        "to": to,
        "date": date.isoformat(),
    }
    return PaneEmail(message_id, payload)


@dataclass
class Traffic:
    """Client threads, each signed in as one user, sending a pane's mix of reads and writes
    round-robin to the servers still in rotation, until stopped."""

    servers: Mapping[str, str]  # name -> base URL
    tokens: Sequence[str]
    lookups: Sequence[str]  # addresses to look up
    captured: Sequence[PaneEmail]  # emails the workers are capturing too, logged from the pane
    pause: float = 0.03
    answers: list[Answer] = field(default_factory=list)
    down: dict[str, float] = field(default_factory=dict)  # server -> when taken out
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def start(self) -> None:
        for number, token in enumerate(self.tokens):
            thread = threading.Thread(target=self._client, args=(number, token), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=STOP_TIMEOUT)
            assert not thread.is_alive(), "a client thread hung"

    def served_since(self, server: str, since: float) -> int:
        with self._lock:
            return sum(1 for a in self.answers if a.server == server and a.at >= since and a.ok)

    def _pick(self) -> str:
        with self._lock:
            up = [name for name in self.servers if name not in self.down]
        assert up, "every server is out of rotation"
        return up[next(self._turn) % len(up)]

    def _client(self, number: int, token: str) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        contacts: list[int] = []
        steps = self._steps(number, contacts)
        try:
            for step in itertools.cycle(steps):
                if self._stop.is_set():
                    return
                step(session)
                time.sleep(self.pause)
        finally:
            session.close()

    def _steps(self, number: int, contacts: list[int]) -> list[Callable[[requests.Session], None]]:
        made = itertools.count()
        lookups = itertools.cycle(self.lookups)
        captured = iter(self.captured[number :: len(self.tokens)])

        def lookup(session: requests.Session) -> None:
            self._send(session, "lookup", "GET", f"/api/v1/lookup?email={next(lookups)}")

        def contact(session: requests.Session) -> None:
            n = next(made)
            body = {"name": f"Client {number}-{n}", "emails": [f"c{number}-{n}@scale-out.example"]}
            answer = self._send(session, "contact", "POST", "/api/v1/contacts", body)
            if answer.ok and answer.body is not None:
                contacts.append(int(answer.body["id"]))

        def note(session: requests.Session) -> None:
            if contacts:
                body = {"body": f"scale-out note {number}-{next(made)}", "contact_id": contacts[-1]}
                self._send(session, "note", "POST", "/api/v1/notes", body)

        def log_email(session: requests.Session) -> None:
            email = next(captured, None)
            if email is None:  # every shared email logged: one only the pane has
                n = next(made)
                email = PaneEmail(
                    f"<pane-{number}-{n}@brightline-dental.co.uk>",
                    {
                        "message_id": f"<pane-{number}-{n}@brightline-dental.co.uk>",
                        "subject": f"Order {number}-{n}",
                        "from": {"address": "clara@brightline-dental.co.uk", "name": "Clara"},
                        "to": [{"address": "anna@northwind-supplies.com", "name": "Anna"}],
                        "date": "2026-02-20T10:00:00+00:00",
                        "body": "Please confirm the order.",
                    },
                )
            self._send(session, "log", "POST", "/api/v1/activities/log", email.payload)

        return [lookup, contact, lookup, note, log_email]

    def _send(
        self,
        session: requests.Session,
        kind: str,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
    ) -> Answer:
        server = self._pick()
        try:
            response = session.request(method, self.servers[server] + path, json=body, timeout=30)
            parsed = response.json() if response.content else None
            answer = Answer(server, kind, response.status_code, parsed, body, time.monotonic())
        # A server killed while it sends its answer breaks the body, not the connection.
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ):
            answer = Answer(server, kind, None, None, body, time.monotonic())
            with self._lock:
                self.down.setdefault(server, answer.at)
        with self._lock:
            self.answers.append(answer)
        return answer
