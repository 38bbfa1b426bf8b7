"""GET /api/v1/reference: the API reference, rendered on the server from the OpenAPI document,
complete and self-contained (it works offline and loads nothing from anywhere else)."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.api.reference import operation_anchor

# Nothing here depends on the database: one backend is enough.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


class Page(HTMLParser):
    """What a browser would act on: ids, links, loaded resources, inline styles and scripts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: dict[str, str] = {}  # id -> tag
        self.links: list[str] = []
        self.tags: set[str] = set()
        self.style_attributes = 0
        self.styles: list[str] = []
        self._in_style = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        found = dict(attrs)
        if "id" in found:
            assert found["id"] not in self.ids, f"duplicate id {found['id']}"
            self.ids[str(found["id"])] = tag
        self.links += [str(v) for k, v in attrs if k in {"href", "src", "action", "srcset"}]
        self.style_attributes += "style" in found
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    body = client.get("/api/v1/openapi.json").get_json()
    assert isinstance(body, dict)
    return body


def test_every_operation_of_the_document_is_on_the_page(
    client: FlaskClient, document: dict[str, Any]
) -> None:
    response = client.get("/api/v1/reference")  # no token: public, like the document
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    page = Page(html)
    operations = [(m, p) for p, ops in document["paths"].items() for m in ops]
    assert len(operations) >= 80
    for method, path in operations:
        anchor = operation_anchor(method, path)
        assert page.ids.get(anchor) == "section", (method, path)
        assert f"#{anchor}" in page.links, f"{method} {path} is missing from the contents"
        section = html.split(f'id="{anchor}"', 1)[1].split("</section>", 1)[0]
        assert f"<code>{path}</code>" in section
        for status in document["paths"][path][method]["responses"]:
            assert f"<code>{status}</code>" in section, (method, path, status)
    # Every link inside the page lands on something, and every schema it names is described.
    for link in page.links:
        if link.startswith("#"):
            assert link[1:] in page.ids, link
    assert "schema-ContactIn" in page.ids
    assert "Prefix of a name, word or address" in html  # parameter descriptions are shown


def test_the_page_loads_nothing_and_its_policy_allows_its_one_style_sheet(
    client: FlaskClient,
) -> None:
    response = client.get("/api/v1/reference")
    page = Page(response.get_data(as_text=True))
    assert not page.tags & {"script", "link", "img", "iframe", "object", "embed", "form"}
    assert page.style_attributes == 0  # a hash-based policy would block style="..."
    for link in page.links:
        assert link.startswith(("#", "/")) and not link.startswith("//"), link
    policy = dict(
        part.strip().split(" ", 1)
        for part in response.headers["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    [style] = page.styles
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert policy["style-src"] == f"'sha256-{digest}'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "old", ["/api/v1/docs/", "/api/v1/docs/swagger/", "/api/v1/docs/redoc/", "/api/v1/docs/scalar/"]
)
def test_the_old_cdn_viewers_redirect_to_the_reference(client: FlaskClient, old: str) -> None:
    response = client.get(old)
    assert response.status_code == 301
    assert response.headers["Location"] == "/api/v1/reference"


def test_no_view_of_the_app_serves_a_cdn_viewer(app: Flask) -> None:
    client = app.test_client()
    for rule in app.url_map.iter_rules():
        if "<" in rule.rule or "GET" not in (rule.methods or ()):
            continue
        with client.get(rule.rule) as response:
            if response.mimetype == "text/html":
                text = response.get_data(as_text=True)
                assert not re.search(r"(unpkg\.com|cdn\.jsdelivr\.net|cdnjs)", text), rule.rule
