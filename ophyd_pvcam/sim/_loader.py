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
import importlib.metadata
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


def _installed_copies() -> list[Path]:
    """The simulator library as pip installed it, wherever the package is imported from."""
    # every distribution of that name: a checkout built in place also holds an
    # ophyd_pvcam.egg-info (found first, from the current folder) that lists no library
    return [
        Path(str(dist.locate_file(file)))
        for dist in importlib.metadata.distributions(name="ophyd-pvcam")
        for file in dist.files or ()
        if file.name.startswith("_libpvcam") and file.parent.name == "sim"
    ]


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
    # Python started inside a checkout imports the source tree (the current folder
    # comes first on sys.path), which has no library after a plain 'pip install .':
    # the installed copy is the same build of the same sources.
    for candidate in _installed_copies():
        if candidate.is_file():
            log.info("Using the installed simulator library %s", candidate)
            return candidate
    raise SimulatorError(
        f"The simulated PVCAM library is not built in {here}. Reinstall ophyd-pvcam with "
        "'pip install .' (it compiles the library with the C compiler, gcc)."
    )


def is_loaded() -> bool:
    """Whether this process runs pyvcam on the simulator."""
    return _library is not None


def loaded() -> ctypes.CDLL | None:
    """The simulator if this process has loaded it."""
    return _library


def open_library() -> tuple[ctypes.CDLL, bool]:
    """Load the library (once) and declare its control functions; also says whether
    this call was the one that loaded it."""
    global _library
    with _lock:
        if _library is not None:
            return _library, False
        if "pyvcam.pvc" in sys.modules:
            raise SimulatorError(
                "pyvcam is already imported and bound to the vendor libpvcam.so.2. Load the "
                "simulator first: set OPHYD_PVCAM_SIM=1, or call ophyd_pvcam.sim.load() "
                "before anything imports pyvcam."
            )
        path = library_path()
        library = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        _declare_control_api(library)
        _library = library
        log.info("Loaded the simulated PVCAM SDK from %s", path)
        return library, True


def _declare_control_api(lib: ctypes.CDLL) -> None:
    """Give ctypes the signatures of the simulator's pvsim_* functions."""
    u64, c_int = ctypes.c_uint64, ctypes.c_int
    signatures = {
        "pvsim_identity": (ctypes.c_char_p, []),
        "pvsim_set_seed": (None, [u64]),
        "pvsim_frames_generated": (u64, [c_int]),
        "pvsim_frames_dropped": (u64, [c_int]),
        "pvsim_add_fault": (u64, [c_int, c_int, u64, u64, u64, ctypes.c_double, c_int]),
        "pvsim_clear_faults": (None, []),
        "pvsim_fault_count": (c_int, []),
        "pvsim_fire_edge": (c_int, [c_int]),
        "pvsim_buffer_full": (c_int, [c_int]),
        "pvsim_param_calls_mid_stream": (u64, [c_int]),
        "pvsim_last_param_mid_stream": (ctypes.c_uint32, [c_int]),
        "pvsim_stats": (None, [c_int, ctypes.c_void_p]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
