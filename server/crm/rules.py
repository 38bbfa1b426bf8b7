"""Capture rules: which mail Rapport keeps, and at what level of detail.

The rules live in the database (`CaptureRule` list entries plus `capture.*` settings) and are
loaded once per capture run into a frozen `CapturePolicy`; deciding is a pure function of an item
and that policy, so it is table-tested without a database. `RAPPORT_INTERNAL_DOMAINS` seeds the
internal-domains rule the first time rules are loaded; after that the database is the truth.

Order of the checks (the first that matches names the decision in the capture trace):
  never_log (the mailbox owner's own list) → blocked_address / blocked_domain (any participant)
  → mailing_list / bulk / automated_sender → internal_only.

"Log this email when sent": the task pane can put an `X-Rapport-Log` header on an email being
written. Capture honours it like a click on "Log" (the defaults of automatic capture are set
aside; the admin's blocked addresses and domains still apply) but only where a stranger cannot
put it: in the mailbox owner's own copy of mail the owner sent — the sender is one of the link's
owner addresses, the copy sits in a Sent folder — and only when the value is the owner's marker,
a keyed hash of their user id (`log_header_value`). Anywhere else the header means nothing: a
recipient's Inbox copy, mail forged "from" the owner into their Inbox, a marker of another user.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.crm.addresses import domain_of, normalise_address, normalise_domain
from server.crm.errors import DomainError
from server.crm.settings import get_setting, get_settings, set_setting
from server.crm.sql import insert_ignore
from server.crm.sure_skips import LOG_HEADER, HeaderVerdict
from server.mail_ingest.items import MailItem, Participant
from server.models import CaptureRule

AutoCreate = Literal["all", "sent", "none"]
SEEDED_FLAG = "capture.internal_domains_seeded"
ADDRESS_ROLES = frozenset({"from", "sender", "to", "cc", "bcc", "reply_to"})
LIST_KINDS = {
    "internal_domain": "domain",
    "block_address": "address",
    "block_domain": "domain",
    "never_log": "address_or_domain",
}
LOG_HEADER_KEY_SETTING = "pane.log_header_key"
# Made by `server.crm.privacy` at the first erasure: its presence says somebody was erased.
SUPPRESSION_KEY_SETTING = "privacy.suppression_key"
# Folder names (the last part of the path, case-insensitive) of a Sent folder: IMAP's usual and
# localised names, Gmail's, Graph's well-known name, and what file imports call it.
SENT_FOLDER_NAMES = frozenset(
    {
        "sent",
        "sent items",
        "sent messages",
        "sent mail",
        "sentitems",
        "gesendet",
        "gesendete elemente",
        "gesendete objekte",
        "éléments envoyés",
        "envoyés",
        "messages envoyés",
        "elementos enviados",
        "enviados",
        "itens enviados",
        "posta inviata",
        "elementi inviati",
        "verzonden items",
        "verzonden",
        "skickat",
        "skickade objekt",
        "sendt",
        "sendte elementer",
    }
)


@dataclass(frozen=True)
class CapturePolicy:
    internal_domains: frozenset[str] = frozenset()
    blocked_addresses: frozenset[str] = frozenset()
    blocked_domains: frozenset[str] = frozenset()
    never_log: Mapping[int, frozenset[str]] = field(default_factory=dict)
    skip_internal_only: bool = True
    skip_mailing_lists: bool = True
    skip_automated: bool = True
    auto_create: AutoCreate = "all"
    log_header_key: str | None = None  # None: no marker was ever handed out, the header is inert
    anyone_erased: bool = False  # capture then replaces erased people's addresses first


def in_domains(address: str, domains: Collection[str]) -> bool:
    """True when the address's domain, or a parent domain of it, is listed."""
    domain = domain_of(address)
    while domain:
        if domain in domains:
            return True
        _, _, domain = domain.partition(".")
    return False


def matches_entry(address: str, entries: Collection[str]) -> bool:
    """An entry is an address (exact) or a domain (that domain and its subdomains)."""
    return address in entries or in_domains(address, entries)


def blocked_by(participants: Iterable[Participant], policy: CapturePolicy) -> str | None:
    for p in participants:
        if p.role not in ADDRESS_ROLES or not p.address:
            continue
        if p.address in policy.blocked_addresses:
            return "blocked_address"
        if in_domains(p.address, policy.blocked_domains):
            return "blocked_domain"
    return None


def skip_reason(
    item: MailItem,
    policy: CapturePolicy,
    *,
    owner_user_id: int | None,
    verdict: HeaderVerdict,
    owner_addresses: Collection[str] = (),
) -> str | None:
    """The rule that skips this email for this mailbox, or None to capture it (`verdict`: what
    the rules that read headers alone make of it, for this mailbox)."""
    if asked_to_log(item, policy, owner_user_id=owner_user_id, owner_addresses=owner_addresses):
        # The owner asked for this email from the pane: as for a click on "Log", only the
        # admin's blocks still apply (see the module docstring).
        return blocked_by(item.participants, policy)
    never = policy.never_log.get(owner_user_id or -1, frozenset())
    if never and any(
        p.address and matches_entry(p.address, never)
        for p in item.participants
        if p.role in ADDRESS_ROLES
    ):
        return "never_log"
    blocked = blocked_by(item.participants, policy)
    if blocked:
        return blocked
    reason = verdict.bulk
    if reason == "mailing_list" and policy.skip_mailing_lists:
        return reason
    if reason in {"bulk", "automated_sender"} and policy.skip_automated:
        return reason
    if verdict.direction == "internal" and policy.skip_internal_only:
        return "internal_only"
    return None


def content_skips(policy: CapturePolicy) -> frozenset[str]:
    """The rules switched on that a parse worker can apply alone (`server.crm.sure_skips`):
    none once anybody was erased."""
    skips: set[str] = set()
    if policy.anyone_erased:
        return frozenset()
    if policy.skip_mailing_lists:
        skips.add("mailing_list")
    if policy.skip_automated:
        skips |= {"bulk", "automated_sender"}
    if policy.skip_internal_only:
        skips.add("internal_only")
    return frozenset(skips)


def log_header_value(key: str, user_id: int) -> str:
    """The X-Rapport-Log value capture honours in this user's Sent mail (and nowhere else)."""
    mac = hmac.new(key.encode(), f"rapport-log|{user_id}".encode(), hashlib.sha256)
    return f"v1 {mac.hexdigest()[:32]}"


def is_sent_folder(folder: str) -> bool:
    last = re.split(r"[/.\\]", folder.strip())[-1]
    return last.strip().casefold() in SENT_FOLDER_NAMES


def asked_to_log(
    item: MailItem,
    policy: CapturePolicy,
    *,
    owner_user_id: int | None,
    owner_addresses: Collection[str],
) -> bool:
    """True when this copy carries its owner's "log this email when sent" marker where only the
    owner can have put it: their own sent mail, in a Sent folder of their mailbox."""
    value = item.headers.get(LOG_HEADER)
    if not value or policy.log_header_key is None or owner_user_id is None:
        return False
    sender = item.sender
    if sender is None or sender.address not in owner_addresses or not is_sent_folder(item.folder):
        return False
    expected = log_header_value(policy.log_header_key, owner_user_id)
    return hmac.compare_digest(" ".join(value.split()).encode(), expected.encode())


def log_header_key(session: Session) -> str:
    """The key of the pane's log markers, made on first use (two first uses at once agree)."""
    key = get_setting(session, LOG_HEADER_KEY_SETTING)
    if isinstance(key, str) and key:
        return key
    insert_ignore(
        session,
        "settings",
        ["key"],
        [{"key": LOG_HEADER_KEY_SETTING, "value": secrets.token_hex(32)}],
    )
    stored = get_setting(session, LOG_HEADER_KEY_SETTING)
    assert isinstance(stored, str)
    return stored


# -- loading and editing ----------------------------------------------------------------------


def seed_internal_domains(session: Session, domains: Iterable[str]) -> None:
    """Copy RAPPORT_INTERNAL_DOMAINS into the rule once; later edits in the database win."""
    if get_setting(session, SEEDED_FLAG):
        return
    existing = set(
        session.scalars(select(CaptureRule.value).where(CaptureRule.kind == "internal_domain"))
    )
    for domain in domains:
        if domain not in existing:
            session.add(CaptureRule(kind="internal_domain", value=domain))
    set_setting(session, SEEDED_FLAG, True)
    session.flush()


_POLICY_SETTINGS = (
    "capture.auto_create_contacts",
    "capture.skip_internal_only",
    "capture.skip_mailing_lists",
    "capture.skip_automated",
    LOG_HEADER_KEY_SETTING,
    SUPPRESSION_KEY_SETTING,
)


def load_policy(session: Session) -> CapturePolicy:
    lists: dict[str, set[str]] = {kind: set() for kind in LIST_KINDS}
    never: dict[int, set[str]] = {}
    for rule in session.scalars(select(CaptureRule)):
        if rule.kind == "never_log" and rule.user_id is not None:
            never.setdefault(rule.user_id, set()).add(rule.value)
        elif rule.kind in lists:
            lists[rule.kind].add(rule.value)
    settings = get_settings(session, _POLICY_SETTINGS)  # one query, not one per setting
    auto_create = settings["capture.auto_create_contacts"]
    return CapturePolicy(
        internal_domains=frozenset(lists["internal_domain"]),
        blocked_addresses=frozenset(lists["block_address"]),
        blocked_domains=frozenset(lists["block_domain"]),
        never_log={user: frozenset(values) for user, values in never.items()},
        skip_internal_only=bool(settings["capture.skip_internal_only"]),
        skip_mailing_lists=bool(settings["capture.skip_mailing_lists"]),
        skip_automated=bool(settings["capture.skip_automated"]),
        auto_create=auto_create if auto_create in ("all", "sent", "none") else "all",
        log_header_key=_text_or_none(settings[LOG_HEADER_KEY_SETTING]),
        anyone_erased=_text_or_none(settings[SUPPRESSION_KEY_SETTING]) is not None,
    )


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def normalise_rule_value(kind: str, value: str) -> str:
    """Check and normalise a list entry for its kind; DomainError says what is wrong."""
    if kind not in LIST_KINDS:
        raise DomainError(f"unknown rule kind '{kind}'; use one of {', '.join(LIST_KINDS)}")
    shape = LIST_KINDS[kind]
    raw = value.strip().lstrip("@")
    if shape in ("address", "address_or_domain") and "@" in raw:
        address = normalise_address(raw)
        if address is None:
            raise DomainError(f"'{value}' is not an email address", field="value")
        return address
    if shape == "address":
        raise DomainError(f"'{value}' is not an email address", field="value")
    domain = normalise_domain(raw)
    if domain is None:
        raise DomainError(f"'{value}' is not a domain name", field="value")
    return domain
