"""Value types of iCalendar properties: text, DATE/DATE-TIME, DURATION, addresses, meeting links.

Pure helpers for `calendar.py`. Each returns None (never raises) for a value it cannot read, so one
bad property costs only itself. Producer quirks handled are named where they are handled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qs, unquote, urlsplit

from server.crm.addresses import normalise_address

__all__ = [
    "Stamp",
    "address_of",
    "meeting_url",
    "parse_duration",
    "parse_int",
    "parse_stamp",
    "unescape_text",
]

_ESCAPE = re.compile(r"\\(.)", re.S)
_ESCAPES = {"n": "\n", "N": "\n", ",": ",", ";": ";", "\\": "\\", ":": ":", '"': '"'}
# Basic form (20261203T090000Z) and, from sloppy generators, the extended ISO form.
_STAMP = re.compile(
    r"(\d{4})-?(\d{2})-?(\d{2})(?:[T ](\d{2}):?(\d{2})(?::?(\d{2})(?:[.,]\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?",
    re.I,
)
_DURATION = re.compile(
    r"([+-])?P(?:(\d{1,7})W)?(?:(\d{1,7})D)?(?:T(?:(\d{1,8})H)?(?:(\d{1,9})M)?(?:(\d{1,10})S)?)?",
    re.I,
)
_URL = re.compile(r"https?://[^\s<>\"'\\]{4,2000}", re.I)
# Join links of the meeting services people actually send, most specific first.
_MEETING_HOSTS = re.compile(
    r"https?://(?:[\w-]+\.)*(?:teams\.microsoft\.com/l/meetup-join|teams\.live\.com/meet"
    r"|zoom\.us/(?:j|my|w|s)/|zoomgov\.com/j/|meet\.google\.com/[a-z]|[\w-]+\.webex\.com/"
    r"|whereby\.com/|meet\.goto\.com/|global\.gotomeeting\.com/join|chime\.aws/"
    r"|meet\.jit\.si/|bluejeans\.com/)",
    re.I,
)
_SAFELINKS = re.compile(r"https?://[\w.-]*safelinks\.protection\.outlook\.com/", re.I)
MAX_URL = 2000


@dataclass(frozen=True, slots=True)
class Stamp:
    """A DATE or DATE-TIME value as written: naive wall time, and what kind it was."""

    local: datetime  # midnight for a DATE
    is_date: bool
    utc_offset: timedelta | None  # timedelta(0) for a trailing Z; None when floating or TZID'd


def unescape_text(value: str) -> str:
    """A TEXT value with RFC 5545 backslash escapes undone (unknown escapes kept as written)."""
    if "\\" not in value:
        return value
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), value)


def parse_int(value: str) -> int | None:
    text = value.strip()
    if not re.fullmatch(r"[+-]?\d{1,12}", text):
        return None
    return int(text)


def parse_stamp(value: str, value_type: str = "") -> Stamp | None:
    """A DATE/DATE-TIME value; None when it is not one or names an impossible date."""
    match = _STAMP.fullmatch(value.strip())
    if match is None:
        return None
    y, mo, d, h, mi, s, zone = match.groups()
    is_date = h is None or value_type.upper() == "DATE"
    try:
        # Second 60 (a leap second) is legal in RFC 5545 and impossible in Python.
        local = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), min(int(s or 0), 59))
    except ValueError:
        return None
    if is_date:
        return Stamp(local.replace(hour=0, minute=0, second=0), True, None)
    offset = None
    if zone is not None and zone.upper() == "Z":
        offset = timedelta(0)
    elif zone is not None:
        sign, digits = zone[0], zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        offset = -offset if sign == "-" else offset
        if abs(offset) >= timedelta(hours=24):
            return None
    return Stamp(local, False, offset)


def parse_duration(value: str) -> timedelta | None:
    """An RFC 5545 DURATION ("PT1H30M", "P1D", "-PT15M"); None when unreadable or absurd."""
    match = _DURATION.fullmatch(value.strip())
    if match is None or not any(match.groups()[1:]):
        return None
    sign, weeks, days, hours, minutes, seconds = match.groups()
    try:
        delta = timedelta(
            weeks=int(weeks or 0),
            days=int(days or 0),
            hours=int(hours or 0),
            minutes=int(minutes or 0),
            seconds=int(seconds or 0),
        )
    except OverflowError:
        return None
    if delta > timedelta(days=3660):
        return None
    return -delta if sign == "-" else delta


def address_of(value: str, params: dict[str, str]) -> str | None:
    """The normalised email address of an ORGANIZER/ATTENDEE value, or None.

    RFC 5545 writes `mailto:` URIs, in any case (Outlook: `MAILTO:`). Apple's iCloud writes
    `urn:uuid:...` or a principal path and puts the address in the EMAIL parameter (RFC 7986);
    some Exchange versions write a bare address with no scheme.
    """
    text = value.strip().strip('"').strip()
    if text[:7].lower() == "mailto:":
        text = text[7:]
    elif ":" in text or "/" in text or "@" not in text:
        text = params.get("EMAIL", "").strip()
        if text[:7].lower() == "mailto:":
            text = text[7:]
    if "%" in text:
        text = unquote(text)
    if not text or len(text) > 998:
        return None
    return normalise_address(text.split("?", 1)[0])


def _clean_url(url: str) -> str | None:
    url = url.rstrip(").,;>]")
    if _SAFELINKS.match(url):
        # Outlook's "Safe Links" wraps every link of a message body in a redirect.
        target = parse_qs(urlsplit(url).query).get("url")
        if target and target[0].lower().startswith(("http://", "https://")):
            url = target[0]
    if len(url) > MAX_URL or any(c.isspace() for c in url):
        return None
    return url


def meeting_url(
    explicit: list[str], url_property: str, location: str, description: str
) -> str | None:
    """The online meeting's join link.

    In order: explicit conference properties (Outlook/Teams X-MICROSOFT-SKYPETEAMSMEETINGURL,
    Google X-GOOGLE-CONFERENCE, RFC 7986 CONFERENCE); a known meeting service's link in URL,
    LOCATION, then DESCRIPTION (Zoom and Webex invites only carry it in the text); finally the
    URL property itself, whatever it points to.
    """
    for value in explicit:
        found = _URL.search(value)
        if found is not None and (url := _clean_url(found.group(0))) is not None:
            return url
    for text in (url_property, location, description[:200_000]):
        for found in _URL.finditer(text):
            url = _clean_url(found.group(0))
            if url is not None and _MEETING_HOSTS.match(url):
                return url
    found = _URL.match(url_property.strip())
    return _clean_url(found.group(0)) if found is not None else None
