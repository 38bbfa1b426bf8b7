"""The web app's contact list at 50,000 contacts: its first paint, and paging on to row 5,000.

    python -m bench.app_list_paint [--contacts 50000] [--opens 20] [--scrolls 3] [--rows 5000]
                                   [--out docs/benchmarks.md]

A throwaway SQLite database under /tmp gets the schema (`rapport db upgrade`), three users and
`--contacts` contacts in 2,000 companies, inserted in bulk through SQLAlchemy Core (a minute's
work through the API, a few seconds this way): each with a name and an address, a lifecycle
stage, an owner, for most a last-contacted date and for some a tag. `rapport serve` (gunicorn,
its default two workers) serves it; Debian's Chromium (headless, through Playwright) opens
`/app/#/contacts` signed in (the token in sessionStorage, as after a sign-in).

First paint: the contact list sets the Performance API mark `rapport:contacts-painted` a task
after the animation frame that first holds its rows, i.e. once the first 50 are on screen; its
`startTime` is milliseconds since the navigation started. As in bench/pane_paint.py, two series:
  cold — a new browser profile per open: nothing cached (the first visit);
  warm — one profile: the Fluent UI files come from the HTTP cache, the app's own files are
         revalidated (304), as every later visit.

Paging: in a fresh page the list is scrolled to its end again and again until `--rows` rows are
loaded (the list loads a page of 50 when its end comes near). Per page: the time from the scroll
to the frame that shows the new rows, and the API's own time for that page (Resource Timing).
Then the frame after a jump of 800 px, at the top of the list with 50 rows and again with all
`--rows`: the cost of a page that has grown (rows off screen are not laid out).

The goal (issue 10): every list pages through 50,000 contacts without slowing down.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from bench.pane_paint import CHROMIUM_ARGS, summary

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
MARK = "rapport:contacts-painted"
# Where the time goes, in the order the app passes them (ms since navigation start).
STEPS = ("rapport:app-modules-ready", "session", "contacts answered", "rapport:contacts-rows", MARK)
COMPANIES = 2_000
BATCH = 5_000
PAGE_ROWS = 50
JUMP_PX = 800
SECTION = "app-list-paint"

FIRST = [
    "Aisha",
    "Amélie",
    "Ben",
    "Ciarán",
    "Chloe",
    "Daan",
    "Daniela",
    "Elif",
    "Erik",
    "Fatima",
    "Finn",
    "Grace",
    "Hamza",
    "Hannah",
    "Ivor",
    "Imogen",
    "Jonas",
    "Kasia",
    "Leila",
    "Liam",
    "Maeve",
    "Marco",
    "Nadia",
    "Noah",
    "Olu",
    "Priya",
    "Rafael",
    "Saoirse",
    "Tom",
    "Yusuf",
    "Zoë",
]
LAST = [
    "Adeyemi",
    "Ashby",
    "Bellini",
    "Brennan",
    "Dupont",
    "Eriksen",
    "Fischer",
    "García",
    "Haddad",
    "Ivanova",
    "Jansen",
    "Khan",
    "Kowalski",
    "Lindqvist",
    "Murphy",
    "Nakamura",
    "Novak",
    "O'Brien",
    "Okafor",
    "Penrose",
    "Raman",
    "Rossi",
    "Santos",
    "Schmidt",
    "Smith",
    "Tanaka",
    "Visser",
    "Walsh",
    "Whitfield",
    "Yilmaz",
]
STAGES = (
    "lead",
    "lead",
    "qualified",
    "opportunity",
    "customer",
    "customer",
    "former",
    "subscriber",
)


# -- the data ------------------------------------------------------------------------------------


def fill(database_url: str, contacts: int, seed: int = 1) -> str:
    """Schema, three users, COMPANIES companies and `contacts` contacts; the admin's API token."""
    from sqlalchemy import insert

    from server.crm.users import add_user, create_token
    from server.db import Database
    from server.models import Company, CompanyDomain, Contact, ContactEmail, ContactTag

    rng = random.Random(seed)
    db = Database(database_url)
    db.upgrade()
    with db.session() as session:
        users = [
            add_user(session, "anna@northwind-supplies.com", role="admin", name="Anna Lindqvist"),
            add_user(session, "tom@northwind-supplies.com", role="member", name="Tom Okafor"),
            add_user(session, "priya@northwind-supplies.com", role="member", name="Priya Raman"),
        ]
        owner_ids = [u.id for u in users]
        token = create_token(
            session, users[0], name="bench", expires_in=timedelta(days=1)
        ).plaintext
    now = datetime.now(UTC)
    with db.engine.begin() as conn:
        conn.execute(
            insert(Company),
            [
                {
                    "id": n,
                    "name": f"{rng.choice(LAST)} {rng.choice(('Ltd', 'GmbH', 'B.V.', 'Group', 'Partners'))} {n}",
                    "owner_id": rng.choice(owner_ids),
                    "custom_fields": {},
                    "created_at": now,
                    "updated_at": now,
                    "version": 1,
                }
                for n in range(1, COMPANIES + 1)
            ],
        )
        conn.execute(
            insert(CompanyDomain),
            [{"company_id": n, "domain": f"company-{n}.example"} for n in range(1, COMPANIES + 1)],
        )
        for start in range(1, contacts + 1, BATCH):
            ids = range(start, min(start + BATCH, contacts + 1))
            rows, emails, tags = [], [], []
            for n in ids:
                first, last = rng.choice(FIRST), rng.choice(LAST)
                company = rng.randint(1, COMPANIES)
                contacted = (
                    now - timedelta(minutes=rng.randint(0, 2 * 365 * 24 * 60))
                    if rng.random() < 0.7
                    else None
                )
                rows.append(
                    {
                        "id": n,
                        "name": f"{first} {last}",
                        "title": "",
                        "phone": "",
                        "company_id": company,
                        "lifecycle_stage": rng.choice(STAGES),
                        "owner_id": rng.choice(owner_ids),
                        "custom_fields": {},
                        "last_contacted_at": contacted,
                        "next_follow_up_at": None,
                        "source": "import",
                        "name_seen_at": None,
                        "created_at": now - timedelta(minutes=contacts - n),
                        "updated_at": now,
                        "version": 1,
                    }
                )
                address = f"{first}.{last}.{n}@company-{company}.example".lower().replace("'", "")
                emails.append({"contact_id": n, "address": address, "is_primary": True})
                if rng.random() < 0.2:
                    tags.append(
                        {"contact_id": n, "tag": rng.choice(("vip", "trade-fair", "newsletter"))}
                    )
            conn.execute(insert(Contact), rows)
            conn.execute(insert(ContactEmail), emails)
            if tags:
                conn.execute(insert(ContactTag), tags)
    db.dispose()
    return token


@contextmanager
def server(contacts: int) -> Iterator[tuple[str, str]]:
    """A throwaway Rapport with `contacts` contacts, served on a free port: (base URL, token)."""
    from tests.support.postgres import free_port

    with tempfile.TemporaryDirectory(prefix="app-list-paint-", dir="/tmp") as tmp:
        env = {
            "RAPPORT_DATA_DIR": tmp,
            "RAPPORT_DATABASE_URL": f"sqlite:///{tmp}/rapport.db",
            "RAPPORT_SECRET_KEY": secrets.token_urlsafe(48),
            "RAPPORT_LOG_LEVEL": "WARNING",
            "RAPPORT_LOG_FORMAT": "text",
            # The bench calls more often than a person; the limit is not what it measures.
            "RAPPORT_RATE_LIMIT_PER_MINUTE": "100000",
        }
        started = time.monotonic()
        token = fill(env["RAPPORT_DATABASE_URL"], contacts)
        print(
            f"{contacts:,} contacts inserted in {time.monotonic() - started:.1f} s", file=sys.stderr
        )
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--port", str(port)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"{base}/healthz", timeout=5).close()  # noqa: S310
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.1)
            yield base, token
        finally:
            proc.terminate()
            proc.wait(timeout=30)


# -- the browser -----------------------------------------------------------------------------------


def new_context(browser: Browser, token: str) -> BrowserContext:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    context.add_init_script(f"sessionStorage.setItem('rapport.token', {token!r});")
    return context


STEP_SCRIPT = """steps => {
  const mark = (name) => performance.getEntriesByName(name)[0]?.startTime ?? NaN;
  const answered = (part) => {
    const entry = performance.getEntriesByType("resource").find((e) => e.name.includes(part));
    return entry ? entry.responseEnd : NaN;
  };
  return {
    "rapport:app-modules-ready": mark("rapport:app-modules-ready"),
    "session": Math.max(answered("/api/v1/me"), answered("/api/v1/users")),
    "contacts answered": answered("/api/v1/contacts?"),
    "rapport:contacts-rows": mark("rapport:contacts-rows"),
    "rapport:contacts-painted": mark("rapport:contacts-painted"),
  };
}"""


def open_once(context: BrowserContext, base: str) -> dict[str, float]:
    page = context.new_page()
    try:
        page.goto(f"{base}/app/#/contacts")
        page.wait_for_selector("ul.rows > li.row", timeout=30_000)
        # The paint mark comes a frame later (the page's CSP forbids wait_for_function's eval).
        for _ in range(100):
            marks: dict[str, float] = page.evaluate(STEP_SCRIPT, list(STEPS))
            if marks[MARK] == marks[MARK]:  # not NaN
                return marks
            page.wait_for_timeout(20)
        raise RuntimeError(f"no {MARK} mark")
    finally:
        page.close()


PAGE_SCRIPT = """async (target) => {
  const list = document.querySelector("ul.rows");
  const more = document.querySelector('[data-key="contacts-more"]');
  const status = document.querySelector(".paged .list-status");
  // What the list says it holds ("1,250 shown; more below."): rows far from the screen are
  // kept out of the document, so the document's rows are not the count.
  const loaded = () => Number((status.textContent.match(/[0-9,]+/) || ["0"])[0].replace(/,/g, ""));
  const frame = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  const pages = [];
  while (loaded() < target && !more.hidden) {
    const before = loaded();
    const seen = performance.getEntriesByType("resource").length;
    const started = performance.now();
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`stuck at ${before} rows`)), 30000);
      const observer = new MutationObserver(() => {
        if (loaded() > before) {
          observer.disconnect();
          clearTimeout(timer);
          resolve();
        }
      });
      observer.observe(status, { childList: true, characterData: true, subtree: true });
      window.scrollTo(0, document.documentElement.scrollHeight);
    });
    await frame();
    const shown = performance.now() - started;
    const api = performance.getEntriesByType("resource").slice(seen)
      .filter((e) => e.name.includes("/api/v1/contacts?"))
      .map((e) => e.responseEnd - e.startTime);
    pages.push({ rows: loaded(), inDocument: list.querySelectorAll("li.row").length, shown,
                 api: api.length ? api[0] : null });
  }
  return pages;
}"""

JUMP_SCRIPT = """async (px) => {
  const frame = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  const times = [];
  window.scrollTo(0, 0);
  await frame();
  for (let i = 0; i < 10; i++) {
    const started = performance.now();
    window.scrollBy(0, i % 2 ? -px : px);
    await frame();
    times.push(performance.now() - started);
  }
  return times;
}"""


def scroll_once(context: BrowserContext, base: str, rows: int) -> dict[str, Any]:
    page: Page = context.new_page()
    try:
        page.goto(f"{base}/app/#/contacts")
        page.wait_for_selector("ul.rows > li.row", timeout=30_000)
        page.wait_for_timeout(200)
        jump_first = page.evaluate(JUMP_SCRIPT, JUMP_PX)
        pages = page.evaluate(PAGE_SCRIPT, rows)
        jump_last = page.evaluate(JUMP_SCRIPT, JUMP_PX)
        return {
            "pages": pages,
            "jump_first": jump_first,
            "jump_last": jump_last,
            "loaded": pages[-1]["rows"] if pages else 0,
            "in_document": pages[-1]["inDocument"] if pages else 0,
        }
    finally:
        page.close()


def measure(base: str, token: str, opens: int, scrolls: int, rows: int) -> dict[str, Any]:
    results: dict[str, Any] = {"cold": [], "warm": [], "scrolls": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        results["chromium"] = browser.version
        warm = new_context(browser, token)
        open_once(warm, base)  # fills the cache; not counted
        for _ in range(opens):
            cold = new_context(browser, token)
            results["cold"].append(open_once(cold, base))
            cold.close()
            results["warm"].append(open_once(warm, base))
        for _ in range(scrolls):
            results["scrolls"].append(scroll_once(warm, base, rows))
        warm.close()
        browser.close()
    return results


# -- the report -------------------------------------------------------------------------------------


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def machine(chromium: str) -> list[str]:
    from bench.capture_vs_notmuch import machine_info

    info = machine_info(pg_version="-")
    keep = ("rapport", "cpu", "cores", "ram", "os", "python", "sqlite")
    return [f"- {key}: {info[key]}" for key in keep] + [
        f"- chromium: {chromium} (headless, Playwright)",
        f"- date: {info['date']}",
        f"- load: {info['load']}",
    ]


def report(results: dict[str, Any], contacts: int, rows: int) -> str:
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on:",
        "",
        *machine(results["chromium"]),
        "",
        f"{contacts:,} contacts (SQLite, `rapport serve` with 2 workers), the list's default sort "
        "(name, A to Z), a 1280×900 window.",
        "",
        "First paint of the contact list (ms since navigation start):",
        "",
        "```",
    ]
    for name in ("cold", "warm"):
        opened = results[name]
        lines.append(summary(name, [marks[MARK] for marks in opened]))
        steps = "  ".join(
            f"{step.removeprefix('rapport:')} {statistics.median(m[step] for m in opened):.0f}"
            for step in STEPS
        )
        lines.append(f"      medians: {steps}")
    lines.append("```")
    pages = [scroll["pages"] for scroll in results["scrolls"]]
    count = min(len(p) for p in pages)
    tenth = max(1, count // 10)
    lines += [
        "",
        f"Paging on to row {rows:,} ({len(pages)} run{'s' if len(pages) > 1 else ''} of {count} "
        f"pages of {PAGE_ROWS}; ms per "
        "page, from the scroll to the frame showing the new rows, and the API's part of it):",
        "",
        "| pages | rows | shown: median | p95 | API: median | p95 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for label, start in (
        ("first", 0),
        ("middle", count // 2 - tenth // 2),
        ("last", count - tenth),
    ):
        chunk = [page for run in pages for page in run[start : start + tenth]]
        shown = [page["shown"] for page in chunk]
        api = [page["api"] for page in chunk if page["api"] is not None]
        first_row = start * PAGE_ROWS + PAGE_ROWS + 1
        last_row = (start + tenth) * PAGE_ROWS + PAGE_ROWS
        lines.append(
            f"| {label} {tenth} | {first_row:,}–{last_row:,} | {statistics.median(shown):.0f} | "
            f"{p95(shown):.0f} | {statistics.median(api):.0f} | {p95(api):.0f} |"
        )
    first = [t for scroll in results["scrolls"] for t in scroll["jump_first"]]
    last = [t for scroll in results["scrolls"] for t in scroll["jump_last"]]
    loaded = min(scroll["loaded"] for scroll in results["scrolls"])
    in_document = max(scroll["in_document"] for scroll in results["scrolls"])
    lines += [
        "",
        f"A jump of {JUMP_PX} px to the next frame: with {PAGE_ROWS} rows loaded median "
        f"{statistics.median(first):.1f} ms (p95 {p95(first):.1f}); with {loaded:,} rows loaded "
        f"median {statistics.median(last):.1f} ms (p95 {p95(last):.1f}). At the end "
        f"{in_document:,} of the {loaded:,} rows were in the document (the rest kept aside).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=50_000, help="contacts (default 50,000)")
    parser.add_argument("--opens", type=int, default=20, help="opens per series (default 20)")
    parser.add_argument("--scrolls", type=int, default=3, help="paging runs (default 3)")
    parser.add_argument("--rows", type=int, default=5_000, help="rows to page to (default 5,000)")
    parser.add_argument("--out", type=Path, help="write the result into this Markdown file")
    args = parser.parse_args(argv)
    with server(args.contacts) as (base, token):
        results = measure(base, token, args.opens, args.scrolls, args.rows)
    text = report(results, args.contacts, args.rows)
    print(text)
    if args.out:
        from bench.capture_vs_notmuch import replace_block

        replace_block(args.out, SECTION, text)


if __name__ == "__main__":
    main()
