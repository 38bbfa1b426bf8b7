"""The browser tests' fixtures: one demo server per session, Debian's Chromium, Office.js replaced.

`demo` prepares the demo data once (the same path `rapport demo` takes: generated mailboxes
captured through the importer), gives the demo admin a drop address and a colleague a password,
and runs the real server (`python -m server demo`, gunicorn) on a free port. The tests read and
check the same SQLite database through SQLAlchemy.

Office.js is replaced by request interception with `office_standin.js`; the host it plays (its
requirement sets, the open item, the theme) is set per page through `window.__officeConfig`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from sqlalchemy import select

from server.config import Settings, load_settings
from server.crm.mailboxes import add_drop_link
from server.crm.users import set_password
from server.db import Database
from server.demo.setup import TOKEN_FILE, prepare_demo
from server.models import User
from tests.support.postgres import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STANDIN = (HERE / "office_standin.js").read_text()
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
OFFICE_JS = "https://appsforoffice.microsoft.com/**"
AXE_URL = "**/__tests__/axe.min.js"

ADMIN = "anna@northwind-supplies.com"
MEMBER = "tom@northwind-supplies.com"
MEMBER_PASSWORD = "correct horse battery staple 42"
DROP_DOMAIN = "drop.northwind.test"
DANIELA = "daniela@vasquezrow-architects.com"
DANIELA_NAME = "Daniela Vásquez"

# The hosts the pane is tested on: the requirement floor, and a current Outlook.
HOSTS = {
    "mailbox-1.5": {"Mailbox": "1.5"},
    "current": {"Mailbox": "1.15", "NestedAppAuth": "1.1"},
}


@dataclass
class Demo:
    base_url: str
    settings: Settings
    db: Database
    admin_token: str
    summary: list[str]

    def api(self, path: str, token: str | None = None) -> Any:
        request = urllib.request.Request(  # noqa: S310 - the test's own server
            self.base_url + path, headers={"Authorization": f"Bearer {token or self.admin_token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local
            return json.load(response)


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, "the demo server exited"
        try:
            with urllib.request.urlopen(url, timeout=5):  # noqa: S310 - local URL
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    data_dir = tmp_path_factory.mktemp("demo")
    env = {
        "RAPPORT_DATA_DIR": str(data_dir),
        "RAPPORT_DROP_DOMAIN": DROP_DOMAIN,
        "RAPPORT_LOG_LEVEL": "WARNING",
        "RAPPORT_LOG_FORMAT": "text",
    }
    settings = load_settings(env, demo=True)
    db = Database(settings.database_url)
    summary = prepare_demo(db, settings, echo=lambda _line: None)
    with db.session() as session:
        add_drop_link(session, owner=ADMIN, domain=DROP_DOMAIN)
        member = session.scalars(select(User).where(User.email == MEMBER)).one()
        set_password(session, member, MEMBER_PASSWORD)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "demo", "--port", str(port), "--no-worker"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until_up(f"{base}/healthz", proc)
        token = (data_dir / TOKEN_FILE).read_text().strip()
        yield Demo(base, settings, db, token, summary)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        db.dispose()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile whose Office.js is the stand-in."""
    ctx = browser.new_context(viewport={"width": 360, "height": 900}, locale="en-GB")
    ctx.route(OFFICE_JS, lambda route: route.fulfill(body=STANDIN, content_type="text/javascript"))
    # axe-core, served as if from the page's own origin: the pane's CSP allows no inline script.
    ctx.route(AXE_URL, lambda route: route.fulfill(path=str(AXE), content_type="text/javascript"))
    yield ctx
    ctx.close()


def open_pane(
    context: BrowserContext,
    demo: Demo,
    *,
    sets: dict[str, str],
    item: dict[str, Any] | None,
    signed_in: bool = True,
    theme: dict[str, Any] | None = None,
    user: str = ADMIN,
    path: str = "/pane/",
) -> Page:
    """The pane as Outlook opens it: the host's sets, the open item, signed in or not."""
    config = {
        "sets": sets,
        "item": item,
        "theme": theme,
        "user": {"emailAddress": user, "displayName": user.split("@")[0].title()},
    }
    script = f"window.__officeConfig = {json.dumps(config)};"
    if signed_in:
        value = demo.admin_token
        script += (
            "if (window.top === window && !window.opener) sessionStorage.setItem("
            f"'rapport.pane.token', JSON.stringify({{token: {json.dumps(value)}}}));"
        )
    page = context.new_page()
    page.add_init_script(script)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(demo.base_url + path)
    page.errors = errors  # type: ignore[attr-defined]
    return page


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings for the page as it is now."""
    if not page.evaluate("Boolean(window.axe)"):
        page.add_script_tag(url="/__tests__/axe.min.js")
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.getElementById('toast')?.replaceChildren()")  # a passing message
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


# -- the web app (/app/) -------------------------------------------------------------------------

APP_TOKEN_KEY = "rapport.token"  # where the sign-in page (and so the web app) keeps its token
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def app_context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh desktop profile for the web app. The sign-in page asks for Office.js (it hands its
    token to the pane inside Outlook); here, as in any plain browser, there is none."""
    ctx = browser.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="Europe/London")
    ctx.route(OFFICE_JS, lambda route: route.abort())
    ctx.route(AXE_URL, lambda route: route.fulfill(path=str(AXE), content_type="text/javascript"))
    yield ctx
    ctx.close()


def open_app(
    context: BrowserContext, demo: Demo, route: str = "#/my-day", *, token: str | None = None
) -> Page:
    """The web app at `route`, signed in with `token` (default: the demo admin's; "" for nobody).
    The token goes where the sign-in page leaves it: this tab's sessionStorage."""
    page = context.new_page()
    value = demo.admin_token if token is None else token
    if value:
        page.add_init_script(
            "if (window.top === window && !window.opener) sessionStorage.setItem("
            f"{json.dumps(APP_TOKEN_KEY)}, {json.dumps(value)});"
        )
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{demo.base_url}/app/{route}")
    page.errors = errors  # type: ignore[attr-defined]
    return page


def app_screenshot(page: Page, name: str) -> None:
    """What the window shows (long lists draw only the rows on screen, so a whole-page picture
    would show blank rows below)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.getElementById('toast')?.replaceChildren()")
    page.mouse.move(0, page.viewport_size["height"] - 1 if page.viewport_size else 0)
    page.screenshot(path=str(SCREENSHOTS / name))
