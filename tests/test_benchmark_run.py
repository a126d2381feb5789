"""benchmarks/run.py fails visibly (an unreachable backend, a wrong result), and counts honestly."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("scheme", ["postgresql://postgres", "mysql://root"])
def test_run_exits_non_zero_when_the_server_is_unreachable(scheme: str, tmp_path: Path) -> None:
    url = f"{scheme}@127.0.0.1:{_closed_port()}/cardlink_bench_h18"
    output = tmp_path / "result.json"
    result = subprocess.run(
        [sys.executable, str(RUN), "--db-url", url, "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    backend = scheme.split(":")[0]
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{backend:<10} FAILED: ConnectionError: cannot create database" in result.stdout
    assert "0 judged targets, 0 met; 0 info rows" in result.stdout
    assert "FAILED: 1 backend(s) could not run or gave a wrong result" in result.stdout
    assert json.loads(output.read_text())["failures"][0].startswith(f"{backend}: ")


def test_quick_run_checks_every_result_and_prints_misses_without_failing(tmp_path: Path) -> None:
    """A --quick run on SQLite: every workload's check passes (same rows, same export
    bytes), and missed targets, if any, are printed but do not fail it."""
    output = tmp_path / "result.json"
    result = subprocess.run(
        [
            sys.executable,
            str(RUN),
            "--db-url",
            f"sqlite:///{tmp_path / 'bench.db'}",
            "--quick",
            "--skip-growth",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(output.read_text())
    assert document["failures"] == []
    workloads = {figure["workload"] for figure in document["figures"]}
    assert workloads == {"W1", "W2", "W3", "W4", "W5"}
    judged = [figure for figure in document["figures"] if figure["target"] != "(info)"]
    met = sum(figure["ok"] for figure in judged)
    info = len(document["figures"]) - len(judged)
    # W1's raw side without its deriving of the stored columns is shown, not judged.
    assert [figure["name"] for figure in document["figures"] if figure["target"] == "(info)"] == [
        "batch insert vs executemany writes only"
    ]
    assert f"{len(judged)} judged targets, {met} met; {info} info rows" in result.stdout


def test_report_counts_judged_targets_apart_from_info_rows() -> None:
    report = RUN.with_name("report.py")
    result_file = RUN.with_name("readme_run.json")
    result = subprocess.run(
        [sys.executable, str(report), str(result_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    figures = json.loads(result_file.read_text())["figures"]
    info = sum(figure["target"] == "(info)" for figure in figures)
    judged = len(figures) - info
    met = sum(figure["ok"] for figure in figures if figure["target"] != "(info)")
    # Info rows are W1's only: PostgreSQL's executemany, and the raw writes without deriving.
    assert {
        (figure["backend"], figure["name"]) for figure in figures if figure["target"] == "(info)"
    } == {
        ("postgresql", "batch insert vs executemany"),
        ("postgresql", "batch insert vs executemany writes only"),
        ("postgresql", "batch insert vs copy writes only"),
        ("sqlite", "batch insert vs executemany writes only"),
        ("mysql", "batch insert vs executemany writes only"),
    }
    assert result.stdout.strip().splitlines()[-1] == (
        f"{judged} judged targets, {met} met; {info} info rows"
    )
