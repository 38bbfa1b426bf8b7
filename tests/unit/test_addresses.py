"""Address normalisation, display-name choice and no-reply detection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.crm.addresses import (
    _normalise_any_domain,
    choose_display_name,
    domain_of,
    looks_like_no_reply,
    normalise_address,
    normalise_domain,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("john@acme.com", "john@acme.com", id="plain"),
        pytest.param("  John.Smith@ACME.com  ", "john.smith@acme.com", id="case-and-space"),
        pytest.param("<john@acme.com>", "john@acme.com", id="angle-brackets"),
        pytest.param('"john@acme.com"', "john@acme.com", id="double-quoted"),
        pytest.param("'john@acme.com'", "john@acme.com", id="single-quoted"),
        pytest.param('"<john@acme.com>"', "john@acme.com", id="quoted-brackets"),
        pytest.param("john@acme.com.", "john@acme.com", id="trailing-dot"),
        pytest.param("John Smith <JS@Acme.com>", "js@acme.com", id="name-and-address"),
        pytest.param('"Smith, John" <js@acme.com>', "js@acme.com", id="quoted-name-and-address"),
        pytest.param("mailto:Jane@Acme.com", "jane@acme.com", id="mailto"),
        pytest.param('"j.smith"@acme.com', "j.smith@acme.com", id="quoted-local-part"),
        pytest.param("jane+crm@acme.com", "jane+crm@acme.com", id="plus-tag-kept"),
        pytest.param("user@xn--bcher-kva.de", "user@bücher.de", id="idn-punycode"),
        pytest.param("USER@BÜCHER.DE", "user@bücher.de", id="idn-unicode-upper"),
        pytest.param("user@bu\u0308cher.de", "user@bücher.de", id="idn-nfd-to-nfc"),
        pytest.param("user@xn--e1afmkfd.xn--p1ai", "user@пример.рф", id="idn-cyrillic"),
        pytest.param("user@例え。テスト", "user@例え.テスト", id="ideographic-full-stop"),
        pytest.param("user@xn--zz.com", "user@xn--zz.com", id="invalid-punycode-kept"),
        pytest.param("x@xn--ls8h.la", "x@💩.la", id="idna2003-fallback"),
        pytest.param("root@localhost", "root@localhost", id="localhost-accepted"),
        pytest.param("a@[192.0.2.1]", "a@[192.0.2.1]", id="ipv4-literal"),
        pytest.param("a@[IPv6:2001:DB8:0::1]", "a@[ipv6:2001:db8::1]", id="ipv6-literal"),
        pytest.param("a@192.0.2.1", "a@192.0.2.1", id="bare-ip"),
        pytest.param("", None, id="empty"),
        pytest.param("   ", None, id="blank"),
        pytest.param("john", None, id="no-at"),
        pytest.param("@acme.com", None, id="empty-local"),
        pytest.param("john@", None, id="empty-domain"),
        pytest.param("john smith@acme.com", None, id="space-in-local"),
        pytest.param("john@ac me.com", None, id="space-in-domain"),
        pytest.param("john@acme..com", None, id="empty-label"),
        pytest.param("admin@mailhub", None, id="dotless-domain"),
        pytest.param("a@b@acme.com", None, id="two-ats"),
        pytest.param('"john smith"@acme.com', None, id="quoted-local-needing-quotes"),
        pytest.param("a@[not-an-ip]", None, id="bad-literal"),
        pytest.param("undisclosed-recipients:;", None, id="group-syntax"),
        pytest.param("/O=EXCHANGELABS/OU=EXCHANGE/CN=RECIPIENTS/CN=JOHN", None, id="x500"),
        pytest.param("john@acme.com\x00", None, id="control-char"),
        pytest.param("a" * 1000 + "@acme.com", None, id="too-long"),
    ],
)
def test_normalise_address(raw: str, expected: str | None) -> None:
    assert normalise_address(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("Mail.Example.COM.", "mail.example.com", id="case-trailing-dot"),
        pytest.param("@acme.com", "acme.com", id="leading-at"),
        pytest.param("xn--bcher-kva.de", "bücher.de", id="punycode"),
        pytest.param("acme", None, id="dotless"),
        pytest.param("", None, id="empty"),
    ],
)
def test_normalise_domain(raw: str, expected: str | None) -> None:
    assert normalise_domain(raw) == expected


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        pytest.param("Jane@Mail.Acme.com", "mail.acme.com", id="plain"),
        pytest.param("<jane@xn--bcher-kva.de>", "bücher.de", id="idn"),
        pytest.param("not an address", "", id="junk"),
    ],
)
def test_domain_of(address: str, expected: str) -> None:
    assert domain_of(address) == expected


@pytest.mark.parametrize(
    ("candidates", "address", "expected"),
    [
        pytest.param([], "a@acme.com", "", id="none"),
        pytest.param([("", T0), ("  ", None)], "a@acme.com", "", id="only-empty"),
        pytest.param(
            [("Jane Doe", T0), ("Jane D.", T0 + timedelta(days=1))],
            "jane@acme.com",
            "Jane D.",
            id="most-recent-wins",
        ),
        pytest.param(
            [("Jane D.", T0 + timedelta(days=1)), ("Jane Doe", T0)],
            "jane@acme.com",
            "Jane D.",
            id="order-independent",
        ),
        pytest.param(
            [("Undated", None), ("Dated", T0)], "jane@acme.com", "Dated", id="undated-is-oldest"
        ),
        pytest.param(
            [("First", T0), ("Second", T0)], "jane@acme.com", "Second", id="tie-later-wins"
        ),
        pytest.param(
            [("Jane Doe", T0), ("jane@acme.com", T0 + timedelta(days=1))],
            "jane@acme.com",
            "Jane Doe",
            id="skip-address-itself",
        ),
        pytest.param(
            [("Jane Doe", T0), ("'JANE@acme.com'", T0 + timedelta(days=1))],
            "jane@acme.com",
            "Jane Doe",
            id="skip-quoted-address",
        ),
        pytest.param(
            [("Jane Doe", T0), ("<jane@acme.com>", T0 + timedelta(days=1))],
            "jane@acme.com",
            "Jane Doe",
            id="skip-bracketed-address",
        ),
        pytest.param(
            [("Jane Doe", T0), ("other@elsewhere.com", T0 + timedelta(days=1))],
            "jane@acme.com",
            "Jane Doe",
            id="skip-other-address",
        ),
        pytest.param(
            [("Jane Doe", T0), ("Jane.Doe", T0 + timedelta(days=1))],
            "jane.doe@acme.com",
            "Jane Doe",
            id="skip-local-part",
        ),
        pytest.param(
            [("Jane Doe", T0), ("undisclosed-recipients:;", T0 + timedelta(days=1))],
            "jane@acme.com",
            "Jane Doe",
            id="skip-undisclosed",
        ),
        pytest.param(
            [("Jane Doe", T0), ("---", T0 + timedelta(days=1))],
            "jane@acme.com",
            "Jane Doe",
            id="skip-punctuation",
        ),
        pytest.param(
            [("Smith, John", T0)], "john@acme.com", "Smith, John", id="last-comma-first-kept"
        ),
        pytest.param(
            [('"  Smith,   John "', T0)], "john@acme.com", "Smith, John", id="quotes-and-spaces"
        ),
        pytest.param(
            [("Naive", datetime(2024, 6, 1)), ("Aware", T0)],
            "a@acme.com",
            "Naive",
            id="naive-and-aware-dates-mix",
        ),
        pytest.param(
            [
                ("Earlier", datetime(2024, 5, 1, 13, 0, tzinfo=timezone(timedelta(hours=2)))),
                ("Later", T0),
            ],
            "a@acme.com",
            "Later",
            id="time-zones-compared",
        ),
    ],
)
def test_choose_display_name(
    candidates: list[tuple[str, datetime | None]], address: str, expected: str
) -> None:
    assert choose_display_name(candidates, address) == expected


@pytest.mark.parametrize(
    "address",
    [
        "noreply@acme.com",
        "no-reply@acme.com",
        "no_reply@acme.com",
        "No.Reply@acme.com",
        "donotreply@acme.com",
        "do-not-reply@acme.com",
        "dont-reply@acme.com",
        "billing-noreply@acme.com",
        "noreply+12345@acme.com",
        "noreply-abc123@acme.com",
        "ne-pas-repondre@acme.fr",
        "nicht-antworten@acme.de",
        "no-responder@acme.es",
        "MAILER-DAEMON@mx.acme.com",
        "postmaster@acme.com",
        "bounce@acme.com",
        "bounces+123-abc@mail.acme.com",
        "bounce-mc.us5_123.456@mail.acme.com",
        "notifications@github.com",
        "notification@acme.com",
        "jira.notifications@acme.com",
        "alerts@bank.com",
        "security-alert@acme.com",
        "automated@acme.com",
        "auto-reply@acme.com",
    ],
)
def test_no_reply_flagged(address: str) -> None:
    assert looks_like_no_reply(address)


@pytest.mark.parametrize(
    "address",
    [
        "noah@acme.com",
        "nora.reply@acme.com",  # "reply" alone is not enough
        "alerta.maria@acme.es",
        "bouncer.dave@club.com",
        "notifyme.jones@acme.com",
        "john.smith@acme.com",
        "sales@acme.com",
        "info@acme.com",
        "autumn@acme.com",
        "",
    ],
)
def test_ordinary_people_not_flagged(address: str) -> None:
    assert not looks_like_no_reply(address)


_local = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20
)


@given(raw=st.one_of(st.emails(), _local.map(lambda s: s + "@acme.com"), st.text(max_size=40)))
def test_normalise_address_is_idempotent(raw: str) -> None:
    once = normalise_address(raw)
    if once is not None:
        assert normalise_address(once) == once
        assert once == once.strip()
        assert once.count("@") == 1


@given(raw=st.emails())
def test_normalise_address_ignores_ascii_case(raw: str) -> None:
    assert normalise_address(raw.swapcase()) == normalise_address(raw)


@given(st.text(alphabet="abcxyz019-.AZ_ é@[]\u3002", max_size=40))
def test_the_plain_domain_shortcut_changes_no_result(raw: str) -> None:
    assert normalise_domain(raw) == _normalise_any_domain(raw)


def test_every_free_mail_entry_normalises_as_before() -> None:
    from importlib.resources import files

    text = files("server.crm").joinpath("data/freemail_domains.txt").read_text(encoding="utf-8")
    entries = [line.strip() for line in text.splitlines() if line.strip()[:1] not in ("", "#")]
    assert len(entries) > 10_000
    assert [normalise_domain(e) for e in entries] == [_normalise_any_domain(e) for e in entries]
