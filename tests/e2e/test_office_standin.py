"""Both Office.js stand-ins (the tests' and the pane preview's) offer nothing Outlook does not:
every object, method and property they expose exists, with the same number of parameters, in
Microsoft's @types/office-js (node_modules/@types/office-js/index.d.ts).

The declarations are read with a small parser of that file: the `Office` namespace's interfaces
(members at one indentation, `extends` followed), its enums and its functions. A method matches
when one of its overloads takes as many parameters as the stand-in's function declares.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.conftest import HOSTS, ROOT

TYPES = ROOT / "node_modules" / "@types" / "office-js" / "index.d.ts"
STANDINS = {
    "tests": ROOT / "tests" / "e2e" / "office_standin.js",
    "preview": ROOT / "static" / "preview" / "office-standin.js",
}

MEMBER = re.compile(r"^(?P<name>[A-Za-z_$][\w$]*)(?P<optional>\?)?\s*(?P<kind>[(:<])")


@dataclass
class Interface:
    extends: list[str] = field(default_factory=list)
    properties: set[str] = field(default_factory=set)
    methods: dict[str, set[int]] = field(default_factory=dict)  # name -> parameter counts


@dataclass
class OfficeTypes:
    interfaces: dict[str, Interface]
    enums: dict[str, set[str]]
    functions: dict[str, set[int]]

    def members(self, name: str) -> Interface:
        """The interface with everything it inherits."""
        merged = Interface()
        for found in self._chain(name):
            merged.properties |= found.properties
            for method, counts in found.methods.items():
                merged.methods.setdefault(method, set()).update(counts)
        return merged

    def _chain(self, name: str) -> Iterator[Interface]:
        found = self.interfaces[name]
        yield found
        for parent in found.extends:
            yield from self._chain(parent.removeprefix("Office."))


def parameter_count(signature: str) -> int:
    """Parameters of `name(a: X, b?: (r: Y) => void): Z` — commas at depth 0 of the list."""
    start = signature.index("(")
    depth, count, seen_any, i = 0, 0, False, start + 1
    text = signature.replace("=>", "->")
    while i < len(text):
        char = text[i]
        if char in "([{<":
            depth += 1
        elif char in ")]}>":
            if depth == 0:
                break
            depth -= 1
        elif char == "," and depth == 0:
            count += 1
        elif not char.isspace():
            seen_any = True
        i += 1
    return count + 1 if seen_any else 0


@cache
def office_types() -> OfficeTypes:
    lines = TYPES.read_text(encoding="utf-8").splitlines()
    interfaces: dict[str, Interface] = {}
    enums: dict[str, set[str]] = {}
    functions: dict[str, set[int]] = {}
    in_office = False
    current: Interface | None = None
    enum: set[str] | None = None
    pending = ""
    for raw in lines:
        if raw.startswith("declare namespace Office {"):
            in_office = True
            continue
        if in_office and raw.startswith("}"):
            in_office, current, enum = False, None, None
            continue
        if not in_office:
            continue
        stripped = raw.strip()
        if stripped.startswith(("*", "/*", "//")) or not stripped:
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        if enum is not None:
            if stripped.startswith("}"):
                enum = None
            else:
                enum.add(re.split(r"[\s=,]", stripped, maxsplit=1)[0])
            continue
        declared = re.match(r"(?:export\s+)?enum (\w+)", stripped)
        if declared:
            enum = enums.setdefault(declared.group(1), set())
            continue
        if indent == 4:
            pending = ""
            header = re.match(r"interface (\w+)(?:<[^>]*>)?(?: extends ([^{]+))?\s*\{", stripped)
            if header:
                current = interfaces.setdefault(header.group(1), Interface())
                if header.group(2):
                    current.extends += [p.strip() for p in header.group(2).split(",")]
            else:
                current = None
                function = re.match(r"function (\w+)\s*(?:<[^>]*>)?\(", stripped)
                if function:
                    functions.setdefault(function.group(1), set()).add(parameter_count(stripped))
            continue
        # Members sit at 8 spaces (a few at 9: the file is hand-formatted).
        if current is None or (not 8 <= indent < 12 and not pending):
            continue
        pending = f"{pending} {stripped}" if pending else stripped
        if pending.count("(") > pending.count(")"):
            continue  # a signature spread over lines
        member = MEMBER.match(pending)
        if member:
            if member.group("kind") in "(<":
                current.methods.setdefault(member.group("name"), set()).add(
                    parameter_count(pending)
                )
            else:
                current.properties.add(member.group("name"))
        pending = ""
    return OfficeTypes(interfaces, enums, functions)


def test_the_parser_reads_what_the_pane_relies_on() -> None:
    types = office_types()
    recipients = types.members("Recipients")
    assert recipients.methods["addAsync"] == {2, 3}
    assert types.members("MessageCompose").methods["addHandlerAsync"] == {3, 4}
    assert "internetMessageId" in types.members("MessageRead").properties
    assert "itemType" in types.members("MessageRead").properties  # inherited from Item
    assert {"ItemChanged", "RecipientsChanged", "OfficeThemeChanged"} <= types.enums["EventType"]
    assert types.functions["onReady"] == {1}


# What each object the stand-ins expose is, in Microsoft's names.
SURFACES = {
    "Office.context": "Context",
    "Office.context.mailbox": "Mailbox",
    "Office.context.mailbox.userProfile": "UserProfile",
    "Office.context.mailbox.diagnostics": "Diagnostics",
    "Office.context.requirements": "RequirementSetSupport",
    "Office.context.diagnostics": "ContextInformation",
    "Office.context.ui": "UI",
    "Office.context.officeTheme": "OfficeTheme",
}
ITEMS = {
    ("message", "read"): {
        "": "MessageRead",
        "body": "Body",
        "from": "EmailAddressDetails",
        "to.0": "EmailAddressDetails",
    },
    ("message", "compose"): {
        "": "MessageCompose",
        "body": "Body",
        "to": "Recipients",
        "cc": "Recipients",
        "bcc": "Recipients",
        "subject": "Subject",
        "from": "From",
        "internetHeaders": "InternetHeaders",
    },
    ("appointment", "read"): {
        "": "AppointmentRead",
        "organizer": "EmailAddressDetails",
        "requiredAttendees.0": "EmailAddressDetails",
    },
    ("appointment", "compose"): {
        "": "AppointmentCompose",
        "requiredAttendees": "Recipients",
        "optionalAttendees": "Recipients",
        "organizer": "Organizer",
        "subject": "Subject",
    },
}
ITEM_SPEC = {
    "subject": "Quote",
    "from": {"name": "Clara Jensen", "address": "clara@brightline-dental.co.uk"},
    "to": [{"name": "Anna", "address": "anna@northwind-supplies.com"}],
    "cc": [],
    "internetMessageId": "<q1@brightline-dental.co.uk>",
    "conversationId": "c1",
    "dateTimeCreated": "2026-11-20T09:30:00Z",
}

# Reads an object's own members: name -> ["function", length] or ["value", null].
DESCRIBE = """([path, value]) => {
  const target = path.split('.').reduce((o, k) => (o == null ? o : o[k]), value ?? window);
  if (target == null) return null;
  const out = {};
  for (const name of Object.keys(target)) {
    if (name.startsWith('__')) continue;
    const member = target[name];
    out[name] = typeof member === 'function' ? ['function', member.length] : ['value', null];
  }
  return out;
}"""


def standin_page(browser: Browser, which: str) -> Page:
    """A blank page running one stand-in as a current Outlook with the dark theme."""
    page = browser.new_page()
    config = {"sets": HOSTS["current"], "theme": {"isDarkTheme": True}}
    page.set_content("<!doctype html><title>stand-in</title>")
    page.evaluate(
        """config => {
          window.__officeConfig = {...config, item: null};
          window.RapportPreview = {host: {sets: config.sets, theme: config.theme}, item: null,
                                   user: {name: 'A', address: 'a@example.com'}};
        }""",
        config,
    )
    page.add_script_tag(content=STANDINS[which].read_text())
    return page


def mismatches(described: dict[str, Any] | None, interface: str) -> list[str]:
    assert described is not None, f"the stand-in has no {interface}"
    declared = office_types().members(interface)
    problems = []
    for name, (kind, length) in described.items():
        if kind == "function":
            counts = declared.methods.get(name)
            if counts is None:
                problems.append(f"{interface}.{name}() is not in @types/office-js")
            elif length not in counts:
                problems.append(
                    f"{interface}.{name}() takes {length} parameters; Office.js: {sorted(counts)}"
                )
        elif name not in declared.properties:
            problems.append(f"{interface}.{name} is not a property in @types/office-js")
    return problems


@pytest.mark.parametrize("which", list(STANDINS))
def test_every_api_a_stand_in_offers_is_office_js_with_the_same_signature(
    browser: Browser, which: str
) -> None:
    page = standin_page(browser, which)
    problems: list[str] = []
    for path, interface in SURFACES.items():
        problems += mismatches(page.evaluate(DESCRIBE, [path, None]), interface)
    office = page.evaluate(DESCRIBE, ["Office", None])
    types = office_types()
    for name, (kind, length) in office.items():
        if kind == "function":
            if length not in types.functions.get(name, set()):
                problems.append(f"Office.{name}() is not an Office function of {length} parameters")
        elif name not in types.enums and name not in ("context", "MailboxEnums"):
            problems.append(f"Office.{name} is not an Office enum")
    for enum in ("AsyncResultStatus", "EventType", "CoercionType"):
        used = page.evaluate(f"Object.keys(Office.{enum})")
        problems += [
            f"Office.{enum}.{m} is not declared" for m in used if m not in types.enums[enum]
        ]
    used = page.evaluate("Object.keys(Office.MailboxEnums.ItemType)")
    problems += [f"ItemType.{m} is not declared" for m in used if m not in types.enums["ItemType"]]

    for (kind, mode), parts in ITEMS.items():
        spec = {**ITEM_SPEC, "kind": kind, "mode": mode}
        page.evaluate("spec => { window.__item = OfficeStandin.makeItem(spec); }", spec)
        for part, interface in parts.items():
            path = "__item" + (f".{part}" if part else "")
            problems += mismatches(page.evaluate(DESCRIBE, [path, None]), interface)

    page.evaluate("window.__dialog = new OfficeStandin.Dialog(null)")
    problems += mismatches(page.evaluate(DESCRIBE, ["__dialog", None]), "Dialog")
    result = page.evaluate(
        """() => new Promise(done => OfficeStandin.makeItem(
              {kind: 'message', mode: 'read', subject: 's'}).body.getAsync('text', done))"""
    )
    declared = office_types().members("AsyncResult")
    problems += [f"AsyncResult.{n} is not declared" for n in result if n not in declared.properties]
    page.close()
    assert problems == []


def test_a_mailbox_1_5_host_offers_nothing_newer(browser: Browser) -> None:
    page = browser.new_page()
    page.set_content("<!doctype html><title>stand-in</title>")
    page.evaluate(
        "sets => { window.__officeConfig = {sets, item: {kind: 'message', mode: 'compose'}}; }",
        HOSTS["mailbox-1.5"],
    )
    page.add_script_tag(content=STANDINS["tests"].read_text())
    item = page.evaluate(DESCRIBE, ["Office.context.mailbox.item", None])
    assert item is not None
    assert "internetHeaders" not in item  # Mailbox 1.8
    assert "from" not in item and "addHandlerAsync" not in item  # Mailbox 1.7
    assert page.evaluate("Office.context.officeTheme") is None  # Mailbox 1.14
    assert page.evaluate("Office.context.requirements.isSetSupported('Mailbox', '1.5')")
    assert not page.evaluate("Office.context.requirements.isSetSupported('Mailbox', '1.6')")
    page.close()
