"""Hardware-triggered scans: the camera exposes when an edge reaches its trigger input.

Run as is: on the simulator a thread stands in for the pulse generator and fires edges
with ``ophyd_pvcam.sim.fire_edge()``.  On the real camera, wire a pulse generator (or
your motion controller's position output) as below and leave out ``PulseGenerator``.

Trigger modes (the vendor's names, set with ``cam.trigger_mode``):

- "Edge Trigger": every rising edge at the trigger input starts one exposure of
  ``cam.exposure_time``; the frame rate is the pulse rate.  Edges that come while the
  camera is busy with the previous frame are ignored (the simulator does so; assume
  your camera does too), so keep the pulse period above ``cam.frame_period``.
- "Trigger First": one edge starts the acquisition; after it the camera runs on its own
  clock, as with "Internal Trigger".
- "Internal Trigger" (the default for fly scans): no edge needed.

Step scans (``count``, ``scan``): each ``trigger()`` keeps the first frames exposed
after it; frames that edges make between points are counted and not kept.  Fly scans:
every edge is a frame and an event.  The stall timeout waits at least 10 s for an edge.

Wiring a real camera.  What the vendor publishes (Teledyne Photometrics' public camera
manuals, e.g. the Retiga R series', and the PVCAM header's documented modes); this
example itself was run on the simulator only:

- the camera has an I/O connector at the back; an optional vendor cable breaks out
  signals such as "Trigger In" and "Expose Out";
- the camera triggers on the rising edge of a TTL signal at "Trigger In";
- in "Trigger First" one trigger starts the acquisition of a stream of images, which
  then runs on the camera's internal clock, independent of later triggers;
- "Expose Out" marks the exposure; which rows it follows is ``cam.expose_out_mode``
  ("First Row": the first row; "All Rows": from the last row starting to integrate to
  the first row reading out; "Any Row": from the first row exposing to the last row
  reading out; "Rolling Shutter").  Use it to gate a shutter or time-stamp frames.

Check the Prime BSI's own manual for its connector's pinout and voltage levels before
connecting anything: drive "Trigger In" from a TTL output with the grounds common.
"""

import contextlib
import threading

import bluesky.plans as bp

from ophyd_pvcam import sim
from ophyd_pvcam.device import make_camera, make_run_engine


class PulseGenerator:
    """Fires edges at ``rate`` Hz into the simulated camera's trigger input while in use
    (``count`` edges at most); edges fired before the camera is armed are not seen."""

    def __init__(self, rate: float, count: int | None = None):
        self.period = 1.0 / rate
        self.count = count
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            with contextlib.suppress(sim.SimulatorError):  # camera not acquiring yet
                self.accepted += sim.fire_edge(0)
            if self.count is not None and self.accepted >= self.count:
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


def pulses(cam, rate: float, count: int | None = None):
    """The simulated pulse generator; on a real camera, your wiring does this."""
    return PulseGenerator(rate, count) if cam.simulated.get() else contextlib.nullcontext()


RE, catalog = make_run_engine()
cam = make_camera("cam")
try:
    cam.roi.set((896, 896, 256, 256)).wait(10)
    cam.exposure_time.set(0.002).wait(10)  # 2 ms per edge
    cam.trigger_mode.set("Edge Trigger").wait(10)

    # A step scan: five points, each the next frame exposed after the point's trigger.
    with pulses(cam, rate=50):
        (step_uid,) = RE(bp.count([cam], num=5))
    numbers = catalog[step_uid]["primary"]["cam_frame_number"].read()
    print(f"edge-triggered count: 5 points, camera frame numbers {[int(n) for n in numbers]}")

    # A fly scan: one frame per edge, at the pulse generator's rate.
    cam.num_frames.set(40).wait(10)
    with pulses(cam, rate=100):
        (fly_uid,) = RE(bp.fly([cam]))
    frames = catalog[fly_uid]["cam"]
    times = frames["cam_frame_time"].read()
    rate = (len(times) - 1) / (times[-1] - times[0])
    lost = int(frames["cam_lost_before"].read().sum())
    print(
        f"edge-triggered fly: {len(times)} frames at {rate:.0f} frames/s by the camera's "
        f"clock (pulses at 100 Hz), {lost} lost"
    )

    # Trigger First: one edge, then the camera's own clock (here 2 ms exposures).
    cam.trigger_mode.set("Trigger First").wait(10)
    with pulses(cam, rate=20, count=1):
        (first_uid,) = RE(bp.fly([cam]))
    times = catalog[first_uid]["cam"]["cam_frame_time"].read()
    rate = (len(times) - 1) / (times[-1] - times[0])
    print(f"trigger-first fly: {len(times)} frames after one edge, at {rate:.0f} frames/s")
finally:
    cam.close()
