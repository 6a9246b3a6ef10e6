"""The package metadata HACS and Home Assistant read, and the integration loading at all."""

from __future__ import annotations

import json
from pathlib import Path
import re
import tomllib

from awesomeversion import AwesomeVersion
from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_custom_components, async_get_integration

ROOT = Path(__file__).parent.parent
COMPONENT = ROOT / "custom_components" / "bambu_lan"


# The lowest Home Assistant release the whole test suite passed on (see README, "Which Home
# Assistant"); hacs.json's `homeassistant` is a minimum, so it must not be the tested maximum.
MIN_HOME_ASSISTANT = "2026.10.0"


def _manifest() -> dict[str, object]:
    return json.loads((COMPONENT / "manifest.json").read_text())


def _repository() -> str:
    """The published repository's URL: pyproject.toml is the one place that names it."""
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Issues"] == urls["Repository"] + "/issues"
    return str(urls["Repository"])


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
    assert all(value not in ([], {}, "", None) for value in manifest.values())
    assert AwesomeVersion(str(manifest["version"])).valid
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(manifest["version"]))


def test_repository_urls_in_one_place() -> None:
    """manifest.json and the README point at the repository pyproject.toml names."""
    repository = _repository()
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repository)
    owner = repository.split("/")[3]
    manifest = _manifest()
    assert manifest["documentation"] == repository
    assert manifest["issue_tracker"] == f"{repository}/issues"
    assert manifest["codeowners"] == [f"@{owner}"]
    readme = (ROOT / "README.md").read_text()
    assert f"`{repository}`" in readme
    for url in re.findall(r"https://github\.com/[\w./-]+", readme):
        assert url.startswith(repository), url


def test_loggers_are_library_loggers() -> None:
    """`loggers` names the loggers of the requirements, not the integration's own."""
    manifest = _manifest()
    assert manifest["loggers"] == ["paho.mqtt"]
    packages = {str(req).split("==")[0].replace("-", ".") for req in manifest["requirements"]}  # type: ignore[attr-defined]
    for logger in manifest["loggers"]:  # type: ignore[attr-defined]
        assert any(logger == pkg or logger.startswith(f"{pkg}.") for pkg in packages), logger


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
    """hacs.json names the integration and the lowest Home Assistant it runs on."""
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

    assert hacs["homeassistant"] == MIN_HOME_ASSISTANT
    assert AwesomeVersion(MIN_HOME_ASSISTANT) <= AwesomeVersion(ha_version)
    assert (
        f"Home Assistant {MIN_HOME_ASSISTANT.rsplit('.', 1)[0]} or newer"
        in (ROOT / "README.md").read_text()
    )


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
