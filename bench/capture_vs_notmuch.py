"""Capture speed: `rapport import` against `notmuch new` on the same Maildir, same machine, same run.

    python -m bench.capture_vs_notmuch [--messages 5000] [--runs 3] [--postgres] [--profile]
                                       [--out docs/benchmarks.md] [--json results.json]

Generates the corpus (`bench.corpus`; reused when one with the same parameters exists), reads it
once to warm the page cache, then runs each contender `--runs` times, interleaved so that load on
a shared machine hits all of them alike:

* `notmuch new` into a fresh notmuch database over the Maildir (a throwaway NOTMUCH_CONFIG with
  the database outside the mail root); messages/s = notmuch's own message count / wall time;
* `rapport import CORPUS --mailbox anna@... --capture-level full` on a fresh SQLite database with
  every capture rule on (the skip_* policies, the internal domain, a never-log list for the
  owner, a blocked domain and a blocked address), with the default number of parse workers and
  with `--jobs 1`; messages/s = messages read (captured + skipped + quarantined) / wall time of
  the whole command, start-up included;
* the same on PostgreSQL (a throwaway server, fsync and synchronous_commit left on) with
  `--postgres`.

Peak RSS comes from /proc sampling of the process tree (VmHWM per process): the main `rapport`
process, the largest parse worker (workers are forkserver children, i.e. separate processes) and
the largest sum of RSS over the tree at one moment. The median of the runs is reported.
`--profile` adds a cProfile of one `--jobs 1` import (all work in one process) and of the main
process of a default import, summed by where the time goes.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import platform
import pstats
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.corpus import (
    BLOCK_ADDRESSES,
    BLOCK_DOMAINS,
    INTERNAL_DOMAIN,
    NEVER_LOG,
    OWNER,
    generate,
    read_manifest,
)
from bench.corpus import VERSION as CORPUS_VERSION
from server import compiled
from server.mail_ingest.spool import spools_of

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RAPPORT = str(BIN / "rapport")
SECRET = "bench-only-secret-key-not-for-production-use"  # noqa: S105
WORK = Path(os.environ.get("RAPPORT_BENCH_DIR", "/tmp/rapport-bench"))
MARK_START = "<!-- bench:{name}:start -->"
MARK_END = "<!-- bench:{name}:end -->"


# -- corpus -----------------------------------------------------------------------------------------


def ensure_corpus(path: Path, messages: int, seed: int, lean: bool = False) -> Path:
    """The corpus at `path`, generated unless one with these parameters is already there."""
    manifest = read_manifest(path)
    wanted = {"version": CORPUS_VERSION, "messages": messages, "seed": seed, "lean": lean}
    if manifest and all(manifest.get(k) == v for k, v in wanted.items()):
        print(f"corpus: reusing {path} ({messages} messages)", file=sys.stderr)
        return path
    print(f"corpus: generating {messages} messages into {path} ...", file=sys.stderr)
    stats = generate(path, messages=messages, seed=seed, lean=lean, force=True)
    summary = stats.summary()
    print(
        f"corpus: {summary['messages']} messages, {int(summary['bytes']) / 1e6:.0f} MB, "  # type: ignore[call-overload]
        f"median {summary['size_median']} bytes, in {summary['seconds']} s",
        file=sys.stderr,
    )
    return path


def warm(path: Path) -> None:
    """Read every file once so that no contender pays for the first cold read."""
    for current, _dirs, files in os.walk(path):
        for name in files:
            with open(os.path.join(current, name), "rb") as fh:
                while fh.read(1 << 20):
                    pass


# -- running and watching a process tree ------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out.extend(int(x) for x in fh.read().split())
        except OSError:
            continue
    return out


def _status_kb(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) in kB."""
    hwm = rss = 0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return hwm, rss


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_ticks(pid: int) -> int:
    """utime + stime of a process so far, in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _spool_kb(pid: int) -> int:
    """kB of parse results the process's pools hold in their spools (tmpfs: memory too)."""
    total = 0
    for spool in spools_of(pid):
        with contextlib.suppress(OSError):
            total += sum(entry.stat().st_size for entry in os.scandir(spool))
    return total // 1024


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


@dataclass
class Memory:
    """Peak RSS of a process tree, in MB."""

    main: float = 0.0
    worker_max: float = 0.0
    workers: int = 0
    helpers_max: float = 0.0  # forkserver, resource tracker
    tree_max: float = 0.0  # the largest sum of RSS (and spool) over the tree at one sample
    spool_max: float = 0.0  # parse results waiting in the pool's spool (tmpfs), at most
    samples: int = 0
    cpu_seconds: float = 0.0  # user + system time of every process of the tree
    timeline: list[tuple[float, float, float]] = field(
        default_factory=list
    )  # (s, main MB, tree MB)


class TreeMonitor(threading.Thread):
    """Samples /proc for a process and its descendants until stopped."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.hwm: dict[int, int] = {}
        self.cpu: dict[int, int] = {}
        self.role: dict[int, str] = {}
        self.tree_max = 0
        self.spool_max = 0
        self.samples = 0
        self.started = time.monotonic()
        self.timeline: list[tuple[float, int, int]] = []  # (seconds, main RSS kB, tree RSS kB)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def sample(self) -> None:
        total = main_rss = 0
        stack = [(self.pid, "main")]
        while stack:
            pid, role = stack.pop()
            hwm, rss = _status_kb(pid)
            if hwm == 0:
                continue
            total += rss
            if role == "main":
                main_rss = rss
            self.hwm[pid] = max(self.hwm.get(pid, 0), hwm)
            self.cpu[pid] = max(self.cpu.get(pid, 0), _cpu_ticks(pid))
            # A child caught between fork and exec still shows its parent's command line (and a
            # command line can fail to read): "helper" is only a guess until something better.
            if self.role.get(pid, "helper") == "helper":
                self.role[pid] = role
            role = self.role[pid]
            for child in _children(pid):
                if role == "main":
                    cmd = _cmdline(child)
                    child_role = "forkserver" if "forkserver" in cmd else "helper"
                elif role == "forkserver":
                    child_role = "worker"
                else:
                    child_role = "helper"
                stack.append((child, child_role))
        spooled = _spool_kb(self.pid)
        self.spool_max = max(self.spool_max, spooled)
        total += spooled
        self.tree_max = max(self.tree_max, total)
        self.samples += 1
        if main_rss:
            self.timeline.append((time.monotonic() - self.started, main_rss, total))

    def stop(self) -> Memory:
        self._halt.set()
        self.join()
        mem = Memory(
            tree_max=self.tree_max / 1024,
            spool_max=self.spool_max / 1024,
            samples=self.samples,
            cpu_seconds=sum(self.cpu.values()) / _TICK,
        )
        mem.timeline = [(round(t, 2), main / 1024, tree / 1024) for t, main, tree in self.timeline]
        for pid, kb in self.hwm.items():
            role = self.role[pid]
            if role == "main":
                mem.main = kb / 1024
            elif role == "worker":
                mem.worker_max = max(mem.worker_max, kb / 1024)
                mem.workers += 1
            else:
                mem.helpers_max = max(mem.helpers_max, kb / 1024)
        return mem


def cpu_busy(seconds: float = 1.0) -> float:
    """The share of the machine's CPU time that was busy over `seconds` (0..1), from /proc/stat."""

    def read() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return idle, sum(fields[:8])

    idle1, total1 = read()
    time.sleep(seconds)
    idle2, total2 = read()
    return 1 - (idle2 - idle1) / max(1, total2 - total1)


def wait_for_quiet(max_wait: float, threshold: float = 0.15) -> float:
    """Wait (up to `max_wait` s) until others leave the CPU mostly idle; return the busy share seen.

    The machine is shared: a run that starts while someone else's job holds a core measures them
    as much as us. Waiting for a quiet moment keeps the comparison fair; the busy share at the
    start of each run is reported either way.
    """
    deadline = time.monotonic() + max_wait
    busy = cpu_busy()
    while busy > threshold and time.monotonic() < deadline:
        time.sleep(2)
        busy = cpu_busy()
    return busy


@dataclass
class Timed:
    wall: float
    returncode: int
    stdout: str
    stderr: str
    memory: Memory
    rusage_maxrss_mb: float  # the kernel's figure for the process (max over it and reaped children)
    load_before: float
    load_after: float
    busy_before: float = 0.0


QUIET_WAIT = 0.0  # seconds to wait for a quiet machine before each timed run (--quiet-wait)
# Seconds between the monitor's looks at the timed process tree. The memory bench keeps 0.05 s
# for its tree-at-once figures. The speed runs look every 0.25 s: each look costs ~1.7 ms of a
# core on this machine, ~3% of one core at 0.05 s. That CPU came out of Rapport's time, since
# Rapport keeps both cores busy, and never out of notmuch's, which leaves one idle. The
# per-process peaks are the kernel's high-water marks and do not depend on the interval.
MONITOR_INTERVAL = 0.05
SPEED_MONITOR_INTERVAL = 0.25


def run_timed(cmd: Sequence[str], env: dict[str, str], log_dir: Path, name: str) -> Timed:
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
    busy_before = wait_for_quiet(QUIET_WAIT) if QUIET_WAIT > 0 else cpu_busy(0.5)
    load_before = os.getloadavg()[0]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, cwd=REPO)
        monitor = TreeMonitor(proc.pid, MONITOR_INTERVAL)
        monitor.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        memory = monitor.stop()
    timed = Timed(
        wall=wall,
        returncode=proc.returncode,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        memory=memory,
        rusage_maxrss_mb=usage.ru_maxrss / 1024,
        load_before=load_before,
        load_after=os.getloadavg()[0],
        busy_before=busy_before,
    )
    if timed.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({timed.returncode}):\n{timed.stderr[-3000:]}")
    return timed


# -- notmuch ------------------------------------------------------------------------------------------


def notmuch_version() -> str:
    try:
        return subprocess.run(
            ["notmuch", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "notmuch (not found)"


def run_notmuch(corpus: Path, work: Path, tag: str) -> dict[str, object]:
    root = work / f"notmuch-{tag}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "db").mkdir(parents=True)
    config = root / "config"
    config.write_text(
        "[database]\n"
        f"path={root / 'db'}\n"
        f"mail_root={corpus}\n"
        "[user]\nname=Anna Whitfield\n"
        f"primary_email={OWNER}\n"
        "[new]\ntags=unread;inbox;\nignore=.corpus.json\n"
        "[search]\nexclude_tags=deleted;spam;\n"
        "[maildir]\nsynchronize_flags=true\n"
    )
    env = {**os.environ, "NOTMUCH_CONFIG": str(config)}
    timed = run_timed(["notmuch", "new"], env, root, "new")
    count = int(
        subprocess.run(
            ["notmuch", "count", "*"], env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    added = re.search(r"Added (\d+) new messages", timed.stdout + timed.stderr)
    result = {
        "tool": "notmuch new",
        "database": "Xapian",
        "jobs": 1,
        "messages": count,
        "added": int(added.group(1)) if added else None,
        "wall": timed.wall,
        "rate": count / timed.wall,
        "memory": asdict(timed.memory),
        "rusage_maxrss_mb": timed.rusage_maxrss_mb,
        "load": (timed.load_before, timed.load_after),
        "busy_before": timed.busy_before,
    }
    shutil.rmtree(root, ignore_errors=True)
    return result


# -- rapport ------------------------------------------------------------------------------------------


def rapport_env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = {
        **os.environ,
        "RAPPORT_DATA_DIR": str(data_dir),
        "RAPPORT_SECRET_KEY": SECRET,
        "RAPPORT_INTERNAL_DOMAINS": INTERNAL_DOMAIN,
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    env.pop("RAPPORT_DATABASE_URL", None)
    if database_url:
        env["RAPPORT_DATABASE_URL"] = database_url
    return env


def setup_rapport(env: dict[str, str]) -> None:
    """A fresh schema with every capture rule on (not timed)."""
    commands = [
        ["db", "upgrade"],
        ["user", "add", OWNER, "--role", "member", "--name", "Anna Whitfield"],
        *(["rule", "add", "never_log", value, "--user", OWNER] for value in NEVER_LOG),
        *(["rule", "add", "block_domain", value] for value in BLOCK_DOMAINS),
        *(["rule", "add", "block_address", value] for value in BLOCK_ADDRESSES),
        *(
            ["rule", "set", key, "on"]
            for key in ("skip_internal_only", "skip_mailing_lists", "skip_automated")
        ),
    ]
    for args in commands:
        subprocess.run([RAPPORT, *args], env=env, cwd=REPO, check=True, capture_output=True)


_SUMMARY = {
    "captured": re.compile(r"^\s*captured\s+(\d+)", re.M),
    "known": re.compile(r"^\s*already known\s+(\d+)", re.M),
    "elapsed": re.compile(r"^\s*elapsed\s+([\d.]+) s", re.M),
    "rate": re.compile(r"^\s*rate\s+([\d.]+) messages/s", re.M),
}
_SKIPPED = re.compile(r"^\s*(skipped|quarantined): (\S+)\s+(\d+)", re.M)


def parse_summary(text: str) -> dict[str, object]:
    found: dict[str, object] = {}
    for key, pattern in _SUMMARY.items():
        match = pattern.search(text)
        found[key] = float(match.group(1)) if match else None
    skipped: dict[str, int] = {}
    quarantined: dict[str, int] = {}
    for kind, reason, n in _SKIPPED.findall(text):
        (skipped if kind == "skipped" else quarantined)[reason] = int(n)
    found["skipped"] = skipped
    found["quarantined"] = quarantined
    found["total"] = int(
        (found["captured"] or 0)
        + (found["known"] or 0)
        + sum(skipped.values())
        + sum(quarantined.values())  # type: ignore[operator]
    )
    return found


def import_command(corpus: Path, jobs: int | None, level: str = "full") -> list[str]:
    cmd = [RAPPORT, "import", str(corpus), "--mailbox", OWNER, "--capture-level", level]
    if jobs is not None:
        cmd += ["--jobs", str(jobs)]
    return cmd


def job_seconds(log_text: str) -> list[tuple[str, float]]:
    """(kind, seconds) of each job a worker ran, from its "job done" log lines (JSON)."""
    found = []
    for line in log_text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("message") == "job done":
            found.append((str(entry.get("kind")), float(entry.get("seconds") or 0.0)))
    return found


def run_rapport(
    corpus: Path,
    work: Path,
    tag: str,
    *,
    database: str,
    jobs: int | None,
    pg: PgServer | None = None,
    then_worker: bool = False,
) -> dict[str, object]:
    """One timed `rapport import`; with `then_worker`, an untimed `rapport worker --once` after
    it, whose jobs (the signals refresh the import left queued) are reported in `after_jobs`."""
    data_dir = work / f"rapport-{tag}"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    url = None
    if database == "postgresql":
        assert pg is not None
        url = pg.fresh_database(f"bench_{re.sub(r'[^a-z0-9]', '_', tag.lower())}")
    env = rapport_env(data_dir, url)
    setup_rapport(env)
    timed = run_timed(import_command(corpus, jobs), env, data_dir, "import")
    summary = parse_summary(timed.stdout)
    total = int(summary["total"])  # type: ignore[call-overload]
    db_size = sum(p.stat().st_size for p in data_dir.glob("rapport.sqlite3*"))
    after_jobs: list[tuple[str, float]] = []
    if then_worker:
        worker = [RAPPORT, "worker", "--once"]
        done = subprocess.run(worker, env=env, cwd=REPO, check=True, capture_output=True, text=True)
        after_jobs = job_seconds(done.stderr)
    result = {
        "tool": "rapport import",
        "database": "SQLite" if database == "sqlite" else "PostgreSQL",
        "jobs": jobs,
        "messages": total,
        "wall": timed.wall,
        "rate": total / timed.wall,
        "own_rate": summary["rate"],
        "own_elapsed": summary["elapsed"],
        "summary": summary,
        "memory": asdict(timed.memory),
        "rusage_maxrss_mb": timed.rusage_maxrss_mb,
        "load": (timed.load_before, timed.load_after),
        "busy_before": timed.busy_before,
        "after_jobs": after_jobs,
        "db_bytes": db_size
        if database == "sqlite"
        else pg.database_size(url)
        if pg and url
        else None,
    }
    if pg is not None and url is not None:
        pg.drop(url)
    shutil.rmtree(data_dir, ignore_errors=True)
    return result


class PgServer:
    """A throwaway PostgreSQL (tests.support.postgres) restarted with durability left on."""

    def __init__(self, durable: bool = True) -> None:
        sys.path.insert(0, str(REPO))
        from tests.support.postgres import PostgresServer

        self.server = PostgresServer()
        self.server.start()  # initdb, and the test harness's fast settings
        self.durable = durable
        if durable:
            self.server.stop()
            options = (
                f"-p {self.server.port} -k {self.server.root} -c listen_addresses=127.0.0.1 "
                "-c max_connections=200"
            )
            subprocess.run(
                self.server._cmd(
                    str(self.server.bin / "pg_ctl"), "-D", str(self.server.data), "-o", options,
                    "-l", str(self.server.root / "server.log"), "-w", "start",
                ),
                check=True,
                capture_output=True,
            )  # fmt: skip
            self.server.started = True
            self.server._wait_ready()

    def version(self) -> str:
        import psycopg

        with psycopg.connect(self.server.admin_conninfo) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            settings = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                for name in ("fsync", "synchronous_commit", "shared_buffers")
            }
        return f"PostgreSQL {row[0] if row else '?'} ({', '.join(f'{k}={v}' for k, v in settings.items())})"

    def fresh_database(self, name: str) -> str:
        self.server.execute(f"DROP DATABASE IF EXISTS {name}")
        self.server.execute(f"CREATE DATABASE {name}")
        return f"postgresql://rapport@127.0.0.1:{self.server.port}/{name}"

    def database_size(self, url: str) -> int:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.server.admin_conninfo) as conn:
            row = conn.execute("SELECT pg_database_size(%s)", (name,)).fetchone()
        return int(row[0]) if row else 0

    def drop(self, url: str) -> None:
        self.server.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def destroy(self) -> None:
        self.server.destroy()


# -- the machine --------------------------------------------------------------------------------------


def machine_info(pg_version: str | None = None) -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = 0.0
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 1024 / 1024
    debian = (
        Path("/etc/debian_version").read_text().strip()
        if Path("/etc/debian_version").exists()
        else "?"
    )
    if pg_version is None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
        pg_version = (
            subprocess.run(
                [str(bins[0]), "--version"], capture_output=True, text=True
            ).stdout.strip()
            if bins
            else "?"
        )
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "server", "migrations"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.count("\n")
    except OSError:
        head, dirty = "?", 0
    return {
        "rapport": f"git {head}" + (f" + {dirty} uncommitted files under server/" if dirty else ""),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": f"{mem_gb:.1f} GiB",
        "os": f"Debian {debian}, Linux {platform.release()}",
        "python": platform.python_version(),
        "parser": compiled.status,
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version,
        "notmuch": notmuch_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# -- profile ------------------------------------------------------------------------------------------

_CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("parse: MIME headers/tree/charsets (server/mail_ingest/mime*.py)", ("server/mail_ingest/mime",)),
    ("parse: HTML to text (inscriptis, mail-parser-reply)", ("inscriptis", "mailparser_reply", "lxml")),
    ("read files (server/mail_ingest/sources)", ("server/mail_ingest/sources",)),
    ("capture rules (server/crm/rules.py, bulk.py, addresses.py, domains)", ("server/crm/rules", "server/crm/bulk", "server/crm/addresses", "server/crm/domains", "publicsuffixlist")),
    ("threading keys (server/crm/threads.py)", ("server/crm/threads",)),
    ("blobs: hashing + compression (server/crm/blobs.py, blob_rows.py, blob_parts.py)", ("server/crm/blob",)),
    ("capture core: ORM/Core statements (server/crm/*)", ("server/crm/",)),
    ("pipeline (server/mail_ingest/pipeline.py, prepare.py, importer.py)", ("server/mail_ingest/pipeline", "server/mail_ingest/prepare", "server/mail_ingest/importer")),
    ("SQLAlchemy (compile, execute, ORM)", ("sqlalchemy",)),
    ("psycopg", ("psycopg",)),
    ("multiprocessing + pickling", ("multiprocessing", "concurrent/futures", "pickle")),
    ("start-up: imports, click, alembic", ("importlib", "click", "alembic", "<frozen")),
    ("logging, rich progress", ("logging", "rich")),
]  # fmt: skip
_BUILTIN_CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("SQLite (C: execute/executemany/commit)", ("sqlite3",)),
    ("blobs: hashing + compression (server/crm/blobs.py, blob_rows.py, blob_parts.py)", ("zlib", "_hashlib", "sha256", "zstd", "lzma", "b2a_base64")),
    ("main process idle: waiting for parse workers", ("acquire",)),
    ("multiprocessing + pickling", ("pickle", "_pickle", "recv_bytes", "send_bytes", "_posixsubprocess", "select", "poll")),
]  # fmt: skip


def _category(filename: str, funcname: str) -> str | None:
    if filename == "~":
        for name, needles in _BUILTIN_CATEGORIES:
            if any(n in funcname for n in needles):
                return name
        return None
    for name, needles in _CATEGORIES:
        if any(n in filename for n in needles):
            return name
    return "other Python (stdlib, email, re ...)"


def profile_breakdown(
    path: Path, top: int = 25
) -> tuple[list[tuple[str, float, float]], list[tuple[str, float, float]], float]:
    """(categories, top functions, total seconds) from a cProfile dump, by own time.

    C functions without a category of their own (re, str, bytes methods...) are charged to the
    category of the Python function that spent most in them.
    """
    stats = pstats.Stats(str(path))
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    by_cat: dict[str, float] = defaultdict(float)
    for (filename, _line, funcname), (_cc, _nc, tt, _ct, callers) in raw.items():
        cat = _category(filename, funcname)
        if cat is None:
            best = max(callers.items(), key=lambda kv: kv[1][3], default=None) if callers else None
            cat = _category(best[0][0], best[0][2]) if best else None
            if cat is None:
                cat = "other Python (stdlib, email, re ...)"
        by_cat[cat] += tt
    cats = sorted(((k, v, 100 * v / total) for k, v in by_cat.items()), key=lambda x: -x[1])
    funcs = []
    for (filename, line, funcname), (_cc, _nc, tt, _ct, _callers) in sorted(
        raw.items(), key=lambda kv: -kv[1][2]
    )[:top]:
        short = filename
        for marker in ("/site-packages/", str(REPO) + "/", "/lib/python3"):
            if marker in short:
                short = short.split(marker, 1)[1]
        where = f"{short}:{line} {funcname}" if filename != "~" else funcname
        funcs.append((where, tt, 100 * tt / total))
    return cats, funcs, total


def run_profiles(corpus: Path, work: Path, default_jobs: int) -> dict[str, object]:
    results: dict[str, object] = {}
    for label, jobs in (
        ("jobs=1 (everything in one process)", 1),
        (f"jobs={default_jobs}, main process only", None),
    ):
        data_dir = work / f"profile-{jobs or 'default'}"
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir.mkdir(parents=True)
        # cProfile sees no function inside compiled modules: profile the parser's sources.
        env = {**rapport_env(data_dir, None), "RAPPORT_COMPILED": "0"}
        setup_rapport(env)
        prof = data_dir / "import.prof"
        cmd = [
            sys.executable,
            "-m",
            "cProfile",
            "-o",
            str(prof),
            "-m",
            "server",
            *import_command(corpus, jobs)[1:],
        ]
        timed = run_timed(cmd, env, data_dir, "import")
        cats, funcs, total = profile_breakdown(prof)
        keep = work / f"profile-jobs-{jobs or 'default'}.prof"
        shutil.copy(prof, keep)
        results[label] = {
            "wall": timed.wall,
            "profiled_seconds": total,
            "categories": cats,
            "functions": funcs,
            "file": str(keep),
        }
        shutil.rmtree(data_dir, ignore_errors=True)
    return results


def measure_transfer(corpus: Path, limit: int = 1000) -> dict[str, float]:
    """CPU cost per message of the hand-over between processes, measured in this process.

    With parse workers, each chunk of raw messages is pickled by the main process and unpickled
    by a worker, and each chunk of prepared results (blobs included) goes back the same way.
    This times `prepare_raw` and both round trips over the first `limit` messages, with the
    pickler multiprocessing uses.
    """
    from multiprocessing.reduction import ForkingPickler

    from server.mail_ingest.mime import parse_message
    from server.mail_ingest.parse_pool import CHUNK_SIZE
    from server.mail_ingest.prepare import PrepareOptions, prepare_raw
    from server.mail_ingest.sources.files import FileWalk, RawMessage

    options = PrepareOptions(
        level="full",
        internal_domains=frozenset({INTERNAL_DOMAIN}),
        owner_addresses=frozenset({OWNER}),
    )
    raws: list[RawMessage] = []
    for entry in FileWalk([corpus]).messages():
        if isinstance(entry, RawMessage):
            raws.append(entry)
            if len(raws) >= limit:
                break
    clock = time.process_time
    started = clock()
    for m in raws:
        parse_message(
            m.raw, want_subject=True, want_body=True, provider_id=m.provider_id, folder=m.folder
        )
    parse = clock() - started
    started = clock()
    prepared = [prepare_raw(m, options) for m in raws]
    prepare = clock() - started

    def round_trip(items: list[object]) -> tuple[float, float, int]:
        chunks = [items[i : i + CHUNK_SIZE] for i in range(0, len(items), CHUNK_SIZE)]
        started = clock()
        blobs = [bytes(ForkingPickler.dumps(c)) for c in chunks]
        dumps = clock() - started
        started = clock()
        for b in blobs:
            ForkingPickler.loads(b)
        return dumps, clock() - started, sum(len(b) for b in blobs)

    raw_dumps, raw_loads, raw_bytes = round_trip(list(raws))
    res_dumps, res_loads, res_bytes = round_trip(list(prepared))
    n = len(raws)
    ms = 1000 / n
    return {
        "messages": n,
        "parse_ms": parse * ms,
        "prepare_ms": prepare * ms,
        "raw_pickle_ms": raw_dumps * ms,
        "raw_unpickle_ms": raw_loads * ms,
        "raw_kb": raw_bytes / n / 1024,
        "result_pickle_ms": res_dumps * ms,
        "result_unpickle_ms": res_loads * ms,
        "result_kb": res_bytes / n / 1024,
    }


def transfer_markdown(t: dict[str, float]) -> str:
    return (
        f"Hand-over between processes, CPU per message over {int(t['messages'])} messages "
        "(measured in one process with multiprocessing's pickler):\n\n"
        "| step | where | ms/message | KB/message |\n|---|---|---:|---:|\n"
        f"| parse_message (full) | worker | {t['parse_ms']:.2f} | |\n"
        f"| prepare_raw (parse + keys + blobs) | worker | {t['prepare_ms']:.2f} | |\n"
        f"| pickle raw chunk | main | {t['raw_pickle_ms']:.3f} | {t['raw_kb']:.0f} |\n"
        f"| unpickle raw chunk | worker | {t['raw_unpickle_ms']:.3f} | |\n"
        f"| pickle prepared chunk | worker | {t['result_pickle_ms']:.3f} | {t['result_kb']:.0f} |\n"
        f"| unpickle prepared chunk | main | {t['result_unpickle_ms']:.3f} | |\n"
    )


# -- report -------------------------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _outcome(result: dict[str, object]) -> str:
    """What a run decided (counts only, no timings), to check that every run agrees."""
    summary = result.get("summary")
    if not isinstance(summary, dict):
        return ""
    keep = {k: summary[k] for k in ("captured", "known", "skipped", "quarantined", "total")}
    return json.dumps(keep, sort_keys=True)


def summarise(results: list[dict[str, object]]) -> list[dict[str, object]]:
    groups: dict[tuple[str, str, object], list[dict[str, object]]] = defaultdict(list)
    for r in results:
        groups[(str(r["tool"]), str(r["database"]), r["jobs"])].append(r)
    rows = []
    for (tool, database, jobs), runs in groups.items():
        mems = [r["memory"] for r in runs]
        rows.append(
            {
                "tool": tool,
                "database": database,
                "jobs": jobs,
                "runs": len(runs),
                "messages": runs[0]["messages"],
                "rate": _median([float(r["rate"]) for r in runs]),  # type: ignore[arg-type]
                "rates": [round(float(r["rate"]), 1) for r in runs],  # type: ignore[arg-type]
                "wall": _median([float(r["wall"]) for r in runs]),  # type: ignore[arg-type]
                "own_rate": _median([float(r["own_rate"]) for r in runs if r.get("own_rate")]),  # type: ignore[arg-type]
                "main_mb": _median([m["main"] for m in mems]),  # type: ignore[index]
                "worker_mb": _median([m["worker_max"] for m in mems]),  # type: ignore[index]
                "tree_mb": _median([m["tree_max"] for m in mems]),  # type: ignore[index]
                "cpu_ms": _median(
                    [
                        1000 * m["cpu_seconds"] / int(r["messages"])
                        for m, r in zip(mems, runs, strict=True)
                    ]  # type: ignore[index, call-overload]
                ),
                "busy": [round(100 * float(r.get("busy_before", 0)), 0) for r in runs],  # type: ignore[arg-type]
                "summary": runs[-1].get("summary"),
                "outcome": [_outcome(r) for r in runs],
                "db_bytes": runs[-1].get("db_bytes"),
                "load": [r["load"] for r in runs],
            }
        )
    return rows


def markdown(
    rows: list[dict[str, object]],
    info: dict[str, str],
    corpus: dict[str, object],
    default_jobs: int,
) -> str:
    base = next((float(r["rate"]) for r in rows if r["tool"] == "notmuch new"), None)  # type: ignore[arg-type]
    lines = [
        f"Corpus: {corpus.get('messages')} messages, {int(corpus.get('bytes', 0)) / 1e6:.0f} MB "  # type: ignore[call-overload]
        f"(median {int(corpus.get('size_median', 0)) / 1000:.1f} KB, 90th percentile "  # type: ignore[call-overload]
        f"{int(corpus.get('size_p90', 0)) / 1000:.0f} KB), seed {corpus.get('seed')}. "  # type: ignore[call-overload]
        f"Default parse workers on this machine: {default_jobs}. Load average at the start: {info['load']}.",
        "",
        "| contender | database | jobs | msgs/s (median) | runs (msgs/s) | × notmuch | wall s | rapport's own rate | CPU ms/msg (all processes) | peak RSS main | largest worker | tree at once | CPU busy before each run |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ratio = f"{float(r['rate']) / base:.2f}×" if base else "–"  # type: ignore[arg-type]
        jobs = r["jobs"] if r["jobs"] is not None else f"{default_jobs} (default)"
        own = f"{float(r['own_rate']):.0f}" if r["tool"] != "notmuch new" else "–"  # type: ignore[arg-type]
        worker = f"{float(r['worker_mb']):.0f} MB" if float(r["worker_mb"]) else "–"  # type: ignore[arg-type]
        lines.append(
            f"| {r['tool']} | {r['database']} | {jobs} | **{float(r['rate']):.0f}** | {', '.join(f'{x:.0f}' for x in r['rates'])} | "  # type: ignore[arg-type, attr-defined]
            f"{ratio} | {float(r['wall']):.1f} | {own} | {float(r['cpu_ms']):.2f} | {float(r['main_mb']):.0f} MB | {worker} | {float(r['tree_mb']):.0f} MB | "  # type: ignore[arg-type]
            + ", ".join(f"{b:.0f}%" for b in r["busy"])  # type: ignore[attr-defined]
            + " |"
        )
    summary = next((r["summary"] for r in rows if r.get("summary")), None)
    outcomes = {o for r in rows for o in r.get("outcome", []) if o}  # type: ignore[attr-defined]
    if isinstance(summary, dict):
        agree = (
            "identical in every rapport run" if len(outcomes) == 1 else "runs DIFFER; last shown"
        )
        lines += ["", f"Import summary ({agree}):", ""]
        lines.append(
            "| captured | "
            + " | ".join(f"skipped: {k}" for k in summary["skipped"])
            + " | quarantined | total |"
        )
        lines.append("|---:|" + "---:|" * (len(summary["skipped"]) + 2))
        lines.append(
            f"| {int(summary['captured'] or 0)} | "
            + " | ".join(str(v) for v in summary["skipped"].values())
            + f" | {sum(summary['quarantined'].values())} | {summary['total']} |"
        )
    return "\n".join(lines) + "\n"


def profile_markdown(profiles: dict[str, object]) -> str:
    out: list[str] = []
    for label, data in profiles.items():
        if label == "transfer":
            continue
        assert isinstance(data, dict)
        out += [
            f"cProfile, {label}: {data['profiled_seconds']:.1f} s of profiled time "
            f"(wall {data['wall']:.1f} s under the profiler; the parser run from its sources, "
            "RAPPORT_COMPILED=0).",
            "",
            "| where the time goes | seconds | share |",
            "|---|---:|---:|",
        ]
        out += [
            f"| {name} | {sec:.2f} | {pct:.1f}% |"
            for name, sec, pct in data["categories"]
            if pct >= 0.5
        ]
        out += ["", "| top functions by own time | seconds | share |", "|---|---:|---:|"]
        out += [
            f"| `{name}` | {sec:.2f} | {pct:.1f}% |" for name, sec, pct in data["functions"][:15]
        ]
        out.append("")
    return "\n".join(out)


def replace_block(path: Path, name: str, content: str) -> None:
    start, end = MARK_START.format(name=name), MARK_END.format(name=name)
    block = f"{start}\n{content.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else ""
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + block + after
    else:
        text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)


@contextlib.contextmanager
def maybe_postgres(enabled: bool) -> Iterator[PgServer | None]:
    if not enabled:
        yield None
        return
    pg = PgServer()
    try:
        yield pg
    finally:
        pg.destroy()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.capture_vs_notmuch", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--corpus", type=Path, help="corpus directory (default: under the work dir)"
    )
    parser.add_argument(
        "--work", type=Path, default=WORK, help=f"scratch directory (default {WORK})"
    )
    parser.add_argument(
        "--postgres", action="store_true", help="also run on a throwaway PostgreSQL"
    )
    parser.add_argument("--no-jobs1", action="store_true", help="skip the --jobs 1 runs")
    parser.add_argument("--profile", action="store_true", help="add a cProfile breakdown")
    parser.add_argument("--out", type=Path, help="update this markdown file's results block")
    parser.add_argument("--json", type=Path, help="write every run's raw results here")
    parser.add_argument(
        "--quiet-wait", type=float, default=300.0,
        help="wait up to this many seconds for other jobs to leave the CPU idle before each run",
    )  # fmt: skip
    args = parser.parse_args(argv)
    global QUIET_WAIT, MONITOR_INTERVAL
    QUIET_WAIT = args.quiet_wait
    MONITOR_INTERVAL = SPEED_MONITOR_INTERVAL

    from server.mail_ingest.parse_pool import default_jobs

    jobs_default = default_jobs()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    corpus = ensure_corpus(
        args.corpus or work / f"corpus-{args.messages}-s{args.seed}", args.messages, args.seed
    )
    manifest = read_manifest(corpus) or {}
    warm(corpus)
    # As installed (scripts/setup.sh): Rapport's modules compiled, as a regular install leaves
    # them, so no run pays for compiling them where PYTHONDONTWRITEBYTECODE is set.
    compileall.compile_dir(REPO / "server", quiet=1)
    results: list[dict[str, object]] = []
    with maybe_postgres(args.postgres) as pg:
        info = machine_info(pg.version() if pg else None)
        variants: list[tuple[str, int | None]] = [("sqlite", None)]
        if not args.no_jobs1:
            variants.append(("sqlite", 1))
        if pg is not None:
            variants.append(("postgresql", None))
            if not args.no_jobs1:
                variants.append(("postgresql", 1))
        for run in range(1, args.runs + 1):
            r = run_notmuch(corpus, work, f"r{run}")
            print(
                f"run {run}: notmuch new {r['rate']:.0f} msgs/s ({r['wall']:.1f} s)",
                file=sys.stderr,
            )
            results.append(r)
            for database, jobs in variants:
                tag = f"r{run}-{database}-j{jobs or 'default'}"
                r = run_rapport(corpus, work, tag, database=database, jobs=jobs, pg=pg)
                mem = r["memory"]
                print(
                    f"run {run}: rapport {database} jobs={jobs or jobs_default} {r['rate']:.0f} msgs/s "
                    f"({r['wall']:.1f} s; main {mem['main']:.0f} MB, worker {mem['worker_max']:.0f} MB)",  # type: ignore[index]
                    file=sys.stderr,
                )
                results.append(r)
    rows = summarise(results)
    report = markdown(rows, info, {**manifest, "seed": args.seed}, jobs_default)
    machine = "\n".join(f"- {k}: {v}" for k, v in info.items())
    text = f"Measured {info['date']} on:\n\n{machine}\n\n{report}"
    profiles = None
    if args.profile:
        profiles = run_profiles(corpus, work, jobs_default)
        text += "\n" + profile_markdown(profiles)
        try:
            transfer = measure_transfer(corpus)
        except (ImportError, TypeError, AttributeError) as exc:  # the pipeline's API moved on
            print(f"hand-over measurement skipped: {exc!r}", file=sys.stderr)
        else:
            profiles["transfer"] = transfer
            text += "\n" + transfer_markdown(transfer)
    print(text)
    if args.out:
        replace_block(args.out, f"capture_vs_notmuch-{args.messages}", text)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "corpus": manifest,
                    "runs": results,
                    "rows": rows,
                    "profiles": profiles,
                },
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
