"""The printer library stays free of Home Assistant: a source scan over `printer/`."""

from __future__ import annotations

import ast
from pathlib import Path

from custom_components.bambu_lan import printer

PRINTER = Path(printer.__file__).parent


def _homeassistant_imports(path: Path) -> list[str]:
    """Every import of `homeassistant` (absolute, or relative out of the package) in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > 1:  # `from .. import x` reaches the Home Assistant glue
                found.append(f"{path.name}:{node.lineno} imports from the integration")
            names = [node.module or ""]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            names = [arg.value for arg in node.args if isinstance(arg, ast.Constant)]
        found += [
            f"{path.name}:{node.lineno} imports {name}"
            for name in names
            if isinstance(name, str) and name.split(".")[0] == "homeassistant"
        ]
    return found


def test_printer_package_imports_no_home_assistant() -> None:
    """No module under printer/ imports homeassistant or the integration around it."""
    sources = sorted(PRINTER.rglob("*.py"))
    assert {"tls.py", "session.py", "state.py", "health.py", "announce.py"} <= {
        path.name for path in sources
    }
    assert [found for path in sources for found in _homeassistant_imports(path)] == []


def test_scan_catches_a_planted_violation(tmp_path: Path) -> None:
    """The scan notices each way a Home Assistant import could sneak in."""
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import homeassistant\n"
        "from homeassistant.core import HomeAssistant\n"
        "import homeassistant.helpers.entity as entity\n"
        "from ..coordinator import BambuCoordinator\n"
        "__import__('homeassistant.const')\n"
        "import json\nfrom .tls import CERTS_DIR\n"
    )
    found = _homeassistant_imports(planted)
    assert len(found) == 5
    assert all("planted.py" in line for line in found)
