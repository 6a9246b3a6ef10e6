"""The README's pictures exist, are small PNGs, and come from scripts/e2e."""

from __future__ import annotations

from pathlib import Path
import re

ROOT = Path(__file__).parent.parent
SHOTS = ROOT / "docs" / "screenshots"


def test_pictures_exist_and_are_small() -> None:
    """Each picture the README shows is a PNG under 150 KB that scripts/e2e writes."""
    readme = (ROOT / "README.md").read_text()
    shown = re.findall(r"\]\((docs/screenshots/[\w-]+\.png)\)", readme)
    assert {Path(path).stem for path in shown} == {
        "add-dialog",
        "flow-error",
        "device-page",
        "certificate-diagnostics",
        "repair",
    }
    e2e = (ROOT / "scripts" / "e2e.py").read_text()
    for path in shown:
        data = (ROOT / path).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
        assert len(data) < 150_000, path
        assert f'readme_name="{Path(path).stem}"' in e2e, path
    assert sorted(p.name for p in SHOTS.iterdir()) == sorted(Path(p).name for p in shown)


def test_internal_links_resolve() -> None:
    """Every #anchor link in the README points at one of its headings."""
    readme = (ROOT / "README.md").read_text()
    headings = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"(?m)^#+ (.*)$", readme)
    }
    for anchor in re.findall(r"\]\(#([^)]+)\)", readme):
        assert anchor in headings, anchor
