"""A new user's first run: the README's own lines, as written, on a fresh machine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
README = (REPO_ROOT / "README.md").read_text()
FIRST_COMMAND = "python3 -m pip install . && python3 examples/quickstart.py"
SECOND_COMMAND = "python3 -m pip install '.[test]' && python3 -m pytest"


def _venv_line() -> str:
    """The command the README's line before the two commands gives (PEP 668 systems)."""
    intro = README.split("```bash", 1)[0]
    [line] = [line for line in intro.splitlines() if "PEP 668" in line]
    [command] = re.findall(r"`([^`]+)`", line)
    return command


def test_the_readme_opens_with_the_two_commands_word_for_word() -> None:
    block = README.split("```bash\n", 1)[1].split("```", 1)[0]
    assert block.splitlines()[:2] == [FIRST_COMMAND, SECOND_COMMAND]
    assert "venv" in _venv_line()


def test_the_readme_links_the_guide_shipped_in_the_repository() -> None:
    links = re.findall(r"\]\(([^)#]+\.md)\)", README)
    assert "docs/guide.md" in links
    for link in links:
        assert (REPO_ROOT / link).is_file(), link
    assert "../" not in "".join(links)
    assert "# " in (REPO_ROOT / "docs" / "guide.md").read_text()


def test_the_readme_venv_line_then_the_first_command_work_in_a_fresh_copy(tmp_path: Path) -> None:
    """PEP 668: the line before the two commands makes the first one work as written."""
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, clone / name)
    for folder in ("src", "examples"):
        shutil.copytree(
            REPO_ROOT / folder,
            clone / folder,
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
        )
    # A fresh shell: no venv active, this interpreter's folder first as `python3`.
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "DATABASE_URL", "PYTHONPATH", "CARDLINK_ENCRYPTION_KEY")
        and not key.startswith("CARDLINK_DB_")
    }
    base = Path(getattr(sys, "_base_executable", sys.executable)).parent
    environment["PATH"] = os.pathsep.join([str(base), environment.get("PATH", "")])
    done = subprocess.run(
        ["bash", "-c", f"{_venv_line()} && {FIRST_COMMAND}"],
        cwd=clone,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Created device: RF8M33XXXXX" in done.stdout
    assert (clone / ".venv" / "bin" / "cardlink-db").exists()
    assert (clone / "data" / "cardlink.db").is_file()
