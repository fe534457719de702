"""Python control of the simulated camera: faults, triggers and counters."""

from __future__ import annotations

import ctypes
import logging
import math
import os
from dataclasses import dataclass

from . import _loader
from ._loader import SimulatorError

log = logging.getLogger(__name__)

ENV_FAULTS = "OPHYD_PVCAM_SIM_FAULTS"
FAULT_KINDS = {
    "stall": 1,
    "readout_failure": 2,
    "disconnect": 3,
    "drop": 4,
    "param_poll": 5,
    "callback_reregister": 6,
    "byte_limit": 7,
}
MAX_CAMERAS = 8
# Kinds that count frames (after_frames) and their default; the others count
# parameter calls (param_poll: after_calls) or bytes (byte_limit: bytes).
_AFTER_FRAMES_DEFAULT = {
    "stall": 0,
    "readout_failure": 0,
    "disconnect": 0,
    "drop": 0,
    "callback_reregister": 5,
}
_DURATION_KINDS = {"stall", "drop", "byte_limit"}


class FaultSpecError(SimulatorError, ValueError):
    """``OPHYD_PVCAM_SIM_FAULTS`` cannot be read; the message (one line) quotes it and
    says what is expected.  The command line reports it as bad settings (exit 2)."""


@dataclass(frozen=True)
class Fault:
    """One injected fault, as accepted (returned by :func:`inject_fault`)."""

    id: int
    kind: str
    after_frames: int | None
    duration: float | None
    every: int | None
    times: int | None
    camera: int | None
    after_calls: int | None = None
    bytes: int | None = None


def _check_camera(camera: int | None) -> int:
    if camera is None:
        return -1
    if not isinstance(camera, int) or not 0 <= camera < MAX_CAMERAS:
        raise ValueError(f"camera={camera!r}: expected a camera index 0..{MAX_CAMERAS - 1}")
    return camera


def _positive(name: str, value, kind: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"a {kind!r} fault needs {name}=N (an integer >= 1), got {value!r}")
    return value


def inject_fault(
    kind: str,
    after_frames: int | None = None,
    duration: float | None = None,
    *,
    every: int | None = None,
    times: int | None = None,
    camera: int | None = None,
    after_calls: int | None = None,
    bytes: int | None = None,
) -> Fault:
    """Make the simulated camera misbehave.

    ``after_frames`` counts frames from the start of the next acquisition, or
    of the running one if an acquisition is under way.  Kinds:

    - ``"stall"``: frame callbacks stop after ``after_frames`` frames while the
      status still claims the acquisition runs; for ``duration`` seconds, or
      until :func:`clear_faults` if ``duration`` is None.
    - ``"readout_failure"``: the status becomes READOUT_FAILED after
      ``after_frames`` frames.
    - ``"disconnect"``: the camera vanishes after ``after_frames`` frames; every
      call fails until the camera is closed and reopened.
    - ``"drop"``: every ``every``-th frame after ``after_frames`` is lost on the
      way, leaving a gap in the frame numbers (for ``duration`` seconds, or
      until cleared).
    - ``"param_poll"``: from the first frame of a continuous acquisition until
      it stops, every parameter call on the camera (``pl_get_param`` with any
      attribute, ``pl_set_param``, the enumeration calls) counts; the
      ``after_calls``-th (default 1) stops the stream for good: no more
      callbacks or frames, status READOUT_NOT_ACTIVE.  pyvcam's
      ``poll_frame`` then raises ``RuntimeError("Acquisition not active.")``.
      Sequences are not affected.
    - ``"callback_reregister"``: if a frame callback was registered while one
      was still registered for that event (and not deregistered since), the
      next acquisition's callbacks stop after ``after_frames`` frames
      (default 5); the sensor keeps filling the buffer.
    - ``"byte_limit"``: in any acquisition, frames stop like a stall once
      ``bytes`` bytes of frames have been delivered: after
      ``bytes // frame_bytes`` frames, whatever the frame size.

    A fault applies to every acquisition until cleared, or to the next
    ``times`` acquisitions it fires in; to every camera, or to ``camera``.
    """
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault kind {kind!r} is not one of {sorted(FAULT_KINDS)}")
    if kind in _AFTER_FRAMES_DEFAULT:
        if after_frames is None:
            after_frames = _AFTER_FRAMES_DEFAULT[kind]
        if not isinstance(after_frames, int) or after_frames < 0:
            raise ValueError(f"after_frames={after_frames!r}: expected an integer >= 0")
    elif after_frames is not None:
        unit = "after_calls=N" if kind == "param_poll" else "bytes=N"
        raise ValueError(f"after_frames does not apply to {kind!r} faults (they use {unit})")
    if duration is not None:
        if kind not in _DURATION_KINDS:
            raise ValueError(
                f"duration= does not apply to {kind!r} faults: the acquisition stays "
                "broken until it is restarted"
            )
        if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0):
            raise ValueError(f"duration={duration!r}: expected None or a number of seconds > 0")
    if kind == "drop":
        _positive("every", every, kind)
    elif every is not None:
        raise ValueError(f"every= only applies to 'drop' faults, not {kind!r}")
    if kind == "param_poll":
        after_calls = _positive("after_calls", 1 if after_calls is None else after_calls, kind)
    elif after_calls is not None:
        raise ValueError(f"after_calls= only applies to 'param_poll' faults, not {kind!r}")
    if kind == "byte_limit":
        _positive("bytes", bytes, kind)
    elif bytes is not None:
        raise ValueError(f"bytes= only applies to 'byte_limit' faults, not {kind!r}")
    if times is not None and (not isinstance(times, int) or times < 1):
        raise ValueError(f"times={times!r}: expected None (until cleared) or an integer >= 1")
    serial = library().pvsim_add_fault(
        FAULT_KINDS[kind],
        _check_camera(camera),
        after_frames or 0,
        every or 0,
        after_calls or bytes or 0,
        float(duration or 0.0),
        -1 if times is None else times,
    )
    if not serial:
        raise SimulatorError("the simulator refused the fault (at most 16 at once)")
    fault = Fault(
        int(serial), kind, after_frames, duration, every, times, camera, after_calls, bytes
    )
    log.warning("Simulated camera fault injected: %s", fault)
    return fault


def clear_faults() -> None:
    """Remove every fault.  A stall (or byte limit) in progress resumes; a
    failed readout, a stream stopped by ``param_poll`` or callbacks stopped by
    ``callback_reregister`` stay so until the acquisition restarts, and a
    disconnected camera until it is reopened."""
    library().pvsim_clear_faults()


def active_fault_count() -> int:
    """How many injected faults are still waiting to fire (or repeat)."""
    return int(library().pvsim_fault_count())


def frames_generated(camera: int | None = None) -> int:
    """Frames the simulated camera(s) produced since the library was loaded,
    including frames a "drop" fault lost before delivery."""
    return int(library().pvsim_frames_generated(_check_camera(camera)))


def frames_dropped(camera: int = 0) -> int:
    """Frames a "drop" fault lost inside the camera in its current acquisition."""
    return int(library().pvsim_frames_dropped(_check_camera(camera)))


def buffer_full(camera: int = 0) -> bool:
    """True while a CIRC_NO_OVERWRITE acquisition is halted for want of a free slot."""
    return bool(library().pvsim_buffer_full(_check_camera(camera)))


_STATS_FIELDS = (  # the layout of pvsim_stats_t: uint64_t each
    "frames_generated",
    "frames_written",
    "frames_overwritten",
    "notes_discarded",
    "sensor_cpu_ns",
    "notifier_cpu_ns",
    "callback_cpu_ns",
    "max_backlog",
)


class _Stats(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in _STATS_FIELDS]


@dataclass(frozen=True)
class SimStats:
    """What the simulated camera itself cost and what overran, since the library was
    loaded (see :func:`stats`).  Subtract two readings to cover one run."""

    frames_generated: int  #: frames the sensor finished, drops included
    frames_written: int  #: frames copied into the host's buffer
    frames_overwritten: int  #: written, then rewritten by the sensor before their callback
    notes_discarded: int  #: callback events discarded because the queue was full
    sensor_cpu_ns: int  #: CPU of the sensor threads (copying and stamping frames)
    notifier_cpu_ns: int  #: CPU of the callback threads outside the callbacks
    callback_cpu_ns: int  #: CPU inside the callbacks (pvc's handler: the host's work)
    max_backlog: int  #: most frame events ever waiting for the callback thread

    def __sub__(self, other: SimStats) -> SimStats:
        fields = {name: getattr(self, name) - getattr(other, name) for name in _STATS_FIELDS}
        fields["max_backlog"] = self.max_backlog
        return SimStats(**fields)

    @property
    def cpu_per_frame_us(self) -> float:
        """The simulator's own CPU (sensor and callback threads, callbacks excluded) per
        frame generated, in microseconds; nan before any frame."""
        if not self.frames_generated:
            return math.nan
        return (self.sensor_cpu_ns + self.notifier_cpu_ns) / self.frames_generated / 1e3


def stats(camera: int | None = None) -> SimStats:
    """The simulator's own cost and overruns, over the life of the library, for one
    camera or summed over all (``max_backlog``: the largest).

    The sensor copies each frame from a pool rendered once into the host's buffer on
    its own schedule; a second thread makes the frame callbacks.  A callback held up
    makes frames overwritten (counted here), never a slower sensor."""
    raw = _Stats()
    library().pvsim_stats(_check_camera(camera), ctypes.byref(raw))
    return SimStats(**{name: int(getattr(raw, name)) for name in _STATS_FIELDS})


def param_calls_mid_stream(camera: int | None = None) -> int:
    """Parameter calls (``pl_get_param`` with any attribute, ``pl_set_param``,
    ``pl_get_enum_param``, ``pl_enum_str_length``) made on the camera(s) while a
    continuous acquisition streamed -- from its first delivered frame until it
    was stopped -- since the library was loaded, whether or not a
    ``param_poll`` fault was armed.  pyvcam's own streaming calls make none."""
    return int(library().pvsim_param_calls_mid_stream(_check_camera(camera)))


def last_param_mid_stream(camera: int = 0) -> int | None:
    """The parameter id of the last such call on a camera (a ``PARAM_*``
    value of pyvcam's constants), or None if there was none."""
    return int(library().pvsim_last_param_mid_stream(_check_camera(camera))) or None


def fire_edge(camera: int = 0) -> bool:
    """Send an edge to the camera's trigger input (Edge Trigger and Trigger
    First modes).  Returns False if the camera ignored it because it was busy
    or no longer waiting for a trigger."""
    result = library().pvsim_fire_edge(_check_camera(camera))
    if result < 0:
        raise SimulatorError(
            f"camera {camera} is not acquiring in an external trigger mode "
            "('Edge Trigger' or 'Trigger First')"
        )
    return bool(result)


def set_seed(seed: int) -> None:
    """Seed the image noise (applies from the next acquisition setup)."""
    library().pvsim_set_seed(int(seed) & (2**64 - 1))


def parse_fault_spec(text: str) -> list[dict]:
    """Parse ``OPHYD_PVCAM_SIM_FAULTS``: ``kind[:key=value,...]`` entries separated
    by ``;``, with keys after, duration, every, times, camera, after_calls,
    bytes.  Example: ``stall:after=85``,
    ``drop:every=10;readout_failure:after=200,times=1``,
    ``param_poll:after_calls=2`` or ``byte_limit:bytes=780000000``."""
    specs = []
    integer_keys = {
        "after": "after_frames",
        "every": "every",
        "times": "times",
        "camera": "camera",
        "after_calls": "after_calls",
        "bytes": "bytes",
    }
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        kind, _, options = entry.partition(":")
        spec: dict = {"kind": kind.strip()}
        if spec["kind"] not in FAULT_KINDS:
            raise FaultSpecError(
                f"{ENV_FAULTS}: unknown fault kind {spec['kind']!r} in {entry!r}; known: "
                f"{', '.join(sorted(FAULT_KINDS))}"
            )
        for option in filter(None, (part.strip() for part in options.split(","))):
            key, sep, value = option.partition("=")
            key = key.strip()
            try:
                if not sep:
                    raise ValueError
                if key == "duration":
                    spec["duration"] = float(value)
                elif key in integer_keys:
                    spec[integer_keys[key]] = int(value)
                else:
                    raise KeyError(key)
            except (KeyError, ValueError):
                raise FaultSpecError(
                    f"{ENV_FAULTS}: cannot read {option!r} in {entry!r}; expected "
                    "after=N, duration=SECONDS, every=N, times=N, camera=N, "
                    "after_calls=N or bytes=N"
                ) from None
        specs.append(spec)
    return specs


def inject_environment_faults() -> list[Fault]:
    """Inject the faults named in ``OPHYD_PVCAM_SIM_FAULTS`` (called by load()).

    A test suite that clears faults between tests calls it again after
    :func:`clear_faults` to keep the environment's faults armed for every test
    (e.g. ``OPHYD_PVCAM_SIM_FAULTS=param_poll`` to fail any test whose code
    reads or writes a parameter while streaming)."""
    text = os.environ.get(ENV_FAULTS, "")
    faults = []
    for spec in parse_fault_spec(text):
        try:
            faults.append(inject_fault(**spec))
        except ValueError as error:
            raise FaultSpecError(f"{ENV_FAULTS}={text!r}: {error}") from None
    return faults


def load() -> ctypes.CDLL:
    """Load the simulator so that pyvcam (imported afterwards) runs on it.

    Idempotent.  Faults named in ``OPHYD_PVCAM_SIM_FAULTS`` are read before the
    library is loaded (a spec that cannot be read loads nothing, so the next call
    reports it again) and injected on the first load.
    """
    specs = parse_fault_spec(os.environ.get(ENV_FAULTS, ""))
    lib, first = _loader.open_library()
    if first and specs:
        inject_environment_faults()
    return lib


def library() -> ctypes.CDLL:
    """The loaded simulator, loading it if needed."""
    return _loader.loaded() or load()
