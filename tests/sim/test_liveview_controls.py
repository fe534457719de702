"""The live view's controls, driven from Python on the simulated camera in this process
(the window itself, on a virtual X display: ``tests/system/test_liveview.py``)."""

from __future__ import annotations

import time

import pytest


def test_exposure_and_roi_change_from_the_window(cam):
    """Apply stops the stream, sets what was typed and starts again; a refused value is
    shown in the window and the camera streams on as it was.  Nothing is written."""
    import matplotlib.pyplot as plt

    plt.switch_backend("agg")  # no display needed: the window's clock is driven by hand
    from ophyd_pvcam.viewer import LiveView

    cam.roi.set((896, 704, 256, 256)).wait(5)
    cam.exposure_time.set(0.004).wait(5)
    files_before = set(cam.write_path.rglob("*.h5")) if cam.write_path.exists() else set()
    view = LiveView(cam)
    try:
        wait_for_frames(view, 3)
        view.exposure_box.set_val("2.5")  # typed + Enter: applies
        view.roi_box.set_val("960, 960, 128, 96")
        assert cam.exposure_time.get() == pytest.approx(0.0025)
        assert tuple(cam.roi.get()) == (960, 960, 128, 96)
        assert "applied: 128x96 at (960, 960), exposure 2.5 ms" in view.status.get_text()
        shown = view.shown
        wait_for_frames(view, shown + 3)
        assert view.image.gray.shape == (96, 128)  # what is drawn: the new region
        assert view.axes.get_xlim() == (960, 1088) and view.axes.get_ylim() == (1056, 960)

        assert not view.apply(roi=(0, 0, 5000, 5000))  # the camera's checks refuse it
        assert view.status.get_text().startswith("refused: roi")
        assert tuple(cam.roi.get()) == (960, 960, 128, 96)
        shown = view.shown
        wait_for_frames(view, shown + 3)  # streaming again, as it was

        view.full_frame()
        assert tuple(cam.roi.get()) == (0, 0, 2048, 2048)
        wait_for_frames(view, view.shown + 1)
        wait_for_heading(view, "2048x2048 at (0, 0)")
        assert view.title().startswith("cam live: ")
    finally:
        view.close()
    assert not cam.acquiring
    files_after = set(cam.write_path.rglob("*.h5")) if cam.write_path.exists() else set()
    assert files_after == files_before


def wait_for_frames(view, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while view.shown < count:
        assert time.monotonic() < deadline, f"only {view.shown} frames drawn in {timeout} s"
        assert view.stream is not None and not view.stream.done.is_set(), view.status.get_text()
        view.stream.done.wait(0.01)
        tick(view)


def tick(view) -> None:
    """One tick of the window's clock, by hand (no event loop here)."""
    for callback, args, kwargs in view.timer.callbacks:
        callback(*args, **kwargs)


def wait_for_heading(view, text: str, timeout: float = 10) -> None:
    """Tick until the heading over the frame (refreshed twice a second) shows ``text``."""
    deadline = time.monotonic() + timeout
    while text not in view.heading.get_text():
        assert time.monotonic() < deadline, f"heading {view.heading.get_text()!r} after {timeout} s"
        view.closed.wait(0.05)
        tick(view)
