"""Print result files of ``run.py`` as one Markdown table (for the README), then the count.

python benchmarks/report.py benchmarks/results/*.json

The closing line counts judged targets apart from info rows, as ``run.py`` does:
"N judged targets, M met; K info rows" (and the backends that failed, if any).
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


#: The target of an info-only row (``workloads.INFO``; this script imports nothing of the run).
INFO = "(info)"


def main(paths: list[str]) -> int:
    print("| backend | workload | figure | package | raw | unit | ratio | target | |")
    print("|---|---|---|---:|---:|---|---:|---|---|")
    judged = met = info = failed = 0
    for path in paths:
        document = json.loads(Path(path).read_text())
        for figure in document["figures"]:
            if figure["target"] == INFO:
                verdict = "info"
                info += 1
            else:
                verdict = "ok" if figure["ok"] else "MISSED"
                judged += 1
                met += bool(figure["ok"])
            print(
                f"| {figure['backend']} | {figure['workload']} | {figure['name']} | "
                f"{_value(figure['package'], figure['unit'])} | "
                f"{_value(figure['raw'], figure['unit'])} | {figure['unit']} | "
                f"{figure['ratio']:.2f} | {figure['target']} | {verdict} |"
            )
        for failure in document.get("failures", []):
            print(f"| {failure} | | | | | | | | FAILED |")
            failed += 1
    print()
    print(
        f"{judged} judged targets, {met} met; {info} info rows"
        + (f"; {failed} backend(s) FAILED" if failed else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
