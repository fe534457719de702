"""Small helpers shared by the device tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

READ_RUN = """
import json, sys
import numpy as np
from ophyd_pvcam import open_catalog
catalog = open_catalog(sys.argv[1])
run = catalog[sys.argv[2]]
stream = run[sys.argv[3]]
images = stream[sys.argv[4]].read()
np.save(sys.argv[5], images)
print(json.dumps({
    "stop": run.metadata["stop"],
    "configuration": stream.metadata["configuration"],
    "keys": sorted(stream),
}, default=str))
"""


def read_run_in_new_process(catalog_dir, uid, stream, key, tmp_path) -> tuple[np.ndarray, dict]:
    """Replay a run in a fresh Python, as a scientist would next week."""
    out = Path(tmp_path) / f"{uid}-{stream}.npy"
    result = subprocess.run(
        [sys.executable, "-c", READ_RUN, str(catalog_dir), uid, stream, key, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr
    return np.load(out), json.loads(result.stdout.strip().splitlines()[-1])


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python, as a user's script: none of our OPHYD_PVCAM_*
    settings leak in, only the ``env`` given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OPHYD_PVCAM")}
    return subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def file_frames(path) -> tuple[np.ndarray, dict]:
    """Everything in one frame file, read the plain (non-SWMR) way: proves it is closed."""
    with h5py.File(path, "r") as f:
        records = f["/entry/instrument/NDAttributes"]
        return f["/entry/data/data"][()], {name: records[name][()] for name in records}


def frame_files(root) -> list[Path]:
    return sorted(Path(root).rglob("*.h5"))
