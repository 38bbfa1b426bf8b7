"""Which company, if any, an email domain stands for.

Capture turns `jane@mail.sales.acme.co.uk` into a contact at the company `acme.co.uk` ("Acme"),
but `jane@gmail.com` must not create a company called "Gmail". Two data sets decide:

* The Public Suffix List, as bundled with `publicsuffixlist` (its copy, released with the list's
  updates; nothing is fetched at run time: servers have no Internet access). PSL "private"
  suffixes are honoured, so `acme.herokuapp.com` and `other.herokuapp.com` are two registrable
  domains, not one company "Herokuapp". `onmicrosoft.com` is added as a suffix for the same reason:
  `acme.onmicrosoft.com` is the Microsoft 365 tenant domain of one customer.
* A maintained list of free, consumer-ISP and disposable mail domains,
  `server/crm/data/freemail_domains.txt` (see its header for source and licence), loaded lazily
  once.

All inputs go through `server.crm.addresses.normalise_domain`, so punycode and Unicode spellings,
case and a trailing dot do not matter; results are in the same canonical Unicode form.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from importlib.resources import files
from typing import TYPE_CHECKING

from server.crm.addresses import normalise_address, normalise_domain

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

__all__ = [
    "company_domain_for",
    "company_name_from_domain",
    "is_freemail",
    "registrable_domain",
]

# Suffixes missing from the PSL under which each label belongs to a different organisation.
_EXTRA_SUFFIXES = ("onmicrosoft.com", "mail.onmicrosoft.com")


@lru_cache(maxsize=1)
def _suffix_lists() -> tuple[PublicSuffixList, PublicSuffixList]:
    """The list with its private suffixes (and ours), and its ICANN part alone, made on first use.

    `publicsuffixlist` rather than `tldextract`: it is the list and its lookup and nothing else,
    where tldextract imports `requests` to be able to fetch one. That import and its loading were
    a fifth of a second of every import's start, on the process that writes the database.
    Unknown TLDs are no suffix (`host.internal` has no registrable domain). Our inputs are in
    Unicode form (`normalise_domain`), so the list's punycode spellings are not generated.
    """
    import publicsuffixlist

    with open(publicsuffixlist.PSLFILE, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    options = {"accept_unknown": False, "accept_encoded_idn": False}
    return (
        publicsuffixlist.PublicSuffixList([*lines, *_EXTRA_SUFFIXES], **options),
        publicsuffixlist.PublicSuffixList(lines, only_icann=True, **options),
    )


# Domains whose addresses belong to people but never to the domain's owner as "their company",
# and which the freemail list does not carry. Kept deliberately small: bulk and transactional
# senders (mailchimp, sendgrid, linkedin...) are NOT listed here; the capture rules handle them.
_NOT_COMPANY_DOMAINS = frozenset(
    {
        "privaterelay.appleid.com",  # "Hide My Email" relay addresses of Apple ID users
    }
)

_DATA_FILE = "data/freemail_domains.txt"
_freemail: frozenset[str] | None = None
_freemail_lock = threading.Lock()


def _is_ip_literal(domain: str) -> bool:
    if domain.startswith("["):
        return True
    labels = domain.split(".")
    return len(labels) == 4 and all(label.isascii() and label.isdigit() for label in labels)


@lru_cache(maxsize=65536)
def registrable_domain(domain: str) -> str | None:
    """The domain one can register that `domain` lies under (`mail.acme.co.uk` → `acme.co.uk`).

    None for IP addresses (bare or bracketed), bare public suffixes (`co.uk`), unknown TLDs
    (`host.internal`, `localhost`) and anything that is not a domain.
    """
    normalised = normalise_domain(domain)
    if normalised is None or _is_ip_literal(normalised):
        return None
    # When the domain is itself a private suffix (`blogspot.com`) it is its operator's own
    # domain, registrable under the ICANN rules.
    return _suffix_lists()[0].privatesuffix(normalised) or _icann_registrable(normalised)


def _icann_registrable(domain: str) -> str | None:
    return _suffix_lists()[1].privatesuffix(domain)


def _load_freemail() -> frozenset[str]:
    text = files("server.crm").joinpath(_DATA_FILE).read_text(encoding="utf-8")
    domains: set[str] = set()
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        normalised = normalise_domain(entry)
        if normalised is not None:
            domains.add(normalised)
    return frozenset(domains)


def _freemail_domains() -> frozenset[str]:
    global _freemail
    if _freemail is None:
        with _freemail_lock:
            if _freemail is None:
                _freemail = _load_freemail()
    return _freemail


def _parents_down_to_registrable(domain: str) -> list[str]:
    """`a.b.acme.co.uk` → [`a.b.acme.co.uk`, `b.acme.co.uk`, `acme.co.uk`].

    Stops at the ICANN registrable domain, never at a bare public suffix: a list entry that is a
    suffix (the freemail list has `net.ua`) must not swallow every company under it.
    """
    floor = _icann_registrable(domain)
    if floor is None:
        return [domain]
    labels = domain.split(".")
    floor_len = floor.count(".") + 1
    return [".".join(labels[i:]) for i in range(len(labels) - floor_len + 1)]


def _listed(domain: str, listing: frozenset[str]) -> bool:
    return any(candidate in listing for candidate in _parents_down_to_registrable(domain))


@lru_cache(maxsize=16384)
def is_freemail(domain: str) -> bool:
    """True for free / consumer / disposable mail domains (`gmail.com`, `mail.yahoo.co.uk`).

    The full domain and each parent down to its registrable domain are looked up in the list.
    """
    normalised = normalise_domain(domain)
    if normalised is None or _is_ip_literal(normalised):
        return False
    return _listed(normalised, _freemail_domains())


def company_domain_for(address: str) -> str | None:
    """The registrable domain that `address`'s company should be keyed by, or None.

    None when the address is invalid, on an IP literal or unknown TLD, on a freemail domain, or on
    one of the few relay domains in `_NOT_COMPANY_DOMAINS`.
    """
    normalised = normalise_address(address)
    if normalised is None:
        return None
    domain = normalised.rpartition("@")[2]
    registrable = registrable_domain(domain)
    if registrable is None or is_freemail(domain) or _listed(domain, _NOT_COMPANY_DOMAINS):
        return None
    return registrable


_NAME_SEPARATORS = re.compile(r"[-_.]+")


def company_name_from_domain(domain: str) -> str:
    """A default company name for a domain: `acme-tools.co.uk` → "Acme Tools".

    Uses the label just left of the public suffix, splits it on '-' and '_', and capitalises each
    word's first letter (we cannot know that "ibm" is "IBM": users rename). Falls back to the
    first label of whatever was given when there is no registrable domain, and to "" for junk.
    """
    normalised = normalise_domain(domain)
    if normalised is None:
        return ""
    if _is_ip_literal(normalised):
        return normalised
    label = normalised.split(".", 1)[0]
    registrable = registrable_domain(normalised)
    if registrable is not None:
        label = registrable.split(".", 1)[0]  # the label just left of the suffix
    words = [word for word in _NAME_SEPARATORS.split(label) if word]
    return " ".join(word[:1].upper() + word[1:] for word in words)
