"""Relationship signals at scale: a full recompute, the cost of each new email, and what the
task pane's lookup will pay to include them.

The dataset is bench/lookup.py's (its functions build it: eight staff mailboxes, `--contacts`
customer contacts writing in a Zipf law, `--activities` emails in threads over two years, 1,000
open deals and follow-ups), captured through Rapport's own capture code. A build that
bench/lookup.py already made can be used as it is (`--from-sqlite PATH` copies its SQLite file;
the copy is upgraded to the current migrations, the original is never touched).

Measured, with the clock at the dataset's "now" (1 November 2026):

- full recompute: `server.crm.signals.store.recompute_everything` over every contact, deal and
  company (what `rapport signals recompute` and the worker's daily run do);
- cost per new email: a reply from a sampled contact (a third of them the most prolific) is
  captured through `Capturer.capture_batch` as one batch, then the marked contacts are
  recomputed (`refresh_dirty`, the worker's "signals_refresh" job). Reported: the time capture
  spends marking (the hook), and the refresh. Then the same for a batch of 400 new emails (a
  sync page), per email;
- reading: `signals_for_contacts` for the sampled contacts (what lookup will add) and a staff
  member's to-do list (`GET /api/v1/signals?mine=1`'s query), as that member.

    .venv/bin/python -m bench.signals --activities 1000000 --contacts 50000 \\
        --from-sqlite /tmp/rapport-bench/lookup/sqlite/rapport.db --json /tmp/signals.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import lookup

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)  # the dataset's "now" (bench/lookup.py's build)
BATCH = 400


def percentiles(values: Sequence[float]) -> dict[str, float]:
    stats = lookup.percentiles(values)
    return {k: round(v, 2) for k, v in stats.items()}


@contextmanager
def timed_marks() -> Iterator[list[float]]:
    """Times every call capture makes to the signals hook (server.crm.signals.dirty)."""
    from server.crm.signals import dirty

    original = dirty.mark_touched
    spent: list[float] = []

    def timed(*args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        original(*args, **kwargs)
        spent.append((time.perf_counter() - started) * 1000)

    dirty.mark_touched = timed
    try:
        yield spent
    finally:
        dirty.mark_touched = original


def new_reply(contact: lookup.Person, thread: tuple[int, int, int, int], n: int) -> Any:
    """A reply from the contact to the last email of one of their threads."""
    from server.mail_ingest.items import MailItem, Participant

    staff, _, length, number = thread
    me = f"{lookup.STAFF[staff]}@{lookup.COMPANY_DOMAIN}"
    parent = f"t{number}.{length - 1}@bench.example"
    message_id = f"signals-bench-{time.time_ns()}-{n}@bench.example"
    return (
        staff,
        MailItem(
            message_id=message_id,
            subject="Re: follow-up",
            date=NOW - timedelta(minutes=30),
            participants=[
                Participant(contact.address, "from", contact.name),
                Participant(me, "to"),
            ],
            provider_id=message_id,
            folder="INBOX",
            in_reply_to=[parent],
            references=[parent],
            text="Thanks, that works for us.",
            snippet="Thanks, that works for us.",
            size=900,
        ),
    )


def capture_items(db: Any, staff: int, items: list[Any]) -> float:
    """Capture items into a staff member's mailbox as one batch; milliseconds."""
    from server.crm.capture import Capturer
    from server.crm.mailboxes import import_link, link_info
    from server.crm.rules import load_policy
    from server.mail_ingest.prepare import PrepareOptions, prepare_item

    with db.session() as session:
        info = link_info(import_link(session, f"{lookup.STAFF[staff]}@{lookup.COMPANY_DOMAIN}"))
        policy = load_policy(session)
    options = PrepareOptions("full", policy.internal_domains, info.owner_addresses)
    prepared = [prepare_item(item, options) for item in items]
    started = time.perf_counter()
    with db.session() as session:
        Capturer(info, policy).capture_batch(session, prepared)
    return (time.perf_counter() - started) * 1000


def refresh(db: Any) -> tuple[float, Any]:
    from server.crm.signals.store import refresh_dirty

    started = time.perf_counter()
    with db.session() as session:
        stats = refresh_dirty(session, limit=10**6, now=NOW)
    return (time.perf_counter() - started) * 1000, stats


def measure(db: Any, data: lookup.Dataset, plan: list[Any], samples: int) -> dict[str, Any]:
    from sqlalchemy import func, select
    from sqlalchemy.orm import selectinload

    from server.crm.signals import dirty, list_signals, signals_for_contacts
    from server.crm.signals.store import recompute_everything
    from server.crm.viewer import Viewer
    from server.models import Activity, Contact, ContactEmail, Signal, User

    out: dict[str, Any] = {}
    with db.read_session() as session:
        out["activities"] = session.scalar(select(func.count()).select_from(Activity))
        out["contacts"] = session.scalar(select(func.count()).select_from(Contact))
        if dirty.pending(session):
            print("  (clearing marks left by the build first)", flush=True)
    refresh(db)

    print("  full recompute ...", flush=True)
    progress_at = [time.monotonic()]

    def progress(stats: Any) -> None:
        if time.monotonic() - progress_at[0] > 30:
            progress_at[0] = time.monotonic()
            print(f"    {stats.contacts} contacts, {stats.signals} signals", flush=True)

    full = recompute_everything(db.session, now=NOW, progress=progress)
    out["full"] = {
        "seconds": round(full.seconds, 1),
        "contacts": full.contacts,
        "deals": full.deals,
        "companies": full.companies,
        "signals": full.signals,
        "contacts_per_s": round(full.contacts / full.seconds) if full.seconds else None,
    }
    with db.read_session() as session:
        kinds = Counter(
            dict(session.execute(select(Signal.kind, func.count()).group_by(Signal.kind)).all())
        )
        due = Counter(
            dict(
                session.execute(
                    select(Signal.kind, func.count())
                    .where(Signal.due_at <= NOW)
                    .where((Signal.expires_at.is_(None)) | (Signal.expires_at > NOW))
                    .group_by(Signal.kind)
                ).all()
            )
        )
    out["kinds"] = {k: {"stored": kinds[k], "due_now": due.get(k, 0)} for k in sorted(kinds)}
    print(f"  full: {out['full']}", flush=True)

    rng = random.Random(11)
    heavy = sorted(range(len(data.contacts)), key=lambda i: -data.weights[i])[: max(1, samples)]
    by_contact: dict[int, list[Any]] = {}
    for thread in plan:
        by_contact.setdefault(thread[1], []).append(thread)
    picks: list[int] = []
    while len(picks) < samples:
        index = rng.choice(heavy) if len(picks) % 3 == 0 else rng.randrange(len(data.contacts))
        if index in by_contact:
            picks.append(index)

    print("  one new email at a time ...", flush=True)
    capture_ms, mark_ms, refresh_ms, recomputed = [], [], [], []
    with timed_marks() as marks:
        for n, index in enumerate(picks):
            staff, item = new_reply(data.contacts[index], rng.choice(by_contact[index]), n)
            capture_ms.append(capture_items(db, staff, [item]))
            mark_ms.append(marks[-1])
            spent, stats = refresh(db)
            refresh_ms.append(spent)
            recomputed.append(stats.contacts)
    out["per_email"] = {
        "capture_ms": percentiles(capture_ms),
        "hook_ms": percentiles(mark_ms),
        "refresh_ms": percentiles(refresh_ms),
        "contacts_recomputed": percentiles([float(c) for c in recomputed]),
    }
    print(f"  per email: {out['per_email']}", flush=True)

    print(f"  batches of {BATCH} ...", flush=True)
    batch_rows = []
    with timed_marks() as marks:
        for round_ in range(3):
            by_staff: dict[int, list[Any]] = {}
            for n in range(BATCH):
                index = rng.choice(list(by_contact))
                staff, item = new_reply(
                    data.contacts[index], rng.choice(by_contact[index]), 10**6 * round_ + n
                )
                by_staff.setdefault(staff, []).append(item)
            capture = sum(capture_items(db, s, items) for s, items in by_staff.items())
            spent, stats = refresh(db)
            batch_rows.append(
                {
                    "capture_ms_per_email": round(capture / BATCH, 2),
                    "hook_ms_per_email": round(sum(marks) / BATCH, 3),
                    "refresh_ms_per_email": round(spent / BATCH, 2),
                    "contacts_recomputed": stats.contacts,
                }
            )
            marks.clear()
    out["per_email_in_batches"] = batch_rows
    print(f"  in batches: {batch_rows}", flush=True)

    print("  reading ...", flush=True)
    with db.read_session() as session:
        anna = session.scalars(select(User).order_by(User.id)).first()
        assert anna is not None
        viewer = Viewer.of(anna)
        ids = dict(
            session.execute(
                select(ContactEmail.address, ContactEmail.contact_id).where(
                    ContactEmail.address.in_([data.contacts[i].address for i in picks])
                )
            ).all()
        )
        lookups, shown = [], []
        for index in picks:
            contact_id = ids.get(data.contacts[index].address)
            if contact_id is None:
                continue
            # As the lookup hands them over: the contact with its addresses and company.
            contact = session.scalars(
                select(Contact)
                .where(Contact.id == contact_id)
                .options(selectinload(Contact.emails), selectinload(Contact.company))
            ).one()
            started = time.perf_counter()
            found = signals_for_contacts(session, viewer, [contact], now=NOW)
            lookups.append((time.perf_counter() - started) * 1000)
            shown.append(len(found))
        users = session.scalars(select(User)).all()
        lists, listed = [], []
        for _ in range(5):
            for user in users:
                started = time.perf_counter()
                page = list_signals(session, Viewer.of(user), mine=True, limit=50, now=NOW)
                lists.append((time.perf_counter() - started) * 1000)
                listed.append(len(page.items))
    out["signals_for_contacts_ms"] = percentiles(lookups)
    out["signals_per_lookup"] = round(statistics.fmean(shown), 2) if shown else 0
    out["my_day_ms"] = percentiles(lists)
    out["my_day_items"] = round(statistics.fmean(listed), 1) if listed else 0
    print(f"  lookup part: {out['signals_for_contacts_ms']}, my day: {out['my_day_ms']}")
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Signals at {results['activities']:,} activities / {results['contacts']:,} contacts "
        f"({results['cores']} cores, load {results['load']}):",
        "",
        "| backend | full recompute | signals stored (due now) | per new email: capture hook "
        "p50/p95 | refresh p50/p95 | in batches of 400, per email | lookup part p50/p95 | "
        "my day p50/p95 |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for b in results["backends"]:
        r = b["results"]
        kinds = ", ".join(f"{k} {v['stored']} ({v['due_now']})" for k, v in r["kinds"].items())
        pe, hook = r["per_email"]["refresh_ms"], r["per_email"]["hook_ms"]
        batch = r["per_email_in_batches"][-1]
        lk, md = r["signals_for_contacts_ms"], r["my_day_ms"]
        lines.append(
            f"| {b['name']} | {r['full']['seconds']:.0f} s ({r['full']['contacts_per_s']} "
            f"contacts/s) | {kinds} | {hook['p50']:.2f} / {hook['p95']:.2f} ms | "
            f"{pe['p50']:.1f} / {pe['p95']:.1f} ms | hook {batch['hook_ms_per_email']:.3f} ms, "
            f"refresh {batch['refresh_ms_per_email']:.1f} ms | {lk['p50']:.1f} / {lk['p95']:.1f} "
            f"ms | {md['p50']:.1f} / {md['p95']:.1f} ms |"
        )
    return "\n".join(lines)


def open_sqlite(work: Path, source: Path | None, data: lookup.Dataset, plan: list[Any]) -> str:
    directory = work / "sqlite"
    target = directory / "rapport.db"
    url = f"sqlite:///{target}"
    if source is not None:
        if not target.exists() or target.stat().st_size < source.stat().st_size // 2:
            directory.mkdir(parents=True, exist_ok=True)
            print(f"copying {source} ...", flush=True)
            shutil.copyfile(source, target)
        return url
    if not target.exists():
        shutil.rmtree(directory, ignore_errors=True)
        print("building the dataset (bench/lookup.py's) ...", flush=True)
        lookup.build(url, directory, data, plan)
    return url


def run(name: str, url: str, directory: Path, build: Callable[[], None] | None, **kw: Any) -> Any:
    os.environ.update(lookup.rapport_env(directory, url))
    from server.config import load_settings
    from server.db import Database

    if build is not None:
        build()
    started = time.monotonic()
    db = Database(load_settings().database_url)
    db.upgrade()
    upgraded = time.monotonic() - started
    try:
        print(f"{name}: measuring ...", flush=True)
        results = measure(db, **kw)
    finally:
        db.dispose()
    results["upgrade_s"] = round(upgraded, 1)
    return {"name": name, "results": results}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--activities", type=int, default=100_000)
    parser.add_argument("--contacts", type=int, default=5_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--from-sqlite", type=Path, help="a bench/lookup.py SQLite build to copy")
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL (built here)")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(os.environ.get("RAPPORT_BENCH_DIR", "/tmp/rapport-bench")) / "signals",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    rng = random.Random(1)  # as bench/lookup.py: the same people and threads
    data = lookup.make_people(args.contacts, rng)
    plan = lookup.threads(data, args.activities, rng)
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "activities": args.activities,
        "contacts": args.contacts,
        "cores": os.cpu_count(),
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "backends": [],
    }
    common = {"data": data, "plan": plan, "samples": args.samples}
    if not args.no_sqlite:
        url = open_sqlite(args.work, args.from_sqlite, data, plan)
        results["backends"].append(run("SQLite", url, args.work / "sqlite", None, **common))
    if args.postgres:
        with lookup.postgres_server(True, None) as pg:
            assert pg is not None
            url = pg.fresh_database("bench_signals")
            directory = args.work / "postgresql"
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)

            def build() -> None:
                print("building the dataset on PostgreSQL ...", flush=True)
                lookup.build(url, directory, data, plan)

            results["backends"].append(run("PostgreSQL", url, directory, build, **common))
    text = markdown(results)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
