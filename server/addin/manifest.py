"""The add-in's manifests for one deployment: the XML add-in-only manifest and the unified one.

Why both: the XML manifest (`addin/manifest.xml`, a template) installs everywhere Mailbox 1.5
runs — Exchange Server 2019/SE on-premises, classic Outlook, Outlook on the web, mobile — while
the new Outlook and the Microsoft 365 store also take the unified manifest (JSON, "Teams app
manifest" schema). The JSON is derived here from the rendered XML, so the words, ids, icons and
surfaces are written once, in the template; Microsoft's converter is only a check in the tests.

The base URL is the one place a deployment differs. Outlook loads add-in pages only over HTTPS
with a certificate it trusts, so anything else is refused, except plain http on this machine
(localhost) for trying the pane preview.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

ADDIN_DIR = Path(__file__).resolve().parents[2] / "addin"
TEMPLATE = ADDIN_DIR / "manifest.xml"
ASSETS = ADDIN_DIR / "assets"

# The add-in's identity for Outlook and the admin centers: never change it (updates match on it).
ADDIN_ID = "d1d20898-4bcd-481e-9183-b70739e8d4bb"

# The newest released schema in the @microsoft/app-manifest package that Microsoft's validator
# uses (node_modules/@microsoft/app-manifest/build/json-schemas/teams/); a test keeps them equal.
UNIFIED_MANIFEST_VERSION = "1.30"
UNIFIED_SCHEMA_URL = (
    "https://developer.microsoft.com/json-schemas/teams/"
    f"v{UNIFIED_MANIFEST_VERSION}/MicrosoftTeams.schema.json"
)
# The unified manifest's two package icons, beside manifest.json: 192 px colour, 32 px outline.
PACKAGE_ICONS = {"color.png": "icon-192.png", "outline.png": "outline-32.png"}
SHORT_DESCRIPTION = "Your team's CRM beside every email: people, deals, timeline and follow-ups."
ACCENT_COLOR = "#0F6CBD"

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

NS = {
    "o": "http://schemas.microsoft.com/office/appforoffice/1.1",
    "bt": "http://schemas.microsoft.com/office/officeappbasictypes/1.0",
    "v10": "http://schemas.microsoft.com/office/mailappversionoverrides",
    "v11": "http://schemas.microsoft.com/office/mailappversionoverrides/1.1",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
XSI_TYPE = f"{{{NS['xsi']}}}type"
# XML extension points -> unified manifest ribbon contexts.
CONTEXTS = {
    "MessageReadCommandSurface": "mailRead",
    "MessageComposeCommandSurface": "mailCompose",
    "AppointmentAttendeeCommandSurface": "meetingDetailsAttendee",
    "AppointmentOrganizerCommandSurface": "meetingDetailsOrganizer",
    "MobileMessageReadCommandSurface": "mailRead",
}


class ManifestError(ValueError):
    """The base URL cannot serve an add-in; the message says what to give instead."""


@dataclass(frozen=True)
class BaseUrl:
    """Where Rapport is served: `url` has no trailing slash; `origin` is scheme://host[:port]."""

    url: str
    origin: str
    host: str  # host[:port], as the unified manifest's validDomains want it

    @property
    def is_local(self) -> bool:
        return (urlsplit(self.url).hostname or "") in LOCAL_HOSTS


def parse_base_url(raw: str) -> BaseUrl:
    """Check a deployment's base URL: https://host[:port][/path], or http:// on localhost."""
    value = raw.strip().rstrip("/")
    example = "e.g. https://crm.example.com"
    if not value or any(c.isspace() or c in "\"'<>&\\{}" for c in value):
        raise ManifestError(
            f"'{raw}' is not a URL; give the address Rapport is served at, {example}"
        )
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        raise ManifestError(f"'{raw}' has an invalid port") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ManifestError(f"'{raw}' is not an http(s) URL; {example}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ManifestError(
            f"'{raw}' must be a plain base URL, without ?query, #fragment or user:password@"
        )
    if parts.scheme != "https" and parts.hostname not in LOCAL_HOSTS:
        raise ManifestError(
            f"Outlook loads add-ins only over HTTPS (with a certificate it trusts): use "
            f"https://{parts.netloc}{parts.path} (plain http only works for localhost)"
        )
    netloc = parts.netloc.lower()
    if port is not None and port == {"http": 80, "https": 443}[parts.scheme]:
        netloc = netloc.rsplit(":", 1)[0]
    origin = f"{parts.scheme}://{netloc}"
    return BaseUrl(url=origin + parts.path, origin=origin, host=netloc)


def addin_version() -> str:
    """Rapport's version as the manifests want it (three numbers): a new release is an update."""
    try:
        raw = package_version("rapport")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0.0.0"
    numbers = re.findall(r"\d+", raw.split("+")[0])[:3]
    numbers += ["0"] * (3 - len(numbers))
    return ".".join(str(int(n)) for n in numbers)


def render_xml(base: BaseUrl) -> str:
    """The XML manifest for this deployment: the template with its placeholders filled in."""
    values = {"BASE_URL": base.url, "ORIGIN": base.origin, "VERSION": addin_version()}
    text = TEMPLATE.read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", escape(value, {'"': "&quot;"}))
    return text


def unified_manifest(base: BaseUrl) -> dict[str, Any]:
    """The unified (JSON) manifest for this deployment, read off the rendered XML manifest.

    Only the VersionOverrides 1.1 surfaces are carried over: the JSON's extension requires
    Mailbox 1.5, so the 1.0 wrapper could never be chosen.
    """
    if not base.url.startswith("https://"):
        raise ManifestError(
            "the unified manifest needs an https:// base URL, even on localhost (its schema "
            "accepts no other pages); use --format xml to try Rapport over plain http"
        )
    root = ElementTree.fromstring(render_xml(base))  # noqa: S314 - our own template
    floor = str(_one(root, "o:Requirements/o:Sets/o:Set[@Name='Mailbox']").get("MinVersion"))
    v11 = _one(root, "v10:VersionOverrides/v11:VersionOverrides")
    resources = _one(v11, "v11:Resources")
    strings = {
        e.get("id"): e.get("DefaultValue")
        for e in resources.iterfind("*/bt:String", NS)  # ShortStrings and LongStrings
    }
    urls = {e.get("id"): e.get("DefaultValue") for e in resources.iterfind("bt:Urls/bt:Url", NS)}
    images = {
        e.get("id"): e.get("DefaultValue") for e in resources.iterfind("bt:Images/bt:Image", NS)
    }
    actions: dict[tuple[str, bool, bool], dict[str, Any]] = {}

    def action_id(control: ElementTree.Element) -> str:
        action = _one(control, "v11:Action")
        if action.get(XSI_TYPE) != "ShowTaskpane":
            raise ValueError("only ShowTaskpane actions have a unified-manifest counterpart")
        page = urls[_one(action, "v11:SourceLocation").get("resid")]
        pinnable = action.findtext("v11:SupportsPinning", "false", NS).strip() == "true"
        no_item = action.findtext("v11:SupportsNoItemContext", "false", NS).strip() == "true"
        key = (str(page), pinnable, no_item)
        if key not in actions:
            actions[key] = {
                "id": "openPanePinnable" if pinnable else "openPane",
                "type": "openPage",
                "displayName": strings["openLabel"],
                "pinnable": pinnable,
            }
            if no_item:
                # As the unified manifest reference pairs them: no item context brings
                # multi-select with it (the pane shows My day for several selected items).
                actions[key] |= {"supportsNoItemContext": True, "multiselect": True}
        return str(actions[key]["id"])

    def label(element: ElementTree.Element) -> str:
        return str(strings[_one(element, "v11:Label").get("resid")])

    host = _one(v11, "v11:Hosts/v11:Host")
    ribbons: list[dict[str, Any]] = []
    for point in host.iterfind("v11:DesktopFormFactor/v11:ExtensionPoint", NS):
        group = _one(point, "v11:OfficeTab/v11:Group")
        controls = []
        for control in group.iterfind("v11:Control", NS):
            supertip = _one(control, "v11:Supertip")
            controls.append(
                {
                    "id": control.get("id"),
                    "type": "button",
                    "label": label(control),
                    "icons": [
                        {"size": int(str(i.get("size"))), "url": images[i.get("resid")]}
                        for i in control.iterfind("v11:Icon/bt:Image", NS)
                    ],
                    "supertip": {
                        "title": strings[_one(supertip, "v11:Title").get("resid")],
                        "description": strings[_one(supertip, "v11:Description").get("resid")],
                    },
                    "actionId": action_id(control),
                }
            )
        ribbons.append(
            {
                "requirements": _requirements(floor, form_factor="desktop"),
                "contexts": [CONTEXTS[str(point.get(XSI_TYPE))]],
                "tabs": [
                    {
                        "builtInTabId": "TabDefault",
                        "groups": [
                            {"id": group.get("id"), "label": label(group), "controls": controls}
                        ],
                    }
                ],
            }
        )
    for point in host.iterfind("v11:MobileFormFactor/v11:ExtensionPoint", NS):
        group = _one(point, "v11:Group")
        mobile_controls = [
            {
                "id": control.get("id"),
                "type": "mobileButton",
                "label": label(control),
                "icons": [
                    {
                        "size": int(str(i.get("size"))),
                        "url": images[i.get("resid")],
                        "scale": int(str(i.get("scale"))),
                    }
                    for i in control.iterfind("v11:Icon/bt:Image", NS)
                ],
                "actionId": action_id(control),
            }
            for control in group.iterfind("v11:Control", NS)
        ]
        ribbons.append(
            {
                "requirements": _requirements(floor, form_factor="mobile"),
                "contexts": [CONTEXTS[str(point.get(XSI_TYPE))]],
                "tabs": [
                    {
                        "builtInTabId": "DefaultTab",
                        "customMobileRibbonGroups": [
                            {
                                "id": group.get("id"),
                                "label": label(group),
                                "controls": mobile_controls,
                            }
                        ],
                    }
                ],
            }
        )
    pages = {page for page, _, _ in actions}
    if len(pages) != 1:
        raise ValueError("every button must open the same task pane page")
    support = _one(root, "o:SupportUrl").get("DefaultValue")
    return {
        "$schema": UNIFIED_SCHEMA_URL,
        "manifestVersion": UNIFIED_MANIFEST_VERSION,
        "version": _one(root, "o:Version").text,
        "id": _one(root, "o:Id").text,
        "localizationInfo": {"defaultLanguageTag": "en-us"},
        "developer": {
            "name": _one(root, "o:ProviderName").text,
            "websiteUrl": support,
            "privacyUrl": support,
            "termsOfUseUrl": support,
        },
        "name": {"short": _one(root, "o:DisplayName").get("DefaultValue")},
        "description": {
            "short": SHORT_DESCRIPTION,
            "full": _one(root, "o:Description").get("DefaultValue"),
        },
        "icons": {"outline": "outline.png", "color": "color.png"},
        "accentColor": ACCENT_COLOR,
        "validDomains": [base.host],
        "authorization": {
            "permissions": {
                "resourceSpecific": [
                    {
                        "name": _PERMISSIONS[str(_one(root, "o:Permissions").text)],
                        "type": "Delegated",
                    }
                ]
            }
        },
        "extensions": [
            {
                "requirements": {
                    "scopes": ["mail"],
                    "capabilities": [{"name": "Mailbox", "minVersion": floor}],
                },
                "runtimes": [
                    {
                        "requirements": {
                            "capabilities": [{"name": "Mailbox", "minVersion": floor}]
                        },
                        "id": "taskpane",
                        "type": "general",
                        "code": {"page": pages.pop()},
                        "lifetime": "short",
                        "actions": list(actions.values()),
                    }
                ],
                "ribbons": ribbons,
                "alternates": [
                    {
                        "alternateIcons": {
                            # Sizes are logical: the high-resolution icon is the 64 px one at 2x.
                            "icon": {
                                "size": 64,
                                "url": _one(root, "o:IconUrl").get("DefaultValue"),
                            },
                            "highResolutionIcon": {
                                "size": 64,
                                "url": _one(root, "o:HighResolutionIconUrl").get("DefaultValue"),
                            },
                        }
                    }
                ],
            }
        ],
    }


# XML <Permissions> -> the unified manifest's resource-specific permission names.
_PERMISSIONS = {
    "Restricted": "MailboxItem.Restricted.User",
    "ReadItem": "MailboxItem.Read.User",
    "ReadWriteItem": "MailboxItem.ReadWrite.User",
    "ReadWriteMailbox": "Mailbox.ReadWrite.User",
}


def _requirements(floor: str, *, form_factor: str) -> dict[str, Any]:
    return {
        "capabilities": [{"name": "Mailbox", "minVersion": floor}],
        "scopes": ["mail"],
        "formFactors": [form_factor],
    }


def _one(parent: ElementTree.Element, path: str) -> ElementTree.Element:
    found = parent.find(path, NS)
    if found is None:
        raise ValueError(f"the add-in template has no {path}")
    return found


def render_json(base: BaseUrl) -> str:
    return json.dumps(unified_manifest(base), indent=2, ensure_ascii=False) + "\n"


def write_manifest(base: BaseUrl, output: Path, *, fmt: str) -> list[Path]:
    """Write the manifest to `output` and return every file written.

    XML: `output` is the file (or a directory, for manifest.xml in it). JSON: the unified
    manifest needs its two icons beside it, so `output` is a directory (manifest.json, color.png,
    outline.png), a .json file (the icons go next to it), or a .zip: the app package to upload
    to the Microsoft 365 admin center or sideload in the new Outlook.
    """
    if not output.is_dir():
        output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "xml":
        target = output / "manifest.xml" if output.is_dir() else output
        target.write_text(render_xml(base), encoding="utf-8")
        return [target]
    if output.suffix.lower() == ".zip":
        output.write_bytes(app_package(base))
        return [output]
    if output.is_dir() or output.suffix.lower() != ".json":
        output.mkdir(parents=True, exist_ok=True)
        output = output / "manifest.json"
    output.write_text(render_json(base), encoding="utf-8")
    written = [output]
    for name, source in PACKAGE_ICONS.items():
        written.append(Path(shutil.copyfile(ASSETS / source, output.parent / name)))
    return written


def app_package(base: BaseUrl) -> bytes:
    """The app package (zip: manifest.json and its icons at the top level), byte-for-byte
    reproducible so that the same release and base URL always give the same file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as package:
        members = {"manifest.json": render_json(base).encode("utf-8")}
        members |= {name: (ASSETS / source).read_bytes() for name, source in PACKAGE_ICONS.items()}
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            package.writestr(info, data)
    return buffer.getvalue()
