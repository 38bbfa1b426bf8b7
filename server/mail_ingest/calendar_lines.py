"""iCalendar bytes -> a bounded tree of components, whatever the producer got wrong.

`icalendar` parses strictly and slowly for this job: a 10,000-attendee invite takes it about half a
second, it raises on a missing END line or one stray non-property line, and it keeps every one of
a hostile file's properties. Capture reads invites from years of mail, so this module does only
the RFC 5545 syntax (unfolding, content lines, parameters, BEGIN/END nesting) by hand, tolerates
what real producers write, and bounds everything it keeps; `calendar.py` reads the values.

Quirks handled here, each noted on the result so an admin can see what was repaired:

* Folding happens at octets (RFC 5545 3.1), and Outlook folds inside UTF-8 sequences: lines are
  unfolded as bytes, before decoding.
* Windows exports written as UTF-16 (with a BOM), and Exchange/Lotus files in Windows-1252.
* Bare LF or CR line ends (Apple, Google, Unix tools) instead of CRLF.
* RFC 6868 caret escapes in parameter values (Apple writes `CN=^'Sam^'`).
* Missing or mismatched END lines (truncated mails, hand-made files), and garbage lines between
  properties: skipped, never fatal.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

__all__ = [
    "MAX_ATTENDEES",
    "MAX_EVENTS",
    "MAX_INPUT_BYTES",
    "Component",
    "Prop",
    "decode_calendar",
    "read_components",
]

MAX_INPUT_BYTES = 10 * 1024 * 1024
MAX_EVENTS = 500  # VEVENTs kept per VCALENDAR
MAX_ATTENDEES = 2000  # ATTENDEE lines kept per component
MAX_SAME_PROPERTY = 1000  # any other property repeated more often is noise or an attack
MAX_CHILDREN = 1000  # sub-components (VALARM, STANDARD...) kept per component
MAX_DEPTH = 8  # VCALENDAR > VEVENT > VALARM is 3; anything much deeper is not a calendar
MAX_LINES = 20_000  # property lines read per component; past that only BEGIN/END are looked at

_UNFOLD = re.compile(rb"(?:\r\n|\n|\r)[ \t]")
_UNFOLD_TEXT = re.compile(r"(?:\r\n|\n|\r)[ \t]")
_CALENDAR_START = re.compile(rb"^[ \t]*BEGIN[ \t]*:[ \t]*V(?:CALENDAR|EVENT)\b", re.I | re.M)
_CARET = re.compile(r"\^[n^']")
_CARET_MAP = {"^n": "\n", "^^": "^", "^'": '"'}


@dataclass(slots=True)
class Prop:
    """One content line: upper-case name, parameters (upper-case names), raw value."""

    name: str
    params: dict[str, str]
    value: str


@dataclass(slots=True)
class Component:
    """A BEGIN/END block: its properties by name (in file order), sub-components, what was cut."""

    name: str
    props: dict[str, list[Prop]] = field(default_factory=dict)
    children: list[Component] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # property or component name -> count
    unclosed: bool = False
    events: int = 0  # VEVENT children, counted so the cap check stays O(1)
    lines: int = 0  # property lines read

    def first(self, name: str) -> Prop | None:
        found = self.props.get(name)
        return found[0] if found else None

    def all(self, name: str) -> list[Prop]:
        return self.props.get(name, [])

    def value(self, name: str) -> str:
        prop = self.first(name)
        return prop.value if prop is not None else ""


def decode_calendar(data: bytes, notes: list[str]) -> str | None:
    """Unfolded text of `data`, or None when it does not look like iCalendar at all."""
    text = _decoded(data, notes)
    if text is not None and "\x00" in text:
        # iCalendar allows no control character but tab in its text; PostgreSQL stores no NUL.
        notes.append("NUL characters removed")
        text = text.replace("\x00", "")
    return text


def _decoded(data: bytes, notes: list[str]) -> str | None:
    if len(data) > MAX_INPUT_BYTES:
        data = data[:MAX_INPUT_BYTES]
        notes.append(f"input capped at {MAX_INPUT_BYTES // (1024 * 1024)} MB; the rest was ignored")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        # Windows tools (and some Outlook "Save as" exports) write UTF-16 with a BOM.
        text = data.decode("utf-16", errors="replace")
        notes.append("UTF-16 calendar")
        return _UNFOLD_TEXT.sub("", text) if re.search(r"(?im)^\s*BEGIN\s*:\s*V", text) else None
    if _CALENDAR_START.search(data) is None:
        return None
    data = _UNFOLD.sub(b"", data)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # RFC 5545 says UTF-8; old Exchange and Lotus Notes exports are Windows-1252.
        notes.append("not UTF-8: read as Windows-1252")
        return data.decode("cp1252", errors="replace")


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"' and value.count('"') == 2:
        value = value[1:-1]
    elif '"' in value:
        # A multi-valued parameter ("a","b"): keep the values, comma-separated, without quotes.
        value = ",".join(part.strip().strip('"') for part in _split_quoted(value, ","))
    if "^" in value:
        value = _CARET.sub(lambda m: _CARET_MAP[m.group(0)], value)
    return value


def _split_quoted(text: str, sep: str) -> list[str]:
    """`text` split at `sep` outside double quotes."""
    parts: list[str] = []
    quoted = False
    start = 0
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _parse_line(line: str) -> Prop | None:
    """One unfolded content line, or None when it is not one (garbage, blank)."""
    colon = line.find(":")
    if colon < 0:
        return None
    head = line[:colon]
    if '"' in head:
        # A quoted parameter value may hold ':' (ALTREP="http://...", CN="Smith: Sales").
        quoted = False
        colon = -1
        for i, ch in enumerate(line):
            if ch == '"':
                quoted = not quoted
            elif ch == ":" and not quoted:
                colon = i
                break
        if colon < 0:
            return None
        head = line[:colon]
        pieces = _split_quoted(head, ";")
    else:
        if line.startswith("//", colon + 1) and "=" in head and line.find(":", colon + 1) > 0:
            # An unquoted URI in a parameter (Exchange: TZID=tzone://Microsoft/Utc): its colon
            # is not the one that starts the value.
            colon = line.find(":", colon + 1)
            head = line[:colon]
        pieces = head.split(";")
    name = pieces[0].strip()
    if not (name.isascii() and name.replace("-", "").isalnum() and len(name) <= 100):
        return None
    params: dict[str, str] = {}
    for piece in pieces[1:]:
        key, sep, raw = piece.partition("=")
        key = key.strip().upper()
        if sep and key and key not in params:
            params[key] = _unquote(raw.strip())
    return Prop(name.upper(), params, line[colon + 1 :])


def read_components(text: str, notes: list[str]) -> list[Component]:
    """The top-level components of `text` (normally VCALENDARs), bounded and repaired.

    A VEVENT outside any VCALENDAR (some exporters omit the wrapper) is returned at top level.
    """
    top: list[Component] = []
    stack: list[Component] = []
    skipping = 0  # depth inside a component that is being dropped (over a cap or too deep)
    skipped_name = ""
    bad_lines = 0
    mismatched = 0
    # Lazily, line by line: a 10 MB file of two-byte lines would be a 250 MB list.
    for raw_line in io.StringIO(text.replace("\r\n", "\n").replace("\r", "\n"), newline="\n"):
        line = raw_line.rstrip("\n")
        if not line or line.isspace():
            continue
        current = stack[-1] if stack else None
        if skipping or (current is not None and current.lines >= MAX_LINES):
            # Cheap path for dropped or overfull components: only BEGIN/END lines matter.
            start = line[:5].upper()
            if start != "BEGIN" and start[:3] != "END":
                if not skipping and current is not None:
                    kind = "ATTENDEE" if line[:8].upper() == "ATTENDEE" else "LINES"
                    current.dropped[kind] = current.dropped.get(kind, 0) + 1
                continue
        prop = _parse_line(line)
        if prop is None:
            bad_lines += 1
            continue
        if prop.name == "BEGIN":
            name = prop.value.strip().upper()
            if skipping:
                skipping += 1
                continue
            if current is not None and _over_child_cap(current, name):
                current.dropped[name] = current.dropped.get(name, 0) + 1
                skipping, skipped_name = 1, name
                continue
            if len(stack) >= MAX_DEPTH:
                skipping, skipped_name = 1, name
                _note(notes, f"components nested deeper than {MAX_DEPTH}: ignored")
                continue
            component = Component(name)
            if current is not None and name == "VEVENT":
                current.events += 1
            (current.children if current is not None else top).append(component)
            stack.append(component)
        elif prop.name == "END":
            name = prop.value.strip().upper()
            if skipping:
                skipping -= 1
                if skipping == 0 and name != skipped_name:
                    mismatched += 1
                continue
            if any(c.name == name for c in stack):
                # END of an outer component closes the inner ones that never ended.
                while stack:
                    closing = stack.pop()
                    if closing.name == name:
                        break
                    closing.unclosed = True
                    mismatched += 1
            else:
                mismatched += 1
        elif current is not None and not skipping:
            current.lines += 1
            _add_prop(current, prop)
        elif not skipping:
            bad_lines += 1
    for component in stack:
        component.unclosed = True
    if stack:
        notes.append("calendar ends without END:" + stack[0].name + " (truncated?)")
    if mismatched:
        notes.append(f"{mismatched} mismatched END line(s) repaired")
    if bad_lines:
        notes.append(f"{bad_lines} line(s) that are not iCalendar properties ignored")
    return top


def _note(notes: list[str], note: str) -> None:
    if note not in notes:
        notes.append(note)


def _over_child_cap(parent: Component, name: str) -> bool:
    if name == "VEVENT":
        return parent.events >= MAX_EVENTS
    return len(parent.children) >= MAX_CHILDREN


def _add_prop(component: Component, prop: Prop) -> None:
    found = component.props.get(prop.name)
    if found is None:
        component.props[prop.name] = [prop]
        return
    cap = MAX_ATTENDEES if prop.name == "ATTENDEE" else MAX_SAME_PROPERTY
    if len(found) >= cap:
        component.dropped[prop.name] = component.dropped.get(prop.name, 0) + 1
    else:
        found.append(prop)
