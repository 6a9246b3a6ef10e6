"""Fail when any module of the integration is below the coverage floor (not only the total).

Reads the JSON report that `scripts/test` asks pytest-cov for; usage: check_coverage.py REPORT FLOOR
"""

from __future__ import annotations

import json
from pathlib import Path
import sys


def main() -> int:
    """Print the modules under the floor; exit 1 if there are any (silent otherwise, so that
    pytest's summary stays the last line of the run)."""
    report, floor = Path(sys.argv[1]), float(sys.argv[2])
    files = json.loads(report.read_text())["files"]
    low = {
        name: data["summary"]["percent_covered"]
        for name, data in files.items()
        if data["summary"]["percent_covered"] < floor
    }
    for name, percent in sorted(low.items()):
        print(f"coverage of {name} is {percent:.1f} %, below the {floor:g} % floor per module")
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
