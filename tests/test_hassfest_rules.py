"""translations/*.json and icons.json against the rules hassfest applies to an integration.

hassfest runs in the published repository's workflow (see .github/workflows/validate.yml); these
are the same rules, written out, so that a broken string fails here first:
- shape: only the sections Home Assistant reads; a config or fix-flow step has only the keys a
  data-entry step has, and a `data_description` only for a field in `data`;
- a repair issue has a title and either a description or a fix flow, never both (a fixable
  issue keeps its text in `fix_flow.step.<step>.description`);
- keys are lower-case slugs; values are non-empty, trimmed, without HTML, URLs, `[%key:…%]`
  references, quoted or malformed placeholders; entity states and attribute names have none;
- every icons.json entry belongs to a translated entity (and its states to translated states).
The runtime half (every key the code uses exists, with the placeholders it supplies) is
tests/translation_check.py, which watches every test.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import re
import string
from typing import Any

import pytest

COMPONENT = Path(__file__).parent.parent / "custom_components" / "bambu_lan"
LANGUAGES = sorted((COMPONENT / "translations").glob("*.json"))
EN: dict[str, Any] = json.loads((COMPONENT / "translations" / "en.json").read_text())
ICONS: dict[str, Any] = json.loads((COMPONENT / "icons.json").read_text())

TOP_LEVEL = {"title", "config", "options", "issues", "entity", "exceptions", "services", "selector"}
FLOW_KEYS = {"flow_title", "step", "error", "abort", "progress", "create_entry"}
STEP_KEYS = {"title", "description", "data", "data_description", "menu_options", "submit"}
# Lower case letters and digits, single `_` or `-` between them (hassfest's translation key).
KEY = re.compile(r"[a-z0-9]+(?:[_-][a-z0-9]+)*")
HTML = re.compile(r"<\s*/?\s*[a-z][^>]*>", re.IGNORECASE)
URL = re.compile(r"\b(?:https?|ftps?|mqtts?|socks5|scp)://|\bwww\.", re.IGNORECASE)


def placeholders(text: str) -> set[str]:
    """The `{name}` fields of a text (raises ValueError on a stray brace)."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every non-dict value."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, f"{path}.{key}" if path else key)
    else:
        yield path, node


def _check_value(path: str, text: Any, *, allow_placeholders: bool = True) -> list[str]:
    if not isinstance(text, str) or not text.strip():
        return [f"{path}: not a non-empty string"]
    problems = []
    if text != text.strip():
        problems.append(f"{path}: leading or trailing white space")
    if HTML.search(text):
        problems.append(f"{path}: HTML")
    if URL.search(text):
        problems.append(f"{path}: URL (use a placeholder)")
    if "[%key:" in text:
        problems.append(f"{path}: a [%key:…%] reference (no strings.json build for us)")
    if re.search(r"'\{\w+\}'", text):
        problems.append(f"{path}: placeholder in single quotes")
    try:
        names = placeholders(text)
    except ValueError:
        return [*problems, f"{path}: malformed placeholder"]
    if any(not name.isidentifier() for name in names):
        problems.append(f"{path}: placeholder that is not an identifier")
    if names and not allow_placeholders:
        problems.append(f"{path}: placeholders are not allowed here")
    return problems


def _check_step(path: str, step: Any) -> list[str]:
    if not isinstance(step, dict):
        return [f"{path}: not an object"]
    problems = [f"{path}.{key}: unknown step key" for key in set(step) - STEP_KEYS]
    for key in set(step.get("data_description", {})) - set(step.get("data", {})):
        problems.append(f"{path}.data_description.{key}: no such field in data")
    return problems


def _check_flow(path: str, flow: Any) -> list[str]:
    if not isinstance(flow, dict) or not isinstance(flow.get("step"), dict):
        return [f"{path}: a flow needs a `step` object"]
    problems = [f"{path}.{key}: unknown flow key" for key in set(flow) - FLOW_KEYS]
    if "title" in flow:
        problems.append(f"{path}.title: moved out of config (use the top-level title)")
    for step_id, step in flow["step"].items():
        problems += _check_step(f"{path}.step.{step_id}", step)
    return problems


def structure_problems(strings: dict[str, Any]) -> list[str]:
    """Everything hassfest would reject about the shape of one translation file."""
    problems = [f"{key}: unknown top-level key" for key in set(strings) - TOP_LEVEL]
    if "config" in strings:
        problems += _check_flow("config", strings["config"])
    for issue_id, issue in strings.get("issues", {}).items():
        where = f"issues.{issue_id}"
        if set(issue) - {"title", "description", "fix_flow"}:
            problems.append(
                f"{where}: unknown keys {sorted(set(issue) - {'title', 'description', 'fix_flow'})}"
            )
        if "title" not in issue:
            problems.append(f"{where}: no title")
        if ("description" in issue) == ("fix_flow" in issue):
            problems.append(f"{where}: needs a description or a fix_flow, not both or neither")
        if "fix_flow" in issue:
            problems += _check_flow(f"{where}.fix_flow", issue["fix_flow"])
    for key in strings.get("exceptions", {}):
        if not re.fullmatch(r"[a-z0-9_]+", key) or set(strings["exceptions"][key]) != {"message"}:
            problems.append(f"exceptions.{key}: a slug key with just a message")
    for platform, entities in strings.get("entity", {}).items():
        for key, entity in entities.items():
            where = f"entity.{platform}.{key}"
            if not KEY.fullmatch(key):
                problems.append(f"{where}: key is not a translation key")
            for state in entity.get("state", {}):
                if not KEY.fullmatch(state):
                    problems.append(f"{where}.state.{state}: key is not a translation key")
            for attribute in entity.get("state_attributes", {}):
                if not KEY.fullmatch(attribute):
                    problems.append(f"{where}.state_attributes.{attribute}: not a key")
    return problems


def value_problems(strings: dict[str, Any]) -> list[str]:
    """Everything hassfest would reject about the values of one translation file."""
    problems = []
    for path, text in leaves(strings):
        # Entity states and attribute names are shown as they are: no placeholders.
        no_placeholders = path.startswith("entity.") and (
            ".state." in path or ".state_attributes." in path or "unit_of_measurement" in path
        )
        problems += _check_value(path, text, allow_placeholders=not no_placeholders)
    return problems


@pytest.mark.parametrize("path", LANGUAGES, ids=lambda path: path.name)
def test_structure(path: Path) -> None:
    """Each translation file has the shape hassfest accepts."""
    assert structure_problems(json.loads(path.read_text())) == []


@pytest.mark.parametrize("path", LANGUAGES, ids=lambda path: path.name)
def test_values(path: Path) -> None:
    """Each text is one hassfest accepts."""
    assert value_problems(json.loads(path.read_text())) == []


def test_checks_catch_what_hassfest_rejects() -> None:
    """The checks above fail on each kind of mistake hassfest reports (so they can fail)."""
    both = {"issues": {"x": {"title": "T", "description": "D", "fix_flow": {"step": {}}}}}
    neither = {"issues": {"x": {"title": "T"}}}
    assert structure_problems(both) == [
        "issues.x: needs a description or a fix_flow, not both or neither"
    ]
    assert structure_problems(neither) == structure_problems(both)
    orphan = {"config": {"step": {"user": {"data": {}, "data_description": {"host": "H"}}}}}
    assert structure_problems(orphan) == [
        "config.step.user.data_description.host: no such field in data"
    ]
    assert structure_problems({"entity": {"sensor": {"Bad__Key": {"name": "N"}}}})
    assert structure_problems({"config": {"title": "T", "step": {}}})
    bad_values = {
        "a": " padded",
        "b": "see <b>this</b>",
        "c": "go to https://example.com",
        "d": "'{quoted}'",
        "e": "{not closed",
        "f": "[%key:common::x%]",
        "entity": {"sensor": {"s": {"state": {"on": "On {x}"}}}},
    }
    assert [p.split(":")[0] for p in value_problems(bad_values)] == [
        "a",
        "b",
        "c",
        "d",
        "e",
        "f",
        "entity.sensor.s.state.on",
    ]


def test_icons_have_translations() -> None:
    """Every icons.json entity (and state) is a translated entity (and state)."""
    for platform, entities in ICONS["entity"].items():
        for key, icon in entities.items():
            translation = EN["entity"].get(platform, {}).get(key)
            assert translation is not None, f"icons.json entity.{platform}.{key}"
            assert set(icon) <= {"default", "state", "range", "state_attributes"}, key
            assert str(icon["default"]).startswith("mdi:"), key
            if "state" in translation:
                assert set(icon.get("state", {})) <= set(translation["state"]), key
    assert set(ICONS) <= {"entity", "services"}
