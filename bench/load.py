"""Open-loop load on a real server: pane lookups and searches per second against `rapport serve`
holding a million activities, and the rate where the pane would start to feel slow.

About fifty people working in Outlook open an email every 30 seconds each and now and then search:
100 `GET /api/v1/lookup` and 10 `GET /api/v1/search` a second. The load is open-loop: each
request is sent at its planned moment whether or not earlier ones have answered, and its latency
counts from that moment, so a server that falls behind shows it (a closed loop, waiting for each
answer, would slow down with it and hide the queue). Goal (issue "Proof under fire"): p95 of the
lookups ≤ 50 ms with no errors at that load, on these 2 cores — the load generator shares them
with the server, as a small business's single machine would. Then the rate is raised step by step
until the lookups' p95 passes 100 ms (or errors appear); the last step under it is reported.

The server is `rapport serve` (gunicorn, `--workers` processes of 4 threads) on loopback, on the
database bench/lookup.py built and kept (`--reuse`): run that first.

    .venv/bin/python -m bench.lookup --activities 1000000 --contacts 50000 --reuse --samples 50
    .venv/bin/python -m bench.load --activities 1000000 --contacts 50000 --out docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import http.client
import json
import queue
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import capture_vs_notmuch as cvn
from bench import lookup as lk

SENDERS = 64  # threads sending; more than can ever be waiting at the rates measured here


@dataclass
class Sent:
    kind: str
    planned: float  # seconds from the start of the phase
    latency_ms: float  # from the planned moment to the whole answer
    status: int  # 0: no answer (connection error)


def plan(
    rate_lookups: float,
    rate_searches: float,
    seconds: float,
    lookups: list[str],
    searches: list[str],
) -> list[tuple[float, str, str]]:
    """(moment, kind, path) for a phase: evenly spaced, the two kinds interleaved."""
    items: list[tuple[float, str, str]] = []
    for kind, rate, paths in (
        ("lookup", rate_lookups, lookups),
        ("search", rate_searches, searches),
    ):
        if rate <= 0:
            continue
        count = int(seconds * rate)
        items += [(n / rate, kind, paths[n % len(paths)]) for n in range(count)]
    return sorted(items)


def drive(port: int, token: str, items: list[tuple[float, str, str]]) -> list[Sent]:
    """Send every item at its moment from a pool of keep-alive connections."""
    work: queue.Queue[tuple[float, str, str] | None] = queue.Queue()
    results: list[Sent] = []
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {token}"}
    start = time.perf_counter() + 0.5

    def sender() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while (item := work.get()) is not None:
            moment, kind, path = item
            try:
                conn.request("GET", path, headers=headers)
                answer = conn.getresponse()
                answer.read()
                status = answer.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status = 0
            done = time.perf_counter()
            with lock:
                results.append(Sent(kind, moment, (done - start - moment) * 1000, status))
        conn.close()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    for item in items:
        delay = start + item[0] - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        work.put(item)
    for _ in threads:
        work.put(None)
    for thread in threads:
        thread.join()
    return results


def summary(sent: Sequence[Sent], seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("lookup", "search"):
        mine = [s for s in sent if s.kind == kind]
        if not mine:
            continue
        out[kind] = {
            **lk.percentiles([s.latency_ms for s in mine]),
            "errors": sum(1 for s in mine if s.status != 200),
            "rate": len(mine) / seconds,
        }
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(data_dir: Path, url: str, workers: int) -> Iterator[int]:
    port = free_port()
    env = {**cvn.rapport_env(data_dir, url), **lk.rapport_env(data_dir, url)}
    log = open(data_dir / "load-server.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [cvn.RAPPORT, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers",
         str(workers)],
        env=env, cwd=cvn.REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"rapport serve did not start; see {data_dir}/load-server.log")
            time.sleep(0.3)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def run_backend(
    name: str, data_dir: Path, url: str, token: str, data: Any, args: argparse.Namespace
) -> dict[str, Any]:
    rng = random.Random(21)
    lookups = [
        "/api/v1/lookup?" + "&".join(f"email={a}" for a in group)
        for group in lk.sample_addresses(data, 2000, rng)
    ]
    searches = [
        f"/api/v1/search?q={q.replace(' ', '+')}" for q in lk.search_queries(data, 400, rng)
    ]
    result: dict[str, Any] = {"name": name, "steps": []}
    with server(data_dir, url, args.workers) as port:
        drive(port, token, plan(20, 2, 10, lookups[-200:], searches[-40:]))  # warm up
        cvn.wait_for_quiet(args.quiet_wait)
        sent = drive(
            port, token, plan(args.lookups, args.searches, args.seconds, lookups, searches)
        )
        result["steady"] = summary(sent, args.seconds)
        print(f"{name}: steady {json.dumps(result['steady'])}", file=sys.stderr, flush=True)
        factor = 1.0
        while factor < args.max_factor:
            factor *= args.step_factor
            lookups_rate, searches_rate = args.lookups * factor, args.searches * factor
            cvn.wait_for_quiet(args.quiet_wait)
            sent = drive(
                port, token, plan(lookups_rate, searches_rate, args.step_seconds, lookups, searches)
            )
            step = summary(sent, args.step_seconds)
            result["steps"].append(step)
            print(f"{name}: x{factor:.2f} {json.dumps(step)}", file=sys.stderr, flush=True)
            if step["lookup"]["p95"] > args.knee_ms or step["lookup"]["errors"]:
                break
    return result


def markdown(results: dict[str, Any]) -> str:
    info = results["machine"]
    lines = [f"Measured {info['date']} on:", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    lines += [
        "",
        f"`rapport serve --workers {results['workers']}` on loopback over "
        f"{results['activities']:,} activities and {results['contacts']:,} contacts; open-loop "
        f"load for {results['seconds']:.0f} s, latency from each request's planned moment to its "
        "whole answer (sign-in, rate limit and HTTP included), the load generator on the same two "
        "cores.",
        "",
        "| backend | load (per s) | lookup p50 | lookup p95 | lookup p99 | search p95 | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for backend in results["backends"]:
        rows = [("steady", backend["steady"])] + [("step", s) for s in backend["steps"]]
        for label, step in rows:
            look, find = step["lookup"], step.get("search", {})
            errors = look["errors"] + find.get("errors", 0)
            load = f"{look['rate']:.0f} lookups + {find.get('rate', 0):.0f} searches"
            lines.append(
                f"| {backend['name']}{'' if label == 'steady' else ' (raised)'} | {load} | "
                f"{look['p50']:.1f} ms | {look['p95']:.1f} ms | {look['p99']:.1f} ms | "
                f"{find.get('p95', 0):.1f} ms | {errors} |"
            )
        under = [s for s in backend["steps"] if s["lookup"]["p95"] <= results["knee_ms"]]
        steady_ok = backend["steady"]["lookup"]["p95"] <= results["knee_ms"]
        best = under[-1] if under else backend["steady"] if steady_ok else None
        lines.append("")
        lines.append(
            f"{backend['name']}: the highest rate measured with lookup p95 ≤ "
            f"{results['knee_ms']:.0f} ms: "
            + (f"{best['lookup']['rate']:.0f} lookups/s." if best else "none of the steps.")
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--activities", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=50_000)
    parser.add_argument("--postgres", action="store_true", help="also the kept PostgreSQL build")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--lookups", type=float, default=100.0, help="lookups per second")
    parser.add_argument("--searches", type=float, default=10.0, help="searches per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="the steady phase")
    parser.add_argument("--step-seconds", type=float, default=20.0)
    parser.add_argument("--step-factor", type=float, default=1.25)
    parser.add_argument("--max-factor", type=float, default=6.0)
    parser.add_argument("--knee-ms", type=float, default=100.0)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--quiet-wait", type=float, default=300.0)
    parser.add_argument("--work", type=Path, default=cvn.WORK / "lookup")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    data = lk.make_people(args.contacts, random.Random(1))  # the same people bench.lookup built
    params = {"dataset": lk.DATASET_VERSION, "activities": args.activities}
    results: dict[str, Any] = {
        **{k: vars(args)[k] for k in ("activities", "contacts", "seconds", "workers", "knee_ms")},
        "backends": [],
    }
    pg_version = None
    with lk.postgres_server(args.postgres, args.work / "postgresql-server") as pg:
        targets: list[tuple[str, Path, str | None]] = []
        if not args.no_sqlite:
            targets.append(
                ("SQLite", args.work / "sqlite", f"sqlite:///{args.work}/sqlite/rapport.db")
            )
        if pg is not None:
            assert isinstance(pg, lk.KeptPostgres)
            pg_version = pg.version()
            targets.append(
                ("PostgreSQL", args.work / "postgresql", pg.existing_database(lk.PG_DATABASE))
            )
        for name, data_dir, url in targets:
            kind = "sqlite" if name == "SQLite" else "postgresql"
            record = lk.read_record(data_dir, {**params, "contacts": args.contacts, "kind": kind})
            if record is None or url is None:
                raise SystemExit(
                    f"{name}: no kept build of these parameters; run bench.lookup --reuse"
                )
            lk.upgrade(url, data_dir)
            results["backends"].append(
                run_backend(name, data_dir, url, record["token"], data, args)
            )
    results["machine"] = cvn.machine_info(pg_version)
    text = markdown(results)
    print(text)
    if args.out:
        cvn.replace_block(args.out, f"load-{args.activities}", text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
