"""Sphinx configuration of the ophyd-pvcam documentation.

Build: ``sphinx-build -W -b html docs docs/_build/html`` (the test suite does, in
``tests/system/test_docs.py``).  The reference pages for settings, the command line,
the simulator's faults and the session phases are generated from the code at every
build by the local extension ``_ext/pvcam_reference.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "ophyd-pvcam"
author = "ophyd-pvcam developers"
copyright = "ophyd-pvcam developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "pvcam_reference",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# every reference must resolve, except to types of libraries that publish no inventory
# here (the build is offline: intersphinx reads no network, see below)
nitpicky = True
# Names in signatures that have no page to link to.  Other projects' types: their
# inventories are not fetched (intersphinx would need the network at every build).
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(numpy|np|h5py|ophyd|ophyd_async|bluesky|event_model|tiled|httpx|"
        r"matplotlib|pyvcam|ctypes|concurrent|asyncio|collections|typing|enum|pathlib|"
        r"os|threading|logging|argparse|dataclasses|types|queue)\b.*",
    ),
]
nitpick_ignore = [
    # the same, where an annotation names them unqualified
    ("py:class", "Path"),
    ("py:class", "PathProvider"),
    ("py:class", "SignalR"),
    ("py:class", "BaseClient"),
    # ours, returned by public functions but not (yet) public names themselves: each is
    # listed so that a new one fails the build until it is decided
    ("py:class", "ophyd_pvcam.catalog._open_runs.OpenRun"),
    ("py:class", "ophyd_pvcam.catalog._completion.Recovered"),
    ("py:class", "ophyd_pvcam.acquisition._preview.LiveStream"),
]

autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
# a method without its own docstring is not documented with ophyd's (which describes
# ophyd, and refers to names only ophyd's documentation has)
autodoc_inherit_docstrings = False

intersphinx_mapping: dict = {}  # offline: no inventories are fetched

html_theme = "pydata_sphinx_theme"
html_title = "ophyd-pvcam"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    # pages that are mostly wide tables get the page's full width
    "secondary_sidebar_items": {
        "**/*": ["page-toc"],
        "index": ["page-toc"],
        "reference/hdf5-layout": [],
        "reference/documents": [],
        "reference/faults": [],
        "reference/sessions": [],
        "explanations/failure-semantics": [],
    },
}
html_show_sourcelink = False
html_static_path = ["_static"]
html_css_files = ["custom.css"]
