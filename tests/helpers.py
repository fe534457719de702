"""Small helpers shared by the device tests."""

from __future__ import annotations

import contextlib
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


# ---- catalog tests (test_catalog_*.py) ------------------------------------------------


def cli_env(data_dir, **extra) -> dict:
    """A user's environment for the command line: none of our settings but a data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPHYD_PVCAM")}
    return {**env, "OPHYD_PVCAM_DATA": str(data_dir), **extra}


def run_cli(catalog_dir, *args, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    """``ophyd-pvcam --catalog CATALOG ARGS`` in a new process."""
    command = [sys.executable, "-m", "ophyd_pvcam.cli", "--catalog", str(catalog_dir), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def start_python(code: str, *args, env: dict) -> subprocess.Popen:
    """``python -c code args`` in a new process (its own process group), output captured."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def recorded_frames(pattern_root, pattern: str) -> tuple[Path | None, int]:
    """(file, frames recorded in it) for the first file under ``pattern_root`` matching
    ``pattern``, read in SWMR mode as it grows; (None, 0) before it exists."""
    found = sorted(Path(pattern_root).glob(pattern))
    if not found:
        return None, 0
    try:
        with h5py.File(found[0], "r", libver="latest", swmr=True) as f:
            return found[0], int(f["/entry/instrument/NDAttributes/frame_number"].shape[0])
    except (OSError, KeyError):  # created but not yet in SWMR mode
        return found[0], 0


def wait_for_frames(process, root, pattern: str, frames: int, timeout: float = 90):
    """Poll the growing frame file until it records ``frames`` frames; fail with the
    process's output if it exits first or the deadline passes."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        path, recorded = recorded_frames(root, pattern)
        if recorded >= frames:
            return path, recorded
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"the writer exited ({process.returncode}):\n{out}\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{recorded} of {frames} frames after {timeout} s in {root}")
        time.sleep(0.1)  # polling a file another process writes: no event to wait on


def kill_hard(process) -> None:
    """SIGKILL the process group: no clean-up runs, as in a crash."""
    import signal

    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)


def docs_run(uid: str | None = None, *, files=(), frames: int = 1) -> list[tuple[str, dict]]:
    """The documents of a small run, without a camera: one event per frame of each
    ``(root, resource_path)`` in ``files``, an AD_HDF5 image key ``img``."""
    from event_model import compose_run

    bundle = compose_run(uid=uid) if uid else compose_run()
    docs = [("start", bundle.start_doc)]
    keys = {
        "img": {
            "source": "test",
            "dtype": "array",
            "dtype_numpy": "<u2",
            "shape": [1, 4, 4],
            "external": "FILESTORE:",
        }
    }
    keys = keys if files else {"x": {"source": "test", "dtype": "number", "shape": []}}
    descriptor = bundle.compose_descriptor(name="primary", data_keys=keys)
    docs.append(("descriptor", descriptor.descriptor_doc))
    for root, resource_path in files:
        resource = bundle.compose_resource(
            spec="AD_HDF5", root=str(root), resource_path=resource_path,
            resource_kwargs={"frame_per_point": 1},
        )  # fmt: skip
        docs.append(("resource", resource.resource_doc))
        for point in range(frames):
            datum = resource.compose_datum(datum_kwargs={"point_number": point})
            docs.append(("datum", datum))
            docs.append((
                "event",
                descriptor.compose_event(
                    data={"img": datum["datum_id"]}, timestamps={"img": 0.0},
                    filled={"img": False},
                ),
            ))  # fmt: skip
    if not files:
        docs.append(("event", descriptor.compose_event(data={"x": 1.0}, timestamps={"x": 0.0})))
    docs.append(("stop", bundle.compose_stop()))
    return docs


def small_frame_file(path, frames: int = 2, value: int = 7) -> Path:
    """A closed HDF5 file in the AD_HDF5 layout, ``frames`` 4x4 frames of ``value``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", libver="latest") as f:
        f["/entry/data/data"] = np.full((frames, 4, 4), value, np.uint16)
    return path


@contextlib.contextmanager
def small_disk(folder: Path, size: str):
    """A file system of ``size`` (a tmpfs) mounted on ``folder``, to fill up; the test
    is skipped, saying why, where mounting is not allowed (it needs root; CI has it)."""
    import pytest

    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode:
            # still in use (a catalog this process keeps open on it): detach it now, the
            # kernel frees it when the last file closes
            subprocess.run(["umount", "-l", str(folder)], check=True)


class Recorder:
    """Every document the RunEngine emitted, in order."""

    def __init__(self):
        self.docs = []

    def __call__(self, name, doc):
        self.docs.append((name, doc))

    def of(self, name):
        """Documents of one kind; "event" includes the events of event pages."""
        from event_model import unpack_event_page

        found = []
        for n, doc in self.docs:
            if n == name:
                found.append(doc)
            elif name == "event" and n == "event_page":
                found.extend(unpack_event_page(doc))
        return found
