"""Direction of an item and who counts as internal or external."""

from __future__ import annotations

import pytest

from server.crm.direction import direction, external_participants, is_internal_address
from server.mail_ingest.items import Participant, Role

OWNER = ("sam@acme.com", "s.jones@acme.com", "sam@acme-group.co.uk")  # address and aliases
INTERNAL = ("acme.com", "acme-group.co.uk")


def people(*pairs: tuple[str, Role]) -> list[Participant]:
    return [Participant(address, role) for address, role in pairs]


@pytest.mark.parametrize(
    ("address", "domains", "expected"),
    [
        pytest.param("lee@acme.com", INTERNAL, True, id="exact-domain"),
        pytest.param("lee@eu.acme.com", INTERNAL, True, id="subdomain"),
        pytest.param("lee@a.b.acme.com", INTERNAL, True, id="deep-subdomain"),
        pytest.param("LEE@ACME.COM", INTERNAL, True, id="case"),
        pytest.param("lee@acme-group.co.uk", INTERNAL, True, id="second-domain"),
        pytest.param("lee@notacme.com", INTERNAL, False, id="suffix-not-label"),
        pytest.param("lee@acme.com.evil.org", INTERNAL, False, id="prefix-not-domain"),
        pytest.param("lee@customer.com", INTERNAL, False, id="external"),
        pytest.param("lee@acme.com", ("@ACME.com.",), True, id="domain-spellings"),
        pytest.param("lee@bücher.de", ("xn--bcher-kva.de",), True, id="idn-config-punycode"),
        pytest.param("lee@xn--bcher-kva.de", ("bücher.de",), True, id="idn-address-punycode"),
        pytest.param("lee@acme.com", (), False, id="no-internal-domains"),
        pytest.param("not an address", INTERNAL, False, id="junk"),
    ],
)
def test_is_internal_address(address: str, domains: tuple[str, ...], expected: bool) -> None:
    assert is_internal_address(address, domains) is expected


@pytest.mark.parametrize(
    ("sender", "participants", "owners", "expected"),
    [
        pytest.param(
            "sam@acme.com",
            people(("sam@acme.com", "from"), ("jane@customer.com", "to")),
            OWNER,
            "outgoing",
            id="owner-to-customer",
        ),
        pytest.param(
            "S.Jones@ACME.com",
            people(("s.jones@acme.com", "from"), ("jane@customer.com", "to")),
            OWNER,
            "outgoing",
            id="alias-any-case",
        ),
        pytest.param(
            "sam@acme-group.co.uk",
            people(("sam@acme-group.co.uk", "from"), ("jane@customer.com", "cc")),
            OWNER,
            "outgoing",
            id="alias-other-domain",
        ),
        pytest.param(
            "sales@acme.com",
            people(("sales@acme.com", "from"), ("jane@customer.com", "to")),
            ("sales@acme.com",),
            "outgoing",
            id="shared-mailbox-sends",
        ),
        pytest.param(
            "jane@customer.com",
            people(("jane@customer.com", "from"), ("sales@acme.com", "to")),
            ("sales@acme.com",),
            "incoming",
            id="shared-mailbox-receives",
        ),
        pytest.param(
            "boss@acme.com",
            people(
                ("boss@acme.com", "from"),
                ("sam@acme.com", "sender"),
                ("jane@customer.com", "to"),
            ),
            OWNER,
            "outgoing",
            id="owner-sends-on-behalf",
        ),
        pytest.param(
            "jane@customer.com",
            people(("jane@customer.com", "from"), ("sam@acme.com", "to")),
            OWNER,
            "incoming",
            id="customer-to-owner",
        ),
        pytest.param(
            "jane@customer.com",
            people(("jane@customer.com", "from"), ("lee@acme.com", "to"), ("sam@acme.com", "cc")),
            OWNER,
            "incoming",
            id="owner-in-cc",
        ),
        pytest.param(
            "lee@acme.com",
            people(("lee@acme.com", "from"), ("sam@acme.com", "to"), ("kim@eu.acme.com", "cc")),
            OWNER,
            "internal",
            id="colleagues-and-subdomain",
        ),
        pytest.param(
            "sam@acme.com",
            people(("sam@acme.com", "from"), ("lee@acme.com", "to")),
            OWNER,
            "internal",
            id="owner-to-colleague-is-internal",
        ),
        pytest.param(
            "sam@acme.com",
            people(("sam@acme.com", "from"), ("lee@acme.com", "to"), ("jane@customer.com", "bcc")),
            OWNER,
            "outgoing",
            id="external-bcc-counts",
        ),
        pytest.param(
            "lee@acme.com",
            people(("lee@acme.com", "from"), ("", "to"), ("sam@acme.com", "to")),
            OWNER,
            "internal",
            id="empty-addresses-ignored",
        ),
        pytest.param(
            "lee@acme.com",
            people(("lee@acme.com", "from"), ("helpdesk@agency.com", "reply_to")),
            OWNER,
            "internal",
            id="reply-to-ignored",
        ),
        pytest.param(
            "lee@acme.com",
            people(("lee@acme.com", "organizer"), ("jane@customer.com", "attendee")),
            OWNER,
            "incoming",
            id="meeting-with-external-attendee",
        ),
        pytest.param(
            None,
            people(("jane@customer.com", "to")),
            OWNER,
            "incoming",
            id="no-sender",
        ),
        pytest.param(None, [], OWNER, "incoming", id="nothing-at-all"),
    ],
)
def test_direction(
    sender: str | None,
    participants: list[Participant],
    owners: tuple[str, ...],
    expected: str,
) -> None:
    got = direction(sender, participants, owner_addresses=owners, internal_domains=INTERNAL)
    assert got == expected


def test_direction_without_internal_domains() -> None:
    participants = people(("sam@acme.com", "from"), ("lee@acme.com", "to"))
    assert (
        direction("sam@acme.com", participants, owner_addresses=OWNER, internal_domains=())
        == "outgoing"
    )


def test_external_participants() -> None:
    participants = [
        Participant("sam@acme.com", "from", "Sam"),
        Participant("Jane@Customer.com", "to", "Jane"),
        Participant("lee@eu.acme.com", "cc"),
        Participant("", "cc"),
        Participant("sam@acme-group.co.uk", "bcc"),
        Participant("jane@customer.com", "cc", "Jane"),
        Participant("bob@partner.org", "bcc"),
        Participant("junk", "cc"),
    ]
    got = external_participants(participants, ("acme.com",), OWNER)
    assert [(p.address, p.role) for p in got] == [
        ("Jane@Customer.com", "to"),
        ("jane@customer.com", "cc"),
        ("bob@partner.org", "bcc"),
    ]


def test_owner_alias_outside_internal_domains_is_not_external() -> None:
    participants = people(("sam@personal.net", "from"), ("jane@customer.com", "to"))
    got = external_participants(participants, INTERNAL, ("sam@personal.net",))
    assert [p.address for p in got] == ["jane@customer.com"]
