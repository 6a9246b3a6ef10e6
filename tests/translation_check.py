"""While every test runs: each text the integration shows gets every placeholder it needs.

hassfest checks the shape of `translations/en.json`; only running the code shows which
placeholders a form, an abort, a repair issue or an exception actually supplies. This plugin
records every such call made with this integration's domain during a test and fails the test at
teardown when a translated text names a placeholder the call did not supply, or when the key
itself does not exist. It also checks that every entity the test registered has its translation
(name and enum states).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping
import json
from pathlib import Path
import string
import sys
from typing import Any

from homeassistant import data_entry_flow
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er, issue_registry as ir
import pytest

from custom_components.bambu_lan.const import DOMAIN

STRINGS: dict[str, Any] = json.loads(
    (
        Path(__file__).parent.parent / "custom_components" / DOMAIN / "translations" / "en.json"
    ).read_text()
)


def placeholders(text: str) -> set[str]:
    """The `{name}` fields of a translated text."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


def _texts(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _texts(value)
    elif isinstance(node, str):
        yield node


def _lookup(path: Iterable[str]) -> Any:
    node: Any = STRINGS
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _shown(step: Any, schema: Any) -> Any:
    """What the frontend renders of a step: field texts only for the fields in the form."""
    if not isinstance(step, dict):
        return step
    fields = {str(getattr(key, "schema", key)) for key in getattr(schema, "schema", None) or {}}
    shown = {key: value for key, value in step.items() if isinstance(value, str)}
    for part in ("data", "data_description"):
        shown |= {
            f"{part}.{field}": text for field, text in step.get(part, {}).items() if field in fields
        }
    return shown


class Recorder:
    """Collects what a test asked to show; reports what would show a raw `{placeholder}`."""

    def __init__(self) -> None:
        """Start with nothing wrong."""
        self.problems: list[str] = []
        self.issue_keys: dict[str, str] = {}

    def need(self, where: str, texts: Any, given: Mapping[str, Any] | None) -> None:
        """Every placeholder of `texts` (a string, a dict of strings, or None) is in `given`."""
        if texts is None:
            self.problems.append(f"{where}: no such translation")
            return
        missing = set().union(*(placeholders(t) for t in _texts(texts))) - set(given or {})
        if missing:
            self.problems.append(f"{where}: placeholders {sorted(missing)} not supplied")

    def entity(self, entry: er.RegistryEntry) -> None:
        """The entity's name, and each option of an enum sensor or a select, are translated."""
        path = ["entity", entry.domain, str(entry.translation_key)]
        where = ".".join(path)
        translation = _lookup(path)
        if not isinstance(translation, dict) or "name" not in translation:
            self.problems.append(f"{where}: entity {entry.entity_id} has no name")
            return
        options = (entry.capabilities or {}).get("options") or []
        missing = set(options) - set(translation.get("state", {}))
        if entry.domain in {"sensor", "select"} and missing:
            self.problems.append(f"{where}.state: {sorted(missing)} untranslated")

    def flow_texts(
        self, flow: data_entry_flow.FlowHandler, kind: str, key: str
    ) -> tuple[str, Any] | None:
        """The translations of a step ("step") or an abort reason ("abort") of our flows."""
        if flow.handler != DOMAIN:
            return None
        issue_id = getattr(flow, "issue_id", None)
        if issue_id is None:  # a config flow
            if kind == "abort" and key in {"reauth_successful", "reconfigure_successful"}:
                return None  # Home Assistant's own common strings
            return f"config.{kind}.{key}", _lookup(["config", kind, key])
        # The issue may be gone by now (e.g. its entry was removed): use what it was created as.
        path = ["issues", self.issue_keys.get(issue_id, "?"), "fix_flow", kind, key]
        return ".".join(path), _lookup(path)


@pytest.fixture(autouse=True)
def check_translations(monkeypatch: pytest.MonkeyPatch) -> Generator[Recorder]:
    """Wrap the calls that show translated text; assert at teardown."""
    recorder = Recorder()

    show_form = data_entry_flow.FlowHandler.async_show_form

    def checked_show_form(self: data_entry_flow.FlowHandler, **kwargs: Any) -> Any:
        step_id = kwargs.get("step_id") or ""
        if found := recorder.flow_texts(self, "step", step_id):
            where, texts = found
            given = kwargs.get("description_placeholders")
            recorder.need(where, _shown(texts, kwargs.get("data_schema")), given)
            for field, error in (kwargs.get("errors") or {}).items():
                prefix = where.removesuffix(f".step.{step_id}")
                path = f"{prefix}.error.{error}"
                recorder.need(f"{path} ({field})", _lookup(path.split(".")), given)
        return show_form(self, **kwargs)

    abort = data_entry_flow.FlowHandler.async_abort

    def checked_abort(self: data_entry_flow.FlowHandler, **kwargs: Any) -> Any:
        if found := recorder.flow_texts(self, "abort", kwargs["reason"]):
            recorder.need(*found, kwargs.get("description_placeholders"))
        return abort(self, **kwargs)

    create_issue = ir.async_create_issue

    def checked_create_issue(hass: HomeAssistant, domain: str, issue_id: str, **kwargs: Any) -> Any:
        # Issues a test fabricates by hand (to reach a fix flow's edge cases) are not checked.
        caller = str(sys._getframe(1).f_globals.get("__name__", ""))
        if domain == DOMAIN:
            recorder.issue_keys[issue_id] = kwargs["translation_key"]
        if domain == DOMAIN and caller.startswith("custom_components."):
            key = kwargs["translation_key"]
            issue = _lookup(["issues", key])
            given = kwargs.get("translation_placeholders")
            if issue is None:
                recorder.need(f"issues.{key}", None, given)
            else:
                recorder.need(f"issues.{key}.title", issue.get("title"), given)
                if "description" in issue:
                    recorder.need(f"issues.{key}.description", issue["description"], given)
                if bool(kwargs.get("is_fixable")) != ("fix_flow" in issue):
                    recorder.problems.append(
                        f"issues.{key}: is_fixable={kwargs.get('is_fixable')} but the "
                        f"translation {'has' if 'fix_flow' in issue else 'has no'} fix_flow"
                    )
        return create_issue(hass, domain, issue_id, **kwargs)

    error_init: Callable[..., None] = HomeAssistantError.__init__

    def checked_error_init(self: HomeAssistantError, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("translation_domain") == DOMAIN:
            key = kwargs.get("translation_key")
            recorder.need(
                f"exceptions.{key}.message",
                _lookup(["exceptions", str(key), "message"]),
                kwargs.get("translation_placeholders"),
            )
        error_init(self, *args, **kwargs)

    get_or_create = er.EntityRegistry.async_get_or_create

    def checked_get_or_create(
        self: er.EntityRegistry, domain: str, platform: str, unique_id: str, **kwargs: Any
    ) -> er.RegistryEntry:
        entry = get_or_create(self, domain, platform, unique_id, **kwargs)
        if platform == DOMAIN and entry.translation_key:
            recorder.entity(entry)
        return entry

    monkeypatch.setattr(er.EntityRegistry, "async_get_or_create", checked_get_or_create)
    monkeypatch.setattr(data_entry_flow.FlowHandler, "async_show_form", checked_show_form)
    monkeypatch.setattr(data_entry_flow.FlowHandler, "async_abort", checked_abort)
    monkeypatch.setattr(ir, "async_create_issue", checked_create_issue)
    monkeypatch.setattr(HomeAssistantError, "__init__", checked_error_init)

    yield recorder

    assert recorder.problems == [], "\n".join(recorder.problems)
