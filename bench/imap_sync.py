"""IMAP initial sync against `rapport import` of the same mail, and the worker's memory.

The goals (from the live-capture issue): the initial sync of 10,000 messages from a local
Dovecot within 1.5x of the time `rapport import` takes for the same Maildir, and the worker's
memory flat while it syncs 100,000 messages.

Both contenders capture the bench corpus (bench/corpus.py) as Anna's mailbox with every capture
rule on, into a fresh SQLite database each run. Dovecot (Debian's, started by the test harness in
tests/support/dovecot.py) gets the corpus through `doveadm import` — INBOX and Sent, its own
indexes built before the clock starts, as on a real server — and is reached over IMAPS on
loopback. The timed commands:

    rapport import CORPUS --mailbox anna@northwind-supplies.com --capture-level full
    rapport worker --once      (after `rapport mailbox add imap ... --folders INBOX,Sent`)

The worker's wall includes the relationship-signals refresh that follows its capture; the import
only queues that refresh. So after each import an untimed `rapport worker --once` runs it, and
the comparison against the goal adds that job's time (from the worker's log) to the import's.

    .venv/bin/python -m bench.imap_sync --messages 10000 --runs 3 --out docs/benchmarks.md
    .venv/bin/python -m bench.imap_sync --messages 100000 --runs 1 --skip-import \\
        --name imap-memory --out docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from bench import capture_vs_notmuch as cvn
from bench.corpus import OWNER

IMAP_USER = "anna"
PASSWORD_VAR = "BENCH_IMAP_PASSWORD"  # noqa: S105 - the name of a variable


def start_dovecot(corpus: Path) -> Any:
    sys.path.insert(0, str(cvn.REPO))
    from tests.support.dovecot import DovecotServer

    server = DovecotServer()
    server.start()
    server.add_user(IMAP_USER)
    # The corpus is a Maildir whose root is the INBOX and whose Sent is a nested Maildir: the
    # "fs" layout names that folder "Sent", as Rapport's own import does.
    # Dovecot keeps its index and UID list beside a Maildir; the corpus stays untouched (and
    # readable by the mail user) with those put in a scratch directory of the server's.
    scratch = server.root / "import-scratch"
    scratch.mkdir()
    owner = server.maildir(IMAP_USER).parent.stat()
    os.chown(scratch, owner.st_uid, owner.st_gid)
    source = f"maildir:{corpus}:LAYOUT=fs:INDEX={scratch}/index:CONTROL={scratch}/control"
    server.doveadm("import", "-u", IMAP_USER, "-s", source, "", "all")
    for folder in ("INBOX", "Sent"):
        server.doveadm("index", "-u", IMAP_USER, folder)
    return server


def folder_counts(server: Any) -> dict[str, int]:
    from tests.support.dovecot import DOVEADM

    counts: dict[str, int] = {}
    for folder in ("INBOX", "Sent"):
        out = subprocess.run(
            [str(DOVEADM), "-f", "tab", "-c", str(server.config_path), "mailbox", "status",
             "-u", IMAP_USER, "messages", folder],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        counts[folder] = int(out.splitlines()[1].split("\t")[1])
    return counts


def run_imap(corpus_server: Any, work: Path, tag: str) -> dict[str, Any]:
    data_dir = work / f"imap-{tag}"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    env = cvn.rapport_env(data_dir, None)
    env["RAPPORT_CA_BUNDLE"] = str(corpus_server.ca_path)
    env[PASSWORD_VAR] = corpus_server.password(IMAP_USER)
    cvn.setup_rapport(env)
    subprocess.run(
        [cvn.RAPPORT, "mailbox", "add", "imap", "--owner", OWNER, "--host", corpus_server.host,
         "--port", str(corpus_server.imaps_port), "--security", "ssl", "--user", IMAP_USER,
         "--password-env", PASSWORD_VAR, "--folders", "INBOX,Sent", "--since", "2000-01-01",
         "--capture-level", "full"],
        env=env, cwd=cvn.REPO, check=True, capture_output=True,
    )  # fmt: skip
    timed = cvn.run_timed([cvn.RAPPORT, "worker", "--once"], env, data_dir, "worker")
    jobs = cvn.job_seconds(timed.stderr)
    with sqlite3.connect(data_dir / "rapport.sqlite3") as conn:
        captured, observed = conn.execute(
            "SELECT (SELECT messages_captured FROM mailbox_links WHERE kind = 'imap'),"
            " (SELECT count(*) FROM mailbox_observations)"
        ).fetchone()
        decisions = conn.execute("SELECT count(*) FROM capture_decisions").fetchone()[0]
    result = {
        "tool": "rapport worker --once (IMAP)",
        "wall": timed.wall,
        "sync": sum(s for kind, s in jobs if kind == "sync_link"),
        "signals": sum(s for kind, s in jobs if kind == "signals_refresh"),
        "captured": captured,
        "observed": observed,
        "decisions": decisions,
        "memory": {k: v for k, v in vars(timed.memory).items() if k != "timeline"},
        "main_at": [memory_at(timed.memory.timeline, f) for f in (0.25, 0.5, 0.75, 1.0)],
        "busy_before": timed.busy_before,
    }
    shutil.rmtree(data_dir, ignore_errors=True)
    return result


def memory_at(timeline: list[tuple[float, float, float]], fraction: float) -> float:
    if not timeline:
        return 0.0
    end = timeline[-1][0] * fraction
    return max(main for t, main, _ in timeline if t <= end)


def markdown(results: dict[str, Any]) -> str:
    info = results["machine"]
    lines = [f"Measured {info['date']} on:", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    counts = results["dovecot_folders"]
    lines += [
        "",
        f"Corpus: {results['messages']:,} messages (seed 1) in Dovecot "
        f"({', '.join(f'{k} {v:,}' for k, v in counts.items())}); SQLite; every rule on; "
        f"median of {results['runs']} run(s).",
        "",
        "| contender | wall s (median) | runs | msgs/s | signals refresh s | peak RSS main "
        "| main at 25/50/75/100% | largest worker | tree at once |",
        "|---|---:|---|---:|---:|---:|---|---:|---:|",
    ]
    for name in ("import", "imap"):
        runs = results.get(name) or []
        if not runs:
            continue
        walls = [r["wall"] for r in runs]
        median = statistics.median(walls)
        best = min(runs, key=lambda r: abs(r["wall"] - median))
        at = best.get("main_at") or []
        mem = best["memory"]
        lines.append(
            f"| {best['tool']} | **{median:.1f}** | {', '.join(f'{w:.1f}' for w in walls)} | "
            f"{results['messages'] / median:.0f} | {_signals(best)} | {mem['main']:.0f} MB | "
            f"{' / '.join(f'{m:.0f}' for m in at) or '–'} | {mem['worker_max']:.0f} MB | "
            f"{mem['tree_max']:.0f} MB |"
        )
    if results.get("import") and results.get("imap"):
        imap = statistics.median(r["wall"] for r in results["imap"])
        plain = imap / statistics.median(r["wall"] for r in results["import"])
        lines += ["", f"IMAP initial sync / import, walls as timed: {plain:.2f}x."]
        if all("signals" in r for r in results["import"]):
            same = imap / statistics.median(r["wall"] + r["signals"] for r in results["import"])
            lines += [
                "",
                f"The same work on both sides: **{same:.2f}x** (goal: at most 1.5x). The "
                "worker's wall includes the signals refresh that follows its capture; the "
                "import leaves that refresh queued, so its side is the import's wall plus the "
                "refresh a worker then ran for it (its job time, from the worker's log).",
            ]
    return "\n".join(lines)


def _signals(run: dict[str, Any]) -> str:
    seconds = run.get("signals")
    if seconds is None:
        return "–"
    return f"{seconds:.1f}" + (" (after)" if run.get("after_jobs") is not None else " (in wall)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-import", action="store_true", help="IMAP only (memory runs)")
    parser.add_argument("--quiet-wait", type=float, default=300.0)
    parser.add_argument("--work", type=Path, default=cvn.WORK)
    parser.add_argument("--name", default="imap-sync", help="results block name in --out")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    cvn.QUIET_WAIT = args.quiet_wait

    corpus = cvn.ensure_corpus(args.work / f"corpus-{args.messages}-s1", args.messages, 1)
    cvn.warm(corpus)
    server = start_dovecot(corpus)
    results: dict[str, Any] = {
        "messages": args.messages,
        "runs": args.runs,
        "import": [],
        "imap": [],
    }
    try:
        results["dovecot_folders"] = folder_counts(server)
        for run in range(args.runs):
            if not args.skip_import:
                outcome = cvn.run_rapport(
                    corpus, args.work, f"import-{run}", database="sqlite", jobs=None,
                    then_worker=True,
                )  # fmt: skip
                after = cast(list[tuple[str, float]], outcome["after_jobs"])
                outcome["signals"] = sum(s for kind, s in after if kind == "signals_refresh")
                outcome["memory"] = {k: v for k, v in outcome["memory"].items() if k != "timeline"}
                results["import"].append(outcome)
                print(f"import run {run}: {outcome['wall']:.1f} s", file=sys.stderr)
            imap = run_imap(server, args.work, str(run))
            results["imap"].append(imap)
            print(
                f"imap run {run}: {imap['wall']:.1f} s, {imap['captured']} captured",
                file=sys.stderr,
            )
    finally:
        server.destroy()
    results["machine"] = cvn.machine_info()
    text = markdown(results)
    print(text)
    if args.out:
        cvn.replace_block(args.out, f"{args.name}-{args.messages}", text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
