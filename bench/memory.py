"""Memory: peak RSS of `rapport import` over 1,000, 10,000 and 100,000 messages.

    python -m bench.memory [--sizes 1000,10000,100000] [--runs 3] [--lean] [--out docs/benchmarks.md]

The goal is a flat peak (at most 150 MB per process) whatever the mailbox size: the import
streams, it never holds a whole mailbox. Each size gets its own corpus (`bench.corpus`, same
seed) and a fresh SQLite database with every capture rule on, and is imported with the default
number of parse workers. The process tree is sampled through /proc (VmHWM per process): the main
process (reads files, runs the rules, writes the database), the largest parse worker, and the
largest sum over the tree at one moment. The main process's RSS at 25/50/75/100% of the run
shows whether it creeps up with the number of messages.

Disk: a full-size corpus is ~52 KB a message (attachments included) and the SQLite database
about as much again, so 100,000 messages need ~11 GB under the work directory; `--lean` writes
messages without attachments or inline logos (~15 KB) and says so in the report.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench import capture_vs_notmuch as cvn
from bench.corpus import read_manifest

BYTES_PER_MESSAGE = {False: 52_000, True: 20_000}  # corpus; the database takes about as much


def disk_report(path: Path) -> str:
    out = subprocess.run(
        ["df", "-h", str(path)], capture_output=True, text=True, check=False
    ).stdout
    return out.strip()


def at_fraction(timeline: list[tuple[float, float, float]], fraction: float) -> float:
    if not timeline:
        return float("nan")
    end = timeline[-1][0]
    upto = [main for t, main, _tree in timeline if t <= end * fraction]
    return max(upto) if upto else timeline[0][1]


def run_size(
    messages: int, runs: int, work: Path, *, lean: bool, jobs: int | None, keep_corpus: bool
) -> list[dict[str, object]]:
    corpus = cvn.ensure_corpus(
        work / f"corpus-{messages}-s1{'-lean' if lean else ''}", messages, 1, lean=lean
    )
    manifest = read_manifest(corpus) or {}
    if messages <= 20_000:
        cvn.warm(corpus)  # a 100k corpus need not fit the page cache; reading it is part of the job
    results = []
    for run in range(1, runs + 1):
        result = cvn.run_rapport(
            corpus, work, f"mem-{messages}-r{run}", database="sqlite", jobs=jobs
        )
        mem = result["memory"]
        assert isinstance(mem, dict)
        timeline = mem.pop("timeline")
        result["rss_main_at"] = {
            f"{int(f * 100)}%": round(at_fraction(timeline, f), 1) for f in (0.25, 0.5, 0.75, 1.0)
        }
        result["corpus"] = manifest
        results.append(result)
        print(
            f"{messages} messages, run {run}: {result['rate']:.0f} msgs/s, main {mem['main']:.0f} MB, "
            f"worker {mem['worker_max']:.0f} MB, spool {mem['spool_max']:.0f} MB, "
            f"tree {mem['tree_max']:.0f} MB, "
            f"main over the run {result['rss_main_at']}",
            file=sys.stderr,
        )
    if not keep_corpus:
        shutil.rmtree(corpus, ignore_errors=True)
    return results


def markdown(
    by_size: dict[int, list[dict[str, object]]], lean: bool, jobs: int | None, default_jobs: int
) -> str:
    lines = [
        f"Corpus: {'lean messages (no attachments or inline logos)' if lean else 'full-size messages'}; "
        f"import with jobs={jobs or f'{default_jobs} (default)'}; SQLite; every rule on; "
        'median of the runs (MB = MiB of RSS). "Spool" is the parse results waiting in tmpfs for '
        'the main process to take them (memory, but no process\'s RSS); "tree at once" counts it.',
        "",
        "| messages | corpus | runs | msgs/s | peak RSS main | main at 25% / 50% / 75% / 100% of the run | largest worker | spool | tree at once | ≤ 150 MB per process? |",
        "|---:|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for messages, results in sorted(by_size.items()):
        mems = [r["memory"] for r in results]
        main = statistics.median(m["main"] for m in mems)  # type: ignore[index]
        worker = statistics.median(m["worker_max"] for m in mems)  # type: ignore[index]
        tree = statistics.median(m["tree_max"] for m in mems)  # type: ignore[index]
        spooled = statistics.median(m.get("spool_max", 0.0) for m in mems)  # type: ignore[attr-defined]
        rate = statistics.median(float(r["rate"]) for r in results)  # type: ignore[arg-type]
        # the profile over the run of the run with the median peak
        middle = sorted(results, key=lambda r: r["memory"]["main"])[len(results) // 2]  # type: ignore[index]
        at = middle["rss_main_at"]
        corpus = results[0]["corpus"]
        size = f"{int(corpus.get('bytes', 0)) / 1e9:.2f} GB" if isinstance(corpus, dict) else "?"  # type: ignore[call-overload]
        ok = "yes" if max(main, worker) <= 150 else f"no ({max(main, worker):.0f} MB)"
        lines.append(
            f"| {messages:,} | {size} | {len(results)} | {rate:.0f} | {main:.0f} MB | "
            f"{' / '.join(f'{v:.0f}' for v in at.values())} MB | {worker:.0f} MB | {spooled:.0f} MB | {tree:.0f} MB | {ok} |"  # type: ignore[attr-defined]
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.memory", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, help="parse workers (default: rapport's default)")
    parser.add_argument("--lean", action="store_true", help="smaller messages (see the module doc)")
    parser.add_argument("--work", type=Path, default=cvn.WORK)
    parser.add_argument("--keep-corpus", action="store_true")
    parser.add_argument("--quiet-wait", type=float, default=300.0)
    parser.add_argument("--out", type=Path, help="update this markdown file's results block")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    cvn.QUIET_WAIT = args.quiet_wait

    from server.mail_ingest.parse_pool import default_jobs

    sizes = [int(s) for s in args.sizes.split(",")]
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    need = max(sizes) * BYTES_PER_MESSAGE[args.lean] * 2.2
    free = shutil.disk_usage(work).free
    print(disk_report(work), file=sys.stderr)
    if need > free * 0.8:
        print(
            f"error: {max(sizes):,} messages need ~{need / 1e9:.0f} GB under {work}, "
            f"{free / 1e9:.0f} GB free; use --lean or another --work",
            file=sys.stderr,
        )
        return 2
    info = cvn.machine_info()
    by_size: dict[int, list[dict[str, object]]] = {}
    for messages in sizes:
        by_size[messages] = run_size(
            messages, args.runs, work, lean=args.lean, jobs=args.jobs, keep_corpus=args.keep_corpus
        )
    report = markdown(by_size, args.lean, args.jobs, default_jobs())
    machine = "\n".join(f"- {k}: {v}" for k, v in info.items())
    text = f"Measured {info['date']} on:\n\n{machine}\n\n{report}"
    print(text)
    if args.out:
        cvn.replace_block(args.out, "memory", text)
    if args.json:
        import json

        args.json.write_text(
            json.dumps(
                {"machine": info, "results": {str(k): v for k, v in by_size.items()}},
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
