"""Python started inside a checkout after a plain ``pip install .`` imports the source
tree, which has no built simulator: the library is found where pip installed it (the
profile failed from the repository root: "not built in .../ophyd_pvcam/sim")."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path, PurePosixPath

import pytest

from ophyd_pvcam.sim import SimulatorError, _loader


class Installed:
    """A distribution as importlib.metadata gives it: its files, located under a root."""

    def __init__(self, root: Path, files: list[str]):
        self.root, self.files = root, [PurePosixPath(f) for f in files]

    def locate_file(self, file) -> Path:
        return self.root / str(file)


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """The package imported from a source tree with no library in it."""
    source = tmp_path / "checkout" / "ophyd_pvcam" / "sim"
    source.mkdir(parents=True)
    monkeypatch.setattr(_loader, "__file__", str(source / "_loader.py"))
    monkeypatch.delenv(_loader.ENV_LIBRARY, raising=False)
    return tmp_path


def test_the_installed_library_serves_a_checkout_that_has_none(checkout, monkeypatch):
    site = checkout / "site-packages"
    built = site / "ophyd_pvcam" / "sim" / "_libpvcam.cpython-311-x86_64-linux-gnu.so"
    built.parent.mkdir(parents=True)
    built.write_bytes(b"\x7fELF")
    in_place = Installed(checkout / "checkout", ["ophyd_pvcam/sim/_loader.py"])  # egg-info
    installed = Installed(site, ["ophyd_pvcam/sim/_loader.py", str(built.relative_to(site))])

    def distributions(name=None):
        assert name == "ophyd-pvcam"
        return [in_place, installed]

    monkeypatch.setattr(importlib.metadata, "distributions", distributions)
    assert _loader.library_path() == built


def test_nothing_built_anywhere_says_how_to_build_it(checkout, monkeypatch):
    monkeypatch.setattr(importlib.metadata, "distributions", lambda name=None: [])
    with pytest.raises(SimulatorError, match=r"is not built in .*pip install"):
        _loader.library_path()
