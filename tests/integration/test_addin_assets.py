"""The icons the manifest names are served anonymously, and nothing else from that folder."""

from __future__ import annotations

from flask.testing import FlaskClient
from lxml import etree

from server.addin.manifest import ASSETS, parse_base_url, render_xml


def test_every_icon_the_manifest_names_is_served_without_a_token(client: FlaskClient) -> None:
    base = "https://crm.example.com"
    tree = etree.fromstring(render_xml(parse_base_url(base)).encode())
    urls = {
        value
        for value in tree.xpath("//@DefaultValue")
        if isinstance(value, str) and value.startswith(base + "/addin/assets/")
    }
    assert len(urls) >= 10
    for url in sorted(urls):
        response = client.get(url.removeprefix(base))
        assert response.status_code == 200, url
        assert response.mimetype == "image/png"
        assert response.data == (ASSETS / url.rsplit("/", 1)[1]).read_bytes()


def test_names_outside_the_icon_list_are_not_found(client: FlaskClient) -> None:
    for name in ("manifest.xml", "..%2Fmanifest.xml", "make_icons.py", "nope.png"):
        assert client.get(f"/addin/assets/{name}").status_code == 404
