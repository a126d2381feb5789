"""W4 (export) and W5 (import): wall time and peak RSS, each run in its own process.

Peak RSS is the child's own VmHWM (see ``peak.py``). The API and raw
times are measured inside the worker (connect to close); the CLI time is the
command's wall time, compared with the raw worker's wall time. "Flat" means the
peak RSS of the full export/import minus that of a near-empty one (devices and
cards only) stays small: memory does not grow with the rows.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import package
from sqlalchemy.engine import URL
from workloads import Figure, Sizes

WORKER = Path(__file__).resolve().parent / "transfer_worker.py"
#: Extra peak memory allowed for all the rows over a near-empty transfer, in MB.
FLAT_MB = 30.0


PEAK = Path(__file__).resolve().parent / "peak.py"


def _run(arguments: list[str]) -> tuple[float, float, dict[str, Any]]:
    """Run ``python peak.py arguments``; (wall seconds, peak RSS in MB, its JSON output or {})."""
    with tempfile.TemporaryDirectory() as folder:
        peak_file = Path(folder) / "peak"
        environment = {**os.environ, "CARDLINK_BENCH_PEAK_FILE": str(peak_file)}
        started = time.perf_counter()
        process = subprocess.run(
            [sys.executable, str(PEAK), *arguments],
            capture_output=True,
            text=True,
            env=environment,
            check=False,
        )
        wall = time.perf_counter() - started
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(arguments[:3])} failed: {process.stderr.strip()[-500:]}")
        peak = int(peak_file.read_text() or 0) / 1024
    last = process.stdout.strip().splitlines()[-1] if process.stdout.strip() else ""
    result = json.loads(last) if last.startswith("{") else {}
    return wall, peak, result


def _url_text(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def _worker(mode: str, url: URL, path: Path) -> tuple[float, float, float, int]:
    """(wall, inner seconds, peak MB, rows) of one worker run."""
    schema_file = path.with_name("schema.json")
    if not schema_file.exists():
        import transfer_worker

        schema_file.write_text(json.dumps(transfer_worker.schema()))
    wall, peak, result = _run([str(WORKER), mode, _url_text(url), str(path), str(schema_file)])
    return wall, float(result["seconds"]), peak, int(result["rows"])


def _cli_run(url: URL, *arguments: str) -> tuple[float, float]:
    command = ["-m", "cardlink.database.cli", "--database-url", _url_text(url), *arguments]
    wall, peak, _ = _run(command)
    return wall, peak


def _fresh(url: URL) -> None:
    package.reset_schema(url)


def run(backend: str, url: URL, import_url: URL, sizes: Sizes) -> list[Figure]:
    """Export ``url`` (API, CLI, raw) and import the export into ``import_url`` (same three)."""
    work = Path(tempfile.mkdtemp(prefix="cardlink-transfer-"))
    api_file, cli_file, raw_file = (work / f"{name}.json" for name in ("api", "cli", "raw"))
    tiny_file = work / "tiny.json"
    times: dict[str, list[float]] = {
        key: []
        for key in ("api", "raw", "cli", "raw_wall", "api_in", "raw_in", "cli_in", "rawin_wall")
    }
    peaks: dict[str, list[float]] = {
        key: [] for key in ("api", "raw", "cli", "cli_in", "api_in", "raw_in")
    }
    rows = 0
    try:
        for repeat in range(sizes.transfer_repeats):
            order = ["api", "cli", "raw"]
            order = order[repeat % 3 :] + order[: repeat % 3]
            for side in order:
                if side == "api":
                    _, seconds, peak, rows = _worker("api-export", url, api_file)
                    times["api"].append(seconds)
                elif side == "raw":
                    wall, seconds, peak, _ = _worker("raw-export", url, raw_file)
                    times["raw"].append(seconds)
                    times["raw_wall"].append(wall)
                else:
                    wall, peak = _cli_run(url, "export", "--output", str(cli_file))
                    times["cli"].append(wall)
                peaks[side].append(peak)
        tiny_export_peak = tiny_import_peak = 0.0
        if sizes.flatness:
            tiny_export_peak = _cli_run(
                url, "export", "--tables", "devices,cards", "--output", str(tiny_file)
            )[1]
        for repeat in range(sizes.transfer_repeats):
            order = ["api_in", "cli_in", "raw_in"]
            order = order[repeat % 3 :] + order[: repeat % 3]
            for side in order:
                _fresh(import_url)
                if side == "api_in":
                    _, seconds, peak, created = _worker("api-import", import_url, api_file)
                    times["api_in"].append(seconds)
                elif side == "raw_in":
                    wall, seconds, peak, created = _worker("raw-import", import_url, api_file)
                    times["raw_in"].append(seconds)
                    times["rawin_wall"].append(wall)
                else:
                    wall, peak = _cli_run(import_url, "import", str(api_file))
                    times["cli_in"].append(wall)
                    created = rows
                if created != rows:
                    raise AssertionError(f"W5 {side}: imported {created} rows of {rows}")
                peaks[side].append(peak)
        if sizes.flatness:
            _fresh(import_url)
            tiny_import_peak = _cli_run(import_url, "import", str(tiny_file))[1]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    median = statistics.median
    figures = []

    def timing(workload: str, name: str, mine: str, raw: str, limit: float) -> None:
        value, base = median(times[mine]), median(times[raw])
        ratio = value / base
        figures.append(
            Figure(
                backend,
                workload,
                name,
                "s",
                value,
                base,
                ratio,
                f"<= {limit}",
                ratio <= limit,
                {"rows": rows, "runs": {mine: times[mine], raw: times[raw]}},
            )
        )

    def memory(workload: str, name: str, side: str, raw: str, tiny: float, limit: float) -> None:
        peak = max(peaks[side])
        growth = peak - tiny
        figures.append(
            Figure(
                backend,
                workload,
                f"{name} peak RSS",
                "MB",
                peak,
                max(peaks[raw]),
                peak / max(peaks[raw]),
                f"< {limit:.0f}MB",
                peak < limit,
                {"all_peaks": peaks},
            )
        )
        if not tiny:
            return
        figures.append(
            Figure(
                backend,
                workload,
                f"{name} RSS growth (all rows - none)",
                "MB",
                growth,
                None,
                growth / tiny,
                f"<= {FLAT_MB:.0f}MB",
                growth <= FLAT_MB,
                {"near_empty_peak_mb": tiny},
            )
        )

    timing("W4", "export JSON via API", "api", "raw", 1.5)
    timing("W4", "export JSON via CLI (wall)", "cli", "raw_wall", 1.5)
    memory("W4", "export CLI", "cli", "raw", tiny_export_peak, 150)
    timing("W5", "import JSON via API", "api_in", "raw_in", 2.0)
    timing("W5", "import JSON via CLI (wall)", "cli_in", "rawin_wall", 2.0)
    memory("W5", "import CLI", "cli_in", "raw_in", tiny_import_peak, 200)
    return figures
