"""The project's own promises: the two-command quickstart, CI, and lint."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quickstart_has_exactly_two_commands():
    commands = quickstart_commands()
    assert len(commands) == 2
    assert commands[0].endswith("ophyd-pvcam demo")
    assert "[test]" in commands[1] and commands[1].endswith("pytest")


def test_readme_is_a_landing_page():
    """What it is, why, the quickstart, one example, links: the rest is in docs/."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < 150, f"README has {len(lines)} lines; move the detail into docs/"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert quickstart_commands()[1] in ci


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is installed by the test extras")
def test_code_is_ruff_clean():
    result = subprocess.run(
        ["ruff", "check", "--no-cache", str(ROOT)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
