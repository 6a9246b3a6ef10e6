"""The GitHub workflows run on the hosting service, not here: check what can be checked locally.

They must be valid YAML, run on push and pull request, and call the HACS action, the hassfest
action and exactly the commands CI runs here (`scripts/setup`, `scripts/test`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"


def _load(path: Path) -> dict[Any, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), path.name
    return document


def _all() -> dict[str, dict[Any, Any]]:
    return {path.name: _load(path) for path in sorted(WORKFLOWS.glob("*.y*ml"))}


def _triggers(workflow: dict[Any, Any]) -> set[str]:
    # YAML 1.1 reads a bare `on` key as the boolean True.
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on}
    if isinstance(on, list):
        return set(on)
    assert isinstance(on, dict)
    return set(on)


def _steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for job in workflow["jobs"].values():
        assert job.get("runs-on"), "every job names its runner"
        steps.extend(job["steps"])
    return steps


def test_workflows_are_valid_yaml() -> None:
    """Every workflow parses, has a name and jobs, and every step either uses or runs."""
    workflows = _all()
    assert {"validate.yml", "tests.yml"} <= set(workflows)
    for name, workflow in workflows.items():
        assert workflow.get("name"), name
        assert workflow.get("jobs"), name
        for step in _steps(workflow):
            assert ("uses" in step) != ("run" in step), (name, step)


@pytest.mark.parametrize("name", ["validate.yml", "tests.yml"])
def test_run_on_push_and_pull_request(name: str) -> None:
    """Both workflows run for every push and every pull request."""
    assert {"push", "pull_request"} <= _triggers(_load(WORKFLOWS / name))


def test_validation_uses_hacs_and_hassfest() -> None:
    """The validate workflow calls the HACS action (as an integration) and hassfest."""
    steps = _steps(_load(WORKFLOWS / "validate.yml"))
    uses = {str(step.get("uses", "")).split("@")[0]: step for step in steps}
    assert uses["hacs/action"]["with"]["category"] == "integration"
    assert "home-assistant/actions/hassfest" in uses
    assert all("@" in str(step["uses"]) for step in steps if "uses" in step)


def test_tests_run_the_ci_commands() -> None:
    """The tests workflow runs scripts/setup, then scripts/test: the same as .ci/run."""
    steps = _steps(_load(WORKFLOWS / "tests.yml"))
    runs = [str(step["run"]).strip() for step in steps if "run" in step]
    assert runs == ["scripts/setup", "scripts/test"]
    assert any(str(step.get("uses", "")).startswith("actions/checkout@") for step in steps)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/setup\nscripts/test" in ci
    for script in ("setup", "test"):
        assert os.access(ROOT / "scripts" / script, os.X_OK), script
