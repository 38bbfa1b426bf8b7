"""Body text helpers for the MIME parser: HTML to text, reply snippets, inline-forward headers.

A CRM timeline shows what the sender actually wrote, not the thread history every client quotes
under a reply, so the snippet cuts the quoted part and the signature. Outlook forwards inline
(a "From:/Sent:/To:/Subject:" block in the body instead of an attached message), so finding that
block is the only way to learn who originally wrote a forwarded mail.
"""

from __future__ import annotations

import functools
import html as html_lib
import re
from typing import Any

from mailparser_reply.constants import MAIL_LANGUAGES  # type: ignore[import-untyped]
from mailparser_reply.parser import EmailMessage  # type: ignore[import-untyped]

SNIPPET_LENGTH = 280
_REPLY_SCAN_CHARS = 8000  # a reply starts early; quoted history can be megabytes
_FORWARD_SCAN_LINES = 5000

# lxml refuses NUL and most C0 controls, and refuses str input with an XML encoding declaration
# (Outlook's Word-generated HTML sometimes starts with one).
_LXML_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
# Linear on any input ([^<]* cannot run past the next tag), unlike ".*?</style>".
_TAG = re.compile(r"<(script|style|title)\b[^>]*>[^<]*</\1\s*>|<!--[^>]*-->|<[^>]*>", re.I)
_BLOCK_TAG = re.compile(r"<\s*(?:br|/p|/div|/tr|/li|/h\d)\b[^>]*>", re.I)


@functools.cache
def _inscriptis() -> tuple[Any, Any]:
    """inscriptis and lxml load on first use: only parse workers need them, and the importing
    process keeps its memory for the database work."""
    from inscriptis import get_text  # type: ignore[import-untyped]
    from inscriptis.css_profiles import CSS_PROFILES  # type: ignore[import-untyped]
    from inscriptis.model.config import ParserConfig  # type: ignore[import-untyped]

    # The strict profile does not indent blocks, so quote headers stay at line start for the
    # reply parser and the snippet needs no re-flowing.
    return get_text, ParserConfig(css=CSS_PROFILES["strict"])


def html_to_text(html: str) -> str:
    """Readable text from an HTML body (inscriptis; a crude tag stripper if lxml refuses it)."""
    html = _XML_DECLARATION.sub("", _LXML_UNSAFE.sub("", html), count=1)
    try:
        get_text, config = _inscriptis()
        text = get_text(html, config)
    except Exception:  # lxml/inscriptis failures on broken markup must not lose the body
        text = html_lib.unescape(_TAG.sub("", _BLOCK_TAG.sub("\n", html)))
    return str(text).strip()


def unflow(text: str, delsp: bool) -> str:
    """Undo RFC 3676 format=flowed: soft line breaks (trailing space) and space-stuffing."""
    out: list[str] = []
    pending = ""
    for line in text.split("\n"):
        if line.startswith(" "):
            line = line[1:]
        if line.endswith(" ") and line != "-- ":
            pending += line[:-1] if delsp else line
        else:
            out.append(pending + line)
            pending = ""
    if pending:
        out.append(pending)
    return "\n".join(out)


_FORWARD_MARKER = re.compile(
    r"^[ \t>]*(?:-{2,}[ \t]*(?:original message|forwarded message|ursprüngliche nachricht|"
    r"weitergeleitete nachricht|message d'origine|message transféré|mensaje original|"
    r"mensaje reenviado|messaggio originale|messaggio inoltrato|oorspronkelijk bericht|"
    r"doorgestuurd bericht)[ \t]*-*|begin forwarded message:|"
    r"anfang der weitergeleiteten (?:nachricht|e-mail):|début du message réexpédié[ \t]*:|"
    r"_{10,})[ \t]*$",
    re.IGNORECASE,
)
_FIELD_LINE = re.compile(
    r"^[ \t>]*\*{0,2}([A-Za-zÀ-ÿ][\w -]{0,24}?)\*{0,2}[ \t]*:\*{0,2}[ \t]*(.*)$"
)
# The field names of the header block Outlook puts above a quoted or forwarded message, in the
# languages of its users, by the key they are read as. Languages without a word here (Korean,
# Chinese...) still reach mail-parser-reply's patterns; the ones here are read without it, which
# costs a hundredth of the time (3 ms a message, most of a parse worker's time on such mail).
_HEADER_WORDS: dict[str, tuple[str, ...]] = {
    "from": ("from", "von", "de", "da", "van", "absender", "od", "fra", "från"),
    "date": (
        "sent", "date", "gesendet", "datum", "envoyé", "enviado", "inviato", "verzonden",
        "wysłano", "data", "odesláno", "sendt", "dato", "skickat",
    ),
    "to": ("to", "an", "à", "a", "para", "aan", "empfänger", "do", "komu", "til", "till"),
    "cc": ("cc", "kopie", "dw", "kopi", "kopia"),
    "subject": (
        "subject", "betreff", "objet", "asunto", "oggetto", "onderwerp", "temat", "předmět",
        "emne", "ämne",
    ),
}  # fmt: skip
_FIELD_KEYS: dict[str, str] = {word: key for key, words in _HEADER_WORDS.items() for word in words}


def _header_word(key: str) -> re.Pattern[str]:
    """A line starting with one of `key`'s field names and a colon (Outlook may bold the name)."""
    words = "|".join(map(re.escape, _HEADER_WORDS[key]))
    return re.compile(rf"^[ \t>]*\*{{0,2}}(?:{words})\*{{0,2}}[ \t]*:", re.IGNORECASE)


_BOLD = re.compile(r"\*([^*\n]+)\*")
_OUTLOOK_FROM = _header_word("from")
_DATE_KEY = _header_word("date")


def _field(line: str) -> tuple[str | None, str] | None:
    """(canonical key or None for an unknown field, value) when `line` is "Key: value"."""
    match = _FIELD_LINE.match(line)
    if match is None:
        return None
    key = match.group(1).strip().lower()
    # Gmail's text/plain renders the bold sender as "*Bob* <bob@x>".
    value = _BOLD.sub(r"\1", match.group(2)).strip().strip("*").strip()
    return _FIELD_KEYS.get(key), value


def _read_block(lines: list[str], start: int, skip_blank: bool) -> dict[str, str]:
    """The "Key: value" lines from `start` until a blank or non-field line."""
    fields: dict[str, str] = {}
    last: str | None = None
    i = start
    if skip_blank:
        while i < len(lines) and i < start + 3 and not lines[i].strip(" \t>"):
            i += 1
    for line in lines[i : i + 40]:
        if not line.strip(" \t>"):
            break
        parsed = _field(line)
        if parsed is not None and (parsed[0] is not None or fields):
            key, value = parsed
            last = key
            if key is not None and key not in fields:
                fields[key] = value
            continue
        # Outlook wraps long To:/Cc: lists onto unindented lines ending in ';' or ','.
        if last is not None and (line[:1] in " \t" or fields[last].endswith((";", ","))):
            fields[last] = (fields[last] + " " + line.strip().lstrip(">").strip()).strip()
            continue
        break
    return fields


def inline_forward_headers(text: str) -> dict[str, str] | None:
    """The first inline-forwarded header block in a body's text, or None.

    Recognises Outlook's "-----Original Message-----", Gmail's "---------- Forwarded message
    ---------", Apple's "Begin forwarded message:" (and their German/French/Spanish/Italian/
    Dutch wordings), Outlook's underscore separator, and Outlook's bare block starting with
    "From:" and "Sent:". Keys are from, date, to, cc and subject (those present).
    """
    try:
        lines = text.replace("\r\n", "\n").split("\n", _FORWARD_SCAN_LINES)[:_FORWARD_SCAN_LINES]
        for index, line in enumerate(lines):
            if _FORWARD_MARKER.match(line):
                fields = _read_block(lines, index + 1, skip_blank=True)
                if "from" in fields or "subject" in fields:
                    return fields
            elif _OUTLOOK_FROM.match(line):
                fields = _read_block(lines, index, skip_blank=False)
                if (
                    "from" in fields
                    and "date" in fields
                    and ("to" in fields or "subject" in fields)
                ):
                    return fields
    except Exception:  # a helper for hints only: never break the caller
        return None
    return None


_QUOTE_START = re.compile(
    r"^[ \t]*(?:On\b.{0,300}\bwrote:|Am\b.{0,300}\bschrieb\b.{0,200}:|Le\b.{0,300}\ba écrit ?:|"
    r"El\b.{0,300}\bescribió:|Il\b.{0,300}\bha scritto:|Op\b.{0,300}\bschreef\b.{0,200}:|"
    r"-- ?|Sent from my .{1,40}|Get Outlook for .{1,40}|Von meinem .{1,60} gesendet\.?)[ \t]*$",
    re.IGNORECASE,
)


# mail-parser-reply's "<someone> wrote:" patterns for 13 languages, compiled once and tried
# only on lines ending in a colon: its EmailReplyParser rebuilds and runs all of them over the
# whole body (0.3-1 ms per message, more than this parser's entire budget).
_LIBRARY_WROTE = re.compile(
    "|".join(
        f"(?:{language['wrote_header']})"
        for language in MAIL_LANGUAGES.values()
        if language.get("wrote_header")
    ),
    re.IGNORECASE,
)
# Two "Key: value" lines in a row: a header block in some language ours may not know.
_HEADER_PAIR = re.compile(r"^[ \t>*]*[^\W\d][\w .-]{0,25}:.*\n[ \t>*]*[^\W\d][\w .-]{0,25}:", re.M)
_LIBRARY_LANGUAGES = tuple(name for name in MAIL_LANGUAGES if name != "david")
_LIBRARY_WINDOW = 1200


def _quote_starts(lines: list[str], index: int) -> bool:
    line = lines[index]
    if _QUOTE_START.match(line) or _FORWARD_MARKER.match(line):
        return True
    tail = line.rstrip()
    # Its patterns nest lazy ".+?" groups: quadratic on long lines, and a wrote-line is short.
    if tail.endswith((":", "：")) and len(tail) <= 400 and _LIBRARY_WROTE.match(tail):
        return True
    # Gmail wraps "On <date>, <name> <address>\nwrote:" over two lines in text/plain.
    wrapped = index + 1 < len(lines) and line.lstrip().startswith(("On ", "Am ", "Le "))
    if wrapped and _QUOTE_START.match(f"{line} {lines[index + 1]}"):
        return True
    return bool(
        _OUTLOOK_FROM.match(line) and any(_DATE_KEY.match(n) for n in lines[index + 1 : index + 4])
    )


def strip_quoted(text: str, limit: int | None = None) -> str:
    """The text above the first quote header, forward block or signature, without '>' lines;
    with `limit`, its first `limit` characters, read no further than they need (a new email
    has no quote header, and every line of it was tried as one)."""
    lines = text.replace("\r\n", "\n").split("\n")
    kept: list[str] = []
    length = -1  # of the kept lines joined
    for index, line in enumerate(lines):
        if limit is not None and length >= limit:
            break
        if _quote_starts(lines, index):
            break
        if not line.lstrip().startswith(">"):
            kept.append(line)
            length += len(line) + 1
    joined = "\n".join(kept)
    return joined if limit is None else joined[:limit]


def _library_reply(text: str) -> str:
    """mail-parser-reply's latest reply for a short window; the window itself if it fails.

    Used only when the window still holds a "Key: value" pair, i.e. possibly a header block
    in a language the line rules above do not know. Its signature trimming is bypassed: it
    cuts at any line starting with "Thanks," or "- " ("Thanks, that works" would end the
    reply), so closings are cut by `_cut_closing` instead.
    """
    try:
        message = EmailMessage(
            text=text, languages=list(_LIBRARY_LANGUAGES), keep_hyphen_lists=True
        )
        replies = message.read().replies
        return str(replies[0].full_body) if replies else text
    except Exception:  # the library is regex heuristics; keep our own stripping
        return text


# A line that is only a closing ("Best regards," / "Mit freundlichen Grüßen" / "Cheers"): the
# signature starts there.
_CLOSING = re.compile(
    r"^[ \t]*(?:(?:best|kind|warm|many)(?: regards)?|regards|thanks?(?: you| again)?(?: and regards)?|"
    r"cheers|all the best|br|(?:mit )?(?:freundlichen|besten|herzlichen|viele) grüßen?|"
    r"viele grüße|lg|cordialement|bien à vous|bien cordialement|saludos|un saludo|"
    r"cordiali saluti|met vriendelijke groet(?:en)?)[ \t]*[,.!]?[ \t]*$",
    re.IGNORECASE,
)


def _cut_closing(text: str) -> str:
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if index and _CLOSING.match(line):
            return "\n".join(lines[:index])
    return text


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.6 else cut).rstrip()


def reply_snippet(text: str, limit: int = SNIPPET_LENGTH) -> str:
    """About `limit` characters of what the sender wrote: no quoted history, no signature."""
    head = text[:_REPLY_SCAN_CHARS]
    reply = strip_quoted(head, _LIBRARY_WINDOW)
    if _HEADER_PAIR.search(reply):
        reply = _library_reply(reply)
    collapsed = " ".join(_cut_closing(reply).split())
    if not collapsed:
        # A bare forward or a fully quoted message: its start is still the best summary.
        start = "\n".join(line.lstrip("> ") for line in head[: limit * 8].split("\n"))
        collapsed = " ".join(start.split())
    return _shorten(collapsed, limit)
