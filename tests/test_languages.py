"""Every language has every key of en.json, with the same placeholders, and nothing else.

Whoever adds a text to en.json adds it, translated, to every other language file too: this
test fails otherwise, and names the missing keys.
"""

from __future__ import annotations

import json
from pathlib import Path
import string
from typing import Any

import pytest

TRANSLATIONS = Path(__file__).parent.parent / "custom_components" / "bambu_lan" / "translations"
EN: dict[str, Any] = json.loads((TRANSLATIONS / "en.json").read_text())
OTHERS = sorted(path for path in TRANSLATIONS.glob("*.json") if path.name != "en.json")


def flatten(node: Any, path: str = "") -> dict[str, str]:
    """{dotted key: text} of every text in a translation file."""
    if isinstance(node, dict):
        flat: dict[str, str] = {}
        for key, value in node.items():
            flat |= flatten(value, f"{path}.{key}" if path else key)
        return flat
    return {path: node}


def placeholders(text: str) -> list[str]:
    """The `{name}` fields of a text, sorted (a name used twice counts once)."""
    return sorted({field for _, field, _, _ in string.Formatter().parse(text) if field})


def test_at_least_the_promised_languages() -> None:
    """German, French, Spanish and Dutch besides English."""
    assert {path.stem for path in OTHERS} >= {"de", "fr", "es", "nl"}


@pytest.mark.parametrize("path", OTHERS, ids=lambda path: path.stem)
def test_same_keys_as_english(path: Path) -> None:
    """Nothing missing (it would show English), nothing extra (it would be dead text)."""
    english, other = flatten(EN), flatten(json.loads(path.read_text()))
    assert sorted(set(english) - set(other)) == [], f"{path.name} lacks these keys"
    assert sorted(set(other) - set(english)) == [], f"{path.name} has keys en.json lacks"


@pytest.mark.parametrize("path", OTHERS, ids=lambda path: path.stem)
def test_same_placeholders_as_english(path: Path) -> None:
    """A translation uses exactly the placeholders of its English text."""
    english, other = flatten(EN), flatten(json.loads(path.read_text()))
    wrong = {
        key: (placeholders(english[key]), placeholders(text))
        for key, text in other.items()
        if key in english and placeholders(text) != placeholders(english[key])
    }
    assert wrong == {}


@pytest.mark.parametrize("path", OTHERS, ids=lambda path: path.stem)
def test_translated_not_copied(path: Path) -> None:
    """Most texts differ from English (names such as "Filament" or "Standard" may not)."""
    english, other = flatten(EN), flatten(json.loads(path.read_text()))
    long_texts = [key for key, text in english.items() if len(text) > 40]
    copied = [key for key in long_texts if other.get(key) == english[key]]
    assert copied == []


def test_checks_can_fail() -> None:
    """The comparisons above notice a missing key and a changed placeholder."""
    assert set(flatten({"a": {"b": "x", "c": "y"}})) - set(flatten({"a": {"b": "x"}})) == {"a.c"}
    assert placeholders("{host}:{port}") != placeholders("{host}:{porto}")
    assert placeholders("{a} {a}") == ["a"]
