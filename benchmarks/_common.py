"""Pieces every benchmark shares: the simulator, scratch folders, a bare pyvcam
camera, a plain h5py appender, a resource sampler, tables and the RunEngine.

Everything that would distort a measurement if done differently on each side
of a comparison lives here, so the baseline and the device use the same code
for the same thing.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import ophyd_pvcam.sim as sim

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20
POLL_TIMEOUT_MS = 1000
SAMPLER_THREAD = "bench-sampler"


def load_simulator() -> None:
    """The simulated SDK must be loaded before anything imports pyvcam."""
    sim.load()


def quiet_logging(path: Path | None = None) -> None:
    """Send library warnings to a file (or nowhere), not between the tables: runs
    that lose frames or stall on purpose log thousands of lines."""
    handler: logging.Handler = logging.FileHandler(path) if path else logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)


# ---- scratch folders and the page cache -------------------------------------------


def scratch_root() -> Path:
    """Where frames go: ``OPHYD_PVCAM_BENCH_TMP`` or the system temporary folder."""
    return Path(os.environ.get("OPHYD_PVCAM_BENCH_TMP") or tempfile.gettempdir())


@contextlib.contextmanager
def scratch_dir(label: str) -> Iterator[Path]:
    """A folder for one measurement's files, deleted (with the files) afterwards:
    full frames are 8 MiB each and the disk is shared."""
    path = Path(tempfile.mkdtemp(prefix=f"ophyd-pvcam-bench-{label}-", dir=scratch_root()))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def dirty_bytes() -> int:
    """Bytes of the page cache waiting to be written to disk (Dirty + Writeback)."""
    total = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith(("Dirty:", "Writeback:")):
                total += int(line.split()[1]) * 1024
    return total


def settle_writeback(limit: int = 256 * MiB, timeout: float = 10.0) -> float:
    """Wait until earlier writes have mostly reached the disk, so that one
    measurement's writeback does not slow the next; returns the seconds waited.

    Stops early once the backlog no longer shrinks: other users of the shared
    disk may keep it above ``limit`` for reasons of their own.
    """
    start = time.monotonic()
    previous = dirty_bytes()
    while previous > limit and time.monotonic() - start < timeout:
        time.sleep(0.5)
        current = dirty_bytes()
        if current > previous - 16 * MiB:
            break
        previous = current
    return time.monotonic() - start


def recycle_page_cache(nbytes: int) -> None:
    """Write ``nbytes`` to a scratch file and delete it, so the next measurement's files
    go into memory the kernel has just freed.  On this VM, page cache never used before
    costs ~15 ms per 8 MiB to fill against ~2 ms for recycled pages: without this, the
    side measured after another's deleted files looks several ms per frame faster."""
    block = np.zeros(64 * MiB, np.uint8)
    with tempfile.NamedTemporaryFile(dir=scratch_root(), prefix="ophyd-pvcam-bench-") as f:
        for _ in range(max(1, -(-nbytes // block.nbytes))):
            f.write(block)


def disk_io() -> dict[str, int]:
    """Bytes this process sent to storage (and dirty bytes it cancelled by deleting
    files before they were written), from /proc/self/io."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError), open("/proc/self/io") as io:
        for line in io:
            key, _, value = line.partition(":")
            if key in ("write_bytes", "cancelled_write_bytes"):
                found[key] = int(value)
    return found


# ---- the bare pyvcam camera -------------------------------------------------------


@contextlib.contextmanager
def bare_camera() -> Iterator[Any]:
    """The first simulated camera, opened with pyvcam alone (no ophyd-pvcam code).

    PVCAM is initialised here unless something else in the process already did,
    and uninitialised only if it was initialised here.
    """
    load_simulator()
    from pyvcam import pvc
    from pyvcam.camera import Camera

    owned = True
    try:
        pvc.init_pvcam()
    except RuntimeError as error:
        if "already" not in str(error).lower():
            raise
        owned = False
    camera = next(Camera.detect_camera())
    camera.open()
    try:
        yield camera
    finally:
        with contextlib.suppress(RuntimeError):
            camera.finish()
        camera.close()
        if owned:
            pvc.uninit_pvcam()


def configure_bare(
    camera: Any, *, port: str, speed: int, roi: tuple[int, int, int, int], metadata: bool
) -> None:
    """Apply the settings the device would apply for a free-running fly scan."""
    camera.readout_port = camera.port_speed_gain_table[port]["port_value"]
    camera.speed = speed
    camera.gain = 1
    camera.exp_res = dict(camera.exp_resolutions)["One Microsecond"]
    camera.exp_mode = dict(camera.exp_modes)["Internal Trigger"]
    camera.exp_out_mode = dict(camera.exp_out_modes)["First Row"]
    camera.metadata_enabled = metadata
    x, y, width, height = roi
    camera.set_roi(x, y, width, height)


# ---- plain h5py appending -------------------------------------------------------


class PlainAppender:
    """An HDF5 dataset of one chunk per frame, grown by one row per frame:
    the least a frame writer can do (no SWMR, no records, no documents).

    ``compression="bslz4"`` (the device's default format): each frame compressed by one
    call to the bitshuffle library on the calling thread (the device's own
    :class:`~ophyd_pvcam.storage.Bslz4`, given no thread pool) and stored with
    ``write_direct_chunk``.  HDF5's own filter pipeline makes the same bytes
    but was much slower here (a bare full-frame point of ~59 ms in a loaded run, against
    ~32 ms this way): it would flatter the device."""

    def __init__(self, path: Path, shape: tuple[int, int], compression: str = "none"):
        import h5py

        from ophyd_pvcam.storage import COMPRESSIONS, Bslz4
        from ophyd_pvcam.storage._compression import dataset_options

        if compression not in COMPRESSIONS:
            raise ValueError(f"unknown compression {compression!r}")
        options = dataset_options(compression)
        self._bslz4 = Bslz4(shape) if compression == "bslz4" else None
        self._file = h5py.File(path, "w", libver="latest")
        height, width = shape
        self._data = self._file.create_dataset(
            "data",
            shape=(0, height, width),
            maxshape=(None, height, width),
            chunks=(1, height, width),
            dtype=np.uint16,
            **options,
        )
        self.rows = 0

    def append(self, pixels: np.ndarray) -> None:
        self._data.resize(self.rows + 1, axis=0)
        chunk = pixels if self._bslz4 is None else self._bslz4.chunk(pixels)
        self._data.id.write_direct_chunk((self.rows, 0, 0), chunk)
        self.rows += 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def pretouched_frame(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A frame of noise already in memory (first-touch page faults excluded)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2048, size=shape, dtype=np.uint16)


# ---- resources -------------------------------------------------------------------


def rss_bytes() -> int:
    """Resident memory of this process, from /proc/self/statm."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES


def _thread_cpu_seconds() -> dict[int, float]:
    """CPU seconds (user + system) of every thread of this process, by thread id."""
    found: dict[int, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        found[int(tid)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return found


def _thread_role(name: str | None) -> str:
    """Group threads by what they do (names come from ophyd-pvcam and bluesky)."""
    if name is None:
        return "native (simulated camera, pvc)"
    if name.endswith("-camera"):
        return "camera owner thread"
    if name.endswith("-writer"):
        return "writer thread"
    if name == "frame-queue":
        return "memory mapping"
    if name == "bluesky-run-engine":
        return "RunEngine loop"
    if name == "MainThread":
        return "main thread"
    if name.endswith("-stall"):
        return "stall monitor"
    return "other Python threads"


@dataclass
class Sampler:
    """Samples resident memory (every ``interval``) and per-thread CPU (every
    ``cpu_every`` samples) in the background.

    Sampling (rather than reading before and after) catches short memory peaks
    and the CPU of threads that end before the measurement does.  Reading a
    thread's /proc stat takes the process's memory-map lock, which a writer
    busy with page faults holds often: hence the slower pace for CPU.
    """

    interval: float = 0.05
    cpu_every: int = 5
    rss: list[tuple[float, int]] = field(default_factory=list)
    _cpu_first: dict[int, float] = field(default_factory=dict)
    _cpu_last: dict[int, float] = field(default_factory=dict)
    _names: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._sample(cpu=True)
        self._thread = threading.Thread(target=self._run, name=SAMPLER_THREAD, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample(cpu=True)

    def _run(self) -> None:
        count = 0
        while not self._stop.wait(self.interval):
            count += 1
            self._sample(cpu=count % self.cpu_every == 0)

    def _sample(self, cpu: bool) -> None:
        self.rss.append((time.monotonic(), rss_bytes()))
        if not cpu:
            return
        for thread in threading.enumerate():
            if thread.native_id is not None:
                self._names.setdefault(thread.native_id, thread.name)
        for tid, seconds in _thread_cpu_seconds().items():
            self._cpu_first.setdefault(tid, seconds)
            self._cpu_last[tid] = seconds

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds spent by each kind of thread while sampling (10 ms ticks;
        approximate: a thread's last fraction of a second may be missed)."""
        roles: dict[str, float] = {}
        for tid, last in self._cpu_last.items():
            name = self._names.get(tid)
            if name == SAMPLER_THREAD:
                continue
            role = _thread_role(name)
            roles[role] = roles.get(role, 0.0) + last - self._cpu_first[tid]
        return {role: round(seconds, 3) for role, seconds in sorted(roles.items())}

    @property
    def peak_rss(self) -> int:
        return max(value for _, value in self.rss)


@contextlib.contextmanager
def cpu_clock() -> Iterator[dict[str, float]]:
    """Process CPU seconds (all threads) and wall seconds spent inside the block."""
    result: dict[str, float] = {}
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        yield result
    finally:
        result["cpu_s"] = time.process_time() - cpu
        result["wall_s"] = time.perf_counter() - wall


# ---- bluesky --------------------------------------------------------------------


@functools.cache
def run_engine() -> Any:
    """One RunEngine per process, set up as the profile does (with the stall guard);
    each RunEngine starts an event-loop thread, so they are not made per measurement."""
    from bluesky import RunEngine

    from ophyd_pvcam import StallGuard

    engine = RunEngine({}, call_returns_result=False)
    engine.preprocessors.append(StallGuard())
    return engine


def new_device(write_path: Path, name: str = "cam") -> Any:
    """The simulated Prime BSI as an ophyd device, writing under ``write_path``."""
    from ophyd_pvcam import PrimeBSI

    return PrimeBSI(name, sim=True, write_path=write_path)


# ---- numbers and tables -----------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, mean, worst and best of a sample (empty: NaN)."""
    if not values:
        return {key: float("nan") for key in ("median", "mean", "max", "min")}
    return {
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "max": max(values),
        "min": min(values),
    }


def rounded(value: Any, digits: int = 4) -> Any:
    """Round floats (recursively) so that the JSON stays readable."""
    if isinstance(value, float):
        return round(value, digits) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(item, digits) for item in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not np.isfinite(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def table(title: str, rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table of ``rows`` (dicts) showing ``columns``; text columns are
    aligned left, numbers right."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max([len(column)] + [len(line[i]) for line in cells]) for i, column in enumerate(columns)
    ]
    left = [
        all(isinstance(row.get(column), str) for row in rows if row.get(column) is not None)
        for column in columns
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(w) if lft else v.rjust(w)
            for v, w, lft in zip(values, widths, left, strict=True)
        ).rstrip()

    return "\n".join(
        [title, line(columns), line(["-" * w for w in widths])] + [line(c) for c in cells]
    )
