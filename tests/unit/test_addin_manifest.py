"""The add-in manifest: Outlook refuses a manifest whose elements are out of order, under the
wrong parent, or point at icons of the wrong size, and says little about why. So the rendered XML
is checked here against Microsoft's documented structure, element by element, with lxml.

Microsoft publishes no XSD covering today's mail manifest in any npm package (the XSDs in the
office-js-docs-pr repository predate SupportsPinning and MobileFormFactor). The orders below are
transcribed from:
- "How to find the proper order of manifest elements"
  https://learn.microsoft.com/office/dev/add-ins/develop/manifest-element-ordering
  (sections "Basic mail add-in element ordering" and "Mail add-in element ordering within
  VersionOverrides Ver. 1.0 / Ver. 1.1");
- the schema in [MS-OWEMXML] "Office Web Extensibility Manifest" (sections 2.x for the types
  OfficeApp, MailApp, ItemRead, ItemEdit, VersionOverridesV1_0/V1_1, MailHost, FormFactor,
  ShowTaskpane, Supertip, MobileButton) https://learn.microsoft.com/openspecs/office_file_formats/ms-owemxml/
"""

from __future__ import annotations

import copy
import json
import re
import struct
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from server.addin.manifest import (
    ADDIN_ID,
    ASSETS,
    TEMPLATE,
    ManifestError,
    addin_version,
    parse_base_url,
    render_xml,
    unified_manifest,
)
from tests.conftest import Cli

BASE = "https://crm.example.com"

NS = {
    "o": "http://schemas.microsoft.com/office/appforoffice/1.1",
    "bt": "http://schemas.microsoft.com/office/officeappbasictypes/1.0",
    "v10": "http://schemas.microsoft.com/office/mailappversionoverrides",
    "v11": "http://schemas.microsoft.com/office/mailappversionoverrides/1.1",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
XSI_TYPE = f"{{{NS['xsi']}}}type"

# Child order per parent, as documented (optional children may be absent, never out of order).
OFFICE_APP_MAIL = [
    "Id", "AlternateId", "Version", "ProviderName", "DefaultLocale", "DisplayName", "Description",
    "IconUrl", "HighResolutionIconUrl", "SupportUrl", "AppDomains", "Hosts",
    # MailApp's extension of OfficeApp:
    "Requirements", "FormSettings", "Permissions", "Rule", "DisableEntityHighlighting",
    "VersionOverrides",
]  # fmt: skip
OFFICE_APP_REQUIRED = {
    "Id", "Version", "ProviderName", "DefaultLocale", "DisplayName", "Description",
    "Requirements", "FormSettings", "Rule",
}  # fmt: skip
VERSION_OVERRIDES_1_0 = ["Description", "Requirements", "Hosts", "Resources", "VersionOverrides"]
VERSION_OVERRIDES_1_1 = [
    "Description", "Requirements", "Hosts", "Resources", "WebApplicationInfo", "EquivalentAddins",
    "ConnectedServiceControls", "ExtendedPermissions",
]  # fmt: skip
MAIL_HOST_1_0 = ["DesktopFormFactor"]
MAIL_HOST_1_1 = ["Runtimes", "DesktopFormFactor", "MobileFormFactor"]
FORM_FACTOR = ["FunctionFile", "ExtensionPoint"]
COMMAND_SURFACE = ["OfficeTab", "CustomTab"]
GROUP = ["Label", "Tooltip", "Control"]
BUTTON = ["Label", "Supertip", "Icon", "Action"]
SUPERTIP = ["Title", "Description"]
SHOW_TASKPANE_1_0 = ["SourceLocation"]
SHOW_TASKPANE_1_1 = ["SourceLocation", "SupportsPinning", "SupportsNoItemContext", "SupportsMultiSelect"]  # fmt: skip
MOBILE_GROUP = ["Label", "Control"]
MOBILE_BUTTON = ["Label", "Icon", "Action"]
RESOURCES = ["Images", "Urls", "ShortStrings", "LongStrings"]
FORM_ITEM = ["DesktopSettings", "TabletSettings", "PhoneSettings"]
READ_SETTINGS = ["SourceLocation", "RequestedHeight"]

DESKTOP_ICON_SIZES = {16, 20, 24, 32, 40, 48, 64, 80}  # bt:Image size values the schema allows
DESKTOP_ICON_REQUIRED = {16, 32, 80}
MOBILE_ICON_SIZES = {25, 32, 48}
SHORT_STRING_MAX, LONG_STRING_MAX, RESID_MAX = 125, 250, 32


def local(element: etree._Element) -> str:
    return str(etree.QName(element).localname)


def assert_children_in_order(
    element: etree._Element, order: list[str], required: set[str] | frozenset[str] = frozenset()
) -> None:
    names = [local(child) for child in element if isinstance(child.tag, str)]
    where = f"<{local(element)}> {element.getroottree().getpath(element)}"
    unknown = [n for n in names if n not in order]
    assert not unknown, f"{where}: {unknown} are not valid children (allowed: {order})"
    positions = [order.index(n) for n in names]
    assert positions == sorted(positions), f"{where}: children {names} are not in order {order}"
    missing = set(required) - set(names)
    assert not missing, f"{where}: missing required {sorted(missing)}"


@pytest.fixture(scope="module")
def manifest() -> etree._Element:
    return etree.fromstring(render_xml(parse_base_url(BASE)).encode("utf-8"))


def version_overrides(manifest: etree._Element) -> tuple[etree._Element, etree._Element]:
    outer = manifest.find("v10:VersionOverrides", NS)
    assert outer is not None
    inner = outer.find("v11:VersionOverrides", NS)
    assert inner is not None
    return outer, inner


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def asset_for(url: str) -> Path:
    prefix = f"{BASE}/addin/assets/"
    assert url.startswith(prefix), f"{url} is not one of the add-in's own assets"
    return ASSETS / url.removeprefix(prefix)


# -- structure and order -------------------------------------------------------------------------


def test_root_is_a_mail_app_with_documented_child_order(manifest: etree._Element) -> None:
    assert manifest.tag == f"{{{NS['o']}}}OfficeApp"
    assert manifest.get(XSI_TYPE) == "MailApp"
    assert_children_in_order(manifest, OFFICE_APP_MAIL, OFFICE_APP_REQUIRED)
    assert manifest.findtext("o:Id", namespaces=NS) == ADDIN_ID
    assert [h.get("Name") for h in manifest.iterfind("o:Hosts/o:Host", NS)] == ["Mailbox"]
    assert manifest.findtext("o:Permissions", namespaces=NS) == "ReadWriteItem"


def test_the_id_is_the_stable_guid_in_the_template() -> None:
    assert f"<Id>{ADDIN_ID}</Id>" in TEMPLATE.read_text(encoding="utf-8")


def test_the_order_check_catches_a_misplaced_element(manifest: etree._Element) -> None:
    broken = copy.deepcopy(manifest)
    permissions = broken.find("o:Permissions", NS)
    assert permissions is not None
    broken.remove(permissions)
    broken.insert(2, permissions)  # before <Version>
    with pytest.raises(AssertionError, match="not in order"):
        assert_children_in_order(broken, OFFICE_APP_MAIL, OFFICE_APP_REQUIRED)
    action = broken.find(".//v11:SupportsPinning/..", NS)
    assert action is not None
    action.append(action[0])  # SourceLocation after SupportsPinning
    with pytest.raises(AssertionError, match="not in order"):
        assert_children_in_order(action, SHOW_TASKPANE_1_1)


def test_form_settings_cover_read_and_compose(manifest: etree._Element) -> None:
    forms = {f.get(XSI_TYPE): f for f in manifest.iterfind("o:FormSettings/o:Form", NS)}
    assert set(forms) == {"ItemRead", "ItemEdit"}
    for form in forms.values():
        assert_children_in_order(form, FORM_ITEM, {"DesktopSettings"})
    read = forms["ItemRead"].find("o:DesktopSettings", NS)
    assert read is not None
    assert_children_in_order(read, READ_SETTINGS, set(READ_SETTINGS))
    assert 32 <= int(read.findtext("o:RequestedHeight", namespaces=NS) or 0) <= 450


def test_activation_rule_covers_messages_and_appointments_read_and_compose(
    manifest: etree._Element,
) -> None:
    rules = {(r.get("ItemType"), r.get("FormType")) for r in manifest.iterfind("o:Rule/o:Rule", NS)}
    assert rules == {
        ("Message", "Read"),
        ("Message", "Edit"),
        ("Appointment", "Read"),
        ("Appointment", "Edit"),
    }


def test_version_overrides_1_0_wraps_1_1_in_documented_order(manifest: etree._Element) -> None:
    outer, inner = version_overrides(manifest)
    assert outer.get(XSI_TYPE) == "VersionOverridesV1_0"
    assert inner.get(XSI_TYPE) == "VersionOverridesV1_1"
    assert_children_in_order(outer, VERSION_OVERRIDES_1_0)
    assert_children_in_order(inner, VERSION_OVERRIDES_1_1, {"Hosts", "Resources"})
    assert local(outer[-1]) == "VersionOverrides", "the 1.1 overrides come last in the 1.0 ones"
    for overrides, ns, host_order in ((outer, "v10", MAIL_HOST_1_0), (inner, "v11", MAIL_HOST_1_1)):
        for resources in overrides.iterfind(f"{ns}:Resources", NS):
            assert_children_in_order(resources, RESOURCES)
        for host in overrides.iterfind(f"{ns}:Hosts/{ns}:Host", NS):
            assert host.get(XSI_TYPE) == "MailHost"
            assert_children_in_order(host, host_order)


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_ribbon_buttons_follow_the_documented_order(manifest: etree._Element, version: str) -> None:
    outer, inner = version_overrides(manifest)
    overrides, ns = (outer, "v10") if version == "1.0" else (inner, "v11")
    action_order = SHOW_TASKPANE_1_0 if version == "1.0" else SHOW_TASKPANE_1_1
    desktop = overrides.find(f"{ns}:Hosts/{ns}:Host/{ns}:DesktopFormFactor", NS)
    assert desktop is not None
    assert_children_in_order(desktop, FORM_FACTOR, {"ExtensionPoint"})
    controls = []
    for point in desktop.iterfind(f"{ns}:ExtensionPoint", NS):
        assert_children_in_order(point, COMMAND_SURFACE)
        for tab in point.iterfind(f"{ns}:OfficeTab", NS):
            assert tab.get("id") == "TabDefault"
            for group in tab.iterfind(f"{ns}:Group", NS):
                assert_children_in_order(group, GROUP, {"Label", "Control"})
                for control in group.iterfind(f"{ns}:Control", NS):
                    controls.append(control.get("id"))
                    assert control.get(XSI_TYPE) == "Button"
                    assert_children_in_order(control, BUTTON, set(BUTTON))
                    supertip = control.find(f"{ns}:Supertip", NS)
                    assert supertip is not None
                    assert_children_in_order(supertip, SUPERTIP, set(SUPERTIP))
                    action = control.find(f"{ns}:Action", NS)
                    assert action is not None
                    assert action.get(XSI_TYPE) == "ShowTaskpane"
                    assert_children_in_order(action, action_order, {"SourceLocation"})
                    sizes = [
                        int(i.get("size", 0)) for i in control.iterfind(f"{ns}:Icon/bt:Image", NS)
                    ]
                    assert DESKTOP_ICON_SIZES >= set(sizes) >= DESKTOP_ICON_REQUIRED
    assert len(controls) == len(set(controls)), "control ids are unique within a form factor"


def test_read_and_compose_surfaces_have_buttons(manifest: etree._Element) -> None:
    _, inner = version_overrides(manifest)
    surfaces = {
        p.get(XSI_TYPE)
        for p in inner.iterfind("v11:Hosts/v11:Host/v11:DesktopFormFactor/v11:ExtensionPoint", NS)
    }
    assert surfaces == {
        "MessageReadCommandSurface",
        "MessageComposeCommandSurface",
        "AppointmentAttendeeCommandSurface",
        "AppointmentOrganizerCommandSurface",
    }


def test_task_pane_is_pinnable_in_reading_view_only_in_version_1_1(
    manifest: etree._Element,
) -> None:
    outer, inner = version_overrides(manifest)
    pinning = {
        point.get(XSI_TYPE): point.findtext(".//v11:SupportsPinning", namespaces=NS)
        for point in inner.iterfind("v11:Hosts/v11:Host/*/v11:ExtensionPoint", NS)
    }
    assert pinning == {
        "MessageReadCommandSurface": "true",
        "MessageComposeCommandSurface": None,
        "AppointmentAttendeeCommandSurface": None,
        "AppointmentOrganizerCommandSurface": None,
        "MobileMessageReadCommandSurface": None,
    }
    assert outer.find(".//v10:SupportsPinning", NS) is None, "1.0 has no SupportsPinning"
    no_item = {
        point.get(XSI_TYPE)
        for point in inner.iterfind("v11:Hosts/v11:Host/*/v11:ExtensionPoint", NS)
        if point.findtext(".//v11:SupportsNoItemContext", namespaces=NS) == "true"
    }
    assert no_item == {"MessageReadCommandSurface"}, "My day opens with no message selected"


def test_mobile_form_factor_has_a_read_button_with_every_mobile_icon(
    manifest: etree._Element,
) -> None:
    _, inner = version_overrides(manifest)
    mobile = inner.find("v11:Hosts/v11:Host/v11:MobileFormFactor", NS)
    assert mobile is not None
    assert_children_in_order(mobile, FORM_FACTOR, {"ExtensionPoint"})
    point = mobile.find("v11:ExtensionPoint", NS)
    assert point is not None and point.get(XSI_TYPE) == "MobileMessageReadCommandSurface"
    group = point.find("v11:Group", NS)
    assert group is not None
    assert_children_in_order(group, MOBILE_GROUP, set(MOBILE_GROUP))
    control = group.find("v11:Control", NS)
    assert control is not None and control.get(XSI_TYPE) == "MobileButton"
    assert_children_in_order(control, MOBILE_BUTTON, set(MOBILE_BUTTON))
    icon = control.find("v11:Icon", NS)
    assert icon is not None and icon.get(XSI_TYPE) == "bt:MobileIconList"
    pairs = {(int(i.get("size", 0)), int(i.get("scale", 0))) for i in icon.iterfind("bt:Image", NS)}
    assert pairs == {(size, scale) for size in MOBILE_ICON_SIZES for scale in (1, 2, 3)}


def test_every_resource_reference_resolves_within_its_overrides(manifest: etree._Element) -> None:
    for overrides in version_overrides(manifest):
        ns = "v11" if overrides.get(XSI_TYPE) == "VersionOverridesV1_1" else "v10"
        resources = overrides.find(f"{ns}:Resources", NS)
        assert resources is not None
        ids: dict[str, str] = {}
        for kind in RESOURCES:
            for entry in resources.iterfind(f"bt:{kind}/*", NS):
                ids[str(entry.get("id"))] = kind
                assert len(str(entry.get("id"))) <= RESID_MAX
                limit = LONG_STRING_MAX if kind == "LongStrings" else SHORT_STRING_MAX
                if kind.endswith("Strings"):
                    assert 0 < len(str(entry.get("DefaultValue"))) <= limit, entry.get("id")
        nested = set(overrides.iterfind("v11:VersionOverrides//*", NS))  # own resources
        own = [e for e in overrides.iter() if e.get("resid") and e not in nested]
        for element in own:
            assert element.get("resid") in ids, f"resid {element.get('resid')} is not defined"
            want = {"Image": "Images", "SourceLocation": "Urls", "Description": "LongStrings"}
            expected = want.get(local(element), "ShortStrings")
            assert ids[element.get("resid", "")] == expected, element.get("resid")


def test_descriptions_fit_their_limits(manifest: etree._Element) -> None:
    assert len(str(manifest.find("o:DisplayName", NS).get("DefaultValue"))) <= SHORT_STRING_MAX
    assert len(str(manifest.find("o:Description", NS).get("DefaultValue"))) <= LONG_STRING_MAX


# -- requirement floor ----------------------------------------------------------------------------


def test_requirement_floor_is_mailbox_1_5_and_nothing_demands_more(
    manifest: etree._Element,
) -> None:
    base = manifest.findall("o:Requirements/o:Sets/o:Set", NS)
    assert [(s.get("Name"), s.get("MinVersion")) for s in base] == [("Mailbox", "1.5")]
    for sets in manifest.iter(f"{{{NS['bt']}}}Sets", f"{{{NS['o']}}}Sets"):
        default = sets.get("DefaultMinVersion", "1.1")
        for one in sets:
            wanted = tuple(int(n) for n in one.get("MinVersion", default).split("."))
            assert one.get("Name") == "Mailbox"
            assert wanted <= (1, 5), f"{one.get('Name')} {wanted} is above the 1.5 floor"


# -- the base URL --------------------------------------------------------------------------------


def test_base_url_is_substituted_everywhere_and_nothing_is_plain_http(
    manifest: etree._Element,
) -> None:
    text = render_xml(parse_base_url(BASE))
    assert "{{" not in text and "}}" not in text
    values = [v for e in manifest.iter() for k, v in e.attrib.items() if k != XSI_TYPE]
    values += [e.text.strip() for e in manifest.iter() if isinstance(e.tag, str) and e.text]
    urls = [v for v in values if v.startswith(("http:", "https:"))]
    assert urls, "the manifest points somewhere"
    assert all(u == BASE or u.startswith(BASE + "/") for u in urls), urls
    assert manifest.findtext("o:AppDomains/o:AppDomain", namespaces=NS) == BASE
    sources = {e.get("DefaultValue") for e in manifest.iter(f"{{{NS['o']}}}SourceLocation")}
    sources |= {e.get("DefaultValue") for e in manifest.iter(f"{{{NS['bt']}}}Url")}
    assert sources == {f"{BASE}/pane/index.html"}


def test_base_url_with_a_path_keeps_the_path_but_app_domain_is_the_origin() -> None:
    root = etree.fromstring(render_xml(parse_base_url("https://example.org/rapport/")).encode())
    assert root.findtext("o:AppDomains/o:AppDomain", namespaces=NS) == "https://example.org"
    assert root.find("o:IconUrl", NS).get("DefaultValue") == (
        "https://example.org/rapport/addin/assets/icon-64.png"
    )


@pytest.mark.parametrize(
    ("raw", "url", "host"),
    [
        ("https://crm.example.com", "https://crm.example.com", "crm.example.com"),
        ("https://CRM.Example.com/", "https://crm.example.com", "crm.example.com"),
        ("https://crm.example.com:443/crm/", "https://crm.example.com/crm", "crm.example.com"),
        ("https://crm.example.com:8443", "https://crm.example.com:8443", "crm.example.com:8443"),
        ("http://localhost:8000", "http://localhost:8000", "localhost:8000"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000", "127.0.0.1:8000"),
        ("https://localhost:3000", "https://localhost:3000", "localhost:3000"),
    ],
)
def test_accepted_base_urls(raw: str, url: str, host: str) -> None:
    base = parse_base_url(raw)
    assert (base.url, base.host) == (url, host)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("http://crm.example.com", "HTTPS"),
        ("http://10.0.0.5:8000", "HTTPS"),
        ("ftp://crm.example.com", "not an http(s) URL"),
        ("crm.example.com", "not an http(s) URL"),
        ("https://crm.example.com/?a=1", "without ?query"),
        ("https://user:pw@crm.example.com", "user:password@"),
        ("https://crm.example.com:99999", "invalid port"),
        ('https://crm.example.com/"><x', "is not a URL"),
        ("https://crm.example.com/{{VERSION}}", "is not a URL"),
        ("", "is not a URL"),
    ],
)
def test_refused_base_urls_say_why(raw: str, says: str) -> None:
    with pytest.raises(ManifestError, match=re.escape(says)):
        parse_base_url(raw)


def test_version_is_rapports_own_in_three_numbers(manifest: etree._Element) -> None:
    version = addin_version()
    assert manifest.findtext("o:Version", namespaces=NS) == version
    assert len(version.split(".")) == 3 and all(p.isdigit() for p in version.split("."))


# -- icons ---------------------------------------------------------------------------------------


def test_every_icon_the_manifest_names_exists_at_its_pixel_size(manifest: etree._Element) -> None:
    expected: dict[Path, int] = {
        asset_for(str(manifest.find("o:IconUrl", NS).get("DefaultValue"))): 64,
        asset_for(str(manifest.find("o:HighResolutionIconUrl", NS).get("DefaultValue"))): 128,
    }
    for overrides in version_overrides(manifest):
        ns = "v11" if overrides.get(XSI_TYPE) == "VersionOverridesV1_1" else "v10"
        images = {
            i.get("id"): str(i.get("DefaultValue"))
            for i in overrides.iterfind(f"{ns}:Resources/bt:Images/bt:Image", NS)
        }
        for control in overrides.iterfind(f"{ns}:Hosts/{ns}:Host//{ns}:Control", NS):
            for image in control.iterfind(f"{ns}:Icon/bt:Image", NS):
                pixels = int(image.get("size", 0)) * int(image.get("scale", 1))
                path = asset_for(images[image.get("resid")])
                assert expected.setdefault(path, pixels) == pixels, f"{path.name} used at two sizes"
    for path, pixels in expected.items():
        assert path.is_file(), f"{path} is missing"
        assert png_size(path) == (pixels, pixels), f"{path.name} is not {pixels} x {pixels}"
    assert {64, 128, 16, 25, 32, 48, 80} <= set(expected.values())


def test_unified_manifest_icons_are_192_colour_and_32_outline() -> None:
    assert png_size(ASSETS / "icon-192.png") == (192, 192)
    assert png_size(ASSETS / "outline-32.png") == (32, 32)


def test_committed_icons_match_the_generator() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_icons", ASSETS.parent / "make_icons.py")
    assert spec is not None and spec.loader is not None
    make_icons = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_icons)
    small = {"icon-16.png", "icon-25.png", "outline-32.png"}  # the rest take seconds to draw
    for name, data in make_icons.icons(only=small):
        assert (ASSETS / name).read_bytes() == data, f"{name}: run python addin/make_icons.py"


# -- the unified manifest, without Node (the integration tests run Microsoft's tools on it) -------


def test_unified_manifest_matches_the_xml() -> None:
    base = parse_base_url(BASE)
    data = unified_manifest(base)
    assert data["id"] == ADDIN_ID and data["version"] == addin_version()
    assert data["validDomains"] == ["crm.example.com"]
    assert data["icons"] == {"outline": "outline.png", "color": "color.png"}
    (extension,) = data["extensions"]
    assert extension["requirements"]["capabilities"] == [{"name": "Mailbox", "minVersion": "1.5"}]
    (runtime,) = extension["runtimes"]
    assert runtime["code"] == {"page": f"{BASE}/pane/index.html"}
    pinnable = {a["id"]: a["pinnable"] for a in runtime["actions"]}
    no_item = {a["id"]: a.get("supportsNoItemContext", False) for a in runtime["actions"]}
    assert sorted(no_item.values()) == [False, True]  # the pinnable read pane only
    assert all(a.get("multiselect", False) == no_item[a["id"]] for a in runtime["actions"])
    surfaces = {
        (r["requirements"]["formFactors"][0], r["contexts"][0]): pinnable[control["actionId"]]
        for r in extension["ribbons"]
        for tab in r["tabs"]
        for group in tab.get("groups", []) + tab.get("customMobileRibbonGroups", [])
        for control in group["controls"]
    }
    assert surfaces == {
        ("desktop", "mailRead"): True,
        ("desktop", "mailCompose"): False,
        ("desktop", "meetingDetailsAttendee"): False,
        ("desktop", "meetingDetailsOrganizer"): False,
        ("mobile", "mailRead"): False,
    }
    mobile = [r for r in extension["ribbons"] if r["requirements"]["formFactors"] == ["mobile"]]
    (mobile_control,) = mobile[0]["tabs"][0]["customMobileRibbonGroups"][0]["controls"]
    assert len(mobile_control["icons"]) == 9
    assert len(data["description"]["short"]) <= 80


# -- the command ---------------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No usable settings at all: the command must not need them (nor a database)."""
    return {
        "RAPPORT_SECRET_KEY": "",
        "RAPPORT_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing",
        "RAPPORT_DATA_DIR": str(tmp_path / "never-created"),
    }


def test_cli_prints_the_xml_manifest(cli: Cli, tmp_path: Path) -> None:
    result = cli("addin", "manifest", "--base-url", "https://crm.example.com/")
    assert result.exit_code == 0, result.output
    assert result.stdout == render_xml(parse_base_url(BASE))
    assert not (tmp_path / "never-created").exists()


def test_cli_writes_the_xml_manifest_to_a_file(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "rapport.xml"
    result = cli("addin", "manifest", "--base-url", BASE, "-o", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == render_xml(parse_base_url(BASE))
    assert str(target) in result.stdout


def test_cli_writes_the_unified_manifest_with_its_icons(cli: Cli, tmp_path: Path) -> None:
    result = cli(
        "addin", "manifest", "--base-url", BASE, "--format", "json", "-o", str(tmp_path / "m")
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "color.png",
        "manifest.json",
        "outline.png",
    ]
    written = json.loads((tmp_path / "m" / "manifest.json").read_text(encoding="utf-8"))
    assert written == unified_manifest(parse_base_url(BASE))


def test_cli_writes_a_reproducible_app_package(cli: Cli, tmp_path: Path) -> None:
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    for target in (first, second):
        result = cli("addin", "manifest", "--base-url", BASE, "--format", "json", "-o", str(target))
        assert result.exit_code == 0, result.output
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as package:
        assert sorted(package.namelist()) == ["color.png", "manifest.json", "outline.png"]
        assert package.read("color.png") == (ASSETS / "icon-192.png").read_bytes()
        assert json.loads(package.read("manifest.json"))["id"] == ADDIN_ID


def test_cli_refuses_plain_http_with_exit_code_2(cli: Cli) -> None:
    result = cli("addin", "manifest", "--base-url", "http://crm.example.com")
    assert result.exit_code == 2
    assert "HTTPS" in result.output and "https://crm.example.com" in result.output
    assert "<OfficeApp" not in result.output


def test_cli_warns_that_http_localhost_is_for_trying_only(cli: Cli) -> None:
    result = cli("addin", "manifest", "--base-url", "http://localhost:8000")
    assert result.exit_code == 0, result.output
    assert "http://localhost:8000/pane/index.html" in result.stdout
    assert "HTTPS" in result.stderr


def test_cli_json_needs_https_even_on_localhost(cli: Cli) -> None:
    result = cli("addin", "manifest", "--base-url", "http://localhost:8000", "--format", "json")
    assert result.exit_code == 2
    assert "https://" in result.output and "{" not in result.stdout


def test_cli_json_on_https_localhost(cli: Cli) -> None:
    result = cli("addin", "manifest", "--base-url", "https://localhost:3000", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["validDomains"] == ["localhost:3000"]
    assert "-o FILE.zip" in result.stderr
