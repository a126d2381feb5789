"""Print result files of ``run.py`` as one Markdown table (for the README).

python benchmarks/report.py benchmarks/results/*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _value(number: float | None, unit: str) -> str:
    if number is None:
        return "-"
    if unit == "rows/s":
        return f"{number:,.0f}"
    return f"{number:,.2f}"


def main(paths: list[str]) -> int:
    print("| backend | workload | figure | package | raw | unit | ratio | target | |")
    print("|---|---|---|---:|---:|---|---:|---|---|")
    for path in paths:
        document = json.loads(Path(path).read_text())
        for figure in document["figures"]:
            verdict = "ok" if figure["ok"] else "MISSED"
            if figure["target"] == "(info)":
                verdict = "info"
            print(
                f"| {figure['backend']} | {figure['workload']} | {figure['name']} | "
                f"{_value(figure['package'], figure['unit'])} | "
                f"{_value(figure['raw'], figure['unit'])} | {figure['unit']} | "
                f"{figure['ratio']:.2f} | {figure['target']} | {verdict} |"
            )
        for failure in document.get("failures", []):
            print(f"| {failure} | | | | | | | | FAILED |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
