"""Microsoft's own manifest tools on Rapport's manifests, offline.

- `office-addin-manifest validate manifest.json` checks the unified manifest against the JSON
  schemas bundled in `@microsoft/app-manifest` (it fetches a schema only when the `$schema` URL is
  not one of them). Its XML validation posts to a Microsoft web service, so it is not used here.
- `office-addin-manifest-converter convert manifest.xml` is what Microsoft offers to move an XML
  add-in to the unified manifest; its output is compared with Rapport's own JSON on what matters.

Both run under a Node preload that turns any network access into an error, so "offline" is
checked, not assumed. Usage data: office-addin-usage-data 3.x (the version these tools depend on)
has removed reporting (every method is a no-op); OFFICE_ADDIN_USAGE_DATA_* settings do not exist
any more, so none are needed.

node_modules comes from `npm ci` in scripts/setup.sh; when it is missing these tests fail (they
do not skip): a green suite must mean the manifests were checked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from server.addin.manifest import (
    UNIFIED_MANIFEST_VERSION,
    parse_base_url,
    render_json,
    render_xml,
    unified_manifest,
    write_manifest,
)

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"
VALIDATE = NODE_MODULES / ".bin" / "office-addin-manifest"
CONVERT = NODE_MODULES / ".bin" / "office-addin-manifest-converter"
TEAMS_SCHEMAS = NODE_MODULES / "@microsoft" / "app-manifest" / "build" / "json-schemas" / "teams"
BASE = "https://crm.example.com"

OFFLINE = """
// Any network access from Microsoft's tools fails loudly: these tests must run offline.
const deny = (what) => function () {
  throw new Error(`network access attempted (${what}) in an offline test`);
};
const net = require("net");
net.Socket.prototype.connect = deny("net.Socket.connect");
net.connect = net.createConnection = deny("net.connect");
require("tls").connect = deny("tls.connect");
require("dns").lookup = deny("dns.lookup");
require("dns").promises.lookup = deny("dns.promises.lookup");
globalThis.fetch = deny("fetch");
"""


@pytest.fixture(scope="module")
def node_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    assert VALIDATE.exists() and CONVERT.exists(), (
        f"Microsoft's manifest tools are not in {NODE_MODULES}: run `npm ci` (scripts/setup.sh "
        "test does) — these tests check the add-in manifests and must not be skipped"
    )
    preload = tmp_path_factory.mktemp("node") / "offline.js"
    preload.write_text(OFFLINE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
    env |= {"NODE_OPTIONS": f"--require {preload}", "NO_COLOR": "1", "FORCE_COLOR": "0"}
    return env


def run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def validate(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run([str(VALIDATE), "validate", str(path)], env, path.parent)


# -- office-addin-manifest validate ---------------------------------------------------------------


def test_unified_manifest_uses_the_newest_schema_the_validator_bundles() -> None:
    released = [
        tuple(int(n) for n in m.group(1).split("."))
        for d in TEAMS_SCHEMAS.iterdir()
        if (m := re.fullmatch(r"v(\d+\.\d+)", d.name))
    ]
    assert released, f"no schemas in {TEAMS_SCHEMAS}"
    newest = ".".join(str(n) for n in max(released))
    assert newest == UNIFIED_MANIFEST_VERSION, (
        f"@microsoft/app-manifest now bundles schema {newest}: move UNIFIED_MANIFEST_VERSION to it"
    )
    schema = json.loads(
        (TEAMS_SCHEMAS / f"v{newest}" / "MicrosoftTeams.schema.json").read_text(encoding="utf-8")
    )
    assert schema["properties"]["manifestVersion"].get("const") == UNIFIED_MANIFEST_VERSION


@pytest.mark.parametrize(
    "base_url", [BASE, "https://example.org:8443/rapport", "https://localhost:3000"]
)
def test_unified_manifest_is_valid(base_url: str, node_env: dict[str, str], tmp_path: Path) -> None:
    written = write_manifest(parse_base_url(base_url), tmp_path, fmt="json")
    assert sorted(p.name for p in written) == ["color.png", "manifest.json", "outline.png"]
    result = validate(tmp_path / "manifest.json", node_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not valid" not in result.stdout and "network access" not in result.stderr


def test_the_validator_catches_a_broken_manifest(node_env: dict[str, str], tmp_path: Path) -> None:
    """The check above is not vacuous: the same validator refuses a manifest Outlook would."""
    data = unified_manifest(parse_base_url(BASE))
    group = data["extensions"][0]["ribbons"][0]["tabs"][0]["groups"][0]
    group["label"] = "x" * 65
    group["controls"][0]["icons"][0]["size"] = 17
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data))
    result = validate(path, node_env)
    assert result.returncode == 1
    assert "must NOT have more than 64 characters" in result.stdout
    assert "icons/0/size must be equal to one of the allowed values" in result.stdout


def test_the_tools_are_really_offline(node_env: dict[str, str], tmp_path: Path) -> None:
    """A $schema that is not bundled makes the validator go to the network, which is refused."""
    data = unified_manifest(parse_base_url(BASE))
    data["$schema"] = "https://schemas.example.com/not-bundled.schema.json"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data))
    result = validate(path, node_env)
    assert result.returncode == 1
    assert "network access attempted" in result.stdout + result.stderr


# -- office-addin-manifest-converter ------------------------------------------------------------


@pytest.fixture(scope="module")
def converted(node_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What Microsoft's converter makes of Rapport's XML manifest."""
    folder = tmp_path_factory.mktemp("convert")
    (folder / "manifest.xml").write_text(render_xml(parse_base_url(BASE)), encoding="utf-8")
    result = run([str(CONVERT), "convert", "manifest.xml", "-o", "out"], node_env, folder)
    output = folder / "out" / "manifest.json"
    assert result.returncode == 0 and output.exists(), result.stdout + result.stderr
    assert "rror" not in result.stdout + result.stderr, result.stdout + result.stderr
    return dict(json.loads(output.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def ours() -> dict[str, Any]:
    return dict(json.loads(render_json(parse_base_url(BASE))))


def surfaces(extension: dict[str, Any]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every button by (form factor, context): what a user sees and what it opens.

    Ribbons for Mailbox 1.3 are left out: the converter keeps the VersionOverrides 1.0 wrapper
    as its own ribbons, which no client can pick since the add-in requires Mailbox 1.5.
    """
    actions = {
        a["id"]: {"page": r["code"]["page"], "pinnable": a.get("pinnable", False)}
        for r in extension["runtimes"]
        for a in r["actions"]
    }
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for ribbon in extension["ribbons"]:
        (capability,) = ribbon["requirements"]["capabilities"]
        if capability["minVersion"] != "1.5":
            continue
        (form_factor,) = ribbon["requirements"]["formFactors"]
        for tab in ribbon["tabs"]:
            groups = tab.get("customMobileRibbonGroups", [])
            if form_factor == "desktop":
                groups = tab["groups"]
            for group in groups:
                for control in group["controls"]:
                    found.setdefault((form_factor, ribbon["contexts"][0]), []).append(
                        {
                            "group": group["label"],
                            "label": control["label"],
                            "type": control["type"],
                            "supertip": control.get("supertip"),
                            "icons": sorted(
                                (i["size"], i.get("scale", 1), i["url"]) for i in control["icons"]
                            ),
                            "action": actions[control["actionId"]],
                        }
                    )
    return found


def test_converter_and_rapport_agree_on_identity(
    converted: dict[str, Any], ours: dict[str, Any]
) -> None:
    for key in ("id", "version", "developer", "authorization"):
        assert ours[key] == converted[key], key
    assert ours["name"]["short"] == converted["name"]["short"]
    assert ours["description"]["full"] == converted["description"]["full"]


def test_converter_and_rapport_agree_on_requirements(
    converted: dict[str, Any], ours: dict[str, Any]
) -> None:
    (theirs,), (mine,) = converted["extensions"], ours["extensions"]
    assert mine["requirements"] == theirs["requirements"]
    assert theirs["requirements"]["capabilities"] == [{"name": "Mailbox", "minVersion": "1.5"}]


def test_converter_and_rapport_agree_on_buttons_and_what_they_open(
    converted: dict[str, Any], ours: dict[str, Any]
) -> None:
    (theirs,), (mine,) = converted["extensions"], ours["extensions"]
    expected = surfaces(theirs)
    # Kept difference: for the mobile button the converter writes the context "default"; the
    # unified manifest reference documents mobile buttons under "mailRead", as in the XML
    # (MobileMessageReadCommandSurface).
    expected[("mobile", "mailRead")] = expected.pop(("mobile", "default"))
    assert surfaces(mine) == expected
    assert set(expected) == {
        ("desktop", "mailRead"),
        ("desktop", "mailCompose"),
        ("desktop", "meetingDetailsAttendee"),
        ("desktop", "meetingDetailsOrganizer"),
        ("mobile", "mailRead"),
    }
    assert expected[("desktop", "mailRead")][0]["action"]["pinnable"] is True


def test_converter_and_rapport_agree_on_domains_and_icons(
    converted: dict[str, Any], ours: dict[str, Any]
) -> None:
    # Kept difference: AppDomains carry a scheme (https://host), validDomains want the bare host
    # (the schema's own example: "*.example.com"); the converter copies the AppDomain as it is.
    assert converted["validDomains"] == [BASE]
    assert ours["validDomains"] == [BASE.removeprefix("https://")]
    # Kept difference: the converter reuses the XML's 64/128 px URLs' paths as the package icons;
    # the schema wants a 192 px colour and a 32 px white outline icon inside the package, which
    # Rapport ships (color.png, outline.png).
    assert converted["icons"] == {
        "outline": "addin/assets/icon-64.png",
        "color": "addin/assets/icon-128.png",
    }
    assert ours["icons"] == {"outline": "outline.png", "color": "color.png"}
    (theirs,), (mine,) = converted["extensions"], ours["extensions"]
    assert mine["alternates"] == theirs["alternates"]


def test_remaining_differences_are_the_documented_ones(
    converted: dict[str, Any], ours: dict[str, Any]
) -> None:
    # manifestVersion: the converter writes its default (1.17); Rapport the newest released
    # schema Microsoft's validator bundles. audienceClaimUrl (for legacy Exchange identity tokens,
    # which Rapport does not use) and the Teams-only flags are left out; accentColor is Rapport's.
    assert converted["manifestVersion"] == "1.17"
    assert ours["manifestVersion"] == UNIFIED_MANIFEST_VERSION
    only_theirs = set(converted) - set(ours)
    assert only_theirs <= {"showLoadingIndicator", "isFullScreen", "defaultBlockUntilAdminAction"}
    (theirs,), (mine,) = converted["extensions"], ours["extensions"]
    assert set(theirs) - set(mine) == {"audienceClaimUrl"}
