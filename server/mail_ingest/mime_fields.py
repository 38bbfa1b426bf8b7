"""Interpreting individual header fields: message-ids, dates and address lists.

Each function takes the text of one header as real mailers write it (missing angle brackets,
commas between references, "GMT+01:00" zones, unquoted commas in display names, megabyte-long
garbled recipient lists) and returns the best reading plus defect notes; none of them raises.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import getaddresses, parsedate_to_datetime

from server.mail_ingest.items import Participant, Role
from server.mail_ingest.mime_charset import decode_header_bytes, decode_rfc2047
from server.mail_ingest.mime_tree import unfold

MAX_ADDRESSES = 1000
# getaddresses is pure Python (~0.5 µs per character): a garbled megabyte To: header would cost
# a second, while 1,000 real addresses fit in well under 64 KB.
MAX_ADDRESS_HEADER = 64 * 1024
MAX_IDS = 1000
_MAX_ID_LENGTH = 998

_ANGLE_ID = re.compile(r"<([^<>]{1,998})>")
# Bounded parts: an unbounded run before '@' backtracks quadratically on garbled headers.
_BARE_ID = re.compile(r"[^\s,;<>()\"@]{1,256}@[^\s,;<>()\"@]{1,256}")


def parse_message_id(value: str) -> str | None:
    """The id inside the first <...>, or the first bare token; whitespace inside is dropped."""
    match = _ANGLE_ID.search(value)
    if match is not None:
        found = "".join(match.group(1).split())
    else:
        tokens = value.split()
        found = tokens[0].strip("<>") if tokens else ""
    return found[:_MAX_ID_LENGTH] or None


def parse_id_list(value: str) -> list[str]:
    """Message-ids from In-Reply-To/References: bracketed ones, else bare tokens with an '@'.

    Tolerates commas between ids, comments and old-style "Your message of ..." text; keeps
    the first id and the newest ones when a References header is absurdly long.
    """
    ids = ["".join(found.split()) for found in _ANGLE_ID.findall(value)]
    if not ids:
        ids = [token.strip(".") for token in _BARE_ID.findall(value)]
    unique = list(dict.fromkeys(token for token in ids if token))
    if len(unique) > MAX_IDS:
        unique = [unique[0], *unique[-(MAX_IDS - 1) :]]
    return unique


_MONTHS = {
    "january": "Jan", "januar": "Jan", "janvier": "Jan", "enero": "Jan",
    "february": "Feb", "februar": "Feb", "février": "Feb", "febrero": "Feb",
    "march": "Mar", "märz": "Mar", "mars": "Mar", "marzo": "Mar", "mrz": "Mar",
    "april": "Apr", "avril": "Apr", "abril": "Apr",
    "mai": "May", "mayo": "May",
    "june": "Jun", "juni": "Jun", "juin": "Jun", "junio": "Jun",
    "july": "Jul", "juli": "Jul", "juillet": "Jul", "julio": "Jul",
    "august": "Aug", "août": "Aug", "agosto": "Aug",
    "september": "Sep", "sept": "Sep", "septembre": "Sep", "septiembre": "Sep",
    "october": "Oct", "oktober": "Oct", "octobre": "Oct", "octubre": "Oct", "okt": "Oct",
    "november": "Nov", "novembre": "Nov", "noviembre": "Nov",
    "december": "Dec", "dezember": "Dec", "décembre": "Dec", "diciembre": "Dec", "dez": "Dec",
    "mär": "Mar", "janv": "Jan", "févr": "Feb", "avr": "Apr", "juil": "Jul", "déc": "Dec",
}  # fmt: skip
_MONTH_WORD = re.compile(
    r"\b(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\b\.?", re.I
)
_COMMENT = re.compile(r"\([^()]*\)")
_NAMED_OFFSET = re.compile(r"\b(?:GMT|UTC)\s*([+-])(\d{1,2})(?::?(\d{2}))?\b", re.I)
_COLON_OFFSET = re.compile(r"([+-]\d{2}):(\d{2})\b")
_LEADING_DAY_NAME = re.compile(r"^[^\W\d]+\.?,?\s+(?=\d)")
_DAY_DOT = re.compile(r"\b(\d{1,2})\.(?=\s)")
_NAIVE_FORMATS = (
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
)


def _utc(value: datetime) -> datetime | None:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # "-0000" or a zone-less date: read as UTC
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _rfc5322(value: str) -> datetime | None:
    try:
        return _utc(parsedate_to_datetime(value))
    except Exception:  # the stdlib's lenient parser raises TypeError/ValueError/IndexError
        return None


_TWELVE_HOUR = re.compile(r"\b(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp])\.?[Mm]\.?(?!\w)")


def _twenty_four_hour(match: re.Match[str]) -> str:
    hour = int(match.group(1)) % 12 + (12 if match.group(4) in "Pp" else 0)
    return f"{hour:02d}:{match.group(2)}:{match.group(3) or '00'}"


def _fix_offset(value: str) -> str:
    """ "GMT+01:00", "UTC+1" and "+01:00" as the RFC's "+0100".

    The stdlib parser silently ignores these zones and returns the wrong instant, so they
    are rewritten before it sees them.
    """
    value = _NAMED_OFFSET.sub(
        lambda m: f"{m.group(1)}{int(m.group(2)):02d}{m.group(3) or '00'}", value
    )
    value = _COLON_OFFSET.sub(r"\1\2", value)
    # "4:20 PM": the stdlib parser drops the PM and returns 04:20.
    return _TWELVE_HOUR.sub(_twenty_four_hour, value)


def _lenient(value: str) -> datetime | None:
    cleaned = _fix_offset(_COMMENT.sub(" ", value))
    cleaned = _DAY_DOT.sub(r"\1", cleaned)
    cleaned = _MONTH_WORD.sub(lambda m: _MONTHS[m.group(1).lower()], cleaned)
    cleaned = re.sub(r"\s+(?:at|um|à)\s+", " ", cleaned).strip()
    cleaned = _LEADING_DAY_NAME.sub("", cleaned)  # "mardi 5 mars": weekday names in any language
    parsed = _rfc5322(cleaned)
    if parsed is not None:
        return parsed
    try:
        return _utc(datetime.fromisoformat(value.strip()))
    except ValueError:
        pass
    # A 12-hour clock means a US writer: month before day.
    us_first = _TWELVE_HOUR.search(value) is not None
    for pattern in sorted(_NAIVE_FORMATS, key=lambda p: not (us_first and p.startswith("%m"))):
        try:
            return _utc(datetime.strptime(cleaned, pattern))  # zone-less: read as UTC
        except ValueError:
            continue
    return None


def parse_date(value: str, defects: list[str], name: str = "Date") -> datetime | None:
    """A timezone-aware UTC datetime from a date header, or None with a defect."""
    value = value.strip()
    if not value:
        defects.append(f"empty {name} header")
        return None
    parsed = _rfc5322(value) if _fix_offset(value) == value else None
    if parsed is not None:
        return parsed
    parsed = _lenient(value[:200])
    if parsed is None:
        defects.append(f"unparseable {name} header {value[:80]!r}")
    else:
        defects.append(f"broken {name} header {value[:80]!r} read leniently")
    return parsed


# Control characters other than the tab and line breaks that folding leaves (split away below).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _ascii_label(label: str) -> str:
    if label.startswith("xn--"):
        try:
            return label[4:].encode("ascii").decode("punycode").lower()
        except (UnicodeError, ValueError):
            return label
    return label


def normalise_address(address: str) -> str | None:
    """Lower-case addr-spec with punycode domains shown in Unicode; None without a usable '@'
    or with a control character (a NUL in an address broke the whole batch on PostgreSQL)."""
    if _CONTROL.search(address):
        return None
    cleaned = "".join(address.split()).strip("<>\"'()[]{},;:.").lower()
    if cleaned.startswith("mailto:"):  # Outlook's "Name [mailto:x@y]" pasted into headers
        cleaned = cleaned[7:]
    local, at, domain = cleaned.rpartition("@")
    domain = domain.strip(".")
    if not at or not local or not domain:
        return None
    if "xn--" in domain:
        domain = ".".join(_ascii_label(label) for label in domain.split("."))
    return f"{local}@{domain}"


def _clean_name(name: str, address: str, raw_address: str) -> str:
    cleaned = " ".join(name.replace("\x00", "").split()).strip("\"' ")
    if cleaned.lower() in (address, raw_address.strip().lower(), f"<{address}>"):
        return ""
    return cleaned


# The everyday shapes of an address list element: `"Name" <a@b>`, `Name <a@b>`, `<a@b>` and
# `a@b`. Lists made only of these skip getaddresses, which costs ~20 µs per address.
_SIMPLE_ELEMENT = re.compile(
    r'[ \t]*(?:(?:"([^"\\]*)"|([^",<>()\\;:@\[\]]*?))[ \t]*<([^<>"\s,;:()\\@]+@[^<>"\s,;:()\\@]+)>'
    r'|([^<>"\s,;:()\\@]+@[^<>"\s,;:()\\@]+))[ \t]*(?:,|$)'
)


def _simple_pairs(value: str) -> list[tuple[str, str]] | None:
    pairs: list[tuple[str, str]] = []
    pos, end = 0, len(value.rstrip())
    while pos < end:
        match = _SIMPLE_ELEMENT.match(value, pos, end)
        if match is None or match.end() == pos:
            return None
        quoted, bare_name, angle, bare = match.groups()
        pairs.append(((quoted if quoted is not None else bare_name) or "", angle or bare))
        pos = match.end()
    return pairs


def _pairs(value: str) -> list[tuple[str, str]]:
    simple = _simple_pairs(value)
    if simple is not None:
        return simple
    try:
        pairs = getaddresses([value])
    except Exception:  # the stdlib tokenizer on garbage; the regex below still finds addresses
        pairs = []
    if "@" in value and not any("@" in address for _, address in pairs):
        pairs = [("", found) for found in _BARE_ID.findall(value)]
    return pairs


ADDRESS_HEADERS: tuple[tuple[str, Role], ...] = (
    ("from", "from"),
    ("sender", "sender"),
    ("reply-to", "reply_to"),
    ("to", "to"),
    ("cc", "cc"),
    ("bcc", "bcc"),
)


def parse_participants(
    fields: dict[str, list[bytes]], hint: str | None, defects: list[str]
) -> list[Participant]:
    """Participants from From/Sender/Reply-To/To/Cc/Bcc, at most MAX_ADDRESSES of them."""
    participants: list[Participant] = []
    seen: set[tuple[str, str]] = set()
    for header, role in ADDRESS_HEADERS:
        skipped = 0
        for raw in fields.get(header, ()):
            if len(raw) > MAX_ADDRESS_HEADER:
                cut = raw.rfind(b",", 0, MAX_ADDRESS_HEADER)
                raw = raw[: cut if cut > 0 else MAX_ADDRESS_HEADER]
                defects.append(f"{header} header longer than {MAX_ADDRESS_HEADER // 1024} KB, cut")
            value = decode_header_bytes(unfold(raw), hint, defects, header)
            for name, raw_address in _pairs(value):
                address = normalise_address(raw_address)
                if address is None:
                    skipped += bool(raw_address.strip() or name.strip())
                    continue
                if (role, address) in seen:
                    continue
                if len(participants) >= MAX_ADDRESSES:
                    defects.append(f"more than {MAX_ADDRESSES} addresses; kept the first")
                    return participants
                seen.add((role, address))
                display = _clean_name(decode_rfc2047(name, defects, header), address, raw_address)
                participants.append(Participant(address=address, role=role, name=display))
        if skipped:
            defects.append(f"{skipped} {header} entries without a usable address skipped")
    return participants
