"""Lookup and search latency at scale, on SQLite and PostgreSQL, beside notmuch.

The task pane opens on every email a person reads, so `GET /api/v1/lookup` must answer in a few
milliseconds however much mail has been captured (goal: p95 <= 10 ms at 1,000,000 activities over
50,000 contacts), and the search box must keep up with typing (goal: p95 <= 50 ms).

The dataset is a small business's shared mailboxes: eight staff, `--contacts` customer contacts
at `--contacts // 8` companies (15% on free-mail addresses), and `--activities` emails in
threads of one to five messages. Who writes how much follows a Zipf law, as real correspondence
does: a few contacts have thousands of emails, most have a handful. The emails are captured
through Rapport's own capture code (`prepare_item` + `capture`, the path every source takes after
parsing), so contacts, companies, threads, participants, observations and the search index are
exactly what real capture writes; only MIME parsing is skipped (it says nothing about lookup).
A thousand open deals and follow-ups give lookup its other sections.

Measured: for a fixed sample of contacts (a third picked by how much they write, the rest
uniformly), `GET /api/v1/lookup?email=A[&email=B]` as a member with a Rapport API token, through
the real Flask app in this process; the server-side time is the app's own request timer (from
its first hook: sign-in, the rate limiter, validation, the queries, JSON), with the in-process
client's time and the process's CPU time per call beside it. Before the calls, the database is
read once, as a server that has been answering for a while holds it: PostgreSQL into its shared
buffers (`pg_prewarm`; shared_buffers is a quarter of the machine's memory), SQLite's file into
the OS's page cache. Search: `GET /api/v1/search?q=` with name prefixes, company names, subject
words and address prefixes. notmuch gets the same emails as
small files, and `notmuch search --limit=20 'from:X or to:X'` for the same addresses is timed as
a subprocess (its start-up, measured with `notmuch count` of nothing, is reported beside it).
Calls are timed in blocks of fifty, each after waiting for others' jobs to leave the CPU mostly
idle (the machines this runs on are shared); how busy it was is reported.

    .venv/bin/python -m bench.lookup --activities 1000000 --contacts 50000 --postgres --notmuch \\
        --reuse --out docs/benchmarks.md --json /tmp/rapport-bench/lookup.json

`--calls search` measures the search box alone (the same queries; the lookups are not run), into
a block of its own in `--out` (`lookup-N-search`), so a change to search is measured without
measuring lookup again.

Building a million emails takes a while (see the build column of the results), so `--reuse`
keeps what it built under `--work`: the SQLite file, a PostgreSQL data directory (the server is
started on it again, and only stopped at the end), notmuch's maildir and index, each with a
`bench-build.json` of the parameters it was built with (and the member's token, the build
timings). A later run with the same parameters skips the build and only upgrades the schema to
the current migrations (so new indexes are created on the existing data, and timed); different
parameters, a build that did not finish, or no `--reuse` build afresh. The request budget per
token (`RAPPORT_RATE_LIMIT_PER_MINUTE`) is raised so that a thousand calls a minute are not
refused; the limiter still counts every call.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from bench import capture_vs_notmuch as cvn

# Bump when make_people, threads, emails or build change what a build holds: a kept build made
# with another version is not reused.
DATASET_VERSION = 1
BUILD_RECORD = "bench-build.json"
PG_DATABASE = "bench_lookup"

STAFF = ("anna", "ben", "chloe", "dev", "emma", "farid", "grace", "hugo")
COMPANY_DOMAIN = "northwind-supplies.com"
FREEMAIL = ("gmail.com", "outlook.com", "yahoo.co.uk", "gmx.de", "icloud.com")
FIRST = [
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Mia",
    "Ivy",
    "Lily",
    "Rosie",
    "Sophia",
    "Grace",
    "Freya",
    "Ella",
    "Noah",
    "Oliver",
    "George",
    "Arthur",
    "Leo",
    "Harry",
    "Oscar",
    "Archie",
    "Henry",
    "Theo",
    "Jack",
    "Charlie",
    "Lukas",
    "Jonas",
    "Felix",
    "Paul",
    "Emil",
    "Anton",
    "Marie",
    "Sofia",
    "Hanna",
    "Lea",
    "Clara",
    "Jan",
    "Piotr",
    "Kasia",
    "Zofia",
    "Adam",
    "Camille",
    "Louis",
    "Hugo",
    "Chloe",
    "Manon",
    "Jules",
    "Lena",
    "Greta",
]
LAST = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Wright",
    "Robinson",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Muller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Kowalski",
    "Nowak",
    "Wisniewski",
    "Wojcik",
    "Kaminski",
    "Lewandowski",
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefebvre",
    "Garnier",
]
SYLLABLES = [
    "bright",
    "line",
    "har",
    "bour",
    "lev",
    "ain",
    "dore",
    "mar",
    "ket",
    "nor",
    "vik",
    "alp",
    "ine",
    "cas",
    "tle",
    "ford",
    "ash",
    "wood",
]
TRADES = ("Dental", "Catering", "Logistics", "Bakery", "Hotels", "Clinic", "Foods", "Cleaning")
SUFFIXES = ("co.uk", "de", "fr", "pl", "com", "nl", "ie")
TOPICS = (
    "quote for gloves and aprons", "invoice 4471 query", "delivery slot next week",
    "price list 2026", "order confirmation", "returns and credit note", "catering trays sample",
    "account opening form", "payment terms", "stock of compostable cups", "meeting notes",
    "pallet pickup", "renewal of the cleaning contract", "samples arrived", "new branch opening",
)  # fmt: skip
WORDS = [
    "please",
    "find",
    "attached",
    "the",
    "updated",
    "figures",
    "we",
    "discussed",
    "on",
    "the",
    "phone",
    "yesterday",
    "and",
    "let",
    "me",
    "know",
    "if",
    "the",
    "delivery",
    "window",
    "still",
    "works",
    "for",
    "your",
    "team",
    "the",
    "pallets",
    "can",
    "go",
    "out",
    "on",
    "thursday",
    "morning",
    "otherwise",
    "friday",
    "after",
    "lunch",
    "our",
    "warehouse",
    "closes",
    "early",
    "for",
    "the",
    "bank",
    "holiday",
    "regards",
]


@dataclass(frozen=True)
class Person:
    name: str
    address: str


@dataclass(frozen=True)
class Dataset:
    contacts: list[Person]
    weights: list[float]
    companies: list[tuple[str, str]]  # (name, domain)


def make_people(count: int, rng: random.Random) -> Dataset:
    companies: list[tuple[str, str]] = []
    taken: set[str] = set()
    for index in range(max(1, count // 8)):
        stem = "".join(rng.choice(SYLLABLES) for _ in range(2))
        trade = rng.choice(TRADES)
        domain = f"{stem}-{trade.lower()}{index}.{rng.choice(SUFFIXES)}"
        companies.append((f"{stem.capitalize()} {trade}", domain))
    contacts: list[Person] = []
    for index in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        if rng.random() < 0.15:
            domain = rng.choice(FREEMAIL)
            local = f"{first}.{last}{index}".lower()
        else:
            domain = companies[index % len(companies)][1]
            local = f"{first}.{last}".lower()
            if local in taken:
                local = f"{local}{index}"
        taken.add(local)
        contacts.append(Person(f"{first} {last}", f"{local}@{domain}"))
    # Zipf: the contact of rank r writes in proportion to 1 / r^1.1 (shuffled, so that heavy
    # contacts are not all at one company).
    weights = [1 / (rank + 1) ** 1.1 for rank in range(count)]
    rng.shuffle(weights)
    return Dataset(contacts, weights, companies)


def threads(data: Dataset, activities: int, rng: random.Random) -> list[tuple[int, int, int, int]]:
    """(staff, contact, length, thread number) for threads totalling `activities` emails."""
    cumulative: list[float] = []
    total = 0.0
    for weight in data.weights:
        total += weight
        cumulative.append(total)
    plan: list[tuple[int, int, int, int]] = []
    count = 0
    while count < activities:
        length = min(activities - count, rng.choice((1, 1, 2, 2, 3, 4, 5)))
        contact = rng.choices(range(len(data.contacts)), cum_weights=cumulative)[0]
        plan.append((rng.randrange(len(STAFF)), contact, length, len(plan)))
        count += length
    plan.sort()
    return plan


def emails(
    data: Dataset, plan: Sequence[tuple[int, int, int, int]], staff: int, now: datetime
) -> Iterator[Any]:
    """The MailItems of one staff member's mailbox (each email seen once, in its owner's box)."""
    from server.mail_ingest.items import MailItem, Participant

    me = Person(STAFF[staff].capitalize(), f"{STAFF[staff]}@{COMPANY_DOMAIN}")
    for owner, contact_index, length, number in plan:
        if owner != staff:
            continue
        rng = random.Random(number)
        contact = data.contacts[contact_index]
        colleague_index = contact_index + 1 if contact_index + 1 < len(data.contacts) else 0
        cc = [data.contacts[colleague_index]] if rng.random() < 0.2 else []
        topic = rng.choice(TOPICS)
        start = now - timedelta(days=rng.uniform(0, 720))
        previous: list[str] = []
        for step in range(length):
            incoming = step % 2 == 0
            sender, recipient = (contact, me) if incoming else (me, contact)
            message_id = f"t{number}.{step}@bench.example"
            text = " ".join(rng.choice(WORDS) for _ in range(40))
            yield MailItem(
                message_id=message_id,
                subject=("Re: " if step else "") + topic.capitalize(),
                date=start + timedelta(hours=5 * step),
                participants=[
                    Participant(sender.address, "from", sender.name),
                    Participant(recipient.address, "to", recipient.name),
                    *(Participant(p.address, "cc", p.name) for p in cc),
                ],
                provider_id=message_id,
                folder="INBOX" if incoming else "Sent",
                in_reply_to=previous[-1:],
                references=list(previous),
                text=text,
                snippet=text[:200],
                size=800 + len(text),
            )
            previous.append(message_id)


# -- building a database --------------------------------------------------------------------------


def build(database_url: str, data_dir: Path, data: Dataset, plan: list[Any]) -> dict[str, Any]:
    """Capture the dataset into a fresh database; returns the member's token and timings."""
    os.environ.update(rapport_env(data_dir, database_url))
    from sqlalchemy import select

    from server.config import load_settings
    from server.crm.deals import DealInput, create_deal
    from server.crm.followups import create_follow_up
    from server.crm.mailboxes import import_link, link_info
    from server.crm.rules import load_policy, seed_internal_domains
    from server.crm.users import add_user, create_token
    from server.crm.viewer import Viewer
    from server.db import Database
    from server.mail_ingest.pipeline import capture
    from server.mail_ingest.prepare import PrepareOptions, prepare_item
    from server.models import Company, Contact

    settings = load_settings()
    db = Database(settings.database_url)
    db.upgrade()
    started = time.monotonic()
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with db.session() as session:
        seed_internal_domains(session, settings.internal_domains)
        users = [
            add_user(session, f"{name}@{COMPANY_DOMAIN}", role="member", name=name.capitalize())
            for name in STAFF
        ]
        token = create_token(session, users[0], name="bench", expires_in=None).plaintext
        viewer = Viewer.of(users[0])
    for staff in range(len(STAFF)):
        with db.session() as session:
            info = link_info(import_link(session, f"{STAFF[staff]}@{COMPANY_DOMAIN}"))
            policy = load_policy(session)
        options = PrepareOptions(
            level="full",
            internal_domains=policy.internal_domains,
            owner_addresses=info.owner_addresses,
        )
        stream = (prepare_item(item, options) for item in emails(data, plan, staff, now))
        run = capture(db, info, policy, stream)
        print(
            f"  {STAFF[staff]}: {run.counts.captured} captured in {run.elapsed:.0f} s", flush=True
        )
    captured_s = time.monotonic() - started
    rng = random.Random(7)
    with db.session() as session:
        company_ids = session.scalars(select(Company.id).order_by(Company.id).limit(1000)).all()
        for company_id in company_ids:
            people = session.scalars(
                select(Contact.id).where(Contact.company_id == company_id).limit(2)
            ).all()
            create_deal(
                session,
                viewer,
                DealInput(
                    title=f"Supply contract {company_id}",
                    amount=str(rng.randrange(500, 50000)),
                    company_id=company_id,
                    contact_ids=list(people),
                    given=frozenset({"title", "amount", "company_id", "contact_ids"}),
                ),
            )
        contact_ids = session.scalars(select(Contact.id).order_by(Contact.id).limit(1000)).all()
        for contact_id in contact_ids:
            create_follow_up(
                session,
                viewer,
                title="Call back about the quote",
                contact_id=contact_id,
                due_at=now + timedelta(days=rng.randrange(-5, 20)),
            )
    if not db.is_sqlite:
        # What autovacuum does some time after a bulk load (statistics, and the visibility map
        # that index-only scans need); measured is the steady state.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    db.dispose()
    return {"token": token, "capture_s": captured_s, "total_s": time.monotonic() - started}


def rapport_env(data_dir: Path, database_url: str) -> dict[str, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "RAPPORT_DATA_DIR": str(data_dir),
        "RAPPORT_DATABASE_URL": database_url,
        "RAPPORT_SECRET_KEY": "bench-" + "k" * 40,
        "RAPPORT_INTERNAL_DOMAINS": COMPANY_DOMAIN,
        "RAPPORT_LOG_LEVEL": "WARNING",
        # A thousand calls a minute from one token: raise the budget, the limiter still counts.
        "RAPPORT_RATE_LIMIT_PER_MINUTE": "1000000",
    }


def upgrade(database_url: str, data_dir: Path) -> float:
    """Bring a kept database to the current migrations; the seconds it took."""
    os.environ.update(rapport_env(data_dir, database_url))
    from server.config import load_settings
    from server.db import Database

    db = Database(load_settings().database_url)
    started = time.monotonic()
    db.upgrade()
    db.dispose()
    return time.monotonic() - started


# -- keeping builds (--reuse) -------------------------------------------------------------------


def read_record(directory: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    """What a finished build with exactly these parameters recorded, or None."""
    try:
        record = json.loads((directory / BUILD_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("params") == params else None


def write_record(directory: Path, params: dict[str, Any], built: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    record = {"params": params, "built_at": datetime.now(UTC).isoformat(), **built}
    (directory / BUILD_RECORD).write_text(json.dumps(record, indent=1))


def forget_record(directory: Path) -> None:
    """Called before a build starts, so that an interrupted build is never taken for a whole one."""
    (directory / BUILD_RECORD).unlink(missing_ok=True)


class KeptPostgres(cvn.PgServer):
    """PostgreSQL on a data directory under --work that outlives the run (`--reuse`): created by
    initdb the first time, started again on the same data later, only stopped at the end."""

    def __init__(self, root: Path) -> None:
        sys.path.insert(0, str(cvn.REPO))
        from tests.support.postgres import PostgresServer

        server = PostgresServer()
        shutil.rmtree(server.root, ignore_errors=True)  # its own temp dir; ours is kept
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        server.root, server.data = root, root / "data"
        # A run killed before it stopped the server leaves it running on an old port.
        subprocess.run(
            server._cmd(str(server.bin / "pg_ctl"), "-D", str(server.data), "-m", "fast", "stop"),
            check=False,
            capture_output=True,
        )
        if server.data.exists() and not (server.data / "PG_VERSION").exists():
            shutil.rmtree(server.data)  # initdb did not finish
        server.start()  # initdb when there is no data yet, then the test harness's settings
        server.stop()
        options = (
            f"-p {server.port} -k {server.root} -c listen_addresses=127.0.0.1 "
            f"-c max_connections=200 -c shared_buffers={shared_buffers_mb()}MB"
        )
        subprocess.run(
            server._cmd(
                str(server.bin / "pg_ctl"), "-D", str(server.data), "-o", options,
                "-l", str(server.root / "server.log"), "-w", "start",
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip
        server.started = True
        server._wait_ready()
        self.server = server
        self.durable = True

    def existing_database(self, name: str) -> str | None:
        import psycopg

        with psycopg.connect(self.server.admin_conninfo) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return f"postgresql://rapport@127.0.0.1:{self.server.port}/{name}" if found else None

    def destroy(self) -> None:
        self.server.stop()


def prewarm(pg: cvn.PgServer, name: str) -> dict[str, float]:
    """Read the database's tables and indexes into shared buffers (pg_prewarm), as a server
    that has been answering for a while holds them; what it read and how long it took."""
    import psycopg

    url = f"postgresql://rapport@127.0.0.1:{pg.server.port}/{name}"
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        row = conn.execute(
            "SELECT coalesce(sum(pg_prewarm(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname IN ('public', 'pg_toast') AND c.relkind IN ('r', 'i', 't', 'm')"
        ).fetchone()
    blocks = int(row[0]) if row else 0
    return {"mb": round(blocks * 8192 / 2**20), "s": round(time.monotonic() - started, 1)}


def read_through(path: Path) -> dict[str, float]:
    """Read a SQLite database file once, so that the OS's page cache holds it as it holds the
    file of a server that has been answering for a while (SQLite's own cache is small)."""
    started = time.monotonic()
    size = 0
    with path.open("rb", buffering=0) as fh:
        while chunk := fh.read(8 * 2**20):
            size += len(chunk)
    return {"mb": round(size / 2**20), "s": round(time.monotonic() - started, 1)}


def shared_buffers_mb() -> int:
    """A quarter of the machine's memory, PostgreSQL's own advice for a dedicated server (its
    128 MB default is sized for a machine that runs other things), at most 8 GB."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return min(ram // 4, 8 * 2**30) // 2**20


@contextmanager
def postgres_server(enabled: bool, keep_in: Path | None) -> Iterator[cvn.PgServer | None]:
    if not enabled:
        yield None
        return
    # Without --reuse the data directory is a throwaway one, removed at the end.
    root = keep_in or Path(tempfile.mkdtemp(prefix="rapport-bench-pg-"))
    pg = KeptPostgres(root)
    try:
        yield pg
    finally:
        pg.destroy()
        if keep_in is None:
            shutil.rmtree(root, ignore_errors=True)


# -- measuring ----------------------------------------------------------------------------------


class RequestTimes(logging.Handler):
    """Collects the app's own per-request timer (server/app.py logs `ms` for every request)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.ms: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.ms.append(float(record.__dict__.get("ms", math.nan)))


QUIET_CHUNK = 50  # calls measured between two checks that the machine is quiet
CALLS = ("lookup", "search")


class Quiet:
    """Waits, before each block of calls, for other jobs to leave the CPU mostly idle.

    The machine is shared: a block measured while someone else's job holds both cores measures
    them as much as Rapport. The waits share one budget (`--quiet-wait` seconds per kind of
    call); when it is spent, blocks run as they come. What was seen is reported either way."""

    def __init__(self, budget: float) -> None:
        self.deadline = time.monotonic() + budget
        self.seen: list[float] = []

    def wait(self) -> None:
        self.seen.append(cvn.wait_for_quiet(max(0.0, self.deadline - time.monotonic())))

    def report(self) -> dict[str, float]:
        return {"busy_before": statistics.median(self.seen), "busy_before_max": max(self.seen)}


def percentiles(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "n": len(ordered),
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "mean": statistics.fmean(ordered),
    }


def sample_addresses(data: Dataset, count: int, rng: random.Random) -> list[list[str]]:
    """Mostly one address (a reply from one person), a third two (the pane's To/Cc)."""
    heavy = sorted(range(len(data.contacts)), key=lambda i: -data.weights[i])[: max(1, count)]
    picks: list[list[str]] = []
    for n in range(count):
        first = rng.choice(heavy) if n % 3 == 0 else rng.randrange(len(data.contacts))
        group = [data.contacts[first].address]
        if n % 3 == 1:
            group.append(data.contacts[rng.randrange(len(data.contacts))].address)
        picks.append(group)
    return picks


def search_queries(data: Dataset, count: int, rng: random.Random) -> list[str]:
    queries: list[str] = []
    for n in range(count):
        person = data.contacts[rng.randrange(len(data.contacts))]
        kind = n % 5
        if kind == 0:
            queries.append(person.name.split()[1][:4])  # typing a surname
        elif kind == 1:
            queries.append(person.name)
        elif kind == 2:
            queries.append(rng.choice(data.companies)[0].split()[0])
        elif kind == 3:
            queries.append(rng.choice(TOPICS).split()[0] + " " + rng.choice(WORDS))
        else:
            queries.append(person.address.split("@")[0][:6])
    return queries


def measure_api(
    data_dir: Path,
    database_url: str,
    token: str,
    data: Dataset,
    samples: int,
    quiet_wait: float = 0.0,
    calls: Sequence[str] = CALLS,
    rounds: int = 1,
) -> dict[str, Any]:
    """`rounds` passes over the same sample, one after the other: the machine's slower and
    faster minutes then weigh on every figure alike, and each pass's p95 is reported."""
    os.environ.update(rapport_env(data_dir, database_url))
    from server.app import create_app

    app = create_app()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    timer = RequestTimes()
    logger = logging.getLogger("server.requests")
    logger.addHandler(timer)
    logger.setLevel(logging.INFO)
    rng = random.Random(11)
    groups = sample_addresses(data, samples, rng)
    queries = search_queries(data, samples, rng)
    results: dict[str, Any] = {}
    for name, urls in (
        ("lookup", ["/api/v1/lookup?" + "&".join(f"email={a}" for a in g) for g in groups]),
        ("search", [f"/api/v1/search?q={q.replace(' ', '+')}" for q in queries]),
    ):
        if name not in calls:
            continue  # the samples above are drawn all the same, so the others stay the same
        quiet = Quiet(quiet_wait)
        for url in urls[: max(20, samples // 10)]:  # warm caches and prepared statements
            client.get(url, headers=headers)
        timer.ms.clear()
        found = 0
        wall: list[float] = []
        cpu: list[float] = []
        round_p95: list[float] = []
        for n, url in enumerate(urls * rounds):
            if n % QUIET_CHUNK == 0:
                quiet.wait()
            if n and n % len(urls) == 0:
                round_p95.append(percentiles(timer.ms[-len(urls) :])["p95"])
            t0, c0 = time.perf_counter(), time.process_time()
            response = client.get(url, headers=headers)
            wall.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            if response.status_code != 200:
                raise SystemExit(
                    f"{url}: {response.status_code} {response.get_data(as_text=True)[:300]}"
                )
            body = response.get_json()
            found += len(body.get("timeline", body.get("items", [])))
        round_p95.append(percentiles(timer.ms[-len(urls) :])["p95"])
        results[name] = {
            "server_ms": percentiles(timer.ms),
            "rounds_server_p95": round_p95,
            "client_ms": percentiles(wall),
            # The process's CPU time per call (sign-in included): what a busy machine distorts
            # far less than the wall-clock timers above.
            "client_cpu_ms": percentiles(cpu),
            "items_returned_per_call": found / len(urls) / rounds,
            **quiet.report(),
        }
        if name == "lookup":
            # Every third lookup is of one of the most prolific correspondents.
            heavy = [ms for n, ms in enumerate(timer.ms) if n % len(urls) % 3 == 0]
            results[name]["heavy_server_ms"] = percentiles(heavy)
    logger.removeHandler(timer)
    rapport_db = app.extensions["rapport"].db
    rapport_db.dispose()
    return results


def write_maildir(root: Path, data: Dataset, plan: list[Any]) -> int:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    count = 0
    for staff in range(len(STAFF)):
        cur = root / STAFF[staff] / "cur"
        for sub in ("cur", "new", "tmp"):
            (root / STAFF[staff] / sub).mkdir(parents=True, exist_ok=True)
        for item in emails(data, plan, staff, now):
            parts = {p.role: p for p in item.participants}
            cc = ", ".join(f"{p.name} <{p.address}>" for p in item.participants if p.role == "cc")
            headers = [
                f"From: {parts['from'].name} <{parts['from'].address}>",
                f"To: {parts['to'].name} <{parts['to'].address}>",
                *([f"Cc: {cc}"] if cc else []),
                f"Subject: {item.subject}",
                f"Date: {format_datetime(item.date)}",
                f"Message-ID: <{item.message_id}>",
                *([f"In-Reply-To: <{item.in_reply_to[0]}>"] if item.in_reply_to else []),
                "Content-Type: text/plain; charset=utf-8",
            ]
            (cur / f"{count}.bench:2,S").write_text(
                "\n".join(headers) + "\n\n" + (item.text or "") + "\n"
            )
            count += 1
    return count


def notmuch_env(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "NOTMUCH_CONFIG": str(work / "notmuch-config"),
        "NOTMUCH_DATABASE": str(work / "notmuch-db"),
    }


def index_notmuch(root: Path, work: Path) -> float:
    """`notmuch new` over the maildir into a fresh database; the seconds it took."""
    database = work / "notmuch-db"
    shutil.rmtree(database, ignore_errors=True)
    database.mkdir(parents=True)
    (work / "notmuch-config").write_text(
        f"[database]\npath={root}\nmail_root={root}\n[new]\ntags=inbox\n[search]\n"
        f"exclude_tags=\n[maildir]\nsynchronize_flags=false\n"
    )
    t0 = time.monotonic()
    subprocess.run(["notmuch", "new", "--quiet"], env=notmuch_env(work), check=True)
    return time.monotonic() - t0


def measure_notmuch(
    work: Path, data: Dataset, samples: int, index_s: float, quiet_wait: float = 0.0
) -> dict[str, Any]:
    env = notmuch_env(work)
    quiet = Quiet(quiet_wait)
    rng = random.Random(11)
    groups = sample_addresses(data, samples, rng)

    def timed(args: list[str]) -> float:
        t = time.perf_counter()
        subprocess.run(args, env=env, check=True, capture_output=True)
        return (time.perf_counter() - t) * 1000

    def search_for(group: list[str]) -> list[str]:
        return [
            "notmuch",
            "search",
            "--limit=20",
            " or ".join(f"from:{a} or to:{a}" for a in group),
        ]

    for group in groups[:20]:
        timed(search_for(group))
    search = []
    for n, group in enumerate(groups):
        if n % QUIET_CHUNK == 0:
            quiet.wait()
        search.append(timed(search_for(group)))
    startup = [timed(["notmuch", "count", "id:nothing@nowhere"]) for _ in range(50)]
    return {
        "index_s": index_s,
        "search_ms": percentiles(search),
        "startup_ms": percentiles(startup),
        **quiet.report(),
    }


# -- report -------------------------------------------------------------------------------------


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 600 else f"{seconds / 60:.1f} min"


def markdown(results: dict[str, Any]) -> str:
    info = results["machine"]
    lines = [f"Measured {info['date']} on:", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    lines += [
        "",
        f"Dataset: {results['activities']:,} emails over {results['contacts']:,} contacts at "
        f"{results['contacts'] // 8:,} companies, 8 staff mailboxes (team-visible), "
        f"{min(1000, results['contacts'] // 8):,} open deals, 1,000 follow-ups; "
        f"{results['samples']} calls of each kind after a warm-up"
        + (
            f", in {results['rounds']} passes one after the other (the figures pool all "
            f"{results['rounds'] * results['samples']:,})"
            if results.get("rounds", 1) > 1
            else ""
        )
        + ", as a member with a Rapport API token.",
        "",
        "| backend | build (capture) | call | server p50 | p95 | p99 | in-process client p95 | "
        "client CPU p50 / p95 | items per call |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    calls = results.get("calls", CALLS)
    for backend in results["backends"]:
        for call in calls:
            r = backend[call]
            s = r["server_ms"]
            cpu = r.get("client_cpu_ms")
            lines.append(
                f"| {backend['name']} | {minutes(backend['build']['capture_s'])} | {call} | "
                f"{s['p50']:.1f} ms | **{s['p95']:.1f} ms** | {s['p99']:.1f} ms | "
                f"{r['client_ms']['p95']:.1f} ms | "
                + (f"{cpu['p50']:.1f} / {cpu['p95']:.1f} ms | " if cpu else "– | ")
                + f"{r['items_returned_per_call']:.1f} |"
            )
    busy = [
        f"{b['name']} {call} {b[call]['busy_before']:.0%} (at most "
        f"{b[call].get('busy_before_max', b[call]['busy_before']):.0%})"
        for b in results["backends"]
        for call in calls
        if "busy_before" in b[call]
    ]
    if busy:
        lines += [
            "",
            f"CPU busy (all cores, others' work included) before each block of {QUIET_CHUNK} "
            f"calls, after waiting (at most {results.get('quiet_wait', 0):.0f} s in all per kind "
            "of call) for a quiet moment, median: " + ", ".join(busy) + ".",
        ]
    heavy = [b for b in results["backends"] if "heavy_server_ms" in b.get("lookup", {})]
    if heavy:
        lines += [""]
        lines += [
            f"{b['name']}: the lookups of the most prolific correspondents (every third call) "
            f"took server p50 {h['p50']:.1f} ms, p95 {h['p95']:.1f} ms, p99 {h['p99']:.1f} ms."
            for b in heavy
            for h in [b["lookup"]["heavy_server_ms"]]
        ]
    passes = [
        f"{b['name']} {call} " + " / ".join(f"{ms:.1f}" for ms in b[call]["rounds_server_p95"])
        for b in results["backends"]
        for call in calls
        if len(b[call].get("rounds_server_p95", ())) > 1
    ]
    if passes:
        lines += ["", "Server p95 of each pass, in ms: " + "; ".join(passes) + "."]
    for b in results["backends"]:
        w = b.get("prewarmed")
        if not w:
            continue
        if b["name"] == "PostgreSQL":
            lines += [
                "",
                f"PostgreSQL: {w['mb']:,} MB of tables and indexes read into shared buffers "
                f"(`pg_prewarm`, {w['s']:.0f} s) before the calls, as a server that has been "
                "answering for a while holds them; shared_buffers is a quarter of the machine's "
                "memory (at most 8 GB), PostgreSQL's advice for a dedicated server, where its "
                "default is 128 MB.",
            ]
        else:
            lines += [
                "",
                f"{b['name']}: the database file ({w['mb']:,} MB) read once before the calls "
                f"({w['s']:.0f} s), so that the OS's page cache holds it as it would for a "
                "server that has been answering for a while.",
            ]
    reused = [b for b in results["backends"] if b["build"].get("reused")]
    if reused:
        lines += [""]
        lines += [
            f"{b['name']}: the build of {b['build']['reused'][:10]} was reused (`--reuse`); "
            f"upgrading it to the current migrations took {b['build']['upgrade_s']:.0f} s."
            for b in reused
        ]
    if "notmuch" in results:
        n = results["notmuch"]
        lines += [
            "",
            f"notmuch 0.37 on the same emails as files: `notmuch new` took "
            f"{minutes(n['index_s'])}; `notmuch search --limit=20 'from:X or to:X'` for the "
            f"same addresses: p50 {n['search_ms']['p50']:.1f} ms, p95 "
            f"**{n['search_ms']['p95']:.1f} ms**, p99 {n['search_ms']['p99']:.1f} ms, as a "
            f"subprocess whose start-up alone (`notmuch count` of nothing) takes p50 "
            f"{n['startup_ms']['p50']:.1f} ms"
            + (
                f" (CPU {n['busy_before']:.0%} busy before a block, at most "
                f"{n['busy_before_max']:.0%})."
                if "busy_before_max" in n
                else "."
            ),
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--activities", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=5_000)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--notmuch", action="store_true")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep what is built under --work and reuse a build made with the same parameters",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(os.environ.get("RAPPORT_BENCH_DIR", "/tmp/rapport-bench")) / "lookup",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=600.0,
        help="seconds (per kind of call) to wait for others to leave the CPU mostly idle",
    )
    parser.add_argument(
        "--calls",
        default=",".join(CALLS),
        help="which calls to measure, comma-separated (default: all); a run of some of them "
        "writes its own block in --out, named after them",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="passes over the same sample of calls; the figures pool them all",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    calls = tuple(c for c in CALLS if c in args.calls.split(","))
    if not calls or set(args.calls.split(",")) - set(CALLS):
        parser.error(f"--calls: some of {', '.join(CALLS)}")

    rng = random.Random(1)
    data = make_people(args.contacts, rng)
    plan = threads(data, args.activities, rng)
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "activities": args.activities,
        "contacts": args.contacts,
        "samples": args.samples,
        "rounds": args.rounds,
        "quiet_wait": args.quiet_wait,
        "calls": calls,
        "backends": [],
    }

    def params(kind: str) -> dict[str, Any]:
        return {
            "dataset": DATASET_VERSION,
            "activities": args.activities,
            "contacts": args.contacts,
            "kind": kind,
        }

    pg_version = None
    pg_keep = args.work / "postgresql-server" if args.reuse else None
    with postgres_server(args.postgres, pg_keep) as pg:
        # (name, url, data directory, what a kept build recorded)
        targets: list[tuple[str, str, Path, dict[str, Any] | None]] = []
        if not args.no_sqlite:
            sqlite_dir = args.work / "sqlite"
            url = f"sqlite:///{sqlite_dir}/rapport.db"
            record = read_record(sqlite_dir, params("sqlite")) if args.reuse else None
            if record is None or not (sqlite_dir / "rapport.db").exists():
                shutil.rmtree(sqlite_dir, ignore_errors=True)
                record = None
            targets.append(("SQLite", url, sqlite_dir, record))
        if pg is not None:
            pg_version = pg.version()
            pg_dir = args.work / "postgresql"
            record = read_record(pg_dir, params("postgresql")) if args.reuse else None
            kept = (
                pg.existing_database(PG_DATABASE)
                if record is not None and isinstance(pg, KeptPostgres)
                else None
            )
            if kept is None:
                record = None
                shutil.rmtree(pg_dir, ignore_errors=True)  # blobs of an older build
            url = kept or pg.fresh_database(PG_DATABASE)
            targets.append(("PostgreSQL", url, pg_dir, record))
        for name, url, data_dir, record in targets:
            kind = "sqlite" if name == "SQLite" else "postgresql"
            if record is not None:
                print(f"{name}: reusing the build of {record['built_at']}; upgrading ...")
                built = {key: record[key] for key in ("token", "capture_s", "total_s")}
                built["reused"] = record["built_at"]
                built["upgrade_s"] = upgrade(url, data_dir)
                print(f"{name}: schema upgraded in {built['upgrade_s']:.1f} s", flush=True)
            else:
                forget_record(data_dir)
                print(f"{name}: capturing {args.activities:,} emails ...", flush=True)
                built = build(url, data_dir, data, plan)
                if args.reuse:
                    write_record(data_dir, params(kind), built)
            if kind == "postgresql" and pg is not None:
                warmed = prewarm(pg, PG_DATABASE)
            else:
                warmed = read_through(data_dir / "rapport.db")
            print(f"{name}: {warmed['mb']:,} MB read before the calls, in {warmed['s']} s")
            print(f"{name}: measuring ...", flush=True)
            measured = measure_api(
                data_dir,
                url,
                built["token"],
                data,
                args.samples,
                args.quiet_wait,
                calls,
                args.rounds,
            )
            results["backends"].append(
                {"name": name, "build": built, "prewarmed": warmed, **measured}
            )
            print(json.dumps(measured, indent=1), flush=True)
    if args.notmuch:
        root = args.work / "maildir"
        record = read_record(args.work / "notmuch-db", params("notmuch")) if args.reuse else None
        if record is None:
            forget_record(args.work / "notmuch-db")
            shutil.rmtree(root, ignore_errors=True)
            print(
                f"notmuch: {write_maildir(root, data, plan):,} files written; indexing ...",
                flush=True,
            )
            index_s = index_notmuch(root, args.work)
            if args.reuse:
                write_record(args.work / "notmuch-db", params("notmuch"), {"index_s": index_s})
        else:
            print(f"notmuch: reusing the index of {record['built_at']}", flush=True)
            index_s = float(record["index_s"])
        results["notmuch"] = measure_notmuch(
            args.work, data, args.samples, index_s, args.quiet_wait
        )
        print(json.dumps(results["notmuch"], indent=1), flush=True)
    results["machine"] = cvn.machine_info(pg_version)
    for backend in results["backends"]:
        backend["build"].pop("token", None)
    text = markdown(results)
    print(text)
    if args.out:
        block = "-".join((f"lookup-{args.activities}", *(calls if calls != CALLS else ())))
        cvn.replace_block(args.out, block, text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
