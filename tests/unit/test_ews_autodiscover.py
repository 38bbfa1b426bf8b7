"""Autodiscover's pure parts: reading an answer, and RAPPORT_EWS_AUTODISCOVER_URL."""

from __future__ import annotations

import pytest
from lxml import etree

from server.config import ConfigError, Settings, load_settings
from server.mail_ingest.autodiscover import _read

OUTER = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
INNER = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


def answer(account: str) -> etree._Element:
    return etree.fromstring(
        f'<Autodiscover xmlns="{OUTER}"><Response xmlns="{INNER}"><Account>'
        f"<AccountType>email</AccountType>{account}</Account></Response></Autodiscover>"
    )


def protocol(kind: str, url: str) -> str:
    return f"<Protocol><Type>{kind}</Type><EwsUrl>{url}</EwsUrl></Protocol>"


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        (
            "<Action>settings</Action>"
            + protocol("EXCH", "https://exch01.contoso.local/EWS/Exchange.asmx")
            + protocol("EXPR", "https://mail.contoso.com/EWS/Exchange.asmx"),
            ("settings", "https://mail.contoso.com/EWS/Exchange.asmx"),
        ),
        (
            "<Action>settings</Action>"
            + protocol("EXCH", "https://exch01.contoso.local/EWS/Exchange.asmx"),
            ("settings", "https://exch01.contoso.local/EWS/Exchange.asmx"),
        ),
        (
            "<Action>redirectAddr</Action><RedirectAddr>anna@contoso.de</RedirectAddr>",
            ("redirectAddr", "anna@contoso.de"),
        ),
        (
            "<Action>redirectUrl</Action><RedirectUrl>https://ad.contoso.com/a.xml</RedirectUrl>",
            ("redirectUrl", "https://ad.contoso.com/a.xml"),
        ),
        (
            "<Action>redirectUrl</Action><RedirectUrl>http://ad.contoso.com/a.xml</RedirectUrl>",
            ("", "a redirectUrl that is not https://"),
        ),
        (
            "<Action>settings</Action>" + protocol("EXPR", "http://mail.contoso.com/EWS"),
            ("", "an answer without an https:// EwsUrl"),
        ),
    ],
)
def test_an_autodiscover_answer_says_what_next(account: str, expected: tuple[str, str]) -> None:
    found = _read(answer(account))
    assert (found.action, found.value) == expected


def test_an_autodiscover_error_is_quoted() -> None:
    error = etree.fromstring(
        f'<Autodiscover xmlns="{OUTER}"><Response><Error Time="1" Id="2">'
        "<ErrorCode>500</ErrorCode><Message>The email address can't be found.</Message>"
        "</Error></Response></Autodiscover>"
    )
    found = _read(error)
    assert found.action == "" and found.value == (
        "Autodiscover error 500: The email address can't be found."
    )


def test_autodiscover_urls_default_to_microsofts_two_candidates(tmp_path: object) -> None:
    settings = load_settings({"RAPPORT_SECRET_KEY": "k" * 40, "RAPPORT_DATA_DIR": str(tmp_path)})
    assert settings.ews_autodiscover_urls == Settings.ews_autodiscover_urls
    assert settings.ews_autodiscover_urls == (
        "https://{domain}/autodiscover/autodiscover.xml",
        "https://autodiscover.{domain}/autodiscover/autodiscover.xml",
    )


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("https://autodiscover.contoso.com/autodiscover/autodiscover.xml", "no {domain}"),
        ("http://{domain}/autodiscover/autodiscover.xml", "https://"),
        ("https://{domain}/{path}/autodiscover.xml", "no other placeholder"),
        (" , ", "at least one"),
    ],
)
def test_autodiscover_url_templates_are_checked(tmp_path: object, raw: str, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(
            {
                "RAPPORT_SECRET_KEY": "k" * 40,
                "RAPPORT_DATA_DIR": str(tmp_path),
                "RAPPORT_EWS_AUTODISCOVER_URL": raw,
            }
        )
    assert raised.value.variable == "RAPPORT_EWS_AUTODISCOVER_URL" and words in raised.value.message


def test_autodiscover_url_templates_are_asked_in_the_order_given(tmp_path: object) -> None:
    settings = load_settings(
        {
            "RAPPORT_SECRET_KEY": "k" * 40,
            "RAPPORT_DATA_DIR": str(tmp_path),
            "RAPPORT_EWS_AUTODISCOVER_URL": "https://ad.{domain}/autodiscover/autodiscover.xml, "
            "https://{domain}/autodiscover/autodiscover.xml",
        }
    )
    assert settings.ews_autodiscover_urls == (
        "https://ad.{domain}/autodiscover/autodiscover.xml",
        "https://{domain}/autodiscover/autodiscover.xml",
    )
