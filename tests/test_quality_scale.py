"""quality_scale.yaml lists every rule of the integration quality scale, at platinum.

hassfest validates this file only for core integrations, so the same discipline is kept here:
every rule present, each `done` or `exempt` with a reason (no `todo` left), and the rules whose
status follows from the code checked against the code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parent.parent
COMPONENT = ROOT / "custom_components" / "bambu_lan"

# The tiers of Home Assistant's integration quality scale (2026.10).
BRONZE = {
    "action-setup",
    "appropriate-polling",
    "brands",
    "common-modules",
    "config-flow-test-coverage",
    "config-flow",
    "dependency-transparency",
    "docs-actions",
    "docs-conditions",
    "docs-high-level-description",
    "docs-installation-instructions",
    "docs-removal-instructions",
    "docs-triggers",
    "entity-event-setup",
    "entity-unique-id",
    "has-entity-name",
    "runtime-data",
    "test-before-configure",
    "test-before-setup",
    "unique-config-entry",
}
SILVER = {
    "action-exceptions",
    "config-entry-unloading",
    "docs-configuration-parameters",
    "docs-installation-parameters",
    "entity-unavailable",
    "integration-owner",
    "log-when-unavailable",
    "parallel-updates",
    "reauthentication-flow",
    "test-coverage",
}
GOLD = {
    "devices",
    "diagnostics",
    "discovery",
    "discovery-update-info",
    "docs-data-update",
    "docs-examples",
    "docs-known-limitations",
    "docs-supported-devices",
    "docs-supported-functions",
    "docs-troubleshooting",
    "docs-use-cases",
    "dynamic-devices",
    "entity-category",
    "entity-device-class",
    "entity-disabled-by-default",
    "entity-translations",
    "exception-translations",
    "icon-translations",
    "reconfiguration-flow",
    "repair-issues",
    "stale-devices",
}
PLATINUM = {"async-dependency", "inject-websession", "strict-typing"}


def _rules() -> dict[str, dict[str, Any]]:
    raw = yaml.safe_load((COMPONENT / "quality_scale.yaml").read_text())["rules"]
    return {
        name: value if isinstance(value, dict) else {"status": value} for name, value in raw.items()
    }


def test_every_rule_listed_once() -> None:
    """All 54 rules, nothing else."""
    assert len(BRONZE | SILVER | GOLD | PLATINUM) == 54
    assert set(_rules()) == BRONZE | SILVER | GOLD | PLATINUM


def test_platinum_everywhere_not_exempt() -> None:
    """Every rule is done, or exempt with a reason; none is left to do."""
    for name, rule in _rules().items():
        assert rule["status"] in {"done", "exempt"}, name
        if rule["status"] == "exempt":
            assert len(str(rule.get("comment", ""))) > 20, f"{name}: exempt needs a reason"


def test_statuses_follow_the_code() -> None:
    """Exemptions that the code could outgrow are re-checked against it."""
    rules = _rules()
    has_actions = (COMPONENT / "services.yaml").exists()
    for name in ("action-setup", "docs-actions"):
        assert (rules[name]["status"] == "done") == has_actions, name
    for name in ("docs-triggers", "docs-conditions"):
        if rules[name]["status"] == "exempt":
            assert not (COMPONENT / f"device_{name.removeprefix('docs-')[:-1]}.py").exists()
    if rules["inject-websession"]["status"] == "exempt":
        for module in COMPONENT.rglob("*.py"):  # aiohttp.web (the media view) is no client
            assert "ClientSession" not in module.read_text(), module
    manifest = (COMPONENT / "manifest.json").read_text()
    assert '"iot_class": "local_push"' in manifest  # appropriate-polling: nothing polls
    assert (COMPONENT / "diagnostics.py").exists()
    assert (COMPONENT / "brand" / "icon.png").exists()
    assert (COMPONENT / "icons.json").exists()
    assert "codeowners" in manifest


def test_parallel_updates_in_every_platform() -> None:
    """parallel-updates: each entity platform module sets PARALLEL_UPDATES."""
    from custom_components.bambu_lan import PLATFORMS

    for platform in PLATFORMS:
        source = (COMPONENT / f"{platform.value}.py").read_text()
        assert "\nPARALLEL_UPDATES = " in source, platform


def test_async_dependency_no_threads() -> None:
    """async-dependency (see its comment): paho's own network thread is never started."""
    for module in (COMPONENT / "printer").rglob("*.py"):
        source = module.read_text()
        assert "loop_start(" not in source, module
        assert "loop_forever(" not in source, module
        assert "Thread(" not in source, module
    # The session's paho client is driven by the event loop (printer/mqtt_wire.py), its reads
    # through the loop's one reader for all MQTT connections (printer/coalesce.py).
    wire = (COMPONENT / "printer" / "mqtt_wire.py").read_text()
    assert "add_reader(" in (COMPONENT / "printer" / "coalesce.py").read_text()
    assert "add_writer(" in wire
    assert "loop_misc()" in wire
