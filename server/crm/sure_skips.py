"""The capture rules a parse worker can apply to an email from its headers alone, so that it
does not read what capture is sure to skip.

A quarter of a typical mailbox is newsletters, notifications and internal mail, and reading
their bodies, hashing their attachments and packing their blobs was a quarter of the parse
workers' time, for nothing. Capture still decides every email (`server.crm.rules.skip_reason`);
a worker only leaves out the content of those it is sure capture will skip:

* by a rule that is switched on and that the headers decide alone: a mailing list, bulk or
  automated mail, internal-only mail (`PrepareOptions.skips`);
* never an email that carries the pane's log marker, which its owner's request can make capture
  keep despite those rules;
* and nothing at all once anybody was erased: capture replaces an erased person's address before
  its rules look, so it may see other participants than the worker does (the caller then passes
  no skips).

Pure (no SQLAlchemy), so that parse workers import it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from server.crm.bulk import bulk_reason
from server.crm.direction import direction
from server.mail_ingest.items import MailItem

LOG_HEADER = "x-rapport-log"  # the pane's "log this email when sent" marker (see rules)
SKIPPABLE = frozenset({"mailing_list", "bulk", "automated_sender", "internal_only"})


@dataclass(frozen=True, slots=True)
class HeaderVerdict:
    """What the rules that read headers alone make of an email, for one mailbox's owner
    addresses and internal domains. The parse worker works it out to decide what to read, and
    capture takes it over rather than work it out again: ~30 µs an email in the main process,
    which every email of an import waits for."""

    bulk: str | None  # `bulk_reason`
    direction: str
    internal_domains: frozenset[str]
    owner_addresses: frozenset[str]

    def holds_for(
        self, internal_domains: Collection[str], owner_addresses: Collection[str]
    ) -> bool:
        return self.internal_domains == internal_domains and self.owner_addresses == owner_addresses


def header_verdict(
    item: MailItem, *, internal_domains: frozenset[str], owner_addresses: frozenset[str]
) -> HeaderVerdict:
    sender = item.sender.address if item.sender else ""
    return HeaderVerdict(
        bulk=bulk_reason(item, own_domains=internal_domains),
        direction=direction(
            sender,
            item.participants,
            owner_addresses=owner_addresses,
            internal_domains=internal_domains,
        ),
        internal_domains=internal_domains,
        owner_addresses=owner_addresses,
    )


def sure_skip(item: MailItem, verdict: HeaderVerdict, *, skips: Collection[str]) -> str | None:
    """The rule of `skips` that capture will skip `item` by, or None (read it whole)."""
    if not skips or LOG_HEADER in item.headers:
        return None
    if verdict.bulk is not None and verdict.bulk in skips:
        return verdict.bulk
    if "internal_only" in skips and verdict.direction == "internal":
        return "internal_only"
    return None
