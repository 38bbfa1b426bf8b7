"""Scale-out on PostgreSQL: how capture throughput grows with the number of `rapport worker`
processes, and that a worker killed mid-run loses and repeats nothing.

Microsoft 365 mailboxes sync at the pace of Graph's answers, not of our CPU: the Graph emulator
(tests/emulators/graph.py) adds `--delay` (50 ms) to every request, as production's latency
does. `--mailboxes` mailboxes each hold the bench corpus (bench/corpus.py: Inbox and Sent, with
attachments and hostile mail). For each worker count, a fresh PostgreSQL database gets the
mailboxes linked (app-only) and paused, then that many `rapport worker` processes start, as in
production, and get a few seconds to import and find nothing due (untimed: a worker starts once
and then runs for weeks). Then every link is resumed at once, and the time runs until every link
has synced. The goal (issue "Proof under fire"): 2 workers reach at least 1.8 times the
throughput of one.

`--kill` adds a run with two workers where one is killed (SIGKILL) a third of the way through and
started again: afterwards every message must be in the database once per mailbox that holds it
(one observation each) and as one activity, whatever the kill interrupted. The link the killed
worker held waits for its lease to expire (5 minutes) before another worker finishes it, so that
run's time is reported but is no throughput figure.

As in bench/graph_sync.py, the timed processes run with Rapport's own pacing under Graph's
10-minute budget switched off (the one difference from production).

    .venv/bin/python -m bench.scale_out --mailboxes 8 --messages 300 --out docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import capture_vs_notmuch as cvn
from bench.corpus import OWNER
from bench.graph_sync import APP_SECRET, SECRET_VAR, WORKER, corpus_messages

DOMAIN = OWNER.split("@", 1)[1]
STARTUP_SECONDS = 5.0  # untimed: a worker process imports, connects and finds nothing due


def owners(count: int) -> list[str]:
    """The mailboxes: the corpus owner's and colleagues' (the same internal domain)."""
    return [OWNER, *(f"staff{i}@{DOMAIN}" for i in range(1, count))]


def fill(graph: Any, tenant: Any, corpus: Path, addresses: Sequence[str]) -> int:
    """Every mailbox gets the whole corpus; returns the messages per mailbox."""
    messages = corpus_messages(corpus)
    for address in addresses:
        graph.add_mailbox(tenant, address, address.split("@", 1)[0].title())
        for folder, paths in messages.items():
            for path in paths:
                graph.deliver(address, path.read_bytes(), folder)
    return sum(len(paths) for paths in messages.values())


def link_all(env: dict[str, str], tenant: Any, app: Any, addresses: Sequence[str]) -> None:
    for address in addresses:
        subprocess.run(
            [cvn.RAPPORT, "mailbox", "add", "graph", "--owner", address, "--tenant", tenant.id,
             "--client-id", app.client_id, "--client-secret-env", SECRET_VAR,
             "--folders", "inbox,sentitems", "--no-calendar", "--since", "2000-01-01",
             "--capture-level", "full"],
            env=env, cwd=cvn.REPO, check=True, capture_output=True,
        )  # fmt: skip


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A long-running `rapport worker`, as in production (it polls for due work every second)."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", WORKER, "worker"],
            env=env,
            cwd=cvn.REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def hold_links(url: str, *, held: bool) -> None:
    """Pause every link (while the workers start) or let them all go at once (resumed, due)."""
    import psycopg

    with psycopg.connect(url) as conn:
        if held:
            conn.execute("UPDATE mailbox_links SET status = 'paused'")
        else:
            conn.execute("UPDATE mailbox_links SET status = 'active', next_run_at = NULL")


# What a run with a kill must hold exactly as a run without one.
EXACTLY_ONCE = ("observations", "distinct_observations", "emails", "distinct_keys", "quarantined")


def observations(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM mailbox_observations").fetchone()
    return int(row[0]) if row else 0


def tally(url: str) -> dict[str, Any]:
    """What the database holds after a run: exactly-once is checked from these."""
    import psycopg

    with psycopg.connect(url) as conn:

        def one(sql: str) -> Any:
            row = conn.execute(sql).fetchone()
            return row[0] if row else None

        return {
            "observations": one("SELECT count(*) FROM mailbox_observations"),
            "distinct_observations": one(
                "SELECT count(*) FROM (SELECT DISTINCT link_id, activity_id "
                "FROM mailbox_observations) AS o"
            ),
            "emails": one("SELECT count(*) FROM activities WHERE kind = 'email'"),
            "distinct_keys": one(
                "SELECT count(DISTINCT message_key) FROM activities WHERE kind = 'email'"
            ),
            "links_synced": one(
                "SELECT count(*) FROM mailbox_links WHERE last_success_at IS NOT NULL"
            ),
            "sync_jobs_open": one(
                "SELECT count(*) FROM jobs WHERE kind = 'sync_link' AND finished_at IS NULL"
            ),
            "links": one("SELECT count(*) FROM mailbox_links"),
            "quarantined": one("SELECT count(*) FROM quarantined_items"),
        }


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def sync_seconds(logs: Sequence[Path]) -> list[float]:
    """How long each sync job took, from the workers' logs."""
    return [
        seconds
        for log in logs
        for kind, seconds in cvn.job_seconds(log.read_text())
        if kind == "sync_link"
    ]


def run(
    pg: cvn.PgServer,
    graph: Any,
    tenant: Any,
    app: Any,
    addresses: Sequence[str],
    work: Path,
    workers: int,
    delay: float,
    *,
    expected: int,
    kill: bool = False,
) -> dict[str, Any]:
    """One run with this many workers; `expected` observations when every link is synced."""
    name = f"scale_{workers}{'_kill' if kill else ''}"
    url = pg.fresh_database(name)
    data_dir = work / name
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**cvn.rapport_env(data_dir, url), **graph.env(), SECRET_VAR: APP_SECRET}
    cvn.setup_rapport(env)
    link_all(env, tenant, app, addresses)
    graph.reset()
    graph.delay = delay
    logs = [data_dir / f"worker-{i}.log" for i in range(workers)]
    for log in logs:
        log.unlink(missing_ok=True)
    hold_links(url, held=True)
    workers_cpu = _cpu(resource.RUSAGE_CHILDREN)  # counted once they exit: their start included
    procs = [start_worker(env, log) for log in logs]
    time.sleep(STARTUP_SECONDS)  # imports done, the workers poll an empty queue
    emulator_cpu = _cpu(resource.RUSAGE_SELF)  # the emulators serve from this process's threads
    hold_links(url, held=False)
    machine = machine_busy()
    started = time.perf_counter()
    killed = 0
    if kill:
        # Kill the first worker a third of the way through, then start it again.
        while observations(url) < expected // 3:
            time.sleep(0.2)
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait()
        killed = 1
        procs[0] = start_worker(env, logs[0])
    # Done when every link has synced and no sync is queued or running. A killed worker's job
    # keeps its lease until it expires (5 minutes), then another worker finishes it.
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        state = tally(url)
        if state["links_synced"] == len(addresses) and not state["sync_jobs_open"]:
            break
        time.sleep(0.1)
    wall = time.perf_counter() - started
    busy, total = (after - before for after, before in zip(machine_busy(), machine, strict=True))
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    codes = [proc.wait(timeout=120) for proc in procs]
    workers_cpu = _cpu(resource.RUSAGE_CHILDREN) - workers_cpu
    emulator_cpu = _cpu(resource.RUSAGE_SELF) - emulator_cpu
    graph.delay = 0.0
    result = {
        "workers": workers,
        "wall": wall,
        "codes": codes,
        "killed": killed,
        "machine_busy": busy / total if total else 0.0,
        "workers_cpu": workers_cpu,
        "emulator_cpu": emulator_cpu,
        "jobs": sync_seconds(logs),
        **tally(url),
    }
    pg.drop(url)
    return result


def markdown(results: dict[str, Any]) -> str:
    info = results["machine"]
    lines = [f"Measured {info['date']} on:", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    total = results["per_mailbox"] * results["mailboxes"]
    lines += [
        "",
        f"{results['mailboxes']} Microsoft 365 mailboxes of {results['per_mailbox']:,} messages "
        f"each ({total:,} in all) in the Graph emulator, {results['delay'] * 1000:.0f} ms added "
        "per request; one PostgreSQL; long-running `rapport worker` processes, started first, "
        "then every link let go at once; timed until every link has synced. CPU: the worker "
        "processes' whole lives (their parse processes included) and the emulators'.",
        "",
        "| workers | elapsed | messages/s | speed-up | sync job (median) | CPU: workers, emulator "
        "| machine busy | observations | emails (distinct) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = None
    for run_ in results["runs"]:
        rate = total / run_["wall"]
        base = base or rate
        # A killed worker's link waits out its lease: that run's time is no throughput figure.
        speed, shown = ("—", "—") if run_["killed"] else (f"{rate / base:.2f}×", f"{rate:.0f}")
        lines.append(
            f"| {run_['workers']}{' (one killed)' if run_['killed'] else ''} | "
            f"{run_['wall']:.1f} s | {shown} | {speed} | "
            f"{statistics.median(run_['jobs'] or [0]):.1f} s | "
            f"{run_['workers_cpu']:.1f} s, {run_['emulator_cpu']:.1f} s | "
            f"{run_['machine_busy']:.0%} | "
            f"{run_['observations']:,} | {run_['emails']:,} ({run_['distinct_keys']:,}) |"
        )
    calm = {r["workers"]: r for r in results["runs"] if not r["killed"]}
    for run_ in (r for r in results["runs"] if r["killed"] and r["workers"] in calm):
        same = all(run_[k] == calm[run_["workers"]][k] for k in EXACTLY_ONCE)
        lines += [
            "",
            f"With one of {run_['workers']} workers killed (SIGKILL) a third of the way and "
            f"started again: {', '.join(f'{k} {run_[k]:,}' for k in EXACTLY_ONCE)} — "
            + ("the same as without the kill." if same else "**NOT the same as without it.**"),
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mailboxes", type=int, default=8)
    parser.add_argument("--messages", type=int, default=300, help="corpus size per mailbox")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds added per request")
    parser.add_argument("--kill", action="store_true", help="also a run with a worker killed")
    parser.add_argument("--work", type=Path, default=cvn.WORK / "scale-out")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(cvn.REPO))
    from tests.emulators.graph import GraphEmulator
    from tests.emulators.identity import IdentityEmulator

    corpus = cvn.ensure_corpus(cvn.WORK / f"corpus-{args.messages}-s1", args.messages, 1)
    addresses = owners(args.mailboxes)
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"mailboxes": args.mailboxes, "delay": args.delay, "runs": []}
    pg = cvn.PgServer()
    try:
        with (
            IdentityEmulator(args.work / "emulators") as identity,
            GraphEmulator(identity) as graph,
        ):
            tenant = identity.add_tenant(domain="northwind-supplies.onmicrosoft.com")
            app = graph.graph_app(tenant, secret=APP_SECRET)
            results["per_mailbox"] = fill(graph, tenant, corpus, addresses)
            expected = results["per_mailbox"] * args.mailboxes
            counts = [int(n) for n in args.workers.split(",")]
            for workers in counts:
                outcome = run(
                    pg, graph, tenant, app, addresses, args.work, workers, args.delay,
                    expected=expected,
                )  # fmt: skip
                results["runs"].append(outcome)
                print(f"{workers} worker(s): {outcome['wall']:.1f} s", file=sys.stderr)
            if args.kill:
                outcome = run(
                    pg, graph, tenant, app, addresses, args.work, 2, args.delay,
                    expected=expected, kill=True,
                )  # fmt: skip
                results["runs"].append(outcome)
        results["machine"] = cvn.machine_info(pg.version())
    finally:
        pg.destroy()
    text = markdown(results)
    print(text)
    if args.out:
        cvn.replace_block(args.out, f"scale-out-{args.mailboxes}x{args.messages}", text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
