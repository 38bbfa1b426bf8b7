"""Whether a message was sent by the mailbox owner, received from outside, or stayed inside.

The CRM logs conversations with the outside world: direction decides how an item is recorded
(a reply we sent vs. a message a customer sent) and lets capture skip purely internal mail.
"Owner" means every address the mailbox sends as: the user's own address, their aliases, and, for
a shared mailbox (`sales@acme.com`), the shared address itself. "Internal" means the
organisation's domains, subdomains included (`eu.acme.com` is internal when `acme.com` is).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Literal

from server.crm.addresses import normalise_address, normalise_domain
from server.mail_ingest.items import Participant, Role

__all__ = ["Direction", "direction", "external_participants", "is_internal_address"]

Direction = Literal["outgoing", "incoming", "internal"]

# Roles that say who took part in an item. Reply-To is left out: it says where answers should go
# (often a helpdesk or an agency), not who wrote or received the message.
_TAKING_PART: frozenset[Role] = frozenset(
    {"from", "sender", "to", "cc", "bcc", "organizer", "attendee"}
)


def _address(raw: str | None) -> str | None:
    if not raw:
        return None
    return normalise_address(raw)


def _domains(internal_domains: Iterable[str]) -> frozenset[str]:
    """Internal domains in canonical form; `@acme.com` and `.acme.com` are accepted spellings."""
    result: set[str] = set()
    for raw in internal_domains:
        normalised = normalise_domain(raw.strip().lstrip("@."))
        if normalised is not None:
            result.add(normalised)
    return frozenset(result)


def _owners(owner_addresses: Iterable[str]) -> frozenset[str]:
    return frozenset(a for a in (_address(raw) for raw in owner_addresses) if a is not None)


def _in_domains(address: str, domains: frozenset[str]) -> bool:
    domain = address.rpartition("@")[2]
    while True:
        if domain in domains:
            return True
        _, dot, domain = domain.partition(".")
        if not dot:
            return False


def is_internal_address(address: str, internal_domains: Collection[str]) -> bool:
    """True when `address` is in one of `internal_domains` or a subdomain of one.

    Matching is by whole labels: `acme.com` covers `eu.acme.com` but not `notacme.com`.
    """
    normalised = _address(address)
    return normalised is not None and _in_domains(normalised, _domains(internal_domains))


def direction(
    sender: str | None,
    participants: Sequence[Participant],
    *,
    owner_addresses: Collection[str],
    internal_domains: Collection[str],
) -> Direction:
    """Classify an item as "internal", "outgoing" or "incoming", in that order of precedence.

    * "internal": every address taking part (sender, from/sender/to/cc/bcc, and organizer/attendee
      for meetings; empty and invalid ones ignored) is in an internal domain. This wins over
      "outgoing": the owner writing only to colleagues is not a conversation with a customer.
      With no internal domains configured nothing is internal.
    * "outgoing": the sender (or a `sender` participant, i.e. the owner sent on someone's behalf)
      is one of `owner_addresses`, the owner's address, aliases or the shared mailbox's address.
    * "incoming": anything else.
    """
    domains = _domains(internal_domains)
    owners = _owners(owner_addresses)
    sender_address = _address(sender)
    taking_part = [p for p in participants if p.role in _TAKING_PART]

    addresses = {a for a in (_address(p.address) for p in taking_part) if a is not None}
    if sender_address is not None:
        addresses.add(sender_address)
    if domains and addresses and all(_in_domains(a, domains) for a in addresses):
        return "internal"

    senders = {sender_address} | {_address(p.address) for p in taking_part if p.role == "sender"}
    if any(s is not None and s in owners for s in senders):
        return "outgoing"
    return "incoming"


def external_participants(
    participants: Iterable[Participant],
    internal_domains: Collection[str],
    owner_addresses: Collection[str],
) -> list[Participant]:
    """The participants that are neither internal nor the owner, in their original order.

    Participants with an empty or invalid address are dropped. An address present in several
    roles appears once per role, as in the input, so callers keep the role information.
    """
    domains = _domains(internal_domains)
    owners = _owners(owner_addresses)
    result: list[Participant] = []
    for participant in participants:
        address = _address(participant.address)
        if address is None or address in owners or _in_domains(address, domains):
            continue
        result.append(participant)
    return result
