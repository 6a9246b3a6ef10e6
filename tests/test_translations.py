"""Every translation key the code can use exists in translations/en.json, fully literal."""

from __future__ import annotations

import ast
import json
from pathlib import Path
import re
from typing import Any

from custom_components.bambu_lan.issues import display_text
from custom_components.bambu_lan.printer.health import CertificateHealth, CertificateIssue
from custom_components.bambu_lan.printer.session import CommandError
from custom_components.bambu_lan.printer.tls import TLSErrorKind

COMPONENT = Path(__file__).parent.parent / "custom_components" / "bambu_lan"
STRINGS: dict[str, Any] = json.loads((COMPONENT / "translations" / "en.json").read_text())


def _leaves(node: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in _leaves(value, f"{path}.{key}")]
    return [(path, node)]


def test_fully_literal() -> None:
    """Custom integrations get no strings.json build: no [%key:…%] references."""
    for path, text in _leaves(STRINGS):
        assert isinstance(text, str), path
        assert "[%key:" not in text, path
        assert text.strip(), path


def _literal_keys(source: str) -> set[str]:
    """translation_key="…" keyword arguments and description fields with a literal value."""
    keys = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.keyword)
            and node.arg == "translation_key"
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            keys.add(node.value.value)
    return keys


def test_exception_keys_exist() -> None:
    """Every HomeAssistantError / ConfigEntry* translation key the code raises is translated."""
    exceptions = set(STRINGS["exceptions"])
    used: set[str] = set()
    for module in (
        "coordinator.py",
        "__init__.py",
        "button.py",
        "light.py",
        "select.py",
        "services.py",
    ):
        path = COMPONENT / module
        if path.exists():
            source = path.read_text()
            if "HomeAssistantError" in source or "ConfigEntry" in source:
                used |= {
                    key
                    for key in _literal_keys(source)
                    if key not in STRINGS["entity"].get(module.removesuffix(".py"), {})
                }
    # Keys built at run time: tls_<kind> and command_<kind>.
    used |= {f"tls_{kind}" for kind in TLSErrorKind}
    used |= {f"command_{kind}" for kind in ("failed", "timeout", "not_connected")}
    assert used - exceptions == set()
    assert CommandError("x", "timeout").kind == "timeout"


def test_issue_keys_exist() -> None:
    """Every repair issue the integration can raise has a title and a description."""
    for key in [*CertificateIssue, "signed_commands"]:
        issue = STRINGS["issues"][key]
        assert issue.get("title")
        assert issue.get("description") or issue.get("fix_flow")


def test_certificate_states_translated() -> None:
    """The certificate enum sensor's states all have text."""
    states = STRINGS["entity"]["sensor"]["certificate"]["state"]
    assert set(states) >= {str(health) for health in CertificateHealth}


def test_config_errors_exist() -> None:
    """Every errors["base"] / abort reason the config flow can produce is translated."""
    source = (COMPONENT / "config_flow.py").read_text()
    errors = set(STRINGS["config"]["error"])
    aborts = set(STRINGS["config"]["abort"])
    for key in re.findall(r'FlowError\(\s*"(\w+)"', source):
        assert key in errors, key
    for key in re.findall(r'reason="(\w+)"', source):
        assert key in aborts or key in {"reauth_successful", "reconfigure_successful"}, key


def test_placeholders_are_balanced() -> None:
    """A stray brace would make the frontend show the raw template."""
    for path, text in _leaves(STRINGS):
        assert text.count("{") == text.count("}"), path


def test_certificate_text_is_shown_inert() -> None:
    """Issuer and CN names come from whoever made the certificate: no markdown gets through."""
    forged = "Bambu [click here](http://evil.example)\n# Trust me <b>now</b> `x` |a|"
    shown = display_text(forged)
    assert not set("[]()<>`#|\n") & set(shown)
    assert len(display_text("x" * 500)) == 64
    assert display_text(None) == display_text("") == ""
