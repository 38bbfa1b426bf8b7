"""Charset handling for the MIME parser: bytes to text the way real mailers need it.

Declared charsets in real mail are often wrong (ISO-8859-1 declared for Windows-1252 text,
GB2312 declared for GBK text), unknown to Python (``x-unknown``, ``iso-8859-8-i``), or absent
while the bytes are 8-bit anyway. Header values arrive as raw UTF-8 or Latin-1, or as RFC 2047
encoded words that split multi-byte characters across words. Every function here returns text
and reports what it had to guess as a short defect string instead of raising.
"""

from __future__ import annotations

import binascii
import codecs
import re
from functools import lru_cache
from urllib.parse import unquote_to_bytes

import charset_normalizer

# What the WHATWG encoding standard (and every browser-based mail client) does: these labels are
# decoded as Windows-1252, because mailers that declare Latin-1 routinely send cp1252's curly
# quotes and euro sign in 0x80-0x9f. Latin-1 stays as the never-failing second choice.
_SUPERSETS: dict[str, tuple[str, ...]] = {
    "iso8859-1": ("cp1252", "latin-1"),
    "cp1252": ("cp1252", "latin-1"),
    # Mailers declare us-ascii and then send 8-bit text anyway: UTF-8 first, then cp1252.
    "ascii": ("ascii", "utf-8", "cp1252", "latin-1"),
    # GB2312 and GBK labels carry GBK/GB18030 characters in practice.
    "gb2312": ("gb18030",),
    "gbk": ("gb18030",),
    # Outlook's Korean label (ks_c_5601-1987) and EUC-KR are really cp949 (Unified Hangul).
    "euc_kr": ("cp949",),
    # Japanese Windows clients label cp932 text as Shift_JIS.
    "shift_jis": ("cp932", "shift_jis"),
    "big5": ("big5hkscs", "cp950"),
    "iso8859-9": ("cp1254", "iso8859-9"),
    "tis-620": ("cp874", "tis-620"),
}

# Labels Python does not know but real mail uses.
_ALIASES: dict[str, str] = {
    "iso-8859-8-i": "iso8859-8",  # Hebrew "logical order" label from Outlook
    "iso-8859-6-i": "iso8859-6",
    "x-sjis": "cp932",
    "x-mac-roman": "mac-roman",
    "x-user-defined": "cp1252",
    "windows-874": "cp874",
    "cp-850": "cp850",
    "x-gbk": "gb18030",
    "utf8mb4": "utf-8",
}

# Codecs that decode bytes to text but are never a real mail charset: a "charset" of
# unicode-escape or idna is a bug or an attack, so it counts as unknown.
_BLOCKED = frozenset(
    {"undefined", "unicode-escape", "raw-unicode-escape", "idna", "punycode", "mbcs", "oem"}
)


_MIN_GUESS_BYTES = 48
_PREFERRED_GUESSES = ("cp1252", "cp1251", "cp1250", "koi8_r")
# Single-byte charsets: text in them is almost never valid multi-byte UTF-8 by accident, so
# bytes declared as one of these that do decode as UTF-8 are UTF-8 with a stale label (mailers
# that re-encode bodies but keep the old Content-Type).
_SINGLE_BYTE_PREFIXES = ("cp125", "iso8859", "latin", "ascii", "koi8", "mac-", "cp8", "cp1252")


def _fits(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


@lru_cache(maxsize=256)
def codecs_for(label: str | None) -> tuple[str, ...] | None:
    """Python codec names to try, in order, for a declared charset label; None when unknown."""
    if not label:
        return None
    name = label.strip().strip("\"'").strip().lower()
    # RFC 2231 allows a language suffix on encoded-word charsets: "utf-8*en".
    name = name.split("*", 1)[0]
    name = _ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if info.name in _BLOCKED or not getattr(info, "_is_text_encoding", True):
        return None
    return _SUPERSETS.get(info.name, (info.name,))


def _guess(data: bytes) -> str | None:
    """charset-normalizer's best guess for undecodable bytes (sampled: it is slow on big input).

    On a few bytes (one encoded word, a short filename) the detector picks exotic code pages
    (b" caf\\xe9" comes back as Urdu cp1006), so short input is read as Windows-1252, the
    commonest legacy charset in Western mail.
    """
    if len(data) < _MIN_GUESS_BYTES:
        return "cp1252" if _fits(data, "cp1252") else "latin-1"
    try:
        matches = list(charset_normalizer.from_bytes(data[:65536]))
    except Exception:  # the detector is a heuristic; never let it break parsing
        return None
    if not matches:
        return None
    # The detector cannot tell cp1250 from cp1252 (or mac-cyrillic from cp1251) on short
    # text and ranks them by language statistics that misfire on French or German mail, so
    # among the equally clean readings the commonest mail charsets win.
    least_chaos = min(match.chaos for match in matches) + 0.01
    clean = {match.encoding for match in matches if match.chaos <= least_chaos}
    preferred = next((codec for codec in _PREFERRED_GUESSES if codec in clean), None)
    return preferred or matches[0].encoding


def decode_text(data: bytes, label: str | None, defects: list[str], what: str = "text") -> str:
    """Decode body or parameter bytes declared as `label`, falling back as real mail requires.

    Order: UTF-8 when a single-byte label is stale, the declared charset (and its real-world
    superset) -> UTF-8 -> charset-normalizer's guess -> UTF-8 with replacement characters.
    Every fallback is noted in `defects`.
    """
    if data.isascii():
        return data.decode("ascii")
    candidates = codecs_for(label)
    if candidates is not None:
        if candidates[0].startswith(_SINGLE_BYTE_PREFIXES) and candidates[0] != "ascii":
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                pass
            else:
                defects.append(f"{what}: declared {label!r} but the bytes are utf-8")
                return text
        for index, codec in enumerate(candidates):
            try:
                text = data.decode(codec)
            except (UnicodeDecodeError, LookupError):
                continue
            if index:
                defects.append(f"{what}: declared {label!r}, decoded as {codec}")
            return text
    if candidates is None or "utf-8" not in candidates:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            if label:
                defects.append(f"{what}: declared charset {label!r} did not fit, decoded as utf-8")
            return text
    guessed = _guess(data)
    if guessed:
        try:
            text = data.decode(guessed, "replace")
        except LookupError:
            pass
        else:
            if label:
                defects.append(f"{what}: declared {label!r} did not fit, guessed {guessed}")
            else:
                defects.append(f"{what}: no charset declared and not utf-8, guessed {guessed}")
            return text
    defects.append(f"{what}: undecodable bytes replaced (declared {label or 'nothing'})")
    return data.decode("utf-8", "replace")


def decode_header_bytes(data: bytes, hint: str | None, defects: list[str], name: str) -> str:
    """Turn a raw header value into text.

    Headers should be ASCII, but real mail carries raw UTF-8 (RFC 6532 or just careless mailers)
    and undeclared Latin-1/cp1252 from old clients. The message's own body charset is the best
    hint for the latter, then cp1252.
    """
    if data.isascii():
        return data.decode("ascii")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for codec in (*(codecs_for(hint) or ()), "cp1252", "latin-1"):
        try:
            text = data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
        defects.append(f"undeclared 8-bit characters in {name} header, decoded as {codec}")
        return text
    return data.decode("latin-1")  # unreachable: latin-1 decodes every byte


# RFC 2047 encoded word. The encoded text runs to the first "?=": broken mailers put spaces and
# lone "?" inside Q-encoded words, which a strict [^?\s]* would refuse.
# Bounded, so a header full of unterminated "=?x?Q?" openers stays linear.
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([QqBb])\?(.{0,2000}?)\?=", re.DOTALL)
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def _decode_word(kind: str, text: str) -> bytes | None:
    raw = text.encode("utf-8")
    if kind in "Qq":
        return binascii.a2b_qp(raw, header=True)
    clean = _B64_JUNK.sub(b"", raw.rstrip(b"="))
    if not clean or len(clean) % 4 == 1 or len(clean) < len(raw.rstrip(b"=")) // 2:
        return None  # mostly junk: keeping the word as written says more than decoding it
    clean += b"=" * (-len(clean) % 4)
    try:
        return binascii.a2b_base64(clean)
    except binascii.Error:
        return None


def decode_rfc2047(value: str, defects: list[str], name: str = "header") -> str:
    """Decode RFC 2047 encoded words in `value`.

    Adjacent encoded words in one charset are joined as bytes before decoding, because mailers
    split a UTF-8 character across two words; whitespace between encoded words is dropped as
    the RFC says; unknown charsets go through the same fallbacks as bodies.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    pending = bytearray()
    pending_charset = ""
    last_end = 0
    previous_was_word = False

    def flush() -> None:
        nonlocal pending_charset
        if pending:
            out.append(decode_text(bytes(pending), pending_charset, defects, f"{name} header"))
            pending.clear()
        pending_charset = ""

    for match in _ENCODED_WORD.finditer(value):
        between = value[last_end : match.start()]
        if between and not (previous_was_word and between.isspace()):
            flush()
            out.append(between)
        charset, kind, encoded = match.groups()
        decoded = _decode_word(kind, encoded)
        if decoded is None:
            flush()
            defects.append(f"broken encoded word in {name} header kept as is")
            out.append(match.group(0))
        else:
            charset = charset.split("*", 1)[0].lower()
            if charset != pending_charset:
                flush()
                pending_charset = charset
            pending += decoded
        last_end = match.end()
        previous_was_word = True
    flush()
    out.append(value[last_end:])
    return "".join(out)


# A parameter list split on ";" outside double quotes; a missing closing quote runs to the end.
_PARAM_TOKEN = re.compile(r'(?:"(?:[^"\\]|\\.)*(?:"|$)|[^;"])+', re.DOTALL)
_RFC2231_NAME = re.compile(r"^(.+?)\*(?:(\d{1,3})\*?)?$")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def _unquote(value: str) -> str:
    value = value.strip()
    if value.startswith('"'):
        value = value[1:-1] if len(value) > 1 and value.endswith('"') else value[1:]
        return _QUOTED_PAIR.sub(r"\1", value)
    return value


# Parameter lists read without a defect, by the header value. The same few recur in every
# mailbox ('text/plain; charset="utf-8"', an Outlook signature's image001.png): 60% of a
# typical import's calls, and reading them was 5% of a parse worker's time. A multipart type
# carries its message's own boundary and is not kept; the cache is emptied when full.
_PARAMS_SEEN: dict[str, tuple[str, dict[str, str]]] = {}
_PARAMS_SEEN_MAX = 4096


def parse_params(value: str, defects: list[str], what: str) -> tuple[str, dict[str, str]]:
    """Split "type/subtype; a=b; c*=utf-8''x" into the lower-cased main value and parameters.

    Handles quoted values with ';' inside, RFC 2231 extended and continued parameters
    (``filename*0*=``), and RFC 2047 words inside quoted values, which Outlook and Gmail put
    in filenames although the RFC forbids it.
    """
    seen = _PARAMS_SEEN.get(value)
    if seen is not None:
        return seen[0], dict(seen[1])
    found: list[str] = []
    main, params = _parse_params(value, found, what)
    if found:
        defects.extend(found)
    elif not main.startswith("multipart/"):
        if len(_PARAMS_SEEN) >= _PARAMS_SEEN_MAX:
            _PARAMS_SEEN.clear()
        _PARAMS_SEEN[value] = (main, dict(params))
    return main, params


def _parse_params(value: str, defects: list[str], what: str) -> tuple[str, dict[str, str]]:
    tokens = _PARAM_TOKEN.findall(value)
    if not tokens:
        return "", {}
    main = tokens[0].strip().lower()
    params: dict[str, str] = {}
    extended: dict[str, dict[int, tuple[str, bool]]] = {}
    for token in tokens[1:]:
        key, sep, raw = token.partition("=")
        key = key.strip().lower()
        if not key or not sep:
            continue
        match = _RFC2231_NAME.match(key)
        if match:
            index = int(match.group(2)) if match.group(2) else 0
            encoded = key.endswith("*")
            extended.setdefault(match.group(1), {})[index] = (_unquote(raw), encoded)
        elif key not in params:
            params[key] = _unquote(raw)
    for key, segments in extended.items():
        charset = ""
        data = bytearray()
        for index in sorted(segments):
            text, encoded = segments[index]
            if encoded:
                if index == min(segments) and text.count("'") >= 2:
                    charset, _, text = text.split("'", 2)
                data += unquote_to_bytes(text)
            else:
                data += text.encode("utf-8")
        params[key] = decode_text(bytes(data), charset or "utf-8", defects, f"{what} {key}")
    for key, text in params.items():
        if "=?" in text:
            params[key] = decode_rfc2047(text, defects, f"{what} {key}")
    return main, params
