"""``ophyd-pvcam check``: the first-day acceptance test of a camera and its driver.

Run it when the camera arrives, and after any driver, firmware or cable change.
In order (each check is one row of the report, and a failure in one does not stop
the others):

1. identity: what the camera says it is, and which PVCAM drives it;
2. full-frame rate, for every readout port / speed / gain (SDK, no disk): frames
   per second measured with the camera's own frame timestamps, against the
   readout time the camera reports for that mode;
3. software triggers (SDK): one frame per trigger, none without one, and every
   frame ending at least an exposure and a readout after its trigger (a frame
   whose exposure began before its trigger would end sooner);
4. a stream of 1000 frames per port / speed / gain through ophyd-pvcam (a fly
   scan to disk; a small ROI, stated, since the disk and not the camera limits
   full frames): no frame lost, frame numbers 1..1000 without a gap;
5. a step scan and 6. a fly scan through the RunEngine, replayed from the
   catalog (a temporary one unless ``keep_data``): images, frame numbers, no
   loss, exit status;
7. temperature: at its setpoint, or where it got to after a wait (reported, not
   failed, while it still approaches).

The camera's settings are restored and nothing is left acquiring
(:class:`~ophyd_pvcam.diagnostics.Bench`).

The checks themselves are in ``_sdk_checks`` (2-3) and ``_device_checks`` (4-7), the
report's rows and options in ``_check_report``; this module runs them in order and
keeps the report.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bluesky.utils import RunEngineInterrupted

from . import _device_checks as device_checks
from . import _sdk_checks as sdk_checks
from ._bench import Bench
from ._check_report import WORDS, Check, CheckOptions, Mode

# the frame-rate arithmetic, under the name its tests import it by
_rates = sdk_checks.frame_rates

log = logging.getLogger(__name__)


@dataclass
class FirstDayCheck:
    """One run of the first-day check on an entered ``Bench``: ``run()`` makes every
    check (identity, rates, triggers, streams, scans, temperature), saying each row as
    it comes and handing the report so far to ``update``; the rows end up in
    ``checks``."""

    bench: Bench  # entered
    options: CheckOptions = field(default_factory=CheckOptions)
    say: Callable[[str], None] = print
    update: Callable[[dict], None] | None = None
    checks: list[Check] = field(default_factory=list)
    camera: dict[str, Any] = field(default_factory=dict)
    modes: list[Mode] = field(default_factory=list, init=False)  # the camera's, at run()
    _started: float = field(default_factory=time.monotonic, init=False)

    # ---- the report ------------------------------------------------------------------------

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def first_failure(self) -> str | None:
        return next((c.line() for c in self.checks if not c.passed), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "first_failure": self.first_failure,
            "camera": self.camera,
            "options": {
                k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.options).items()
            },
            "checks": [c.as_dict() for c in self.checks],
            "duration_s": round(time.monotonic() - self._started, 1),
        }

    def summary(self) -> str:
        """The conclusion, in one line (the rows were printed as they came)."""
        failed = [c for c in self.checks if not c.passed]
        if failed:
            return f"FAILED: {len(failed)} of {len(self.checks)} checks; first: {failed[0].line()}"
        notes = sum(c.status == "warn" for c in self.checks)
        return f"PASSED: all {len(self.checks)} checks" + (
            f" ({notes} NOTE: reported, not failed)" if notes else ""
        )

    def _add(self, check: Check) -> None:
        self.checks.append(check)
        word = WORDS[check.status]
        self.say(f"{word}  {check.check:<48} {check.measured}")
        if check.status != "pass" and check.detail:
            self.say(f"      {check.detail}")
        if self.update is not None:
            self.update(self.as_dict())

    @contextlib.contextmanager
    def _checking(self, name: str, expected: str = "") -> Iterator[None]:
        """A check that raises becomes a failed row; the next check still runs."""
        started = time.monotonic()
        try:
            yield
        except RunEngineInterrupted:  # Ctrl-C during a scan ends the check, as it should
            raise
        except Exception as error:
            log.debug("check %s failed", name, exc_info=True)
            self._add(
                Check(
                    name,
                    "fail",
                    "error",
                    expected,
                    f"{type(error).__name__}: {error}",
                    seconds=round(time.monotonic() - started, 2),
                )
            )

    # ---- the run ---------------------------------------------------------------------------

    def run(self) -> FirstDayCheck:
        self._started = time.monotonic()
        bench, o = self.bench, self.options
        with bench.device() as cam:
            caps = cam.capabilities
            self.modes = [
                Mode(
                    port.name,
                    port.value,
                    speed.index,
                    speed.name,
                    gain.index,
                    gain.name,
                    gain.bit_depth,
                )
                for port in caps.ports
                for speed in port.speeds
                for gain in speed.gains
            ]
            self._identity(caps)
        with self._checking("full-frame rates"), bench.camera() as handle:
            for mode in self.modes:
                with self._checking(f"full-frame rate {mode.label}"):
                    self._add(sdk_checks.full_frame_rate(bench, handle, mode, o))
            with self._checking("software triggers"):
                self._add(sdk_checks.software_triggers(bench, caps, handle, self.modes[0], o))
        with bench.device() as cam:
            with self._checking("settings"):
                device_checks.prepare(cam, bench)
            for mode in self.modes:
                with self._checking(f"stream {o.stream_frames} {mode.label}"):
                    self._add(device_checks.stream(cam, bench, mode, o))
            scans = None
            with self._checking("catalog"):
                scans = device_checks.open_scans(bench, o)
            if scans is not None:
                with self._checking("step scan"):
                    self._add(device_checks.step_scan(cam, bench, self.modes[0], o, scans))
                with self._checking("fly scan"):
                    self._add(device_checks.fly_scan(cam, bench, self.modes[0], o, scans))
            with self._checking("temperature"):
                self._add(device_checks.temperature(cam, o))
        if self.update is not None:
            self.update(self.as_dict())
        return self

    # ---- 1. identity -----------------------------------------------------------------------

    def _identity(self, caps: Any) -> None:
        import pyvcam

        self.camera = {
            **self.bench.identity(caps),
            "chip": caps.chip_name,
            "pyvcam_version": getattr(pyvcam, "__version__", "?"),
            "modes": [asdict(m) for m in self.modes],
            "trigger_modes": list(caps.trigger_modes),
        }
        ok = bool(caps.model) and bool(caps.serial_number) and caps.sensor_width > 0
        self._add(
            Check(
                "identity",
                "pass" if ok else "fail",
                f"{caps.model}{' (SIMULATED)' if caps.simulated else ''}, serial "
                f"{caps.serial_number}, firmware {caps.firmware_version}, {caps.sensor_width}x"
                f"{caps.sensor_height} px of {caps.pixel_size_um:g} um, PVCAM "
                f"{self.bench.pvcam_version}, {len(self.modes)} readout modes",
                "a model, a serial number and a sensor",
                "" if ok else "the camera did not say what it is",
            )
        )
