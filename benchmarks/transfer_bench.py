"""W4 (export) and W5 (import): wall time and peak RSS, each run in its own process.

Peak RSS is the child's own VmHWM (see ``peak.py``). The API and raw
times are measured inside the worker (connect to close); the CLI time is the
command's wall time, compared with the raw worker's wall time. "Flat" means the
peak RSS of the full export/import minus that of a near-empty one (devices and
cards only) stays small: memory does not grow with the rows.

Every run's result is checked outside the timed part, and a wrong one raises:
the three export files must be the same bytes (the header's ``exported_at``
aside) and hold every row of every table; after every import the database must
hold every row, and once per side it is exported again and must give the same
document.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import package
from raw import RawDatabase
from sqlalchemy.engine import URL
from workloads import Figure, Sizes

WORKER = Path(__file__).resolve().parent / "transfer_worker.py"
#: Extra peak memory allowed for all the rows over a near-empty transfer, in MB.
FLAT_MB = 30.0
#: W5: package import time over the raw import's (``COPY`` on PostgreSQL), every backend.
W5_LIMIT = 2.0


PEAK = Path(__file__).resolve().parent / "peak.py"


def _run(arguments: list[str]) -> tuple[float, float, str]:
    """Run ``python peak.py arguments``; (wall seconds, peak RSS in MB, its standard output)."""
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
    return wall, peak, process.stdout


def _url_text(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def _worker(mode: str, url: URL, path: Path) -> tuple[float, float, float, dict[str, int]]:
    """(wall, inner seconds, peak MB, rows per table) of one worker run."""
    schema_file = path.with_name("schema.json")
    if not schema_file.exists():
        import transfer_worker

        schema_file.write_text(json.dumps(transfer_worker.schema()))
    wall, peak, output = _run([str(WORKER), mode, _url_text(url), str(path), str(schema_file)])
    result = json.loads(output.strip().splitlines()[-1])
    return wall, float(result["seconds"]), peak, dict(result["tables"])


def _cli_run(url: URL, *arguments: str) -> tuple[float, float, str]:
    """(wall seconds, peak MB, standard output) of one ``cardlink-db`` command."""
    return _run(["-m", "cardlink.database.cli", "--database-url", _url_text(url), *arguments])


_EXPORTED_AT = re.compile(rb'"exported_at": "[^"]*"')


def export_digest(path: Path) -> str:
    """SHA-256 of an export file with its ``exported_at`` value blanked (it is the only
    part two exports of the same data may differ in)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        head = stream.read(4096)
        digest.update(_EXPORTED_AT.sub(b'"exported_at": ""', head, count=1))
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def table_counts(url: URL) -> dict[str, int]:
    """Rows per exported table, read with the raw driver."""
    import transfer_worker

    database = RawDatabase(url)
    try:
        return {table: database.count(table) for table in transfer_worker.TABLES}
    finally:
        database.close()


def _same_counts(what: str, found: dict[str, int], expected: dict[str, int]) -> None:
    wanted = {table: rows for table, rows in expected.items() if rows}
    got = {table: rows for table, rows in found.items() if rows}
    if got != wanted:
        raise AssertionError(f"{what}: rows per table {got}, expected {wanted}")


def _cli_created(output: str) -> int:
    """The total the CLI's import reports ("Imported FILE: 1,234 created, ...")."""
    found = re.search(r": ([\d,]+) created, ", output)
    if found is None:
        raise AssertionError(f"W5 CLI: no row count in its output: {output.strip()[:200]!r}")
    return int(found.group(1).replace(",", ""))


def _fresh(url: URL) -> None:
    package.reset_schema(url)


def run(backend: str, url: URL, import_url: URL, sizes: Sizes) -> list[Figure]:
    """Export ``url`` (API, CLI, raw) and import the export into ``import_url`` (same three)."""
    work = Path(tempfile.mkdtemp(prefix="cardlink-transfer-"))
    files = {side: work / f"{side}.json" for side in ("api", "cli", "raw")}
    tiny_file = work / "tiny.json"
    check_file = work / "check.json"
    times: dict[str, list[float]] = {
        key: []
        for key in ("api", "raw", "cli", "raw_wall", "api_in", "raw_in", "cli_in", "rawin_wall")
    }
    peaks: dict[str, list[float]] = {
        key: [] for key in ("api", "raw", "cli", "cli_in", "api_in", "raw_in")
    }
    expected = table_counts(url)
    rows = sum(expected.values())
    try:
        digests: set[str] = set()
        for repeat in range(sizes.transfer_repeats):
            order = ["api", "cli", "raw"]
            order = order[repeat % 3 :] + order[: repeat % 3]
            for side in order:
                if side == "api":
                    _, seconds, peak, written = _worker("api-export", url, files[side])
                    times["api"].append(seconds)
                    _same_counts("W4 API export", written, expected)
                elif side == "raw":
                    wall, seconds, peak, written = _worker("raw-export", url, files[side])
                    times["raw"].append(seconds)
                    times["raw_wall"].append(wall)
                    _same_counts("W4 raw export", written, expected)
                else:
                    wall, peak, _ = _cli_run(url, "export", "--output", str(files[side]))
                    times["cli"].append(wall)
                peaks[side].append(peak)
                digests.add(export_digest(files[side]))
                if len(digests) != 1:
                    raise AssertionError(f"W4 {side}: its export differs from the others' bytes")
        (source_digest,) = digests
        tiny_export_peak = tiny_import_peak = 0.0
        if sizes.flatness:
            tiny_export_peak = _cli_run(
                url, "export", "--tables", "devices,cards", "--output", str(tiny_file)
            )[1]
        read_back: set[str] = set()
        for repeat in range(sizes.transfer_repeats):
            order = ["api_in", "cli_in", "raw_in"]
            order = order[repeat % 3 :] + order[: repeat % 3]
            for side in order:
                _fresh(import_url)
                if side == "api_in":
                    _, seconds, peak, created = _worker("api-import", import_url, files["api"])
                    times["api_in"].append(seconds)
                    _same_counts("W5 API import (reported)", created, expected)
                elif side == "raw_in":
                    wall, seconds, peak, created = _worker("raw-import", import_url, files["api"])
                    times["raw_in"].append(seconds)
                    times["rawin_wall"].append(wall)
                    _same_counts("W5 raw import (reported)", created, expected)
                else:
                    wall, peak, output = _cli_run(import_url, "import", str(files["api"]))
                    times["cli_in"].append(wall)
                    reported = _cli_created(output)
                    if reported != rows:
                        raise AssertionError(f"W5 CLI import: reported {reported} of {rows} rows")
                _same_counts(f"W5 {side} (stored)", table_counts(import_url), expected)
                if side not in read_back:  # once per side: the rows read back as exported
                    _worker("raw-export", import_url, check_file)
                    if export_digest(check_file) != source_digest:
                        raise AssertionError(f"W5 {side}: the imported rows differ from the export")
                    read_back.add(side)
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
    timing("W5", "import JSON via API", "api_in", "raw_in", W5_LIMIT)
    timing("W5", "import JSON via CLI (wall)", "cli_in", "rawin_wall", W5_LIMIT)
    memory("W5", "import CLI", "cli_in", "raw_in", tiny_import_peak, 200)
    return figures
