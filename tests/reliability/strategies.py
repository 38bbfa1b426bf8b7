"""Hypothesis strategies for hostile mail: headers, MIME structures and iCalendar.

They build inputs the way broken mail really is broken (folded and unfolded headers, RFC 2047
words with unknown charsets, nested multiparts whose boundaries are missing or wrong, transfer
encodings that do not decode, message/rfc822 parts holding more of the same; calendars with
broken lines, impossible dates, wild RRULEs and unknown time zones), plus raw noise. The fuzz
tests and bench/fuzz_*.py share them, so the long form explores the same space as CI.
"""

from __future__ import annotations

from hypothesis import strategies as st

CHARSETS = ["utf-8", "iso-8859-1", "windows-1252", "iso-2022-jp", "koi8-r", "gb2312",
            "unicode-escape", "utf-7", "x-unknown", "", "utf-16", "big5"]  # fmt: skip
ENCODINGS = ["7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "bogus", ""]
SUBTYPES = ["mixed", "alternative", "related", "signed", "report", "digest", "x-weird"]
LEAF_TYPES = ["text/plain", "text/html", "text/calendar; method=REQUEST", "application/pdf",
              "image/png", "application/ms-tnef", "application/octet-stream", "text/x-vcard",
              "message/delivery-status", "text", "/", "application/ics"]  # fmt: skip
HEADER_NAMES = ["From", "To", "Cc", "Bcc", "Sender", "Reply-To", "Subject", "Date",
                "Message-ID", "In-Reply-To", "References", "List-Id", "Auto-Submitted",
                "Precedence", "Received", "X-Mailer", "Thread-Index", "MIME-Version"]  # fmt: skip
NEWLINES = st.sampled_from([b"\r\n", b"\n"])

noise = st.binary(max_size=200)
words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40).map(
    lambda s: s.encode("utf-8")
)


@st.composite
def encoded_word(draw: st.DrawFn) -> bytes:
    charset = draw(st.sampled_from(CHARSETS)).encode()
    mode = draw(st.sampled_from([b"B", b"Q", b"b", b"X"]))
    return b"=?" + charset + b"?" + mode + b"?" + draw(st.binary(max_size=30)) + b"?="


@st.composite
def address(draw: st.DrawFn) -> bytes:
    local = draw(st.sampled_from([b"anna", b"c0", b"", b"a.b+c", b'"q u"', b"\xc3\xa9"]))
    domain = draw(st.sampled_from([b"northwind-supplies.com", b"client1.example", b"",
                                   b"xn--zz--.example", b"[127.0.0.1]", b"a..b"]))  # fmt: skip
    name = draw(st.one_of(st.just(b""), words, encoded_word()))
    shape = draw(st.integers(0, 3))
    bare = local + b"@" + domain
    return [bare, name + b" <" + bare + b">", b'"' + name + b'" <' + bare, name][shape]


@st.composite
def header_value(draw: st.DrawFn, name: str) -> bytes:
    if name in ("From", "To", "Cc", "Bcc", "Sender", "Reply-To"):
        parts = draw(st.lists(address(), max_size=4))
        return draw(st.sampled_from([b", ", b",", b"; ", b" "])).join(parts)
    if name == "Date":
        return draw(st.sampled_from([b"Mon, 02 Nov 2026 09:00:00 +0100", b"2 Nov 26 9:00 GMT",
                                     b"Mon, 99 Foo 2024 25:61:61 +9999", b"", b"yesterday",
                                     b"Tue, 31 Feb 2026 10:00:00 -2400", b"0"]))  # fmt: skip
    if name in ("Message-ID", "In-Reply-To", "References"):
        ids = draw(st.lists(st.sampled_from([b"<a@b>", b"<x y@z>", b"<>", b"no-brackets@h",
                                             b"<" + b"n" * 600 + b"@h>", b"<\x00@h>"]),
                            max_size=5))  # fmt: skip
        return b" ".join(ids)
    return draw(st.one_of(words, encoded_word(), noise))


@st.composite
def header_block(draw: st.DrawFn, extra: list[bytes] | None = None) -> bytes:
    newline = draw(NEWLINES)
    lines = []
    for name in draw(st.lists(st.sampled_from(HEADER_NAMES), min_size=1, max_size=10)):
        value = draw(header_value(name))
        if draw(st.booleans()) and len(value) > 10:  # folded somewhere, maybe badly
            cut = draw(st.integers(1, len(value) - 1))
            value = value[:cut] + newline + draw(st.sampled_from([b" ", b"\t", b""])) + value[cut:]
        lines.append(name.encode() + draw(st.sampled_from([b": ", b":", b" : "])) + value)
    lines += extra or []
    return newline.join(lines) + newline


@st.composite
def leaf(draw: st.DrawFn) -> bytes:
    content_type = draw(st.sampled_from(LEAF_TYPES)).encode()
    charset = draw(st.sampled_from(CHARSETS)).encode()
    encoding = draw(st.sampled_from(ENCODINGS)).encode()
    disposition = draw(st.sampled_from([b"", b"attachment; filename=a.pdf", b"inline",
                                        b"attachment; filename*=utf-8''%E2%82%AC.ics",
                                        b"attachment; filename*0*=x''%ZZ; filename*1=y"]))  # fmt: skip
    body = draw(st.one_of(words, noise, st.sampled_from([b"SGVsbG8=", b"=C3=A9=\r\nx", b"=ZZ",
                                                         b"begin 644 a\n#86)C\n`\nend"])))  # fmt: skip
    head = [b"Content-Type: " + content_type + b"; charset=" + charset,
            b"Content-Transfer-Encoding: " + encoding]  # fmt: skip
    if disposition:
        head.append(b"Content-Disposition: " + disposition)
    return b"\r\n".join(head) + b"\r\n\r\n" + body


@st.composite
def entity(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A MIME entity: a leaf, a multipart (its boundary right, missing, wrong or unclosed) or
    a message/rfc822 part holding a whole message."""
    kind = draw(st.sampled_from(["leaf", "leaf", "multipart", "rfc822"] if depth < 4 else ["leaf"]))
    if kind == "leaf":
        return draw(leaf())
    if kind == "rfc822":
        inner = draw(message(depth + 1))
        return b"Content-Type: message/rfc822\r\n\r\n" + inner
    boundary = draw(st.sampled_from([b"b1", b"=_Part_0", b"", b"a" * 80, b"--", b'b"x']))
    declared = draw(st.sampled_from([boundary, boundary, b"other", b""]))
    children = draw(st.lists(entity(depth + 1), max_size=4))
    body = b"".join(b"\r\n--" + boundary + b"\r\n" + child for child in children)
    if draw(st.booleans()):
        body += b"\r\n--" + boundary + b"--\r\n"
    subtype = draw(st.sampled_from(SUBTYPES)).encode()
    quoted = draw(st.sampled_from([b'"' + declared + b'"', declared]))
    head = b"Content-Type: multipart/" + subtype + b"; boundary=" + quoted + b"\r\n"
    return head + b"\r\n" + draw(st.sampled_from([b"", b"preamble\r\n"])) + body


@st.composite
def message(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A whole message: headers, then a MIME entity (its own headers joined to the message's)."""
    body = draw(entity(depth))
    headers = draw(header_block())
    if draw(st.integers(0, 9)) == 0:
        body = body.replace(b"\r\n\r\n", b"\r\n", 1)  # no blank line after the headers
    return headers + body


emails = st.one_of(message(), noise, message().map(lambda m: m[: len(m) // 2]))


# -- iCalendar --------------------------------------------------------------------------------

DATES = [b"20261203T090000Z", b"20261203T090000", b"20261203", b"20261303T250000Z",
         b"2026-12-03T09:00:00Z", b"", b"99999999T999999", b"20260229T100000Z",
         b"20261203T090000+0100", b"1601-01-01"]  # fmt: skip
TZIDS = [b"Europe/Berlin", b"W. Europe Standard Time", b"(UTC+01:00) Amsterdam, Berlin",
         b"Mars/Olympus", b"", b"America/New_York", b"Customized Time Zone"]  # fmt: skip
RRULES = [b"FREQ=WEEKLY;BYDAY=MO,WE", b"FREQ=DAILY;COUNT=1000000", b"FREQ=SECONDLY",
          b"FREQ=MONTHLY;BYDAY=-1FR;UNTIL=20271231T000000Z", b"FREQ=YEARLY;BYMONTH=13",
          b"FREQ=WEEKLY;INTERVAL=0", b"FREQ=;BYDAY=XX", b"COUNT=3", b"FREQ=MINUTELY;BYSETPOS=400",
          b"FREQ=DAILY;UNTIL=19000101"]  # fmt: skip


@st.composite
def vevent(draw: st.DrawFn) -> list[bytes]:
    tz = draw(st.sampled_from(TZIDS))
    dtparam = draw(st.sampled_from([b"", b";TZID=" + tz, b";VALUE=DATE", b';TZID="' + tz + b'"']))
    lines = [b"BEGIN:VEVENT"]
    optional = {
        b"UID:": draw(st.one_of(words, st.just(b"u" * 600))),
        b"DTSTART" + dtparam + b":": draw(st.sampled_from(DATES)),
        b"DTEND" + dtparam + b":": draw(st.sampled_from(DATES)),
        b"DURATION:": draw(st.sampled_from([b"PT1H", b"P1D", b"-PT5M", b"PXYZ"])),
        b"RRULE:": draw(st.sampled_from(RRULES)),
        b"EXDATE" + dtparam + b":": b",".join(draw(st.lists(st.sampled_from(DATES), max_size=3))),
        b"RECURRENCE-ID" + dtparam + b":": draw(st.sampled_from(DATES)),
        b"SUMMARY:": draw(words),
        b"ORGANIZER;CN=": draw(words) + b":mailto:" + draw(address()),
        b"ATTENDEE;PARTSTAT=ACCEPTED:mailto:": draw(address()),
        b"SEQUENCE:": draw(st.sampled_from([b"0", b"-3", b"x", b"99999999999999999999"])),
        b"STATUS:": draw(st.sampled_from([b"CONFIRMED", b"CANCELLED", b"?"])),
    }
    for name, value in optional.items():
        if draw(st.booleans()):
            lines.append(name + value)
    if draw(st.booleans()):
        lines.append(b"END:VEVENT")
    return lines


@st.composite
def vtimezone(draw: st.DrawFn) -> list[bytes]:
    return [b"BEGIN:VTIMEZONE", b"TZID:" + draw(st.sampled_from(TZIDS)),
            b"BEGIN:STANDARD", b"DTSTART:" + draw(st.sampled_from(DATES)),
            b"TZOFFSETFROM:" + draw(st.sampled_from([b"+0200", b"+9999", b"x"])),
            b"TZOFFSETTO:+0100", b"RRULE:" + draw(st.sampled_from(RRULES)),
            b"END:STANDARD", b"END:VTIMEZONE"]  # fmt: skip


@st.composite
def icalendar(draw: st.DrawFn) -> bytes:
    lines = [b"BEGIN:VCALENDAR", b"VERSION:2.0",
             b"METHOD:" + draw(st.sampled_from([b"REQUEST", b"CANCEL", b"REPLY", b"PUBLISH", b""]))]  # fmt: skip
    if draw(st.booleans()):
        lines += draw(vtimezone())
    for event in draw(st.lists(vevent(), min_size=1, max_size=3)):
        lines += event
    if draw(st.booleans()):
        lines.append(b"END:VCALENDAR")
    newline = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    text = newline.join(lines) + newline
    if draw(st.booleans()):  # broken folding: a line cut anywhere, continued or not
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + newline + draw(st.sampled_from([b" ", b"\t", b""])) + text[cut:]
    if draw(st.integers(0, 4)) == 0:
        text = text[: draw(st.integers(0, len(text)))]  # truncated
    return text


calendars = st.one_of(icalendar(), noise, icalendar().map(lambda c: c.replace(b":", b";", 3)))


@st.composite
def invitation(draw: st.DrawFn) -> bytes:
    """An email carrying a (maybe broken) calendar part, as capture meets invitations."""
    headers = draw(header_block())
    return (
        headers
        + b"Content-Type: text/calendar; method=REQUEST; charset=utf-8\r\n"
        + b"Content-Transfer-Encoding: "
        + draw(st.sampled_from([b"7bit", b"base64", b"quoted-printable"]))
        + b"\r\n\r\n"
        + draw(icalendar())
    )
