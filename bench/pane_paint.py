"""First useful paint of the Outlook task pane: from opening the pane to the person card on screen.

    python -m bench.pane_paint [--opens 30] [--base-url URL --token TOKEN]

Each open is a new page at /pane/ in Debian's Chromium (headless) showing a read email from a
demo customer, signed in (the token in sessionStorage, as after a sign-in). The pane sets the
Performance API mark `rapport:person-card` when it has rendered the first person card; its
`startTime` is milliseconds since the navigation started, i.e. since Outlook opened the pane.

Two series:
  cold — a new browser profile per open: nothing cached (the first open after installing);
  warm — one profile: the Fluent UI files come from the HTTP cache, the pane's own files are
         revalidated (304), as every later open in Outlook.

The page is /preview/pane: the pane's own page with the preview's stand-in for Office.js
(static/preview/office-standin.js), configured through `window.RapportPreview`. Request
interception is not used because it turns Chromium's HTTP cache off, and the warm series is
about that cache. In Outlook, Microsoft's office.js adds its own start-up (from Microsoft's CDN,
cached after the first open), which no server of ours can change. Without --base-url the demo is prepared in a
temporary directory (as `rapport demo` does) and served by `python -m server demo` (gunicorn).
The goal (issue 8): median under 300 ms against a local server.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
MARK = "rapport:person-card"
# Where the time goes, in the order the pane passes them (the first of each, in ms).
STEPS = (
    "rapport:modules-ready",
    "rapport:office-ready",
    "rapport:lookup-sent",
    "rapport:lookup-answered",
    MARK,
)


@contextmanager
def demo_server() -> Iterator[tuple[str, str]]:
    """The demo in a temporary directory, served on a free port: (base URL, admin token)."""
    from server.config import load_settings
    from server.db import Database
    from server.demo.setup import TOKEN_FILE, prepare_demo
    from tests.support.postgres import free_port

    with tempfile.TemporaryDirectory(prefix="pane-paint-") as tmp:
        env = {
            "RAPPORT_DATA_DIR": tmp,
            "RAPPORT_LOG_LEVEL": "WARNING",
            "RAPPORT_LOG_FORMAT": "text",
        }
        settings = load_settings(env, demo=True)
        db = Database(settings.database_url)
        started = time.monotonic()
        prepare_demo(db, settings, echo=lambda _line: None)
        db.dispose()
        print(f"demo prepared in {time.monotonic() - started:.1f} s", file=sys.stderr)
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "demo", "--port", str(port)],
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
                except (urllib.error.URLError, ConnectionError):
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.1)
            yield base, (Path(tmp) / TOKEN_FILE).read_text().strip()
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def customer_email(base: str, token: str) -> dict[str, Any]:
    """The newest incoming email of the demo admin, as Outlook's read item."""
    request = urllib.request.Request(  # noqa: S310 - the server given or our own
        f"{base}/api/v1/preview/emails", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local
        items = json.load(response)["items"]
    email = next(i for i in items if i["kind"] == "email" and i["direction"] == "incoming")
    return {
        "kind": "message",
        "mode": "read",
        "subject": email["subject"],
        "from": email["sender"],
        "to": email["to"],
        "cc": email["cc"],
        "internetMessageId": email["message_id"],
        "conversationId": email["conversation_id"],
        "dateTimeCreated": email["date"],
        "body": email["body"],
    }


def new_context(browser: Browser, config: dict[str, Any], token: str) -> BrowserContext:
    context = browser.new_context(viewport={"width": 360, "height": 900})
    context.add_init_script(
        f"window.RapportPreview = {json.dumps(config)};"
        f"sessionStorage.setItem('rapport.pane.token', JSON.stringify({{token: {json.dumps(token)}}}));"
    )
    return context


def open_once(context: BrowserContext, base: str) -> dict[str, float]:
    page = context.new_page()
    try:
        page.goto(f"{base}/preview/pane")
        # The mark is set in the render that shows the card (the page's CSP forbids the
        # string evaluation wait_for_function would use).
        page.wait_for_selector(".section-people", timeout=30_000)
        marks: dict[str, float] = page.evaluate(
            "steps => Object.fromEntries(steps.map(s => "
            "[s, performance.getEntriesByName(s)[0]?.startTime ?? NaN]))",
            list(STEPS),
        )
        return marks
    finally:
        page.close()


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"{name:5} n={len(values):3}  median {statistics.median(values):6.1f} ms  "
        f"p95 {p95:6.1f} ms  min {ordered[0]:6.1f} ms  max {ordered[-1]:6.1f} ms"
    )


def measure(base: str, token: str, opens: int) -> dict[str, list[dict[str, float]]]:
    config = {
        "host": {"sets": {"Mailbox": "1.15"}, "theme": None},
        "item": customer_email(base, token),
        "user": {"address": "anna@northwind-supplies.com", "name": "Anna"},
    }
    results: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        warm = new_context(browser, config, token)
        open_once(warm, base)  # fills the cache; not counted
        for _ in range(opens):
            cold = new_context(browser, config, token)
            results["cold"].append(open_once(cold, base))
            cold.close()
            results["warm"].append(open_once(warm, base))
        warm.close()
        browser.close()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opens", type=int, default=30, help="opens per series (default 30)")
    parser.add_argument("--base-url", help="a running Rapport (default: a demo of our own)")
    parser.add_argument("--token", help="an API token for --base-url")
    args = parser.parse_args(argv)
    if args.base_url:
        if not args.token:
            parser.error("--base-url needs --token")
        results = measure(args.base_url.rstrip("/"), args.token, args.opens)
    else:
        with demo_server() as (base, token):
            results = measure(base, token, args.opens)
    print(
        f"first useful paint of the task pane ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}):"
    )
    for name, opened in results.items():
        print("  " + summary(name, [marks[MARK] for marks in opened]))
        steps = "  ".join(
            f"{step.removeprefix('rapport:')} {statistics.median(m[step] for m in opened):.0f}"
            for step in STEPS
        )
        print(f"        medians (ms since open): {steps}")


if __name__ == "__main__":
    main()
