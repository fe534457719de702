"""Find and load the simulated ``libpvcam.so.2`` before pyvcam binds to a library.

pyvcam's compiled ``pvc`` module links against ``libpvcam.so.2``.  When a
library with that SONAME is already loaded with ``RTLD_GLOBAL``, the dynamic
loader reuses it, so loading ours first puts the whole of pyvcam on the
simulator without touching pyvcam.  It must happen before ``pyvcam.pvc`` is
imported; afterwards the vendor library (if any) is in charge for good.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import logging
import os
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

ENV_SIM = "OPHYD_PVCAM_SIM"
ENV_LIBRARY = "OPHYD_PVCAM_SIM_LIBRARY"

_lock = threading.Lock()
_library: ctypes.CDLL | None = None


class SimulatorError(RuntimeError):
    """The simulated PVCAM library cannot be used as asked."""


def requested_by_environment() -> bool:
    """True when ``OPHYD_PVCAM_SIM`` asks for the simulator (1, true, yes, on)."""
    return os.environ.get(ENV_SIM, "").strip().lower() in {"1", "true", "yes", "on"}


def library_path() -> Path:
    """The built simulator library (``OPHYD_PVCAM_SIM_LIBRARY`` overrides it)."""
    override = os.environ.get(ENV_LIBRARY)
    if override:
        path = Path(override)
        if not path.is_file():
            raise SimulatorError(f"{ENV_LIBRARY}={override} does not name a file")
        return path
    here = Path(__file__).resolve().parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"_libpvcam{suffix}"
        if candidate.is_file():
            return candidate
    raise SimulatorError(
        f"The simulated PVCAM library is not built in {here}. Reinstall ophyd-pvcam with "
        "'pip install .' (it compiles the library with the C compiler, gcc)."
    )


def is_loaded() -> bool:
    """Whether this process runs pyvcam on the simulator."""
    return _library is not None


def load() -> ctypes.CDLL:
    """Load the simulator so that pyvcam (imported afterwards) runs on it.

    Idempotent.  Faults named in ``OPHYD_PVCAM_SIM_FAULTS`` are injected on
    the first load.
    """
    global _library
    with _lock:
        if _library is not None:
            return _library
        if "pyvcam.pvc" in sys.modules:
            raise SimulatorError(
                "pyvcam is already imported and bound to the vendor libpvcam.so.2. Load the "
                "simulator first: set OPHYD_PVCAM_SIM=1, or call ophyd_pvcam.sim.load() "
                "before anything imports pyvcam."
            )
        path = library_path()
        library = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        from ._control import declare_control_api

        declare_control_api(library)
        _library = library
        log.info("Loaded the simulated PVCAM SDK from %s", path)
    from ._control import inject_environment_faults

    inject_environment_faults()
    return library


def library() -> ctypes.CDLL:
    """The loaded simulator, loading it if needed."""
    return _library if _library is not None else load()
