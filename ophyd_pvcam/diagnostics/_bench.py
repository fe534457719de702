"""Borrowing a camera for a diagnostic: the stall doctor and the first-day check.

A diagnostic drives the camera two ways, one after the other and never both at
once: through the ophyd device (pyvcam), as a beamline does, and directly through
the SDK (ctypes, :mod:`ophyd_pvcam.hardware.sdk`), to do what pyvcam cannot.  A
:class:`Bench` keeps PVCAM initialised for the whole diagnostic, saves the camera's
settings before anything touches it and puts them back at the end whatever
happened (the SDK experiments change the readout port, speed, gain and exposure
resolution; the device changes those and more), makes sure nothing is left
acquiring, and keeps frame files in a temporary folder unless asked to keep them.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ophyd_pvcam import sim
from ophyd_pvcam.errors import CameraInUseError, CameraUnavailableError
from ophyd_pvcam.hardware import Capabilities
from ophyd_pvcam.hardware.sdk import (
    EXP_RES_ONE_MICROSEC,
    PARAM_EXP_RES,
    PARAM_PAR_SIZE,
    PARAM_SER_SIZE,
    Library,
    PvcamError,
    Sdk,
    release,
    restore,
    snapshot,
)
from ophyd_pvcam.paths import default_write_path

log = logging.getLogger(__name__)


def bind_library(simulated: bool | None) -> bool:
    """Load the PVCAM library pyvcam will use (as :func:`~ophyd_pvcam.device.make_camera`
    chooses it) before anything opens the camera; True if it is the simulator."""
    from ophyd_pvcam.hardware import vendor_pvcam_available

    if simulated is None:
        simulated = sim.requested_by_environment() or not vendor_pvcam_available()
    if simulated:
        sim.load()
    else:
        from ophyd_pvcam.hardware import import_pyvcam

        import_pyvcam(False)  # raises CameraUnavailableError without the vendor's PVCAM
    return simulated


class Bench:
    """The camera, borrowed: ``with Bench(...) as bench:`` then ``bench.device()`` or
    ``bench.camera()``, one at a time."""

    def __init__(
        self,
        camera_name: str | None = None,
        simulated: bool | None = None,
        keep_data: bool = False,
        announce=print,
    ):
        self._camera_name = camera_name
        self._simulated = simulated
        self.keep_data = keep_data
        self._announce = announce
        self._library: Library | None = None
        self._temporary: Path | None = None
        self._busy = False
        self.saved: dict[int, int] = {}
        self.restore_failures: list[str] = []

    # ---- borrowing and giving back ----------------------------------------------------

    def __enter__(self) -> Bench:
        self.simulated = bind_library(self._simulated)
        self.sdk = Sdk()
        self._library = Library(self.sdk).__enter__()
        try:
            names = self.sdk.camera_names()
            if not names:
                raise CameraUnavailableError(
                    "PVCAM found no camera. Check that it is powered and connected (and that "
                    "no other program holds it), or use the simulator with --camera sim."
                )
            self.name = self._camera_name or names[0]
            if self.name not in names:
                raise CameraUnavailableError(f"No camera named {self.name!r}; PVCAM lists {names}")
            with self._opened() as handle:
                self.saved = snapshot(self.sdk, handle)
                self.pvcam_version = self.sdk.version()
                self.sensor = (
                    int(self.sdk.read(handle, PARAM_SER_SIZE)),
                    int(self.sdk.read(handle, PARAM_PAR_SIZE)),
                )
            if self.keep_data:
                self.write_path = default_write_path()
            else:
                self._temporary = Path(tempfile.mkdtemp(prefix="ophyd-pvcam-"))
                self.write_path = self._temporary / "frames"
        except BaseException:
            self._library.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.saved:
                with self._opened() as handle:
                    self.restore_failures = restore(self.sdk, handle, self.saved)
                for failure in self.restore_failures:
                    log.error("%s: a setting could not be restored: %s", self.name, failure)
        except (PvcamError, CameraInUseError) as error:
            self.restore_failures.append(str(error))
            log.error("%s: settings not restored: %s", self.name, error)
        finally:
            if self._library is not None:  # entered: give PVCAM back once
                self._library.__exit__(None, None, None)
                self._library = None
            if self._temporary is not None:
                shutil.rmtree(self._temporary, ignore_errors=True)

    @property
    def temporary(self) -> Path | None:
        """The folder removed at the end (None with ``keep_data``)."""
        return self._temporary

    def identity(self, caps: Capabilities) -> dict[str, object]:
        """What the camera says it is (``caps``: its capabilities), for a report: the
        probe and the check name the camera the same way."""
        return {
            "name": caps.name,
            "model": caps.model,
            "serial_number": caps.serial_number,
            "firmware_version": caps.firmware_version,
            "simulated": bool(caps.simulated),
            "sensor": [caps.sensor_width, caps.sensor_height],
            "pixel_size_um": caps.pixel_size_um,
            "pvcam_version": self.pvcam_version,
        }

    # ---- the two ways in -----------------------------------------------------------------

    @contextlib.contextmanager
    def device(self, name: str = "cam") -> Iterator:
        """The ophyd device on this camera, closed (stopped first) at the end."""
        from ophyd_pvcam.device import make_camera

        with self._exclusive():
            cam = make_camera(
                name,
                write_path=self.write_path,
                camera_name=self.name,
                simulated=self.simulated,
                announce=self._announce,
            )
            self._announce = None  # the simulator's banner once is enough
            try:
                yield cam
            finally:
                cam.close()

    @contextlib.contextmanager
    def camera(self) -> Iterator[int]:
        """The camera opened through the SDK (exposures in microseconds); stopped,
        callbacks cleared and closed at the end."""
        with self._exclusive(), self._opened() as handle:
            try:
                self.sdk.write(handle, PARAM_EXP_RES, EXP_RES_ONE_MICROSEC)
            except PvcamError as error:
                raise CameraUnavailableError(
                    f"{self.name} offers no microsecond exposure resolution: {error}"
                ) from None
            yield handle

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        if self._busy:
            raise RuntimeError("the camera is already in use by this diagnostic")
        self._busy = True
        try:
            yield
        finally:
            self._busy = False

    @contextlib.contextmanager
    def _opened(self) -> Iterator[int]:
        try:
            handle = self.sdk.open(self.name)
        except PvcamError as error:
            raise CameraInUseError(f"Camera {self.name!r} could not be opened: {error}") from None
        try:
            yield handle
        finally:
            release(self.sdk, handle)
