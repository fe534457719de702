"""The documentation site: it builds with no warning, its generated reference pages say
what the code has, and every public name has a docstring for them to show."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

import ophyd_pvcam

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
BUILD_TIMEOUT_S = 300  # about 10 s alone on 2 cores; the suite runs beside it


class _Text(HTMLParser):
    """The text of an HTML page, without its markup."""

    def __init__(self):
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def page_text(path: Path) -> str:
    parser = _Text()
    parser.feed(path.read_text())
    return " ".join(" ".join(parser.parts).split())


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built as README says (warnings are errors), into a temporary folder."""
    for module in ("sphinx", "myst_parser", "pydata_sphinx_theme"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"{module} is missing: pip install -e '.[test]' installs it")
    out = tmp_path_factory.mktemp("docs") / "html"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", DOCS, out],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        cwd=ROOT,
    )
    print(f"sphinx-build took {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return out


def test_readme_builds_the_site_as_the_suite_does():
    """README's one command is the invocation the ``site`` fixture runs (which adds only
    ``--keep-going -q`` and a temporary output folder)."""
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"^pip install -e '\.\[docs\]' && (.*)$", readme, re.M)
    assert command, "README does not say how to build the documentation"
    assert command.group(1).split() == [
        "python", "-m", "sphinx", "-W", "-b", "html", "docs", "docs/_build/html"
    ]  # fmt: skip


def test_the_site_builds_without_warnings(site):
    pages = [
        "index",
        "reference/settings",
        "reference/cli",
        "reference/faults",
        "reference/hdf5-layout",
        "reference/documents",
        "explanations/failure-semantics",
        "explanations/performance",
    ]
    pages += [f"tutorials/{p.stem}" for p in (DOCS / "tutorials").glob("*.md")]
    pages += [f"how-to/{p.stem}" for p in (DOCS / "how-to").glob("*.md")]
    for page in pages:
        assert (site / f"{page}.html").is_file(), page
    decisions = sorted(p.stem for p in (DOCS / "decisions").glob("*.md"))
    assert decisions, "no decision records found"
    built = {p.stem for p in (site / "decisions").glob("*.html")}
    assert set(decisions) <= built, set(decisions) - built


def test_the_settings_page_has_every_setting_with_its_default(site):
    from ophyd_pvcam.acquisition import Settings
    from ophyd_pvcam.acquisition._settings import MAX_FLY_FRAMES, MAX_SEQUENCE_FRAMES

    text = page_text(site / "reference" / "settings.html")
    for field in dataclasses.fields(Settings):
        assert f"{field.name} " in text, field.name
    # values the generator took from the checker's limits and the simulated camera
    assert f"1 to {MAX_SEQUENCE_FRAMES}" in text
    assert f"0 to {MAX_FLY_FRAMES}" in text
    assert "(0, 0, 2048, 2048)" in text  # the default ROI: the simulated sensor


def test_the_cli_page_has_every_command_and_exit_code(site):
    from ophyd_pvcam.cli._app import COMMANDS, build_parser
    from ophyd_pvcam.cli._errors import EXIT_CODES

    text = page_text(site / "reference" / "cli.html")
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert len(commands) == len(COMMANDS)
    for name, command in commands.items():
        assert f"ophyd-pvcam {name}" in text, name
        for action in command._actions:
            for option in action.option_strings:
                assert option in text, (name, option)
    for code, (name, _) in EXIT_CODES.items():
        assert re.search(rf"\b{code} {re.escape(name)}\b", text), (code, name)


def test_the_faults_page_has_every_fault_kind(site):
    from ophyd_pvcam.sim import FAULT_KINDS

    text = page_text(site / "reference" / "faults.html")
    for kind in FAULT_KINDS:
        assert f"{kind} " in text, kind
    assert "OPHYD_PVCAM_SIM_FAULTS" in text


def public_modules() -> list[str]:
    """ophyd_pvcam and every module or package in it whose name does not start with _."""
    names = ["ophyd_pvcam"]
    for info in pkgutil.walk_packages(ophyd_pvcam.__path__, "ophyd_pvcam."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def public_names(module) -> list[str]:
    """A module's ``__all__``; without one, what it defines whose name is not private."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
    ]


def own_docstring(value) -> str:
    """The docstring ``value`` was given, not one it inherits or a dataclass invents."""
    if inspect.isclass(value):
        doc = value.__dict__.get("__doc__") or ""
        if dataclasses.is_dataclass(value) and doc.startswith(f"{value.__name__}("):
            return ""
        return doc.strip()
    return (getattr(value, "__doc__", None) or "").strip()


def test_every_public_name_has_a_docstring():
    """Classes, functions and modules named in a public module's ``__all__`` (constants
    cannot carry one; the reference documents them where they are used)."""
    missing, checked = [], 0
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        if not own_docstring(module):
            missing.append(module_name)
        for name in public_names(module):
            value = getattr(module, name)
            if not (inspect.isclass(value) or inspect.isroutine(value) or inspect.ismodule(value)):
                continue
            checked += 1
            if not own_docstring(value):
                missing.append(f"{module_name}.{name}")
    assert checked > 100, f"only {checked} public names found: is the package importable?"
    assert not missing, "public names without a docstring: " + ", ".join(missing)
