"""The architecture holds (docs/decisions/0008-...): the import-linter contracts in
pyproject.toml are kept, pyright (standard mode, configured in pyproject.toml) finds no
error in the package, and the package ships ``py.typed`` so users' checkers read its
types.  The tools' own output is shown when they fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import ophyd_pvcam

ROOT = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    """The command of a tool the test extras install (beside this Python, else on PATH)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return found


def run(command: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_the_layers_import_only_what_the_contracts_allow():
    # --no-cache: the verdict on the code as it is now, and no cache folder left behind
    result = run([tool("lint-imports"), "--no-cache"], timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    kept = len(contracts["contracts"])
    assert f"Contracts: {kept} kept, 0 broken." in output, output


def test_pyright_finds_no_error_in_the_package():
    # the configuration (standard mode, what to check) is pyproject.toml's; this Python's
    # packages are the ones it resolves imports against
    result = run([tool("pyright"), "--pythonpath", sys.executable], timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "0 errors" in output, output


def test_the_package_ships_py_typed():
    package = Path(ophyd_pvcam.__file__).resolve().parent
    assert (package / "py.typed").is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    assert "py.typed" in package_data["ophyd_pvcam"]  # the wheel and sdist take it along
