"""Email address normalisation, display-name choice and no-reply detection.

Every participant of every captured message passes through `normalise_address`, so that the same
person written as `<John.Smith@ACME.com>`, `"john.smith@acme.com"` or `john.smith@acme.com.` becomes
one contact, and an internationalised domain written in punycode (`xn--bcher-kva.de`) or in Unicode
(`bücher.de`) becomes one company. The functions are pure and cheap; the hot ones are cached.

Decisions, so that every caller gets the same answer:

* The whole address is lower-cased, local part included. RFC 5321 lets a server treat the local
  part case-sensitively, but no provider we meet does, and people type addresses in every case.
* Domains are kept in their Unicode form (NFC, lower-case): it is what people read, and punycode
  and Unicode spellings of one domain must compare equal.
* Not an address (None): no '@', an empty local part or domain, whitespace or control characters,
  RFC 5322 "specials" outside a quoted local part, an empty domain label, or a domain without a dot.
  The one dotless domain accepted is `localhost`, because cron and system mail really is sent from
  `root@localhost` and it is better recorded (and then ignored by the rules) than lost. Single-label
  intranet hosts (`admin@mailhub`) are not routable on the Internet and are rejected.
* Domain literals (`user@[192.0.2.1]`, `user@[IPv6:2001:db8::1]`) are accepted when the IP parses;
  they never become a company (see `server.crm.domains`).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache

import idna

__all__ = [
    "choose_display_name",
    "domain_of",
    "looks_like_no_reply",
    "normalise_address",
    "normalise_domain",
]

# Whole raw values longer than this are garbage (a header line may not exceed 998 characters).
_MAX_ADDRESS_LENGTH = 998
_MAX_DOMAIN_LENGTH = 255
# Lower-case ASCII labels joined by dots: canonical as it stands, no decoding to do.
_PLAIN_DOMAIN = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)+")

# RFC 5322 "specials" that may not appear unquoted in a local part; '.' is handled separately.
_LOCAL_SPECIALS = frozenset('()<>[]:;@\\,"')
# Characters never valid in a domain name label (besides whitespace and controls).
_DOMAIN_SPECIALS = frozenset("()<>[]:;@\\,\"'!#$%&*+/=?^`{|}~")
# Ideographic and full-width full stops are label separators in IDNA (UTS #46 maps them to '.').
_DOT_LIKE = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_DOTLESS_DOMAINS_ACCEPTED = frozenset({"localhost"})


def _bad_char(ch: str) -> bool:
    """Whitespace or a control/format/unassigned character: never part of an address."""
    return ch.isspace() or unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def _decode_label(label: str) -> str:
    """Decode one `xn--` label to Unicode, or keep its ASCII form when the punycode is invalid.

    `idna` implements IDNA 2008, which rejects some labels real domains still use (emoji domains
    registered under IDNA 2003); Python's own codec (IDNA 2003) is the fallback. A label that decodes
    to something that could not be a label (whitespace, a dot, specials) is kept as given.
    """
    decoded: str | None
    try:
        decoded = idna.decode(label)
    except (idna.IDNAError, UnicodeError, ValueError):
        try:
            decoded = label.encode("ascii").decode("idna")
        except (UnicodeError, ValueError):
            decoded = None
    if not decoded or "." in decoded or any(_bad_char(c) or c in _DOMAIN_SPECIALS for c in decoded):
        return label
    return unicodedata.normalize("NFC", decoded.lower())


@lru_cache(maxsize=65536)
def normalise_domain(raw: str) -> str | None:
    """Return a domain in canonical form (Unicode NFC, lower-case, no trailing dot), or None.

    Accepts a bare domain (`Mail.Example.COM.`), punycode or Unicode labels, and a bracketed IP
    literal (returned as `[192.0.2.1]` / `[ipv6:2001:db8::1]`). A leading '@' is tolerated so that
    configuration values like `@acme.com` work.
    """
    if len(raw) <= _MAX_DOMAIN_LENGTH and _PLAIN_DOMAIN.fullmatch(raw) and "xn--" not in raw:
        return raw  # already canonical: most domains, and all 14,000 of the free-mail list
    return _normalise_any_domain(raw)


def _normalise_any_domain(raw: str) -> str | None:
    domain = raw.strip().lstrip("@").translate(_DOT_LIKE).rstrip(".")
    if not domain or len(domain) > _MAX_DOMAIN_LENGTH:
        return None
    if domain.startswith("[") and domain.endswith("]"):
        return _normalise_domain_literal(domain[1:-1])
    domain = unicodedata.normalize("NFC", domain.lower())
    labels = domain.split(".")
    if any(not label for label in labels):
        return None
    if any(_bad_char(c) or c in _DOMAIN_SPECIALS for c in domain):
        return None
    if len(labels) == 1 and domain not in _DOTLESS_DOMAINS_ACCEPTED:
        return None
    return ".".join(_decode_label(lb) if lb.startswith("xn--") else lb for lb in labels)


def _normalise_domain_literal(inner: str) -> str | None:
    """`[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 address literals), validated and compressed."""
    text = inner.strip()
    try:
        if text.lower().startswith("ipv6:"):
            return f"[ipv6:{ipaddress.IPv6Address(text[5:]).compressed}]"
        return f"[{ipaddress.IPv4Address(text).compressed}]"
    except ValueError:
        return None


_WRAPPERS = frozenset({("<", ">"), ('"', '"'), ("'", "'")})


def _unwrap(value: str) -> str:
    """Peel `<...>`, matching quotes and stray whitespace from around an address, repeatedly."""
    while True:
        before = value
        value = value.strip()
        if len(value) >= 2 and (value[0], value[-1]) in _WRAPPERS:
            value = value[1:-1]
        if value == before:
            return value


def _normalise_local(local: str) -> str | None:
    if len(local) >= 2 and local[0] == local[-1] == '"':
        # `"john.smith"@acme.com` is the same mailbox as `john.smith@acme.com`; a quoted local part
        # that needs its quotes (spaces, specials) is too exotic to be a contact: reject it.
        local = local[1:-1]
    if not local or any(_bad_char(c) or c in _LOCAL_SPECIALS for c in local):
        return None
    return unicodedata.normalize("NFC", local.lower())


@lru_cache(maxsize=65536)
def normalise_address(raw: str) -> str | None:
    """Return `raw` as a canonical address (`local@domain`, lower-case, Unicode domain), or None.

    Tolerates what headers, clipboards and address books add: surrounding whitespace, `<...>`,
    matching quotes, a `mailto:` prefix, a trailing dot, and a `Name <address>` form (the part in
    the last angle brackets is used). Returns None for anything that is not an address; see the
    module docstring for the exact rules.
    """
    value = _unwrap(raw)
    if len(value) > _MAX_ADDRESS_LENGTH:
        return None
    if value.endswith(">") and "<" in value:
        value = _unwrap(value[value.rindex("<") :])
    if value[:7].lower() == "mailto:":
        value = _unwrap(value[7:])
    value = value.rstrip(".")
    local, at, domain = value.rpartition("@")
    if not at:
        return None
    norm_local = _normalise_local(local)
    norm_domain = normalise_domain(domain) if domain and not domain.startswith("@") else None
    if norm_local is None or norm_domain is None:
        return None
    return f"{norm_local}@{norm_domain}"


def domain_of(address: str) -> str:
    """The normalised domain of `address`, or "" when it is not an address."""
    normalised = normalise_address(address)
    return normalised.rpartition("@")[2] if normalised else ""


# Display names that name nobody. Compared after casefolding and trimming `:;` and whitespace.
_PLACEHOLDER_NAMES = frozenset(
    {
        "undisclosed-recipients",
        "undisclosed recipients",
        "undisclosed-recipient",
        "undisclosed recipient",
        "recipient list suppressed",
        "unknown",
        "unknown sender",
        "no name",
        "noname",
        "none",
        "null",
        "n/a",
    }
)
_WHITESPACE_RUN = re.compile(r"\s+")


def _clean_name(name: str) -> str:
    name = _WHITESPACE_RUN.sub(" ", name).strip()
    while len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        name = name[1:-1].strip()
    return name


def _is_real_name(name: str, address: str | None, local: str) -> bool:
    if not any(ch.isalnum() for ch in name):
        return False
    folded = name.casefold()
    if folded.strip(" :;") in _PLACEHOLDER_NAMES:
        return False
    if local and folded == local.casefold():
        return False
    if "@" not in name:
        return True
    # An address as a name (this one, a quoted copy of it, or another one an address book put
    # there) tells us nothing about the person; nor does "john@acme.com (via Groups)".
    if normalise_address(name) is not None:
        return False
    return address is None or address not in folded


def _sort_instant(seen: datetime | None) -> datetime:
    if seen is None:
        return datetime.min.replace(tzinfo=UTC)
    # Naive datetimes are taken as UTC so that they compare with aware ones instead of raising.
    return seen.replace(tzinfo=UTC) if seen.tzinfo is None else seen


def choose_display_name(candidates: Iterable[tuple[str, datetime | None]], address: str) -> str:
    """The most recently seen real display name for `address`, or "" when there is none.

    A candidate is `(name, seen_at)`; `seen_at` None counts as older than any date, and among equal
    dates the later candidate wins (sources deliver in arrival order). Names that are the address
    itself (bare, quoted or bracketed), any other address, its local part, or placeholders such as
    "undisclosed-recipients" are skipped. Names are returned as written ("Smith, John" stays so),
    with whitespace collapsed and surrounding quotes removed.
    """
    normalised = normalise_address(address)
    local = normalised.rpartition("@")[0] if normalised else ""
    best: tuple[datetime, int] | None = None
    chosen = ""
    for index, (raw_name, seen) in enumerate(candidates):
        name = _clean_name(raw_name or "")
        if not name or not _is_real_name(name, normalised, local):
            continue
        rank = (_sort_instant(seen), index)
        if best is None or rank > best:
            best, chosen = rank, name
    return chosen


# Local parts of automated senders, compared with separators ('.', '_', '-') removed and any
# `+tag` dropped. Exact matches only: a prefix rule would flag "alerta.maria" or "noah".
_NO_REPLY_EXACT = frozenset(
    {
        "postmaster",
        "mailerdaemon",
        "bounce",
        "bounces",
        "notification",
        "notifications",
        "notify",
        "alert",
        "alerts",
        "automated",
        "autoreply",
        "autoresponder",
        "automailer",
    }
)
# Substrings that only automated senders use, wherever they appear ("billing-noreply",
# "noreply.12345"), in English and the languages our customers' vendors write in.
_NO_REPLY_SUBSTRINGS = (
    "noreply",
    "donotreply",
    "dontreply",
    "noresponder",  # es: no-responder
    "nepasrepondre",  # fr: ne-pas-repondre
    "nichtantworten",  # de: nicht-antworten
    "naoresponda",  # pt: nao-responda
    "nonrispondere",  # it: non-rispondere
    "mailerdaemon",
)
# Words that flag the address when they stand as a whole separator-delimited token
# ("security-alerts", "jira.notifications", "bounce-mc.us5_123").
_NO_REPLY_TOKENS = frozenset(
    {
        "noreply",
        "bounce",
        "bounces",
        "notification",
        "notifications",
        "alert",
        "alerts",
        "automated",
        "autoreply",
        "postmaster",
        "daemon",
    }
)
_SEPARATORS = re.compile(r"[._\-]+")


def looks_like_no_reply(address: str) -> bool:
    """True when the local part of `address` is a typical automated, unanswerable sender.

    Covers no-reply/noreply/donotreply/do-not-reply (also in es/fr/de/pt/it), mailer-daemon,
    postmaster, bounce(s), notification(s), alert(s), automated, auto-reply; `+tags` and the
    separators '.', '_', '-' are ignored. Ordinary people ("noah@", "alerta.maria@") are not flagged.
    """
    normalised = normalise_address(address)
    local = normalised.rpartition("@")[0] if normalised else address.strip().lower()
    base = local.split("+", 1)[0]
    compact = _SEPARATORS.sub("", base)
    if not compact:
        return False
    if compact in _NO_REPLY_EXACT or any(s in compact for s in _NO_REPLY_SUBSTRINGS):
        return True
    return any(token in _NO_REPLY_TOKENS for token in _SEPARATORS.split(base))
