"""benchmarks/run.py fails visibly: a backend it cannot reach makes it exit non-zero."""

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
    assert f"{backend:<10} FAILED: OperationalError" in result.stdout
    assert "0 judged targets, 0 met; 0 info rows" in result.stdout
    assert "FAILED: 1 backend(s) could not run or gave a wrong result" in result.stdout
    assert json.loads(output.read_text())["failures"][0].startswith(f"{backend}: ")
