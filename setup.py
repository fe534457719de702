"""Builds the simulated PVCAM SDK (a plain C shared library, SONAME libpvcam.so.2).

Everything else about the package lives in pyproject.toml.  The library is
built as a setuptools Extension only because that is the portable way to run
the C compiler during ``pip install``; it has no Python entry point and is
loaded with ctypes by ``ophyd_pvcam.sim.load()``.
"""

import os
from pathlib import Path

from setuptools import Extension, setup

SRC = Path("ophyd_pvcam/sim/src")
sanitize = os.environ.get("OPHYD_PVCAM_SIM_SANITIZE", "")  # e.g. "address"
flags = ["-std=gnu11", "-O3", "-Wall", "-Wextra"]
link = [
    "-Wl,-soname,libpvcam.so.2",
    f"-Wl,--version-script={SRC / 'pvcam_sim.map'}",
    "-lpthread",
    "-lm",
]
if sanitize:
    flags += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-O1"]
    link += [f"-fsanitize={sanitize}"]

setup(
    ext_modules=[
        Extension(
            "ophyd_pvcam.sim._libpvcam",
            sources=sorted(str(p) for p in SRC.glob("sim_*.c")),
            depends=[str(SRC / "sim.h"), str(SRC / "pvcam_sim.map")],
            extra_compile_args=flags,
            extra_link_args=link,
        )
    ]
)
