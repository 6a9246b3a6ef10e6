"""The package metadata HACS and Home Assistant read, and the integration loading at all."""

from __future__ import annotations

import json
from pathlib import Path
import re

from awesomeversion import AwesomeVersion
from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_custom_components, async_get_integration

ROOT = Path(__file__).parent.parent
COMPONENT = ROOT / "custom_components" / "bambu_lan"


def _manifest() -> dict[str, object]:
    return json.loads((COMPONENT / "manifest.json").read_text())


def test_manifest_keys() -> None:
    """hassfest + HACS: required keys, valid values, key order domain, name, then sorted."""
    manifest = _manifest()
    for key in ("domain", "name", "version", "codeowners", "documentation", "issue_tracker"):
        assert manifest.get(key), key
    assert manifest["domain"] == COMPONENT.name == "bambu_lan"
    assert manifest["name"] == "Bambu Lab LAN"
    assert manifest["iot_class"] == "local_push"
    assert manifest["integration_type"] == "device"
    assert manifest["config_flow"] is True
    keys = list(manifest)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    assert str(manifest["documentation"]).startswith("https://")
    assert AwesomeVersion(str(manifest["version"])).valid
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(manifest["version"]))


def test_requirements_match_test_pins() -> None:
    """What the manifest asks HA to install is exactly what the tests run with."""
    pins = {
        line.split("==")[0].lower(): line.strip()
        for line in (ROOT / "requirements_test.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    for req in _manifest()["requirements"]:  # type: ignore[attr-defined]
        name = req.split("==")[0].lower()
        assert pins.get(name) == req


def test_hacs_json() -> None:
    """hacs.json names the integration and the Home Assistant version we test."""
    hacs = json.loads((ROOT / "hacs.json").read_text())
    assert set(hacs) <= {
        "name",
        "homeassistant",
        "hacs",
        "country",
        "content_in_root",
        "zip_release",
        "filename",
        "hide_default_branch",
        "persistent_directory",
        "render_readme",
    }
    assert hacs["name"] == "Bambu Lab LAN"
    pinned = re.search(
        r"pytest-homeassistant-custom-component==(\S+)",
        (ROOT / "requirements_test.txt").read_text(),
    )
    assert pinned
    from homeassistant.const import __version__ as ha_version

    assert hacs["homeassistant"] == ha_version


def test_brand_and_license() -> None:
    """HACS checks for a brand icon and an OSI licence."""
    icon = (COMPONENT / "brand" / "icon.png").read_bytes()
    assert icon.startswith(b"\x89PNG\r\n\x1a\n")
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert (COMPONENT / "py.typed").exists()


async def test_integration_loads(hass: HomeAssistant) -> None:
    """Home Assistant finds the custom integration with its manifest."""
    custom = await async_get_custom_components(hass)
    assert "bambu_lan" in custom
    integration = await async_get_integration(hass, "bambu_lan")
    assert integration.name == "Bambu Lab LAN"
    assert integration.config_flow is True
